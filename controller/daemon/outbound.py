"""What a publication becomes as it leaves for the broker, by this instance's role.

Only the holder of the controller lease (:mod:`.lease`) commands: its setpoints go out stamped
with its ``instance``; another instance's are withheld (its core is on standby and makes none,
but some may have been queued before it lost the lease, or before a reconnect).  Its status
goes to the controller's topic while it holds the lease and to its own topic otherwise, and the
plan only from the holder.  The role is judged as each message is published, not as it was
queued.
"""

from __future__ import annotations

from typing import Final

import msgspec

from wire import (
    ControllerStatus,
    PotlineSetpoint,
    PowerSetpoint,
    Publication,
    Topics,
    decode,
    encode,
)

KINDS: Final = ("setpoints", "status", "plan", "lease", "other")
"""Kinds of publication, as counted when the broker refuses one."""


class Outbound:
    """Routes one instance's publications by its role."""

    def __init__(self, topics: Topics, instance: str) -> None:
        self.topics = topics
        self.instance = instance
        self.withheld_setpoints = 0
        """Setpoints not published because this instance did not hold the lease then."""
        self._commands = f"{topics.prefix}/command/"

    def route(self, pub: Publication, *, active: bool) -> Publication | None:
        """``pub`` as it leaves, or None when it must not (``active``: this instance holds the
        lease now)."""
        topic = pub.topic
        if topic.startswith(self._commands):
            if not active:
                self.withheld_setpoints += 1
                return None
            return Publication(topic, self._stamped(topic, pub.payload), pub.qos, pub.retain)
        if topic == self.topics.status():
            stamped = self._stamped(topic, pub.payload)
            if active:
                return Publication(topic, stamped, pub.qos, retain=True)
            return Publication(self.topics.instance_status(self.instance), stamped, pub.qos)
        if topic == self.topics.plan() and not active:
            return None  # the daemon keeps it, and sends it on taking over
        return pub

    def kind(self, topic: str) -> str:
        """One of :data:`KINDS`."""
        if topic.startswith(self._commands):
            return "setpoints"
        if topic == self.topics.status():
            return "status"
        if topic == self.topics.plan():
            return "plan"
        if topic == self.topics.lease():
            return "lease"
        return "other"

    def _stamped(self, topic: str, payload: bytes) -> bytes:
        parsed = self.topics.parse(topic)
        if parsed is None:
            return payload
        decoded: msgspec.Struct = decode(parsed.kind, payload)
        if isinstance(decoded, PotlineSetpoint | PowerSetpoint | ControllerStatus):
            return encode(msgspec.structs.replace(decoded, instance=self.instance))
        return payload
