"""The daemon's asyncio shell around :class:`~controller.core.core.ControllerCore`.

Tasks, all on one event loop::

    link     keeps a broker connection (:mod:`.session`; last will: status ``offline``): feeds
             messages to the core, publishes what it queues; reconnects with jittered backoff
    ticker   every 0.2 s of wall time: the controller lease, the core's watchdogs and
             heartbeats; starts a planning job on a worker thread when one is due and the
             solver is free; saves the state
    http     the operator console, its API, ``/healthz`` and ``/metrics`` on a loopback port
             (:mod:`controller.console`)
    startup  one dry solve of the planning problem on a thread of its own
             (:mod:`.startup`): a warning and a status reason when it is slow

Only the instance that holds the controller lease (:mod:`.lease`) sends setpoints, the plan and
the controller's status; another instance's core is on standby, and its status goes to its own
topic.  Its setpoints and status carry its ``instance`` from the core that makes them.  What
leaves for the broker is routed as it is published (:mod:`.outbound`): a setpoint goes out only
while this instance holds the lease.  A publication the broker refuses (MQTT 5 PUBACK reason
code, :mod:`.paho_hooks`) and a state file that cannot be written are lasting troubles
(:mod:`.troubles`) in the status.  The broker must end up with the
status ``offline`` however the daemon ends: the connection closes cleanly only once the
``offline`` status has been taken; otherwise it is dropped, so that the broker publishes the
last will.

The solver runs in a single worker thread under a wall-clock deadline (its own time limit plus
a margin); a solve that overruns it is answered with the fallback plan at once, and no new
solve starts until the stuck one returns.  A stop is staged, each stage with its own timeout:
stop planning → publish safe setpoints and the ``offline`` status → save the state, flush
logs → disconnect.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Final

import msgspec

from controller.config import DaemonConfig
from controller.console.app import ConsoleServer
from controller.console.journal import Journal
from controller.console.operators import load_operators
from controller.core.core import ControllerCore
from controller.core.planners import fallback_plan
from controller.core.ports import PlanJob, Publication
from controller.daemon import persist
from controller.daemon.http import serve_http
from controller.daemon.lease import Lease
from controller.daemon.outbound import Outbound
from controller.daemon.session import BrokerSession, said
from controller.daemon.startup import StartupCheck
from controller.daemon.troubles import Refusals, Trouble
from controller.planner.types import PlantState, Schedule
from controller.site import SiteModel
from controller.tsdb import PointSink, open_sink, resolve_token
from controller.tsdb.schema import (
    event_point,
    kpi_points,
    payload_points,
    plan_points,
    state_points,
)
from wire import (
    ControllerLease,
    ControllerState,
    ControllerStatus,
    PayloadError,
    Topics,
    decode,
    encode,
)
from wire.link import (
    INCOMING_DROPS,
    check_tls,
    resolve_password,
)
from wire.tasks import sleep_unless_stopped
from wire.tomlfile import FileError

log = logging.getLogger(__name__)

TICK_S: Final = 0.2
SAVE_EVERY_WALL_S: Final = 10.0
SAVE_MIN_WALL_S: Final = 1.0
"""The state file is written after every dispatch (at most once a second) and every 10 s."""
SAVE_FORECASTERS_WALL_S: Final = 300.0
"""The forecasters' learning (a few MB) is written every 5 min and at a stop."""
SOLVER_MARGIN_S: Final = 5.0
"""Wall-clock slack on top of the solver's own time limit before the daemon gives up on it."""


