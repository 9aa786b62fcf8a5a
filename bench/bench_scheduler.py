"""Scheduler solve time: median and p95 over repeated solves, for the horizons of issue #3.

One and four pot-lines, with BESS and captive unit, grid-connected; a varying renewable
forecast with P10/P90.  Each horizon runs on the uniform grid and on the non-uniform one
(``step_min`` for the first 6 h, 1 h beyond: ``PlannerConfig.far_step_min = 60``).  Also
prints how much of a solve is building the model (same process), so a regression can be
placed.  Goal: median ≤ 50 ms for 48 h @ 15 min with one line.

On a shared virtual machine the same solve can take 1× or 2× (seen on the project machine:
runs of ~52 ms and ~107 ms alternating); ``min ms`` is then the code's figure and the median
tells how the machine was.

    .venv/bin/python bench/bench_scheduler.py [--repeats 15] [--lines 1,4] [--grid uniform,far]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np

from controller.planner.model import Axis, build
from controller.planner.scheduler import fit_forecast, solve
from controller.planner.types import LineState, PlannerConfig, PlantState
from controller.site import BessModel, CaptiveModel, GridModel, LineModel, SiteModel
from forecasting.types import QuantileForecast

T0 = 1_780_272_000.0
FAR_STEP_MIN = 60.0


def case(
    lines: int, horizon_h: float, step_min: float
) -> tuple[SiteModel, PlantState, QuantileForecast, PlannerConfig]:
    site = SiteModel(
        "bench",
        tuple(LineModel(f"L{i + 1}") for i in range(lines)),
        bess=(BessModel("b1"),),
        captive=(CaptiveModel("c1", min_mw=270.0, max_mw=600.0, ramp_mw_per_h=540.0),),
        grid=GridModel(3000.0, 100.0, 0.6),
        auxiliary_load_mw=40.0,
    )
    state = PlantState(
        T0,
        {ln.name: LineState(400.0, produced_today_t=ln.daily_target_t / 3) for ln in site.lines},
        {"b1": 0.5},
        {"c1": 300.0},
    )
    cfg = PlannerConfig(horizon_h=horizon_h, step_min=step_min)
    t = T0 + np.arange(cfg.steps) * step_min * 60.0
    hours = (t - T0) / 3600.0
    p50 = lines * (250.0 + 250.0 * np.clip(np.sin((hours - 6.0) / 24.0 * 2 * np.pi), 0, None))
    return site, state, QuantileForecast(t, 0.7 * p50, p50, 1.3 * p50), cfg


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--lines", default="1,4")
    ap.add_argument("--grid", default="uniform,far")
    args = ap.parse_args()
    print(
        f"{'case':<40}{'steps':>6}{'vars':>7}{'rows':>7}{'build ms':>10}{'median ms':>11}"
        f"{'p95 ms':>9}{'min ms':>9}  status"
    )
    for lines in (int(v) for v in args.lines.split(",")):
        for horizon_h, step_min in ((24, 15), (48, 15), (48, 5)):
            for grid in args.grid.split(","):
                site, state, fc, cfg = case(lines, horizon_h, step_min)
                if grid == "far":
                    cfg = replace(cfg, far_step_min=FAR_STEP_MIN)
                axis = Axis.for_config(T0, cfg, site.utc_offset_h)
                builds, times, status = [], [], set()
                for _ in range(args.repeats):
                    t = time.perf_counter()
                    lp, _ = build(site, state, fit_forecast(fc, axis), cfg, axis, None)
                    lp.matrix()
                    builds.append((time.perf_counter() - t) * 1e3)
                    s = solve(site, state, fc, cfg)
                    times.append(s.solve_ms)
                    status.add(s.status.value)
                name = f"{lines} line(s), {horizon_h} h @ {step_min:g} min"
                if grid == "far":
                    name += f", {FAR_STEP_MIN:g} min > 6 h"
                print(
                    f"{name:<40}{axis.n:>6}{lp.n_vars:>7}{lp.n_rows:>7}"
                    f"{np.median(builds):>10.1f}{np.median(times):>11.1f}"
                    f"{np.percentile(times, 95):>9.1f}{np.min(times):>9.1f}"
                    f"  {','.join(sorted(status))}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
