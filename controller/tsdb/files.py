"""Rotating line-protocol files: where points go when no InfluxDB is configured (the default).

Files are named ``points-YYYYmmddTHHMMSSZ-NNNN.lp`` (UTC wall time at which the file was
started, then a sequence number), so that sorting by name is sorting by age.  A file is closed
and a new one started when it reaches ``max_bytes``; of all such files in the directory the
newest ``keep`` are kept (older ones are deleted, and that is logged).  A restart always starts
a new file.  Import them later with::

    influx write --bucket BUCKET --precision ms --format lp --file points-....lp

Writes are batched and done in a worker thread; one batch is one ``write`` and a flush, so a
crash leaves at most a torn last line, which ``influx write`` reports and skips.
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Final

from controller.tsdb.batching import BatchingSink

log = logging.getLogger(__name__)

_FILE_NAME: Final = re.compile(r"^points-\d{8}T\d{6}Z-\d{4,}\.lp$")


class FileSink(BatchingSink):
    """Writes points to rotating line-protocol files in ``directory``.

    Make it inside a running event loop (it starts its task there).
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        max_bytes: int,
        keep: int,
        batch_size: int = 5000,
        flush_interval_s: float = 1.0,
        max_queued_points: int = 1_000_000,
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._max_bytes = max_bytes
        self._keep = keep
        self._file: BinaryIO | None = None
        self._file_bytes = 0
        self._sequence = 0
        super().__init__(
            name="line-protocol files",
            batch_size=batch_size,
            flush_interval_s=flush_interval_s,
            max_queued_points=max_queued_points,
        )
        log.info("writing points as line protocol to %s (no InfluxDB configured)", self.directory)

    def files(self) -> list[Path]:
        """This sink's files in the directory, oldest first."""
        return sorted(p for p in self.directory.iterdir() if _FILE_NAME.match(p.name))

    async def _deliver(self, lines: list[str]) -> None:
        data = ("\n".join(lines) + "\n").encode()
        try:
            await asyncio.to_thread(self._append, data)
        except OSError as exc:
            self._dropped_here += len(lines)
            self._log_once("io", f"cannot write line-protocol files in {self.directory}: {exc}")
        else:
            self._written += len(lines)

    def _append(self, data: bytes) -> None:
        if self._file is None:
            self._open_next()
        assert self._file is not None
        self._file.write(data)
        self._file.flush()
        self._file_bytes += len(data)
        if self._file_bytes >= self._max_bytes:
            self._file.close()
            self._file = None

    def _open_next(self) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        while True:
            # never append to an older file (a restart within the same second)
            self._sequence += 1
            path = self.directory / f"points-{stamp}-{self._sequence:04d}.lp"
            if not path.exists():
                break
        self._file = path.open("xb")
        self._file_bytes = 0
        for old in self.files()[: -self._keep]:
            log.info("deleting %s: more than %d line-protocol files", old, self._keep)
            old.unlink(missing_ok=True)

    async def _release(self) -> None:
        if self._file is not None:
            file, self._file = self._file, None
            await asyncio.to_thread(file.close)
