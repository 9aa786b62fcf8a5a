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
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
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
SETPOINT_KEYS: Final = {
    "potline_current_ka": "potline",
    "bess_power_mw": "bess",
    "captive_power_mw": "captive",
}


@dataclass(frozen=True)
class Outcome:
    http_status: int
    body: dict[str, Any]


class ModeDesk:
    def __init__(self, daemon: Daemon, journal: Journal) -> None:
        self.daemon = daemon
        self.journal = journal
        self.limits = limits_for(daemon.core.site)

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
        ts = self.daemon.core.clock.now_s or 0.0
        message = f"mode change from {remote} refused: {why}"
        self.journal.add("operator", "unauthorized", message, ts)
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
