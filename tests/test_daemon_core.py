"""The daemon's decisions without a broker: edge validation, fallbacks, modes, state file.

Messages go in as the broker would hand them over (topic, bytes); time is passed in, so every
case is exact.  The integration through Mosquitto is in tests/test_daemon.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import logging
import math
import os
import subprocess
import sys
from pathlib import Path

import msgspec
import numpy as np
import pytest

from controller.config import ControllerSection, DaemonConfig
from controller.core.core import ControllerCore
from controller.core.ports import Publication
from controller.core.records import plan_message
from controller.daemon import persist
from controller.daemon.http import serve_http
from controller.daemon.service import Daemon
from controller.planner import scheduler
from controller.planner.types import PlannerConfig, Schedule
from controller.site import BessModel, GridModel, LineModel, RenewableModel, SiteModel
from wire import (
    MAX_PLAN_BYTES,
    BessTelemetry,
    ControllerState,
    ControllerStatus,
    GridTelemetry,
    Mode,
    ModeCommand,
    PlanMessage,
    PlantAlarm,
    PotlineSetpoint,
    PotlineTelemetry,
    PowerSetpoint,
    RenewableKind,
    RenewableTelemetry,
    Source,
    Topics,
    WeatherForecast,
    decode,
    encode,
)
from wire.link import MqttSettings

T0 = 1_780_272_000.0  # 2026-06-01 08:00 local (+08:00)
LINE = LineModel("L1")
SITE = SiteModel(
    name="s",
    lines=(LINE,),
    bess=(BessModel("B1"),),
    grid=GridModel(import_limit_mw=1000.0, export_limit_mw=0.0, carbon_t_per_mwh=0.6),
    renewable=(RenewableModel("pv1", "pv", 300.0),),
    grid_meters=("main",),
    utc_offset_h=8.0,
    latitude_deg=25.0,  # Yunnan: 08:00 local is morning, and PV plausible
    longitude_deg=102.7,
)
TOPICS = Topics("p")
RAMP_KA_PER_S = LINE.ramp_ka_per_h / 3600.0


def _core(**settings: float) -> ControllerCore:
    section = ControllerSection(**settings)  # type: ignore[arg-type]
    return ControllerCore(SITE, section, PlannerConfig(), TOPICS)


def _feed(
    core: ControllerCore,
    ts: float,
    wall_s: float,
    *,
    current_ka: float = 400.0,
    pv_mw: float = 100.0,
    skip: tuple[str, ...] = (),
) -> None:
    messages = {
        "L1": (
            TOPICS.potline("L1"),
            PotlineTelemetry(
                ts=ts, current_ka=current_ka, voltage_v=1600.0, power_mw=480.0, pots_online=300
            ),
        ),
        "B1": (
            TOPICS.bess("B1"),
            BessTelemetry(ts=ts, power_mw=0.0, soc_frac=0.5, energy_capacity_mwh=200.0),
        ),
        "pv1": (
            TOPICS.renewable("pv1"),
            RenewableTelemetry(
                ts=ts, kind=RenewableKind.PV, power_mw=pv_mw, available_mw=pv_mw, capacity_mw=300.0
            ),
        ),
        "grid": (TOPICS.grid("main"), GridTelemetry(ts=ts, power_mw=280.0, frequency_hz=50.0)),
    }
    for name, (topic, payload) in messages.items():
        if name not in skip:
            core.on_message(topic, encode(payload), wall_s)


def _plan(core: ControllerCore) -> None:
    job = core.take_plan_job()
    assert job is not None
    core.on_schedule(scheduler.solve(job.site, job.state, job.forecast, job.config))


def _line_setpoints(pubs: list[Publication]) -> list[PotlineSetpoint]:
    return [
        decode("potline_setpoint", p.payload, PotlineSetpoint)
        for p in pubs
        if p.topic == TOPICS.potline_setpoint("L1")
    ]


def _running_core() -> ControllerCore:
    core = _core()
    _feed(core, T0, 0.0)
    _plan(core)
    core.tick(0.0)
    return core


# --- the edge ---------------------------------------------------------------------------------


def test_bad_messages_are_counted_by_kind_logged_once_and_never_reach_the_state(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="controller.core.ingest")
    core = _core()
    line = TOPICS.potline("L1")
    good = encode(
        PotlineTelemetry(ts=T0, current_ka=400.0, voltage_v=1600.0, power_mw=480.0, pots_online=300)
    )
    bad = [
        (line, b"{not json"),
        (line, b'{"ts": NaN, "current_ka": 400}'),
        (line, good.replace(b'"current_ka":400.0', b'"current_ka":-5.0')),
        (line, good.replace(b'"current_ka":400.0', b'"current_ka":"lots"')),
        (line, b"x" * 70_000),
        ("p/telemetry/unknown/thing", good),
        (line, b'{"ts": 1e300}'),
    ]
    for _ in range(3):
        for topic, data in bad:
            core.on_message(topic, data, 0.0)
    assert dict(core.ingest.rejected) == {
        "malformed_json": 6,
        "out_of_range": 6,
        "schema": 3,
        "oversized": 3,
        "unknown_topic": 3,
    }
    assert core.clock.now_s is None  # nothing reached the state: no plant time yet
    assert core.status().state == ControllerState.STARTING
    warned = [r for r in caplog.records if "dropping bad message" in r.getMessage()]
    assert len(warned) == 5  # once per kind, not once per message


# --- fallbacks ----------------------------------------------------------------------------------


def test_silent_plant_sends_safe_setpoints_within_ramp_and_says_fallback() -> None:
    core = _core(silence_wall_s=30.0)
    _feed(core, T0, 0.0, current_ka=380.0)
    _plan(core)
    core.drain()
    last = core.safety.last_applied["potline", "L1"]
    core.tick(31.0)  # 31 s of wall time without telemetry
    status = core.status()
    assert status.state == ControllerState.FALLBACK
    assert any("plant silent" in r for r in status.reasons)
    sent = _line_setpoints(core.drain())
    assert sent and all(s.source == Source.FALLBACK for s in sent)
    # plant time extrapolated at the speed seen so far (1x): 31 s of ramp towards nominal
    assert abs(sent[-1].current_ka - last) <= RAMP_KA_PER_S * 31.0 + 1e-9
    assert (sent[-1].current_ka - last) * (LINE.nominal_current_ka - last) >= 0.0


def test_a_stale_line_degrades_the_status_and_is_planned_at_nominal() -> None:
    core = _core(stale_after_s=120.0)
    _feed(core, T0, 0.0)
    _plan(core)
    for k in range(1, 6):  # the line's meter goes quiet; the others go on
        _feed(core, T0 + 60.0 * k, float(k), skip=("L1",))
        core.tick(float(k))
    status = core.status()
    assert status.state == ControllerState.DEGRADED
    assert any(r.startswith("potline L1: no telemetry for 300 s") for r in status.reasons)
    job = core.take_plan_job()  # an asset lost: re-plan at once
    assert job is not None and not job.state.lines["L1"].available
    plan = scheduler.solve(job.site, job.state, job.forecast, job.config)
    assert set(plan.line_current_ka["L1"]) == {LINE.nominal_current_ka}


def test_a_stale_bess_is_left_out_of_the_plan_and_sent_idle() -> None:
    core = _core(stale_after_s=120.0)
    _feed(core, T0, 0.0)
    _plan(core)
    for k in range(1, 5):  # stale after 2 min; early re-plans at least 225 s apart
        _feed(core, T0 + 60.0 * k, float(k), skip=("B1",))
        core.tick(float(k))
    job = core.take_plan_job()
    assert job is not None and job.site.bess == ()
    core.on_schedule(scheduler.solve(job.site, job.state, job.forecast, job.config))
    bess = [p for p in core.drain() if p.topic == TOPICS.bess_setpoint("B1")]
    assert bess and decode("bess_setpoint", bess[-1].payload, PowerSetpoint).power_mw == 0.0


def test_a_clock_jump_forward_does_not_count_as_time_to_ramp() -> None:
    core = _running_core()
    core.drain()
    before = core.safety.last_applied["potline", "L1"]
    h_before = core.tracker.state(T0).lines["L1"].heat_budget_mwh
    produced_before = core.tracker.state(T0).lines["L1"].produced_today_t
    jump_s = T0 + 10 * 3600.0
    _feed(core, jump_s, 1.0, current_ka=before)
    assert any("clock jumped forward" in r for r in core.status().reasons)
    # the jump is not time the plant ran: nothing integrated over it
    after = core.tracker.state(jump_s).lines["L1"]
    assert after.heat_budget_mwh == h_before and after.produced_today_t == produced_before
    _plan(core)
    sent = _line_setpoints(core.drain())
    # re-based at the jump: no time has passed in which the line could have ramped
    assert sent and sent[-1].current_ka == pytest.approx(before, abs=1e-9)


def test_a_clock_jump_back_replans_and_dispatches_at_once() -> None:
    """A restarted simulator (plant time hours back) must not stop control until plant time
    catches up with the old plan: the core re-plans on the new time base at once, sends the
    new plan's setpoints, and says why in the status."""
    core = _running_core()
    for k in range(1, 31):  # half an hour on, with a cycle plan at T0 + 900 s
        _feed(core, T0 + 60.0 * k, 0.05 * k)
        core.tick(0.05 * k)
        if (job := core.take_plan_job()) is not None:
            core.on_schedule(scheduler.solve(job.site, job.state, job.forecast, job.config))
    core.drain()
    back_s = T0 - 6 * 3600.0
    _feed(core, back_s, 2.0)
    core.tick(2.0)
    assert any("clock jumped back" in r for r in core.status().reasons)
    job = core.take_plan_job()
    assert job is not None and "clock jumped back" in job.why
    assert job.now_s == back_s
    core.on_schedule(scheduler.solve(job.site, job.state, job.forecast, job.config))
    sent = _line_setpoints(core.drain())
    assert sent and all(sp.ts == back_s for sp in sent)
    assert core.plan is not None and sent[-1].plan_id == core.plan.plan_id
    # and the cycle goes on on the new time base
    _feed(core, back_s + 900.0, 2.5)
    core.tick(2.5)
    assert core.take_plan_job() is not None


