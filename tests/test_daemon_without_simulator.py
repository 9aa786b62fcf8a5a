"""The daemon as a plant deploys it: ``smelter-ems run --site FILE`` in its own process, where
the simulator package cannot be imported, controlling the simulated plant through a real
Mosquitto (the simulator runs in the test's process, on the plant's side of the broker)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

import pytest
from daemon_helpers import SCENARIO, WAIT_S, Watcher, make_plant, new_prefix, simulator, watcher

from harness.mosquitto import MosquittoBroker
from harness.site_from_scenario import site_file_text
from simulator.plant import Plant
from wire import ControllerState, ControllerStatus, PotlineSetpoint, Source

pytestmark = [pytest.mark.services, pytest.mark.timeout(240)]

T = TypeVar("T")

BLOCKED = "blocker: import simulator raised ModuleNotFoundError"
BOOTSTRAP = f"""
import sys


class BlockSimulator:
    '''Makes the simulator package unimportable, as where it is not installed.'''

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "simulator":
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked)", name=name)
        return None


sys.meta_path.insert(0, BlockSimulator())
try:
    import simulator
except ModuleNotFoundError:
    print({BLOCKED!r}, file=sys.stderr, flush=True)
else:
    sys.exit("blocker: import simulator succeeded")

from smelter_ems.cli import main

code = main(sys.argv[1:])
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("simulator", "harness"))
print(f"blocker: simulator or harness modules loaded: {{loaded}}", file=sys.stderr, flush=True)
sys.exit(code)
"""


def _blocked(*args: str, cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as err:
        return subprocess.Popen(
            [sys.executable, "-c", BOOTSTRAP, *args],
            cwd=cwd,
            stdout=err,
            stderr=err,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


async def _while_running(proc: subprocess.Popen[bytes], log: Path, awaited: Awaitable[T]) -> T:
    """``awaited``, failing at once with the daemon's log if the daemon exits meanwhile."""
    task = asyncio.ensure_future(awaited)
    while not task.done():
        if proc.poll() is not None:
            task.cancel()
            pytest.fail(f"the daemon exited ({proc.returncode}):\n{log.read_text('utf-8')}")
        await asyncio.wait([task], timeout=0.2)
    return task.result()


async def _plant_runs_on_the_plan(plant: Plant, w: Watcher) -> None:
    """Until the plant runs every line at an MPC setpoint the daemon sent, off nominal current
    (not at its safe default)."""
    async with asyncio.timeout(WAIT_S):
        while True:
            sent = {
                (topic.split("/")[-2], p.current_ka)
                for topic, p in w.seen
                if isinstance(p, PotlineSetpoint) and p.source == Source.MPC
            }
            if all(
                not guard.in_fallback
                and guard.value != spec.nominal_current_ka
                and (spec.name, guard.value) in sent
                for guard, spec in zip(plant.line_guards.values(), SCENARIO.potline, strict=True)
            ):
                return
            await asyncio.sleep(0.05)


def _files(broker: MosquittoBroker, prefix: str, tmp_path: Path) -> tuple[Path, Path]:
    site = tmp_path / "site.toml"
    site.write_text(site_file_text(SCENARIO), encoding="utf-8")
    config = tmp_path / "smelter-ems.toml"
    config.write_text(
        f'[mqtt]\nurl = "{broker.url}"\ntopic_prefix = "{prefix}"\nkeepalive_s = 5\n'
        f'[controller]\nstate_file = "{tmp_path / "state.json"}"\nhttp_port = 0\n',
        encoding="utf-8",
    )
    return config, site


async def test_run_site_controls_the_plant_with_the_simulator_unimportable(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    prefix = new_prefix()
    plant = make_plant(prefix)
    config, site = _files(broker, prefix, tmp_path)
    log = tmp_path / "daemon.log"
    async with (
        simulator(broker, prefix, speed=300.0, plant=plant),
        watcher(broker, prefix, "command/#", "controller/status") as w,
    ):
        proc = _blocked("run", "--config", str(config), "--site", str(site), cwd=tmp_path, log=log)
        try:
            for spec in SCENARIO.potline:  # the plan moves each line off its nominal current
                moved = w.wait_for(
                    lambda t, p, spec=spec: (
                        t.endswith(f"/potline/{spec.name}/setpoint")
                        and isinstance(p, PotlineSetpoint)
                        and p.source == Source.MPC
                        and abs(p.current_ka - spec.nominal_current_ka) > 1.0
                    )
                )
                await _while_running(proc, log, moved)
            following_a_plan = w.wait_for(
                lambda t, p: (
                    isinstance(p, ControllerStatus)
                    and p.state in (ControllerState.RUNNING, ControllerState.DEGRADED)
                )
            )
            await _while_running(proc, log, following_a_plan)
            await _while_running(proc, log, _plant_runs_on_the_plan(plant, w))
            assert plant.rejected == {}
            statuses = [p for _, p in w.seen if isinstance(p, ControllerStatus)]
            assert statuses[-1].state in (ControllerState.RUNNING, ControllerState.DEGRADED)
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(proc.wait, 30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    text = log.read_text(encoding="utf-8")
    assert code == 0, text
    assert BLOCKED in text  # the blocker works in the daemon's own process
    assert "blocker: simulator or harness modules loaded: []" in text
    assert f"controlling {SCENARIO.site} (2 pot-lines" in text


async def test_what_needs_the_simulator_says_so_and_check_config_does_without(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    """The same blocker stops ``run --scenario`` (it converts a simulator scenario), with a
    message instead of a traceback; ``check-config`` checks the daemon's tables and site file."""
    config, site = _files(broker, new_prefix(), tmp_path)
    log = tmp_path / "scenario.log"
    proc = _blocked(
        "run", "--config", str(config), "--scenario", SCENARIO.name, cwd=tmp_path, log=log
    )
    assert await asyncio.to_thread(proc.wait, 60) == 2
    text = log.read_text(encoding="utf-8")
    assert BLOCKED in text
    assert "smelter-ems: error: run --scenario needs the simulator package" in text
    assert "Traceback" not in text

    with open(config, "a", encoding="utf-8") as f:
        f.write(f'site = "{site}"\n')
    log = tmp_path / "check.log"
    checked = _blocked("check-config", str(config), cwd=tmp_path, log=log)
    assert await asyncio.to_thread(checked.wait, 60) == 0
    text = log.read_text(encoding="utf-8")
    assert f"{config}: OK (the [simulator] table is not checked" in text

    site.write_text(site.read_text(encoding="utf-8").replace("pots = 300", "pots = -1", 1))
    log = tmp_path / "bad.log"
    checked = _blocked("check-config", str(config), cwd=tmp_path, log=log)
    assert await asyncio.to_thread(checked.wait, 60) == 2
    assert f"{site}: key 'lines[0].pots' = -1" in log.read_text(encoding="utf-8")
