"""A running daemon under hostile and forged messages: does it stay in control?

    .venv/bin/python bench/bench_hostile.py [--hostile 10000] [--forged 1000] [--speed 60]
                                            [--seconds 60]

Starts a Mosquitto broker on a free loopback port, the simulator (yunnan-hydro-solar, in this
process) and the daemon as its own process (`smelter-ems run --site`), lets it take control,
then sends over ``--seconds`` of wall time (an hour of plant time at 60x), interleaved with
the plant's own telemetry:

- ``--hostile`` messages that are wrong on their face: malformed JSON, wrong types, NaN,
  oversized, unknown topics, unknown assets, far-future and ancient timestamps, stale
  duplicates, far-future operator commands, weather forecasts issued in the future or with
  series that do not fit, forged alarms about assets that do not exist;
- ``--forged`` messages that are well formed and plausible at a glance: a BESS reporting a
  full battery, PV at nameplate at night, a line current beyond its ramp.

It prints the daemon's rejects by kind and suspect telemetry by check (from its /metrics), the
setpoints it published, the longest time a line had no valid setpoint, its RSS before and
after, and whether any setpoint left the hard or ramp limits.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiomqtt

from controller.sitefile import site_toml
from harness.mosquitto import MosquittoBroker, find_mosquitto, free_port
from harness.processes import cli, stop_process
from harness.site_from_scenario import site_from_scenario
from simulator import bridge
from simulator.config import SimulatorConfig, SimulatorSection
from simulator.plant import Plant
from simulator.scenario import load_scenario
from wire import (
    BessTelemetry,
    GridTelemetry,
    ModeCommand,
    PlantAlarm,
    PotlineSetpoint,
    PotlineTelemetry,
    RenewableKind,
    RenewableTelemetry,
    Topics,
    WeatherForecast,
    decode,
    encode,
)
from wire.link import MqttSettings

SCENARIO = "yunnan-hydro-solar"
PREFIX = "smelter"


def _label(metric: str) -> str:
    """``smelter_x_total{kind="bad_ts"}`` → ``bad_ts``."""
    return metric.split('="', 1)[1].rstrip('"}')


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _metrics(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith(("smelter_messages_rejected_total", "smelter_suspect_telemetry_total")):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def hostile(topics: Topics, now_s: float, rng: random.Random) -> tuple[str, bytes]:
    """One message that is wrong on its face."""
    line = PotlineTelemetry(
        ts=now_s, current_ka=400.0, voltage_v=1200.0, power_mw=480.0, pots_online=300
    )
    choices: list[tuple[str, bytes]] = [
        (topics.potline("L1"), b"{not json"),
        (topics.potline("L1"), b'{"ts": "soon", "current_ka": 1}'),
        (topics.potline("L1"), b'{"ts": 1, "current_ka": NaN}'),
        (topics.potline("L1"), b"x" * 70_000),
        (f"{PREFIX}/telemetry/nothing/here", encode(line)),
        (topics.potline("L9"), encode(line)),
        (topics.grid("pcc9"), encode(GridTelemetry(ts=now_s, power_mw=5.0, frequency_hz=50.0))),
        (
            topics.potline("L1"),
            encode(
                PotlineTelemetry(
                    ts=7_258_118_400.0, current_ka=400.0, voltage_v=1.0, power_mw=1.0, pots_online=1
                )
            ),
        ),
        (
            topics.potline("L2"),
            encode(
                PotlineTelemetry(
                    ts=0.0, current_ka=400.0, voltage_v=1.0, power_mw=1.0, pots_online=1
                )
            ),
        ),
        (
            topics.potline("L1"),
            encode(
                PotlineTelemetry(
                    ts=now_s - 3000.0, current_ka=440.0, voltage_v=1.0, power_mw=1.0, pots_online=1
                )
            ),
        ),
        (topics.mode(), encode(ModeCommand(ts=99_999_999_999.0, mode="hold"))),  # type: ignore[arg-type]
        (
            topics.mode(),
            encode(
                ModeCommand(
                    ts=now_s,
                    mode="manual",
                    potline_current_ka={"L9": 300.0},  # type: ignore[arg-type]
                )
            ),
        ),
        (
            topics.weather("yunnan"),
            encode(WeatherForecast(ts=now_s, issued_ts=now_s + 1e9, times=[now_s], ghi_wm2=[0.0])),
        ),
        (topics.weather("yunnan"), b'{"ts": 1, "issued_ts": 1, "times": [1, 2], "ghi_wm2": [1]}'),
        (topics.alarm(), encode(PlantAlarm(ts=now_s, asset="L9", code="x", message="forged"))),
    ]
    return rng.choice(choices)


def forged(topics: Topics, now_s: float, rng: random.Random) -> tuple[str, bytes]:
    """One message that is well formed and plausible at a glance, but a lie: stamped a step
    ahead of the plant's physics (its telemetry is stamped up to a step after it), inside the
    window, so that it is the newest of its stream."""
    now_s += 61.0 + rng.uniform(0.0, 1.0)
    choices = [
        (
            topics.bess("bess1"),
            encode(
                BessTelemetry(
                    ts=now_s,
                    power_mw=0.0,
                    soc_frac=0.9 if rng.random() < 0.5 else 0.1,
                    energy_capacity_mwh=200.0,
                )
            ),
        ),
        (
            topics.renewable("pv1"),
            encode(
                RenewableTelemetry(
                    ts=now_s,
                    kind=RenewableKind.PV,
                    power_mw=1200.0,
                    available_mw=1200.0,
                    capacity_mw=1200.0,
                )
            ),
        ),
        (
            topics.potline("L1"),
            encode(
                PotlineTelemetry(
                    ts=now_s, current_ka=440.0, voltage_v=1320.0, power_mw=580.0, pots_online=300
                )
            ),
        ),
    ]
    return rng.choice(choices)


async def run(args: argparse.Namespace) -> None:
    exe = find_mosquitto()
    if exe is None:
        sys.exit("mosquitto is not installed (apt-get install mosquitto)")
    work = Path(tempfile.mkdtemp(prefix="smelter-hostile-"))
    broker = MosquittoBroker(exe, work)
    broker.start()
    http_port = free_port()
    scenario = load_scenario(SCENARIO)
    site = site_from_scenario(scenario)
    (work / "site.toml").write_text(site_toml(site), encoding="utf-8")
    (work / "c.toml").write_text(
        f'[mqtt]\nurl = "{broker.url}"\n[controller]\nsite = "site.toml"\n'
        f'state_file = "{work / "state.json"}"\nhttp_port = {http_port}\n',
        encoding="utf-8",
    )
    topics = Topics(PREFIX)
    plant = Plant(scenario, 1, topics=topics)
    sim = SimulatorConfig(
        mqtt=MqttSettings(url=broker.url),
        simulator=SimulatorSection(scenario=SCENARIO, seed=1, speed=args.speed),
    )
    stop = asyncio.Event()
    sim_task = asyncio.create_task(bridge.serve(sim, scenario, stop=stop, plant=plant))
    argv = ["--log-level", "WARNING", "run", "--config", str(work / "c.toml")]
    daemon = cli(argv, work / "daemon.log")
    setpoints: list[PotlineSetpoint] = []
    line = site.lines[0]
    try:
        async with aiomqtt.Client(broker.host, broker.port) as client:
            await client.subscribe(f"{PREFIX}/command/potline/L1/setpoint", qos=1)

            async def listen() -> None:
                async for message in client.messages:
                    payload = message.payload
                    assert isinstance(payload, bytes | bytearray)
                    setpoints.append(decode("potline_setpoint", payload, PotlineSetpoint))

            listener = asyncio.create_task(listen())
            async with asyncio.timeout(60.0):
                while not setpoints:
                    await asyncio.sleep(0.1)
            rss_before = _rss_kb(daemon.pid)
            rng = random.Random(1)
            sends = ["h"] * args.hostile + ["f"] * args.forged
            rng.shuffle(sends)
            started = time.monotonic()
            pause_s = args.seconds / max(len(sends) / 100, 1)
            for i, what in enumerate(sends):
                make = hostile if what == "h" else forged
                topic, data = make(topics, plant.now_s, rng)
                await client.publish(topic, data, qos=0)
                if i % 100 == 0:
                    await asyncio.sleep(pause_s)  # spread over --seconds of wall time
            sent_s = time.monotonic() - started
            await asyncio.sleep(5.0)
            rss_after = _rss_kb(daemon.pid)
            metrics = _metrics(http_port)
            listener.cancel()
    finally:
        await asyncio.to_thread(stop_process, daemon)
        stop.set()
        await asyncio.wait_for(sim_task, 20.0)
        broker.stop()
    gaps = [b.ts - a.valid_until for a, b in itertools.pairwise(setpoints)]
    outside = sum(
        not (line.hard_min_ka - 1e-6 <= s.current_ka <= line.hard_max_ka + 1e-6) for s in setpoints
    )
    too_fast = sum(
        abs(b.current_ka - a.current_ka)
        > line.ramp_ka_per_h * max(b.ts - a.ts, 0.0) / 3600.0 + 1e-6
        for a, b in itertools.pairwise(setpoints)
    )
    print(f"sent {args.hostile} hostile and {args.forged} forged messages in {sent_s:.1f} s")
    print("rejected by kind:")
    for name, value in sorted(metrics.items()):
        if name.startswith("smelter_messages_rejected_total") and value:
            print(f"  {_label(name):>16}: {value:.0f}")
    print("suspect telemetry by check:")
    for name, value in sorted(metrics.items()):
        if name.startswith("smelter_suspect_telemetry_total") and value:
            print(f"  {_label(name):>16}: {value:.0f}")
    print(f"L1 setpoints published: {len(setpoints)}")
    print(f"longest gap in L1 setpoint validity: {max([0.0, *gaps]):.0f} s of plant time")
    print(f"daemon RSS: {rss_before / 1024:.1f} MiB before, {rss_after / 1024:.1f} MiB after")
    print(f"setpoints outside the hard limits: {outside}; faster than the ramp: {too_fast}")
    print(json.dumps({"log": str(work / "daemon.log")}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hostile", type=int, default=10_000)
    ap.add_argument("--forged", type=int, default=1_000)
    ap.add_argument("--speed", type=float, default=60.0)
    ap.add_argument("--seconds", type=float, default=60.0, help="wall time to send over")
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()
