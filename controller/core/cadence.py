"""When to plan: every cycle on the grid of plant time, and early on an event.

The first plan comes once every line has been heard from (or a minute of plant time after the
first telemetry).  Then one plan per cycle at xx:00, xx:15, ... of plant time, whatever early
plans came between; an early re-plan (an asset lost or back, a forecast miss, telemetry back
after a silence, a clock jump) comes at once, but at least :data:`MIN_REPLAN_FRAC` of a cycle
after the previous plan.  A forecast miss is renewable availability off the plan's P50 by
more than ``forecast_miss_frac`` of the site's renewable capacity (:func:`forecast_miss`).
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np

from controller.planner.types import Schedule

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


def forecast_miss(
    plan: Schedule | None, ts: float, available_mw: float, threshold_mw: float
) -> str | None:
    """Why to re-plan early when the renewable availability observed at ``ts`` misses the plan's
    P50 for that time by more than ``threshold_mw``; None when it does not (or there is no
    plan, or no renewable capacity to miss by)."""
    if plan is None or threshold_mw <= 0.0 or plan.forecast.p50_mw.size == 0:
        return None
    k = int(np.searchsorted(plan.times_s, ts, side="right")) - 1
    if not 0 <= k < plan.forecast.p50_mw.size:
        return None
    miss = abs(available_mw - float(plan.forecast.p50_mw[k]))
    if miss <= threshold_mw:
        return None
    return f"renewable availability {miss:.0f} MW off the forecast"
