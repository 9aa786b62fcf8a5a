"""The MQTT bridge: the simulated plant, speaking the plant's side of the wire contract.

Two tasks share one :class:`~simulator.plant.Plant`::

    ticker  plant time at `speed`x the wall clock: steps the physics, schedules telemetry,
            forecasts and alarms on plant time and puts them in the outbox
    link    keeps a broker connection: feeds received commands to the plant, publishes the
            outbox; on loss, reconnects with capped, jittered exponential backoff

They are independent on purpose: while the broker is away plant time runs on and the plant's
own watchdog returns the assets to safe defaults, as a real plant's PLCs would.

Only :func:`serve` and :func:`run` are public; the CLI loads the config and the scenario.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections import deque
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Final

import aiomqtt
import msgspec

from simulator.config import SimulatorConfig
from simulator.plant import Plant
from simulator.scenario import Scenario
from wire import Publication, Topics, encode
from wire.link import (
    PUBLISH_TIMEOUT_S,
    Backoff,
    LinkLog,
    MqttSettings,
    check_tls,
    make_client,
    resolve_password,
)
from wire.tasks import (
    serve_until_signalled,
    sleep_unless_stopped,
    until_all_done,
    until_first_done,
)
from wire.tomlfile import FileError

log = logging.getLogger(__name__)

MAX_LAG_WALL_S: Final = 1.0
"""Behind the wall clock by more than this, the ticker drops the missed time instead of
catching it up in one burst that would starve the link (and flood subscribers)."""
FLUSH_TIMEOUT_S: Final = 2.0
"""How long a stop waits to hand queued alarms and forecasts to the broker."""
MAX_BACKLOG: Final = 1000
"""Queued publications kept while the link is down or slow; beyond it the oldest are dropped."""
MAX_QUEUED_COMMANDS: Final = 10_000
"""Received command messages awaiting the plant; bounds memory under a flood of garbage."""

PublishObserver = Callable[[str, msgspec.Struct], None]
"""Called with (topic, payload) for every publication the plant makes, whether or not the
broker is reachable (the ``simulate`` command logs them to InfluxDB through it)."""
ObserverFactory = Callable[
    [SimulatorConfig, Scenario], AbstractAsyncContextManager[PublishObserver]
]
"""Makes an observer for a run, inside the running loop, and cleans up after it."""


class _Outbox:
    """Publications waiting for the link, oldest first.

    Telemetry (QoS 0) is only queued while connected: a reading delivered late after an outage
    is worse than none, and the next one is due shortly.  Forecasts and alarms (QoS 1) are kept
    across an outage, up to :data:`MAX_BACKLOG`, because they are events someone must see.
    """

    def __init__(self, max_backlog: int = MAX_BACKLOG) -> None:
        self.connected = False
        self._queue: deque[Publication] = deque(maxlen=max_backlog)
        self._ready = asyncio.Event()
        self._overflow_logged = False

    def __len__(self) -> int:
        return len(self._queue)

    def put(self, publication: Publication) -> None:
        if publication.qos == 0 and not self.connected:
            return
        if len(self._queue) == self._queue.maxlen and not self._overflow_logged:
            log.warning("outbox full (%d messages): dropping the oldest", len(self._queue))
            self._overflow_logged = True
        self._queue.append(publication)
        self._ready.set()

    def put_back(self, publication: Publication) -> None:
        """Return a publication the link could not deliver to the head of the queue."""
        self._queue.appendleft(publication)
        self._ready.set()

    def take(self) -> Publication | None:
        if not self._queue:
            self._ready.clear()
            return None
        return self._queue.popleft()

    def drop_telemetry(self) -> None:
        kept = [p for p in self._queue if p.qos > 0]
        self._queue.clear()
        self._queue.extend(kept)

    async def wait_ready(self) -> None:
        await self._ready.wait()


class _PlantRunner:
    """Steps the plant and schedules its publications on plant time (no clock, no network).

    Events are processed in plant-time order: a physics step every ``plant.step_s``, telemetry
    every ``publish_interval_s``, a weather forecast every ``plant.forecast_interval_s`` (the first
    at the start).  Telemetry between steps shows the state of the last step, stamped with the
    publication time: a zero-order hold, like a meter read faster than the process it watches
    changes.  Without the restamp, ``ts`` would stand still between steps and a subscriber's
    staleness check would fire at low speeds.
    """

    def __init__(
        self,
        plant: Plant,
        publish_interval_s: float,
        outbox: _Outbox,
        on_publish: PublishObserver | None = None,
    ) -> None:
        self._plant = plant
        self._outbox = outbox
        self._on_publish = on_publish
        self._start_s = plant.now_s
        self._publish_interval_s = publish_interval_s
        self._published = 0
        self._forecasts = 0
        # Schedules are start + n·interval (not repeated sums), compared with a tolerance, so that
        # equal intervals of steps and publications stay in lockstep despite rounding.
        self._eps_s = 1e-6 * min(publish_interval_s, plant.step_s)
        self._issue_forecast_if_due()

    @property
    def next_event_s(self) -> float:
        """Plant time of the next event to process."""
        return min(self._next_publish_s, self._plant.now_s + self._plant.step_s)

    @property
    def _next_publish_s(self) -> float:
        return self._start_s + self._published * self._publish_interval_s

    def advance(self) -> None:
        """Process the earliest pending event: a telemetry publication or a physics step."""
        publish_at_s = self._next_publish_s
        if publish_at_s < self._plant.now_s + self._plant.step_s - self._eps_s:
            self._publish_telemetry(publish_at_s)
            self._published += 1
        else:
            self._plant.step()
            self._collect_alarms()
            self._issue_forecast_if_due()

    def receive(self, topic: str, payload: bytes) -> None:
        """Hand a command message to the plant, which validates it (and never raises)."""
        self._plant.receive(topic, payload)
        self._collect_alarms()

    def _publish_telemetry(self, at_s: float) -> None:
        for topic, payload in self._plant.telemetry():
            stamped = msgspec.structs.replace(payload, ts=at_s)
            self._outbox.put(Publication(topic, encode(stamped), qos=0))
            self._observe(topic, stamped)

    def _collect_alarms(self) -> None:
        for topic, alarm in self._plant.drain_alarms():
            self._outbox.put(Publication(topic, encode(alarm), qos=1))
            self._observe(topic, alarm)

    def _issue_forecast_if_due(self) -> None:
        interval_s = self._plant.forecast_interval_s
        due_s = self._start_s + self._forecasts * interval_s
        if self._plant.now_s + self._eps_s < due_s:
            return
        topic, forecast = self._plant.weather_forecast()
        # Retained: a controller that starts between two forecasts gets the latest at once.
        self._outbox.put(Publication(topic, encode(forecast), qos=1, retain=True))
        self._observe(topic, forecast)
        # The next one stays on the schedule grid even if a step jumped over several slots.
        elapsed = (self._plant.now_s - self._start_s + self._eps_s) / interval_s
        self._forecasts = math.floor(elapsed) + 1

    def _observe(self, topic: str, payload: msgspec.Struct) -> None:
        if self._on_publish is not None:
            self._on_publish(topic, payload)


class _PlantClock:
    """Plant time at ``speed`` x a monotonic wall clock."""

    def __init__(
        self, start_s: float, speed: float, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.speed = speed
        self._monotonic = monotonic
        self._plant0_s = start_s
        self._wall0_s = monotonic()

    def now_s(self) -> float:
        return self._plant0_s + (self._monotonic() - self._wall0_s) * self.speed

    def wall_delay_s(self, plant_s: float) -> float:
        """Wall seconds until plant time reaches ``plant_s`` (negative when already past)."""
        return (plant_s - self.now_s()) / self.speed

    def rebase(self, plant_s: float) -> None:
        """Make ``plant_s`` now: plant time gives up the lead the simulation could not follow."""
        self._plant0_s = plant_s
        self._wall0_s = self._monotonic()


# --- the two tasks -------------------------------------------------------------------------


async def _run_ticker(runner: _PlantRunner, clock: _PlantClock, stop: asyncio.Event) -> None:
    """Advance the plant with the wall clock until ``stop``."""
    behind_logged = False
    while not stop.is_set():
        now_s = clock.now_s()
        if now_s - runner.next_event_s > MAX_LAG_WALL_S * clock.speed:
            if not behind_logged:
                log.warning(
                    "the simulator cannot keep up with speed %gx: plant time now runs slower "
                    "than requested (lower the speed or raise step_s/publish_interval_s)",
                    clock.speed,
                )
                behind_logged = True
            clock.rebase(runner.next_event_s)
            now_s = runner.next_event_s
        while runner.next_event_s <= now_s and not stop.is_set():
            runner.advance()
            # Let commands in and publications out between events: a catch-up must not starve
            # the link.
            await asyncio.sleep(0)
        await sleep_unless_stopped(stop, clock.wall_delay_s(runner.next_event_s))


async def _stay_connected(
    settings: MqttSettings,
    password: str | None,
    *,
    topics: Topics,
    runner: _PlantRunner,
    outbox: _Outbox,
    stop: asyncio.Event,
) -> None:
    """Keep a broker connection until ``stop``, reconnecting with backoff when it fails."""
    backoff = Backoff()
    link_log = LinkLog(settings.url, while_down="plant time runs on", logger=log)
    while not stop.is_set():
        try:
            # A fresh client per attempt: aiomqtt cannot always re-enter a client whose
            # connection failed (empicano/aiomqtt#269), and its maintainers advise a new one.
            async with make_client(
                settings,
                password,
                default_id="smelter-sim",
                max_queued_incoming=MAX_QUEUED_COMMANDS,
            ) as client:
                await client.subscribe(topics.command_filter, qos=1)
                link_log.up()
                backoff.reset()
                outbox.connected = True
                try:
                    await _exchange(client, runner, outbox, stop)
                finally:
                    outbox.connected = False
                    outbox.drop_telemetry()
        except aiomqtt.MqttError as exc:
            link_log.down(exc)
            await sleep_unless_stopped(stop, backoff.next_delay_s())


async def _exchange(
    client: aiomqtt.Client, runner: _PlantRunner, outbox: _Outbox, stop: asyncio.Event
) -> None:
    """Feed commands in and publish the outbox until ``stop`` (returns) or until the link fails
    (raises :class:`aiomqtt.MqttError`)."""
    await until_first_done(
        _receive_commands(client, runner), _publish_forever(client, outbox), stop.wait()
    )
    outbox.drop_telemetry()
    try:
        async with asyncio.timeout(FLUSH_TIMEOUT_S):
            await _publish_pending(client, outbox)
    except TimeoutError:
        log.warning(
            "stopping with %d alarm/forecast messages unsent after %.0f s",
            len(outbox),
            FLUSH_TIMEOUT_S,
        )


async def _receive_commands(client: aiomqtt.Client, runner: _PlantRunner) -> None:
    async for message in client.messages:
        runner.receive(message.topic.value, message.payload)


async def _publish_forever(client: aiomqtt.Client, outbox: _Outbox) -> None:
    while True:
        await outbox.wait_ready()
        await _publish_pending(client, outbox)


async def _publish_pending(client: aiomqtt.Client, outbox: _Outbox) -> None:
    while (publication := outbox.take()) is not None:
        try:
            await client.publish(
                publication.topic,
                publication.payload,
                qos=publication.qos,
                retain=publication.retain,
                timeout=PUBLISH_TIMEOUT_S,
            )
        except (aiomqtt.MqttError, asyncio.CancelledError):
            # The next connection is a new client, which does not know what this one had in
            # flight: keep QoS 1 messages for it (at least once, as QoS 1 promises).
            if publication.qos > 0:
                outbox.put_back(publication)
            raise


# --- small asyncio helpers -----------------------------------------------------------------


# --- public --------------------------------------------------------------------------------


def _iso(ts_s: float) -> str:
    return datetime.fromtimestamp(ts_s, UTC).isoformat(timespec="seconds")


async def serve(
    config: SimulatorConfig,
    scenario: Scenario,
    *,
    stop: asyncio.Event | None = None,
    environ: Mapping[str, str] = os.environ,
    plant: Plant | None = None,
    on_publish: PublishObserver | None = None,
) -> None:
    """Run ``scenario`` as a fake plant on the broker of ``config`` until ``stop`` is set.

    ``on_publish`` is called with (topic, payload) for every publication (see
    :data:`PublishObserver`); it must not block.

    ``plant`` lets a test keep a handle on the plant (its KPIs); it must be built with the
    config's topics, seed and step.

    Raises:
        FileError: the password or a TLS file named in the config cannot be found.
    """
    stop = stop if stop is not None else asyncio.Event()
    settings = config.mqtt
    password = resolve_password(settings, environ)
    check_tls(settings)
    sim = config.simulator
    topics = Topics(settings.topic_prefix)
    if plant is None:
        plant = Plant(scenario, sim.seed, step_s=sim.step_s, topics=topics)
    outbox = _Outbox()
    runner = _PlantRunner(plant, sim.resolved_publish_interval_s, outbox, on_publish)
    clock = _PlantClock(plant.now_s, sim.speed)
    log.info(
        "simulating %s from %s at %gx real time (telemetry every %g s, step %g s of plant time) "
        "on %s under %s/",
        scenario.name,
        _iso(plant.now_s),
        sim.speed,
        sim.resolved_publish_interval_s,
        sim.step_s,
        settings.url,
        settings.topic_prefix,
    )
    await until_all_done(
        _run_ticker(runner, clock, stop),
        _stay_connected(settings, password, topics=topics, runner=runner, outbox=outbox, stop=stop),
    )
    log.info("simulator stopped at plant time %s", _iso(plant.now_s))


def run(
    config: SimulatorConfig, scenario: Scenario, *, observe: ObserverFactory | None = None
) -> int:
    """Serve until SIGINT or SIGTERM.  Returns 0 on a clean stop, 2 when the config's password
    or TLS files cannot be used (the reason is logged).  ``observe`` makes a
    :data:`PublishObserver` for the run."""
    try:
        asyncio.run(_serve_until_signalled(config, scenario, observe))
    except FileError as exc:
        log.error("%s", exc)
        return 2
    return 0


async def _serve_until_signalled(
    config: SimulatorConfig, scenario: Scenario, observe: ObserverFactory | None = None
) -> None:
    async def serve_logged(stop: asyncio.Event) -> None:
        if observe is None:
            await serve(config, scenario, stop=stop)
        else:
            async with observe(config, scenario) as on_publish:
                await serve(config, scenario, stop=stop, on_publish=on_publish)

    await serve_until_signalled(serve_logged, logger=log)
