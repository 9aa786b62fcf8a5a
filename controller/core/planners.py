"""The product's planner behind the core's :class:`~controller.core.ports.Planner` protocol,
and the safe plan every shell falls back on."""

from __future__ import annotations

from dataclasses import dataclass, field

from controller.core.ports import PlanJob
from controller.planner import scheduler
from controller.planner.highs import HighsModel
from controller.planner.types import Schedule
from wire import Source


@dataclass(frozen=True)
class MpcPlanner:
    """The product: the receding-horizon LP (:func:`controller.planner.scheduler.solve`), on
    one HiGHS model warm-started from each plan to the next."""

    name: str = "mpc"
    source: Source = Source.MPC
    uses_forecast: bool = True
    model: HighsModel = field(default_factory=HighsModel, compare=False, repr=False)

    def plan(self, job: PlanJob) -> Schedule:
        return scheduler.solve(job.site, job.state, job.forecast, job.config, model=self.model)


def fallback_plan(job: PlanJob, reason: str) -> Schedule:
    """The safe plan for ``job`` (nominal current, BESS idle, captive unit holding): what a
    shell falls back on when a planner fails or overruns its deadline."""
    return scheduler.fallback(job.site, job.state, job.forecast, job.config, reason)
