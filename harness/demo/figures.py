"""The demo report's figures, one PNG each, on the site's local time.

Each function draws one question a plant manager asks onto a fresh figure and returns it; the
traces are the simulator's truth (:class:`~harness.backtest.Trace` columns) for the run with the
controller and for the flat baseline, and what the controller said on MQTT (:class:`Heard`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import numpy as np

from controller.site import SiteModel
from harness.demo.listen import Heard

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
Columns = dict[str, FloatArray]

FORECAST_LEAD_H: Final = 1.0
"""The forecast band shown: for each time, the newest forecast made at least this long before."""
STATE_COLOURS: Final = {
    "starting": "#9e9e9e",
    "standby": "#bdbdbd",
    "running": "#2e7d32",
    "degraded": "#f9a825",
    "fallback": "#c62828",
    "manual": "#1565c0",
    "offline": "#424242",
}


@dataclass(frozen=True)
class Inputs:
    controlled: Columns
    flat: Columns
    heard: Heard
    site: SiteModel
    utc_offset_h: float

    def local(self, t_s: FloatArray | list[float]) -> list[datetime]:
        """Plant times as naive local datetimes (matplotlib draws them as given)."""
        offset = timedelta(hours=self.utc_offset_h)
        return [datetime.fromtimestamp(float(t), UTC).replace(tzinfo=None) + offset for t in t_s]

    @property
    def tz_label(self) -> str:
        return f"local time (UTC{self.utc_offset_h:+g})"


def _pyplot() -> Any:
    import matplotlib  # noqa: PLC0415  (the plots extra; Agg: no display)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def renewable(d: Inputs, ax: Any) -> None:
    c, f = d.controlled, d.flat
    t = d.local(c["t_s"])
    ax.plot(t, c["renewable_available_mw"], color="black", lw=1.2, label="available")
    ax.plot(t, c["renewable_used_mw"], color="#2e7d32", lw=1.5, label="used, with the controller")
    ax.plot(
        d.local(f["t_s"]),
        f["renewable_used_mw"],
        color="#c62828",
        lw=1.2,
        ls="--",
        label="used, without (flat)",
    )
    ax.fill_between(
        t,
        c["renewable_used_mw"],
        c["renewable_available_mw"],
        color="#ef9a9a",
        alpha=0.6,
        label="curtailed or exported, with the controller",
    )
    ax.set_ylabel("renewable power [MW]")


def current(d: Inputs, ax: Any) -> None:
    t = d.local(d.controlled["t_s"])
    for line in d.site.lines:
        i_n = line.nominal_current_ka
        (curve,) = ax.plot(
            t, d.controlled[f"{line.name}_current_ka"], lw=1.5, label=f"{line.name} current"
        )
        colour = curve.get_color()
        ax.axhspan(line.band_low_frac * i_n, line.band_high_frac * i_n, color=colour, alpha=0.08)
        for frac, style in (
            (line.deep_low_frac, ":"),
            (line.high_max_frac, ":"),
            (line.hard_min_frac, "-"),
            (line.hard_max_frac, "-"),
        ):
            ax.axhline(frac * i_n, color=colour, ls=style, lw=0.8, alpha=0.7)
    ax.set_ylabel("pot-line current [kA]")
    ax.set_title(
        "shaded: continuous band; dotted: deep/high envelope; solid: hard limits", fontsize="small"
    )


def heat_budget(d: Inputs, ax: Any) -> None:
    plans = d.heard.plans
    for line in d.site.lines:
        times = [p.start_s + p.step_s for p in plans if line.name in p.heat_budget_mwh]
        values = [p.heat_budget_mwh[line.name] for p in plans if line.name in p.heat_budget_mwh]
        (curve,) = ax.step(d.local(times), values, where="post", label=line.name)
        for sign in (-1, 1):
            ax.axhline(sign * line.heat_budget_mwh, color=curve.get_color(), ls="--", lw=0.8)
    ax.set_ylabel("heat budget [MWh]\n(controller's plan; -- limits)")


def bath(d: Inputs, ax: Any) -> None:
    c, f = d.controlled, d.flat
    t = d.local(c["t_s"])
    for line in d.site.lines:
        (curve,) = ax.plot(t, c[f"{line.name}_bath_c"], lw=1.5, label=f"{line.name}, controller")
        ax.plot(
            d.local(f["t_s"]),
            f[f"{line.name}_bath_c"],
            lw=1.0,
            ls="--",
            color=curve.get_color(),
            label=f"{line.name}, flat",
        )
        ax.fill_between(
            t,
            c[f"{line.name}_bath_min_c"],
            c[f"{line.name}_bath_max_c"],
            color="#a5d6a7",
            alpha=0.25,
            label="safe band" if line is d.site.lines[0] else None,
        )
    ax.set_ylabel("mean bath temperature [°C]\n(simulator's truth)")


def soc(d: Inputs, ax: Any) -> None:
    t = d.local(d.controlled["t_s"])
    for unit in d.site.bess:
        ax.plot(t, 100.0 * d.controlled[f"{unit.name}_soc_frac"], label=unit.name)
        ax.axhspan(100 * unit.soc_min_frac, 100 * unit.soc_max_frac, color="#90caf9", alpha=0.15)
    if not d.site.bess:
        ax.text(0.5, 0.5, "no battery storage on this site", transform=ax.transAxes, ha="center")
    ax.set_ylim(0, 100)
    ax.set_ylabel("BESS state of charge [%]\n(shaded: allowed range)")


def supply(d: Inputs, ax: Any) -> None:
    c, f = d.controlled, d.flat
    t, tf = d.local(c["t_s"]), d.local(f["t_s"])
    for key, label, colour in (
        ("grid_import_mw", "grid import", "#6d4c41"),
        ("grid_export_mw", "grid export", "#00838f"),
        ("captive_mw", "captive unit", "#37474f"),
    ):
        if np.any(c[key] > 0) or np.any(f[key] > 0):
            ax.plot(t, c[key], color=colour, lw=1.5, label=f"{label}, controller")
            ax.plot(tf, f[key], color=colour, lw=1.0, ls="--", label=f"{label}, flat")
    ax.set_ylabel("power [MW]")


def forecast(d: Inputs, ax: Any) -> None:
    rows: dict[float, tuple[float, float, float, float]] = {}
    for p in d.heard.plans:  # in the order made: a newer forecast of the same time replaces
        for k, ts in enumerate(p.forecast_times_s):
            if ts - p.start_s >= FORECAST_LEAD_H * 3600.0 - 1e-6 and k < len(p.p50_mw):
                rows[ts] = (p.start_s, p.p10_mw[k], p.p50_mw[k], p.p90_mw[k])
    end_s = float(d.controlled["t_s"][-1]) if d.controlled["t_s"].size else 0.0
    times = sorted(ts for ts in rows if ts <= end_s)
    t = d.local(times)
    ax.fill_between(
        t,
        [rows[s][1] for s in times],
        [rows[s][3] for s in times],
        step="post",
        color="#ffcc80",
        alpha=0.7,
        label=f"P10–P90, ≥ {FORECAST_LEAD_H:g} h ahead",
    )
    ax.step(t, [rows[s][2] for s in times], where="post", color="#ef6c00", lw=1.0, label="P50")
    ax.plot(
        d.local(d.controlled["t_s"]),
        d.controlled["renewable_available_mw"],
        color="black",
        lw=1.2,
        label="what happened (available)",
    )
    ax.set_ylabel("renewable power [MW]")


def states(d: Inputs, ax: Any) -> None:
    changes = d.heard.statuses
    end_s = float(d.controlled["t_s"][-1]) if d.controlled["t_s"].size else 0.0
    seen: set[str] = set()
    for k, ch in enumerate(changes):
        stop_s = changes[k + 1].ts if k + 1 < len(changes) else end_s
        if stop_s <= ch.ts:
            continue
        start, stop = d.local([ch.ts, stop_s])
        colour = STATE_COLOURS.get(ch.state, "#000000")
        ax.axvspan(
            start,
            stop,
            ymin=0.1,
            ymax=0.9,
            color=colour,
            label=None if ch.state in seen else ch.state,
        )
        seen.add(ch.state)
    ax.set_yticks([])
    ax.set_ylabel("controller state")


def hourly_share(d: Inputs, ax: Any, by_hour: dict[str, dict[str, list[float]]]) -> None:
    width = timedelta(minutes=24)
    for k, (name, colour) in enumerate((("controller", "#2e7d32"), ("flat", "#c62828"))):
        series = by_hour[name]
        t = [x + width * (k - 0.5) + timedelta(minutes=30) for x in d.local(series["hour_start_s"])]
        ax.bar(
            t,
            [100 * s for s in series["share"]],
            width=width,
            color=colour,
            align="edge",
            label="with the controller" if name == "controller" else "without (flat)",
        )
    ax.set_ylim(0, 100)
    ax.set_ylabel("renewable share\nmatched in the hour [%]")


FIGURES: Final[dict[str, tuple[str, Callable[[Inputs, Any], None]]]] = {
    "renewable": (
        "Renewable energy available and used, with and without the controller",
        renewable,
    ),
    "forecast": ("Renewable forecast (P10–P90) against what happened", forecast),
    "current": ("Pot-line current against its bands", current),
    "heat_budget": ("Heat budget the controller keeps each line within", heat_budget),
    "bath": ("Bath temperature against its safe band", bath),
    "soc": ("Battery state of charge", soc),
    "supply": ("Grid import and export, captive output", supply),
    "states": ("The controller's state and mode", states),
}


def draw_all(
    d: Inputs, by_hour: dict[str, dict[str, list[float]]], out: Path
) -> dict[str, tuple[str, Path]]:
    """Every figure as ``out/{name}.png``; name → (title, path)."""
    plt = _pyplot()
    drawn: dict[str, tuple[str, Path]] = {}
    jobs: list[tuple[str, str, Callable[[Any], None]]] = [
        (name, title, functools.partial(draw, d)) for name, (title, draw) in FIGURES.items()
    ]
    jobs.insert(
        1,
        ("hourly_share", "Renewable share, hour by hour", lambda ax: hourly_share(d, ax, by_hour)),
    )
    for name, title, draw in jobs:
        height = 2.2 if name == "states" else 3.6
        fig, ax = plt.subplots(figsize=(11, height))
        draw(ax)
        ax.set_xlabel(d.tz_label)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
        fig.autofmt_xdate()
        fig.tight_layout()
        path = out / f"{name}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        drawn[name] = (title, path)
    return drawn
