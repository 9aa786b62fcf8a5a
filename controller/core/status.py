"""The status the controller publishes (retained): its state and every reason for it.

:func:`compose` turns what the other units know into a :class:`ControllerStatus`;
:class:`StatusBoard` keeps transient notices (shown for a while) and decides when the status
is worth publishing again: when it changed, or as a heartbeat.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass

from controller.planner.types import Schedule, SolveStatus
from wire import ControllerState, ControllerStatus, Mode

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Facts:
    """What the status is made of."""

    now_s: float
    silent_for_s: float | None
    """The plant is silent (the wall seconds of silence that made it so), or None."""
    plan: Schedule | None
    plan_failure: str
    stale: Iterable[tuple[str, str, float | None]]
    """(kind, asset, plant seconds since its last telemetry or None if never)."""
    mode: Mode
    standby: str | None = None
    """Why this instance is standby (another is the active controller), or None."""
    conditions: tuple[tuple[str, bool], ...] = ()
    """Lasting conditions the shell reports (reason, whether the plant is not being
    controlled because of it: then the state is ``fallback``)."""
    instance: str = ""
    """The controller instance whose status it is ("" says none)."""


def compose(facts: Facts, notices: Iterable[str]) -> ControllerStatus:
    reasons: list[str] = []
    state = ControllerState.RUNNING
    if facts.silent_for_s is not None:
        reasons.append(
            f"plant silent: no telemetry for over {facts.silent_for_s:g} s (wall clock); "
            "setpoints going to safe values"
        )
        state = ControllerState.FALLBACK
    plan = facts.plan
    if plan is None and facts.plan_failure:
        reasons.append(f"no plan: {facts.plan_failure}; safe setpoints")
        state = ControllerState.FALLBACK
    elif plan is None:
        reasons.append("waiting for the first plan")
        state = ControllerState.STARTING if state == ControllerState.RUNNING else state
    elif plan.status == SolveStatus.FALLBACK:
        reasons.append(f"planner fallback: {plan.reason}")
        state = ControllerState.FALLBACK
    elif plan.status == SolveStatus.TIME_LIMIT:
        reasons.append("solver hit its time limit; its best plan is used")
    for kind, asset, age_s in sorted(facts.stale, key=lambda s: (s[0], s[1])):
        what = "no telemetry yet" if age_s is None else f"no telemetry for {age_s:.0f} s"
        reasons.append(f"{kind} {asset}: {what}, treated as unknown")
    reasons += list(notices)
    for reason, uncontrolled in facts.conditions:
        reasons.append(reason)
        if uncontrolled:
            state = ControllerState.FALLBACK
    if facts.mode != Mode.AUTO and state != ControllerState.FALLBACK:
        reasons.insert(0, f"mode {facts.mode.value} set by the operator")
        state = ControllerState.MANUAL
    if state == ControllerState.RUNNING and reasons:
        state = ControllerState.DEGRADED
    if facts.standby is not None:
        reasons.insert(0, f"standby: {facts.standby}")
        state = ControllerState.STANDBY
    last_plan_ts = float(plan.times_s[0]) if plan is not None else None
    return ControllerStatus(
        ts=facts.now_s,
        state=state,
        reasons=reasons,
        last_plan_ts=last_plan_ts,
        instance=facts.instance,
    )


class StatusBoard:
    """Transient notices, and when to publish the status again."""

    def __init__(self, *, heartbeat_s: float, notice_s: float) -> None:
        self.heartbeat_s = heartbeat_s
        self.notice_s = notice_s
        self._notices: dict[str, float] = {}
        """Reason → plant time until which it shows."""
        self.last: ControllerStatus | None = None
        self.conditions: dict[str, tuple[str, bool]] = {}
        """Name → (reason, uncontrolled): shown until cleared (:meth:`condition`)."""

    def condition(self, name: str, reason: str | None, *, uncontrolled: bool = False) -> None:
        """A lasting condition ``name`` with its ``reason`` for the status, or cleared (None).
        ``uncontrolled``: the plant is not getting setpoints because of it."""
        if reason is None:
            self.conditions.pop(name, None)
        else:
            self.conditions[name] = (reason, uncontrolled)

    def notice(self, reason: str, now_s: float | None, for_s: float | None = None) -> None:
        """Show ``reason`` for ``for_s`` (default: one cycle) from ``now_s`` (None: until the
        first telemetry and a cycle after)."""
        until = math.inf if now_s is None else now_s + (for_s or self.notice_s)
        self._notices[reason] = until

    def notices(self, now_s: float) -> list[str]:
        for reason, until in list(self._notices.items()):
            if until == math.inf:
                self._notices[reason] = now_s + self.notice_s
        return [r for r, until in self._notices.items() if now_s <= until]

    def due(self, status: ControllerStatus) -> bool:
        """Whether ``status`` should be published (it changed, or a heartbeat is due); if so it
        becomes the last one published."""
        last = self.last
        if (
            last is not None
            and status.state == last.state
            and status.reasons == last.reasons
            and status.last_plan_ts == last.last_plan_ts
            and status.ts - last.ts < self.heartbeat_s
        ):
            return False
        self.last = status
        if last is None or status.state != last.state:
            log.info("status %s: %s", status.state.value, "; ".join(status.reasons) or "ok")
        return True

    def force(self) -> None:
        """Publish at the next chance (after a reconnect the retained status may be the last
        will)."""
        self.last = None
