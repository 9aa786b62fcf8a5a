"""How far wind and PV output swings within a planning step, in each built-in scenario.

The 1-min available power of the site's wind and PV plants, against its own 15-min mean, as a
share of their capacity (7 days, seed 1).  ``PlannerConfig.variability_margin_frac`` is set
from these figures.

    .venv/bin/python bench/supply_swing.py [--days 7] [--seed 1]
"""

from __future__ import annotations

import argparse

import numpy as np

from simulator.plant import Plant
from simulator.scenario import builtin_names, load_scenario

STEP_MIN = 15


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    print(f"{'scenario':<22}{'wind+PV MW':>11}{'std':>8}{'p99.9':>8}{'max':>8}  (of capacity)")
    for name in builtin_names():
        sc = load_scenario(name)
        plant = Plant(sc, args.seed)
        variable = [r for r in sc.renewable if str(getattr(r.kind, "value", r.kind)) != "hydro"]
        capacity_mw = sum(r.capacity_mw for r in variable)
        n = args.days * 1440
        mw = sum(
            np.asarray(plant.weather.available_block_mw(r.name, plant.now_s, n)) for r in variable
        )
        blocks = np.asarray(mw).reshape(-1, STEP_MIN)
        dev = np.abs(blocks - blocks.mean(axis=1, keepdims=True)).ravel() / capacity_mw
        std = float(np.std(blocks - blocks.mean(axis=1, keepdims=True))) / capacity_mw
        print(
            f"{name:<22}{capacity_mw:>11.0f}{std:>8.4f}{np.quantile(dev, 0.999):>8.4f}"
            f"{dev.max():>8.4f}"
        )


if __name__ == "__main__":
    main()
