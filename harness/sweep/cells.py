"""One cell of a sweep: a backtest of (scenario, seed, strategy, setting), and its row.

:func:`run_cell` is what a Dask worker runs.  It takes everything the backtest needs in the
cell itself (the scenario with its setting applied, not a file name), so a worker on another
machine needs the package and nothing else, and it never raises: a failed backtest comes back
as a row with its error, and the rest of the sweep goes on.
"""

from __future__ import annotations

import json
import traceback
from dataclasses import dataclass
from typing import Any

from controller.planner.types import PlannerConfig
from harness.backtest import quiet_logs, run_backtest
from harness.sweep.grid import Setting
from simulator.scenario import Scenario


@dataclass(frozen=True)
class Cell:
    scenario: Scenario
    """With the setting's ``site.`` keys applied."""
    seed: int
    strategy: str
    days: float
    setting: Setting
    planner: PlannerConfig
    """With the setting's ``planner.`` keys applied."""
    index: int = 0
    """Its place in the grid: rows are written in this order, whatever order they finish in."""

    @property
    def key(self) -> tuple[str, str, int, str]:
        return (self.scenario.name, self.setting.label, self.seed, self.strategy)


def run_cell(cell: Cell) -> dict[str, Any]:
    """The cell's row: its coordinates, the setting's values and every KPI of the backtest,
    or its ``error``."""
    row = identity(cell)
    try:
        with quiet_logs():
            result = run_backtest(
                cell.scenario, cell.strategy, days=cell.days, seed=cell.seed, planner=cell.planner
            )
    except Exception as exc:  # reported in the row; the sweep goes on
        row["error"] = f"{type(exc).__name__}: {exc}"
        row["traceback"] = traceback.format_exc(limit=8)
        return row
    return row | flatten(result.kpis)


def identity(cell: Cell) -> dict[str, Any]:
    row: dict[str, Any] = {
        "index": cell.index,
        "scenario": cell.scenario.name,
        "setting": cell.setting.label,
        "seed": cell.seed,
        "strategy": cell.strategy,
        "days": cell.days,
        "error": None,
    }
    for key, value in cell.setting.pairs:
        row[key] = value
    return row


def flatten(kpis: dict[str, object]) -> dict[str, Any]:
    """Scalars stay columns; the per-kind counts (``plans``, ``alarms``, ``safety_events`` ...)
    become one JSON text each, so every row has the same columns."""
    return {
        key: json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else value
        for key, value in kpis.items()
    }
