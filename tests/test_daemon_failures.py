"""The daemon when the broker side goes wrong without the plant's doing: a bug that kills the
daemon, a broker that refuses its setpoints.  Against a real Mosquitto (the refusals through one
with an ACL that denies the controller ``command/#``).

Each failure must show where operators look (the retained status, the log, ``/metrics``), once,
and clear when it is over.  A full disk is in tests/test_daemon_core.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiomqtt
import msgspec
import pytest
from conftest import controller_acl
from daemon_helpers import (
    SCENARIO,
    controller,
    daemon_config,
    mqtt,
    new_prefix,
    simulator,
    watcher,
)

from controller.daemon.http import serve_http
from controller.daemon.service import Daemon
from harness.mosquitto import MosquittoBroker
from harness.site_from_scenario import site_from_scenario
from wire import ControllerState, ControllerStatus, Topics, decode

pytestmark = [pytest.mark.services, pytest.mark.timeout(120)]


async def _retained_status(broker: MosquittoBroker, prefix: str) -> ControllerStatus:
    """What a dashboard that connects now reads on ``{prefix}/controller/status``."""
    async with aiomqtt.Client(broker.host, broker.port, timeout=5) as client:
        await client.subscribe(Topics(prefix).status(), qos=1)
        async with asyncio.timeout(5.0):
            async for message in client.messages:
                assert message.retain
                assert isinstance(message.payload, bytes)
                return decode("status", message.payload, ControllerStatus)
    raise AssertionError("no retained status")


def _running(topic: str, payload: object) -> bool:
    return isinstance(payload, ControllerStatus) and payload.state == ControllerState.RUNNING


def _raises(what: str) -> Callable[..., Any]:
    def broken(*args: object, **kwargs: object) -> Any:
        raise RuntimeError(what)

    return broken


# --- a bug kills the daemon ---------------------------------------------------------------------


@pytest.mark.parametrize("where", ["receiving", "publishing", "ticker"])
async def test_a_daemon_that_dies_of_a_bug_leaves_the_status_offline(
    broker: MosquittoBroker, tmp_path: Path, where: str
) -> None:
    """A clean DISCONNECT makes the broker drop the last will, so a daemon that dies of an
    exception must say ``offline`` itself, or end its connection so that the will says it.

    ``receiving``: the link fails on a message; it says offline, with the error.
    ``publishing``: the link fails as it publishes, and cannot say offline: the last will does.
    ``ticker``: the control loop fails; the link is fine, and the stop is staged as for a
    signal (safe setpoints, then offline with the error)."""
    prefix = new_prefix()
    config = daemon_config(broker, prefix, tmp_path / "s.json")
    daemon = Daemon(config, site_from_scenario(SCENARIO))
    stop = asyncio.Event()
    async with (
        simulator(broker, prefix, speed=300.0),
        watcher(broker, prefix, "controller/status") as w,
    ):
        run = asyncio.create_task(daemon.run(stop))
        try:
            await w.wait_for(_running)
            bug = f"a bug while {where}"
            if where == "receiving":
                daemon.core.on_message = _raises(bug)  # type: ignore[method-assign]
            elif where == "publishing":
                daemon.outbound.route = _raises(bug)  # type: ignore[method-assign]
            else:
                daemon.core.tick = _raises(bug)  # type: ignore[method-assign]
            with pytest.raises(RuntimeError, match=bug):
                await asyncio.wait_for(run, 30.0)
        finally:
            stop.set()
            if not run.done():
                await asyncio.wait_for(run, 30.0)
    status = await _retained_status(broker, prefix)
    assert status.state == ControllerState.OFFLINE
    assert status.instance == daemon.instance
    if where == "publishing":
        assert status.reasons == ["controller connection lost"]  # the last will
    else:
        assert status.reasons[0].startswith(f"controller failed: RuntimeError: {bug}")


# --- the broker refuses the setpoints ------------------------------------------------------------


async def test_setpoints_the_broker_refuses_are_counted_and_the_status_says_so(
    acl_broker: MosquittoBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Mosquitto with an ACL that lets the controller's user read telemetry and write its own
    topics, but not ``command/#``: MQTT 5 PUBACKs say 0x87 (not authorised), which aiomqtt's
    publish does not raise.  The plant gets nothing, and the status must say so."""
    prefix = "acl"  # the ACL file names it
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for user, password in acl_broker.users.items():
        (secrets / user).write_text(password)

    def settings(user: str) -> Any:
        return msgspec.structs.replace(
            mqtt(acl_broker, prefix), username=user, password_file=str(secrets / user)
        )

    config = msgspec.structs.replace(
        daemon_config(acl_broker, prefix, tmp_path / "s.json"),
        mqtt=settings("controller"),
    )
    caplog.set_level(logging.INFO, logger="controller.daemon.troubles")
    async with (
        simulator(acl_broker, prefix, speed=300.0, settings=settings("plant")),
        controller(config) as d,
    ):
        async with asyncio.timeout(30.0):
            while not d.refusals.counts:
                await asyncio.sleep(0.1)
        status = d.core.status()
        assert status.state == ControllerState.FALLBACK
        assert any(
            r
            == "the broker refuses setpoints (Not authorized, 0x87): the plant is not getting them"
            for r in status.reasons
        )
        server = await serve_http("127.0.0.1", 0, d)
        try:
            port = server.port
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")  # 1.1 needs Host
            body = (await reader.read()).decode()
            writer.close()
        finally:
            await server.close()
        refused = d.refusals.counts["setpoints", "Not authorized"]
        assert refused >= 1
        assert (
            'smelter_mqtt_publish_refused_total{kind="setpoints",reason="Not authorized"}' in body
        )
        # the operators open command/# to the controller: setpoints go through again
        acl_broker.write_acl(controller_acl(prefix, allow_commands=True))
        acl_broker.reload()
        async with asyncio.timeout(30.0):
            while d.core.status().state == ControllerState.FALLBACK:
                await asyncio.sleep(0.1)
        assert not any("refuses" in r for r in d.core.status().reasons)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].startswith(
        "the broker refuses setpoints (Not authorized, 0x87): the plant is not getting them; "
        f"first on {prefix}/command/"
    )
    assert errors[0].endswith("check the broker's ACL for user controller")
    cleared = [r.getMessage() for r in caplog.records if "takes setpoints again" in r.getMessage()]
    assert len(cleared) == 1
