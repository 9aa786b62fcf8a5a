"""The speed-up of a sweep on 2 Dask workers over 1, on this machine.

    .venv/bin/python bench/bench_sweep.py [--scenario NAME] [--seeds 1-4] [--days 0.5]

Runs the same grid (scenario x seeds x mpc, oracle) on a local cluster of 1 worker, then of 2,
in this process, and prints the wall time of each (cluster start-up apart), the cells per
minute and the speed-up.  The rows of both runs are compared: a sweep is deterministic by seed,
whatever the number of workers.
"""

from __future__ import annotations

import argparse
import os
import time

from controller.planner.types import PlannerConfig
from harness.backtest import TIMING_KEYS
from harness.sweep.engine import connect, make_cells, run_cells
from harness.sweep.grid import parse_seeds, settings
from simulator.scenario import load_scenario


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario", default="inner-mongolia-wind")
    ap.add_argument("--seeds", default="1-4")
    ap.add_argument("--days", type=float, default=0.5)
    args = ap.parse_args()
    scenario = load_scenario(args.scenario)
    cells = make_cells(
        [scenario],
        parse_seeds(args.seeds),
        ["mpc", "oracle"],
        args.days,
        settings([]),
        PlannerConfig(),
    )
    grid = f"{args.scenario}, seeds {args.seeds}, {args.days:g} days, mpc+oracle"
    print(f"{len(cells)} cells: {grid}")
    print(f"CPUs: {os.cpu_count()}")
    walls: dict[int, float] = {}
    rows_by: dict[int, list[dict[str, object]]] = {}
    for workers in (1, 2):
        t0 = time.perf_counter()
        with connect(workers=workers) as client:
            up_s = time.perf_counter() - t0
            t1 = time.perf_counter()
            rows_by[workers] = run_cells(client, cells)
            walls[workers] = time.perf_counter() - t1
        rate = 60.0 * len(cells) / walls[workers]
        print(
            f"{workers} worker(s): {walls[workers]:6.1f} s ({rate:4.1f} cells/min), "
            f"cluster start {up_s:4.1f} s"
        )
    print(f"speed-up of 2 workers over 1: {walls[1] / walls[2]:.2f}x")
    same = all(
        {k: v for k, v in a.items() if k not in TIMING_KEYS}
        == {k: v for k, v in b.items() if k not in TIMING_KEYS}
        for a, b in zip(rows_by[1], rows_by[2], strict=True)
    )
    print(f"rows identical (timings aside): {same}")


if __name__ == "__main__":
    main()
