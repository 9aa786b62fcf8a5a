"""The plan in force, and the record of plans: how many, how many fell back, how long they took.

A solve that takes more than :data:`SLOW_SOLVE_FRAC` of the solver's time limit is warned
about once (the next, a little harder, may end in the fallback plan), and once more when
solves are fast again.
"""

from __future__ import annotations

import logging
from typing import Final

from controller.planner.types import Schedule, SolveStatus

log = logging.getLogger(__name__)

SLOW_SOLVE_FRAC: Final = 0.5


class PlanBook:
    def __init__(self, time_limit_s: float) -> None:
        self.time_limit_s = time_limit_s
        self.plan: Schedule | None = None
        self.made = 0
        self.fallbacks = 0
        self.last_solve_ms = 0.0
        self.failure = ""
        """Why there is no plan at all (not even the fallback plan), or ""."""
        self._slow = False

    def take(self, schedule: Schedule) -> None:
        """A finished plan (optimal, best within the time limit, or the fallback plan)."""
        self.plan = schedule
        self.failure = ""
        self.made += 1
        self.last_solve_ms = schedule.solve_ms
        self._watch(schedule.solve_ms)
        if schedule.status == SolveStatus.FALLBACK:
            self.fallbacks += 1
            log.warning("planner fell back to the safe plan: %s", schedule.reason)

    def failed(self, reason: str) -> None:
        """No plan at all: the plan in force is dropped."""
        self.plan = None
        self.fallbacks += 1
        self.failure = reason

    def _watch(self, solve_ms: float) -> None:
        limit_s = self.time_limit_s
        slow = solve_ms > SLOW_SOLVE_FRAC * limit_s * 1e3
        if slow and not self._slow:
            log.warning(
                "planning took %.1f s of the solver's %g s time limit; past it the plan is the "
                "safe fallback. Set [planner] far_step_min = 60, or shorten horizon_h or "
                "lengthen step_min (docs/scheduler.md, Solve time)",
                solve_ms / 1e3,
                limit_s,
            )
        elif not slow and self._slow:
            log.info("planning back within %g s of the time limit", SLOW_SOLVE_FRAC * limit_s)
        self._slow = slow
