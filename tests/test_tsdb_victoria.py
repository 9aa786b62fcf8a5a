"""The write path against a real time-series server: VictoriaMetrics' ``/api/v2/write``.

Every point is counted back through ``/api/v1/export`` (DESIGN §7).  Each test writes its own
measurement (metric names ``{measurement}_{field}``), so tests never see each other's points.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from victoria import VictoriaMetrics, parse_export_line

from controller.tsdb import InfluxSettings, Point, open_sink
from controller.tsdb.files import FileSink
from controller.tsdb.spool import Spool
from controller.tsdb.transport import InfluxTransport
from controller.tsdb.writer import InfluxWriter

pytestmark = pytest.mark.services

T0 = time.time() - 3600.0
"""Plant time of the first point: recent, so that export's default window holds it."""


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def points(measurement: str, first: int, count: int, series: int = 4) -> list[Point]:
    """Point i: series ``L{i % series}``, field ``v`` = i, at T0 + i ms."""
    return [
        Point(measurement, {"site": "test", "asset": f"L{i % series}"}, {"v": i}, T0 + i * 1e-3)
        for i in range(first, first + count)
    ]


def exported_values(server: VictoriaMetrics, measurement: str) -> list[int]:
    """Every ``v`` stored for ``measurement``, sorted."""
    out: list[int] = []
    for series in server.export(f"{measurement}_v"):
        out.extend(int(v) for v in series["values"])
    return sorted(out)


async def until(condition: Callable[[], bool]) -> None:
    """Wait for ``condition`` (the suite's timeout bounds a wait that never ends)."""
    while not condition():
        await asyncio.sleep(0.01)


class RecordingTransport:
    """The real transport, remembering the ``v`` of each line it delivered, in order."""

    def __init__(self, inner: InfluxTransport) -> None:
        self.inner = inner
        self.delivered: list[int] = []

    async def write(self, body: bytes) -> None:
        await self.inner.write(body)
        self.delivered.extend(
            int(line.rsplit(" ", 2)[1].removeprefix("v=").removesuffix("i"))
            for line in body.decode().splitlines()
        )

    async def close(self) -> None:
        await self.inner.close()


def settings(server: VictoriaMetrics, tmp_path: Path, **changes: object) -> InfluxSettings:
    base: dict[str, object] = {
        "url": server.url,
        "org": "plant",
        "bucket": "smelter",
        "batch_size": 2000,
        "flush_interval_s": 0.1,
        "retry_max_s": 1.0,
        "spool_dir": str(tmp_path / "spool"),
    }
    return InfluxSettings(**{**base, **changes})  # type: ignore[arg-type]


async def test_every_point_written_arrives(tsdb: VictoriaMetrics, tmp_path: Path) -> None:
    measurement = unique("all")
    sink = open_sink(settings(tsdb, tmp_path), token=None)
    for start in range(0, 20_000, 2500):
        sink.write(points(measurement, start, 2500))
        await asyncio.sleep(0)
    await until(lambda: sink.stats().written == 20_000)
    await sink.close()
    assert exported_values(tsdb, measurement) == list(range(20_000))
    series = tsdb.export(f"{measurement}_v")
    assert {s["metric"]["asset"] for s in series} == {"L0", "L1", "L2", "L3"}
    stats = sink.stats()
    assert (stats.spooled, stats.dropped, stats.rejected) == (0, 0, 0)


