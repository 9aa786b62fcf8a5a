"""The writer's logic, without a database: batching, spooling, replay order, counters, logs.

A fake transport stands in for InfluxDB (it records bodies and fails on demand); one test puts a
tiny HTTP server that answers 401/404 behind the real ``influxdb-client`` transport, since
VictoriaMetrics has no authentication.  The real database is in tests/test_tsdb_victoria.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from controller.tsdb import InfluxSettings, Point, open_sink, resolve_token
from controller.tsdb.files import FileSink
from controller.tsdb.spool import Spool
from controller.tsdb.transport import (
    BadDataError,
    InfluxTransport,
    RefusedError,
    UnreachableError,
    WriteError,
)
from controller.tsdb.writer import InfluxWriter
from wire.tomlfile import FileError, convert

T0 = 1_800_000_000.0


def points(first: int, count: int, measurement: str = "m") -> list[Point]:
    return [
        Point(measurement, {"site": "s"}, {"v": i}, T0 + i) for i in range(first, first + count)
    ]


def values(bodies: list[bytes]) -> list[int]:
    """The ``v`` of every line sent, in sending order."""
    out = []
    for body in bodies:
        for line in body.decode().splitlines():
            out.append(int(line.split(" ")[1].removeprefix("v=").removesuffix("i")))
    return out


class FakeTransport:
    """Accepts bodies (recorded in order) or raises ``failure`` while it is set."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.failure: WriteError | None = None
        self.attempts = 0
        self.closed = False

    async def write(self, body: bytes) -> None:
        self.attempts += 1
        await asyncio.sleep(0)
        if self.failure is not None:
            raise self.failure
        self.bodies.append(body)

    async def close(self) -> None:
        self.closed = True


async def until(condition: Callable[[], bool]) -> None:
    """Wait for ``condition`` (the suite's timeout bounds a wait that never ends)."""
    while not condition():
        await asyncio.sleep(0.005)


@pytest.fixture
def transport() -> FakeTransport:
    return FakeTransport()


@pytest.fixture
def make_writer(tmp_path: Path, transport: FakeTransport) -> Iterator[Callable[..., InfluxWriter]]:
    def make(**kwargs: object) -> InfluxWriter:
        spool_bytes = kwargs.pop("spool_bytes", 10_000_000)
        options: dict[str, object] = {
            "batch_size": 100,
            "flush_interval_s": 0.05,
            "retry_max_s": 0.2,
            **kwargs,
        }
        return InfluxWriter(
            transport,
            Spool(tmp_path / "spool", int(spool_bytes)),  # type: ignore[call-overload]
            where="test db",
            **options,  # type: ignore[arg-type]
        )

    yield make


async def test_points_go_out_in_batches_in_order(
    make_writer: Callable[..., InfluxWriter], transport: FakeTransport
) -> None:
    writer = make_writer()
    writer.write(points(0, 250))
    await until(lambda: writer.stats().written == 250)
    assert [len(b.splitlines()) for b in transport.bodies] == [100, 100, 50]
    assert values(transport.bodies) == list(range(250))
    await writer.close()
    stats = writer.stats()
    assert (stats.spooled, stats.dropped, stats.rejected, stats.queued) == (0, 0, 0, 0)
    assert transport.closed


async def test_a_partial_batch_goes_out_after_the_flush_interval(
    make_writer: Callable[..., InfluxWriter], transport: FakeTransport
) -> None:
    writer = make_writer(batch_size=1000)
    writer.write(points(0, 3))
    await until(lambda: writer.stats().written == 3)
    assert len(transport.bodies) == 1
    await writer.close()


async def test_an_outage_spools_then_replays_everything_in_order_logging_once_each_way(
    make_writer: Callable[..., InfluxWriter],
    transport: FakeTransport,
    caplog: pytest.LogCaptureFixture,
) -> None:
    writer = make_writer()
    writer.write(points(0, 100))
    await until(lambda: writer.stats().written == 100)
    transport.failure = UnreachableError("connection refused")
    with caplog.at_level(logging.DEBUG, logger="controller.tsdb"):
        for start in range(100, 1000, 100):
            writer.write(points(start, 100))
            await until(lambda: writer.stats().queued == 0)
        await until(lambda: transport.attempts >= 5)  # several failed probes
        assert not writer.stats().database_up
        assert writer.stats().spool_points == 900
        transport.failure = None
        writer.write(points(1000, 50))  # while the spool is replayed: must queue behind it
        await until(lambda: writer.stats().written == 1050)
    assert values(transport.bodies) == list(range(1050))
    stats = writer.stats()
    assert stats.database_up
    assert (stats.spooled, stats.replayed, stats.dropped, stats.spool_points) == (950, 950, 0, 0)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage().split(" (")[0] for r in warnings] == ["InfluxDB test db unreachable"]
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert sum("accepts writes again" in m for m in infos) == 1
    await writer.close()


