"""One demo run: a broker, the daemon as its own process, the simulator, on an accelerated clock.

Start order: the broker (unless ``--broker``), then ``smelter-ems run`` (the daemon, its own
process, the same code as on a plant; its stderr in ``run/daemon.log``), then, once the daemon
has found no other controller and waits only to hear the plant, the simulator's MQTT bridge on
this event loop (so the demo reads the plant's truth), and a listener for the controller's
status and plans.  Stop order, also on Ctrl-C or SIGTERM: simulator, daemon (SIGTERM: it sends
safe setpoints and flushes its log), listener, broker.  The children run in their own sessions,
so that a Ctrl-C reaches only the demo, which stops them in that order.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from controller.sitefile import site_toml
from harness.demo.broker import BrokerKind, LocalBroker, start_broker
from harness.demo.listen import Heard, RecordingPlant, listen
from harness.processes import ProcessExitedError, cli, log_says, log_tail, stop_process
from harness.site_from_scenario import site_from_scenario
from simulator import bridge
from simulator.config import SimulatorConfig, SimulatorSection
from simulator.scenario import Scenario
from wire import Topics
from wire.link import MqttSettings
from wire.tasks import serve_until_signalled

PREFIX: Final = "smelter-demo"
"""The demo's topic prefix: on a shared broker (``--broker``) it stays apart from a plant's."""
LEASE_TTL_S: Final = 2.0
"""The daemon waits a third of it after its claim before it sends setpoints: at 1,200x, 2 s is
13 plant-minutes without control (the default 10 s would be over an hour)."""
DAEMON_READY_TIMEOUT_S: Final = 60.0
DAEMON_STOP_TIMEOUT_S: Final = 30.0
READY_LINE: Final = "claiming it once the plant is heard"
TICK_S: Final = 0.2
PLANT_STEP_S: Final = 60.0

Progress = Callable[["RecordingPlant", Heard], None]


class DemoError(RuntimeError):
    """The demo could not start or a part of it died (the message says which and where)."""


@dataclass(frozen=True)
class DemoOptions:
    scenario: Scenario
    days: float
    speed: float
    seed: int
    out: Path
    broker_url: str | None = None
    embedded_broker: bool = False
    """Start amqtt even where Mosquitto is installed."""
    influx_url: str | None = None
    influx_org: str | None = None
    influx_bucket: str | None = None


@dataclass
class DemoRun:
    plant: RecordingPlant
    heard: Heard
    broker: str
    """What carried the messages: mosquitto, amqtt, or the URL given."""
    interrupted: bool
    wall_s: float
    unsent_points: int | None = None
    """With ``--influx-url``: points the daemon could not write to InfluxDB, left in its spool
    (``points/spool``); None when it logged to files."""


def _write_config(opts: DemoOptions, settings: MqttSettings, run_dir: Path, points: Path) -> Path:
    site, config = run_dir / "site.toml", run_dir / "smelter-ems.toml"
    site.write_text(site_toml(site_from_scenario(opts.scenario)), encoding="utf-8")
    config.write_text(
        "# written by smelter-ems demo for this run\n"
        f'[mqtt]\nurl = "{settings.url}"\nprotocol = "{settings.protocol}"\n'
        f'topic_prefix = "{settings.topic_prefix}"\nkeepalive_s = 5\n'
        f'[controller]\nsite = "{site}"\nstate_file = "{run_dir / "state.json"}"\n'
        f"http_port = 0\nlease_ttl_s = {LEASE_TTL_S}\n"
        f'[influx]\nfiles_dir = "{points}"\nspool_dir = "{points / "spool"}"\n'
        "flush_interval_s = 0.5\n",
        encoding="utf-8",
    )
    return config


def _start_daemon(opts: DemoOptions, config: Path, log_path: Path) -> subprocess.Popen[bytes]:
    argv = ["run", "--config", str(config)]
    for flag, value in (
        ("--influx-url", opts.influx_url),
        ("--influx-org", opts.influx_org),
        ("--influx-bucket", opts.influx_bucket),
    ):
        if value is not None:
            argv += [flag, value]
    return cli(argv, log_path, own_session=True)


async def _daemon_ready(
    process: subprocess.Popen[bytes], log_path: Path, stop: asyncio.Event
) -> None:
    try:
        await log_says(log_path, READY_LINE, DAEMON_READY_TIMEOUT_S, process=process, stop=stop)
    except ProcessExitedError as exc:
        tail = await asyncio.to_thread(log_tail, log_path)
        raise DemoError(f"the daemon exited with {exc.code}:\n{tail}") from None
    except TimeoutError:
        tail = await asyncio.to_thread(log_tail, log_path)
        raise DemoError(
            f"the daemon did not start within {DAEMON_READY_TIMEOUT_S:g} s:\n{tail}"
        ) from None


def prepare_out(out: Path) -> tuple[Path, Path]:
    """``out/run`` (config, site, state, logs) and ``out/points`` (the daemon's line-protocol
    log, and its spool for InfluxDB in ``points/spool``), emptied of a previous run's state and
    points: a spool left by a run whose database was away would otherwise be replayed into
    this run's database."""
    # absolute: the daemon's config file names its site file, taken relative to the config
    run_dir, points = out.resolve() / "run", out.resolve() / "points"
    run_dir.mkdir(parents=True, exist_ok=True)
    points.mkdir(parents=True, exist_ok=True)
    spooled = (points / "spool").glob("*.lp")
    for old in (
        *run_dir.glob("state.json*"),
        run_dir / "daemon.log",
        *points.glob("*.lp"),
        *spooled,
    ):
        old.unlink(missing_ok=True)
    return run_dir, points


