"""The daemon's web server (aiohttp): the operator console, its REST API, ``/metrics`` and
``/healthz``.

==========================  =================================================================
``GET /``                   the console page (and its files under ``/static/``)
``GET /api/status``         state, reasons, mode, plan, links, every asset (:mod:`.views`)
``GET /api/plan``           the plan in force (the contract's plan payload) and the last hours
``GET /api/kpis``           today's KPIs from the controller's meters
``GET /api/events``         recent events (``?since=SEQ``: only newer ones)
``GET /api/stream``         the same, live: server-sent events ``status`` (every second),
                            ``plan`` (when a new plan is in force), ``events``
``POST /api/mode``          a mode change (``Authorization: Bearer TOKEN``; :mod:`.modedesk`)
``GET /metrics``            Prometheus text format
``GET /healthz``            200 while the event loop turns, 503 when it has stalled
==========================  =================================================================

Every handler only reads what the daemon's loop already holds, so none waits on the planner,
which runs in its own thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest

from controller.console.journal import Journal
from controller.console.modedesk import ModeDesk
from controller.console.operators import Operators
from controller.console.views import kpi_view, plan_view, status_view

if TYPE_CHECKING:
    from controller.daemon.service import Daemon

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES: Final = 8192
STREAM_EVERY_S: Final = 1.0
POLL_EVERY_S: Final = 1.0
STATIC: Final = resources.files("controller.console") / "static"
TYPES: Final = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".txt": "text/plain",
}
SECURITY_HEADERS: Final = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'",
    "Cache-Control": "no-store",
}

Health = Callable[[], tuple[int, bytes]]


class Console:
    """The routes, bound to one daemon."""

    def __init__(
        self,
        daemon: Daemon,
        journal: Journal,
        operators: Operators,
        registry: CollectorRegistry,
        health: Health,
    ) -> None:
        self.daemon = daemon
        self.journal = journal
        self.operators = operators
        self.registry = registry
        self.health = health
        self.desk = ModeDesk(daemon, journal)
        self.stopping = asyncio.Event()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_REQUEST_BYTES, middlewares=[_headers])
        app.add_routes(
            [
                web.get("/", self.page),
                web.get("/static/{name}", self.static),
                web.get("/api/status", self.status),
                web.get("/api/plan", self.plan),
                web.get("/api/kpis", self.kpis),
                web.get("/api/events", self.events),
                web.get("/api/stream", self.stream),
                web.post("/api/mode", self.mode),
                web.get("/metrics", self.metrics),
                web.get("/healthz", self.healthz),
            ]
        )
        return app

    def _status(self) -> dict[str, Any]:
        return status_view(self.daemon, self.journal, operators_enabled=self.operators.enabled)

    async def page(self, request: web.Request) -> web.StreamResponse:
        return _file("index.html")

    async def static(self, request: web.Request) -> web.StreamResponse:
        return _file(request.match_info["name"])

    async def status(self, request: web.Request) -> web.StreamResponse:
        return _json(self._status())

    async def plan(self, request: web.Request) -> web.StreamResponse:
        return _json(plan_view(self.daemon, self.journal))

    async def kpis(self, request: web.Request) -> web.StreamResponse:
        return _json(kpi_view(self.daemon))

    async def events(self, request: web.Request) -> web.StreamResponse:
        try:
            since = int(request.query.get("since", "0"))
        except ValueError:
            return _json({"error": "since: an event number (integer)"}, 400)
        return _json({"events": self.journal.since(since), "last": self.journal.last_seq})

    async def mode(self, request: web.Request) -> web.StreamResponse:
        remote = request.remote or "?"
        if not self.operators.enabled:
            out = self.desk.refuse_unauthenticated(
                remote, 403, "the console is read-only: no operator credential is configured"
            )
            return _json(out.body, out.http_status)
        who = self.operators.who(request.headers.get("Authorization"))
        if who is None:
            out = self.desk.refuse_unauthenticated(
                remote, 401, "a valid operator credential is required (Authorization: Bearer TOKEN)"
            )
            return _json(out.body, out.http_status, {"WWW-Authenticate": "Bearer"})
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _json({"error": f"the request is over {MAX_REQUEST_BYTES} bytes"}, 413)
        outcome = await self.desk.request(body, who, remote)
        return _json(outcome.body, outcome.http_status)

    async def metrics(self, request: web.Request) -> web.StreamResponse:
        return web.Response(
            body=generate_latest(self.registry),
            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
        )

    async def healthz(self, request: web.Request) -> web.StreamResponse:
        code, body = self.health()
        return web.Response(body=body, status=code, content_type="application/json")

    async def stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
        )
        await response.prepare(request)
        plan_id: str | None = ""
        seq = rows = 0
        try:
            while not self.stopping.is_set():
                await _send(response, "status", self._status())
                plan = self.daemon.core.plan
                current = plan.plan_id if plan is not None else None
                if current != plan_id or self.journal.rows_added != rows:
                    await _send(response, "plan", plan_view(self.daemon, self.journal))
                    plan_id, rows = current, self.journal.rows_added
                if self.journal.last_seq > seq:
                    await _send(response, "events", self.journal.since(seq))
                    seq = self.journal.last_seq
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), STREAM_EVERY_S)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return response

    async def poll_forever(self) -> None:
        """Counters that moved become events, whether or not a page is open."""
        while not self.stopping.is_set():
            core = self.daemon.core
            self.journal.poll(
                core.clock.now_s or 0.0,
                core.status().state.value,
                core.ingest.rejected,
                core.plausibility.suspects,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), POLL_EVERY_S)


class ConsoleServer:
    """A running server: :attr:`port` (the one bound, when 0 was asked), :meth:`close`."""

    def __init__(self, console: Console, runner: web.AppRunner, port: int) -> None:
        self.console = console
        self.runner = runner
        self.port = port
        self._poller = asyncio.create_task(console.poll_forever())

    async def close(self) -> None:
        self.console.stopping.set()
        await self._poller
        await self.runner.cleanup()


async def start(console: Console, host: str, port: int) -> ConsoleServer:
    runner = web.AppRunner(
        console.app(),
        access_log=None,
        handle_signals=False,
        shutdown_timeout=2.0,
        keepalive_timeout=5.0,
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = port
    server = getattr(site, "_server", None)
    if server is not None and server.sockets:
        bound = server.sockets[0].getsockname()[1]
    log.info("console on http://%s:%d/", host, bound)
    return ConsoleServer(console, runner, bound)


@web.middleware
async def _headers(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # a 404, 405, 413: answered like the rest
        response = web.Response(status=exc.status, text=exc.text, content_type="text/plain")
    if not response.prepared:
        response.headers.update(SECURITY_HEADERS)
        response.force_close()  # one request a connection: simple clients read to the end
    return response


async def _send(response: web.StreamResponse, event: str, data: object) -> None:
    await response.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())


def _json(body: object, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        text=json.dumps(body), status=status, content_type="application/json", headers=headers
    )


def _load_static() -> dict[str, tuple[bytes, str]]:
    """The page's files, read once: a request is a lookup by name, never a path on disk."""
    files: dict[str, tuple[bytes, str]] = {}
    for entry in STATIC.iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1] if "." in entry.name else ""
        if entry.is_file() and suffix in TYPES and not entry.name.startswith("."):
            files[entry.name] = (entry.read_bytes(), TYPES[suffix])
    return files


_STATIC_FILES: Final = _load_static()


def _file(name: str) -> web.Response:
    found = _STATIC_FILES.get(name)
    if found is None:
        raise web.HTTPNotFound(text="not found\n")
    body, content_type = found
    return web.Response(body=body, content_type=content_type, charset="utf-8")