async def test_after_a_30_s_outage_every_point_arrives_in_order(
    tsdb: VictoriaMetrics, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    measurement = unique("outage")
    config = settings(tsdb, tmp_path)
    transport = RecordingTransport(
        InfluxTransport(config.url or "", org="o", bucket="b", token=None, timeout_s=5.0)
    )
    writer = InfluxWriter(
        transport,
        Spool(config.spool_dir, config.spool_max_bytes),
        where="victoria",
        batch_size=config.batch_size,
        flush_interval_s=config.flush_interval_s,
        retry_max_s=config.retry_max_s,
    )
    produced = 0

    async def produce(wall_s: float) -> None:
        """100 points every 50 ms, like a plant's telemetry, for ``wall_s``."""
        nonlocal produced
        end_s = time.monotonic() + wall_s
        while time.monotonic() < end_s:
            writer.write(points(measurement, produced, 100))
            produced += 100
            await asyncio.sleep(0.05)

    with caplog.at_level(logging.INFO, logger="controller.tsdb"):
        await produce(1.0)
        await until(lambda: writer.stats().written == produced)
        tsdb.stop()
        await produce(30.0)
        assert writer.stats().spool_points > 0  # the outage was seen: points wait on disk
        tsdb.start()
        await produce(1.0)
        await until(lambda: writer.stats().written == produced)
    await writer.close()
    assert exported_values(tsdb, measurement) == list(range(produced))
    assert transport.delivered == list(range(produced))  # in the order they were written
    stats = writer.stats()
    assert stats.dropped == 0 and stats.spool_points == 0 and stats.replayed == stats.spooled > 0
    outage_logs = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(outage_logs) == 1
    assert sum("accepts writes again" in r.getMessage() for r in caplog.records) == 1


async def test_spool_overflow_drops_the_oldest_and_reports_the_exact_count(
    tsdb: VictoriaMetrics, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    measurement = unique("overflow")
    # ~80 bytes a line: a 40 KB spool holds about 500 of the 3,000 points
    sink = open_sink(settings(tsdb, tmp_path, spool_max_mb=40 / 1024, batch_size=100), token=None)
    tsdb.stop()
    try:
        with caplog.at_level(logging.WARNING, logger="controller.tsdb"):
            for start in range(0, 3000, 100):
                sink.write(points(measurement, start, 100))
                await until(lambda: sink.stats().queued == 0)
            await until(lambda: sink.stats().spooled == 3000)
    finally:
        tsdb.start()
    await until(lambda: sink.stats().spool_points == 0)
    await sink.close()
    stats = sink.stats()
    assert stats.dropped > 0
    stored = exported_values(tsdb, measurement)
    assert len(stored) == 3000 - stats.dropped == stats.written
    assert stored == list(range(stats.dropped, 3000))  # the newest were kept
    assert sum("is full" in r.getMessage() for r in caplog.records) == 1


def nasty_strings(count: int, seed: int = 7) -> list[str]:
    """Strings full of what line protocol must escape, backslashes (also trailing) included."""
    rng = random.Random(seed)
    alphabet = [*" ,=\"'\\=#", "é", "中", "😀", "a", "Z", "0", "_", "-", "."]
    out = {"a b", "a,b", "a=b", 'a"b', "a\\", "\\", "a\\ b", "a\\,b", "\\\\", "=", "#x"}
    while len(out) < count:
        out.add("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12))))
    return sorted(out)


async def test_nasty_names_arrive_unchanged(tsdb: VictoriaMetrics, tmp_path: Path) -> None:
    measurement = unique("esc")
    values = nasty_strings(200)
    sink = open_sink(settings(tsdb, tmp_path), token=None)
    sink.write(
        Point(measurement, {"tag": v, "k,=  \\": v}, {"v": i, 'f "x"=1,\\': i}, T0 + i * 1e-3)
        for i, v in enumerate(values)
    )
    await until(lambda: sink.stats().written == len(values))
    await sink.close()
    series = tsdb.export(f"{measurement}_.*")
    names = {s["metric"]["__name__"] for s in series}
    assert names == {f"{measurement}_v", f'{measurement}_f "x"=1,\\'}
    by_value = {
        int(s["values"][0]): s["metric"] for s in series if s["metric"]["__name__"].endswith("_v")
    }
    assert len(by_value) == len(values)
    for i, value in enumerate(values):
        assert by_value[i]["tag"] == value
        assert by_value[i]["k,=  \\"] == value


async def test_line_protocol_files_import_into_the_database(
    tsdb: VictoriaMetrics, tmp_path: Path
) -> None:
    measurement = unique("files")
    sink = open_sink(
        InfluxSettings(files_dir=str(tmp_path / "lp"), file_max_mb=0.05, batch_size=500),
        token=None,
    )
    assert isinstance(sink, FileSink)
    sink.write(points(measurement, 0, 3000))
    await until(lambda: sink.stats().written == 3000)
    await sink.close()
    assert len(sink.files()) > 1
    for path in sink.files():
        # what `influx write --precision ms --file PATH` sends
        request = urllib.request.Request(
            f"{tsdb.url}/api/v2/write?org=o&bucket=b&precision=ms",
            data=path.read_bytes(),
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30.0) as response:
            assert response.status == 204
    assert exported_values(tsdb, measurement) == list(range(3000))


async def test_export_reads_values_that_victoria_metrics_stores_as_infinite(
    tsdb: VictoriaMetrics, tmp_path: Path
) -> None:
    """VictoriaMetrics reads a quoted string field as a number when it can: a hex id such as
    ``7e5100000123`` is 7·10^5100000123, stored as +Inf and exported as a bare ``+Inf``, which is
    not JSON."""
    measurement = unique("inf")
    sink = open_sink(settings(tsdb, tmp_path), token=None)
    sink.write(
        [
            Point(measurement, {"asset": "up"}, {"v": 1, "id": "7e5100000123"}, T0),
            Point(measurement, {"asset": "down"}, {"v": 2, "id": "-1e999"}, T0),
        ]
    )
    await until(lambda: sink.stats().written == 2)
    await sink.close()
    ids = {s["metric"]["asset"]: s["values"] for s in tsdb.export(f"{measurement}_id")}
    assert ids == {"up": [math.inf], "down": [-math.inf]}
    assert exported_values(tsdb, measurement) == [1, 2]


def test_an_export_line_is_read_with_infinite_values_and_its_labels_untouched() -> None:
    line = (
        '{"metric":{"__name__":"m_v","odd":"[+Inf,-Inf]","q\\"":",NaN]"},'
        '"values":[+Inf,-Inf,NaN,1.5,-2e-05],"timestamps":[1,2,3,4,5]}'
    )
    series = parse_export_line(line)
    assert series["metric"] == {"__name__": "m_v", "odd": "[+Inf,-Inf]", 'q"': ",NaN]"}
    assert series["values"][:2] == [math.inf, -math.inf]
    assert math.isnan(series["values"][2])
    assert series["values"][3:] == [1.5, -2e-05]
    assert series["timestamps"] == [1, 2, 3, 4, 5]
