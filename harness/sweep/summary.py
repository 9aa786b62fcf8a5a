"""What a sweep says: per scenario, setting and strategy, how each KPI is spread over the seeds.

The capture ratio of a strategy S on one (scenario, setting, seed) is the backtest's
(S − flat) / (oracle − flat) renewable energy used (docs/kpis.md), so it needs ``flat`` and
``oracle`` among the strategies of the sweep; for ``mpc`` it is the backtest's capture ratio.
"Worst" is the end of the spread an engineer worries about: the lowest capture, the most
thermal-violation minutes, the production error furthest from target (signed), the most shed
energy, the slowest solve.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

import numpy as np

from harness.backtest import capture_ratio

Row = dict[str, Any]

# (column, what it is [unit], worst of the values)
METRICS: Final[tuple[tuple[str, str, Callable[[list[float]], float]], ...]] = (
    ("capture_ratio", "capture ratio [-]", min),
    ("thermal_violation_min", "thermal violation [min]", max),
    ("production_error_pct", "aluminium vs target [%]", lambda v: max(v, key=abs)),
    ("shed_mwh", "shed energy [MWh]", max),
    ("solve_ms_p95", "solve time p95 [ms]", max),
)


def add_derived(rows: Sequence[Row]) -> None:
    """Add ``production_error_pct`` and ``capture_ratio`` to each row that has KPIs."""
    groups: dict[tuple[str, str, int], dict[str, Row]] = {}
    for row in rows:
        if row.get("error") is None:
            target = row.get("aluminium_target_t")
            made = row.get("aluminium_t")
            row["production_error_pct"] = (
                round(100.0 * (made / target - 1.0), 4)
                if isinstance(made, int | float) and isinstance(target, int | float) and target
                else None
            )
            group = groups.setdefault((row["scenario"], row["setting"], row["seed"]), {})
            group[row["strategy"]] = row
    for row in rows:
        group = groups.get((row["scenario"], row["setting"], row["seed"]), {})
        failed = row.get("error") is not None
        row["capture_ratio"] = None if failed else capture_ratio(group, strategy=row["strategy"])


def summarise(rows: Sequence[Row]) -> list[dict[str, Any]]:
    """One entry per (scenario, setting, strategy), in the grid's order: for each metric the
    median, p10, p90, worst and how many seeds gave a value; and the cells that failed."""
    groups: dict[tuple[str, str, str], list[Row]] = {}
    for row in rows:
        groups.setdefault((row["scenario"], row["setting"], row["strategy"]), []).append(row)
    out: list[dict[str, Any]] = []
    for (scenario, setting, strategy), members in groups.items():
        entry: dict[str, Any] = {
            "scenario": scenario,
            "setting": setting,
            "strategy": strategy,
            "cells": len(members),
            "failed": sum(1 for r in members if r.get("error") is not None),
        }
        for column, _, worst in METRICS:
            values = [float(r[column]) for r in members if isinstance(r.get(column), int | float)]
            entry[column] = _spread(values, worst)
        out.append(entry)
    return out


def _spread(values: list[float], worst: Callable[[list[float]], float]) -> dict[str, Any] | None:
    if not values:
        return None
    p10, median, p90 = np.percentile(np.asarray(values), [10.0, 50.0, 90.0])
    return {
        "median": round(float(median), 4),
        "p10": round(float(p10), 4),
        "p90": round(float(p90), 4),
        "worst": round(float(worst(values)), 4),
        "n": len(values),
    }


def format_summary(summary: Sequence[dict[str, Any]]) -> str:
    """A table for the terminal: median [p10, p90] and worst of each metric."""
    head = ["scenario", "setting", "strategy", "failed"] + [m[0] for m in METRICS]
    table = [head]
    for e in summary:
        cells = [e["scenario"], e["setting"], e["strategy"], f"{e['failed']}/{e['cells']}"]
        for column, _, _ in METRICS:
            s = e[column]
            cells.append(
                "-"
                if s is None
                else f"{_g(s['median'])} [{_g(s['p10'])}, {_g(s['p90'])}] worst {_g(s['worst'])}"
            )
        table.append(cells)
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table
    )


def _g(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
