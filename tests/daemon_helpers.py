"""Helpers for the daemon's integration tests: the simulator and the daemon on one broker."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiomqtt
import msgspec
from mosquitto import MosquittoBroker

from controller.config import ControllerSection, DaemonConfig
from controller.daemon.service import Daemon
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


def new_prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


def mqtt(broker: MosquittoBroker, prefix: str) -> MqttSettings:
    return MqttSettings(url=broker.url, topic_prefix=prefix, keepalive_s=5)


def sim_config(
    broker: MosquittoBroker, prefix: str, speed: float, seed: int = 1
) -> SimulatorConfig:
    return SimulatorConfig(
        mqtt=mqtt(broker, prefix),
        simulator=SimulatorSection(scenario=SCENARIO.name, seed=seed, speed=speed),
    )


def make_plant(prefix: str, seed: int = 1, scenario: Scenario = SCENARIO) -> Plant:
    return Plant(scenario, seed, step_s=60.0, topics=Topics(prefix))


@contextlib.asynccontextmanager
async def simulator(
    broker: MosquittoBroker, prefix: str, *, speed: float, plant: Plant | None = None
) -> AsyncIterator[Plant]:
    plant = plant if plant is not None else make_plant(prefix)
    stop = asyncio.Event()
    task = asyncio.create_task(
        bridge.serve(sim_config(broker, prefix, speed), SCENARIO, stop=stop, plant=plant)
    )
    try:
        yield plant
    finally:
        stop.set()
        await asyncio.wait_for(task, 20.0)


def daemon_config(
    broker: MosquittoBroker, prefix: str, state_file: Path, **ctl: Any
) -> DaemonConfig:
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
