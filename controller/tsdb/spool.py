"""A bounded on-disk queue of line-protocol lines: what waits while the database is away.

Lines go into append-only segment files (``000000000001.lp``, ...) in one directory and come
out oldest first: :meth:`Spool.peek` reads the oldest lines without removing them,
:meth:`Spool.commit` removes them once the database has them, so a failed replay loses nothing.
A segment whose lines have all been delivered is deleted.

Size cap: when an append would take the segment files past ``max_bytes``, whole segments are
dropped, oldest first, and every line they still held is counted in :attr:`Spool.dropped` — the
newest data is what an operator needs after an outage.  A batch larger than the whole cap keeps
its newest lines that fit.

Crash safety: a batch is appended with one ``write`` and the file closed, so it survives a crash
of the process (not necessarily of the machine).  A write that fails part way (a full disk) is
cut back to the segment's last whole batch and raises: the batch is lost whole, and counted by
the caller, never half-kept.  After a restart the existing segments are
replayed and new lines go to a new segment; a torn last line (the process died inside a
``write``) is skipped on replay and counted as dropped.  A crash between a delivery and its
:meth:`Spool.commit` replays those lines again: harmless, as a point written twice to the same
series and time is stored once.

Not thread-safe: one owner calls it (the writer, from one worker thread at a time).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

log = logging.getLogger(__name__)

MAX_SEGMENT_BYTES: Final = 16 * 1024 * 1024
SEGMENTS_PER_CAP: Final = 8
"""The cap holds at least this many segments, so an overflow drops about 1/8 of it at a time."""
_READ_CHUNK_BYTES: Final = 4 * 1024 * 1024
_SEGMENT_NAME = re.compile(r"^(\d{12})\.lp$")


@dataclass
class _Segment:
    path: Path
    size_bytes: int
    lines: int
    """Complete lines in the file."""
    read_bytes: int = 0
    read_lines: int = 0
    torn: bool = False
    """The file ends with a partial line (a crash inside a write)."""

    @property
    def pending(self) -> int:
        return self.lines - self.read_lines


class Spool:
    """Segments in ``directory``, at most ``max_bytes`` of them on disk."""

    def __init__(self, directory: str | Path, max_bytes: int) -> None:
        if max_bytes < 1:
            raise ValueError("max_bytes: must be at least 1")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = max(1, min(MAX_SEGMENT_BYTES, max_bytes // SEGMENTS_PER_CAP))
        self.dropped = 0
        """Lines lost for good: dropped to respect the cap, or torn by a crash."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._segments: list[_Segment] = []
        self._next_seq = 1
        self._active: _Segment | None = None
        """The segment appends go to; never one from before a restart (it may end torn)."""
        self._peeked: list[tuple[_Segment, int, int]] = []
        """(segment, bytes, lines) that the last :meth:`peek` returned, for :meth:`commit`."""
        self._scan()

    # --- state ---------------------------------------------------------------------------

    @property
    def points(self) -> int:
        """Lines waiting (not yet committed)."""
        return sum(s.pending for s in self._segments)

    @property
    def size_bytes(self) -> int:
        return sum(s.size_bytes for s in self._segments)

    def __len__(self) -> int:
        return self.points

    def _scan(self) -> None:
        found = []
        for path in self.directory.iterdir():
            match = _SEGMENT_NAME.match(path.name)
            if match and path.is_file():
                found.append((int(match.group(1)), path))
        for seq, path in sorted(found):
            data = path.read_bytes()
            lines = data.count(b"\n")
            torn = bool(data) and not data.endswith(b"\n")
            self._segments.append(_Segment(path, len(data), lines, torn=torn))
            self._next_seq = seq + 1
        if self._segments:
            log.info(
                "spool %s holds %d points from before the restart: replaying them first",
                self.directory,
                self.points,
            )

    # --- in --------------------------------------------------------------------------------

    def append(self, lines: Sequence[str]) -> int:
        """Add ``lines`` (without newlines) at the end; returns how many lines were dropped to
        respect the cap (old ones, or the oldest of these when they alone exceed it)."""
        if not lines:
            return 0
        encoded = [line.encode() + b"\n" for line in lines]
        size = sum(len(e) for e in encoded)
        dropped = 0
        first = 0
        while size > self.max_bytes:
            size -= len(encoded[first])
            first += 1
        dropped += first
        if first == len(encoded):
            self.dropped += dropped
            return dropped
        while self.size_bytes + size > self.max_bytes and self._segments:
            lost = self._drop_oldest()
            self.dropped += lost  # gone now, whether or not the write below succeeds
            dropped += lost
        if self._active is None:
            self._active = _Segment(self.directory / f"{self._next_seq:012d}.lp", 0, 0)
            self._next_seq += 1
            self._segments.append(self._active)
        active = self._active
        data = b"".join(encoded[first:])
        try:
            with active.path.open("ab") as f:
                f.write(data)
        except OSError:
            self._undo_torn_append(active)
            raise
        active.size_bytes += len(data)
        active.lines += len(encoded) - first
        if active.size_bytes >= self.segment_bytes:
            self._active = None
        self.dropped += first
        return dropped

    def _undo_torn_append(self, segment: _Segment) -> None:
        """A write that failed part way (a full disk) may have left part of the batch, maybe
        half a line, at the segment's end: cut it back to what was complete before, so the
        next batch is not joined to a torn line (the caller counts the batch as dropped).  If
        even that fails, the segment takes no more appends and its tail is skipped as torn."""
        try:
            os.truncate(segment.path, segment.size_bytes)
        except OSError:
            segment.torn = True
            self._active = None

    def _drop_oldest(self) -> int:
        segment = self._segments[0]
        lost = segment.pending + (1 if segment.torn else 0)
        self._remove(segment)
        self._peeked = []
        log.debug("spool over %d bytes: dropped %s (%d points)", self.max_bytes, segment.path, lost)
        return lost

    def _remove(self, segment: _Segment) -> None:
        if segment is self._active:
            self._active = None
        self._segments.remove(segment)
        segment.path.unlink(missing_ok=True)

    # --- out -------------------------------------------------------------------------------

    def peek(self, max_lines: int) -> list[str]:
        """Up to ``max_lines`` of the oldest lines, without removing them (see :meth:`commit`)."""
        out: list[str] = []
        self._peeked = []
        for segment in list(self._segments):
            if len(out) >= max_lines:
                break
            if segment.pending == 0:
                if segment.torn:
                    self._skip_torn(segment)
                continue
            with segment.path.open("rb") as f:
                f.seek(segment.read_bytes)
                data = f.read(_READ_CHUNK_BYTES)
                if b"\n" not in data:
                    data += f.read()
            taken = data.split(b"\n")[:-1][: min(max_lines - len(out), segment.pending)]
            out.extend(line.decode(errors="replace") for line in taken)
            self._peeked.append((segment, sum(len(t) + 1 for t in taken), len(taken)))
        return out

    def _skip_torn(self, segment: _Segment) -> None:
        log.warning("spool: skipped a torn last line in %s (a crash during a write)", segment.path)
        self.dropped += 1
        self._remove(segment)

    def commit(self) -> int:
        """Remove the lines the last :meth:`peek` returned (they were delivered); returns how
        many.  A drop to respect the cap in between voids the peek: nothing is removed then."""
        committed = 0
        for segment, nbytes, nlines in self._peeked:
            segment.read_bytes += nbytes
            segment.read_lines += nlines
            committed += nlines
            if segment.pending == 0 and not segment.torn:
                self._remove(segment)
        self._peeked = []
        return committed

    def close(self) -> None:
        """Start a new segment at the next append (files are not held open between calls)."""
        self._active = None
