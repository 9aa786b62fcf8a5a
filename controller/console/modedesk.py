"""Mode changes from the console: checked here, then sent as an MQTT mode command.

A request (``POST /api/mode``) becomes the contract's :class:`~wire.ModeCommand`, stamped with
plant time, and is checked the way the core checks one from the broker, so that the operator
hears why at once: the codec's schema and ranges (:func:`wire.decode`), the core's admission
(:meth:`~controller.core.admission.Admission.command`: the command window and assets not in the
site), and, for ``manual``, each setpoint against its asset's hard limits
(:func:`~controller.safety.limits_for`; the safety layer would clamp it, the console refuses
it).  It is then published on ``{prefix}/controller/mode/set`` at QoS 1, the very path of an
operator's MQTT command: every instance (the active one and any standby) takes it through the
core's own checks (:mod:`controller.core.modes`), and the state file keeps it.  The answer waits
a few seconds for this instance's core to take it.

A request without a valid credential is journaled and logged, but at most
:data:`REFUSED_PER_WINDOW` a minute from one remote address (:class:`RefusedQuota`): anyone who
reaches the port could otherwise push the operators' and the plant's events out of the journal.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import msgspec

from controller.console.journal import Journal
from controller.safety import limits_for
from wire import Mode, ModeCommand, PayloadError, Publication, decode, encode

if TYPE_CHECKING:
    from controller.daemon.service import Daemon

log = logging.getLogger(__name__)

TAKEN_WAIT_S: Final = 3.0
"""How long the answer waits for this instance's core to take the command (wall seconds)."""
REFUSED_PER_WINDOW: Final = 5
"""Requests without a valid credential journaled per remote address per window."""
REFUSED_WINDOW_S: Final = 60.0
"""The window of :data:`REFUSED_PER_WINDOW` (wall seconds)."""
SETPOINT_KEYS: Final = {
    "potline_current_ka": "potline",
    "bess_power_mw": "bess",
    "captive_power_mw": "captive",
}


@dataclass(frozen=True)
class Outcome:
    http_status: int
    body: dict[str, Any]


@dataclass
class _Window:
    start_s: float
    refused: int = 0
    unjournaled: int = 0


class RefusedQuota:
    """Which refused requests from a remote address are journaled: the first ``per_window`` of a
    window of ``window_s`` (from the first refusal, on the ``monotonic`` clock), then one entry
    saying that the rest are not; the first of a later window says how many were not."""

    def __init__(
        self,
        monotonic: Callable[[], float],
        *,
        per_window: int = REFUSED_PER_WINDOW,
        window_s: float = REFUSED_WINDOW_S,
    ) -> None:
        self.monotonic = monotonic
        self.per_window = per_window
        self.window_s = window_s
        self._windows: dict[str, _Window] = {}

    def take(self, remote: str) -> tuple[str, int]:
        """What to do with a refusal from ``remote`` now: ``("journal", n)``: journal it, and
        say that the ``n`` before it were not; ``("last", 0)``: journal instead that the rest of
        the window's are not; ``("quiet", 0)``: neither journal nor log it."""
        now = self.monotonic()
        ended = [r for r, w in self._windows.items() if now - w.start_s >= self.window_s]
        missed = 0
        for r in ended:  # forgotten, but for a count still to be told to its address
            if r == remote:
                missed = self._windows.pop(r).unjournaled
            elif not self._windows[r].unjournaled:
                del self._windows[r]
        window = self._windows.setdefault(remote, _Window(now))
        window.refused += 1
        if window.refused <= self.per_window:
            return "journal", missed
        window.unjournaled += 1
        return ("last", 0) if window.refused == self.per_window + 1 else ("quiet", 0)


