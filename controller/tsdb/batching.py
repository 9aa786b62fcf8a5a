"""The half that both sinks share: an in-memory queue, batching, encoding without stalls.

``write(points)`` appends to a deque and returns.  A background task takes a batch when
``batch_size`` points are queued or ``flush_interval_s`` after the first one, encodes it on the
event loop in slices of :data:`ENCODE_SLICE_POINTS` with a yield in between (a millisecond or
two each, so a 100k-point burst never stalls the control loop), and hands the lines to the
subclass's :meth:`BatchingSink._deliver`.  A subclass may also do work of its own between
batches (:meth:`BatchingSink._background`, e.g. replaying a spool).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Iterable
from typing import Final

from controller.tsdb.points import Point, encode_lines
from controller.tsdb.sink import SinkStats

log = logging.getLogger(__name__)

ENCODE_SLICE_POINTS: Final = 100
"""Points encoded between two yields to the event loop (a few tenths of a millisecond)."""
CLOSE_GRACE_S: Final = 30.0
"""After ``close``'s timeout, the time a sink may still take to put its queue somewhere safe."""


class BatchingSink:
    """Base of the sinks; make one inside a running event loop (it starts its task there)."""

    def __init__(
        self, *, name: str, batch_size: int, flush_interval_s: float, max_queued_points: int
    ) -> None:
        self._name = name
        self._batch_size = batch_size
        self._flush_interval_s = flush_interval_s
        self._max_queued = max_queued_points
        self._queue: deque[list[Point]] = deque()
        """Batches as handed to ``write`` (taking a 100k-point list costs nothing); the first
        may be partly taken: ``_taken`` of it are gone."""
        self._taken = 0
        self._queued = 0
        self._first_queued_s = 0.0
        self._wake = asyncio.Event()
        self._closing = False
        self._close_deadline_s = float("inf")
        self._closed = False
        self._logged: set[str] = set()
        self._written = 0
        self._rejected = 0
        self._dropped_here = 0
        self._task = asyncio.get_running_loop().create_task(self._run(), name=name)
        self._task.add_done_callback(self._task_done)

    # --- the caller's side (never blocks, never raises) ----------------------------------------

    def write(self, points: Iterable[Point]) -> None:
        """Queue ``points``.  O(len(points)), no I/O, never raises."""
        try:
            # A copy (cheap: references only) so that a caller reusing its list cannot change
            # what was queued.
            batch = list(points)
        except Exception:  # a caller's failing iterable must not reach its control loop
            self._log_once("iterable", "write() got an iterable that failed; its points are lost")
            return
        if self._closing or self._closed or self._task.done():
            self._dropped_here += len(batch)
            self._log_once("closed", f"{self._name}: points written after close() are dropped")
            return
        room = max(0, self._max_queued - self._queued)
        if len(batch) > room:
            self._dropped_here += len(batch) - room
            self._log_once(
                "queue",
                f"{self._name}: more than {self._max_queued} points queued in memory, dropping "
                "new ones (counted as dropped): the sink cannot keep up",
            )
            batch = batch[:room]
        if not batch:
            return
        if not self._queued:
            self._first_queued_s = time.monotonic()
            self._wake.set()
        self._queue.append(batch)
        self._queued += len(batch)
        if self._queued >= self._batch_size:
            self._wake.set()

    def stats(self) -> SinkStats:
        return SinkStats(
            written=self._written,
            dropped=self._dropped_here,
            rejected=self._rejected,
            queued=self._queued,
        )

    async def close(self, timeout_s: float = 5.0) -> None:
        """Write out what is queued, within ``timeout_s`` where the sink can bound it."""
        if self._closed:
            return
        self._closing = True
        self._close_deadline_s = time.monotonic() + timeout_s
        self._wake.set()
        try:
            await asyncio.wait({self._task}, timeout=timeout_s + CLOSE_GRACE_S)
            if not self._task.done():
                log.warning(
                    "%s still busy at close: %d queued points lost", self._name, self._queued
                )
                self._dropped_here += self._queued
                self._queue.clear()
                self._taken = 0
                self._queued = 0
                self._task.cancel()
                await asyncio.wait({self._task})
        finally:
            self._closed = True
            await self._release()
        log.info("%s closed: %s", self._name, self.stats())

    # --- for subclasses ------------------------------------------------------------------------

    async def _deliver(self, lines: list[str]) -> None:
        """Put encoded lines where they belong (count them in the right counters)."""
        raise NotImplementedError

    def _next_background_s(self) -> float | None:
        """Monotonic time at which :meth:`_background` has work, or None."""
        return None

    async def _background(self) -> None:
        """Work between batches (not while closing)."""

    async def _release(self) -> None:
        """Free files and connections once the task has ended."""

    def _past_close_deadline(self) -> bool:
        return self._closing and time.monotonic() >= self._close_deadline_s

    def _log_once(self, key: str, message: str) -> None:
        if key not in self._logged:
            self._logged.add(key)
            log.warning("%s", message)

    # --- the task ------------------------------------------------------------------------------

    async def _run(self) -> None:
        # One batch is delivered while the next one is encoded; deliveries stay one at a time
        # and in order (each starts after the previous one has finished).
        delivering: asyncio.Task[None] | None = None
        try:
            while not (self._closing and not self._queued):
                await self._wait_for_work()
                if self._queued and self._batch_due():
                    lines = await self._take_batch()
                    if delivering is not None:
                        await delivering
                    delivering = asyncio.create_task(self._deliver(lines)) if lines else None
                due_s = self._next_background_s()
                if not self._closing and due_s is not None and time.monotonic() >= due_s:
                    if delivering is not None:
                        await delivering
                        delivering = None
                    await self._background()
            if delivering is not None:
                await delivering
        finally:
            if delivering is not None and not delivering.done():
                delivering.cancel()
                await asyncio.wait({delivering})

    def _batch_due(self) -> bool:
        return (
            self._closing
            or self._queued >= self._batch_size
            or time.monotonic() >= self._first_queued_s + self._flush_interval_s
        )

    async def _wait_for_work(self) -> None:
        self._wake.clear()
        if self._queued and self._batch_due():
            return
        deadlines = []
        if self._queued:
            deadlines.append(self._first_queued_s + self._flush_interval_s)
        if (background_s := self._next_background_s()) is not None:
            deadlines.append(background_s)
        timeout_s = min(deadlines) - time.monotonic() if deadlines else None
        if timeout_s is not None and timeout_s <= 0:
            return
        try:
            async with asyncio.timeout(timeout_s):
                await self._wake.wait()
        except TimeoutError:
            pass

    def _take_points(self) -> list[Point]:
        """Up to ``batch_size`` of the oldest queued points."""
        points: list[Point] = []
        while self._queue and len(points) < self._batch_size:
            head = self._queue[0]
            end = self._taken + self._batch_size - len(points)
            points.extend(head[self._taken : end])
            if end >= len(head):
                self._queue.popleft()
                self._taken = 0
            else:
                self._taken = end
        self._queued -= len(points)
        return points

    async def _take_batch(self) -> list[str]:
        points = self._take_points()
        count = len(points)
        lines: list[str] = []
        rejected = 0
        for start in range(0, count, ENCODE_SLICE_POINTS):
            encoded, bad = encode_lines(points[start : start + ENCODE_SLICE_POINTS])
            lines.extend(encoded)
            rejected += bad
            await asyncio.sleep(0)
        if rejected:
            self._rejected += rejected
            self._log_once(
                "invalid",
                f"{self._name}: {rejected} points could not be encoded (no measurement, no "
                "finite field, or a bad time) and were rejected; further ones are only counted",
            )
        return lines

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("%s: its task failed; further points are dropped", self._name, exc_info=exc)
