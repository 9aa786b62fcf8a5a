"""Dispatch: targets through the safety layer to setpoint publications, and when to send next.

Setpoints go out when a plan arrives, at each of its step boundaries, on every mode change,
every :data:`RAMP_RESEND_S` while the ramp limit holds one back, and as a heartbeat every
``heartbeat_s`` (well within their ``validity_s``).  In ``auto`` the
targets are the plan's step that contains now, with stale assets sent to their safe values (a
captive unit is left alone: it holds); a plan that has run out gives safe values, not its last
step.  Every value passes the :class:`~controller.safety.SafetyLayer` (hard and ramp limits).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Mapping
from typing import Final

from controller.core.ports import Publication
from controller.planner.types import Schedule, SolveStatus
from controller.safety import Command, Key, SafetyLayer
from wire import Source, encode

log = logging.getLogger(__name__)

RAMP_RESEND_S: Final = 60.0
"""While a setpoint is held back by its ramp limit, the targets are sent again this often
(plant time), so the asset ramps towards its target in small steps instead of waiting for
the next heartbeat."""


class Dispatcher:
    """Sends setpoints through the safety layer and keeps the dispatch clock."""

    def __init__(self, safety: SafetyLayer, *, validity_s: float, heartbeat_s: float) -> None:
        self.safety = safety
        self.validity_s = validity_s
        self.heartbeat_s = heartbeat_s
        self.next_s: float | None = None
        """Plant time of the next dispatch (None: none scheduled)."""
        self.valid_until_s = 0.0
        """When the last setpoints sent expire (the plant then returns to safe defaults)."""
        self.sent = 0
        self.events: Counter[str] = Counter()
        """Safety-layer events by code (clamped, ramp_limited, ...)."""
        self.muted = False
        """A standby controller's dispatcher: it sends nothing and leaves the safety layer's
        references to what is measured."""

    @property
    def applied(self) -> Mapping[Key, float]:
        return self.safety.last_applied

    def plan_targets(
        self, plan: Schedule, now_s: float, stale: set[Key], source: Source
    ) -> tuple[dict[Key, float], Source, str] | None:
        """(targets, source, plan id) of ``plan`` at ``now_s``; None when it has run out.
        ``source`` is the planner's (a fallback plan's setpoints say ``fallback``)."""
        if now_s >= float(plan.times_s[-1]) + _last_step_s(plan):
            return None
        targets = self.safety.from_schedule(plan, now_s)
        for key in stale & self.safety.limits.keys():
            safe = self.safety.limits[key].safe_value
            if safe is None:
                targets.pop(key, None)  # a captive unit holds: send nothing, not a guess
            else:
                targets[key] = safe
        if plan.status == SolveStatus.FALLBACK:
            source = Source.FALLBACK
        return targets, source, plan.plan_id

    def send(
        self,
        targets: Mapping[Key, float],
        now_s: float,
        *,
        source: Source,
        plan_id: str,
        next_step_s: float | None,
    ) -> list[tuple[Command, Publication]]:
        """Check ``targets`` and make their publications; the next dispatch is a heartbeat,
        or ``next_step_s`` (the plan's next step) if that comes first."""
        if self.muted:
            return self._sent([], now_s, next_step_s)
        return self._sent(
            self.safety.dispatch(targets, now_s, source=source, plan_id=plan_id), now_s, next_step_s
        )

    def safe(self, now_s: float, plan_id: str) -> list[tuple[Command, Publication]]:
        """Every asset towards its safe value (captive units hold), within ramp limits."""
        if self.muted:
            return self._sent([], now_s, None)
        return self._sent(self.safety.safe_setpoints(now_s, plan_id=plan_id), now_s, None)

    def due(self, now_s: float) -> bool:
        return self.next_s is not None and now_s >= self.next_s

    def _sent(
        self, commands: list[Command], now_s: float, next_step_s: float | None
    ) -> list[tuple[Command, Publication]]:
        out = [(c, Publication(c[0], encode(c[1]), 1)) for c in commands]
        self.sent += len(commands)
        if commands:
            self.valid_until_s = now_s + self.validity_s
        ramping = False
        for event in self.safety.events:
            self.events[event.code] += 1
            ramping = ramping or event.code == "ramp_limited"
            log.info(
                "safety: %s %s %s (asked %.3f, sent %.3f)",
                event.kind,
                event.asset,
                event.code,
                event.requested,
                event.applied,
            )
        self.safety.events.clear()
        nxt = now_s + (min(RAMP_RESEND_S, self.heartbeat_s) if ramping else self.heartbeat_s)
        if next_step_s is not None and math.isfinite(next_step_s):
            nxt = min(nxt, next_step_s)
        self.next_s = nxt
        return out


def next_step_s(plan: Schedule | None, now_s: float) -> float | None:
    """Start of ``plan``'s first step after ``now_s`` (None: no plan, or none left)."""
    if plan is None:
        return None
    later = plan.times_s[plan.times_s > now_s + 1e-6]
    return float(later[0]) if later.size else None


def _last_step_s(plan: Schedule) -> float:
    if plan.step_lengths_s is not None and len(plan.step_lengths_s):
        return float(plan.step_lengths_s[-1])
    return plan.step_s
