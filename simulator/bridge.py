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
import contextlib
import logging
import math
import os
import random
import signal
import time
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import aiomqtt
import msgspec

from controller.contract import FileError, MqttSettings, Topics, encode
from simulator.config import SimulatorConfig, resolve_password
from simulator.plant import Plant
from simulator.scenario import Scenario

log = logging.getLogger(__name__)

BACKOFF_INITIAL_S: Final = 0.5
BACKOFF_MAX_S: Final = 30.0
MAX_LAG_WALL_S: Final = 1.0
"""Behind the wall clock by more than this, the ticker drops the missed time instead of
catching it up in one burst that would starve the link (and flood subscribers)."""
FLUSH_TIMEOUT_S: Final = 2.0
"""How long a stop waits to hand queued alarms and forecasts to the broker."""
CLIENT_TIMEOUT_S: Final = 5.0
"""aiomqtt's wait for CONNACK, SUBACK, PUBACK and the disconnect: bounds a stop on a dead link."""
MAX_BACKLOG: Final = 1000
"""Queued publications kept while the link is down or slow; beyond it the oldest are dropped."""
MAX_QUEUED_COMMANDS: Final = 10_000
"""Received command messages awaiting the plant; bounds memory under a flood of garbage."""


@dataclass(frozen=True, slots=True)
class _Publication:
    topic: str
    payload: bytes
    qos: int
    retain: bool = False


class _Outbox:
    """Publications waiting for the link, oldest first.

    Telemetry (QoS 0) is only queued while connected: a reading delivered late after an outage
    is worse than none, and the next one is due shortly.  Forecasts and alarms (QoS 1) are kept
    across an outage, up to :data:`MAX_BACKLOG`, because they are events someone must see.
    """

    def __init__(self, max_backlog: int = MAX_BACKLOG) -> None:
        self.connected = False
        self._queue: deque[_Publication] = deque(maxlen=max_backlog)
        self._ready = asyncio.Event()
        self._overflow_logged = False

    def __len__(self) -> int:
        return len(self._queue)

    def put(self, publication: _Publication) -> None:
        if publication.qos == 0 and not self.connected:
            return
        if len(self._queue) == self._queue.maxlen and not self._overflow_logged:
            log.warning("outbox full (%d messages): dropping the oldest", len(self._queue))
            self._overflow_logged = True
        self._queue.append(publication)
        self._ready.set()

    def put_back(self, publication: _Publication) -> None:
        """Return a publication the link could not deliver to the head of the queue."""
        self._queue.appendleft(publication)
        self._ready.set()

    def take(self) -> _Publication | None:
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

    def __init__(self, plant: Plant, publish_interval_s: float, outbox: _Outbox) -> None:
        self._plant = plant
        self._outbox = outbox
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
            self._outbox.put(_Publication(topic, encode(stamped), qos=0))

    def _collect_alarms(self) -> None:
        for topic, alarm in self._plant.drain_alarms():
            self._outbox.put(_Publication(topic, encode(alarm), qos=1))

    def _issue_forecast_if_due(self) -> None:
        interval_s = self._plant.forecast_interval_s
        due_s = self._start_s + self._forecasts * interval_s
        if self._plant.now_s + self._eps_s < due_s:
            return
        topic, forecast = self._plant.weather_forecast()
        # Retained: a controller that starts between two forecasts gets the latest at once.
        self._outbox.put(_Publication(topic, encode(forecast), qos=1, retain=True))
        # The next one stays on the schedule grid even if a step jumped over several slots.
        elapsed = (self._plant.now_s - self._start_s + self._eps_s) / interval_s
        self._forecasts = math.floor(elapsed) + 1


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


class _Backoff:
    """Capped exponential backoff with jitter, so that clients which lost the same broker do not
    all come back in lockstep."""

    def __init__(
        self,
        initial_s: float = BACKOFF_INITIAL_S,
        max_s: float = BACKOFF_MAX_S,
        rng: random.Random | None = None,
    ) -> None:
        self._initial_s = initial_s
        self._max_s = max_s
        self._rng = rng if rng is not None else random.Random()
        self._failures = 0

    def next_delay_s(self) -> float:
        # The exponent is capped only to keep 2**n a float; max_s caps the delay itself.
        ceiling_s = min(self._max_s, self._initial_s * 2.0 ** min(self._failures, 60))
        self._failures += 1
        return self._rng.uniform(ceiling_s / 2, ceiling_s)

    def reset(self) -> None:
        self._failures = 0


