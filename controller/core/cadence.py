"""When to plan: every cycle on the grid of plant time, and early on an event.

The first plan comes once every line has been heard from (or a minute of plant time after the
first telemetry).  Then one plan per cycle at xx:00, xx:15, ... of plant time, whatever early
plans came between; an early re-plan (an asset lost or back, a forecast miss, telemetry back
after a silence, a clock jump) comes at once, but at least :data:`MIN_REPLAN_FRAC` of a cycle
after the previous plan.
"""

from __future__ import annotations

import math
from typing import Final

MIN_REPLAN_FRAC: Final = 0.25
"""Early re-plans are at least this share of a cycle apart."""
FIRST_PLAN_WAIT_S: Final = 60.0
"""The first plan waits this long (plant time) for every line to be heard from."""
SCHEDULED: Final = ("cycle", "first plan")


class PlanCadence:
    """Decides when the next plan is due, and why."""

    def __init__(self, cycle_s: float) -> None:
        self.cycle_s = cycle_s
        self.next_plan_s: float | None = None
        """Plant time of the next cycle's plan (None before the first plan)."""
        self._why = ""
        self._last_job_s: float | None = None

    def request(self, why: str) -> None:
        """Ask for an early re-plan (the first reason waiting is kept)."""
        if not self._why and self.next_plan_s is not None:
            self._why = why

    def restart_at(self, ts: float, why: str) -> None:
        """After a clock jump: a plan at once, and cycles on the new time base."""
        self.next_plan_s = ts
        self._last_job_s = None
        self._why = ""
        self.request(why)

    def due(self, now_s: float, *, ready: bool) -> str | None:
        """Why a plan is due at plant time ``now_s`` (None: not yet); taking it schedules the
        next cycle.  ``ready``: enough has been heard for the first plan."""
        if not self._why:
            if self.next_plan_s is None:
                if not ready:
                    return None
                self._why = "first plan"
            elif now_s >= self.next_plan_s:
                self._why = "cycle"
            else:
                return None
        if (
            self._last_job_s is not None
            and self._why not in SCHEDULED
            and now_s - self._last_job_s < MIN_REPLAN_FRAC * self.cycle_s
        ):
            return None
        why, self._why = self._why, ""
        self._last_job_s = now_s
        # cycles on the grid of plant time (xx:00, xx:15, ...), whatever early plans came between
        self.next_plan_s = (math.floor(now_s / self.cycle_s) + 1) * self.cycle_s
        return why
