"""How long a backtest takes, and where the time goes: the plant, the control core, the solver.

    .venv/bin/python bench/bench_backtest.py [--scenario NAME] [--days 2] [--seed 1]

For each strategy it runs ``run_backtest`` and prints the wall time, the time per simulated day,
the solver's share (the sum of the plans' solve times) and the rest (plant physics, the core's
message handling, dispatch), and, as the baseline measured in the same process, a bare plant
run over the same days with no controller and no telemetry at all (``simulate --offline``):
``loop/plant`` is what a run costs, solver aside, against the physics alone.
"""

from __future__ import annotations

import argparse
import time

from harness.backtest import run_backtest
from harness.strategies import STRATEGIES
from simulator.offline import OfflineRun, run_offline
from simulator.scenario import load_scenario


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario", default="inner-mongolia-wind")
    ap.add_argument("--days", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    scenario = load_scenario(args.scenario)
    t0 = time.perf_counter()
    run_offline(scenario, OfflineRun(days=args.days, seed=args.seed))
    plant_s = time.perf_counter() - t0
    print(f"{args.scenario}, {args.days:g} days, seed {args.seed}")
    print(f"{'plant alone':>12}: {plant_s:6.2f} s ({plant_s / args.days:5.2f} s per day)")
    head = ("strategy", "wall s", "s/day", "solver s", "loop s", "loop/plant")
    print("{:>12}  {:>7} {:>6} {:>8} {:>7} {:>10}".format(*head))
    for name in STRATEGIES:
        t0 = time.perf_counter()
        kpis = run_backtest(scenario, name, days=args.days, seed=args.seed).kpis
        wall_s = time.perf_counter() - t0
        solve_s = kpis.get("solve_s")
        solver_s = float(solve_s) if isinstance(solve_s, int | float) else 0.0
        loop_s = wall_s - solver_s
        print(
            f"{name:>12}  {wall_s:7.2f} {wall_s / args.days:6.2f} {solver_s:8.2f} "
            f"{loop_s:7.2f} {loop_s / plant_s:10.2f}"
        )


if __name__ == "__main__":
    main()
