"""``report.html``: one self-contained page (inline CSS, figures as data: URIs, no script, no
network) that says what the controller did, for a plant manager first and an engineer second."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import jinja2

ROWS: Final = (
    # key, label, unit, scale, decimals, better when higher (None: no judgement)
    ("renewable_available_mwh", "Renewable energy available", "MWh", 1.0, 0, None),
    ("renewable_used_mwh", "Renewable energy used on site", "MWh", 1.0, 0, True),
    ("renewable_share", "Renewable share of consumption", "%", 100.0, 1, True),
    ("renewable_share_hourly", "Renewable share, matched hour by hour", "%", 100.0, 1, True),
    ("curtailed_mwh", "Renewable energy curtailed", "MWh", 1.0, 0, False),
    ("grid_import_mwh", "Grid import", "MWh", 1.0, 0, False),
    ("grid_export_mwh", "Grid export", "MWh", 1.0, 0, None),
    ("captive_mwh", "Captive unit output", "MWh", 1.0, 0, False),
    ("co2_t", "CO2 from electricity", "t", 1.0, 0, False),
    ("co2_t_per_t_al", "CO2 from electricity per tonne of aluminium", "tCO2/t Al", 1.0, 3, False),
    ("cost", "Electricity cost", "CNY", 1.0, 0, False),
    ("aluminium_t", "Aluminium produced", "t", 1.0, 1, None),
    ("aluminium_target_t", "Aluminium target (nominal current)", "t", 1.0, 1, None),
    ("thermal_violation_min", "Time outside the safe thermal band", "min", 1.0, 0, False),
    ("min_bath_temp_c", "Lowest bath temperature", "°C", 1.0, 1, None),
    ("max_bath_temp_c", "Highest bath temperature", "°C", 1.0, 1, None),
    ("frozen_pots", "Pots frozen", "", 1.0, 0, False),
)

TEMPLATE: Final = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>smelter-ems demo: {{ k.scenario }}</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222;
       line-height: 1.45; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { margin-top: 1.6em; }
.lead { font-size: 1.15em; } .muted { color: #666; font-size: 0.9em; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { padding: 0.3em 0.8em; border-bottom: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child { text-align: left; }
td.good { color: #2e7d32; font-weight: 600; } td.bad { color: #c62828; font-weight: 600; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-weight: 600; margin-bottom: 0.3em; }
code { background: #f4f4f4; padding: 0 0.2em; }
</style></head><body>
<h1>What the controller did: {{ k.scenario }}</h1>
<p class="muted">{{ period }} of plant time, seed {{ k.seed }}, simulated at
{{ k.speed|round|int }}× real time through {{ k.broker }}
{%- if k.interrupted %} — <strong>stopped early</strong>{% endif %}.</p>
<p class="lead">{{ headline }}</p>
<h2>Key figures</h2>
<table>
<tr><th>KPI</th><th>unit</th><th>with the controller</th><th>without (flat)</th>
<th>difference</th></tr>
{% for r in rows %}<tr><td>{{ r.label }}</td><td>{{ r.unit }}</td><td>{{ r.controller }}</td>
<td>{{ r.flat }}</td><td class="{{ r.verdict }}">{{ r.diff }}</td></tr>
{% endfor %}</table>
<p class="muted">Flat: every pot-line at nominal current, battery idle, the same weather — a
smelter without this controller. CO2 counts electricity only (grid at {{ grid_factor }}, captive
units at their own factor); anodes and alumina are not included. Definitions: docs/kpis.md.</p>
{% for f in figures %}<figure><figcaption>{{ f.title }}</figcaption>
<img alt="{{ f.title }}" src="data:image/png;base64,{{ f.data }}"></figure>
{% endfor %}
<h2>How this was run</h2>
<p class="muted">The plant simulator and the control daemon (<code>smelter-ems run</code>, its own
process) exchanged telemetry and setpoints over MQTT; the daemon planned every
{{ cycle_min|round|int }} min of plant time ({{ k.controller.plans }} plans, solve time median
{{ k.controller.solve_ms_p50 }} ms). Plant values are the simulator's truth. Files next to this
page: <code>kpis.json</code>, the figures as PNG, {% if k.influx %}<code>points/spool/</code> (what
the daemon could not write to InfluxDB: {{ k.influx.unsent_points }} points) and <code>run/</code>
(its config, site file and log). The daemon logged everything else to InfluxDB at
<code>{{ k.influx.url }}</code>, org <code>{{ k.influx.org }}</code>, bucket
<code>{{ k.influx.bucket }}</code>.{% else %}<code>points/</code> (everything the daemon logged,
line protocol) and <code>run/</code> (its config, site file and log).{% endif %}</p>
</body></html>
"""