class _LinkLog:
    """Logs a broker outage once when it starts and once when it ends, not once per attempt."""

    def __init__(self, url: str, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._url = url
        self._monotonic = monotonic
        self._connected = False
        self._ever_connected = False
        self._down_since_s: float | None = None
        self._failed_attempts = 0

    def up(self) -> None:
        if self._down_since_s is None:
            log.info("connected to MQTT broker %s", self._url)
        else:
            log.info(
                "%s MQTT broker %s after %.1f s (%d failed attempts)",
                "reconnected to" if self._ever_connected else "connected to",
                self._url,
                self._monotonic() - self._down_since_s,
                self._failed_attempts,
            )
        self._connected = self._ever_connected = True
        self._down_since_s = None
        self._failed_attempts = 0

    def down(self, exc: aiomqtt.MqttError) -> None:
        """A connection attempt failed, or an established connection was lost."""
        if self._down_since_s is not None:
            self._failed_attempts += 1
            log.debug("MQTT broker %s still unreachable: %s", self._url, exc)
            return
        self._down_since_s = self._monotonic()
        lost = self._connected
        self._connected = False
        self._failed_attempts = 0 if lost else 1
        log.warning(
            "%s MQTT broker %s (%s); plant time runs on, retrying with backoff up to %.0f s",
            "lost the connection to" if lost else "cannot connect to",
            self._url,
            exc,
            BACKOFF_MAX_S,
        )


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
        await _sleep_unless_stopped(stop, clock.wall_delay_s(runner.next_event_s))


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
    backoff = _Backoff()
    link_log = _LinkLog(settings.url)
    while not stop.is_set():
        try:
            # A fresh client per attempt: aiomqtt cannot always re-enter a client whose
            # connection failed (empicano/aiomqtt#269), and its maintainers advise a new one.
            async with _make_client(settings, password) as client:
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
            await _sleep_unless_stopped(stop, backoff.next_delay_s())


async def _exchange(
    client: aiomqtt.Client, runner: _PlantRunner, outbox: _Outbox, stop: asyncio.Event
) -> None:
    """Feed commands in and publish the outbox until ``stop`` (returns) or until the link fails
    (raises :class:`aiomqtt.MqttError`)."""
    await _until_first_done(
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
            )
        except (aiomqtt.MqttError, asyncio.CancelledError):
            # The next connection is a new client, which does not know what this one had in
            # flight: keep QoS 1 messages for it (at least once, as QoS 1 promises).
            if publication.qos > 0:
                outbox.put_back(publication)
            raise


def _make_client(settings: MqttSettings, password: str | None) -> aiomqtt.Client:
    tls_params: aiomqtt.TLSParameters | None = None
    tls_insecure: bool | None = None
    if settings.url.startswith("mqtts://") and settings.tls is not None:
        tls = settings.tls
        tls_params = aiomqtt.TLSParameters(
            ca_certs=tls.ca_file, certfile=tls.cert_file, keyfile=tls.key_file
        )
        tls_insecure = tls.insecure
    protocol = (
        aiomqtt.ProtocolVersion.V5 if settings.protocol == "5" else aiomqtt.ProtocolVersion.V311
    )
    return aiomqtt.Client(
        settings.host,
        settings.port,
        identifier=settings.client_id or f"smelter-sim-{os.getpid()}",
        username=settings.username,
        password=password,
        protocol=protocol,
        keepalive=settings.keepalive_s,
        timeout=CLIENT_TIMEOUT_S,
        max_queued_incoming_messages=MAX_QUEUED_COMMANDS,
        tls_params=tls_params,
        tls_insecure=tls_insecure,
    )


def _check_tls(settings: MqttSettings) -> None:
    """Fail at start on TLS files that are not there, rather than retry a doomed connection."""
    if settings.tls is None:
        return
    if not settings.url.startswith("mqtts://"):
        log.warning("[mqtt.tls] is ignored: the url %s is not mqtts://", settings.url)
        return
    tls = settings.tls
    for key, path in (
        ("ca_file", tls.ca_file),
        ("cert_file", tls.cert_file),
        ("key_file", tls.key_file),
    ):
        if path is not None and not Path(path).is_file():
            raise FileError("", f"mqtt.tls.{key}", path, "file not found")


# --- small asyncio helpers -----------------------------------------------------------------


async def _sleep_unless_stopped(stop: asyncio.Event, delay_s: float) -> None:
    if delay_s <= 0:
        await asyncio.sleep(0)
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(delay_s):
            await stop.wait()


async def _run_concurrently(coros: tuple[Coroutine[Any, Any, Any], ...], return_when: str) -> None:
    """Run ``coros`` until ``return_when``; cancel the rest; re-raise the first failure."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        done, _ = await asyncio.wait(tasks, return_when=return_when)
    finally:
        await _cancel_and_wait(tasks)
    # Reading every outcome also keeps asyncio from reporting exceptions "never retrieved".
    failures = [exc for t in tasks if not t.cancelled() and (exc := t.exception()) is not None]
    # The failure that ended the wait comes first: the others are its consequences.
    ending = [exc for t in done if not t.cancelled() and (exc := t.exception()) is not None]
    if ending or failures:
        raise (ending or failures)[0]


async def _cancel_and_wait(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and wait until they have finished.

    Cancels again until they do: on Python 3.11, the ``asyncio.wait_for`` inside aiomqtt's
    publish can swallow a cancellation that races with the PUBACK (cpython#86296), which left
    the publishing task running and a stop hanging.
    """
    pending = {t for t in tasks if not t.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.1)


async def _until_first_done(*coros: Coroutine[Any, Any, Any]) -> None:
    await _run_concurrently(coros, asyncio.FIRST_COMPLETED)


async def _until_all_done(*coros: Coroutine[Any, Any, Any]) -> None:
    """Run until all finish; if one fails, cancel the others and re-raise."""
    await _run_concurrently(coros, asyncio.FIRST_EXCEPTION)


# --- public --------------------------------------------------------------------------------


def _iso(ts_s: float) -> str:
    return datetime.fromtimestamp(ts_s, UTC).isoformat(timespec="seconds")


async def serve(
    config: SimulatorConfig,
    scenario: Scenario,
    *,
    stop: asyncio.Event | None = None,
    environ: Mapping[str, str] = os.environ,
) -> None:
    """Run ``scenario`` as a fake plant on the broker of ``config`` until ``stop`` is set.

    Raises:
        FileError: the password or a TLS file named in the config cannot be found.
    """
    stop = stop if stop is not None else asyncio.Event()
    settings = config.mqtt
    password = resolve_password(settings, environ)
    _check_tls(settings)
    sim = config.simulator
    topics = Topics(settings.topic_prefix)
    plant = Plant(scenario, sim.seed, step_s=sim.step_s, topics=topics)
    outbox = _Outbox()
    runner = _PlantRunner(plant, sim.resolved_publish_interval_s, outbox)
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
    await _until_all_done(
        _run_ticker(runner, clock, stop),
        _stay_connected(settings, password, topics=topics, runner=runner, outbox=outbox, stop=stop),
    )
    log.info("simulator stopped at plant time %s", _iso(plant.now_s))


def run(config: SimulatorConfig, scenario: Scenario) -> int:
    """Serve until SIGINT or SIGTERM.  Returns 0 on a clean stop, 2 when the config's password
    or TLS files cannot be used (the reason is logged)."""
    try:
        asyncio.run(_serve_until_signalled(config, scenario))
    except FileError as exc:
        log.error("%s", exc)
        return 2
    return 0


async def _serve_until_signalled(config: SimulatorConfig, scenario: Scenario) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)

    def on_signal(signum: signal.Signals) -> None:
        log.info("%s received: stopping", signum.name)
        stop.set()
        # A second signal takes the default action, so a stop that hangs can still be forced.
        for sig in signals:
            loop.remove_signal_handler(sig)

    for sig in signals:
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        await serve(config, scenario, stop=stop)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