def test_the_days_metered_kpis_are_logged_every_plant_hour() -> None:
    """Constant metered powers: each hourly KPI point integrates them exactly over what the
    meters saw (hand-checkable: 200 MW renewable delivered, 280 MW imported, 480 MW of
    pot-line), stamped at the hour; local midnight closes the day and starts the totals
    again.  The plant called pv1 by the feed is run-of-river here: it delivers at night."""
    site = msgspec.structs.replace(SITE, renewable=(RenewableModel("pv1", "hydro", 300.0),))
    core = ControllerCore(site, ControllerSection(), PlannerConfig(), TOPICS)
    recorded: list[tuple[float, dict[str, float]]] = []

    class Kpis:
        def payload(self, *a: object) -> None: ...
        def plan(self, *a: object) -> None: ...
        def event(self, *a: object, **k: object) -> None: ...
        def kpis(self, ts_s: float, table: dict[str, float]) -> None:
            recorded.append((ts_s, table))

    core.recorder = Kpis()
    start_s = T0 + 13 * 3600.0 + 1800.0  # 21:30 local
    for k in range(0, 4 * 60 + 1, 2):  # telemetry every 2 min (as at 1200x), 4 h
        _feed(core, start_s + 60.0 * k, 0.01 * k, pv_mw=200.0)
        core.tick(0.01 * k)
    hours = [start_s + 1800.0 + 3600.0 * h for h in range(4)]  # 22:00 ... 01:00 local
    assert [ts for ts, _ in recorded] == hours
    metered_h = [0.5, 1.5, 2.5, 1.0]  # since the first telemetry; the day closes at 00:00
    for (_, table), h in zip(recorded, metered_h, strict=True):
        assert table["renewable_used_mwh"] == pytest.approx(200.0 * h)
        assert table["renewable_available_mwh"] == pytest.approx(200.0 * h)
        assert table["curtailed_mwh"] == pytest.approx(0.0)
        assert table["grid_import_mwh"] == pytest.approx(280.0 * h)
        assert table["co2_t"] == pytest.approx(280.0 * h * 0.6)
        assert table["site_consumption_mwh"] == pytest.approx(480.0 * h)
        assert table["renewable_share"] == pytest.approx(200.0 / 480.0)
        # Faraday at the metered 400 kA = nominal: on target
        assert table["aluminium_t"] == pytest.approx(LINE.production_t_per_h(400.0) * h)
        assert table["aluminium_target_t"] == pytest.approx(table["aluminium_t"])


