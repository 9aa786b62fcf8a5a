"""The simulator as a fake plant over MQTT, against a real Mosquitto broker; and its config.

The broker tests run the simulator in-process (``serve``) or as a process (``run``), and watch
it from an ordinary subscriber, the way ``mosquitto_sub -t 'smelter/#'`` would.  Most run at
600x, where a 60 s physics step takes 0.1 wall seconds and the plant's 30 min watchdog 3 s; the
test that needs plant-time deadlines spanning many wall seconds runs at 60x.  Timeouts only
bound a failing test; nothing asserts how fast the machine is.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Literal

import aiomqtt
import msgspec
import pytest

from harness.mosquitto import MosquittoBroker
from simulator.bridge import (
    _Outbox,
    _PlantClock,
    _PlantRunner,
    _run_ticker,
    serve,
)
from simulator.config import (
    SimulatorConfig,
    SimulatorSection,
    load_simulator_config,
)
from simulator.plant import Plant
from simulator.scenario import Scenario, builtin_names, load_scenario
from wire import (
    REJECT_KINDS,
    PlantAlarm,
    PotlineSetpoint,
    PotlineTelemetry,
    Publication,
    Source,
    Topics,
    WeatherForecast,
    decode,
    encode,
)
from wire.link import Backoff, MqttSettings, TlsSettings, resolve_password
from wire.tomlfile import FileError

REPO = Path(__file__).resolve().parent.parent
WAIT_S = 15.0
"""Upper bound for what a test waits for; a passing test sees it far sooner."""
SCENARIO = load_scenario("yunnan-hydro-solar")
NOMINAL_KA = 400.0  # yunnan-hydro-solar: both lines 400 kA, hard limits 280-440 kA

services = pytest.mark.services
pytestmark = pytest.mark.timeout(60)


# --- helpers -------------------------------------------------------------------------------


@pytest.fixture
def prefix() -> str:
    """A topic prefix of the test's own, so that tests sharing the broker do not see each
    other's messages (retained forecasts in particular)."""
    return f"t{uuid.uuid4().hex[:10]}"


def _config(
    broker: MosquittoBroker,
    *,
    prefix: str = "smelter",
    speed: float = 600.0,
    step_s: float = 60.0,
    protocol: Literal["5", "3.1.1"] = "5",
) -> SimulatorConfig:
    return SimulatorConfig(
        mqtt=MqttSettings(
            url=broker.url, topic_prefix=prefix, client_id=f"sim-{prefix}", protocol=protocol
        ),
        simulator=SimulatorSection(speed=speed, step_s=step_s),
    )


@contextlib.asynccontextmanager
async def _simulator(
    config: SimulatorConfig, scenario: Scenario = SCENARIO
) -> AsyncIterator[asyncio.Task[None]]:
    """``serve`` in a task; stopped (and its failure, if any, raised) on exit."""
    stop = asyncio.Event()
    task = asyncio.create_task(serve(config, scenario, stop=stop, environ={}))
    try:
        yield task
    finally:
        stop.set()
        async with asyncio.timeout(WAIT_S):
            await task


@contextlib.asynccontextmanager
async def _subscriber(broker: MosquittoBroker, *filters: str) -> AsyncIterator[aiomqtt.Client]:
    async with aiomqtt.Client(
        broker.host,
        broker.port,
        identifier=f"test-{uuid.uuid4().hex[:8]}",
        protocol=aiomqtt.ProtocolVersion.V5,
        timeout=5.0,
    ) as client:
        for topic_filter in filters:
            await client.subscribe(topic_filter, qos=1)
        yield client


async def _next(
    client: aiomqtt.Client,
    predicate: Callable[[aiomqtt.Message], bool],
    timeout_s: float = WAIT_S,
) -> aiomqtt.Message:
    async with asyncio.timeout(timeout_s):
        async for message in client.messages:
            if predicate(message):
                return message
    raise AssertionError("unreachable: the message iterator only ends by raising")


def _on(topic: str) -> Callable[[aiomqtt.Message], bool]:
    return lambda message: message.topic.value == topic


