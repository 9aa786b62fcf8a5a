"""Where a publication goes as it leaves for the broker, by this instance's role.

Only the holder of the controller lease (:mod:`.lease`) commands: another instance's setpoints
are withheld (its core is on standby and makes none, but some may have been queued before it
lost the lease, or before a reconnect).  Its status goes to the controller's topic while it
holds the lease and to its own topic otherwise, and the plan only from the holder.  The role is
judged as each message is published, not as it was queued.  The setpoints and the status
already carry this instance's ``instance``: the core that makes them was given it.
"""

from __future__ import annotations

from typing import Final

from wire import Publication, Topics

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
            return pub
        if topic == self.topics.status():
            if active:
                return Publication(topic, pub.payload, pub.qos, retain=True)
            return Publication(self.topics.instance_status(self.instance), pub.payload, pub.qos)
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