class Daemon:
    """One controller: a core, a broker link, a solver thread, a state file."""

    def __init__(
        self,
        config: DaemonConfig,
        site: SiteModel,
        *,
        environ: Mapping[str, str] = os.environ,
        monotonic: Callable[[], float] = time.monotonic,
        utc: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.topics = Topics(config.mqtt.topic_prefix)
        self.instance = config.controller.resolved_instance_id
        # the daemon's UTC clock: what [controller] wall_clock_tolerance_s holds telemetry to
        self.core = ControllerCore(
            site, config.controller, config.planner, self.topics, utc=utc, instance=self.instance
        )
        self.password = resolve_password(config.mqtt, environ)
        self.operators = load_operators(config.controller.operator_tokens_file, environ)
        self.journal = Journal()
        """What the console shows: it sees what the core records (:meth:`Journal.tee`)."""
        check_tls(config.mqtt)
        self.state_path = config.controller.resolved_state_file
        here = self.state_path.parent
        self.influx = msgspec.structs.replace(
            config.influx,
            files_dir=config.influx.files_dir or str(here / "points"),
            spool_dir=config.influx.spool_dir or str(here / "spool"),
        )
        self.influx_token = resolve_token(self.influx, environ)
        self.sink: PointSink | None = None
        self.monotonic = monotonic
        self.lease = Lease(self.instance, config.controller.lease_ttl_s)
        self.outbound = Outbound(self.topics, self.instance)
        self.refusals = Refusals(self.core, config.mqtt.username, monotonic=monotonic)
        self.link = BrokerSession(self)
        self.stats = self.link.stats
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="solver")
        self._solving: asyncio.Future[Schedule] | None = None
        self._solve_deadline_s = 0.0
        """When the solve in progress is answered with the fallback plan (wall, monotonic)."""
        self._planner_task: asyncio.Task[None] | None = None
        self._last_save_wall_s = -SAVE_EVERY_WALL_S
        self._last_forecasters_wall_s = 0.0
        self.forecasters_path = persist.forecasters_path(self.state_path)
        self.state_writes = Trouble(
            "state_file", self.core, cleared="the state file is written again", monotonic=monotonic
        )
        self.forecaster_writes = Trouble(
            "forecasters_file",
            self.core,
            cleared="the forecasters file is written again",
            monotonic=monotonic,
        )
        self.planning = True
        self.startup = StartupCheck(site, config.planner, self.core)
        """One dry solve of the planning problem at start-up, beside everything else."""

    @property
    def is_active(self) -> bool:
        """Whether this instance holds the controller lease (it sends setpoints)."""
        return self.lease.active(self.monotonic())

    def solve_overrun_s(self, now: float) -> float:
        """How long the solve in progress has run past its deadline (0: none has)."""
        if self._solving is None or self._solving.done():
            return 0.0
        return max(0.0, now - self._solve_deadline_s)

    # --- start ----------------------------------------------------------------------------

    def load_state(self) -> None:
        for path in (self.state_path, self.forecasters_path):
            for tmp in persist.remove_stale_temporaries(path):
                log.info("removed %s, left by a process killed while writing it", tmp)
        loaded = persist.load(self.state_path)
        if loaded.state is not None:
            self.core.restore(loaded.state)
            log.info("state file %s read; resuming at the first telemetry", self.state_path)
        elif loaded.problem:
            log.error("%s: starting from nominal assumptions", loaded.problem)
            self.core.notice(f"{loaded.problem}; started from nominal assumptions")
        else:
            log.info("no state file at %s: starting fresh", self.state_path)
        kept = persist.load_forecasters(self.forecasters_path, self.core.site)
        if kept.supply is not None:
            self.core.restore_forecasters(kept.supply, kept.saved_ts)
            log.info("forecasters read from %s", self.forecasters_path)
        elif kept.problem:
            log.error("%s: forecasting from scratch", kept.problem)
            self.core.notice(f"{kept.problem}; forecasting from scratch")

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set, then shut down in stages."""
        self.load_state()
        try:
            self.sink = open_sink(self.influx, token=self.influx_token)
        except OSError as exc:
            key = "influx.files_dir" if self.influx.url is None else "influx.spool_dir"
            raise FileError("", key, exc.filename, f"cannot be used: {exc.strerror}") from None
        self.core.recorder = self.journal.tee(_SinkRecorder(self.sink, self.core.site))
        checking = asyncio.create_task(self.startup.run())
        link_stop = asyncio.Event()
        link = asyncio.create_task(self.link.stay_connected(link_stop))
        ticker = asyncio.create_task(self._tick_forever(stop))
        http = None
        settings = self.config.controller
        stopped = asyncio.create_task(stop.wait())
        failure: BaseException | None = None
        try:
            if settings.http_port:
                http = await serve_http(settings.http_host, settings.http_port, self)
            # asyncio.wait, not a gather: the link must outlive the stop, to send safe setpoints
            await asyncio.wait({stopped, link, ticker}, return_when=asyncio.FIRST_COMPLETED)
        except Exception as exc:
            failure = exc
            raise
        finally:
            stopped.cancel()
            checking.cancel()
            self.startup.close()
            for task in (ticker, link):
                if failure is None and task.done() and not task.cancelled():
                    failure = task.exception()
            await self._shutdown(ticker, link, link_stop, http, failure)
        if failure is not None:
            raise failure

    async def _shutdown(
        self,
        ticker: asyncio.Task[None],
        link: asyncio.Task[None],
        link_stop: asyncio.Event,
        http: ConsoleServer | None,
        failure: BaseException | None = None,
    ) -> None:
        """Stop in stages, each within ``shutdown_stage_s``; a stage that runs out of time says
        what it leaves behind (docs/operations.md, Stopping).  ``failure``: what made the daemon
        stop, when it was not a signal."""
        stage_s = self.config.controller.shutdown_stage_s
        log.info("stopping: planning")
        self.planning = False
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await ticker
        if self._planner_task is not None and not await _within(
            asyncio.shield(self._planner_task), stage_s
        ):
            log.warning("stopping: the plan being made was not ready within %g s: dropped", stage_s)
        log.info("stopping: safe setpoints")
        now = self.monotonic()
        dropped_before = self.stats.dropped_publications
        safe = self.core.shutdown_setpoints(now)
        for pub in safe:
            self.link.queue(pub)
        if (dropped := self.stats.dropped_publications - dropped_before) > 0:
            log.warning(
                "stopping: broker not connected: %d safe setpoints not sent; the plant's own "
                "protection returns the assets to safe defaults when the last ones expire",
                dropped,
            )
        why = "controller stopped" if failure is None else f"controller failed: {said(failure)}"
        if safe and not dropped:
            why += "; safe setpoints sent"
        self.link.say_farewell(self.offline_status(now, why))
        await self.link.wait_sent(stage_s)
        log.info("stopping: saving state and flushing logs")
        if not await _within(self._save_state(now), stage_s):
            log.warning(
                "stopping: the state file was not written within %g s: the next start resumes "
                "from the save before (at most %g s of wall time older)",
                stage_s,
                SAVE_EVERY_WALL_S,
            )
        if not await _within(self._save_forecasters(), stage_s):
            log.warning(
                "stopping: the forecasters were not written within %g s: the next start resumes "
                "them from the save before (at most %g s of wall time older)",
                stage_s,
                SAVE_FORECASTERS_WALL_S,
            )
        if self.sink is not None:
            self.core.recorder = None
            await self.sink.close(stage_s)
            left = self.sink.stats()
            if left.spool_points:
                log.warning(
                    "stopping: %d points not yet in the database, kept in the spool for the "
                    "next start",
                    left.spool_points,
                )
        log.info("stopping: disconnecting")
        link_stop.set()
        if not link.done() and not await _within(link, stage_s):
            log.warning("stopping: the broker link did not close within %g s: cut", stage_s)
            link.cancel()
        if http is not None:
            await http.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
        log.info("stopped")

    # --- ticker and planner ---------------------------------------------------------------

    async def _tick_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            now = self.monotonic()
            self.stats.last_tick_wall_s = now
            self._tick_lease(now)
            self.core.tick(now)
            INCOMING_DROPS.settle()
            if self.planning and (self._solving is None or self._solving.done()):
                job = self.core.take_plan_job()
                if job is not None:
                    self._planner_task = asyncio.create_task(self._plan(job))
            self.flush()
            since_s = now - self._last_save_wall_s
            if since_s >= SAVE_EVERY_WALL_S or (self.core.dirty and since_s >= SAVE_MIN_WALL_S):
                self._last_save_wall_s = now
                await self._save_state(now)
            if now - self._last_forecasters_wall_s >= SAVE_FORECASTERS_WALL_S:
                self._last_forecasters_wall_s = now
                await self._save_forecasters()
            await sleep_unless_stopped(stop, TICK_S)

    async def _plan(self, job: PlanJob) -> None:
        loop = asyncio.get_running_loop()
        self._solving = loop.run_in_executor(self._executor, self.core.planner.plan, job)
        deadline_s = job.config.time_limit_s + SOLVER_MARGIN_S
        self._solve_deadline_s = self.monotonic() + deadline_s
        schedule: Schedule | None
        try:
            schedule = await asyncio.wait_for(asyncio.shield(self._solving), deadline_s)
        except TimeoutError:
            schedule = self._fallback(job, f"solver did not return within {deadline_s:g} s")
        except Exception as exc:  # any solver crash must end in the safe plan
            log.exception("solver failed")
            schedule = self._fallback(job, f"solver error: {type(exc).__name__}: {exc}"[:500])
        if not self.planning:
            return
        if schedule is None:
            self.core.on_plan_failed("the solver and its fallback plan both failed")
            self.flush()
            return
        log.debug("plan %s (%s) for %s", schedule.plan_id, schedule.status.value, job.why)
        self.core.on_schedule(schedule)
        self.flush()

    def _fallback(self, job: PlanJob, reason: str) -> Schedule | None:
        try:
            return fallback_plan(job, reason)
        except Exception:
            log.exception("the fallback plan failed too: sending safe setpoints")
            return None

    async def _save_state(self, wall_s: float) -> None:
        # the snapshot is taken here, on the loop, so that no message changes the state half-way
        saved = self.core.snapshot(wall_s)
        if saved is None:
            return
        data = persist.encode_state(saved)
        try:
            await asyncio.to_thread(persist.write_atomic, self.state_path, data)
        except OSError as exc:
            self.state_writes.failed(
                f"cannot write the state file {self.state_path}: {said(exc)}",
                "a restart would resume from the last save; retrying at every save",
            )
        else:
            self.state_writes.succeeded()

    async def _save_forecasters(self) -> None:
        # pickled here, on the loop, so that no message changes them half-way; written aside
        data = self.core.forecasters_dump()
        if data is None:
            return
        try:
            await asyncio.to_thread(persist.save_forecasters, self.forecasters_path, data)
        except OSError as exc:
            self.forecaster_writes.failed(
                f"cannot write the forecasters to {self.forecasters_path}: {said(exc)}",
                f"a restart would forecast from the last save; retrying every "
                f"{SAVE_FORECASTERS_WALL_S:g} s",
            )
        else:
            self.forecaster_writes.succeeded()

    # --- the lease ------------------------------------------------------------------------

    def _tick_lease(self, now: float) -> None:
        if self.stats.connected:
            clock = self.core.clock
            heard_plant = clock.now_s is not None and clock.wall_at_now_s >= self.link.connected_s
            ts = clock.extrapolated_s(now) or 0.0
            message = self.lease.tick(now, ts, may_claim=heard_plant)
            if message is not None:
                self.link.send_urgent(Publication(self.topics.lease(), encode(message), 1, True))
        if self.stats.connects:  # before the first connection there is nothing to follow
            self.follow_lease(now)

    def follow_lease(self, now: float) -> None:
        """The core on standby unless this instance holds the lease; on taking over, the status
        and the plan go to the controller's topics again."""
        reason = None if self.lease.active(now) else self.lease.reason
        if reason == self.core.standby:
            return
        self.core.set_standby(reason)
        if reason is None:
            self.core.force_status()
            self.link.send_retained_again(self.topics.plan())

    def on_controller_message(self, topic: str, data: bytes, retained: bool, now: float) -> None:
        """The lease, and the controller status (another instance's last will or stop)."""
        kind = "lease" if topic == self.topics.lease() else "status"
        try:
            payload: msgspec.Struct = decode(kind, data)
        except PayloadError as exc:
            self.core.ingest.reject(exc.kind, exc.reason, topic)
            return
        self.core.ingest.accepted[kind] += 1
        if isinstance(payload, ControllerLease):
            self.lease.heard(payload, now, retained=retained)
        elif isinstance(payload, ControllerStatus):
            self.lease.heard_status(
                payload.instance, offline=payload.state == ControllerState.OFFLINE
            )
            if payload.instance != self.instance and self.lease.active(now):
                # another instance's last will must not stand as the controller's status
                self.core.force_status()
        self.follow_lease(now)

    def offline_status(self, now: float, reason: str) -> Publication:
        offline = ControllerStatus(
            ts=self.core.clock.extrapolated_s(now) or 0.0,
            state=ControllerState.OFFLINE,
            reasons=[reason],
            last_plan_ts=self.core.status().last_plan_ts,
            instance=self.instance,
        )
        return Publication(self.topics.status(), encode(offline), 1, True)

    # --- link ---------------------------------------------------------------------------

    def publish(self, pub: Publication) -> None:
        """Send ``pub`` to the broker (the console's mode commands)."""
        self.link.queue(pub)

    def flush(self) -> None:
        """Send what the core has queued."""
        for pub in self.core.drain():
            self.link.queue(pub)


