"""The control daemon (``smelter-ems run``): MQTT in, safe setpoints out, all day, every day.

:mod:`controller.core.core` decides (pure), :mod:`controller.daemon.service` runs it on
asyncio, :mod:`controller.daemon.lease` decides which instance on a broker is the active one and
:mod:`controller.daemon.outbound` what it may publish,
:mod:`controller.daemon.persist` keeps what survives a restart, :mod:`controller.daemon.troubles`
says when a failure starts and ends, :mod:`controller.daemon.paho_hooks` reads what aiomqtt does
not tell (refused publications) and ends a connection so that the last will goes out,
:mod:`controller.daemon.http` serves ``/healthz`` and ``/metrics``,
:mod:`controller.daemon.systemd` tells systemd it is ready and alive (the watchdog), and
:mod:`controller.daemon.cli` reads the config and site files and the flags.  Operations:
docs/operations.md.
"""

from __future__ import annotations

import asyncio
import logging

from controller.config import DaemonConfig
from controller.daemon.service import Daemon
from controller.daemon.systemd import sd_notify, supervise
from controller.site import SiteModel
from wire.tasks import serve_until_signalled
from wire.tomlfile import FileError

log = logging.getLogger(__name__)

__all__ = ["Daemon", "run"]


def run(config: DaemonConfig, site: SiteModel) -> int:
    """Serve until SIGINT or SIGTERM.  Returns 0 on a clean stop, 2 when the config's password
    or TLS files cannot be used (the reason is logged)."""
    try:
        asyncio.run(_serve_until_signalled(config, site))
    except FileError as exc:
        log.error("%s", exc)
        return 2
    return 0


async def _serve_until_signalled(config: DaemonConfig, site: SiteModel) -> None:
    daemon = Daemon(config, site)

    async def serve(stop: asyncio.Event) -> None:
        notify = asyncio.create_task(supervise(daemon))
        try:
            await daemon.run(stop)
        finally:
            notify.cancel()

    await serve_until_signalled(serve, on_signal=lambda: sd_notify("STOPPING=1"), logger=log)
