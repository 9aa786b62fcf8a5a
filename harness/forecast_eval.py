"""Forecast evaluation on simulated plants and on measured series (``smelter-ems forecast-eval``).

The harness side of :mod:`forecasting.evaluation`: it turns a scenario's simulated weather
(:class:`simulator.weather.SiteWeather`) or a measured CSV file into the series the pure
rolling-origin evaluation takes, and prints the skill tables.

Scenario runs: the forecasters see every plant's 1-minute available power and its weather
measurement up to each issue time, and the site's weather forecast every
``forecast_interval_h`` (6 h); after a two-day warm-up they forecast hourly, 48 h ahead on the
forecast grid (15 min), and are scored against the simulated truth (which is generated two
days past the run so the last issues are scored at every lead).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Final

import numpy as np

from forecasting.csvdata import read_csv_series
from forecasting.evaluation import PlantSpec, Series, rolling_origin
from forecasting.metrics import BUCKETS_H
from forecasting.types import Array, Kind, WeatherInput
from simulator.scenario import builtin_names, load_scenario
from simulator.weather import SiteWeather
from wire import WeatherForecast

DAY_S: Final = 86_400.0
HOUR_S: Final = 3600.0
WARM_UP_DAYS: Final = 2.0
"""The forecasters learn from this much history before the first scored issue."""
TRUTH_STEP_S: Final = 60.0
MEASURED_KEY: Final[dict[str, str]] = {
    "pv": "ghi_wm2",
    "wind": "wind_speed_ms",
    "hydro": "flow_m3s",
}


def evaluate_scenario(name: str, days: float, seed: int) -> list[dict[str, object]]:
    """Rolling-origin evaluation of every renewable plant of a scenario (one dict per plant)."""
    if days <= WARM_UP_DAYS:
        raise ValueError(f"days must exceed the {WARM_UP_DAYS:g}-day warm-up, got {days}")
    scenario = load_scenario(name)
    weather = SiteWeather(scenario, seed=seed, step_s=TRUTH_STEP_S)
    start = float(scenario.start)
    end = start + days * DAY_S
    n_obs = round(days * DAY_S / TRUTH_STEP_S)
    n_truth = n_obs + round(2 * DAY_S / TRUTH_STEP_S) + 60
    t_truth = start + np.arange(n_truth, dtype=np.float64) * TRUTH_STEP_S
    interval_s = scenario.weather.forecast_interval_h * HOUR_S
    issued = np.arange(start, end + 1.0, interval_s)
    forecasts = [to_weather_input(weather.forecast(float(t))) for t in issued]
    issues = np.arange(start + WARM_UP_DAYS * DAY_S, end + 1.0, HOUR_S)
    step_s = scenario.weather.forecast_step_min * 60.0
    results: list[dict[str, object]] = []
    for spec in scenario.renewable:
        kind: Kind = spec.kind.value
        power = weather.available_block_mw(spec.name, start, n_truth)
        key = MEASURED_KEY[kind]
        measured = np.array(
            [weather.measurement(spec.name, float(t))[key] for t in t_truth[:n_obs]]
        )
        plant = PlantSpec(
            f"{scenario.name}/{spec.name}",
            kind,
            spec.capacity_mw,
            scenario.latitude_deg,
            scenario.longitude_deg,
            scenario.altitude_m,
        )
        observations = Series(t_truth[:n_obs], power[:n_obs], measured)
        truth = Series(t_truth, power)
        result = rolling_origin(plant, observations, forecasts, truth, issues, step_s)
        results.append({**result, "seed": seed, "days": days})
    return results


def evaluate_csv(
    path: str | Path,
    kind: Kind,
    capacity_mw: float,
    lat: float,
    lon: float,
    *,
    altitude_m: float = 0.0,
) -> dict[str, object]:
    """Rolling-origin evaluation on a measured series (no weather forecast: nowcast and
    climatology only).  Bad rows are skipped and listed under ``bad_rows``."""
    text = Path(path).read_text(encoding="utf-8-sig")
    data = read_csv_series(text.splitlines(), kind)
    if data.times_s.size < 2:
        raise ValueError(f"{path}: fewer than two usable rows")
    spacing = float(np.median(np.diff(data.times_s)))
    step_s = max(900.0, spacing)
    first, last = float(data.times_s[0]), float(data.times_s[-1])
    issue_every = max(HOUR_S, spacing)
    issues = np.arange(first + WARM_UP_DAYS * DAY_S, last - step_s + 1.0, issue_every)
    if issues.size == 0:
        raise ValueError(f"{path}: the series must span more than {WARM_UP_DAYS:g} days")
    plant = PlantSpec(str(path), kind, capacity_mw, lat, lon, altitude_m)
    series = Series(data.times_s, data.power_mw, data.measurement)
    result = rolling_origin(plant, series, [], series, issues, step_s)
    return {
        **result,
        "rows": data.rows,
        "bad_rows": [{"line": b.line, "reason": b.reason} for b in data.bad_rows],
        "gaps": [{"line": g.line, "hours": round(g.hours, 3)} for g in data.gaps],
    }


def format_table(results: list[dict[str, object]]) -> str:
    """A plain-text skill table: one block per source, one row per lead bucket."""
    lines = []
    header = (
        f"{'bucket':<7} {'nMAE':>6} {'nRMSE':>6} {'pers':>6} {'smart':>6} {'clim':>6}"
        f" {'skill_p':>7} {'skill_sp':>8} {'skill_cl':>8} {'pinball':>7} {'cov80':>6}"
    )
    for r in results:
        lines.append(f"{r['source']} ({r['kind']}, {r['capacity_mw']:g} MW, {r['issues']} issues)")
        lines.append(header)
        buckets = r["buckets"]
        assert isinstance(buckets, dict)
        for name in BUCKETS_H:
            b = buckets[name]
            lines.append(
                f"{name:<7} {_f(b['model']['nmae'])} {_f(b['model']['nrmse'])}"
                f" {_f(b['persistence']['nrmse'])} {_f(b['smart_persistence']['nrmse'])}"
                f" {_f(b['climatology']['nrmse'])} {_f(b['skill_vs_persistence'], 7)}"
                f" {_f(b['skill_vs_smart_persistence'], 8)} {_f(b['skill_vs_climatology'], 8)}"
                f" {_f(b['pinball'], 7)} {_f(b['coverage_p10_p90'])}"
            )
        lines.append("")
    lines.append("nRMSE columns: model, persistence, smart persistence, climatology (÷ capacity);")
    lines.append("skill = 1 − RMSE/RMSE_ref; cov80 = share of truth inside P10–P90 (aim 0.8).")
    return "\n".join(lines)


def main_forecast_eval(args: argparse.Namespace) -> int:
    """``smelter-ems forecast-eval``: fields scenario, days, seed, json, data, kind,
    capacity_mw, lat, lon (argparse names).  Returns the exit code."""
    try:
        if args.data:
            if not args.kind or args.capacity_mw is None:
                print("forecast-eval --data needs --kind and --capacity-mw", file=sys.stderr)
                return 2
            lat = 0.0 if args.lat is None else args.lat
            lon = 0.0 if args.lon is None else args.lon
            if args.kind == "pv" and (args.lat is None or args.lon is None):
                print("forecast-eval --data with --kind pv needs --lat and --lon", file=sys.stderr)
                return 2
            results = [evaluate_csv(args.data, args.kind, args.capacity_mw, lat, lon)]
        else:
            names = builtin_names() if args.scenario in (None, "all") else [args.scenario]
            results = [r for n in names for r in evaluate_scenario(n, args.days, args.seed)]
    except (OSError, ValueError) as exc:
        print(f"forecast-eval: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(results[0] if args.data else results, indent=2))
    else:
        print(format_table(results))
        for r in results:
            bad = r.get("bad_rows")
            if isinstance(bad, list) and bad:
                shown = ", ".join(f"line {b['line']}: {b['reason']}" for b in bad[:10])
                print(f"{len(bad)} bad rows skipped ({shown}{', ...' if len(bad) > 10 else ''})")
    return 0


def to_weather_input(f: WeatherForecast) -> WeatherInput:
    """The wire contract's weather forecast as the forecasters take it."""

    def arr(values: list[float] | None) -> Array | None:
        return None if values is None else np.asarray(values, dtype=np.float64)

    return WeatherInput(
        issued_s=f.issued_ts,
        times_s=np.asarray(f.times, dtype=np.float64),
        ghi_wm2=arr(f.ghi_wm2),
        wind_speed_ms=arr(f.wind_speed_ms),
        flow_m3s=arr(f.flow_m3s),
    )


def _f(x: object, width: int = 6) -> str:
    if isinstance(x, float) and math.isfinite(x):
        return f"{x:>{width}.3f}"
    return f"{'—':>{width}}"