async def _within(awaitable: Awaitable[object], timeout_s: float) -> bool:
    """Await ``awaitable`` for at most ``timeout_s``; False if it ran out of time.  Failures are
    logged (a stage of a stop must not stop the stages after it)."""
    try:
        await asyncio.wait_for(awaitable, timeout_s)
    except TimeoutError:
        return False
    except asyncio.CancelledError:
        return True
    except Exception:
        log.exception("stopping: a stage failed")
    return True


class _SinkRecorder:
    """The core's :class:`~controller.core.ports.Recorder`, writing points to a sink."""

    def __init__(self, sink: PointSink, site: SiteModel) -> None:
        self.sink = sink
        self.site_name = site.name
        self.lines = site.lines

    def payload(self, kind: str, asset: str, payload: msgspec.Struct) -> None:
        self.sink.write(payload_points(kind, asset, payload, self.site_name))

    def plan(self, schedule: Schedule, state: PlantState) -> None:
        ts = float(schedule.times_s[0]) if len(schedule.times_s) else state.t_s
        self.sink.write(
            plan_points(schedule, self.site_name, schedule.plan_id, ts, lines=self.lines)
        )
        self.sink.write(state_points(state, self.site_name))

    def event(
        self, kind: str, ts_s: float, *, asset: str = "", code: str = "", message: str = ""
    ) -> None:
        self.sink.write(
            [event_point(self.site_name, kind, ts_s, asset=asset, code=code, message=message)]
        )

    def kpis(self, ts_s: float, table: dict[str, float]) -> None:
        self.sink.write(kpi_points(table, self.site_name, ts_s, period="day"))
