"""The systemd units, sysusers file and the daemon's side of ``Type=notify`` and the watchdog.

The units are checked with systemd's own tools (``systemd-analyze verify`` and ``security
--offline=yes``, ``systemd-sysusers``) where systemd is installed; the daemon's notifications
are read from a notify socket of the test's own, as systemd would: READY=1 with the broker
down, WATCHDOG=1 while healthy and none while a solve overruns its deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from conftest import _missing_service
from daemon_helpers import SCENARIO, daemon_config, new_prefix, simulator

from controller.daemon.service import Daemon
from controller.daemon.systemd import supervise, watchdog_interval_s
from controller.planner.types import PlannerConfig
from controller.sitefile import site_toml
from harness.mosquitto import MosquittoBroker, free_port
from harness.site_from_scenario import site_from_scenario

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
UNITS = ("smelter-ems.service", "smelter-ems-simulator.service")
INSTALLED_EXE = "/opt/smelter-ems/.venv/bin/smelter-ems"
MAX_EXPOSURE = 2.5


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        _missing_service(f"{name} is not installed (it comes with systemd)")
    return path


@pytest.fixture
def units(tmp_path: Path) -> list[Path]:
    """The units with the installed executable replaced by a stub (verify checks it exists)."""
    stub = tmp_path / "smelter-ems"
    stub.write_text("#!/bin/sh\n", encoding="utf-8")
    stub.chmod(0o755)
    out = []
    for name in UNITS:
        text = (DEPLOY / name).read_text(encoding="utf-8")
        assert INSTALLED_EXE in text
        (tmp_path / name).write_text(text.replace(INSTALLED_EXE, str(stub)), encoding="utf-8")
        out.append(tmp_path / name)
    return out


def test_systemd_analyze_verify_is_clean(units: list[Path]) -> None:
    done = subprocess.run(
        [_tool("systemd-analyze"), "verify", *map(str, units)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


@pytest.mark.parametrize("name", UNITS)
def test_the_exposure_is_at_most_2_5(name: str) -> None:
    done = subprocess.run(
        [_tool("systemd-analyze"), "security", "--offline=yes", str(DEPLOY / name)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", done.stdout)
    assert found is not None, done.stdout
    assert float(found.group(1)) <= MAX_EXPOSURE, done.stdout


def test_sysusers_creates_the_user_the_units_run_as(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    conf = (DEPLOY / "sysusers.d" / "smelter-ems.conf").read_text(encoding="utf-8")
    subprocess.run(
        [_tool("systemd-sysusers"), f"--root={tmp_path}", "-"],
        input=conf,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    users = {
        line.split(":")[0]: line.split(":")
        for line in (tmp_path / "etc" / "passwd").read_text().splitlines()
    }
    groups = {line.split(":")[0] for line in (tmp_path / "etc" / "group").read_text().splitlines()}
    for name in UNITS:
        text = (DEPLOY / name).read_text(encoding="utf-8")
        user = re.search(r"^User=(\S+)$", text, re.M)
        group = re.search(r"^Group=(\S+)$", text, re.M)
        assert user is not None and group is not None
        assert user.group(1) in users and group.group(1) in groups
        assert users[user.group(1)][-1].endswith("nologin")  # no login shell
        assert int(users[user.group(1)][2]) < 1000  # a system user


def test_the_watchdog_interval_is_systemds_and_only_for_its_process() -> None:
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000"}, 7) == 30.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "7"}, 7) == 30.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "8"}, 7) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "0"}, 7) is None
    assert watchdog_interval_s({}, 7) is None


# --- the daemon's notifications -----------------------------------------------------------------


@contextlib.contextmanager
def notify_socket(path: Path) -> Iterator[socket.socket]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.setblocking(False)
        yield sock


def drain(sock: socket.socket) -> list[str]:
    out = []
    with contextlib.suppress(BlockingIOError):
        while True:
            out.append(sock.recv(4096).decode())
    return out


def test_ready_and_watchdog_with_the_broker_down_and_stopping_at_sigterm(tmp_path: Path) -> None:
    """A broker that is down at boot is not a failed start: READY=1 comes once the loop turns,
    the status line says the broker is not connected, and the watchdog is fed meanwhile."""
    site = tmp_path / "site.toml"
    site.write_text(site_toml(site_from_scenario(SCENARIO)), encoding="utf-8")
    messages: list[str] = []
    with notify_socket(tmp_path / "notify") as sock:
        env = {
            "NOTIFY_SOCKET": str(tmp_path / "notify"),
            "WATCHDOG_USEC": "600000",  # pings every 0.2 s
            "STATE_DIRECTORY": str(tmp_path / "state"),
            "PATH": "/usr/bin:/bin",
        }
        argv = ["run", "--site", str(site), "--broker", f"mqtt://127.0.0.1:{free_port()}"]
        cwd = tmp_path / "cwd"
        cwd.mkdir()
        with open(tmp_path / "run.log", "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "smelter_ems.cli", *argv, "--http-port", "0"],
                stderr=log,
                env=env,
                cwd=cwd,
            )
        try:
            deadline = time.monotonic() + 60.0
            while sum(m == "WATCHDOG=1" for m in messages) < 3 and time.monotonic() < deadline:
                messages += drain(sock)
                time.sleep(0.05)
        finally:
            process.terminate()
            code = process.wait(30)
        time.sleep(0.1)
        messages += drain(sock)
    assert code == 0
    ready = [m for m in messages if m.startswith("READY=1")]
    assert len(ready) == 1
    assert "broker mqtt://127.0.0.1:" in ready[0] and "not connected, retrying" in ready[0]
    assert messages.index(ready[0]) < messages.index("WATCHDOG=1")
    assert messages.count("WATCHDOG=1") >= 3
    assert messages[-1] == "STOPPING=1"
    # what the daemon keeps went where systemd said, nothing into the current directory
    assert (tmp_path / "state" / "points").is_dir()
    assert list(cwd.iterdir()) == []


class _Hung:
    """The daemon's planner, hung until ``release`` is set."""

    def __init__(self, planner: Any, release: threading.Event) -> None:
        self._planner = planner
        self._release = release

    def __getattr__(self, name: str) -> Any:
        return getattr(self._planner, name)

    def plan(self, job: Any) -> Any:
        self._release.wait(60.0)
        return self._planner.plan(job)


