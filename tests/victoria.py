"""A real VictoriaMetrics for tests, on a free loopback port with its own data directory.

It implements InfluxDB's ``/api/v2/write`` (line protocol), which is what the writer speaks, and
lets tests read back through ``/api/v1/export``.  It can be stopped and started again on the same
port with the same data, so tests can take it away under a writer and bring it back.

What differs from InfluxDB (DESIGN §7): bucket and org are ignored; times are stored in
milliseconds; a field becomes the metric ``{measurement}_{field}`` with the tags as labels;
a string field is read as a number when it looks like one (``"7e5100000123"`` is +Inf, ``"nan"``
is dropped) and stored as 0 otherwise; a malformed line is skipped with a 204 all the same.
It ignores the token too: :class:`RecordingProxy`, in front of it, shows what a client sent.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from harness.mosquitto import free_port
from harness.processes import stop_process

HOST = "127.0.0.1"
_DIRS = "/usr/bin:/usr/sbin:/usr/local/bin:/usr/local/sbin"

_EXPORT_METRIC = '{"metric":'
_INFINITY = re.compile(r"(?<=[\[,])([+-])Inf(?=[,\]])")
_JSON = json.JSONDecoder()


def find_victoria_metrics() -> str | None:
    """The single-node VictoriaMetrics executable (Debian: /usr/bin/victoria-metrics)."""
    return shutil.which("victoria-metrics") or shutil.which("victoria-metrics", path=_DIRS)


def parse_export_line(line: str) -> dict[str, Any]:
    """One line of ``/api/v1/export``: ``{"metric": {...}, "values": [...], "timestamps": [...]}``.

    Not quite JSON: VictoriaMetrics writes infinite values as bare ``+Inf`` and ``-Inf`` (Go's
    formatting).  They are read as ``inf`` and ``-inf`` in the values only; the labels, which may
    hold any text, are parsed as the JSON they are.  (A bare ``NaN`` Python's json reads as it
    is, though VictoriaMetrics drops NaN on write.)
    """
    if not line.startswith(_EXPORT_METRIC):
        raise ValueError(f"not an export line: {line[:80]!r}")
    metric, end = _JSON.raw_decode(line, len(_EXPORT_METRIC))
    rest = _INFINITY.sub(lambda m: "Infinity" if m[1] == "+" else "-Infinity", line[end:])
    series: dict[str, Any] = json.loads("{" + rest.removeprefix(","))
    return {"metric": metric, **series}


class VictoriaMetrics:
    """One victoria-metrics process with its data and log in ``workdir``."""

    def __init__(self, executable: str, workdir: Path) -> None:
        self.executable = executable
        self.host = HOST
        self.port = free_port()
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.log_path = workdir / "victoria-metrics.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout_s: float = 30.0) -> None:
        """Start it (no-op when running) and wait until it answers ``/health``."""
        if self.running:
            return
        with self.log_path.open("ab") as out:
            self._process = subprocess.Popen(
                [
                    self.executable,
                    f"-httpListenAddr={self.host}:{self.port}",
                    f"-storageDataPath={self.data_dir}",
                    # new points visible to queries after 1 s instead of 30 s
                    "-search.latencyOffset=1s",
                    # keep points of any plant time (the default drops those older than a month)
                    "-retentionPeriod=100y",
                    "-loggerLevel=WARN",
                    "-memory.allowedPercent=10",
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        while not self._healthy():
            if self._process.poll() is not None:
                code = self._process.returncode
                self._process = None
                raise RuntimeError(f"victoria-metrics exited with {code}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"victoria-metrics did not answer within {timeout_s} s")
            time.sleep(0.05)

    def stop(self, *, kill: bool = False, timeout_s: float = 10.0) -> None:
        """Stop it: SIGTERM (clean, flushes its data) or SIGKILL (``kill``, like a crash)."""
        process, self._process = self._process, None
        if process is not None:
            stop_process(process, timeout_s, kill=kill)

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=1.0) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def flush(self) -> None:
        """Make every point received so far visible to export (``/internal/force_flush``)."""
        with urllib.request.urlopen(f"{self.url}/internal/force_flush", timeout=30.0):
            pass

    def export(self, name_regex: str, *, end_s: float | None = None) -> list[dict[str, Any]]:
        """Every series whose metric name matches ``name_regex``, after a flush.

        Each item: ``{"metric": {"__name__": ..., label: value}, "values": [...],
        "timestamps": [ms, ...]}``.  ``end_s`` must lie beyond the newest point (the default,
        now + 1 day, covers plans).
        """
        self.flush()
        query = {
            "match[]": f'{{__name__=~"{name_regex}"}}',
            "start": "0",
            "end": str(int(end_s if end_s is not None else time.time() + 86_400)),
        }
        url = f"{self.url}/api/v1/export?{urllib.parse.urlencode(query)}"
        with urllib.request.urlopen(url, timeout=60.0) as response:
            text = response.read().decode()
        return [parse_export_line(line) for line in text.splitlines() if line.strip()]

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_path.exists():
            return ""
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])


@dataclass(frozen=True)
class ProxiedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    authorization: str | None
    status: int
    """What the server answered (0: it could not be reached)."""


class RecordingProxy:
    """An HTTP proxy on a free loopback port that passes every request on to ``target`` (a
    :class:`VictoriaMetrics`) and its answer back, and keeps what the client sent: the path, the
    query (org, bucket, precision) and the Authorization header, which VictoriaMetrics ignores.
    Use it as a context manager."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.requests: list[ProxiedRequest] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((HOST, 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self._server.server_address[1]}"

    def __enter__(self) -> RecordingProxy:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> int:
        request = urllib.request.Request(
            self.target + path, data=body or None, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=30.0) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError:
            return 0

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                passed = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() in {"content-type", "content-encoding", "authorization"}
                }
                status = proxy._forward("POST", self.path, passed, body)
                split = urllib.parse.urlsplit(self.path)
                with proxy._lock:
                    proxy.requests.append(
                        ProxiedRequest(
                            "POST",
                            split.path,
                            urllib.parse.parse_qs(split.query),
                            self.headers.get("Authorization"),
                            status,
                        )
                    )
                self.send_response(status or 502)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the requests are in ``proxy.requests``."""

        return Handler
