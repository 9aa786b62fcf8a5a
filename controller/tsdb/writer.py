"""The asynchronous, batched InfluxDB writer: the control loop never waits on the database.

``write(points)`` only appends to an in-memory queue (:mod:`controller.tsdb.batching`).  The
background task encodes batches and sends them::

    queue ──encode──▶ batch ──▶ database                  (it is up and nothing older waits)
                        └────▶ spool (disk) ──▶ database, oldest first
                               (it is down, or older points still wait in the spool)

While the database is unreachable or refuses the token/org/bucket, batches go to the spool
(:mod:`controller.tsdb.spool`) and the task probes with the oldest spooled batch after a capped,
jittered backoff; once one is accepted it replays the spool in order, and new batches queue
behind it on disk until it is empty, so the database receives points in the order they were
written.  An outage is logged once when it starts (and again if its kind changes, e.g. from
"unreachable" to "token refused") and once when it ends, never per batch.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Final, TypeVar

from controller.tsdb.batching import BatchingSink
from controller.tsdb.sink import SinkStats
from controller.tsdb.spool import Spool
from controller.tsdb.transport import (
    BadDataError,
    RefusedError,
    Transport,
    UnreachableError,
    WriteError,
)
from wire.link import Backoff

log = logging.getLogger(__name__)

T = TypeVar("T")

_REFUSAL: Final = {
    401: "refused the token (check the token named by [influx] token_env or token_file)",
    403: "refused this token the right to write to the bucket",
    404: "has no such org or bucket (check [influx] org and bucket)",
}


class _Outage:
    """Logs a failing database once when it starts failing and once when it works again."""

    def __init__(self, where: str, spool_dir: str, retry_max_s: float) -> None:
        self._where = where
        self._keep = (
            f"points are kept in the spool {spool_dir} and retried with backoff up to "
            f"{retry_max_s:g} s"
        )
        self.kind: str | None = None
        self._since_s = 0.0
        self._attempts = 0
        self._spooled_at_start = 0

    @property
    def up(self) -> bool:
        return self.kind is None

    def fail(self, exc: WriteError, spooled: int) -> None:
        kind = f"refused {exc.status}" if isinstance(exc, RefusedError) else "unreachable"
        if self.kind is None:
            self._since_s = time.monotonic()
            self._attempts = 0
            self._spooled_at_start = spooled
        self._attempts += 1
        if kind == self.kind:
            log.debug("InfluxDB %s still failing: %s", self._where, exc)
            return
        self.kind = kind
        if isinstance(exc, RefusedError):
            reason = _REFUSAL.get(exc.status, "refused the write")
            log.error("InfluxDB %s %s (%s); %s", self._where, reason, exc, self._keep)
        else:
            log.warning("InfluxDB %s unreachable (%s); %s", self._where, exc, self._keep)

    def ok(self, spooled: int, dropped: int) -> None:
        if self.kind is None:
            return
        log.info(
            "InfluxDB %s accepts writes again after %.1f s (%d failed attempts); %d points "
            "went to the spool meanwhile, %d dropped in all; replaying the spool",
            self._where,
            time.monotonic() - self._since_s,
            self._attempts,
            spooled - self._spooled_at_start,
            dropped,
        )
        self.kind = None


class InfluxWriter(BatchingSink):
    """The InfluxDB sink; make it inside a running event loop (it starts its task there).

    Args:
        transport: where bodies go (:class:`~controller.tsdb.transport.InfluxTransport`).
        spool: the on-disk spool; the writer owns it from now on.
        where: how logs name the database, e.g. ``bucket 'b' at http://host:8086``.
    """

    def __init__(
        self,
        transport: Transport,
        spool: Spool,
        *,
        where: str,
        batch_size: int = 5000,
        flush_interval_s: float = 1.0,
        retry_max_s: float = 30.0,
        max_queued_points: int = 1_000_000,
    ) -> None:
        self._transport = transport
        self._spool = spool
        self._backoff = Backoff(initial_s=min(0.5, retry_max_s), max_s=retry_max_s)
        self._outage = _Outage(where, str(spool.directory), retry_max_s)
        self._retry_at_s = 0.0
        self._spool_lock = threading.Lock()
        self._spooled = 0
        self._replayed = 0
        self._spool_dropped = spool.dropped
        self._spool_points = spool.points
        self._spool_bytes = spool.size_bytes
        super().__init__(
            name="InfluxDB writer",
            batch_size=batch_size,
            flush_interval_s=flush_interval_s,
            max_queued_points=max_queued_points,
        )

    def stats(self) -> SinkStats:
        return SinkStats(
            written=self._written,
            spooled=self._spooled,
            replayed=self._replayed,
            dropped=self._dropped_here + self._spool_dropped,
            rejected=self._rejected,
            queued=self._queued,
            spool_points=self._spool_points,
            spool_bytes=self._spool_bytes,
            database_up=self._outage.up,
        )

    # --- delivery ------------------------------------------------------------------------------

    async def _deliver(self, lines: list[str]) -> None:
        try:
            await self._send_or_spool(lines)
        except asyncio.CancelledError:
            # only when close() gave up on a hung task: whether these arrived is unknown
            self._dropped_here += len(lines)
            raise

    async def _send_or_spool(self, lines: list[str]) -> None:
        if self._spool_points or not self._outage.up or self._past_close_deadline():
            await self._to_spool(lines)
            return
        try:
            await self._send(lines)
        except (UnreachableError, RefusedError) as exc:
            self._failed(exc)
            await self._to_spool(lines)
        except BadDataError as exc:
            self._reject(len(lines), exc)
        else:
            self._written += len(lines)

    def _next_background_s(self) -> float | None:
        return self._retry_at_s if self._spool_points else None

    async def _background(self) -> None:
        try:
            await self._replay_batch()
        except OSError as exc:
            # after a delivery whose commit failed, those points come again: stored once
            self._log_once("spool_replay", f"cannot read or update the spool ({exc}); retrying")
            self._retry_at_s = time.monotonic() + self._backoff.next_delay_s()

    async def _replay_batch(self) -> None:
        """Replay the oldest spooled batch (the probe, while the database is down)."""
        lines = await self._spool_call(self._spool.peek, self._batch_size)
        if not lines:
            return
        try:
            await self._send(lines)
        except (UnreachableError, RefusedError) as exc:
            self._failed(exc)
            return
        except BadDataError as exc:
            self._reject(len(lines), exc)
            await self._spool_call(self._spool.commit)
            return
        delivered = await self._spool_call(self._spool.commit)
        self._replayed += delivered
        self._written += delivered
        if not self._outage.up:
            self._outage.ok(self._spooled, self.stats().dropped)
            self._logged.discard("spool_full")
        self._backoff.reset()
        self._retry_at_s = 0.0

    async def _send(self, lines: list[str]) -> None:
        body = "\n".join(lines).encode()
        if not self._closing:
            await self._transport.write(body)
            return
        try:
            async with asyncio.timeout(max(0.0, self._close_deadline_s - time.monotonic())):
                await self._transport.write(body)
        except TimeoutError:
            raise UnreachableError("no answer before the close timeout") from None

    def _failed(self, exc: WriteError) -> None:
        self._outage.fail(exc, self._spooled)
        self._retry_at_s = time.monotonic() + self._backoff.next_delay_s()

    def _reject(self, count: int, exc: WriteError) -> None:
        self._rejected += count
        self._log_once(
            f"bad{exc.status}",
            f"InfluxDB refused a batch of {count} points as bad data ({exc}); they are counted "
            "as rejected, further such batches only counted",
        )

    async def _to_spool(self, lines: list[str]) -> None:
        self._spooled += len(lines)
        try:
            dropped = await self._spool_call(self._spool.append, lines)
        except OSError as exc:
            self._dropped_here += len(lines)
            self._log_once("spool_io", f"cannot write the spool ({exc}); points are dropped")
            return
        if dropped:
            self._log_once(
                "spool_full",
                f"spool {self._spool.directory} is full ({self._spool.max_bytes} bytes): dropping "
                f"the oldest points ({self.stats().dropped} dropped so far; see the dropped "
                "counter for the exact count)",
            )

    async def _release(self) -> None:
        await self._transport.close()
        await self._spool_call(self._spool.close)

    async def _spool_call(self, fn: Callable[..., T], *args: object) -> T:
        """Run a spool operation in a worker thread and refresh the spool's gauges."""

        def call() -> tuple[T, int, int, int]:
            # The lock matters only after a cancelled task: its thread may still be running.
            with self._spool_lock:
                result = fn(*args)
                return result, self._spool.points, self._spool.size_bytes, self._spool.dropped

        (
            result,
            self._spool_points,
            self._spool_bytes,
            self._spool_dropped,
        ) = await asyncio.to_thread(call)
        return result
