"""Speed of the offline simulator: a 7-day run of a 4-line plant (1,200 pots).

Prints the speed-up over real time (goal ≥ 10,000×) and, as a baseline in the same process, the
pot-line physics alone, so the cost of the site model around it is visible as a ratio.

    .venv/bin/python bench/bench_simulator.py [--days 7] [--step-s 60]
"""

from __future__ import annotations

import argparse
import time

import msgspec
import numpy as np

from simulator.offline import OfflineRun, run_offline
from simulator.potline import PotLine
from simulator.scenario import PotlineSpec, load_scenario


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=float, default=7.0)
    ap.add_argument("--step-s", type=float, default=60.0)
    ap.add_argument("--scenario", default="inner-mongolia-wind")
    args = ap.parse_args()

    base = load_scenario(args.scenario)
    lines = [PotlineSpec(name=f"L{i + 1}") for i in range(4)]
    # twice the load of the built-in site: let the grid carry it, or the plant would shed load
    assert base.grid is not None
    grid = msgspec.structs.replace(base.grid, import_limit_mw=4000.0)
    scenario = msgspec.structs.replace(base, potline=lines, grid=grid)
    sim_s = args.days * 86_400.0
    steps = round(sim_s / args.step_s)

    t0 = time.perf_counter()
    result = run_offline(scenario, OfflineRun(days=args.days, seed=1, step_s=args.step_s))
    full_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    pls = [PotLine(spec, np.random.default_rng(i)) for i, spec in enumerate(lines)]
    for _ in range(steps):
        for line in pls:
            line.step(400.0, args.step_s)
    physics_s = time.perf_counter() - t0

    pots = sum(s.pots for s in lines)
    print(
        f"scenario {args.scenario} with 4 lines, {pots} pots, {args.days:g} days at "
        f"{args.step_s:g} s steps ({steps} steps)"
    )
    print(
        f"  full plant   : {full_s:7.2f} s wall  speed-up {sim_s / full_s:10,.0f}x real time  "
        f"{full_s / steps * 1e6:7.1f} us/step"
    )
    print(
        f"  physics only : {physics_s:7.2f} s wall  speed-up "
        f"{sim_s / physics_s:10,.0f}x real time  {physics_s / steps * 1e6:7.1f} us/step"
    )
    print(f"  site model overhead: {full_s / physics_s:.2f}x the physics alone")
    print(
        f"  (check: frozen_pots={result['frozen_pots']}, "
        f"thermal_violation_min={result['thermal_violation_min']})"
    )


if __name__ == "__main__":
    main()
