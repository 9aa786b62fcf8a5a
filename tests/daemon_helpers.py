"""Helpers for the daemon's integration tests: the simulator and the daemon on one broker."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiomqtt
import msgspec

from controller.config import ControllerSection, DaemonConfig
from controller.daemon.service import Daemon
from controller.sitefile import site_toml
from harness import processes
from harness.mosquitto import MosquittoBroker
from harness.site_from_scenario import site_from_scenario
from simulator import bridge
from simulator.config import SimulatorConfig, SimulatorSection
from simulator.plant import Plant
from simulator.scenario import Scenario, load_scenario
from wire import Topics, decode
from wire.link import MqttSettings

SCENARIO = load_scenario("yunnan-hydro-solar")
WAIT_S = 30.0
"""Upper bound for what a test waits for; a passing test sees it far sooner."""
LEASE_TTL_S = 2.0
"""The in-process daemons' lease: a lone daemon waits this long (and a third of it) before it
takes control, which at 600x is 27 plant-minutes; the default 10 s would be over two hours."""


def new_prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


def mqtt(broker: MosquittoBroker, prefix: str) -> MqttSettings:
    return MqttSettings(url=broker.url, topic_prefix=prefix, keepalive_s=5)


def sim_config(
    broker: MosquittoBroker,
    prefix: str,
    speed: float,
    seed: int = 1,
    settings: MqttSettings | None = None,
) -> SimulatorConfig:
    return SimulatorConfig(
        mqtt=settings if settings is not None else mqtt(broker, prefix),
        simulator=SimulatorSection(scenario=SCENARIO.name, seed=seed, speed=speed),
    )


def make_plant(prefix: str, seed: int = 1, scenario: Scenario = SCENARIO) -> Plant:
    return Plant(scenario, seed, step_s=60.0, topics=Topics(prefix))


@contextlib.asynccontextmanager
async def simulator(
    broker: MosquittoBroker,
    prefix: str,
    *,
    speed: float,
    plant: Plant | None = None,
    settings: MqttSettings | None = None,
) -> AsyncIterator[Plant]:
    """The simulator's bridge on the loop; ``settings``: its ``[mqtt]`` (default: anonymous)."""
    plant = plant if plant is not None else make_plant(prefix)
    stop = asyncio.Event()
    config = sim_config(broker, prefix, speed, settings=settings)
    task = asyncio.create_task(bridge.serve(config, SCENARIO, stop=stop, plant=plant))
    try:
        yield plant
    finally:
        stop.set()
        await asyncio.wait_for(task, 20.0)


def daemon_config(
    broker: MosquittoBroker, prefix: str, state_file: Path, **ctl: Any
) -> DaemonConfig:
    ctl.setdefault("lease_ttl_s", LEASE_TTL_S)
    return DaemonConfig(
        mqtt=mqtt(broker, prefix),
        controller=ControllerSection(state_file=str(state_file), http_port=0, **ctl),
    )


@contextlib.asynccontextmanager
async def controller(config: DaemonConfig) -> AsyncIterator[Daemon]:
    d = Daemon(config, site_from_scenario(SCENARIO))
    stop = asyncio.Event()
    task = asyncio.create_task(d.run(stop))
    try:
        yield d
    finally:
        stop.set()
        await asyncio.wait_for(task, 30.0)


class Watcher:
    """A subscriber that keeps every decoded message it hears, for tests to wait on."""

    def __init__(self, client: aiomqtt.Client, topics: Topics) -> None:
        self.client = client
        self.topics = topics
        self.seen: list[tuple[str, msgspec.Struct]] = []
        self._new = asyncio.Event()

    async def pump(self) -> None:
        async for message in self.client.messages:
            parsed = self.topics.parse(message.topic.value)
            if parsed is None:
                continue
            payload = message.payload
            assert isinstance(payload, bytes | bytearray)
            self.seen.append((message.topic.value, decode(parsed.kind, payload)))
            self._new.set()

    async def wait_for(
        self, predicate: Callable[[str, Any], bool], timeout_s: float = WAIT_S, *, after: int = 0
    ) -> tuple[str, Any]:
        """The first message (from index ``after``) that satisfies ``predicate``."""
        async with asyncio.timeout(timeout_s):
            i = after
            while True:
                while i < len(self.seen):
                    topic, payload = self.seen[i]
                    i += 1
                    if predicate(topic, payload):
                        return topic, payload
                self._new.clear()
                await self._new.wait()


@contextlib.asynccontextmanager
async def watcher(broker: MosquittoBroker, prefix: str, *filters: str) -> AsyncIterator[Watcher]:
    topics = Topics(prefix)
    async with aiomqtt.Client(broker.host, broker.port, timeout=5) as client:
        for f in filters:
            await client.subscribe(f"{prefix}/{f}", qos=1)
        w = Watcher(client, topics)
        task = asyncio.create_task(w.pump())
        try:
            yield w
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task


async def publish(
    broker: MosquittoBroker, topic: str, payload: bytes, *, retain: bool = False
) -> None:
    async with aiomqtt.Client(broker.host, broker.port, timeout=5) as client:
        await client.publish(topic, payload, qos=1, retain=retain)


# --- the daemon and the simulator as processes ----------------------------------------------


def config_file(
    broker: MosquittoBroker,
    prefix: str,
    directory: Path,
    points: Path,
    *,
    simulator_speed: float | None = None,
    controller: dict[str, str | float] | None = None,
) -> Path:
    """A config file for ``run`` in ``directory`` (the scenario's site as a site file, the state
    file beside it, points logged to files in ``points``, and the ``[controller]`` keys of
    ``controller``), and for ``simulate`` of that scenario when ``simulator_speed`` is given."""
    site, config = directory / "site.toml", directory / "smelter-ems.toml"
    directory.mkdir(parents=True, exist_ok=True)
    site.write_text(site_toml(site_from_scenario(SCENARIO)), encoding="utf-8")
    simulator = (
        f'[simulator]\nscenario = "{SCENARIO.name}"\nspeed = {simulator_speed}\n'
        if simulator_speed is not None
        else ""
    )
    keys = {"http_port": 0, **(controller or {})}
    more = "".join(
        f'{k} = "{v}"\n' if isinstance(v, str) else f"{k} = {v}\n" for k, v in keys.items()
    )
    config.write_text(
        f'[mqtt]\nurl = "{broker.url}"\ntopic_prefix = "{prefix}"\nkeepalive_s = 5\n'
        f'{simulator}[controller]\nsite = "{site}"\n{more}'
        f'state_file = "{directory / "state.json"}"\n'
        f'[influx]\nfiles_dir = "{points}"\nflush_interval_s = 0.2\n',
        encoding="utf-8",
    )
    return config


def cli(directory: Path, *argv: str) -> subprocess.Popen[bytes]:
    """``smelter-ems ARGV`` as a process, its stderr in ``directory/{ARGV[0]}.log`` (stop it
    with :func:`harness.processes.stop_process`)."""
    return processes.cli(argv, directory / f"{argv[0]}.log")
