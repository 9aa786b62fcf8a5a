"""Failures that last, as the daemon's shell meets them: a state file that cannot be written (a
full disk), publications the broker refuses (an ACL).

Each is logged once when it starts and once when it clears, with how long it lasted and how
many attempts failed, never once per attempt; while it lasts, the status says so (a lasting
condition of the core, :meth:`~controller.core.core.ControllerCore.condition`).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Protocol

from paho.mqtt.reasoncodes import ReasonCode

from controller.daemon.outbound import KINDS

log = logging.getLogger(__name__)


class Conditions(Protocol):
    """Where a lasting reason goes (the control core)."""

    def condition(self, name: str, reason: str | None, *, uncontrolled: bool = False) -> None: ...


class Trouble:
    """One kind of failure that lasts until an attempt succeeds."""

    def __init__(
        self,
        name: str,
        conditions: Conditions,
        *,
        cleared: str,
        failures_are: str = "failed attempts",
        uncontrolled: bool = False,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.cleared = cleared
        """What the recovery line says, e.g. "the state file is written again"."""
        self.failures_are = failures_are
        self.uncontrolled = uncontrolled
        self.failures = 0
        """Failed attempts, all told."""
        self._conditions = conditions
        self._monotonic = monotonic
        self._since_s: float | None = None
        self._attempts = 0
        self._reason = ""

    def failed(self, reason: str, advice: str = "") -> None:
        """An attempt failed: ``reason`` goes in the status, and with ``advice`` in the log the
        first time."""
        self.failures += 1
        self._attempts += 1
        if self._since_s is None:
            self._since_s = self._monotonic()
            log.error("%s%s", reason, f"; {advice}" if advice else "")
        if reason != self._reason:
            self._reason = reason
            self._conditions.condition(self.name, reason, uncontrolled=self.uncontrolled)

    def succeeded(self) -> None:
        """An attempt worked: the trouble is over (if there was one)."""
        if self._since_s is None:
            return
        log.info(
            "%s after %.1f s (%d %s)",
            self.cleared,
            self._monotonic() - self._since_s,
            self._attempts,
            self.failures_are,
        )
        self._conditions.condition(self.name, None)
        self._since_s = None
        self._attempts = 0
        self._reason = ""


class Refusals:
    """Publications the broker refused (MQTT 5 PUBACK reason code ≥ 0x80), by kind of topic.

    Refused setpoints mean the plant is not getting them: the status says so and the state is
    ``fallback``, until a setpoint is taken again.  A refused status, plan or lease is a lasting
    reason too (the controller still controls)."""

    def __init__(
        self,
        conditions: Conditions,
        username: str | None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()
        """(kind, reason) → refused publications."""
        self._user = f"user {username}" if username else "this client"
        self._troubles = {
            kind: Trouble(
                f"broker_refuses_{kind}",
                conditions,
                cleared=f"the broker takes {kind} again",
                failures_are="refused",
                uncontrolled=kind == "setpoints",
                monotonic=monotonic,
            )
            for kind in KINDS
        }

    def outcome(self, kind: str, topic: str, refused: ReasonCode | None) -> None:
        """What the broker said to one publication of ``kind`` on ``topic``."""
        trouble = self._troubles[kind]
        if refused is None:
            trouble.succeeded()
            return
        name = str(refused)
        self.counts[kind, name] += 1
        why = f"{name}, 0x{refused.value:02x}"
        if kind == "setpoints":
            reason = f"the broker refuses setpoints ({why}): the plant is not getting them"
        else:
            reason = f"the broker refuses {kind} publications ({why})"
        trouble.failed(reason, f"first on {topic}; check the broker's ACL for {self._user}")