def _line(message: aiomqtt.Message) -> PotlineTelemetry:
    return decode("potline", message.payload, PotlineTelemetry)


def _line_at(topic: str, current_ka: float) -> Callable[[aiomqtt.Message], bool]:
    def predicate(message: aiomqtt.Message) -> bool:
        return message.topic.value == topic and _line(message).current_ka == pytest.approx(
            current_ka
        )

    return predicate


async def _send_setpoint(
    client: aiomqtt.Client,
    topics: Topics,
    line: str,
    current_ka: float,
    *,
    ts: float,
    valid_s: float,
) -> None:
    setpoint = PotlineSetpoint(
        ts=ts, current_ka=current_ka, valid_until=ts + valid_s, plan_id="test", source=Source.MANUAL
    )
    await client.publish(topics.potline_setpoint(line), encode(setpoint), qos=1)


def _expected_topics(scenario: Scenario) -> set[tuple[str, str]]:
    """(kind, asset) of every telemetry and forecast topic the scenario must produce.  The
    grid meter is left out: an islanded site has none in the scenario, yet reports its bus."""
    expected = {("weather", scenario.site)}
    for line in scenario.potline:
        expected |= {("potline", line.name), ("pots", line.name)}
    expected |= {("renewable", r.name) for r in scenario.renewable}
    expected |= {("bess", b.name) for b in scenario.bess}
    expected |= {("captive", c.name) for c in scenario.captive}
    return expected


# --- (a) the whole contract, live --------------------------------------------------------------


@services
@pytest.mark.parametrize("scenario_name", builtin_names())
async def test_publishes_every_telemetry_topic_and_each_payload_decodes(
    broker: MosquittoBroker, scenario_name: str
) -> None:
    scenario = load_scenario(scenario_name)
    topics = Topics()
    expected = _expected_topics(scenario)
    first_line = ("potline", scenario.potline[0].name)
    seen: dict[tuple[str, str], list[Any]] = {}

    def complete() -> bool:
        return (
            expected <= seen.keys()
            and any(kind == "grid" for kind, _ in seen)
            and len(seen[first_line]) >= 3
        )

    async with _subscriber(broker, "smelter/#") as sub, _simulator(_config(broker), scenario):
        async with asyncio.timeout(WAIT_S):
            async for message in sub.messages:
                if message.retain:
                    continue  # left on the broker by an earlier test, not from this run
                parsed = topics.parse(message.topic.value)
                assert parsed is not None, f"not a contract topic: {message.topic.value}"
                payload: Any = decode(parsed.kind, message.payload)  # PayloadError fails the test
                seen.setdefault((parsed.kind, parsed.asset), []).append(payload)
                if complete():
                    break

    telemetry = {key for key in seen if key[0] not in ("grid", "alarm")}
    assert telemetry == expected
    if scenario.grid is not None:
        assert ("grid", scenario.grid.name) in seen
    for spec in scenario.renewable:
        assert all(p.kind == spec.kind for p in seen[("renewable", spec.name)])
    forecast = seen[("weather", scenario.site)][0]
    assert isinstance(forecast, WeatherForecast)
    assert forecast.times, "the forecast has valid times"
    # Stamps are plant time: at 600x, telemetry goes out every 60 s of it (max(1, speed/10)).
    stamps = [p.ts for p in seen[first_line]]
    assert stamps[0] >= scenario.start
    for earlier, later in itertools.pairwise(stamps):
        assert later - earlier == pytest.approx(60.0)


@services
async def test_weather_forecast_is_retained_for_late_subscribers(
    broker: MosquittoBroker, prefix: str
) -> None:
    topics = Topics(prefix)
    weather_topic = topics.weather(SCENARIO.site)
    async with _simulator(_config(broker, prefix=prefix)):
        async with _subscriber(broker, topics.potline("L1")) as early:
            await _next(early, _on(topics.potline("L1")))  # the simulator is up and publishing
        async with _subscriber(broker, weather_topic) as late:
            message = await _next(late, _on(weather_topic))
            forecast = decode("weather", message.payload, WeatherForecast)
            # Clear the retained message so that it does not outlive the test on the broker.
            await late.publish(weather_topic, b"", qos=1, retain=True)
    assert message.retain
    assert forecast.issued_ts == SCENARIO.start  # the first forecast is issued at the start


