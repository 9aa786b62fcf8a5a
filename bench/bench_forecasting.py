"""Forecasting speed: the time to forecast every renewable plant of a site, 48 h at 15 min.

Each plant's forecaster is warmed up on three days of simulated 1-minute observations and the
6-hourly weather forecasts, then timed over a day of hourly issues, two ways:

* "with learning": an hour of new observations arrived since the last forecast, so the call
  also refits the plant response and learns from that hour's hindcasts (the daemon's case);
* "forecast only": nothing new since the last call.

Goal (issue #4): ≤ 20 ms for all plants of a site.  With ``--measured`` it also runs the
rolling-origin evaluation on a measured series shipped with pvlib (see docs/forecasting.md).

    .venv/bin/python bench/bench_forecasting.py [--scenario NAME] [--measured]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pvlib

from forecasting.plant import PlantForecaster
from forecasting.types import Kind
from harness.forecast_eval import evaluate_csv, format_table, to_weather_input
from simulator.scenario import builtin_names, load_scenario
from simulator.weather import SiteWeather

DAY_S = 86_400.0
HOUR_S = 3600.0
STEPS = 192
STEP_S = 900.0


def bench_site(name: str) -> tuple[float, float, float, float]:
    """Median and p95 [ms] of forecasting all plants, with and without new observations."""
    sc = load_scenario(name)
    weather = SiteWeather(sc, seed=1, step_s=60.0)
    plants: dict[str, tuple[PlantForecaster, str]] = {}
    for spec in sc.renewable:
        kind: Kind = spec.kind.value
        f = PlantForecaster(
            kind,
            spec.capacity_mw,
            latitude_deg=sc.latitude_deg,
            longitude_deg=sc.longitude_deg,
            altitude_m=sc.altitude_m,
        )
        plants[spec.name] = (f, kind)
    fed_until = sc.start

    def feed(until_s: float) -> None:
        nonlocal fed_until
        n = round((until_s - fed_until) / 60.0)
        for name_, (f, _) in plants.items():
            power = weather.available_block_mw(name_, fed_until, n)
            for i in range(n):
                t = fed_until + 60.0 * i
                f.observe(t, float(power[i]), next(iter(weather.measurement(name_, t).values())))
        for issued in np.arange(fed_until, until_s, 6 * HOUR_S):
            if (issued - sc.start) % (6 * HOUR_S) == 0:
                w = to_weather_input(weather.forecast(float(issued)))
                for f, _ in plants.values():
                    f.observe_weather(w)
        fed_until = until_s

    feed(sc.start + 3 * DAY_S)
    learning: list[float] = []
    only: list[float] = []
    for hour in range(24):
        issue = sc.start + 3 * DAY_S + hour * HOUR_S
        feed(issue)
        times = (np.floor(issue / STEP_S) + 1 + np.arange(STEPS)) * STEP_S
        for bucket in (learning, only):
            t0 = time.perf_counter()
            for f, _ in plants.values():
                f.forecast(issue, times)
            bucket.append((time.perf_counter() - t0) * 1e3)
    return (
        statistics.median(learning),
        float(np.percentile(learning, 95)),
        statistics.median(only),
        float(np.percentile(only, 95)),
    )


def measured() -> None:
    """Rolling-origin evaluation on pvlib's TMY3 file for Greensboro, NC (USAF 723170)."""
    path = Path(pvlib.__file__).parent / "data" / "723170TYA.CSV"
    data, meta = pvlib.iotools.read_tmy3(str(path), coerce_year=2005, map_variables=True)
    capacity_mw = 100.0
    with tempfile.TemporaryDirectory() as tmp:
        cases: tuple[tuple[Kind, str], ...] = (("pv", "ghi"), ("wind", "wind_speed"))
        for kind, column in cases:
            csv = Path(tmp) / f"{kind}.csv"
            rows = ["timestamp,power_mw," + ("ghi_wm2" if kind == "pv" else "wind_speed_ms")]
            # a "plant" that is the measurement scaled: GHI/1000 W/m² of 100 MW; wind speed
            # through a generic cubic curve (cut-in 3, rated 12 m/s)
            for ts, value in zip(data.index, data[column], strict=True):
                if kind == "pv":
                    power = min(capacity_mw * value / 1000.0, capacity_mw)
                else:
                    frac = (value**3 - 27.0) / (12.0**3 - 27.0) if value >= 3.0 else 0.0
                    power = capacity_mw * min(max(frac, 0.0), 1.0)
                rows.append(f"{ts.isoformat()},{power:.4f},{value}")
            csv.write_text("\n".join(rows) + "\n", encoding="utf-8")
            result = evaluate_csv(csv, kind, capacity_mw, meta["latitude"], meta["longitude"])
            result["source"] = f"pvlib TMY3 723170 ({column})"
            print(format_table([result]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", default="all")
    parser.add_argument("--measured", action="store_true")
    args = parser.parse_args()
    names = builtin_names() if args.scenario == "all" else [args.scenario]
    print(f"{'scenario':<22} {'plants':>6} {'learn p50':>10} {'p95':>7} {'only p50':>9} {'p95':>7}")
    for name in names:
        p50_l, p95_l, p50_o, p95_o = bench_site(name)
        n = len(load_scenario(name).renewable)
        print(f"{name:<22} {n:>6} {p50_l:>8.2f}ms {p95_l:>5.2f}ms {p50_o:>7.2f}ms {p95_o:>5.2f}ms")
    if args.measured:
        measured()


if __name__ == "__main__":
    main()
