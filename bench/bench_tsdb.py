"""Throughput of the asynchronous InfluxDB writer, and the event-loop pauses it causes.

Writes into a real VictoriaMetrics (started here like the tests start it, on a free loopback
port; or ``--url`` of a running InfluxDB-compatible server) and prints:

- sustained points/s through ``write`` → batches → HTTP, until the server acknowledged them all
  (goal ≥ 100,000 points/s), and the encoding rate alone for comparison;
- the worst and 99th-percentile pause of the event loop, measured by a ticker task that asks to
  wake every millisecond, while a 100,000-point batch is written (goal: no pause > 10 ms),
  and how long the ``write`` call itself took.

    .venv/bin/python bench/bench_tsdb.py [--points 500000] [--burst 100000] [--url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))

from victoria import VictoriaMetrics, find_victoria_metrics

from controller.tsdb import InfluxSettings, Point, open_sink
from controller.tsdb.points import encode_lines


def make_points(first: int, count: int, t0_s: float) -> list[Point]:
    """Telemetry-like points: 8 assets, 3 fields each, 10 ms apart."""
    return [
        Point(
            "telemetry",
            {"site": "bench", "kind": "potline", "asset": f"L{i % 8}"},
            {"current_ka": 400.0 + (i % 100) * 0.01, "power_mw": 480.25, "pots_online": 300},
            t0_s + i * 0.01,
        )
        for i in range(first, first + count)
    ]


async def measure_pauses(work: Coroutine[Any, Any, None]) -> list[float]:
    """How late a ticker that asks to wake every 1 ms wakes up [ms], while ``work`` runs."""
    lateness_ms: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            due = time.perf_counter() + 0.001
            await asyncio.sleep(0.001)
            lateness_ms.append((time.perf_counter() - due) * 1e3)

    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    await work
    stop.set()
    await tick
    return lateness_ms


def describe(lateness_ms: list[float]) -> str:
    worst = max(lateness_ms)
    p99 = statistics.quantiles(lateness_ms, n=100)[98]
    over = sum(1 for x in lateness_ms if x > 10.0)
    return (
        f"worst {worst:.1f} ms, p99 {p99:.2f} ms, median {statistics.median(lateness_ms):.2f} ms, "
        f"{over} of {len(lateness_ms):,} ticks late by > 10 ms"
    )


async def run(url: str, total: int, burst: int, spool_dir: str) -> None:
    settings = InfluxSettings(url=url, org="bench", bucket="bench", spool_dir=spool_dir)
    sink = open_sink(settings, token=None)
    t0_s = time.time() - 86_400.0

    # warm-up: the connection, and the series created once in the server
    sink.write(make_points(0, 10_000, t0_s))
    while sink.stats().written < 10_000:
        await asyncio.sleep(0.001)

    chunks = [make_points(10_000 + i, 10_000, t0_s) for i in range(10_000, total + 10_000, 10_000)]
    sent = sink.stats().written
    start = time.perf_counter()
    for chunk in chunks:
        sink.write(chunk)
        await asyncio.sleep(0)
    target = sent + sum(len(c) for c in chunks)
    while sink.stats().written < target:
        await asyncio.sleep(0.001)
    elapsed_s = time.perf_counter() - start
    print(
        f"sustained:   {target - sent:,} points in {elapsed_s:.2f} s = "
        f"{(target - sent) / elapsed_s:,.0f} points/s (goal >= 100,000)"
    )

    # the same ticker with nothing else to do: what the machine alone costs
    baseline_ms = await measure_pauses(asyncio.sleep(1.0))

    big = make_points(total + 20_000, burst, t0_s)
    target = sink.stats().written + burst
    call_ms = 0.0

    async def burst_written() -> None:
        nonlocal call_ms
        call_start = time.perf_counter()
        sink.write(big)
        call_ms = (time.perf_counter() - call_start) * 1e3
        while sink.stats().written < target:
            await asyncio.sleep(0.001)

    burst_start = time.perf_counter()
    lateness_ms = await measure_pauses(burst_written())
    burst_s = time.perf_counter() - burst_start
    await sink.close()
    print(
        f"burst:       {burst:,} points in one write() written in {burst_s:.2f} s "
        f"({burst / burst_s:,.0f} points/s); the write() call itself took {call_ms:.1f} ms"
    )
    print(f"loop pauses: {describe(lateness_ms)} while the burst is written (goal: none > 10 ms)")
    print(f"             {describe(baseline_ms)} with the loop idle (the machine's own share)")
    stats = sink.stats()
    print(
        f"counters:    written {stats.written:,}, spooled {stats.spooled:,}, "
        f"dropped {stats.dropped:,}, rejected {stats.rejected:,}"
    )


def encode_rate(count: int = 100_000) -> float:
    points = make_points(0, count, time.time())
    start = time.perf_counter()
    encode_lines(points)
    return count / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=500_000, help="points for the sustained rate")
    ap.add_argument("--burst", type=int, default=100_000, help="points in the one large write")
    ap.add_argument("--url", help="an InfluxDB-compatible server (default: start VictoriaMetrics)")
    args = ap.parse_args()
    print(f"encoding:    {encode_rate():,.0f} points/s (line protocol, one core)")
    with tempfile.TemporaryDirectory() as tmp:
        server = None
        url = args.url
        if url is None:
            executable = find_victoria_metrics()
            if executable is None:
                sys.exit("victoria-metrics is not installed (apt-get install victoria-metrics)")
            server = VictoriaMetrics(executable, Path(tmp))
            server.start()
            url = server.url
        try:
            asyncio.run(run(url, args.points, args.burst, str(Path(tmp) / "spool")))
        finally:
            if server is not None:
                server.stop()


if __name__ == "__main__":
    main()
