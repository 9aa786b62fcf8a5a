"""What every point sink offers: a non-blocking ``write``, ``close`` and counters."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from controller.tsdb.points import Point


@dataclass(frozen=True, slots=True)
class SinkStats:
    """Counters since the sink was opened (points), and gauges (now).

    Every point handed to ``write`` ends up in exactly one of ``written``, ``dropped`` and
    ``rejected``, or is still waiting (``queued`` + ``spool_points``).  ``spooled`` and
    ``replayed`` count the detour of points through the spool (a replayed point is also
    ``written``).
    """

    written: int = 0
    """Accepted by the database, or written to a line-protocol file."""
    spooled: int = 0
    """Put into the on-disk spool because the database could not take them then."""
    replayed: int = 0
    """Taken from the spool and accepted by the database later."""
    dropped: int = 0
    """Lost for good: memory queue full, spool cap reached, torn by a crash, written after close."""
    rejected: int = 0
    """Not writable: invalid points (no finite field...), or a body the database refused as bad
    data (HTTP 400/413/422)."""
    queued: int = 0
    """In memory now, not yet encoded."""
    spool_points: int = 0
    """In the spool now."""
    spool_bytes: int = 0
    database_up: bool = True
    """False while writes fail (unreachable, or refused for the token, org or bucket)."""


class PointSink(Protocol):
    def write(self, points: Iterable[Point]) -> None:
        """Queue ``points``; never blocks on I/O and never raises."""
        ...

    async def close(self, timeout_s: float = 5.0) -> None:
        """Write out what can be within ``timeout_s``, keep the rest (spool), release files."""
        ...

    def stats(self) -> SinkStats: ...
