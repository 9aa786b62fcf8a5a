"""The daemon's MQTT ingest and reaction time, side by side with a bare aiomqtt subscriber.

    .venv/bin/python bench/bench_daemon.py [--messages 9000]

One Mosquitto (Debian's, on a free loopback port); a publisher process sends the telemetry of a
4-line plant with per-pot voltages (300 pots a line), BESS, renewables and grid, as fast as the
broker takes it.  Printed:

1. ingest rate: the same burst received by a bare aiomqtt subscriber (decode nothing) and by the
   daemon (every message parsed, validated and taken into the plant state), and their ratio;
2. ingest-to-state latency p50/p99: from publication (the payload's ``ts`` is the wall clock) to
   the end of the daemon's handling, at a steady 1,300 msg/s (a 4-line plant at 1 Hz);
3. telemetry-to-setpoint latency: from the telemetry that makes a plan due to the first setpoint
   of that plan at a subscriber, solve included (plant time runs at 120x so that a 15-min cycle
   comes every 7.5 s).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import socket
import statistics
import sys
import tempfile
import time
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Final

import aiomqtt
import msgspec
import numpy as np

from controller.config import ControllerSection, DaemonConfig
from controller.daemon.service import Daemon
from controller.site import BessModel, GridModel, LineModel, RenewableModel, SiteModel
from controller.tsdb import InfluxSettings
from harness.mosquitto import MosquittoBroker, find_mosquitto
from wire import (
    BessTelemetry,
    GridTelemetry,
    PlanMessage,
    PotlineTelemetry,
    PotVoltages,
    RenewableKind,
    RenewableTelemetry,
    Topics,
    decode,
    encode,
)
from wire.link import MqttSettings

LINES = ("L1", "L2", "L3", "L4")
PLANT_T0 = 1.78e9
PROTOCOL: Final = "3.1.1"
MAX_QUEUED = 10_000
"""aiomqtt's incoming queue in the daemon (wire.link.make_client's default); a burst
larger than this is partly dropped by whichever subscriber reads slower than the broker."""
IDLE_S = 2.0
"""A burst is over when nothing has come for this long (QoS 0 may lose the odd message)."""
SITE = SiteModel(
    name="bench",
    lines=tuple(LineModel(n) for n in LINES),
    bess=(BessModel("B1"),),
    grid=GridModel(import_limit_mw=3000.0, export_limit_mw=0.0, carbon_t_per_mwh=0.6),
    renewable=(RenewableModel("pv1", "pv", 800.0), RenewableModel("wind1", "wind", 600.0)),
)


def _round(topics: Topics, ts: float) -> list[tuple[str, bytes]]:
    """One second of the plant's telemetry: 4 lines + their pots, BESS, 2 plants, grid."""
    out = []
    rng = np.random.default_rng(int(ts) % 1000)
    for line in LINES:
        out.append(
            (
                topics.potline(line),
                encode(
                    PotlineTelemetry(
                        ts=ts, current_ka=400.0, voltage_v=1600.0, power_mw=480.0, pots_online=300
                    )
                ),
            )
        )
        volts = [round(float(v), 3) for v in 4.0 + 0.05 * rng.standard_normal(300)]
        out.append((topics.pots(line), encode(PotVoltages(ts=ts, voltage_v=volts))))
    out.append(
        (
            topics.bess("B1"),
            encode(BessTelemetry(ts=ts, power_mw=0.0, soc_frac=0.5, energy_capacity_mwh=200.0)),
        )
    )
    for plant, kind in (("pv1", RenewableKind.PV), ("wind1", RenewableKind.WIND)):
        out.append(
            (
                topics.renewable(plant),
                encode(
                    RenewableTelemetry(
                        ts=ts, kind=kind, power_mw=300.0, available_mw=300.0, capacity_mw=800.0
                    )
                ),
            )
        )
    out.append(
        (topics.grid("main"), encode(GridTelemetry(ts=ts, power_mw=1500.0, frequency_hz=50.0)))
    )
    return out


def _packet(kind: int, body: bytes) -> bytes:
    """An MQTT 3.1.1 control packet: fixed header with the remaining length as a varint."""
    out = bytearray([kind])
    n = len(body)
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out) + body


