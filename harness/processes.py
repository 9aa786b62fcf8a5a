"""``smelter-ems`` commands as child processes, for the demo, the tests and the benches.

Each runs as ``python -m smelter_ems.cli ARGV`` with unbuffered output and its stderr (its log)
appended to a file; :func:`log_says` waits for a line in that log without blocking the event
loop; :func:`stop_process` stops it as a service manager would (SIGTERM, SIGKILL if it hangs).
"""

from __future__ import annotations

import asyncio
import codecs
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

STOP_TIMEOUT_S: Final = 30.0
LOG_POLL_S: Final = 0.05


class ProcessExitedError(RuntimeError):
    """The process ended while it was being waited for (``code``: its exit code)."""

    def __init__(self, code: int) -> None:
        super().__init__(f"exited with {code}")
        self.code = code


def cli(
    argv: Sequence[str], log_path: Path, *, own_session: bool = False
) -> subprocess.Popen[bytes]:
    """``smelter-ems ARGV`` as a process, its stderr appended to ``log_path``; ``own_session``:
    a Ctrl-C at the terminal does not reach it (the demo stops its children in order)."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "smelter_ems.cli", *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=own_session,
        )


def stop_process(
    process: subprocess.Popen[bytes], timeout_s: float = STOP_TIMEOUT_S, *, kill: bool = False
) -> int:
    """SIGTERM (or SIGKILL with ``kill``, like a crash), and its exit code; killed (code -9)
    if it has not stopped within ``timeout_s``.  It blocks: from a coroutine, call it through
    :func:`asyncio.to_thread`."""
    if process.poll() is None:
        if kill:
            process.kill()
        else:
            process.terminate()
    try:
        return process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


async def log_says(
    path: Path,
    text: str,
    timeout_s: float = 30.0,
    *,
    process: subprocess.Popen[bytes] | None = None,
    stop: asyncio.Event | None = None,
) -> bool:
    """Wait until the log at ``path`` holds ``text`` (True), or ``stop`` is set (False).  The
    file is read off the event loop, only what was appended since the last look.

    Raises:
        TimeoutError: neither within ``timeout_s``.
        ProcessExitedError: ``process`` ended first.
    """
    async with asyncio.timeout(timeout_s):
        return await _log_says(path, text, process, stop)


async def _log_says(
    path: Path,
    text: str,
    process: subprocess.Popen[bytes] | None,
    stop: asyncio.Event | None,
) -> bool:
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    seen = ""
    offset = 0
    while stop is None or not stop.is_set():
        new = await asyncio.to_thread(_read_from, path, offset)
        offset += len(new)
        # what came before stays only as far as the text may straddle two reads
        seen = seen[-len(text) :] + decoder.decode(new)
        if text in seen:
            return True
        if process is not None and process.poll() is not None:
            raise ProcessExitedError(process.returncode)
        await asyncio.sleep(LOG_POLL_S)
    return False


def log_tail(path: Path, lines: int = 15) -> str:
    """The last ``lines`` lines of the log at ``path`` ("" when there is none)."""
    text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


def _read_from(path: Path, offset: int) -> bytes:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            return f.read()
    except FileNotFoundError:
        return b""