class ModeDesk:
    def __init__(self, daemon: Daemon, journal: Journal) -> None:
        self.daemon = daemon
        self.journal = journal
        self.limits = limits_for(daemon.core.site)
        self.quota = RefusedQuota(daemon.monotonic)

    async def request(self, body: bytes, who: str, remote: str) -> Outcome:
        """An authenticated operator's request ``body`` (JSON: ``mode`` and, for ``manual``,
        setpoints by asset); ``who`` is the operator's name."""
        core = self.daemon.core
        now = core.clock.now_s  # the plant time of the status, as operator tools stamp it
        if now is None:
            return self._refused(who, remote, 409, "plant time is not known yet (no telemetry)")
        try:
            raw = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return self._refused(who, remote, 400, "the request is not JSON")
        if not isinstance(raw, dict):
            return self._refused(who, remote, 400, "the request must be a JSON object")
        raw["ts"] = now  # stamped here, with plant time, as the contract asks of operator tools
        try:
            command = decode("mode", json.dumps(raw).encode(), ModeCommand)
        except PayloadError as exc:
            return self._refused(who, remote, 400, f"{exc.kind}: {exc.reason}")
        refusal = core.admission.command(command, core.clock)
        if refusal is not None:
            return self._refused(who, remote, 409, f"{refusal.kind}: {refusal.reason}")
        beyond = self._beyond_hard_limits(command)
        if beyond:
            return self._refused(who, remote, 422, beyond)
        if not self.daemon.stats.connected:
            return self._refused(who, remote, 503, "not connected to the broker: nothing sent")
        self.daemon.publish(Publication(self.daemon.topics.mode(), encode(command), 1, False))
        what = describe(command)
        log.warning("operator %s (%s) sets mode %s", who, remote, what)
        self.journal.operator(command.mode.value, f"{who} set mode {what} from {remote}", now, who)
        taken = await self._taken(command)
        body_out = {"sent": True, "taken": taken, "command": msgspec.to_builtins(command)}
        return Outcome(200 if taken else 202, body_out)

    def refuse_unauthenticated(self, remote: str, status: int, why: str) -> Outcome:
        """A request without a valid credential (401), or to a read-only console (403)."""
        verdict, missed = self.quota.take(remote)
        if verdict == "journal":
            message = f"mode change from {remote} refused: {why}"
            if missed:
                message += f" ({missed} more refused before, not journaled)"
        elif verdict == "last":
            message = (
                f"more than {self.quota.per_window} mode changes from {remote} refused "
                f"within {self.quota.window_s:g} s: the rest are not journaled"
            )
        else:
            return Outcome(status, {"error": why})
        self.journal.add("operator", "unauthorized", message, self.daemon.core.clock.now_s or 0.0)
        log.warning("%s", message)
        return Outcome(status, {"error": why})

    def _beyond_hard_limits(self, command: ModeCommand) -> str:
        if command.mode != Mode.MANUAL:
            return ""
        for key, kind in SETPOINT_KEYS.items():
            values: dict[str, float] = getattr(command, key)
            for asset, value in sorted(values.items()):
                limits = self.limits[kind, asset]
                if not limits.lower <= value <= limits.upper:
                    unit = key.rsplit("_", 1)[-1]
                    return (
                        f"{key}.{asset}: {value:g} {unit} is outside the hard limits "
                        f"[{limits.lower:g}, {limits.upper:g}] {unit}"
                    )
        return ""

    async def _taken(self, command: ModeCommand) -> bool:
        deadline = time.monotonic() + TAKEN_WAIT_S
        while time.monotonic() < deadline:
            if self.daemon.core.mode == command:
                return True
            await asyncio.sleep(0.05)
        return False

    def _refused(self, who: str, remote: str, status: int, why: str) -> Outcome:
        ts = self.daemon.core.clock.now_s or 0.0
        message = f"{who} from {remote}: mode change refused: {why}"
        self.journal.operator("refused", message, ts, who)
        return Outcome(status, {"error": why})


def describe(command: ModeCommand) -> str:
    """``manual (L1 390 kA, bess1 -50 MW)``, ``hold``."""
    parts = [
        f"{asset} {value:g} {key.rsplit('_', 1)[-1]}"
        for key in SETPOINT_KEYS
        for asset, value in sorted(getattr(command, key).items())
    ]
    text = command.mode.value
    if command.mode == Mode.MANUAL and parts:
        text += f" ({', '.join(parts)})"
    return text