def _firehose(port: int, prefix: str, count: int) -> None:
    """A burst that no Python client library limits: ``count`` QoS 0 PUBLISH packets written
    straight to the broker's socket (MQTT 3.1.1), so the subscribers are what is measured."""
    topics = Topics(prefix)
    packets = bytearray()
    sent = 0
    rounds = 0
    while sent < count:
        # one round per second of plant time, as the plant sends them: the burst is a backlog
        # of the same telemetry, not a plant running thousands of times faster
        rounds += 1
        for topic, payload in _round(topics, 1.0e9 + rounds):
            name = topic.encode()
            packets += _packet(0x30, len(name).to_bytes(2, "big") + name + payload)
            sent += 1
    connect = b"\x00\x04MQTT\x04\x02\x00\x3c" + (6).to_bytes(2, "big") + b"firehs"
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(_packet(0x10, connect))
        sock.recv(4)  # CONNACK
        sock.sendall(packets)
        sock.sendall(_packet(0xE0, b""))  # DISCONNECT


def _publisher(port: int, prefix: str, mode: str, count: int, speed: float, t_ref: float) -> None:
    """Runs in its own process: a burst of ``count`` messages, or ``count`` at 1,300 msg/s."""
    if mode == "burst":
        _firehose(port, prefix, count)
        return

    async def main() -> None:
        topics = Topics(prefix)
        async with aiomqtt.Client("127.0.0.1", port, max_queued_outgoing_messages=0) as client:
            sent = 0
            while sent < count:
                if mode == "steady":
                    batch = _round(topics, time.time())
                else:  # "plant": plant time at `speed` x, one round per plant step of 60 s
                    batch = _round(topics, PLANT_T0 + (time.time() - t_ref) * speed)
                for topic, payload in batch:
                    await client.publish(topic, payload, qos=0)
                sent += len(batch)
                if mode == "steady":
                    await asyncio.sleep(len(batch) / 1300.0)
                elif mode == "plant":
                    await asyncio.sleep(60.0 / speed)

    asyncio.run(main())


def _spawn(
    port: int, prefix: str, mode: str, count: int, speed: float = 1.0, t_ref: float = 0.0
) -> BaseProcess:
    args = (port, prefix, mode, count, speed, t_ref)
    p = mp.get_context("spawn").Process(target=_publisher, args=args)
    p.start()
    return p


async def bare_rate(port: int, count: int) -> float:
    prefix = "bare"
    # the daemon's client settings: an incoming queue of MAX_QUEUED (bounded memory)
    async with aiomqtt.Client("127.0.0.1", port, max_queued_incoming_messages=MAX_QUEUED) as client:
        await client.subscribe(f"{prefix}/telemetry/#")
        proc = _spawn(port, prefix, "burst", count)
        n, t0, t1 = 0, 0.0, 0.0
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(120.0) as deadline:
                async for _ in client.messages:
                    n += 1
                    t1 = time.perf_counter()
                    t0 = t0 or t1
                    if n >= count:
                        break
                    deadline.reschedule(asyncio.get_running_loop().time() + IDLE_S)
        rate = (n - 1) / (t1 - t0)
        print(f"  (bare: {n} of {count} received)")
    await asyncio.to_thread(proc.join)
    return rate


def _daemon(port: int, prefix: str, workdir: Path, **ctl: float) -> Daemon:
    config = DaemonConfig(
        # the bare subscriber's protocol (aiomqtt's default); MQTT 5 costs paho more per message
        mqtt=MqttSettings(url=f"mqtt://127.0.0.1:{port}", topic_prefix=prefix, protocol=PROTOCOL),
        controller=ControllerSection(
            state_file=str(workdir / f"{prefix}.json"), http_port=0, **ctl
        ),  # type: ignore[arg-type]
        influx=InfluxSettings(files_dir=str(workdir / f"{prefix}-points")),
    )
    return Daemon(config, SITE)


