"""Time and trust against a real Mosquitto and the daemon as its own process: retained poison
on the broker must not stop a starting daemon (docs/reliability.md, cases 1 and 3)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest
from daemon_helpers import (
    SCENARIO,
    cli,
    config_file,
    make_plant,
    new_prefix,
    publish,
    simulator,
    watcher,
)

from controller.core.ingest import CORE_REJECT_KINDS
from harness.mosquitto import MosquittoBroker
from harness.processes import log_says, stop_process
from wire import ControllerStatus, Mode, ModeCommand, PotlineSetpoint, Source, Topics, encode

pytestmark = [pytest.mark.services, pytest.mark.timeout(180)]

SPEED = 60.0


async def _controls(broker: MosquittoBroker, prefix: str, tmp_path: Path) -> None:
    """Start the daemon process next to the simulator; it must take control: MPC setpoints
    for L1, and a status that is neither offline nor starting."""
    config = config_file(
        broker, prefix, tmp_path, tmp_path / "points", controller={"lease_ttl_s": 2.0}
    )
    plant = make_plant(prefix)
    daemon = cli(tmp_path, "run", "--config", str(config))
    try:
        # what is retained reaches the daemon before the simulator can overwrite it
        await log_says(tmp_path / "run.log", "connected to MQTT broker")
        async with (
            watcher(broker, prefix, "command/#", "controller/status") as w,
            simulator(broker, prefix, speed=SPEED, plant=plant),
        ):
            _, sp = await w.wait_for(
                lambda t, p: isinstance(p, PotlineSetpoint) and p.source == Source.MPC,
                timeout_s=60.0,
            )
            assert t_ok(sp, plant.now_s)
            await w.wait_for(
                lambda t, p: (
                    isinstance(p, ControllerStatus) and p.state.value in ("running", "degraded")
                ),
                timeout_s=30.0,
            )
            assert daemon.poll() is None  # still running
    finally:
        assert await asyncio.to_thread(stop_process, daemon) == 0


def t_ok(sp: PotlineSetpoint, plant_now_s: float) -> bool:
    """A setpoint stamped with today's plant time, not a lock's or a forgery's."""
    return abs(sp.ts - plant_now_s) < 3600.0


async def test_a_retained_malformed_forecast_does_not_stop_a_starting_daemon(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    """`times` of length 2 with `ghi_wm2` of length 3, retained: it killed the daemon at
    once and at every restart.  Now it is refused (`schema`) and the daemon takes control,
    twice in a row."""
    prefix = new_prefix()
    topic = Topics(prefix).weather("yunnan")
    bad = b'{"ts": 1780272000, "issued_ts": 1780272000, "times": [1780272000, 1780275600],'
    bad += b' "ghi_wm2": [500.0, 600.0, 700.0]}'
    for run in ("first", "restart"):
        # retained again: the simulator's own forecast on the topic replaced it meanwhile
        await publish(broker, topic, bad, retain=True)
        await _controls(broker, prefix, tmp_path / run)
        log = (tmp_path / run / "run.log").read_text(encoding="utf-8")
        assert "schema" in log and "ghi_wm2 has 3 values for 2 times" in log, run


async def test_a_retained_far_future_hold_does_not_lock_out_a_starting_daemon(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    """`{"ts": 99999999999, "mode": "hold"}` retained on the mode topic: a daemon that
    started into it sent no setpoint at all and ignored every later command.  Now it is
    refused (`bad_ts`), the daemon plans and sends, and a real command still works."""
    prefix = new_prefix()
    topics = Topics(prefix)
    forged = ModeCommand(ts=99_999_999_999.0, mode=Mode.HOLD)
    await publish(broker, topics.mode(), encode(forged), retain=True)
    await _controls(broker, prefix, tmp_path)
    assert "bad_ts" in (tmp_path / "run.log").read_text(encoding="utf-8")
    state = (tmp_path / "state.json").read_text(encoding="utf-8")
    assert "99999999999" not in state  # never kept across a restart


async def test_a_simulator_restarted_hours_back_is_controlled_again_at_once(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    """The simulator restarts with plant time 6 h back: the daemon used to log the jump and
    then make no plan and send no setpoint until plant time caught up with its old plan,
    while its status said `running`.  Now the whole plant moving together is a jump: it
    re-plans on the new time base at once and says so."""
    prefix = new_prefix()
    config = config_file(
        broker, prefix, tmp_path, tmp_path / "points", controller={"lease_ttl_s": 2.0}
    )
    daemon = cli(tmp_path, "run", "--config", str(config))
    earlier = msgspec.structs.replace(SCENARIO, start=SCENARIO.start - 6 * 3600.0)
    try:
        await log_says(tmp_path / "run.log", "connected to MQTT broker")
        async with watcher(broker, prefix, "command/#", "controller/status") as w:
            async with simulator(broker, prefix, speed=SPEED, plant=make_plant(prefix)):
                await w.wait_for(_mpc, timeout_s=60.0)
            seen = len(w.seen)
            restarted = make_plant(prefix, scenario=earlier)
            async with simulator(broker, prefix, speed=SPEED, plant=restarted):
                await w.wait_for(
                    lambda t, p: (
                        isinstance(p, ControllerStatus)
                        and any("clock jumped back" in r for r in p.reasons)
                    ),
                    timeout_s=30.0,
                    after=seen,
                )
                _, sp = await w.wait_for(
                    lambda t, p: _mpc(t, p) and p.ts < SCENARIO.start, timeout_s=30.0, after=seen
                )
                assert t_ok(sp, restarted.now_s)
    finally:
        assert await asyncio.to_thread(stop_process, daemon) == 0


def _mpc(topic: str, payload: object) -> bool:
    return isinstance(payload, PotlineSetpoint) and payload.source == Source.MPC


def test_the_operations_docs_name_every_reject_kind_of_the_core() -> None:
    """/metrics exports each of them (controller/daemon/http.py); operators look them up."""
    ops = (Path(__file__).parent.parent / "docs" / "operations.md").read_text(encoding="utf-8")
    for kind in CORE_REJECT_KINDS:
        assert f"`{kind}`" in ops, kind
