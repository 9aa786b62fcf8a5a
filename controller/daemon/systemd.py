"""What the daemon tells systemd (``Type=notify``, ``WatchdogSec=``): ready, status, alive.

- ``READY=1`` once the state file is read and the control loop has turned once, whether or not
  the broker is reachable: a broker that is down at boot is the daemon's to wait for (it
  retries with backoff, and the plant's own protection holds the assets meanwhile), not a
  failed start.  So the start never times out, and the watchdog covers the wait too.
- ``STATUS=`` the controller's state and whether the broker is connected, when that changes
  (``systemctl status`` shows it).
- ``WATCHDOG=1`` every third of ``WatchdogSec`` while the daemon is healthy: the event loop
  turns (the ticker ran within :data:`~.http.STUCK_S`, as ``/healthz`` judges it) and no
  solve has overrun its deadline.
  A solve that overruns is answered with the fallback plan at once, but no new solve starts
  until it returns; a daemon stuck that way, or with a blocked loop, is killed by systemd and
  restarted (``Restart=on-failure``), and resumes from its state file.  The pings are sent
  from the event loop itself, so a blocked loop sends none.
- ``STOPPING=1`` at SIGTERM (:func:`sd_notify`, called by the signal handler).

Without systemd (no ``NOTIFY_SOCKET``) nothing is sent.  sd_notify(3) describes the protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Final

from controller.daemon.http import STUCK_S

if TYPE_CHECKING:
    from controller.daemon.service import Daemon

log = logging.getLogger(__name__)

"""The ticker runs every 0.2 s: this long without a tick is a blocked loop (as ``/healthz``)."""
STATUS_EVERY_S: Final = 1.0
"""How often the status line is looked at when there is no watchdog."""


def sd_notify(message: str, environ: Mapping[str, str] = os.environ) -> None:
    """Send ``message`` to systemd's notify socket; nothing without one.  Never blocks: this runs
    on the event loop, and a full socket queue drops the message (the next ping follows)."""
    address = environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with (
        contextlib.suppress(OSError),
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock,
    ):
        sock.setblocking(False)
        sock.connect(address)
        sock.sendall(message.encode())


def watchdog_interval_s(environ: Mapping[str, str], pid: int) -> float | None:
    """``WatchdogSec`` as systemd passes it (``WATCHDOG_USEC``), if it is meant for ``pid``."""
    usec = environ.get("WATCHDOG_USEC", "")
    owner = environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (owner and owner != str(pid)):
        return None
    return int(usec) / 1e6


def unhealthy(daemon: Daemon, now_s: float) -> str | None:
    """Why the watchdog must not be fed now (None: healthy)."""
    stuck_s = now_s - daemon.stats.last_tick_wall_s
    if stuck_s >= STUCK_S:
        return f"the control loop has not turned for {stuck_s:.1f} s"
    overrun_s = daemon.solve_overrun_s(now_s)
    if overrun_s > 0.0:
        return f"a solve has overrun its deadline by {overrun_s:.1f} s"
    return None


def status_line(daemon: Daemon) -> str:
    state = daemon.core.status().state.value
    broker = "connected" if daemon.stats.connected else "not connected, retrying"
    return f"{state}; broker {daemon.config.mqtt.url} {broker}"


async def supervise(
    daemon: Daemon,
    *,
    environ: Mapping[str, str] = os.environ,
    monotonic: Callable[[], float] = time.monotonic,
) -> None:
    """Tell systemd about ``daemon`` until cancelled: READY=1 at its first tick, then the
    status line and the watchdog pings (see the module's docstring)."""
    if not environ.get("NOTIFY_SOCKET"):
        return
    interval_s = watchdog_interval_s(environ, os.getpid())
    period_s = interval_s / 3 if interval_s is not None else STATUS_EVERY_S
    started_s = monotonic()
    while daemon.stats.last_tick_wall_s < started_s:
        await asyncio.sleep(0.05)
    shown = status_line(daemon)
    sd_notify(f"READY=1\nSTATUS={shown}", environ)
    withheld: str | None = None
    while True:
        await asyncio.sleep(period_s)
        line = status_line(daemon)
        if line != shown:
            shown = line
            sd_notify(f"STATUS={line}", environ)
        if interval_s is None:
            continue
        why = unhealthy(daemon, monotonic())
        if why is None:
            if withheld is not None:
                log.warning("watchdog: healthy again, pinging systemd")
            withheld = None
            sd_notify("WATCHDOG=1", environ)
        elif withheld is None:
            withheld = why
            log.error(
                "watchdog: %s: not pinging systemd, which restarts the daemon after %g s",
                why,
                interval_s,
            )