def test_plant_alarms_are_logged_once_per_asset_and_code_per_burst_then_hourly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An alarm every plant second for 2 h on L1: one line at the start and one an hour in
    (with the count), not 7,200; another asset's burst has its own line; alarms about assets
    that are not in the site are refused and not counted."""
    core = _running_core()
    caplog.set_level(logging.WARNING, logger="controller.core.alarms")

    def alarm(k: int, asset: str = "L1", message: str = "") -> None:
        a = PlantAlarm(ts=T0 + k, asset=asset, code="load_shed", message=message or f"short {k}")
        core.on_message(TOPICS.alarm(), encode(a), 0.0)

    for k in range(7200):
        alarm(k)
    alarm(7200, asset="B1")
    for k in range(2000):
        alarm(k, asset="L9")  # forged: no such line
    lines = [r.getMessage() for r in caplog.records if r.name == "controller.core.alarms"]
    assert len(lines) == 3, lines
    assert "on L1: short 0" in lines[0]
    assert "3600 more in the last 1.0 h" in lines[1]
    assert "on B1" in lines[2]
    assert core.alarms == {"load_shed": 7201}
    assert core.ingest.rejected == {"unknown_asset": 2000}
    # after a quiet spell (10 min) the next alarm starts a new burst, and says the last's size
    alarm(7200 + 3600)
    assert "the last burst had 7200" in caplog.records[-1].getMessage()


def test_a_ramp_limited_setpoint_is_sent_again_every_minute_until_it_arrives() -> None:
    """Manual 390 kA from 400 kA: the ramp (80 kA/h) allows 1.33 kA a minute, so the core
    sends a setpoint every plant minute, each 1.33 kA closer, until 390 kA is reached; then
    only the heartbeat (5 min) again.  Waiting for the heartbeat would take the line there in
    6.7 kA stairs, a plan's step late."""
    core = _running_core()
    core.drain()
    core.set_mode(ModeCommand(ts=T0, mode=Mode.MANUAL, potline_current_ka={"L1": 390.0}))
    sent = {T0: _line_setpoints(core.drain())[-1].current_ka}
    for k in range(1, 16):
        ts = T0 + 60.0 * k
        _feed(core, ts, 0.05 * k, current_ka=sent[max(sent)])
        core.tick(0.05 * k)
        for sp in _line_setpoints(core.drain()):
            sent[ts] = sp.current_ka
    times = sorted(sent)
    ramping = [t for t in times if sent[t] > 390.0 + 1e-9]
    assert [t - T0 for t in ramping] == [60.0 * k for k in range(len(ramping))]
    steps = np.diff([400.0] + [sent[t] for t in times if t <= ramping[-1] + 60.0])
    assert np.allclose(steps[1:-1], -RAMP_KA_PER_S * 60.0)
    reached = next(t for t in times if sent[t] == pytest.approx(390.0))
    assert reached - T0 == pytest.approx(10.0 / (RAMP_KA_PER_S * 60.0) * 60.0, abs=60.0)
    assert [t - reached for t in times if t > reached] == [300.0]  # then the heartbeat