async def test_a_refused_token_is_one_error_and_a_change_of_failure_is_logged_again(
    make_writer: Callable[..., InfluxWriter],
    transport: FakeTransport,
    caplog: pytest.LogCaptureFixture,
) -> None:
    writer = make_writer()
    transport.failure = RefusedError("HTTP 401: unauthorized access", 401)
    with caplog.at_level(logging.INFO, logger="controller.tsdb"):
        for start in range(0, 500, 100):
            writer.write(points(start, 100))
            await until(lambda: writer.stats().queued == 0)
        await until(lambda: transport.attempts >= 4)
        transport.failure = UnreachableError("timeout")
        await until(lambda: transport.attempts >= 7)
        transport.failure = None
        await until(lambda: writer.stats().written == 500)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "refused the token" in errors[0] and "token_env or token_file" in errors[0]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "unreachable" in warnings[0]
    assert values(transport.bodies) == list(range(500))
    await writer.close()


async def test_a_batch_refused_as_bad_data_is_counted_rejected_and_not_retried(
    make_writer: Callable[..., InfluxWriter], transport: FakeTransport
) -> None:
    writer = make_writer()
    transport.failure = BadDataError("HTTP 400: field type conflict", 400)
    writer.write(points(0, 100))
    await until(lambda: writer.stats().rejected == 100)
    transport.failure = None
    writer.write(points(100, 10))
    await until(lambda: writer.stats().written == 10)
    assert transport.attempts == 2
    assert writer.stats().spooled == 0
    await writer.close()


async def test_bad_input_never_raises_and_is_counted(
    make_writer: Callable[..., InfluxWriter], transport: FakeTransport
) -> None:
    writer = make_writer()

    def failing() -> Iterator[Point]:
        yield points(0, 1)[0]
        raise RuntimeError("the caller's bug")

    garbage: list[object] = [
        None,
        "m v=1i",
        Point("m", {}, {"v": float("nan")}, T0),
        Point("m", {"t": 5}, {"v": 1}, T0),  # type: ignore[dict-item]
        Point("m", {}, {"v": 1}, float("inf")),
        *points(0, 2),
    ]
    writer.write(garbage)  # type: ignore[arg-type]
    writer.write(failing())
    writer.write(42)  # type: ignore[arg-type]
    await until(lambda: writer.stats().written + writer.stats().rejected == 7)
    assert writer.stats().written == 2
    assert writer.stats().rejected == 5
    await writer.close()
    writer.write(points(5, 3))
    assert writer.stats().dropped == 3


async def test_a_full_memory_queue_drops_new_points_and_counts_them(
    make_writer: Callable[..., InfluxWriter],
) -> None:
    writer = make_writer(max_queued_points=150)
    writer.write(points(0, 100))
    writer.write(points(100, 100))  # nothing ran in between: 50 do not fit
    assert writer.stats().dropped == 50
    await until(lambda: writer.stats().written == 150)
    await writer.close()


async def test_the_spool_cap_drops_the_oldest_and_the_count_is_exact(
    make_writer: Callable[..., InfluxWriter], transport: FakeTransport
) -> None:
    writer = make_writer(spool_bytes=20_000)
    transport.failure = UnreachableError("down")
    for start in range(0, 3000, 100):
        writer.write(points(start, 100))
        await until(lambda: writer.stats().queued == 0)
    stats = writer.stats()
    assert stats.dropped > 0 and stats.spool_bytes <= 20_000
    assert stats.spool_points + stats.dropped == 3000
    transport.failure = None
    await until(lambda: writer.stats().spool_points == 0)
    sent = values(transport.bodies)
    assert len(sent) == 3000 - stats.dropped == writer.stats().written
    assert sent == list(range(stats.dropped, 3000))  # the newest, in order
    await writer.close()


async def test_close_spools_what_it_cannot_send_and_the_next_writer_replays_it(
    tmp_path: Path, make_writer: Callable[..., InfluxWriter], transport: FakeTransport
) -> None:
    writer = make_writer(batch_size=1000, flush_interval_s=60.0)
    transport.failure = UnreachableError("down")
    writer.write(points(0, 300))
    await writer.close(timeout_s=0.5)
    assert writer.stats().spool_points == 300
    transport.failure = None
    second = make_writer()
    await until(lambda: second.stats().written == 300)
    assert values(transport.bodies) == list(range(300))
    await second.close()


async def test_close_sends_what_is_queued_when_the_database_is_up(
    make_writer: Callable[..., InfluxWriter], transport: FakeTransport
) -> None:
    writer = make_writer(batch_size=1000, flush_interval_s=60.0)
    writer.write(points(0, 300))
    await writer.close(timeout_s=5.0)
    assert writer.stats().written == 300
    assert values(transport.bodies) == list(range(300))


# --- the real client against a server that refuses ----------------------------------------------