async def test_no_watchdog_ping_while_a_solve_overruns_its_deadline(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    """The solver hangs (a stand-in that blocks until released): the daemon answers with the
    fallback plan at its deadline, and from then on stops feeding the watchdog, so that
    systemd restarts it; once the solve returns, the pings resume."""
    prefix = new_prefix()
    config = daemon_config(broker, prefix, tmp_path / "s.json")
    config = msgspec.structs.replace(config, planner=PlannerConfig(time_limit_s=0.5))
    daemon = Daemon(config, site_from_scenario(SCENARIO))
    release = threading.Event()
    daemon.core.planner = _Hung(daemon.core.planner, release)
    stop = asyncio.Event()
    env = {"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "300000"}
    with notify_socket(tmp_path / "notify") as sock:
        async with simulator(broker, prefix, speed=300.0):
            run = asyncio.create_task(daemon.run(stop))
            notify = asyncio.create_task(supervise(daemon, environ=env))
            try:
                async with asyncio.timeout(30.0):
                    while daemon.solve_overrun_s(time.monotonic()) <= 0.0:
                        drain(sock)  # as systemd does: a full queue would drop pings
                        await asyncio.sleep(0.05)
                drain(sock)
                during: list[str] = []
                for _ in range(10):  # ten ping periods
                    await asyncio.sleep(0.1)
                    during += drain(sock)
                assert daemon.core.fallback_plans >= 1  # the overrun was answered at once
                assert time.monotonic() - daemon.stats.last_tick_wall_s < 1.0  # loop turns
                release.set()
                async with asyncio.timeout(10.0):
                    while "WATCHDOG=1" not in drain(sock):
                        await asyncio.sleep(0.05)
            finally:
                release.set()
                notify.cancel()
                stop.set()
                await asyncio.wait_for(run, 30.0)
    assert "WATCHDOG=1" not in during
