"""Shared fixtures: real services, started by the tests themselves (DESIGN §7).

A missing service skips its tests, except under ``REQUIRE_SERVICES=1`` (CI), where it fails
them: CI must not go green by skipping what it was meant to test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import NoReturn

import pytest

from harness.mosquitto import MosquittoBroker, find_mosquitto


def _missing_service(message: str) -> NoReturn:
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message} (REQUIRE_SERVICES=1)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoBroker]:
    """A Mosquitto broker on a free loopback port for the whole session.

    Tests may ``stop()`` and ``start()`` it (same port); it is started again if a test left it
    stopped, and terminated at the end.
    """
    executable = find_mosquitto()
    if executable is None:
        _missing_service("mosquitto is not installed (apt-get install mosquitto)")
    broker = MosquittoBroker(executable, tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def broker(mosquitto: MosquittoBroker) -> MosquittoBroker:
    """The session's broker, running (a test that stopped it and failed may have left it down)."""
    mosquitto.start()
    return mosquitto


def controller_acl(prefix: str, *, allow_commands: bool) -> str:
    """The ACL of a plant whose controller may read the plant's topics and write its own
    (``controller/#``), but ``command/#`` only when ``allow_commands``; the plant may do
    anything under the prefix."""
    commands = f"topic write {prefix}/command/#\n" if allow_commands else ""
    return (
        f"user controller\ntopic read {prefix}/telemetry/#\ntopic read {prefix}/forecast/#\n"
        f"topic read {prefix}/plant/#\ntopic readwrite {prefix}/controller/#\n{commands}\n"
        f"user plant\ntopic readwrite {prefix}/#\n"
    )


@pytest.fixture
def acl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoBroker]:
    """A broker of its own that takes only the users ``controller`` and ``plant`` (passwords in
    ``.users``), with :func:`controller_acl` for the topic prefix ``acl``: the controller may
    not publish ``acl/command/#``."""
    executable = find_mosquitto()
    if executable is None:
        _missing_service("mosquitto is not installed (apt-get install mosquitto)")
    broker = MosquittoBroker(
        executable,
        tmp_path_factory.mktemp("mosquitto-acl"),
        users={"controller": "c-secret", "plant": "p-secret"},
        acl=controller_acl("acl", allow_commands=False),
    )
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


# --- VictoriaMetrics: the time-series server the InfluxDB writer is tested against ----------

from victoria import VictoriaMetrics, find_victoria_metrics  # noqa: E402


@pytest.fixture(scope="session")
def victoria(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VictoriaMetrics]:
    """A VictoriaMetrics on a free loopback port for the whole session (DESIGN §7).

    Tests may ``stop()`` and ``start()`` it (same port, same data); it is started again if a
    test left it stopped, and terminated at the end.
    """
    executable = find_victoria_metrics()
    if executable is None:
        _missing_service("victoria-metrics is not installed (apt-get install victoria-metrics)")
    server = VictoriaMetrics(executable, tmp_path_factory.mktemp("victoria"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def tsdb(victoria: VictoriaMetrics) -> VictoriaMetrics:
    """The session's VictoriaMetrics, running (a failed test may have left it stopped)."""
    victoria.start()
    return victoria
