"""The daemon's decisions, without I/O: what to plan, what to send, what to say in the status.

:class:`ControllerCore` takes raw MQTT messages (:meth:`on_message`), the wall clock
(:meth:`tick`) and finished plans (:meth:`on_schedule`), and queues publications for the
service to send (:meth:`drain`).  It plans on plant time, taken from telemetry timestamps;
the wall clock only watches for a silent plant.  Every setpoint goes through the
:class:`~controller.safety.SafetyLayer`.  The fallback policy (docs/operations.md):

========================  ==================================================================
stale asset               the asset is unknown: a line is held at nominal by the planner, a
                          BESS is left out of the plan and sent idle, a renewable plant adds
                          nothing to the P10; status ``degraded``; re-plan at once
plant silent (wall)       setpoints move towards safe values within ramp limits, at a plant
                          time extrapolated from the last telemetry; status ``fallback``
solver failure / timeout  the fallback plan (nominal current, BESS idle, captive holding);
                          status ``fallback`` with the solver's reason
clock jump                the jump is not integrated, ramp references and forecasters
                          start again, re-plan at once; status ``degraded`` for one cycle
state file unreadable     start from nominal assumptions; status ``degraded`` for a cycle
mode ``hold``/``manual``  last setpoints held / operator setpoints, through hard and ramp
                          limits; status ``manual``
========================  ==================================================================
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from typing import Final, Protocol

import msgspec
import numpy as np

from controller.config import ControllerSection
from controller.daemon.ingest import Ingest
from controller.daemon.persist import SavedState, plan_message
from controller.planner.types import (
    PlannerConfig,
    PlantState,
    Schedule,
    SolveStatus,
)
from controller.safety import Command, Key, SafetyLayer
from controller.site import SiteModel
from controller.state import StateTracker
from controller.supply import SupplyForecaster
from forecasting.types import QuantileForecast
from wire import (
    BessTelemetry,
    CaptiveTelemetry,
    ControllerState,
    ControllerStatus,
    GridTelemetry,
    Mode,
    ModeCommand,
    PlantAlarm,
    PotlineTelemetry,
    RenewableTelemetry,
    Source,
    Topics,
    WeatherForecast,
    encode,
)

log = logging.getLogger(__name__)

MAX_STATE_AGE_S: Final = 86_400.0
"""A state file older than this (plant time) is not resumed: its heat budget means nothing."""
BACKWARD_TOLERANCE_WALL_S: Final = 2.0
"""Telemetry may arrive this late (wall time, scaled by the plant's speed) without being a
clock jump back."""
MIN_REPLAN_FRAC: Final = 0.25
"""Early re-plans are at least this share of a cycle apart."""
MAX_FORECASTERS_AGE_S: Final = 14 * 86_400.0
"""Forecasters saved longer ago than this (plant time) are not resumed: their residual pools
describe another season."""
SLOW_SOLVE_FRAC: Final = 0.5
"""A solve that takes more than this share of the solver's time limit is warned about: the
next, a little harder, may end in the fallback plan."""

TELEMETRY_KINDS: Final = ("potline", "bess", "captive", "renewable", "grid")


class Recorder(Protocol):
    """Where the core reports what it heard, sent, planned and did (the time-series log)."""

    def payload(self, kind: str, asset: str, payload: msgspec.Struct) -> None: ...

    def plan(self, schedule: Schedule, state: PlantState) -> None: ...

    def event(
        self, kind: str, ts_s: float, *, asset: str = "", code: str = "", message: str = ""
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class Publication:
    topic: str
    payload: bytes
    qos: int
    retain: bool = False


@dataclass(frozen=True)
class PlanJob:
    """Everything the solver needs, captured on the event loop (the solver runs off it)."""

    now_s: float
    site: SiteModel
    state: PlantState
    forecast: QuantileForecast
    config: PlannerConfig
    why: str


class PlantClock:
    """Plant time from telemetry timestamps, and an estimate of its speed against the wall."""

    def __init__(self) -> None:
        self.now_s: float | None = None
        self.wall_at_now_s = 0.0
        self.speed = 1.0
        self._anchor: tuple[float, float] | None = None  # (wall, plant) at the window start

    def extrapolated_s(self, wall_s: float) -> float | None:
        if self.now_s is None:
            return None
        return self.now_s + max(wall_s - self.wall_at_now_s, 0.0) * self.speed

    def advance(self, ts: float, wall_s: float) -> None:
        if self.now_s is None or ts > self.now_s:
            self.now_s, self.wall_at_now_s = ts, wall_s
        if self._anchor is None:
            self._anchor = (wall_s, ts)
        elif wall_s - self._anchor[0] >= 2.0:
            rate = (ts - self._anchor[1]) / (wall_s - self._anchor[0])
            if rate > 0.0:
                self.speed = 0.5 * self.speed + 0.5 * rate if self.speed > 0 else rate
            self._anchor = (wall_s, ts)

    def reset(self, ts: float, wall_s: float) -> None:
        self.now_s, self.wall_at_now_s, self._anchor = ts, wall_s, (wall_s, ts)


class ControllerCore:
    """The daemon's state and decisions.  Pure: times are passed in, output is queued."""

    def __init__(
        self,
        site: SiteModel,
        settings: ControllerSection,
        planner: PlannerConfig,
        topics: Topics,
        *,
        site_name: str,
    ) -> None:
        self.site = site
        self.settings = settings
        self.planner = planner
        self.topics = topics
        self.site_name = site_name
        self.ingest = Ingest(topics)
        self.tracker = StateTracker(site, stale_after_s=settings.stale_after_s)
        self.supply = SupplyForecaster(site)
        self.safety = SafetyLayer(site, validity_s=settings.validity_s, topics=topics)
        self.clock = PlantClock()
        self.cycle_s = settings.cycle_min * 60.0
        self.mode = ModeCommand(ts=0.0, mode=Mode.AUTO)
        self.plan: Schedule | None = None
        self.plans_made = 0
        self.fallback_plans = 0
        self.last_solve_ms = 0.0
        self._slow_solves = False
        self.setpoints_sent = 0
        self.alarms: dict[str, int] = {}
        self._seen: dict[tuple[str, str], float] = {}
        self._stale: set[tuple[str, str]] = set()
        self._last_message_wall_s: float | None = None
        self._silent = False
        self._next_plan_s: float | None = None
        self._replan_why = ""
        self._last_job_s: float | None = None
        self._next_dispatch_s: float | None = None
        self._notices: dict[str, float] = {}
        """Transient reasons → plant time until which they show in the status."""
        self._pending_restore: SavedState | None = None
        self._forecasters_saved_ts: float | None = None
        """Set while restored forecasters wait for the first telemetry to check their age."""
        self._last_weather: WeatherForecast | None = None
        self._held: dict[Key, float] = {}
        self._outbox: list[Publication] = []
        self.recorder: Recorder | None = None
        self._last_status: ControllerStatus | None = None
        self._plan_failure = ""
        self._valid_until_s = 0.0
        """When the last setpoints sent expire (the plant then returns to safe defaults)."""
        self.dirty = False
        """Setpoints went out since the last :meth:`snapshot`: the state file is behind."""

    # --- inputs ---------------------------------------------------------------------------

    def on_message(self, topic: str, data: bytes | bytearray, wall_s: float) -> None:
        """One message from the broker: validated at the edge, then taken in."""
        decoded = self.ingest.decode(topic, data)
        if decoded is None:
            return
        kind, asset, payload = decoded.topic.kind, decoded.topic.asset, decoded.payload
        if self.recorder is not None:
            self.recorder.payload(kind, asset, payload)
        if kind == "mode" and isinstance(payload, ModeCommand):
            self.set_mode(payload)
            return
        if isinstance(payload, WeatherForecast):
            if asset == self.site_name:
                self.supply.observe_weather(payload)
                self._last_weather = payload
            return
        if isinstance(payload, PlantAlarm):
            self.alarms[payload.code] = self.alarms.get(payload.code, 0) + 1
            log.warning("plant alarm %s on %s: %s", payload.code, payload.asset, payload.message)
            return
        if kind not in TELEMETRY_KINDS:
            return  # per-pot voltages, other controllers' commands and status: not ours to use
        ts = getattr(payload, "ts", 0.0)
        self._last_message_wall_s = wall_s
        if self._silent:
            self._silent = False
            log.info("telemetry is back after a silence")
            self._event("recovery", "telemetry_back", "telemetry is back after a silence")
            self._request_plan("telemetry back after a silence")
        self._check_clock(ts, wall_s)
        self.clock.advance(ts, wall_s)
        if self._pending_restore is not None:
            self._resume(self._pending_restore, ts)
        if self._forecasters_saved_ts is not None:
            self._check_forecasters(self._forecasters_saved_ts, ts)
        self._seen[kind, asset] = max(ts, self._seen.get((kind, asset), ts))
        self.tracker.observe_telemetry(kind, asset, payload)
        if isinstance(payload, PotlineTelemetry):
            self.safety.observe("potline", asset, payload.current_ka, ts)
        elif isinstance(payload, BessTelemetry | CaptiveTelemetry):
            self.safety.observe(kind, asset, payload.power_mw, ts)
        elif isinstance(payload, RenewableTelemetry):
            self.supply.observe_telemetry(asset, payload)
            self._check_forecast_miss(ts)
        elif isinstance(payload, GridTelemetry) and payload.shed_mw > 0.0:
            self._notice("plant is shedding load", ts + self.cycle_s)

    def set_mode(self, command: ModeCommand) -> None:
        """An operator's mode command (older than the one in force: ignored)."""
        if command.ts < self.mode.ts:
            return
        changed = command.mode != self.mode.mode
        if command.mode == Mode.HOLD and (changed or not self._held):
            self._held = dict(self.safety.last_applied)
        self.mode = command
        log.info("mode %s set by the operator", command.mode.value)
        self._event("mode", command.mode.value, "set by the operator")
        if self.clock.now_s is not None:
            self._dispatch(self.clock.now_s)

    def restore(self, saved: SavedState) -> None:
        """Resume from a state file: the mode now, the lines at the first telemetry."""
        if saved.mode is not None:
            self.mode = saved.mode
        split = (k.split("/", 1) for k in saved.applied)
        self._held = {(p[0], p[1]): saved.applied[f"{p[0]}/{p[1]}"] for p in split if len(p) == 2}
        self._pending_restore = saved

    def restore_forecasters(self, supply: SupplyForecaster, saved_ts: float) -> None:
        """Use forecasters kept from before a restart (their age is checked at the first
        telemetry); the newest weather forecast already received is given to them."""
        self.supply = supply
        self._forecasters_saved_ts = saved_ts
        if self._last_weather is not None:
            self.supply.observe_weather(self._last_weather)

    def forecasters_dump(self) -> bytes | None:
        """The forecasters' learning for :func:`persist.save_forecasters` (None before the
        first telemetry, or while restored ones still wait for it)."""
        now = self.clock.now_s
        if now is None or self._forecasters_saved_ts is not None:
            return None
        return self.supply.dumps(now)

    def _check_forecasters(self, saved_ts: float, ts: float) -> None:
        self._forecasters_saved_ts = None
        age_s = ts - saved_ts
        if 0.0 <= age_s <= MAX_FORECASTERS_AGE_S:
            log.info("forecasters resumed, saved %.0f s before (plant time)", age_s)
            return
        log.warning(
            "forecasters saved %.1f h from now in plant time: starting them afresh", age_s / 3600
        )
        self._fresh_forecasters()
        self.notice(f"forecasters saved {age_s / 3600:.1f} h from now: started afresh")

    def _fresh_forecasters(self) -> None:
        """New forecasters (no history), given the newest weather forecast received."""
        self.supply = SupplyForecaster(self.site)
        if self._last_weather is not None:
            self.supply.observe_weather(self._last_weather)

    def notice(self, reason: str, for_s: float | None = None) -> None:
        """A transient reason for the status (shown for one cycle by default)."""
        now = self.clock.now_s
        self._notices[reason] = math.inf if now is None else now + (for_s or self.cycle_s)

    # --- the clock ------------------------------------------------------------------------

    def tick(self, wall_s: float) -> None:
        """Called often (every ~0.5 s wall): watchdogs, heartbeats and due plans."""
        now = self.clock.now_s
        if now is None:
            return
        last = self._last_message_wall_s
        if not self._silent and last is not None and wall_s - last > self.settings.silence_wall_s:
            self._silent = True
            self._next_dispatch_s = None  # safe setpoints at once
            log.warning(
                "no telemetry for %.0f s (wall clock): setpoints go to safe values",
                wall_s - last,
            )
            self._event("fallback", "plant_silent", f"no telemetry for {wall_s - last:.0f} s")
        if self._silent:
            t = self.clock.extrapolated_s(wall_s) or now
            if self._next_dispatch_s is None or t >= self._next_dispatch_s:
                self._send(self.safety.safe_setpoints(t, plan_id="silent"), t)
            self._emit_status(now)
            return
        self._update_staleness(now)
        if self._next_dispatch_s is not None and now >= self._next_dispatch_s:
            self._dispatch(now)
        self._emit_status(now)

    def take_plan_job(self) -> PlanJob | None:
        """The next planning job when one is due (the service calls it when the solver is free)."""
        now = self.clock.now_s
        if now is None or self._silent or self._pending_restore is not None:
            return None
        if not self._replan_why:
            if self._next_plan_s is None:
                # First plan: once every line has been heard from, or a minute of plant time on.
                first_s = min(self._seen.values())
                heard = all(("potline", ln.name) in self._seen for ln in self.site.lines)
                if not heard and now - first_s < 60.0:
                    return None
                self._replan_why = "first plan"
            elif now >= self._next_plan_s:
                self._replan_why = "cycle"
            else:
                return None
        if (
            self._last_job_s is not None
            and self._replan_why not in ("cycle", "first plan")
            and now - self._last_job_s < MIN_REPLAN_FRAC * self.cycle_s
        ):
            return None
        why, self._replan_why = self._replan_why, ""
        self._last_job_s = now
        # cycles on the grid of plant time (xx:00, xx:15, ...), whatever early plans came between
        self._next_plan_s = (math.floor(now / self.cycle_s) + 1) * self.cycle_s
        stale_bess = {a for k, a in self._stale if k == "bess"}
        site = dataclasses.replace(
            self.site, bess=tuple(b for b in self.site.bess if b.name not in stale_bess)
        )
        step_s = self.planner.step_min * 60.0
        starts_s = now + np.arange(self.planner.steps, dtype=float) * step_s
        unreliable = {a for k, a in self._stale if k == "renewable"}
        forecast = self.supply.forecast(now, starts_s, step_s, unreliable=unreliable)
        return PlanJob(now, site, self.tracker.state(now), forecast, self.planner, why)

    # --- plans ----------------------------------------------------------------------------

    def on_schedule(self, schedule: Schedule) -> None:
        """A finished plan (optimal, best within the time limit, or the fallback plan)."""
        self.plan = schedule
        self._plan_failure = ""
        self.plans_made += 1
        self.last_solve_ms = schedule.solve_ms
        self._watch_solve_time(schedule.solve_ms)
        if schedule.status == SolveStatus.FALLBACK:
            self.fallback_plans += 1
            log.warning("planner fell back to the safe plan: %s", schedule.reason)
            self._event("fallback", "solver", schedule.reason)
        if self.recorder is not None and self.clock.now_s is not None:
            self.recorder.plan(schedule, self.tracker.state(self.clock.now_s))
        self._outbox.append(
            Publication(self.topics.plan(), encode(plan_message(schedule)), 1, True)
        )
        now = self.clock.now_s
        if now is not None and not self._silent:
            self._dispatch(now)

    def _watch_solve_time(self, solve_ms: float) -> None:
        """Warn once when solves come near the time limit, and once when they are fast again."""
        limit_s = self.planner.time_limit_s
        slow = solve_ms > SLOW_SOLVE_FRAC * limit_s * 1e3
        if slow and not self._slow_solves:
            log.warning(
                "planning took %.1f s of the solver's %g s time limit; past it the plan is the "
                "safe fallback. Set [planner] far_step_min = 60, or shorten horizon_h or "
                "lengthen step_min (docs/scheduler.md, Solve time)",
                solve_ms / 1e3,
                limit_s,
            )
        elif not slow and self._slow_solves:
            log.info("planning back within %g s of the time limit", SLOW_SOLVE_FRAC * limit_s)
        self._slow_solves = slow

    def on_plan_failed(self, reason: str) -> None:
        """No plan at all (not even the fallback plan): drop the plan, send safe setpoints."""
        self.plan = None
        self.fallback_plans += 1
        self._plan_failure = reason
        self._event("fallback", "no_plan", reason)
        now = self.clock.now_s
        if now is not None:
            self._send(self.safety.safe_setpoints(now, plan_id="no-plan"), now)

    def status(self) -> ControllerStatus:
        now = self.clock.now_s
        reasons: list[str] = []
        state = ControllerState.RUNNING
        if now is None:
            return ControllerStatus(
                ts=0.0, state=ControllerState.STARTING, reasons=["waiting for telemetry"]
            )
        if self._silent:
            reasons.append(
                f"plant silent: no telemetry for over {self.settings.silence_wall_s:g} s "
                "(wall clock); setpoints going to safe values"
            )
            state = ControllerState.FALLBACK
        if self.plan is None and self._plan_failure:
            reasons.append(f"no plan: {self._plan_failure}; safe setpoints")
            state = ControllerState.FALLBACK
        elif self.plan is None:
            reasons.append("waiting for the first plan")
            state = ControllerState.STARTING if state == ControllerState.RUNNING else state
        elif self.plan.status == SolveStatus.FALLBACK:
            reasons.append(f"planner fallback: {self.plan.reason}")
            state = ControllerState.FALLBACK
        elif self.plan.status == SolveStatus.TIME_LIMIT:
            reasons.append("solver hit its time limit; its best plan is used")
        for kind, asset in sorted(self._stale):
            seen = self._seen.get((kind, asset))
            what = "no telemetry yet" if seen is None else f"no telemetry for {now - seen:.0f} s"
            reasons.append(f"{kind} {asset}: {what}, treated as unknown")
        reasons += [r for r, until in self._notices.items() if now <= until]
        if self.mode.mode != Mode.AUTO and state != ControllerState.FALLBACK:
            reasons.insert(0, f"mode {self.mode.mode.value} set by the operator")
            state = ControllerState.MANUAL
        if state == ControllerState.RUNNING and reasons:
            state = ControllerState.DEGRADED
        last_plan_ts = float(self.plan.times_s[0]) if self.plan is not None else None
        return ControllerStatus(ts=now, state=state, reasons=reasons, last_plan_ts=last_plan_ts)

    @property
    def has_output(self) -> bool:
        return bool(self._outbox)

    def drain(self) -> list[Publication]:
        out, self._outbox = self._outbox, []
        return out

    def snapshot(self, wall_s: float) -> SavedState | None:
        now = self.clock.now_s
        if now is None:
            return self._pending_restore
        self.dirty = False
        return SavedState(
            saved_ts=now,
            saved_wall_s=wall_s,
            lines=self.tracker.snapshot(),
            mode=self.mode if self.mode.ts > 0 or self.mode.mode != Mode.AUTO else None,
            applied={f"{k}/{a}": v for (k, a), v in self.safety.last_applied.items()},
            applied_valid_until_s=self._valid_until_s,
            plan=plan_message(self.plan) if self.plan is not None else None,
        )

    def shutdown_setpoints(self, wall_s: float) -> list[Publication]:
        """Safe setpoints for a stop: every asset towards its safe value, within ramp limits."""
        t = self.clock.extrapolated_s(wall_s)
        if t is None:
            return []
        self._send(self.safety.safe_setpoints(t, plan_id="shutdown"), t)
        return self.drain()

    # --- internals ------------------------------------------------------------------------

    def _dispatch(self, now: float) -> None:
        targets: dict[Key, float]
        if self.mode.mode == Mode.HOLD:
            targets, source, plan_id = dict(self._held), Source.MANUAL, "hold"
        elif self.mode.mode == Mode.MANUAL:
            targets = dict(self._held) | dict(self.safety.last_applied)
            targets |= {("potline", k): v for k, v in self.mode.potline_current_ka.items()}
            targets |= {("bess", k): v for k, v in self.mode.bess_power_mw.items()}
            targets |= {("captive", k): v for k, v in self.mode.captive_power_mw.items()}
            source, plan_id = Source.MANUAL, "manual"
        elif self.plan is None:
            return
        elif now >= float(self.plan.times_s[-1]) + self.plan.step_s:
            # A plan that has run out (the solver is stuck): safe values, not its last step.
            self._send(self.safety.safe_setpoints(now, plan_id="plan-expired"), now)
            return
        else:
            targets = self.safety.from_schedule(self.plan, now)
            fallback = self.plan.status == SolveStatus.FALLBACK
            source = Source.FALLBACK if fallback else Source.MPC
            plan_id = self.plan.plan_id
            for key in self._stale & self.safety.limits.keys():
                safe = self.safety.limits[key].safe_value
                if safe is None:
                    targets.pop(key, None)  # a captive unit holds: send nothing, not a guess
                else:
                    targets[key] = safe
        self._send(self.safety.dispatch(targets, now, source=source, plan_id=plan_id), now)

    def _send(self, commands: list[Command], now: float) -> None:
        for topic, payload in commands:
            self._outbox.append(Publication(topic, encode(payload), 1))
            parsed = self.topics.parse(topic)
            if self.recorder is not None and parsed is not None:
                self.recorder.payload(parsed.kind, parsed.asset, payload)
        self.setpoints_sent += len(commands)
        self.dirty = True
        if commands:
            self._valid_until_s = now + self.settings.validity_s
        for event in self.safety.events:
            log.info(
                "safety: %s %s %s (asked %.3f, sent %.3f)",
                event.kind,
                event.asset,
                event.code,
                event.requested,
                event.applied,
            )
        self.safety.events.clear()
        # Next: a heartbeat, or the plan's next step if that comes first.
        nxt = now + self.settings.heartbeat_s
        if self.plan is not None and self.mode.mode == Mode.AUTO:
            later = self.plan.times_s[self.plan.times_s > now + 1e-6]
            if later.size:
                nxt = min(nxt, float(later[0]))
        self._next_dispatch_s = nxt

    def _update_staleness(self, now: float) -> None:
        expected = (
            [("potline", ln.name) for ln in self.site.lines]
            + [("bess", b.name) for b in self.site.bess]
            + [("captive", c.name) for c in self.site.captive]
            + [("renewable", r) for r in self.site.renewable_capacity_mw]
            + [k for k in self._seen if k[0] == "grid"]
        )
        stale = {
            key
            for key in expected
            if now - self._seen.get(key, self._first_seen_s()) > self.settings.stale_after_s
        }
        for key in stale - self._stale:
            log.warning("%s %s: telemetry stale, treated as unknown", *key)
            self._event("stale", "stale_telemetry", f"{key[0]} {key[1]}", asset=key[1])
        for key in self._stale - stale:
            log.info("%s %s: telemetry back", *key)
            self._event("recovery", "telemetry_back", f"{key[0]} {key[1]}", asset=key[1])
        if stale != self._stale:
            self._stale = stale
            self._request_plan("an asset was lost or came back")

    def _first_seen_s(self) -> float:
        return min(self._seen.values()) if self._seen else math.inf

    def _check_clock(self, ts: float, wall_s: float) -> None:
        now = self.clock.now_s
        expected = self.clock.extrapolated_s(wall_s)
        if now is None or expected is None:
            return
        late_s = max(60.0, BACKWARD_TOLERANCE_WALL_S * self.clock.speed)
        if ts > expected + self.settings.clock_jump_s:
            jump = f"clock jumped forward by {ts - now:.0f} s"
        elif ts < now - late_s:
            jump = f"clock jumped back by {now - ts:.0f} s"
        else:
            return
        # The jump is not time the plant ran: no heat or production is integrated over it, and
        # the forecasters' history, on the old time base, starts again.
        self.tracker.rebase(ts)
        self._fresh_forecasters()
        self._seen = dict.fromkeys(self._seen, ts)
        log.warning("%s: ramp references re-based, re-planning", jump)
        self._event("clock", "jump", jump)
        self.clock.reset(ts, wall_s)
        self.safety.rebase(ts)
        self._next_plan_s = ts
        self._next_dispatch_s = None
        self._notices[jump] = ts + self.cycle_s
        self._request_plan(jump)

    def _check_forecast_miss(self, ts: float) -> None:
        plan = self.plan
        capacity = sum(self.site.renewable_capacity_mw.values())
        if plan is None or capacity <= 0.0 or plan.forecast.p50_mw.size == 0:
            return
        k = int(np.searchsorted(plan.times_s, ts, side="right")) - 1
        if not 0 <= k < plan.forecast.p50_mw.size:
            return
        miss = abs(self.tracker.renewable_available_mw - float(plan.forecast.p50_mw[k]))
        if miss > self.settings.forecast_miss_frac * capacity:
            self._request_plan(f"renewable availability {miss:.0f} MW off the forecast")

    def _request_plan(self, why: str) -> None:
        if not self._replan_why and self._next_plan_s is not None:
            self._replan_why = why

    def _event(self, kind: str, code: str, message: str, *, asset: str = "") -> None:
        if self.recorder is not None:
            ts = self.clock.now_s or 0.0
            self.recorder.event(kind, ts, asset=asset, code=code, message=message)

    def _notice(self, reason: str, until_s: float) -> None:
        self._notices[reason] = until_s

    def _resume(self, saved: SavedState, ts: float) -> None:
        self._pending_restore = None
        age_s = ts - saved.saved_ts
        if not 0.0 <= age_s <= MAX_STATE_AGE_S:
            self.notice(f"state file ignored: saved {age_s / 3600:.1f} h from now in plant time")
            return
        lines = self.tracker.restore(saved.lines, hold_until_s=saved.applied_valid_until_s)
        log.info("resumed %d lines from the state file saved %.0f s ago", len(lines), age_s)
        self._event("restart", "resumed", f"state file saved {age_s:.0f} s before")
        self.notice(f"resumed from the state file saved {age_s:.0f} s before (plant time)")

    def _emit_status(self, now: float) -> None:
        status = self.status()
        last = self._last_status
        if (
            last is None
            or status.state != last.state
            or status.reasons != last.reasons
            or status.last_plan_ts != last.last_plan_ts
            or now - last.ts >= self.settings.heartbeat_s
        ):
            self._last_status = status
            self._outbox.append(Publication(self.topics.status(), encode(status), 1, True))
            if self.recorder is not None:
                self.recorder.payload("status", "", status)
            if last is None or status.state != last.state:
                log.info("status %s: %s", status.state.value, "; ".join(status.reasons) or "ok")

    def force_status(self) -> None:
        """Publish the status at the next tick (after a reconnect: the retained one may be the
        broker's last will)."""
        self._last_status = None
