"""The operator's modes: ``auto`` (the plan), ``hold`` (the setpoints in force when it was set)
and ``manual`` (the operator's own setpoints, still through hard and ramp limits)."""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping

from controller.safety import Key
from wire import Mode, ModeCommand, Source

log = logging.getLogger(__name__)


class OperatorModes:
    """The mode in force, and what it asks to be sent when it is not ``auto``."""

    def __init__(self) -> None:
        self.command = ModeCommand(ts=0.0, mode=Mode.AUTO)
        self.held: dict[Key, float] = {}
        """Setpoints to hold (``hold``), and the base under manual values (``manual``)."""

    @property
    def mode(self) -> Mode:
        return self.command.mode

    @property
    def auto(self) -> bool:
        return self.command.mode == Mode.AUTO

    def set(self, command: ModeCommand, applied: Mapping[Key, float]) -> bool:
        """Take an operator's command; False when it is older than the one in force.

        ``applied`` is what was sent last: entering ``hold`` holds it.
        """
        if command.ts < self.command.ts:
            return False
        changed = command.mode != self.command.mode
        if command.mode == Mode.HOLD and (changed or not self.held):
            self.held = dict(applied)
        self.command = command
        log.info("mode %s set by the operator", command.mode.value)
        return True

    def restore(
        self, command: ModeCommand | None, applied: Mapping[str, float], known: Collection[Key]
    ) -> None:
        """From a state file: the mode, and the setpoints sent last (``"kind/asset"`` keys) of
        the ``known`` assets (the site's: one the site no longer has would be held, and
        refused by the safety layer, at every dispatch)."""
        if command is not None:
            self.command = command
        split = (tuple(k.split("/", 1)) for k in applied)
        keys = [(p[0], p[1]) for p in split if len(p) == 2]
        self.held = {k: applied[f"{k[0]}/{k[1]}"] for k in keys if k in known}
        gone = sorted(f"{k[0]}/{k[1]}" for k in keys if k not in known)
        if gone:
            log.warning("setpoints kept for assets the site no longer has: dropped: %s", gone)

    def saved(self) -> ModeCommand | None:
        """The command to keep across a restart (None: automatic, never set)."""
        c = self.command
        return c if c.ts > 0 or c.mode != Mode.AUTO else None

    def targets(self, applied: Mapping[Key, float]) -> tuple[dict[Key, float], Source, str]:
        """(targets, source, plan id) of ``hold`` or ``manual``; call only when not auto."""
        if self.command.mode == Mode.HOLD:
            return dict(self.held), Source.MANUAL, "hold"
        c = self.command
        targets = dict(self.held) | dict(applied)
        targets |= {("potline", k): v for k, v in c.potline_current_ka.items()}
        targets |= {("bess", k): v for k, v in c.bess_power_mw.items()}
        targets |= {("captive", k): v for k, v in c.captive_power_mw.items()}
        return targets, Source.MANUAL, "manual"
