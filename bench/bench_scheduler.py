"""Scheduler solve time over a receding sequence: cold (main's scipy path, a fresh HiGHS
model) against warm starts (one HiGHS model per planner, issue #16), in the same process.

Each case is one, four or six pot-lines with BESS and captive unit, grid-connected.  A
sequence of ``--repeats`` plans moves forward one step per plan with new data each time, as in
the daemon: the state follows the previous plan's first step (line currents, BESS SOC, captive
output, production), and the forecast is the truth times a fresh error that grows with lead
time (seeded).  The sequence is made once, by cold solves, and every solver then solves
the same inputs:

- ``scipy-milp``: build the LP and solve it with ``scipy.optimize.milp`` (HiGHS bundled in
  scipy), as the planner did before issue #16: the baseline;
- ``highs-cold``: a fresh highspy model for every plan (``HighsModel(warm=False)``: dual
  simplex with presolve, the IPM from 20,000 nonzeros);
- ``highs-warm``: one ``HighsModel`` over the sequence, each solve from the last basis as it
  is (or cold by the IPM, on a large LP where the warm simplex gained little);
  ``highs-warm-shifted``: from the last basis shifted by one step.  The first plan of
  either is necessarily cold: it is left out of median/p95 and given as
  ``first_ms``; ``cold_solves`` counts the plans that could not be warm-started
  (structure changed: another number of local midnights in the horizon).

Times are the planner's ``solve_ms`` (build + solve; the extraction of the plan after it is
not counted, for the scipy baseline neither).  Targets (issue #16):
1 line 48 h @ 15 min ≤ 10 ms; 4 lines 48 h @ 5 min ≤ 1 s; 6 lines 48 h @ 15 min ≤ 500 ms.

    .venv/bin/python bench/bench_scheduler.py [--repeats 9] [--lines 1,4,6]
        [--cases 24x15,48x15,48x5] [--solvers scipy-milp,highs-cold,highs-warm]
        [--grid uniform,far] [--json]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, replace

import numpy as np
from scipy import optimize

from controller.planner.highs import HighsModel
from controller.planner.model import Axis, build
from controller.planner.scheduler import fit_forecast, solve
from controller.planner.types import LineState, PlannerConfig, PlantState, Schedule
from controller.site import BessModel, CaptiveModel, GridModel, LineModel, SiteModel
from forecasting.types import QuantileForecast

T0 = 1_780_272_000.0 + 5 * 3600.0
FAR_STEP_MIN = 60.0
SOLVERS = ("scipy-milp", "highs-cold", "highs-warm", "highs-warm-shifted")


def site_for(lines: int) -> SiteModel:
    return SiteModel(
        "bench",
        tuple(LineModel(f"L{i + 1}") for i in range(lines)),
        bess=(BessModel("b1"),),
        captive=(CaptiveModel("c1", min_mw=270.0, max_mw=600.0, ramp_mw_per_h=540.0),),
        grid=GridModel(3000.0, 100.0, 0.6),
        auxiliary_load_mw=40.0,
    )


def truth_mw(lines: int, t_s: np.ndarray) -> np.ndarray:
    hours = (t_s - T0) / 3600.0
    day = np.clip(np.sin((hours - 1.0) / 24.0 * 2 * np.pi), 0, None)
    gusts = 0.15 * np.sin(hours * 1.7) + 0.1 * np.sin(hours * 0.45 + 1.0)
    return np.asarray(lines * (250.0 + 250.0 * day) * (1.0 + gusts), dtype=float)


def forecast_at(
    lines: int, t_s: float, cfg: PlannerConfig, rng: np.random.Generator
) -> QuantileForecast:
    t = t_s + np.arange(cfg.steps) * cfg.step_min * 60.0
    lead_h = (t - t_s) / 3600.0
    p50 = truth_mw(lines, t) * (1.0 + rng.normal(0.0, 0.02 + 0.004 * lead_h, t.size))
    p50 = np.maximum(p50, 0.0)
    spread = 0.1 + 0.01 * lead_h
    return QuantileForecast(t, p50 * (1.0 - spread), p50, p50 * (1.0 + spread))


def next_state(site: SiteModel, state: PlantState, plan: Schedule) -> PlantState:
    """The plant after one step of ``plan``: its first setpoints held (a perfect plant)."""
    lines = {}
    for ln in site.lines:
        i = float(plan.line_current_ka[ln.name][0])
        ls = state.lines[ln.name]
        lines[ln.name] = replace(
            ls,
            current_ka=i,
            heat_budget_mwh=float(plan.heat_budget_mwh[ln.name][0]),
            produced_today_t=ls.produced_today_t + float(plan.production_t[ln.name][0]),
        )
    return PlantState(
        state.t_s + plan.step_s,
        lines,
        {b: float(s[0]) for b, s in plan.bess_soc_frac.items()},
        {c: float(p[0]) for c, p in plan.captive_mw.items()},
    )


def sequence(
    lines: int, cfg: PlannerConfig, repeats: int
) -> list[tuple[PlantState, QuantileForecast]]:
    """The receding sequence of (state, forecast), made once (by cold solves)."""
    site = site_for(lines)
    rng = np.random.default_rng(16)
    state = PlantState(
        T0,
        {ln.name: LineState(400.0, produced_today_t=ln.daily_target_t / 5) for ln in site.lines},
        {"b1": 0.5},
        {"c1": 300.0},
    )
    out = []
    for _ in range(repeats):
        fc = forecast_at(lines, state.t_s, cfg, rng)
        out.append((state, fc))
        state = next_state(site, state, solve(site, state, fc, cfg))
    return out


def scipy_solve(
    site: SiteModel, state: PlantState, fc: QuantileForecast, cfg: PlannerConfig
) -> tuple[float, str]:
    """The planner's solve before issue #16: build, then scipy's milp (no integers: an LP)."""
    t = time.perf_counter()
    axis = Axis.for_config(state.t_s, cfg, site.utc_offset_h)
    lp, _ = build(site, state, fit_forecast(fc, axis), cfg, axis, None)
    a, row_lo, row_hi = lp.matrix()
    lo, hi = lp.bounds()
    res = optimize.milp(
        lp.cost_vector(),
        constraints=optimize.LinearConstraint(a, row_lo, row_hi),
        bounds=optimize.Bounds(lo, hi),
        options={"time_limit": cfg.time_limit_s, "presolve": True},
    )
    status = {0: "optimal", 1: "time_limit_with_solution"}.get(res.status, "fallback")
    return (time.perf_counter() - t) * 1e3, status


@dataclass
class Figures:
    times_ms: list[float]
    status: set[str]
    first_ms: float | None = None
    cold_solves: int = 0


def run(
    solver: str, lines: int, cfg: PlannerConfig, seq: list[tuple[PlantState, QuantileForecast]]
) -> Figures:
    site = site_for(lines)
    fig = Figures([], set())
    warm = solver.startswith("highs-warm")
    model = HighsModel(warm=warm, shift=solver == "highs-warm-shifted")
    for k, (state, fc) in enumerate(seq):
        if solver == "scipy-milp":
            ms, status = scipy_solve(site, state, fc, cfg)
            fig.times_ms.append(ms)
            fig.status.add(status)
            continue
        before = model.warm_solves
        plan = solve(site, state, fc, cfg, model=model if warm else None)
        fig.status.add(plan.status.value)
        if warm and k == 0:
            fig.first_ms = plan.solve_ms
            continue
        if warm and model.warm_solves == before:
            fig.cold_solves += 1
        fig.times_ms.append(plan.solve_ms)
    return fig


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--lines", default="1,4,6")
    ap.add_argument("--cases", default="24x15,48x15,48x5")
    ap.add_argument("--solvers", default=",".join(SOLVERS))
    ap.add_argument("--grid", default="uniform")
    ap.add_argument("--json", action="store_true", help="one JSON object per case and solver")
    args = ap.parse_args()
    if not args.json:
        print(
            f"{'case':<34}{'solver':<12}{'steps':>6}{'median ms':>11}{'p95 ms':>9}"
            f"{'first ms':>10}{'cold':>5}{'  ×scipy':>9}  status"
        )
    for lines in (int(v) for v in args.lines.split(",")):
        for horizon_h, step_min in (tuple(map(float, c.split("x"))) for c in args.cases.split(",")):
            for grid in args.grid.split(","):
                cfg = PlannerConfig(horizon_h=horizon_h, step_min=step_min)
                if grid == "far":
                    cfg = replace(cfg, far_step_min=FAR_STEP_MIN)
                seq = sequence(lines, cfg, args.repeats)
                n = Axis.for_config(T0, cfg, site_for(lines).utc_offset_h).n
                baseline = None
                for solver in args.solvers.split(","):
                    fig = run(solver, lines, cfg, seq)
                    median = float(np.median(fig.times_ms))
                    baseline = median if solver == "scipy-milp" else baseline
                    row = {
                        "lines": lines,
                        "horizon_h": horizon_h,
                        "step_min": step_min,
                        "grid": grid,
                        "solver": solver,
                        "median_ms": round(median, 2),
                        "p95_ms": round(float(np.percentile(fig.times_ms, 95)), 2),
                        "status": ",".join(sorted(fig.status)),
                        "solves": len(fig.times_ms),
                        "first_ms": None if fig.first_ms is None else round(fig.first_ms, 2),
                        "cold_solves": fig.cold_solves,
                        "speedup_vs_scipy": None
                        if baseline is None
                        else round(baseline / median, 2),
                    }
                    if args.json:
                        print(json.dumps(row), flush=True)
                        continue
                    name = f"{lines} line(s), {horizon_h:g} h @ {step_min:g} min {grid}"
                    first = "" if fig.first_ms is None else f"{fig.first_ms:.1f}"
                    ratio = "" if baseline is None else f"{baseline / median:.1f}×"
                    print(
                        f"{name:<34}{solver:<12}{n:>6}{median:>11.1f}{row['p95_ms']:>9.1f}"
                        f"{first:>10}{fig.cold_solves:>5}{ratio:>9}  {row['status']}",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
