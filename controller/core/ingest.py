"""The daemon's edge: every MQTT message is parsed, decoded and validated here, or dropped.

A bad message (unknown topic, malformed JSON, wrong schema, out of range, oversized) is counted
under its reject kind and dropped; the first of a kind is logged with its reason, and once the
stream is clean again for a while, the recovery is logged with how many were dropped.  Nothing
that fails here reaches the planner.  Pure apart from logging: time comes from the caller.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Final

import msgspec

from controller.core.streams import Verdict
from wire import PayloadError, Topic, Topics, decode

log = logging.getLogger(__name__)

INTERNAL_ERROR: Final = "internal_error"
"""A message the codec accepted but the controller failed on (a bug: counted beside the codec's
:data:`wire.REJECT_KINDS`, logged with its traceback)."""
CORE_REJECT_KINDS: Final = (
    *(v.value for v in Verdict if v not in (Verdict.ACCEPT, Verdict.JUMP)),
    INTERNAL_ERROR,
)
"""What the core refuses beyond the codec (:mod:`controller.core.admission`): the streams'
verdicts other than taking a message, and its own failures."""
RECOVERY_MESSAGES: Final = 100
"""A reject kind counts as recovered after this many good messages in a row."""


@dataclass(frozen=True, slots=True)
class Decoded:
    topic: Topic
    payload: msgspec.Struct


class Ingest:
    """Decode messages into contract payloads; count and log rejects per kind."""

    def __init__(self, topics: Topics) -> None:
        self.topics = topics
        self.accepted: Counter[str] = Counter()
        """Good messages per topic kind."""
        self.rejected: Counter[str] = Counter()
        """Dropped messages per reject kind."""
        self._failing: dict[str, int] = {}
        """Reject kind → messages dropped since its first log line."""
        self._clean_run = 0

    def decode(self, topic: str, data: bytes | bytearray) -> Decoded | None:
        """The validated payload, or None when the message was counted and dropped."""
        parsed = self.topics.parse(topic)
        if parsed is None:
            self.reject("unknown_topic", f"topic {topic!r} is not in the contract", topic)
            return None
        try:
            payload: msgspec.Struct = decode(parsed.kind, data)
        except PayloadError as exc:
            self.reject(exc.kind, exc.reason, topic)
            return None
        self.accepted[parsed.kind] += 1
        if self._failing:
            self._clean_run += 1
            if self._clean_run >= RECOVERY_MESSAGES:
                for kind, n in sorted(self._failing.items()):
                    log.info("bad messages of kind %s stopped after %d dropped", kind, n)
                self._failing.clear()
        return Decoded(parsed, payload)

    def refuse(self, topic_kind: str, kind: str, reason: str, where: str) -> None:
        """A message decoded (counted as accepted) and then refused by the core."""
        self.accepted[topic_kind] -= 1
        self.reject(kind, reason, where)

    def reject(self, kind: str, reason: str, topic: str) -> None:
        """Count a dropped message under ``kind``; log the first of a kind."""
        self.rejected[kind] += 1
        self._clean_run = 0
        if kind not in self._failing:
            self._failing[kind] = 0
            # The reason may quote the payload; cut it so a flood of garbage cannot flood logs.
            log.warning(
                "dropping bad message on %s (%s: %s); further ones of this kind are counted, "
                "not logged",
                topic[:200],
                kind,
                reason[:300],
            )
        self._failing[kind] += 1