def test_a_meter_whose_clock_runs_behind_is_late_not_a_clock_jump() -> None:
    """The BESS meter's clock runs 2 min behind the others, at 1 Hz: its messages are late
    telemetry, not jumps back.  (Taken as jumps, each re-based the ramp references 2 min into
    the past and let a line move 100 kA in a minute, and re-planned on every message.)"""
    core = _core()

    def second(k: int) -> None:
        ts = T0 + 1.0 * k
        late = BessTelemetry(ts=ts - 120.0, power_mw=0.0, soc_frac=0.5, energy_capacity_mwh=200)
        core.on_message(TOPICS.bess("B1"), encode(late), 1.0 * k)
        _feed(core, ts, 1.0 * k, skip=("B1",))
        core.tick(1.0 * k)

    second(0)
    _plan(core)
    core.drain()
    core.set_mode(ModeCommand(ts=T0, mode=Mode.MANUAL, potline_current_ka={"L1": 300.0}))
    first = _line_setpoints(core.drain())[-1]
    sent = [first]
    for k in range(1, 121):
        second(k)
        sent += _line_setpoints(core.drain())
    assert not any("clock jumped" in r for r in core.status().reasons)
    assert first.current_ka - sent[-1].current_ka <= RAMP_KA_PER_S * (sent[-1].ts - first.ts)
    assert core.take_plan_job() is None  # no re-plan storm: the cycle is 15 min


def test_a_no_plan_fallback_keeps_ramping_towards_safe_values() -> None:
    core = _core()
    _feed(core, T0, 0.0, current_ka=360.0)
    _plan(core)
    core.tick(0.0)
    core.drain()
    core.on_plan_failed("the solver and its fallback plan both failed")
    sent = _line_setpoints(core.drain())
    for k in range(1, 11):
        _feed(core, T0 + 60.0 * k, 0.05 * k, current_ka=sent[-1].current_ka)
        core.tick(0.05 * k)
        sent += _line_setpoints(core.drain())
    # one setpoint a minute, each a minute's ramp nearer the nominal 400 kA
    assert [sp.ts - T0 for sp in sent] == [60.0 * k for k in range(11)]
    assert sent[-1].current_ka == pytest.approx(360.0 + RAMP_KA_PER_S * 600.0)
    assert {sp.source for sp in sent} == {Source.FALLBACK}


def test_a_ramp_re_send_never_waits_longer_than_the_heartbeat() -> None:
    core = _core(heartbeat_s=20.0, validity_s=60.0, cycle_min=4.0)
    _feed(core, T0, 0.0)
    _plan(core)
    core.tick(0.0)
    core.drain()
    core.set_mode(ModeCommand(ts=T0, mode=Mode.MANUAL, potline_current_ka={"L1": 300.0}))
    sp = _line_setpoints(core.drain())[-1]
    assert core.dispatcher.next_s == T0 + 20.0 < sp.valid_until


def test_a_weather_forecast_whose_series_do_not_fit_its_times_is_dropped() -> None:
    """Retained, it would have killed every restart of the daemon."""
    core = _running_core()
    bad = b'{"ts": %f, "issued_ts": %f, "times": [%f, %f], "ghi_wm2": [500.0]}' % (
        T0,
        T0,
        T0,
        T0 + 3600,
    )
    core.on_message(TOPICS.weather("s"), bad, 1.0)
    assert core.ingest.rejected == {"schema": 1}


