"""The daemon's start-up check: one dry solve of its planning problem, beside everything else.

Against the simulator through a real Mosquitto, as in tests/test_daemon.py: a time limit far
too short for any solve makes the check warn every time (status reason and log, naming the
remedies); a check held back on its thread delays neither telemetry nor the first plan and
setpoints.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from daemon_helpers import SCENARIO, daemon_config, new_prefix, simulator, watcher

from controller.config import DaemonConfig
from controller.daemon.service import Daemon
from controller.daemon.startup import CONDITION, StartupCheck
from controller.planner import dryrun
from controller.planner.types import PlannerConfig, SolveStatus
from controller.site import SiteModel
from harness.mosquitto import MosquittoBroker
from harness.site_from_scenario import site_from_scenario
from wire import ControllerStatus, PotlineSetpoint, Source

pytestmark = [pytest.mark.services, pytest.mark.timeout(120)]

TINY_LIMIT_S = 1e-3
"""Less than building the LP takes: the dry solve is over half of it whatever the machine."""


@contextlib.asynccontextmanager
async def _daemon(daemon: Daemon) -> AsyncIterator[Daemon]:
    stop = asyncio.Event()
    task = asyncio.create_task(daemon.run(stop))
    try:
        yield daemon
    finally:
        stop.set()
        await asyncio.wait_for(task, 30.0)


def _says_startup(topic: str, payload: object) -> bool:
    return isinstance(payload, ControllerStatus) and any(
        r.startswith("start-up check:") for r in payload.reasons
    )


async def test_a_planning_problem_too_slow_for_its_time_limit_is_warned_about_at_start_up(
    broker: MosquittoBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    prefix = new_prefix()
    base = daemon_config(broker, prefix, tmp_path / "s.json")
    config = DaemonConfig(
        mqtt=base.mqtt, controller=base.controller, planner=PlannerConfig(time_limit_s=TINY_LIMIT_S)
    )
    caplog.set_level(logging.INFO, logger="controller.daemon.startup")
    daemon = Daemon(config, site_from_scenario(SCENARIO))
    async with (
        simulator(broker, prefix, speed=600.0),
        _daemon(daemon),
        watcher(broker, prefix, "controller/status") as w,
    ):
        _, status = await w.wait_for(_says_startup)
    result = daemon.startup.result
    assert result is not None and result.solve_ms > TINY_LIMIT_S * 1e3 / 2
    assert result.status in (SolveStatus.TIME_LIMIT, SolveStatus.FALLBACK)
    (reason,) = [r for r in status.reasons if r.startswith("start-up check:")]
    assert "far_step_min = 60" in reason and "time_limit_s" in reason
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.name == "controller.daemon.startup" and r.levelno == logging.WARNING
    ]
    assert len(warnings) == 1 and warnings[0] == reason
    assert daemon.core.board.conditions[CONDITION][1] is False  # degraded, not fallback


async def test_the_check_delays_neither_telemetry_nor_the_first_setpoints(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    """The dry solve is held on its thread until the daemon has sent its first planned
    setpoints; then it runs (with a time limit it cannot meet) and its warning follows."""
    release = threading.Event()

    def held(site: SiteModel, cfg: PlannerConfig, t_s: float) -> dryrun.DryRun:
        assert release.wait(60.0)
        return dryrun.dry_solve(site, dataclasses.replace(cfg, time_limit_s=TINY_LIMIT_S), t_s)

    prefix = new_prefix()
    config = daemon_config(broker, prefix, tmp_path / "s.json")
    daemon = Daemon(config, site_from_scenario(SCENARIO))
    daemon.startup._dry_solve = held
    try:
        async with (
            simulator(broker, prefix, speed=600.0),
            _daemon(daemon),
            watcher(broker, prefix, "#") as w,
        ):
            await w.wait_for(lambda t, p: isinstance(p, PotlineSetpoint) and p.source == Source.MPC)
            assert daemon.startup.result is None  # still held
            assert daemon.core.ingest.accepted["potline"] > 0
            assert not any(_says_startup("", p) for _, p in w.seen)
            release.set()
            await w.wait_for(_says_startup, after=0)
    finally:
        release.set()


class _Conditions:
    def __init__(self) -> None:
        self.seen: dict[str, str | None] = {}

    def condition(self, name: str, reason: str | None, *, uncontrolled: bool = False) -> None:
        self.seen[name] = reason


async def test_a_problem_solved_well_within_its_time_limit_leaves_the_status_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    conditions = _Conditions()
    caplog.set_level(logging.INFO, logger="controller.daemon.startup")
    check = StartupCheck(site_from_scenario(SCENARIO), PlannerConfig(), conditions)
    result = await check.run()
    assert result is not None and result.status == SolveStatus.OPTIMAL and not result.warning
    assert conditions.seen == {}
    assert "of its 10 s time limit" in caplog.records[-1].getMessage()


async def test_a_check_that_raises_says_so_in_the_status_and_does_not_stop_the_daemon() -> None:
    def broken(site: SiteModel, cfg: PlannerConfig, t_s: float) -> dryrun.DryRun:
        raise RuntimeError("out of memory")

    conditions = _Conditions()
    check = StartupCheck(
        site_from_scenario(SCENARIO), PlannerConfig(), conditions, dry_solve=broken
    )
    assert await check.run() is None
    assert conditions.seen == {
        CONDITION: "start-up check: the planner's dry solve failed: RuntimeError: out of memory"
    }