@dataclass(frozen=True)
class Row:
    label: str
    unit: str
    controller: str
    flat: str
    diff: str
    verdict: str


def _fmt(value: object, scale: float, decimals: int, *, signed: bool = False) -> str:
    if not isinstance(value, int | float):
        return "–"
    sign = "+" if signed else ""
    return f"{value * scale:{sign},.{decimals}f}"


def kpi_rows(kpis: dict[str, Any]) -> list[Row]:
    rows = []
    ctl, flat = kpis["controller"], kpis["flat"]
    for key, label, unit, scale, decimals, higher_better in ROWS:
        a, b = ctl.get(key), flat.get(key)
        diff, verdict = "–", ""
        if isinstance(a, int | float) and isinstance(b, int | float):
            delta = float(a) - float(b)
            diff = _fmt(delta, scale, decimals, signed=True)
            if higher_better is not None and abs(delta * scale) >= 0.5 * 10.0**-decimals:
                verdict = "good" if (delta > 0) == higher_better else "bad"
        rows.append(
            Row(label, unit, _fmt(a, scale, decimals), _fmt(b, scale, decimals), diff, verdict)
        )
    return rows


def headline(kpis: dict[str, Any]) -> str:
    c, f = kpis["controller"], kpis["flat"]
    used = c["renewable_used_mwh"] - f["renewable_used_mwh"]
    co2 = c["co2_t"] - f["co2_t"]
    al = (
        100.0 * (c["aluminium_t"] / c["aluminium_target_t"] - 1.0)
        if c["aluminium_target_t"]
        else 0.0
    )
    thermal = c["thermal_violation_min"]
    return (
        f"With the controller the smelter used {used:,.0f} MWh {'more' if used >= 0 else 'less'} "
        f"renewable energy than without it (share {100 * f['renewable_share']:.1f} % → "
        f"{100 * c['renewable_share']:.1f} %), and its electricity emitted {abs(co2):,.0f} t CO2 "
        f"{'less' if co2 <= 0 else 'more'} ({_fmt(f['co2_t_per_t_al'], 1, 3)} → "
        f"{_fmt(c['co2_t_per_t_al'], 1, 3)} tCO2 per tonne of aluminium). Aluminium was "
        f"{al:+.2f} % of target, with "
        + (
            "no minute outside the safe thermal band."
            if thermal == 0
            else f"{thermal:.0f} minutes outside the safe thermal band."
        )
    )


def write_page(
    path: Path, kpis: dict[str, Any], figures: dict[str, tuple[str, Path]], cycle_min: float
) -> None:
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    days = float(kpis["days"])
    period = f"{days:g} day" + ("s" if days != 1 else "") if days >= 1 else f"{days * 24:g} hours"
    grid = kpis["grid_carbon_t_per_mwh"]
    page = env.from_string(TEMPLATE).render(
        k=kpis,
        period=period,
        headline=headline(kpis),
        rows=kpi_rows(kpis),
        grid_factor="–" if grid is None else f"{grid:g} tCO2/MWh",
        cycle_min=cycle_min,
        figures=[
            {"title": title, "data": base64.b64encode(png.read_bytes()).decode("ascii")}
            for title, png in figures.values()
        ],
    )
    path.write_text(page, encoding="utf-8")