def unsent_points(points: Path) -> int:
    """Points the stopped daemon left in its spool (``points/spool``, line-protocol segments,
    one point a line): those InfluxDB did not take (unreachable, or refusing the token, org or
    bucket; ``run/daemon.log`` says which)."""
    return sum(p.read_bytes().count(b"\n") for p in (points / "spool").glob("*.lp"))


async def run_demo(opts: DemoOptions, progress: Progress | None = None) -> DemoRun:
    """Run the closed loop for ``opts.days`` of plant time, or until SIGINT/SIGTERM."""
    run_dir, points = prepare_out(opts.out)
    local: LocalBroker | None = None
    if opts.broker_url is None:
        prefer: BrokerKind | None = "amqtt" if opts.embedded_broker else None
        local = await asyncio.to_thread(start_broker, run_dir, prefer)
        url, protocol, carrier = local.url, local.protocol, str(local.kind)
    else:
        url, protocol, carrier = opts.broker_url, "5", opts.broker_url
    settings = MqttSettings(
        url=url, protocol=_protocol(protocol), topic_prefix=PREFIX, keepalive_s=5
    )
    scenario = opts.scenario
    plant = RecordingPlant(
        scenario,
        opts.seed,
        Topics(PREFIX),
        site_from_scenario(scenario),
        end_s=scenario.start + opts.days * 86_400.0,
    )
    heard = Heard()
    interrupted = False
    started = time.monotonic()

    async def closed_loop(stop: asyncio.Event) -> None:
        nonlocal interrupted
        log_path = run_dir / "daemon.log"
        daemon = _start_daemon(opts, _write_config(opts, settings, run_dir, points), log_path)
        listener = asyncio.create_task(listen(settings, None, heard))
        sim_stop = asyncio.Event()
        sim: asyncio.Task[None] | None = None
        try:
            await _daemon_ready(daemon, log_path, stop)
            config = SimulatorConfig(
                mqtt=settings,
                simulator=SimulatorSection(
                    scenario=scenario.name,
                    seed=opts.seed,
                    speed=opts.speed,
                    publish_interval_s=publish_interval_s(opts.speed),
                ),
            )
            sim = asyncio.create_task(bridge.serve(config, scenario, stop=sim_stop, plant=plant))
            while plant.final_kpis is None and not stop.is_set():
                if sim.done():
                    sim.result()  # raises what stopped it
                    raise DemoError("the simulator stopped on its own")
                if daemon.poll() is not None:
                    tail = await asyncio.to_thread(log_tail, log_path)
                    raise DemoError(f"the daemon exited with {daemon.returncode}:\n{tail}")
                if progress is not None:
                    progress(plant, heard)
                await sleep_or_stop(stop, TICK_S)
            interrupted = plant.final_kpis is None
            plant.snapshot()
            if progress is not None:
                progress(plant, heard)
        finally:
            sim_stop.set()
            if sim is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(sim, 20.0)
            await asyncio.to_thread(stop_process, daemon, DAEMON_STOP_TIMEOUT_S)
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    try:
        await serve_until_signalled(closed_loop)
    finally:
        if local is not None:
            await asyncio.to_thread(local.stop)
    unsent = None if opts.influx_url is None else unsent_points(points)
    return DemoRun(plant, heard, carrier, interrupted, time.monotonic() - started, unsent)


def publish_interval_s(speed: float) -> float:
    """Plant seconds between telemetry messages: the simulator's own choice (1 s, stretched to
    about 10 messages a wall second per topic), but never longer than its physics step (60 s),
    which is what the in-process backtest's controller hears."""
    return min(PLANT_STEP_S, max(1.0, speed / 10.0))


async def sleep_or_stop(stop: asyncio.Event, delay_s: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), delay_s)


def _protocol(value: str) -> Literal["3.1.1", "5"]:
    return "3.1.1" if value == "3.1.1" else "5"