class RefusingServer:
    """A minimal HTTP/1.1 server: answers every request with ``status`` (204 takes the body)."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.accepted: list[str] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                request_line, *header_lines = head.decode().split("\r\n")
                headers = {
                    k.strip().lower(): v.strip()
                    for k, _, v in (h.partition(":") for h in header_lines if h)
                }
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests.append((request_line, headers))
                if self.status == 204:
                    self.accepted.extend(body.decode().splitlines())
                    writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
                else:
                    text = f'{{"code":"unauthorized","message":"{self.message}"}}'.encode()
                    writer.write(
                        f"HTTP/1.1 {self.status} Refused\r\nContent-Type: application/json\r\n"
                        f"Content-Length: {len(text)}\r\n\r\n".encode()
                        + text
                    )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.mark.parametrize(
    ("status", "server_message", "expected"),
    [
        (401, "unauthorized access", "refused the token"),
        (404, 'bucket \\"nope\\" not found', "no such org or bucket"),
    ],
)
async def test_a_wrong_token_or_bucket_gives_one_clear_error_then_one_recovery(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    status: int,
    server_message: str,
    expected: str,
) -> None:
    server = RefusingServer(status, server_message)
    url = await server.start()
    secret = "s3cr3t-t0ken-value"
    settings = InfluxSettings(
        url=url,
        org="plant",
        bucket="nope",
        batch_size=50,
        flush_interval_s=0.05,
        retry_max_s=0.2,
        spool_dir=str(tmp_path / "spool"),
    )
    try:
        with caplog.at_level(logging.DEBUG):
            sink = open_sink(settings, token=resolve_token(settings, {"INFLUX_TOKEN": secret}))
            for start in range(0, 500, 50):
                sink.write(points(start, 50))
                await asyncio.sleep(0.01)
            await until(lambda: len(server.requests) >= 6)
            server.status = 204
            await until(lambda: sink.stats().written == 500)
            await sink.close()
    finally:
        await server.stop()
    assert all(h.get("authorization") == f"Token {secret}" for _, h in server.requests)
    assert "bucket=nope" in server.requests[0][0] and "precision=ms" in server.requests[0][0]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    assert expected in errors[0] and f"HTTP {status}" in errors[0]
    assert "bucket 'nope' of org 'plant'" in errors[0]
    recoveries = [
        r.getMessage() for r in caplog.records if "accepts writes again" in r.getMessage()
    ]
    assert len(recoveries) == 1
    assert all(secret not in r.getMessage() for r in caplog.records)
    assert [int(line.split("v=")[1].split("i")[0]) for line in server.accepted] == list(range(500))


async def test_an_unreachable_server_is_an_unreachable_error() -> None:
    server = RefusingServer(204, "")
    url = await server.start()
    await server.stop()  # nothing listens on that port any more
    transport = InfluxTransport(url, org="o", bucket="b", token=None, timeout_s=2.0)
    try:
        with pytest.raises(UnreachableError):
            await transport.write(b"m v=1i 0")
    finally:
        await transport.close()


# --- settings and the file sink ----------------------------------------------------------------


def test_token_from_file_wins_and_errors_never_show_the_token(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    settings = InfluxSettings(url="http://x:8086", org="o", bucket="b", token_file=str(token_file))
    assert resolve_token(settings, {"INFLUX_TOKEN": "from-env"}) == "from-file"
    assert resolve_token(InfluxSettings(), {"INFLUX_TOKEN": "from-env"}) == "from-env"
    assert resolve_token(InfluxSettings(), {}) is None
    token_file.write_text("")
    with pytest.raises(FileError, match=r"influx\.token_file.*file is empty"):
        resolve_token(settings, {})


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"url": "http://x:8086", "org": "o"}, "bucket"),
        ({"url": "http://x:8086", "bucket": "b"}, "org"),
        ({"url": "ftp://x"}, "url"),
        ({"batch_size": 0}, "batch_size"),
        ({"spool_max_mb": 0}, "spool_max_mb"),
        ({"bukket": "b"}, "bukket"),
    ],
)
def test_settings_errors_name_the_key(raw: dict[str, object], message: str) -> None:
    with pytest.raises(FileError, match=f"key '{message}'"):
        convert(raw, InfluxSettings)


async def test_without_a_url_points_go_to_rotating_files(tmp_path: Path) -> None:
    settings = InfluxSettings(
        files_dir=str(tmp_path / "points"),
        file_max_mb=0.002,  # ~2 KB: a file per batch or two
        file_keep=3,
        batch_size=40,
        flush_interval_s=0.05,
    )
    sink = open_sink(settings, token=None)
    assert isinstance(sink, FileSink)
    for start in range(0, 400, 40):
        sink.write(points(start, 40))
        await until(lambda: sink.stats().queued == 0)
    await until(lambda: sink.stats().written == 400)
    await sink.close()
    files = sink.files()
    assert len(files) == 3
    kept = [line for f in files for line in f.read_text().splitlines()]
    numbers = [int(line.split("v=")[1].split("i")[0]) for line in kept]
    assert numbers == list(range(400 - len(numbers), 400))  # the newest, in order
