"""Message routing: every message validated at the edge, then handed to the one handler for its
kind of topic (telemetry, weather forecast, operator mode, plant alarm).

Kinds without a handler (per-pot voltages, other controllers' commands and status) are
accepted and dropped: they are not ours to act on.  A handler that fails on a message the codec
accepted (a bug, or an inconsistency the schema does not catch) does not take the controller
down: the message is counted as ``internal_error``, logged with its traceback, and dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import msgspec

from controller.core.ingest import INTERNAL_ERROR, Decoded, Ingest
from wire import Topics

Handler = Callable[[str, str, msgspec.Struct, float], None]
"""(kind, asset, payload, wall time [s]) → None."""

log = logging.getLogger(__name__)

TELEMETRY_KINDS = ("potline", "bess", "captive", "renewable", "grid")


class Router:
    """Decodes messages (:class:`~controller.core.ingest.Ingest`) and routes them by kind."""

    def __init__(self, topics: Topics) -> None:
        self.ingest = Ingest(topics)
        self._handlers: dict[str, Handler] = {}

    def on(self, kinds: tuple[str, ...], handler: Handler) -> None:
        for kind in kinds:
            self._handlers[kind] = handler

    def route(self, topic: str, data: bytes | bytearray, wall_s: float) -> Decoded | None:
        """Validate one message and hand it on; None when it was counted and dropped."""
        decoded = self.ingest.decode(topic, data)
        if decoded is None:
            return None
        kind, asset, payload = decoded.topic.kind, decoded.topic.asset, decoded.payload
        handler = self._handlers.get(kind)
        if handler is not None:
            try:
                handler(kind, asset, payload, wall_s)
            except Exception as exc:  # a valid message must never take the controller down
                log.exception("message on %s could not be used", topic[:200])
                self.ingest.refuse(kind, INTERNAL_ERROR, f"{type(exc).__name__}: {exc}", topic)
                return None
        return decoded
