"""Headless runs: no controller, every asset at its safe default (or a forced line current)."""

from __future__ import annotations

from dataclasses import dataclass

from simulator.plant import Plant
from simulator.scenario import Scenario


@dataclass(frozen=True)
class OfflineRun:
    """What to run.  ``current_frac`` forces every line to that fraction of its nominal current;
    an outage sets every line to 0 kA from ``outage_start_h`` for ``outage_hours``."""

    days: float
    seed: int = 1
    current_frac: float | None = None
    outage_start_h: float | None = None
    outage_hours: float = 0.0
    step_s: float = 60.0

    def __post_init__(self) -> None:
        if not 0.0 < self.days <= 3660.0:
            raise ValueError(f"days must be in (0, 3660], got {self.days}")
        if self.current_frac is not None and not 0.0 <= self.current_frac <= 1.5:
            raise ValueError(f"current_frac must be in [0, 1.5], got {self.current_frac}")
        if self.outage_hours < 0.0 or (
            self.outage_start_h is not None and self.outage_start_h < 0.0
        ):
            raise ValueError("outage_start_h and outage_hours must not be negative")


def run_offline(scenario: Scenario, run: OfflineRun) -> dict[str, object]:
    """Run the plant headless and return its KPIs (see :meth:`KpiAccumulator.result`)."""
    plant = Plant(scenario, run.seed, step_s=run.step_s)
    steps = round(run.days * 86_400.0 / run.step_s)
    outage = (
        (run.outage_start_h * 3600.0, (run.outage_start_h + run.outage_hours) * 3600.0)
        if run.outage_start_h is not None and run.outage_hours > 0.0
        else None
    )
    for k in range(steps):
        t = k * run.step_s
        for spec in scenario.potline:
            if outage is not None and outage[0] <= t < outage[1]:
                plant.set_line_current(spec.name, 0.0)
            elif run.current_frac is not None:
                plant.set_line_current(spec.name, run.current_frac * spec.nominal_current_ka)
            else:
                plant.clear_line_current(spec.name)
        plant.step()
        plant.drain_alarms()
    result = plant.kpi.result()
    return {"scenario": scenario.name, "seed": run.seed, "days": run.days, **result}
