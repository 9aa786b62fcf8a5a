"""The control core: one loop for the daemon and the backtest, without I/O.

:class:`ControllerCore` takes raw MQTT messages (:meth:`~ControllerCore.on_message`), the wall
clock (:meth:`~ControllerCore.tick`) and finished plans (:meth:`~ControllerCore.on_schedule`),
and queues publications for its shell to send (:meth:`~ControllerCore.drain`).  It plans on
plant time, taken from telemetry timestamps; the wall clock only watches for a silent plant.
The daemon (:mod:`controller.daemon.service`) runs it on asyncio against a broker; the backtest
(:mod:`harness.backtest`) runs the same core in line against the simulator.

It composes small units, each with one idea: message routing (:mod:`.routing`), operator modes
(:mod:`.modes`), restart restore (:mod:`.restore`), the forecasters' lifecycle
(:mod:`.forecasters`), plan cadence (:mod:`.cadence`), status composition (:mod:`.status`),
watchdogs (:mod:`.watchdog`, :mod:`.clock`), dispatch (:mod:`.dispatch`) and metering
(:mod:`.metering`), the plans in force (:mod:`.plans`) and plant alarms (:mod:`.alarms`).
Every case of the fallback policy (a stale asset, a silent plant, a solver failure, a clock
jump, an unreadable state file, the operator's modes) is in docs/operations.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import msgspec
import numpy as np

from controller.config import ControllerSection
from controller.core.admission import Admission, Refusal
from controller.core.alarms import AlarmLog
from controller.core.cadence import FIRST_PLAN_WAIT_S, PlanCadence, forecast_miss
from controller.core.clock import PlantClock
from controller.core.dispatch import Dispatcher, next_step_s
from controller.core.forecasters import Forecasters
from controller.core.ingest import Ingest
from controller.core.metering import Meter
from controller.core.modes import OperatorModes
from controller.core.planners import MpcPlanner
from controller.core.plans import PlanBook
from controller.core.plausibility import Plausibility
from controller.core.ports import PlanJob, Planner, Publication, Recorder
from controller.core.records import SavedState, plan_message
from controller.core.restore import Resume
from controller.core.routing import TELEMETRY_KINDS, Router
from controller.core.status import Facts, StatusBoard, compose
from controller.core.streams import Verdict
from controller.core.watchdog import Watchdog
from controller.planner.types import PlannerConfig, Schedule, SolveStatus
from controller.safety import Command, SafetyLayer
from controller.site import SiteModel
from controller.state import StateTracker
from controller.supply import SupplyForecaster
from wire import (
    BessTelemetry,
    CaptiveTelemetry,
    ControllerState,
    ControllerStatus,
    GridTelemetry,
    ModeCommand,
    PlantAlarm,
    PotlineTelemetry,
    RenewableTelemetry,
    Topics,
    WeatherForecast,
    encode,
)

log = logging.getLogger(__name__)


class ControllerCore:
    """The controller's state and decisions.  Pure: times are passed in, output is queued."""

    def __init__(
        self,
        site: SiteModel,
        settings: ControllerSection,
        planner_config: PlannerConfig,
        topics: Topics,
        *,
        planner: Planner | None = None,
        utc: Callable[[], float] | None = None,
        instance: str = "",
    ) -> None:
        self.site = site
        self.instance = instance
        """The instance id its setpoints and status carry ("" says none: the backtest)."""
        self.settings = settings
        self.planner_config = planner_config
        self.planner: Planner = planner if planner is not None else MpcPlanner()
        self.topics = topics
        self.cycle_s = settings.cycle_min * 60.0
        self.recorder: Recorder | None = None
        self.clock = PlantClock()
        self.tracker = StateTracker(site, stale_after_s=settings.stale_after_s)
        self.safety = SafetyLayer(
            site, validity_s=settings.validity_s, topics=topics, instance=instance
        )
        self._utc = utc
        """The daemon's UTC clock, for ``wall_clock_tolerance_s`` (None: not checked)."""
        self.admission = Admission(
            site,
            ts_tolerance_s=settings.ts_tolerance_s,
            command_window_s=settings.command_window_s,
            wall_clock_tolerance_s=settings.wall_clock_tolerance_s,
        )
        self.plausibility = Plausibility(site)
        self._pending_mode: ModeCommand | None = None
        """An operator command heard before plant time was known, judged at the first tick."""
        self._kept_mode_judged = False
        """The mode in force has been judged against plant time (it was kept in the state file,
        or set before the clock jumped)."""
        self.router = Router(topics)
        self.router.on(TELEMETRY_KINDS, self._on_telemetry)
        self.router.on(("weather",), self._on_weather)
        self.router.on(("mode",), self._on_mode)
        self.router.on(("alarm",), self._on_alarm)
        self.alarm_log = AlarmLog()
        self.modes = OperatorModes()
        self.resume = Resume()
        self.forecasters = Forecasters(site, enabled=self.planner.uses_forecast)
        self.cadence = PlanCadence(self.cycle_s)
        self.board = StatusBoard(heartbeat_s=settings.heartbeat_s, notice_s=self.cycle_s)
        self.watchdog = Watchdog(
            site, stale_after_s=settings.stale_after_s, silence_wall_s=settings.silence_wall_s
        )
        self.dispatcher = Dispatcher(
            self.safety, validity_s=settings.validity_s, heartbeat_s=settings.heartbeat_s
        )
        self.meter = Meter(site, stale_after_s=settings.stale_after_s)
        self._renewable_capacity_mw = sum(r.capacity_mw for r in site.renewable)
        self.plans = PlanBook(planner_config.time_limit_s)
        self._outbox: list[Publication] = []
        self.dirty = False
        """Setpoints went out since the last :meth:`snapshot`: the state file is behind."""
        self.standby: str | None = None
        """Why this instance is not the active controller (None: it is).  A standby core hears,
        tracks, forecasts and plans as usual, so that it can take over at once, but sends no
        setpoints and says ``standby`` in its status."""

    # --- what other code reads ---------------------------------------------------------

    @property
    def ingest(self) -> Ingest:
        return self.router.ingest

    @property
    def mode(self) -> ModeCommand:
        return self.modes.command

    @property
    def supply(self) -> SupplyForecaster | None:
        return self.forecasters.supply

    @property
    def alarms(self) -> dict[str, int]:
        return dict(self.alarm_log.counts)

    @property
    def setpoints_sent(self) -> int:
        return self.dispatcher.sent

    @property
    def plan(self) -> Schedule | None:
        """The plan in force."""
        return self.plans.plan

    @property
    def plans_made(self) -> int:
        return self.plans.made

    @property
    def fallback_plans(self) -> int:
        return self.plans.fallbacks

    @property
    def last_solve_ms(self) -> float:
        return self.plans.last_solve_ms

    # --- inputs ---------------------------------------------------------------------------

    def on_message(self, topic: str, data: bytes | bytearray, wall_s: float) -> None:
        """One message from the broker: validated at the edge, then routed."""
        self.router.route(topic, data, wall_s)

    def _record(self, kind: str, asset: str, payload: msgspec.Struct) -> None:
        if self.recorder is not None:
            self.recorder.payload(kind, asset, payload)

    def _ready_for_commands(self) -> bool:
        """Plant time is known and the lines have been heard (their measured values are what
        a ``hold`` holds)."""
        now = self.clock.now_s
        return now is not None and self.watchdog.ready_for_first_plan(now, FIRST_PLAN_WAIT_S)

    def _judge_commands_kept(self, wall_s: float) -> None:
        """Once plant time is known (and again once it has jumped): the mode restored from the
        state file (one stamped in the future would lock every real command out; one naming
        an asset the site no longer has would command it), and the command that waited."""
        if not self._kept_mode_judged:
            self._kept_mode_judged = True
            refusal = self.admission.kept_mode(self.modes.command, self.clock)
            if refusal is not None:
                log.warning(
                    "operator mode %s dropped, back to auto: %s",
                    self.modes.mode.value,
                    refusal.reason,
                )
                self._event("mode", "dropped", refusal.reason)
                self.modes = OperatorModes()
        pending, self._pending_mode = self._pending_mode, None
        if pending is not None:
            self._on_mode("mode", "", pending, wall_s)

    def _refuse(self, kind: str, asset: str, refusal: Refusal) -> None:
        self.ingest.refuse(kind, refusal.kind, refusal.reason, f"{kind} {asset}".strip())

    def _on_weather(self, kind: str, asset: str, payload: msgspec.Struct, wall_s: float) -> None:
        assert isinstance(payload, WeatherForecast)
        refusal = self.admission.weather(asset, payload, self.clock)
        if refusal is not None:
            self._refuse(kind, asset, refusal)
            return
        self._record(kind, asset, payload)
        self.forecasters.observe_weather(payload)

    def _on_mode(self, kind: str, asset: str, payload: msgspec.Struct, wall_s: float) -> None:
        assert isinstance(payload, ModeCommand)
        if self.clock.now_s is None or not self._ready_for_commands():
            # judged against plant time once the plant has been heard from (a retained command
            # arrives before any telemetry); the newest waits
            if self._pending_mode is None or payload.ts >= self._pending_mode.ts:
                self._pending_mode = payload
            return
        refusal = self.admission.command(payload, self.clock)
        if refusal is not None:
            self._refuse(kind, asset, refusal)
            return
        self._record(kind, asset, payload)
        self.set_mode(payload)

    def _on_alarm(self, kind: str, asset: str, payload: msgspec.Struct, wall_s: float) -> None:
        assert isinstance(payload, PlantAlarm)
        refusal = self.admission.alarm(payload)
        if refusal is not None:
            self._refuse(kind, asset, refusal)
            return
        self._record(kind, asset, payload)
        self.alarm_log.heard(payload)

    def _on_telemetry(self, kind: str, asset: str, payload: msgspec.Struct, wall_s: float) -> None:
        ts: float = payload.ts  # type: ignore[attr-defined]
        utc_s = self._utc() if self._utc is not None else None
        check = self.admission.telemetry(kind, asset, ts, wall_s, utc_s, self.clock)
        if check.verdict is Verdict.JUMP:
            self._clock_jumped(check.reason, ts, wall_s)
        elif check.verdict is not Verdict.ACCEPT:
            self._refuse(kind, asset, Refusal(check.verdict.value, check.reason))
            return
        self._record(kind, asset, payload)
        payload = self.plausibility.check(
            kind, asset, payload, self.dispatcher.applied.get((kind, asset))
        )
        if self.watchdog.heard(kind, asset, ts, wall_s):
            log.info("telemetry is back after a silence")
            self._event("recovery", "telemetry_back", "telemetry is back after a silence")
            self.cadence.request("telemetry back after a silence")
        self.clock.advance(ts, wall_s)
        self._first_telemetry_checks(ts)
        self.tracker.observe_telemetry(kind, asset, payload)
        self.meter.observe(kind, asset, payload, ts)
        if isinstance(payload, PotlineTelemetry):
            self.safety.observe("potline", asset, payload.current_ka, ts)
        elif isinstance(payload, BessTelemetry | CaptiveTelemetry):
            self.safety.observe(kind, asset, payload.power_mw, ts)
        elif isinstance(payload, RenewableTelemetry):
            self.forecasters.observe_telemetry(asset, payload)
            miss = forecast_miss(
                self.plan,
                ts,
                self.tracker.renewable_available_mw,
                self.settings.forecast_miss_frac * self._renewable_capacity_mw,
            )
            if miss is not None:
                self.cadence.request(miss)
        elif isinstance(payload, GridTelemetry) and payload.shed_mw > 0.0:
            self.board.notice("plant is shedding load", ts)

    def _first_telemetry_checks(self, ts: float) -> None:
        resumed = self.resume.at_telemetry(ts, self.tracker)
        if resumed is not None:
            notice, event = resumed
            self.board.notice(notice, ts)
            if event:
                self._event("restart", "resumed", event)
        afresh = self.forecasters.check(ts)
        if afresh is not None:
            self.board.notice(afresh, ts)

    def set_mode(self, command: ModeCommand) -> None:
        """An operator's mode command (older than the one in force: ignored)."""
        if not self.modes.set(command, self.safety.measured() | dict(self.dispatcher.applied)):
            return
        self._event("mode", command.mode.value, "set by the operator")
        if self.clock.now_s is not None:
            self._dispatch(self.clock.now_s)

    def restore(self, saved: SavedState) -> None:
        """Resume from a state file: the mode now, the lines at the first telemetry."""
        self.modes.restore(saved.mode, saved.applied, self.safety.limits.keys())
        self.resume.take(saved)

    def restore_forecasters(self, supply: SupplyForecaster, saved_ts: float) -> None:
        """Use forecasters kept from before a restart (their age is checked at the first
        telemetry); the newest weather forecast already received is given to them."""
        self.forecasters.restore(supply, saved_ts)

    def forecasters_dump(self) -> bytes | None:
        """The forecasters' learning for :func:`persist.save_forecasters` (None before the
        first telemetry, or while restored ones still wait for it)."""
        return self.forecasters.dump(self.clock.now_s)

    def notice(self, reason: str, for_s: float | None = None) -> None:
        """A transient reason for the status (shown for one cycle by default)."""
        self.board.notice(reason, self.clock.now_s, for_s)

    def condition(self, name: str, reason: str | None, *, uncontrolled: bool = False) -> None:
        """A lasting reason for the status from the shell (a full disk, refused publishes),
        shown until cleared with ``reason`` None; ``uncontrolled``: the plant is not getting
        setpoints because of it (state ``fallback``)."""
        self.board.condition(name, reason, uncontrolled=uncontrolled)

    # --- the clock ------------------------------------------------------------------------

    def tick(self, wall_s: float) -> None:
        """Called often (every ~0.2 s wall in the daemon, every plant step in the backtest):
        watchdogs, heartbeats, hourly KPIs and the status."""
        now = self.clock.now_s
        if now is None:
            return
        silent_s = self.watchdog.silence_s(wall_s)
        if silent_s is not None:
            self.dispatcher.next_s = None  # safe setpoints at once
            log.warning(
                "no telemetry for %.0f s (wall clock): setpoints go to safe values", silent_s
            )
            self._event("fallback", "plant_silent", f"no telemetry for {silent_s:.0f} s")
        if self.watchdog.silent:
            t = self.clock.extrapolated_s(wall_s) or now
            if self.dispatcher.next_s is None or t >= self.dispatcher.next_s:
                self._send(self.dispatcher.safe(t, "silent"))
            self._emit_status(now)
            return
        self._update_staleness(now)
        kept = not self._kept_mode_judged or self._pending_mode is not None
        if kept and self._ready_for_commands():
            self._judge_commands_kept(wall_s)
        if self.dispatcher.due(now):
            self._dispatch(now)
        for hour_s, table in self.meter.take():
            if self.recorder is not None and self.standby is None:
                self.recorder.kpis(hour_s, table)
        self._emit_status(now)

    def take_plan_job(self) -> PlanJob | None:
        """The next planning job when one is due (the shell calls it when the planner is free)."""
        now = self.clock.now_s
        if now is None or self.watchdog.silent or self.resume.pending is not None:
            return None
        ready = self.watchdog.ready_for_first_plan(now, FIRST_PLAN_WAIT_S)
        why = self.cadence.due(now, ready=ready)
        if why is None:
            return None
        stale_bess = self.watchdog.stale_of("bess")
        site = msgspec.structs.replace(
            self.site, bess=tuple(b for b in self.site.bess if b.name not in stale_bess)
        )
        cfg = self.planner_config
        step_s = cfg.step_min * 60.0
        starts_s = now + np.arange(cfg.steps, dtype=float) * step_s
        unreliable = self.watchdog.stale_of("renewable")
        forecast = self.forecasters.forecast(
            now,
            starts_s,
            step_s,
            unreliable=unreliable,
            latest_mw=self.tracker.renewable_available_mw,
        )
        return PlanJob(now, site, self.tracker.state(now), forecast, cfg, why)

    # --- plans ----------------------------------------------------------------------------

    def on_schedule(self, schedule: Schedule) -> None:
        """A finished plan (optimal, best within the time limit, or the fallback plan)."""
        self.plans.take(schedule)
        if schedule.status == SolveStatus.FALLBACK:
            self._event("fallback", "solver", schedule.reason)
        now = self.clock.now_s
        if self.recorder is not None and now is not None and self.standby is None:
            self.recorder.plan(schedule, self.tracker.state(now))
        self._outbox.append(
            Publication(self.topics.plan(), encode(plan_message(schedule)), 1, True)
        )
        if now is not None and not self.watchdog.silent:
            self._dispatch(now)

    def on_plan_failed(self, reason: str) -> None:
        """No plan at all (not even the fallback plan): drop the plan, send safe setpoints."""
        self.plans.failed(reason)
        self._event("fallback", "no_plan", reason)
        now = self.clock.now_s
        if now is not None:
            self._send(self.dispatcher.safe(now, "no-plan"))

    def status(self) -> ControllerStatus:
        now = self.clock.now_s
        if now is None:
            return ControllerStatus(
                ts=0.0,
                state=ControllerState.STARTING,
                reasons=["waiting for telemetry"],
                instance=self.instance,
            )
        stale = [(k, a, self.watchdog.age_s((k, a), now)) for k, a in self.watchdog.stale]
        facts = Facts(
            now_s=now,
            silent_for_s=self.settings.silence_wall_s if self.watchdog.silent else None,
            plan=self.plan,
            plan_failure=self.plans.failure,
            stale=stale,
            mode=self.modes.mode,
            standby=self.standby,
            conditions=tuple(self.board.conditions.values()),
            instance=self.instance,
        )
        return compose(facts, self.plausibility.reasons() + self.board.notices(now))

    @property
    def has_output(self) -> bool:
        return bool(self._outbox)

    def drain(self) -> list[Publication]:
        out, self._outbox = self._outbox, []
        return out

    def snapshot(self, wall_s: float) -> SavedState | None:
        now = self.clock.now_s
        if now is None:
            return self.resume.pending
        self.dirty = False
        return SavedState(
            saved_ts=now,
            saved_wall_s=wall_s,
            lines=self.tracker.snapshot(),
            mode=self.modes.saved(),
            applied={f"{k}/{a}": v for (k, a), v in self.dispatcher.applied.items()},
            applied_valid_until_s=self.dispatcher.valid_until_s,
            plan=plan_message(self.plan) if self.plan is not None else None,
        )

    def shutdown_setpoints(self, wall_s: float) -> list[Publication]:
        """Safe setpoints for a stop: every asset towards its safe value, within ramp limits."""
        t = self.clock.extrapolated_s(wall_s)
        if t is None:
            return []
        self._send(self.dispatcher.safe(t, "shutdown"))
        return self.drain()

    def force_status(self) -> None:
        """Publish the status at the next tick (after a reconnect: the retained one may be the
        broker's last will)."""
        self.board.force()

    # --- internals ------------------------------------------------------------------------

    def _dispatch(self, now: float) -> None:
        if not self.modes.auto:
            targets, source, plan_id = self.modes.targets(self.dispatcher.applied)
            self._send(
                self.dispatcher.send(targets, now, source=source, plan_id=plan_id, next_step_s=None)
            )
            return
        if self.plan is None:
            if self.plans.failure:  # no plan at all: keep moving towards safe values
                self._send(self.dispatcher.safe(now, "no-plan"))
            return
        chosen = self.dispatcher.plan_targets(
            self.plan, now, self.watchdog.stale, self.planner.source
        )
        if chosen is None:
            # A plan that has run out (the solver is stuck): safe values, not its last step.
            self._send(self.dispatcher.safe(now, "plan-expired"))
            return
        targets, source, plan_id = chosen
        self._send(
            self.dispatcher.send(
                targets,
                now,
                source=source,
                plan_id=plan_id,
                next_step_s=next_step_s(self.plan, now),
            )
        )

    def set_standby(self, reason: str | None) -> None:
        """Become standby (``reason``: why) or active (None); an instance that becomes active
        dispatches at once.

        Only the active instance records its plans, its tracker's state and the metered KPIs:
        a standby's would land in the same series as the active one's (its day-to-date KPIs
        from a later start would overwrite the active's).  Taking over, it records the plan in
        force, which its first setpoints name.  Telemetry and its own status (tagged with its
        instance) it records either way."""
        was, self.standby = self.standby, reason
        self.dispatcher.muted = reason is not None
        if was is not None and reason is None:
            # ramp from what the plant runs at now, not from what this instance last sent
            self.safety.forget_applied()
            self.dispatcher.next_s = self.clock.now_s
            now, plan = self.clock.now_s, self.plans.plan
            if self.recorder is not None and now is not None and plan is not None:
                self.recorder.plan(plan, self.tracker.state(now))
        if reason is not None and was is None:
            log.warning("standby: %s", reason)
        elif reason is None and was is not None:
            log.warning("active: taking over control (was standby: %s)", was)

    def _send(self, sent: list[tuple[Command, Publication]]) -> None:
        for (topic, payload), publication in sent:
            self._outbox.append(publication)
            if self.recorder is not None:
                parsed = self.topics.parse(topic)
                if parsed is not None:
                    self.recorder.payload(parsed.kind, parsed.asset, payload)
        self.dirty = True

    def _update_staleness(self, now: float) -> None:
        changes = self.watchdog.update(now)
        for key in changes.lost:
            log.warning("%s %s: telemetry stale, treated as unknown", *key)
            self._event("stale", "stale_telemetry", f"{key[0]} {key[1]}", asset=key[1])
        for key in changes.back:
            log.info("%s %s: telemetry back", *key)
            self._event("recovery", "telemetry_back", f"{key[0]} {key[1]}", asset=key[1])
        if changes.lost or changes.back:
            self.cadence.request("an asset was lost or came back")

    def _clock_jumped(self, jump: str, ts: float, wall_s: float) -> None:
        # The jump is not time the plant ran: no heat, production or energy is integrated over
        # it, and the forecasters' history, on the old time base, starts again.
        self.tracker.rebase(ts)
        self.meter.rebase(ts)
        self.plausibility.rebase()
        self.forecasters.start_afresh()
        self.watchdog.rebase(ts)
        log.warning("%s: ramp references re-based, re-planning", jump)
        self._event("clock", "jump", jump)
        self.clock.reset(ts, wall_s)
        self.safety.rebase(ts)
        self.cadence.restart_at(ts, jump)
        self.dispatcher.next_s = ts  # the plan in force, or safe values, at once
        self.board.notice(jump, ts)
        self._kept_mode_judged = False  # the mode in force is stamped on the old time base

    def _event(self, kind: str, code: str, message: str, *, asset: str = "") -> None:
        if self.recorder is not None:
            ts = self.clock.now_s or 0.0
            self.recorder.event(kind, ts, asset=asset, code=code, message=message)

    def _emit_status(self, now: float) -> None:
        status = self.status()
        if self.board.due(status):
            self._outbox.append(Publication(self.topics.status(), encode(status), 1, True))
            if self.recorder is not None:
                self.recorder.payload("status", "", status)