# --- (b) commands move the plant; its protection raises alarms -------------------------------


@services
@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_potline_setpoint_over_the_broker_moves_the_line_current(
    broker: MosquittoBroker, prefix: str, protocol: Literal["5", "3.1.1"]
) -> None:
    topics = Topics(prefix)
    l1 = topics.potline("L1")
    config = _config(broker, prefix=prefix, protocol=protocol)
    async with _simulator(config), _subscriber(broker, l1) as sub:
        before = _line(await _next(sub, _on(l1)))
        assert before.current_ka == pytest.approx(NOMINAL_KA)  # no command yet
        await _send_setpoint(sub, topics, "L1", 360.0, ts=before.ts, valid_s=6 * 3600)
        after = _line(await _next(sub, _line_at(l1, 360.0)))
    assert after.ts > before.ts
    assert after.power_mw < before.power_mw


@services
async def test_out_of_limit_and_expired_setpoints_raise_alarms_and_fall_back(
    broker: MosquittoBroker, prefix: str
) -> None:
    topics = Topics(prefix)
    l1 = topics.potline("L1")
    async with (
        _simulator(_config(broker, prefix=prefix)),
        _subscriber(broker, l1, topics.alarm()) as sub,
    ):
        start = _line(await _next(sub, _on(l1)))
        # 1000 kA is beyond the rectifier's 440 kA limit; valid for 15 min of plant time only.
        await _send_setpoint(sub, topics, "L1", 1000.0, ts=start.ts, valid_s=900.0)
        alarms: list[PlantAlarm] = []

        def alarm(code: str) -> Callable[[aiomqtt.Message], bool]:
            def predicate(message: aiomqtt.Message) -> bool:
                if message.topic.value != topics.alarm():
                    return False
                alarms.append(decode("alarm", message.payload, PlantAlarm))
                return alarms[-1].code == code

            return predicate

        await _next(sub, alarm("clamped"))
        await _next(sub, _line_at(l1, 440.0))
        await _next(sub, alarm("expired"))
        back = _line(await _next(sub, _line_at(l1, NOMINAL_KA)))
    assert all(a.asset == "L1" for a in alarms)
    assert back.ts >= start.ts + 900.0


# --- (c) garbage never crashes the simulator -----------------------------------------------


def _garbage(prefix: str, ts: float) -> list[tuple[str, bytes]]:
    """Bad command messages, covering every reject kind of the contract."""
    topics = Topics(prefix)
    l1 = topics.potline_setpoint("L1")
    until = ts + 3600.0

    def setpoint(current: str, extra: str = "") -> bytes:
        return f'{{"ts": {ts}, "current_ka": {current}, "valid_until": {until}{extra}}}'.encode()

    return [
        (l1, b'{"ts": 1, "current_ka": 350'),  # truncated JSON
        (l1, bytes(range(256))),  # binary noise
        (l1, b""),
        (l1, b"[1, 2, 3]"),
        (l1, setpoint('"350"')),  # wrong type
        (l1, setpoint("350", ', "extra": 1')),  # unknown field
        (l1, b'{"current_ka": 350}'),  # missing fields
        (l1, setpoint("NaN")),  # not JSON: NaN is no JSON literal
        (l1, setpoint("1e999")),  # infinity
        (l1, setpoint("-350")),  # negative current
        (l1, b'{"ts": 1, "pad": "' + b"x" * 1_000_000 + b'"}'),  # 1 MB
        (topics.potline_setpoint("L9"), setpoint("350")),  # no such line
        (f"{prefix}/command/potline/L1", setpoint("350")),  # not a contract topic
        (topics.bess_setpoint("bess1"), setpoint("350")),  # a pot-line payload for the BESS
        (l1, b'{"ts": 1, "current_ka": 350'),  # repeated: counted, not logged again
    ]


