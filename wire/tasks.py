"""Small asyncio helpers both sides' shells use: run tasks until one ends, sleep until a stop,
serve until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)


async def sleep_unless_stopped(stop: asyncio.Event, delay_s: float) -> None:
    if delay_s <= 0:
        await asyncio.sleep(0)
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(delay_s):
            await stop.wait()


async def run_concurrently(coros: tuple[Coroutine[Any, Any, Any], ...], return_when: str) -> None:
    """Run ``coros`` until ``return_when``; cancel the rest; re-raise the first failure."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        done, _ = await asyncio.wait(tasks, return_when=return_when)
    finally:
        await cancel_and_wait(tasks)
    # Reading every outcome also keeps asyncio from reporting exceptions "never retrieved".
    failures = [exc for t in tasks if not t.cancelled() and (exc := t.exception()) is not None]
    # The failure that ended the wait comes first: the others are its consequences.
    ending = [exc for t in done if not t.cancelled() and (exc := t.exception()) is not None]
    if ending or failures:
        raise (ending or failures)[0]


async def cancel_and_wait(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and wait until they have finished.

    Cancels again until they do: on Python 3.11, the ``asyncio.wait_for`` inside aiomqtt's
    publish can swallow a cancellation that races with the PUBACK (cpython#86296), which left
    the publishing task running and a stop hanging.
    """
    pending = {t for t in tasks if not t.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.1)


async def until_first_done(*coros: Coroutine[Any, Any, Any]) -> None:
    await run_concurrently(coros, asyncio.FIRST_COMPLETED)


async def until_all_done(*coros: Coroutine[Any, Any, Any]) -> None:
    """Run until all finish; if one fails, cancel the others and re-raise."""
    await run_concurrently(coros, asyncio.FIRST_EXCEPTION)


async def serve_until_signalled(
    serve: Callable[[asyncio.Event], Awaitable[None]],
    *,
    on_signal: Callable[[], None] | None = None,
    logger: logging.Logger = log,
) -> None:
    """Run ``serve(stop)`` until it returns; SIGINT or SIGTERM sets ``stop`` (and calls
    ``on_signal``).  A second signal takes the default action, so that a stop that hangs can
    still be forced."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)

    def handle(signum: signal.Signals) -> None:
        logger.info("%s received: stopping", signum.name)
        if on_signal is not None:
            on_signal()
        stop.set()
        for sig in signals:
            loop.remove_signal_handler(sig)

    for sig in signals:
        loop.add_signal_handler(sig, handle, sig)
    try:
        await serve(stop)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