def test_a_message_the_core_cannot_use_is_counted_not_fatal(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    core = _running_core()

    def broken(payload: object) -> None:
        raise ValueError("a bug")

    monkeypatch.setattr(core.forecasters, "observe_weather", broken)
    good = WeatherForecast(ts=T0, issued_ts=T0, times=[T0], ghi_wm2=[500.0])
    core.on_message(TOPICS.weather("s"), encode(good), 1.0)
    core.on_message(TOPICS.weather("s"), encode(good), 1.0)
    assert core.ingest.rejected == {"internal_error": 2}
    assert sum("could not be used" in r.getMessage() for r in caplog.records) == 2
    _feed(core, T0 + 60.0, 1.0)  # and the core goes on
    assert core.clock.now_s == T0 + 60.0


def test_a_standby_core_sends_nothing_and_takes_over_from_what_it_measures() -> None:
    core = _core()
    core.set_standby("instance b holds the lease")
    _feed(core, T0, 0.0, current_ka=390.0)
    _plan(core)
    core.tick(0.0)
    assert _line_setpoints(core.drain()) == []
    assert core.status().state == ControllerState.STANDBY
    assert core.status().reasons[0] == "standby: instance b holds the lease"
    _feed(core, T0 + 60.0, 0.1, current_ka=390.0)
    core.set_standby(None)
    core.tick(0.1)
    sent = _line_setpoints(core.drain())
    assert sent and sent[0].ts == T0 + 60.0
    # from the measured 390 kA, a minute's ramp at most, whatever this core sent before
    assert abs(sent[0].current_ka - 390.0) <= RAMP_KA_PER_S * 60.0 + 1e-9
    assert core.status().state != ControllerState.STANDBY


def test_a_standby_records_no_plans_nor_kpis_and_records_the_plan_in_force_on_taking_over() -> None:
    """Two instances log to one bucket: a standby's plans, states and day-to-date KPIs (from
    a later start: smaller) would land in the active one's series."""
    plans: list[str] = []
    kpis: list[float] = []
    statuses: list[str] = []

    class Recorded:
        def payload(self, kind: str, asset: str, payload: msgspec.Struct) -> None:
            if isinstance(payload, ControllerStatus):
                statuses.append(payload.state.value)

        def plan(self, schedule: Schedule, state: object) -> None:
            plans.append(schedule.plan_id)

        def event(self, *a: object, **k: object) -> None: ...

        def kpis(self, ts_s: float, table: dict[str, float]) -> None:
            kpis.append(ts_s)

    core = _core()
    core.recorder = Recorded()
    core.set_standby("instance b holds the lease")
    start_s = T0 + 1800.0
    for k in range(0, 91, 2):  # 1.5 h: a plant hour closes, plans are made
        _feed(core, start_s + 60.0 * k, 0.01 * k)
        _plan_now(core)
        core.tick(0.01 * k)
    assert core.plans_made > 0
    assert plans == [] and kpis == []
    assert "standby" in statuses  # its own status, tagged with its instance, is recorded
    in_force = core.plan
    assert in_force is not None
    core.set_standby(None)
    assert plans == [in_force.plan_id]  # what its first setpoints will name
    for k in range(92, 181, 2):
        _feed(core, start_s + 60.0 * k, 0.01 * k)
        core.tick(0.01 * k)
    # the hour that closed while it was standby is not its to record; later ones are
    assert kpis and T0 + 3600.0 not in kpis and kpis[-1] >= T0 + 3 * 3600.0


def _plan_now(core: ControllerCore) -> None:
    job = core.take_plan_job()
    if job is not None:
        core.on_schedule(scheduler.solve(job.site, job.state, job.forecast, job.config))


class _Payloads:
    """A recorder that keeps the payloads the core records (what goes to the time series)."""

    def __init__(self) -> None:
        self.seen: list[msgspec.Struct] = []

    def payload(self, kind: str, asset: str, payload: msgspec.Struct) -> None:
        self.seen.append(payload)

    def plan(self, schedule: object, state: object) -> None:
        pass

    def event(self, kind: str, ts_s: float, **_: str) -> None:
        pass

    def kpis(self, ts_s: float, table: dict[str, float]) -> None:
        pass


def test_the_cores_setpoints_and_status_carry_its_instance_from_the_start() -> None:
    core = ControllerCore(SITE, ControllerSection(), PlannerConfig(), TOPICS, instance="ems-a")
    recorded = _Payloads()
    core.recorder = recorded
    assert core.status().instance == "ems-a"  # before any telemetry
    _feed(core, T0, 0.0)
    _plan(core)
    core.tick(0.0)
    out = core.drain() + core.shutdown_setpoints(1.0)
    kinds = {TOPICS.parse(p.topic).kind for p in out}  # type: ignore[union-attr]
    assert {"potline_setpoint", "bess_setpoint", "status"} <= kinds
    for pub in out:
        parsed = TOPICS.parse(pub.topic)
        assert parsed is not None
        if parsed.kind != "plan":
            assert decode(parsed.kind, pub.payload).instance == "ems-a"  # type: ignore[attr-defined]
    sent = [p for p in recorded.seen if isinstance(p, PotlineSetpoint | PowerSetpoint)]
    assert sent and {p.instance for p in sent} == {"ems-a"}
    # the backtest's core names no instance, as the contract's default says
    assert all(p.instance == "" for p in _line_setpoints(_running_core().drain()))


def test_a_lasting_condition_shows_in_the_status_until_cleared() -> None:
    core = _running_core()
    core.condition("setpoints", "broker refuses setpoints: not authorised", uncontrolled=True)
    status = core.status()
    assert status.state == ControllerState.FALLBACK
    assert "broker refuses setpoints: not authorised" in status.reasons
    core.condition("state_file", "cannot write the state file: disk full")
    core.condition("setpoints", None)
    status = core.status()
    assert status.state == ControllerState.DEGRADED
    assert status.reasons == ["cannot write the state file: disk full"]


def test_solver_failures_end_in_safe_setpoints_with_the_reason() -> None:
    core = _running_core()
    core.drain()
    job_state = core.tracker.state(T0)
    fallback = scheduler.fallback(
        SITE,
        job_state,
        core.plan.forecast,
        PlannerConfig(),
        "solver: time limit",  # type: ignore[union-attr]
    )
    core.on_schedule(fallback)
    status = core.status()
    assert status.state == ControllerState.FALLBACK
    assert "planner fallback: solver: time limit" in status.reasons
    assert {s.source for s in _line_setpoints(core.drain())} == {Source.FALLBACK}
    core.on_plan_failed("both failed")
    assert core.status().state == ControllerState.FALLBACK
    assert {s.plan_id for s in _line_setpoints(core.drain())} == {"no-plan"}


# --- operator modes -------------------------------------------------------------------------------


def test_hold_keeps_the_setpoints_manual_goes_through_hard_limits_old_commands_lose() -> None:
    core = _running_core()
    core.drain()
    held = core.safety.last_applied["potline", "L1"]
    core.set_mode(ModeCommand(ts=10.0, mode=Mode.HOLD))
    sent = _line_setpoints(core.drain())
    assert sent[-1].current_ka == held and sent[-1].source == Source.MANUAL
    assert core.status().state == ControllerState.MANUAL
    core.set_mode(ModeCommand(ts=20.0, mode=Mode.MANUAL, potline_current_ka={"L1": 900.0}))
    _feed(core, T0 + 3600.0, 3600.0)  # an hour of plant time, at speed 1
    core.tick(3600.0)
    sent = _line_setpoints(core.drain())
    assert sent[-1].current_ka == LINE.hard_max_ka  # asked 900 kA, an hour later: at the limit
    core.set_mode(ModeCommand(ts=15.0, mode=Mode.AUTO))  # older than the one in force
    assert core.mode.mode == Mode.MANUAL


# --- what survives a restart ----------------------------------------------------------------------


def test_state_file_round_trip_and_resume_at_the_first_telemetry(tmp_path: Path) -> None:
    core = _running_core()
    for k in range(1, 30):  # half an hour at the planned current
        _feed(core, T0 + 60.0 * k, float(k), current_ka=420.0)
    core.set_mode(ModeCommand(ts=5.0, mode=Mode.HOLD))
    saved = core.snapshot(30.0)
    assert saved is not None
    path = tmp_path / "state.json"
    persist.save(path, saved)
    loaded = persist.load(path)
    assert loaded.state == saved and loaded.problem == ""
    fresh = _core()
    fresh.restore(loaded.state)
    assert fresh.mode.mode == Mode.HOLD  # at once
    _feed(fresh, T0 + 60.0 * 30, 0.0, current_ka=420.0)  # the lines at the first telemetry
    h_old = core.tracker.state(T0 + 1800.0).lines["L1"].heat_budget_mwh
    h_new = fresh.tracker.state(T0 + 1800.0).lines["L1"].heat_budget_mwh
    assert h_old != 0.0 and h_new == pytest.approx(h_old, rel=1e-9)
    assert any("resumed from the state file" in r for r in fresh.status().reasons)


def test_temporaries_left_by_a_killed_writer_are_removed_and_no_others(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    state.write_text("{}")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    left = tmp_path / f".state.json.{dead.pid}.tmp"  # a writer killed mid-write
    mine = tmp_path / f".state.json.{os.getpid()}.tmp"  # this process's write in progress
    alive = tmp_path / f".state.json.{os.getppid()}.tmp"  # another live process's
    other = tmp_path / ".other.json.1.tmp"
    for f in (left, mine, alive, other):
        f.write_text("half")
    assert persist.remove_stale_temporaries(state) == [left]
    assert not left.exists() and mine.exists() and alive.exists() and other.exists()
    assert state.read_text() == "{}"


def test_an_unreadable_state_file_is_moved_aside_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(b'{"version": 1, "saved_ts": "yesterday"')
    loaded = persist.load(path)
    assert loaded.state is None and "unreadable" in loaded.problem
    assert not path.exists() and len(list(tmp_path.glob("state.json.unreadable-*"))) == 1
    assert persist.load(tmp_path / "missing.json") == persist.Loaded(None, "")


def test_a_state_file_from_another_day_is_not_resumed() -> None:
    core = _running_core()
    saved = core.snapshot(0.0)
    assert saved is not None
    fresh = _core()
    fresh.restore(saved)
    _feed(fresh, T0 + 2 * 86_400.0, 0.0)
    assert any("state file ignored" in r for r in fresh.status().reasons)
    assert fresh.tracker.state(T0 + 2 * 86_400.0).lines["L1"].heat_budget_mwh == 0.0


def test_the_plan_message_round_trips_and_a_48h_5min_plan_fits() -> None:
    core = _running_core()
    assert core.plan is not None
    message = plan_message(core.plan)
    assert decode("plan", encode(message), PlanMessage) == message
    cfg = PlannerConfig(horizon_h=48.0, step_min=5.0, time_limit_s=30.0)
    state = core.tracker.state(T0)
    job = core.take_plan_job()
    big = scheduler.fallback(SITE, state, job.forecast if job else core.plan.forecast, cfg, "x")
    assert len(encode(plan_message(big))) < MAX_PLAN_BYTES


def test_solves_near_the_time_limit_are_warned_about_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The default time limit is 10 s: 6 s is slow (> half), 2 s is not.  One warning per slow
    spell, naming the remedy, and one line when solves are fast again."""
    core = _running_core()
    assert core.plan is not None
    caplog.set_level(logging.INFO, logger="controller.core.plans")
    state = core.tracker.state(T0)
    for solve_ms in (2_000.0, 6_000.0, 7_000.0, 2_000.0, 6_000.0):
        plan = scheduler.fallback(SITE, state, core.plan.forecast, PlannerConfig(), "x")
        core.on_schedule(dataclasses.replace(plan, solve_ms=solve_ms))
    messages = [r.getMessage() for r in caplog.records if r.name == "controller.core.plans"]
    slow = [m for m in messages if "of the solver's 10 s time limit" in m]
    assert len(slow) == 2
    assert "6.0 s" in slow[0] and "far_step_min" in slow[0]
    assert sum("planning back within 5 s" in m for m in messages) == 1


def test_a_plan_on_a_non_uniform_grid_tells_each_steps_length() -> None:
    """With ``far_step_min`` the steps grow beyond ``near_h``: the message carries each step's
    length, and the steps tile the horizon (so a reader need not assume ``step_s``)."""
    core = _running_core()
    assert core.plan is not None
    cfg = PlannerConfig(horizon_h=48.0, step_min=15.0, far_step_min=60.0, near_h=6.0)
    state = core.tracker.state(T0)
    plan = scheduler.solve(SITE, state, core.plan.forecast, cfg)
    message = decode("plan", encode(plan_message(plan)), PlanMessage)
    lengths = message.step_lengths_s
    assert len(lengths) == len(message.times) < 48 * 4
    assert lengths[0] == message.step_s == 900.0
    assert max(lengths) == 3600.0
    ends = [t + d for t, d in zip(message.times, lengths, strict=True)]
    assert ends[:-1] == message.times[1:]
    assert ends[-1] - message.times[0] == pytest.approx(48 * 3600.0)


# --- /metrics and /healthz ----------------------------------------------------------------------


async def _get(port: int, path: str) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    data = await reader.read()
    writer.close()
    head, _, body = data.decode().partition("\r\n\r\n")
    return int(head.split()[1]), body


async def test_metrics_and_healthz_report_what_the_core_counts(tmp_path: Path) -> None:
    config = DaemonConfig(controller=ControllerSection(state_file=str(tmp_path / "s.json")))
    daemon = Daemon(config, SITE)
    daemon.core.on_message("smelter/telemetry/potline/L1", b"{oops", 0.0)
    daemon.core.on_message("smelter/telemetry/potline/L1", b"{oops", 0.0)
    server = await serve_http("127.0.0.1", 0, daemon)
    port = server.port
    try:
        code, body = await _get(port, "/metrics")
        assert code == 200
        assert 'smelter_messages_rejected_total{kind="malformed_json"} 2.0' in body
        assert 'smelter_controller_state{state="starting"} 1.0' in body
        assert "smelter_mqtt_incoming_dropped_total " in body
        code, body = await _get(port, "/healthz")
        assert code == 200 and msgspec.json.decode(body)["state"] == "starting"
        assert (await _get(port, "/nope"))[0] == 404
    finally:
        await server.close()


async def test_a_stop_whose_setpoints_cannot_go_out_says_what_it_leaves(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A broker that takes nothing (connected, but no publish returns): the safe-setpoint
    stage runs out of time and logs what stays unsent, by kind, instead of nothing."""
    config = DaemonConfig(
        mqtt=MqttSettings(topic_prefix=TOPICS.prefix),
        controller=ControllerSection(state_file=str(tmp_path / "s.json")),
    )
    daemon = Daemon(config, SITE)
    _feed(daemon.core, T0, 0.0)
    daemon.stats.connected = True
    for pub in daemon.core.shutdown_setpoints(0.0):
        daemon.link.queue(pub)
    daemon.link.queue(Publication(TOPICS.status(), b"{}", 1, True))
    caplog.set_level(logging.WARNING, logger="controller.daemon.session")
    await daemon.link.wait_sent(0.1)
    assert [r.getMessage() for r in caplog.records] == [
        "stopping: after 0.1 s, 2 setpoints, 1 status unsent"  # L1 and B1, and the status
    ]
    daemon.stats.connected = False
    await daemon.link.wait_sent(0.1)
    assert "broker not connected: 2 setpoints, 1 status unsent" in caplog.records[-1].getMessage()


# --- the disk fills up -------------------------------------------------------------------------


def _daemon_with_telemetry(state_file: Path) -> Daemon:
    config = DaemonConfig(
        mqtt=MqttSettings(topic_prefix=TOPICS.prefix),
        controller=ControllerSection(state_file=str(state_file)),
    )
    daemon = Daemon(config, SITE)
    _feed(daemon.core, T0, 0.0)
    _plan(daemon.core)
    return daemon


async def test_a_full_disk_is_logged_once_said_in_the_status_and_leaves_no_temporary_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    daemon = _daemon_with_telemetry(tmp_path / "state.json")
    await daemon._save_state(0.0)
    await daemon._save_forecasters()
    state, forecasters = daemon.state_path, daemon.forecasters_path
    before = state.read_bytes(), forecasters.read_bytes()

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    caplog.set_level(logging.INFO, logger="controller.daemon.troubles")
    monkeypatch.setattr(os, "fsync", full)  # every write now fails as a full disk does
    for _ in range(5):
        await daemon._save_state(1.0)
        await daemon._save_forecasters()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([state.name, forecasters.name])
    assert (state.read_bytes(), forecasters.read_bytes()) == before  # the last saves, whole
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [
        f"cannot write the state file {state}: OSError: No space left on device; a restart "
        "would resume from the last save; retrying at every save",
        f"cannot write the forecasters to {forecasters}: OSError: No space left on device; a "
        "restart would forecast from the last save; retrying every 300 s",
    ]
    status = daemon.core.status()
    assert status.state == ControllerState.DEGRADED
    assert f"cannot write the state file {state}: OSError: No space left on device" in (
        status.reasons
    )
    assert daemon.state_writes.failures == daemon.forecaster_writes.failures == 5
    # /metrics counts the attempts
    server = await serve_http("127.0.0.1", 0, daemon)
    try:
        _, body = await _get(server.port, "/metrics")
    finally:
        await server.close()
    assert 'smelter_file_write_failures_total{file="state"} 5.0' in body

    monkeypatch.undo()  # space again
    caplog.clear()
    await daemon._save_state(2.0)
    await daemon._save_forecasters()
    recovered = [r.getMessage() for r in caplog.records]
    assert len(recovered) == 2
    assert recovered[0].startswith("the state file is written again after ")
    assert recovered[0].endswith(" s (5 failed attempts)")
    assert recovered[1].startswith("the forecasters file is written again after ")
    assert persist.load(state).state is not None
    assert not any("cannot write" in r for r in daemon.core.status().reasons)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([state.name, forecasters.name])


async def test_a_state_file_whose_directory_became_a_file_is_a_lasting_trouble_too(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A real failing write, no monkeypatch: the state directory replaced by a file."""
    directory = tmp_path / "state"
    daemon = _daemon_with_telemetry(directory / "s.json")
    directory.write_text("not a directory")
    caplog.set_level(logging.ERROR, logger="controller.daemon.troubles")
    for _ in range(3):
        await daemon._save_state(0.0)
    assert len(caplog.records) == 1
    assert "cannot write the state file" in caplog.records[0].getMessage()
    assert any(r.startswith("cannot write the state file") for r in daemon.core.status().reasons)
    directory.unlink()
    await daemon._save_state(1.0)
    assert persist.load(directory / "s.json").state is not None
    assert not any(r.startswith("cannot write") for r in daemon.core.status().reasons)


# --- the forecasters across a restart ----------------------------------------------------------


def _learned_core(hours: float = 30.0) -> tuple[ControllerCore, float]:
    """A core whose PV forecaster has seen ``hours`` of a clear-sky-like day curve."""
    core = _core()
    ts = T0
    for k in range(int(hours * 60)):
        ts = T0 + 60.0 * k
        local_h = (ts / 3600.0 + 8.0) % 24.0
        mw = 280.0 * max(0.0, math.sin((local_h - 6.0) / 12.0 * math.pi))
        payload = RenewableTelemetry(
            ts=ts, kind=RenewableKind.PV, power_mw=mw, available_mw=mw, capacity_mw=300.0
        )
        core.on_message(TOPICS.renewable("pv1"), encode(payload), 60.0 * k / 1200.0)
    return core, ts


def _forecast_p50(core: ControllerCore, ts: float) -> np.ndarray:
    times = ts + 900.0 * np.arange(1, 97)
    return core.supply.forecast(ts, times, 900.0).p50_mw


def test_forecasters_survive_a_restart(tmp_path: Path) -> None:
    """Saved, read back by a new core: the same forecast as before the restart, where a cold
    core's is another."""
    core, ts = _learned_core()
    path = persist.forecasters_path(tmp_path / "state.json")
    data = core.forecasters_dump()
    assert data is not None
    persist.save_forecasters(path, data)
    assert path.stat().st_mode & 0o777 == 0o600
    kept = persist.load_forecasters(path, SITE)
    assert kept.problem == "" and kept.supply is not None and kept.saved_ts == ts
    fresh = _core()
    fresh.restore_forecasters(kept.supply, kept.saved_ts)
    np.testing.assert_array_equal(_forecast_p50(fresh, ts), _forecast_p50(core, ts))
    assert not np.allclose(_forecast_p50(_core(), ts), _forecast_p50(core, ts), atol=1.0)
    _feed(fresh, ts + 60.0, 100.0)  # the age check at the first telemetry: 60 s, kept
    assert fresh.supply is kept.supply
    assert fresh.forecasters_dump() is not None


def test_forecasters_that_cannot_be_trusted_are_not_loaded(tmp_path: Path) -> None:
    core, _ = _learned_core(hours=2.0)
    data = core.forecasters_dump()
    assert data is not None
    path = tmp_path / "state.json.forecasters"
    persist.save_forecasters(path, data)
    path.chmod(0o666)  # anyone may write it: a pickle from anyone runs their code
    kept = persist.load_forecasters(path, SITE)
    assert kept.supply is None and "another user" in kept.problem and path.exists()
    path.chmod(0o600)
    other = msgspec.structs.replace(SITE, renewable=(RenewableModel("pv1", "pv", 400.0),))
    kept = persist.load_forecasters(path, other)
    assert kept.supply is None and "other renewable plants" in kept.problem
    assert not path.exists() and list(tmp_path.glob("state.json.forecasters.unreadable-*"))
    persist.save_forecasters(path, b"\x80\x05not a pickle")
    kept = persist.load_forecasters(path, SITE)
    assert kept.supply is None and "not a forecaster dump" in kept.problem
    assert persist.load_forecasters(tmp_path / "none", SITE) == persist.LoadedForecasters(None)


def test_forecasters_from_another_season_start_afresh() -> None:
    core, ts = _learned_core(hours=2.0)
    restored = _core()
    restored.restore_forecasters(core.supply, ts - 30 * 86_400.0)
    _feed(restored, ts, 0.0)
    assert restored.supply is not core.supply
    assert any("started afresh" in r for r in restored.status().reasons)