@services
async def test_garbage_commands_are_dropped_and_the_last_valid_setpoint_stays(
    broker: MosquittoBroker, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    topics = Topics(prefix)
    l1, l2 = topics.potline("L1"), topics.potline("L2")
    # 60x with 10 s steps: a setpoint valid for an hour of plant time lasts a wall minute, and the
    # 30 min watchdog is 30 wall seconds away, so only garbage could move the current here.
    config = _config(broker, prefix=prefix, speed=60.0, step_s=10.0)
    async with _simulator(config) as task, _subscriber(broker, l1, l2) as sub:
        start = _line(await _next(sub, _on(l1)))
        await _send_setpoint(sub, topics, "L1", 360.0, ts=start.ts, valid_s=3600.0)
        await _next(sub, _line_at(l1, 360.0))

        for topic, payload in _garbage(prefix, start.ts):
            await sub.publish(topic, payload, qos=1)
        # A valid setpoint after the garbage: once it shows, the garbage has been through the
        # plant too (one publisher, one subscription: the broker keeps their order).
        await _send_setpoint(sub, topics, "L2", 380.0, ts=start.ts, valid_s=3600.0)
        await _next(sub, _line_at(l2, 380.0))

        later = [_line(await _next(sub, _on(l1))) for _ in range(3)]
        assert not task.done(), "the simulator is still running"
    assert [m.current_ka for m in later] == pytest.approx([360.0] * 3)
    assert later[0].ts < later[1].ts < later[2].ts
    # Every reject kind was seen and logged once, not once per message.
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for kind in REJECT_KINDS:
        assert sum(kind in text for text in warnings) == 1, kind


# --- (d) stopping ------------------------------------------------------------------------------


@services
async def test_stop_event_makes_serve_return(broker: MosquittoBroker, prefix: str) -> None:
    topics = Topics(prefix)
    stop = asyncio.Event()
    async with _subscriber(broker, topics.potline("L1")) as sub:
        task = asyncio.create_task(serve(_config(broker, prefix=prefix), SCENARIO, stop=stop))
        await _next(sub, _on(topics.potline("L1")))
        stop.set()
        async with asyncio.timeout(5.0):
            await task  # returns, does not raise


async def test_stop_event_makes_serve_return_while_the_broker_is_unreachable(
    unused_tcp_port: int,
) -> None:
    config = SimulatorConfig(mqtt=MqttSettings(url=f"mqtt://127.0.0.1:{unused_tcp_port}"))
    stop = asyncio.Event()
    task = asyncio.create_task(serve(config, SCENARIO, stop=stop))
    await asyncio.sleep(0.3)  # long enough to fail a connection attempt and start backing off
    assert not task.done()
    stop.set()
    async with asyncio.timeout(5.0):
        await task


_RUN_SCRIPT = """
import logging, sys
from simulator.bridge import run
from simulator.config import load_simulator_config
from simulator.scenario import load_scenario
logging.basicConfig(level=logging.INFO)
config = load_simulator_config(sys.argv[1])
sys.exit(run(config, load_scenario(config.simulator.scenario)))
"""


@services
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_signal_stops_the_simulator_process_cleanly(
    broker: MosquittoBroker, prefix: str, tmp_path: Path, signum: signal.Signals
) -> None:
    config_path = tmp_path / "smelter-ems.toml"
    config_path.write_text(
        f'[mqtt]\nurl = "{broker.url}"\ntopic_prefix = "{prefix}"\n\n'
        '[simulator]\nscenario = "yunnan-hydro-solar"\nspeed = 600.0\n\n'
        "[controller]\nplan_interval_s = 900  # the daemon's table: ignored by the simulator\n",
        encoding="utf-8",
    )
    stderr_path = tmp_path / "stderr.txt"
    topics = Topics(prefix)
    async with _subscriber(broker, topics.potline("L1")) as sub:
        with stderr_path.open("wb") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-c", _RUN_SCRIPT, str(config_path)],
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        try:
            await _next(sub, _on(topics.potline("L1")), timeout_s=30.0)
            process.send_signal(signum)
            returncode = await asyncio.to_thread(process.wait, 10.0)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    log_text = stderr_path.read_text(encoding="utf-8")
    assert returncode == 0, log_text
    assert "Traceback" not in log_text
    assert f"{signum.name} received" in log_text


# --- (e) the broker goes away and comes back ---------------------------------------------------


@services
async def test_reconnects_after_a_broker_restart_and_telemetry_resumes(
    broker: MosquittoBroker, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="simulator.bridge")
    topics = Topics(prefix)
    l1 = topics.potline("L1")
    async with _simulator(_config(broker, prefix=prefix)):
        async with _subscriber(broker, l1) as sub:
            before = _line(await _next(sub, _on(l1)))
        try:
            broker.stop()
            # Long enough for a couple of failed reconnection attempts (backoff from 0.5 s).
            await asyncio.sleep(1.5)
        finally:
            broker.start()
        async with _subscriber(broker, l1) as sub:
            after = _line(await _next(sub, _on(l1)))
            # The command subscription is back too: a setpoint gets through.
            await _send_setpoint(sub, topics, "L1", 350.0, ts=after.ts, valid_s=3600.0)
            await _next(sub, _line_at(l1, 350.0))
    assert after.ts > before.ts

    bridge_log = [r for r in caplog.records if r.name == "simulator.bridge"]
    lost = [r for r in bridge_log if "lost the connection" in r.getMessage()]
    back = [r for r in bridge_log if "reconnected" in r.getMessage()]
    # Once when the outage starts and once when it ends, however many attempts in between.
    assert [r.levelno for r in lost] == [logging.WARNING]
    assert [r.levelno for r in back] == [logging.INFO]


# --- pure pieces of the bridge -------------------------------------------------------------


def test_backoff_grows_exponentially_with_jitter_up_to_a_cap() -> None:
    backoff = Backoff(initial_s=0.5, max_s=30.0)
    delays = [backoff.next_delay_s() for _ in range(12)]
    ceilings = [min(30.0, 0.5 * 2**n) for n in range(12)]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling
    assert len(set(delays)) == len(delays), "jittered, not lockstep"
    backoff.reset()
    assert backoff.next_delay_s() <= 0.5


def test_runner_stamps_telemetry_on_plant_time_between_steps_and_forecasts_at_start() -> None:
    """Publishing faster than the physics steps holds the last state, stamped with the
    publication time, so ``ts`` keeps moving on plant time."""
    outbox = _Outbox()
    outbox.connected = True
    plant = Plant(SCENARIO, 1, step_s=60.0)
    runner = _PlantRunner(plant, publish_interval_s=20.0, outbox=outbox)
    while runner.next_event_s < SCENARIO.start + 120.0:
        runner.advance()
    published = []
    while (publication := outbox.take()) is not None:
        published.append(publication)
    forecasts = [p for p in published if "/forecast/weather/" in p.topic]
    assert [(p.qos, p.retain) for p in forecasts] == [(1, True)]
    line = [
        decode("potline", p.payload, PotlineTelemetry)
        for p in published
        if p.topic == Topics().potline("L1")
    ]
    assert [m.ts - SCENARIO.start for m in line] == pytest.approx([0, 20, 40, 60, 80, 100])
    assert all(p.qos == 0 and not p.retain for p in published if "/telemetry/" in p.topic)


async def test_a_ticker_that_falls_behind_skips_ahead_instead_of_bursting(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A host too slow for the speed (here: every look at the clock finds an hour gone) makes
    plant time run slower than asked, a few events per tick, with one warning."""
    looks = itertools.count()
    stop = asyncio.Event()

    def monotonic() -> float:
        n = next(looks)
        if n >= 300:
            stop.set()
        return n * 3600.0

    plant = Plant(SCENARIO, 1, step_s=60.0)
    runner = _PlantRunner(plant, publish_interval_s=60.0, outbox=_Outbox())
    await _run_ticker(runner, _PlantClock(plant.now_s, 1.0, monotonic), stop)
    behind = [r for r in caplog.records if "cannot keep up" in r.getMessage()]
    assert [r.levelno for r in behind] == [logging.WARNING]
    assert 0 < plant.now_s - SCENARIO.start <= 300 * 60.0  # not the 300 h the clock claims


def test_outbox_keeps_alarms_but_not_telemetry_while_disconnected() -> None:
    outbox = _Outbox()
    outbox.put(_publication("smelter/telemetry/potline/L1", qos=0))
    outbox.put(_publication("smelter/plant/alarm", qos=1))
    outbox.connected = True
    outbox.put(_publication("smelter/telemetry/potline/L1", qos=0))
    outbox.drop_telemetry()  # the link went down
    assert [p.topic for p in _drain(outbox)] == ["smelter/plant/alarm"]


def _publication(topic: str, qos: int) -> Publication:
    return Publication(topic, b"{}", qos=qos)


def _drain(outbox: _Outbox) -> list[Publication]:
    out = []
    while (publication := outbox.take()) is not None:
        out.append(publication)
    return out


# --- config --------------------------------------------------------------------------------


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_config_defaults_and_ignores_the_daemons_tables(tmp_path: Path) -> None:
    path = _write(tmp_path, '[controller]\nplan_interval_s = 900\n\n[influx]\nurl = "http://x"\n')
    config = load_simulator_config(path)
    assert config == SimulatorConfig()
    assert config.simulator.scenario == "yunnan-hydro-solar"
    assert config.mqtt.url == "mqtt://127.0.0.1:1883"


def test_config_reads_both_tables(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        '[mqtt]\nurl = "mqtt://broker.example:1884"\nprotocol = "3.1.1"\n\n'
        '[simulator]\nscenario = "xinjiang-islanded"\nseed = 7\nspeed = 600\nstep_s = 30\n',
    )
    config = load_simulator_config(path)
    assert (config.mqtt.host, config.mqtt.port, config.mqtt.protocol) == (
        "broker.example",
        1884,
        "3.1.1",
    )
    sim = config.simulator
    assert (sim.scenario, sim.seed, sim.speed, sim.step_s) == ("xinjiang-islanded", 7, 600.0, 30.0)


@pytest.mark.parametrize(
    ("toml", "key", "value", "reason"),
    [
        ("[simulator]\nsped = 2\n", "simulator.sped", 2, "unknown key"),
        ("[simulator]\nspeed = 0\n", "simulator.speed", 0, "> 0"),
        ("[simulator]\nspeed = -1\n", "simulator.speed", -1, "> 0"),
        ("[simulator]\nseed = 'one'\n", "simulator.seed", "one", "Expected `int`"),
        ("[simulator]\npublish_interval_s = 0\n", "simulator.publish_interval_s", 0, "> 0"),
        ("[simulator]\nstep_s = 3600\n", "simulator.step_s", 3600, "<= 600"),
        ("[mqtt]\nurl = 'http://broker'\n", "mqtt.url", "http://broker", "regex"),
        ("[mqtt]\nprotocol = '4'\n", "mqtt.protocol", "4", "Invalid enum value"),
        ("[mqtt.tls]\nca = 'ca.pem'\n", "mqtt.tls.ca", "ca.pem", "unknown key"),
        (
            "[mqtt]\npassword_env = 'P'\npassword_file = 'p.txt'\n",
            "mqtt.password_env",
            "P",
            "not both",
        ),
        ("simulator = 3\n", "simulator", 3, "Expected `object`"),
    ],
)
def test_config_errors_name_key_value_and_reason(
    tmp_path: Path, toml: str, key: str, value: object, reason: str
) -> None:
    path = _write(tmp_path, toml)
    with pytest.raises(FileError) as info:
        load_simulator_config(path)
    assert (info.value.key, info.value.value) == (key, value)
    assert reason in info.value.reason
    assert str(path) in str(info.value) and key in str(info.value)


def test_config_file_missing_or_not_toml(tmp_path: Path) -> None:
    with pytest.raises(FileError, match="file not found"):
        load_simulator_config(tmp_path / "nope.toml")
    with pytest.raises(FileError, match="not valid TOML"):
        load_simulator_config(_write(tmp_path, "[simulator\n"))


@pytest.mark.parametrize(
    ("speed", "publish_interval_s", "expected_s"),
    [(1.0, None, 1.0), (5.0, None, 1.0), (600.0, None, 60.0), (600.0, 10.0, 10.0)],
)
def test_publish_interval_is_automatic_unless_given(
    speed: float, publish_interval_s: float | None, expected_s: float
) -> None:
    section = SimulatorSection(speed=speed, publish_interval_s=publish_interval_s)
    assert section.resolved_publish_interval_s == expected_s


# --- resolve_password ----------------------------------------------------------------------

SECRET = "s3cret-Pa55"


def test_no_password_configured() -> None:
    assert resolve_password(MqttSettings(username="sim"), {}) is None


def test_password_from_environment() -> None:
    settings = MqttSettings(username="sim", password_env="SMELTER_MQTT_PASSWORD")
    assert resolve_password(settings, {"SMELTER_MQTT_PASSWORD": SECRET}) == SECRET


def test_password_from_file_without_its_final_newline(tmp_path: Path) -> None:
    path = tmp_path / "password"
    path.write_text(SECRET + "\n", encoding="utf-8")
    settings = MqttSettings(username="sim", password_file=str(path))
    assert resolve_password(settings, {}) == SECRET


@pytest.mark.parametrize(
    ("settings", "environ", "key", "reason"),
    [
        (
            MqttSettings(username="sim", password_env="SMELTER_MQTT_PASSWORD"),
            {},
            "mqtt.password_env",
            "not set",
        ),
        (
            MqttSettings(username="sim", password_env="SMELTER_MQTT_PASSWORD"),
            {"SMELTER_MQTT_PASSWORD": ""},
            "mqtt.password_env",
            "empty",
        ),
        (
            MqttSettings(password_env="SMELTER_MQTT_PASSWORD"),
            {"SMELTER_MQTT_PASSWORD": SECRET},
            "mqtt.username",
            "username",
        ),
        (
            MqttSettings(username="sim", password_file="/nonexistent/password"),
            {},
            "mqtt.password_file",
            "not found",
        ),
    ],
)
def test_password_errors_name_the_place_never_the_secret(
    settings: MqttSettings, environ: dict[str, str], key: str, reason: str
) -> None:
    with pytest.raises(FileError) as info:
        resolve_password(settings, environ)
    assert info.value.key == key
    assert reason in info.value.reason
    assert SECRET not in str(info.value)


def test_empty_password_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "password"
    path.write_text("\n", encoding="utf-8")
    with pytest.raises(FileError, match="empty"):
        resolve_password(MqttSettings(username="sim", password_file=str(path)), {})


async def test_serve_refuses_to_start_without_its_password() -> None:
    config = SimulatorConfig(mqtt=MqttSettings(username="sim", password_env="NOT_SET_ANYWHERE"))
    with pytest.raises(FileError, match="NOT_SET_ANYWHERE"):
        await serve(config, SCENARIO, environ={})


async def test_serve_refuses_to_start_without_its_tls_files() -> None:
    tls = TlsSettings(ca_file="/nonexistent/ca.pem")
    config = SimulatorConfig(mqtt=MqttSettings(url="mqtts://127.0.0.1:8883", tls=tls))
    with pytest.raises(FileError) as info:
        await serve(config, SCENARIO, environ={})
    assert (info.value.key, info.value.value) == ("mqtt.tls.ca_file", "/nonexistent/ca.pem")


def test_config_round_trips_through_builtins() -> None:
    """The CLI overlays command-line options on the file's values this way."""
    config = SimulatorConfig(simulator=SimulatorSection(speed=600.0, publish_interval_s=5.0))
    assert msgspec.convert(msgspec.to_builtins(config), SimulatorConfig) == config
