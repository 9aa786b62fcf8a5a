"""Message routing: every message validated at the edge, then handed to the one handler for its
kind of topic (telemetry, weather forecast, operator mode, plant alarm).

Kinds without a handler (per-pot voltages, other controllers' commands and status) are
accepted and dropped: they are not ours to act on.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from controller.core.ingest import Decoded, Ingest
from wire import Topics

Handler = Callable[[str, msgspec.Struct, float], None]
"""(asset, payload, wall time [s]) → None."""
Observer = Callable[[str, str, msgspec.Struct], None]
"""(kind, asset, payload) → None: sees every valid message before its handler."""

TELEMETRY_KINDS = ("potline", "bess", "captive", "renewable", "grid")


class Router:
    """Decodes messages (:class:`~controller.core.ingest.Ingest`) and routes them by kind."""

    def __init__(self, topics: Topics) -> None:
        self.ingest = Ingest(topics)
        self.observer: Observer | None = None
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
        if self.observer is not None:
            self.observer(kind, asset, payload)
        handler = self._handlers.get(kind)
        if handler is not None:
            handler(asset, payload, wall_s)
        return decoded