async def daemon_rate_and_latency(
    port: int, count: int, workdir: Path
) -> tuple[float, list[float]]:
    d = _daemon(port, "dmn", workdir)
    stop = asyncio.Event()
    task = asyncio.create_task(d.run(stop))
    while not d.stats.connected:
        await asyncio.sleep(0.05)
    core = d.core
    stamps: list[float] = []
    handle = core.on_message

    def timed(topic: str, data: bytes | bytearray, wall_s: float) -> None:
        handle(topic, data, wall_s)
        stamps.append(time.perf_counter())

    core.on_message = timed  # type: ignore[method-assign]
    proc = _spawn(port, "dmn", "burst", count)
    seen = -1
    while len(stamps) < count and (not stamps or len(stamps) != seen):
        seen = len(stamps)
        await asyncio.sleep(IDLE_S)
    rate = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    print(f"  (daemon: {len(stamps)} of {count} received)")
    await asyncio.to_thread(proc.join)
    # steady 1,300 msg/s with wall-clock ts: ingest-to-state latency
    latencies: list[float] = []

    def latency(topic: str, data: bytes | bytearray, wall_s: float) -> None:
        handle(topic, data, wall_s)
        if "/pots" not in topic:
            latencies.append(time.time() - msgspec.json.decode(data)["ts"])

    core.on_message = latency  # type: ignore[method-assign]
    proc = _spawn(port, "dmn", "steady", 13_000)
    await asyncio.to_thread(proc.join)
    await asyncio.sleep(0.5)
    stop.set()
    await task
    return rate, latencies


async def reaction(port: int, workdir: Path, cycles: int) -> list[float]:
    speed = 120.0
    d = _daemon(port, "rx", workdir, silence_wall_s=60.0)
    published: dict[str, float] = {}
    latencies = []
    stop = asyncio.Event()
    task = asyncio.create_task(d.run(stop))
    async with aiomqtt.Client("127.0.0.1", port) as client:
        await client.subscribe("rx/controller/plan")
        await client.subscribe("rx/command/potline/L1/setpoint")
        t_ref = time.time()
        proc = _spawn(port, "rx", "plant", 10**9, speed, t_ref)
        plan_start: dict[str, float] = {}
        async for message in client.messages:
            payload = message.payload
            assert isinstance(payload, bytes)
            if message.topic.value.endswith("/plan"):
                plan = decode("plan", payload, PlanMessage)
                plan_start[plan.plan_id] = plan.times[0]
            else:
                sp = msgspec.json.decode(payload)
                if sp["plan_id"] in plan_start and sp["plan_id"] not in published:
                    published[sp["plan_id"]] = time.time()
                    start_ts = plan_start[sp["plan_id"]]
                    # the telemetry stamped start_ts left the publisher at this wall time
                    sent_wall = t_ref + (start_ts - PLANT_T0) / speed
                    latencies.append(published[sp["plan_id"]] - sent_wall)
                    if len(latencies) >= cycles:
                        break
        proc.terminate()
    stop.set()
    await task
    return latencies[1:]  # the first includes start-up


def _ms(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1e3, q))


async def main(count: int, cycles: int) -> None:
    executable = find_mosquitto()
    if executable is None:
        sys.exit("mosquitto is not installed (apt-get install mosquitto)")
    with tempfile.TemporaryDirectory() as tmp:
        broker = MosquittoBroker(executable, Path(tmp))
        # Hold the whole burst for a slow subscriber instead of dropping QoS 0 messages, so the
        # rate measured is the subscriber's own.
        with broker.config_path.open("a", encoding="utf-8") as conf:
            conf.write("max_queued_messages 0\nmax_queued_bytes 0\n")
        broker.start()
        try:
            bare = await bare_rate(broker.port, count)
            ours, latencies = await daemon_rate_and_latency(broker.port, count, Path(tmp))
            react = await reaction(broker.port, Path(tmp), cycles)
        finally:
            broker.stop()
    print(f"burst of {count} telemetry messages (4 lines with 300-pot voltages, BESS, 2 plants)")
    print(f"  bare aiomqtt subscriber       {bare:10,.0f} msg/s")
    print(f"  daemon (validated, in state)  {ours:10,.0f} msg/s   ratio {ours / bare:.2f}")
    print(f"  need: 1,300 msg/s x 10 headroom = 13,000 msg/s -> {ours / 13_000:.1f}x that")
    print(
        f"ingest-to-state latency at 1,300 msg/s: p50 {_ms(latencies, 50):.2f} ms, "
        f"p99 {_ms(latencies, 99):.2f} ms ({len(latencies)} messages)"
    )
    print(
        f"telemetry-to-setpoint latency (4 lines, 24 h at 15 min, solve included): "
        f"p50 {statistics.median(react) * 1e3:.0f} ms, max {max(react) * 1e3:.0f} ms "
        f"({len(react)} plans)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=9_000, help=f"burst (< {MAX_QUEUED})")
    parser.add_argument("--plans", type=int, default=6)
    args = parser.parse_args()
    asyncio.run(main(args.messages, args.plans))
