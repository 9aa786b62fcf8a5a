"""Time and trust in the core: what the broker says is judged against the site description
and the plant clock before it is believed (docs/reliability.md).

Each test is one of the cases of docs/reliability.md's fault table, at the core, with messages
as the broker hands them over; the cases that involve the broker or the daemon process are in
tests/test_daemon.py and tests/test_daemon_trust.py.
"""

from __future__ import annotations

import json
import logging
import math

import msgspec
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_daemon_core import (
    LINE,
    RAMP_KA_PER_S,
    SITE,
    T0,
    TOPICS,
    _core,
    _feed,
    _line_setpoints,
    _plan,
    _running_core,
)

from controller.config import ControllerSection, DaemonConfig
from controller.core.clock import PlantClock
from controller.core.core import ControllerCore
from controller.core.streams import Streams, Verdict
from controller.daemon.service import Daemon
from controller.planner import scheduler
from controller.planner.types import PlannerConfig
from wire import (
    PAYLOAD_TYPES,
    BessTelemetry,
    ControllerState,
    GridTelemetry,
    Mode,
    ModeCommand,
    PotlineSetpoint,
    PotlineTelemetry,
    PowerSetpoint,
    RenewableKind,
    RenewableTelemetry,
    WeatherForecast,
    decode,
    encode,
)
from wire.link import MqttSettings

# --- 3. operator lock-out ---------------------------------------------------------------------


def test_a_command_from_the_far_future_is_refused_and_later_real_ones_work(
    caplog: pytest.LogCaptureFixture,
) -> None:
    core = _running_core()
    core.drain()
    forged = ModeCommand(ts=99_999_999_999.0, mode=Mode.HOLD)
    core.on_message(TOPICS.mode(), encode(forged), 0.1)
    core.on_message(TOPICS.mode(), encode(forged), 0.1)
    assert core.mode.mode == Mode.AUTO
    assert core.ingest.rejected == {"bad_ts": 2}
    assert sum("bad_ts" in r.getMessage() for r in caplog.records) == 1  # logged once
    real = ModeCommand(ts=T0, mode=Mode.HOLD)
    core.on_message(TOPICS.mode(), encode(real), 0.1)
    assert core.mode.mode == Mode.HOLD
    snapshot = core.snapshot(0.1)
    assert snapshot is not None and snapshot.mode == real  # the forged one was never kept


def test_a_mode_kept_from_the_far_future_is_dropped_at_the_start() -> None:
    """A state file written by an older daemon that accepted a far-future hold."""
    old = _running_core()
    old.set_mode(ModeCommand(ts=99_999_999_999.0, mode=Mode.HOLD))
    saved = old.snapshot(0.0)
    assert saved is not None and saved.mode is not None
    core = _core()
    core.restore(saved)
    _feed(core, T0 + 60.0, 0.0)
    core.tick(0.0)
    assert core.mode.mode == Mode.AUTO
    core.on_message(TOPICS.mode(), encode(ModeCommand(ts=T0 + 60.0, mode=Mode.HOLD)), 0.1)
    assert core.mode.mode == Mode.HOLD  # a real command is heard again


class _Events:
    """A recorder that keeps the core's events."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []

    def payload(self, kind: str, asset: str, payload: object) -> None:
        pass

    def plan(self, schedule: object, state: object) -> None:
        pass

    def event(
        self, kind: str, ts_s: float, *, asset: str = "", code: str = "", message: str = ""
    ) -> None:
        self.seen.append((kind, code, message))

    def kpis(self, ts_s: float, table: dict[str, float]) -> None:
        pass


def test_a_kept_mode_naming_an_asset_the_site_no_longer_has_is_dropped_at_the_start(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The site file lost line L9 between two runs; the state file still commands it."""
    old = _running_core()
    saved = old.snapshot(0.0)
    assert saved is not None
    manual = ModeCommand(ts=T0, mode=Mode.MANUAL, potline_current_ka={"L1": 390.0, "L9": 300.0})
    core = _core()
    events = _Events()
    core.recorder = events
    core.restore(msgspec.structs.replace(saved, mode=manual))
    assert core.mode.mode == Mode.MANUAL  # until plant time is known
    _feed(core, T0 + 60.0, 0.0)
    core.tick(0.0)
    assert core.mode.mode == Mode.AUTO
    assert ("mode", "dropped", "mode command for potline L9, not in the site") in events.seen
    assert sum("L9" in r.getMessage() for r in caplog.records) == 1
    snapshot = core.snapshot(0.1)
    assert snapshot is not None and snapshot.mode is None  # not kept again
    core.on_message(TOPICS.mode(), encode(ModeCommand(ts=T0 + 60.0, mode=Mode.HOLD)), 0.1)
    assert core.mode.mode == Mode.HOLD


def test_a_kept_mode_that_names_only_the_sites_assets_is_kept() -> None:
    saved = _running_core().snapshot(0.0)
    assert saved is not None
    manual = ModeCommand(ts=T0, mode=Mode.MANUAL, potline_current_ka={"L1": 390.0})
    core = _core()
    core.restore(msgspec.structs.replace(saved, mode=manual))
    _feed(core, T0 + 60.0, 0.0)
    core.tick(0.0)
    assert core.mode == manual


def test_a_kept_hold_holds_only_the_sites_assets(caplog: pytest.LogCaptureFixture) -> None:
    """The state file holds a setpoint for line L9, which the site file has lost: the hold
    keeps L1's and drops L9's, instead of sending it to the safety layer at every dispatch."""
    saved = _running_core().snapshot(0.0)
    assert saved is not None
    hold = ModeCommand(ts=T0, mode=Mode.HOLD)
    applied = {"potline/L1": 395.0, "potline/L9": 300.0}
    core = _core()
    core.restore(msgspec.structs.replace(saved, mode=hold, applied=applied))
    assert sum("potline/L9" in r.getMessage() for r in caplog.records) == 1
    _feed(core, T0 + 60.0, 0.0, current_ka=395.0)
    _plan(core)  # the first dispatch comes with the first plan
    core.tick(0.0)
    assert core.mode.mode == Mode.HOLD
    sent = _line_setpoints(core.drain())
    assert sent and sent[-1].current_ka == pytest.approx(395.0) and sent[-1].plan_id == "hold"
    assert not [e for e in core.safety.events if e.code == "unknown_asset"]


def test_the_mode_in_force_is_judged_again_after_the_clock_jumped_back() -> None:
    """A hold set an hour before a simulator restart six hours back would be newer than every
    command stamped on the new time base: they would all be ignored as old."""
    core = _running_core()
    core.on_message(TOPICS.mode(), encode(ModeCommand(ts=T0, mode=Mode.HOLD)), 0.1)
    for k in range(1, 4):
        _feed(core, T0 + 60.0 * k, 0.1 + 0.05 * k)
        core.tick(0.1 + 0.05 * k)
    assert core.mode.mode == Mode.HOLD  # judged once, kept
    back_s = T0 - 6 * 3600.0
    _feed(core, back_s, 2.0)
    core.tick(2.0)
    assert core.mode.mode == Mode.AUTO
    core.on_message(TOPICS.mode(), encode(ModeCommand(ts=back_s, mode=Mode.HOLD)), 2.1)
    assert core.mode.mode == Mode.HOLD


def test_a_retained_hold_heard_before_any_telemetry_holds_the_measured_values() -> None:
    core = _core()
    hold = ModeCommand(ts=T0 - 60.0, mode=Mode.HOLD)
    core.on_message(TOPICS.mode(), encode(hold), 0.0)  # retained: delivered at subscribe
    _feed(core, T0, 0.0, current_ka=390.0)
    core.tick(0.0)
    sent = _line_setpoints(core.drain())
    assert core.mode.mode == Mode.HOLD
    assert sent and sent[-1].current_ka == pytest.approx(390.0) and sent[-1].plan_id == "hold"


def test_a_manual_command_for_an_asset_that_is_not_in_the_site_is_refused_whole(
    caplog: pytest.LogCaptureFixture,
) -> None:
    core = _running_core()
    bad = ModeCommand(ts=T0, mode=Mode.MANUAL, potline_current_ka={"L1": 390.0, "L9": 300.0})
    for k in range(44):
        core.on_message(TOPICS.mode(), encode(bad), 0.01 * k)
        core.tick(0.01 * k)
    assert core.mode.mode == Mode.AUTO  # not even L1's part
    assert core.ingest.rejected == {"unknown_asset": 44}
    assert sum("L9" in r.getMessage() for r in caplog.records) == 1


# --- 4. one message moves the plant clock ---------------------------------------------------


@pytest.mark.parametrize("forged_ts", [7_258_118_400.0, 0.0, 86_400.0])  # 2200, 1970
def test_one_message_from_another_time_does_not_move_the_plant_clock(forged_ts: float) -> None:
    core = _running_core()
    for k in range(1, 11):
        _feed(core, T0 + 60.0 * k, 60.0 * k)
    supply = core.supply
    forged = PotlineTelemetry(
        ts=forged_ts, current_ka=400.0, voltage_v=1200.0, power_mw=480.0, pots_online=300
    )
    core.on_message(TOPICS.potline("L1"), encode(forged), 601.0)
    core.tick(601.0)
    assert core.clock.now_s == T0 + 600.0
    assert core.supply is supply  # the forecasters' learning is not wiped
    assert core.ingest.rejected.total() == 1
    assert not any("clock" in r for r in core.status().reasons)
    _feed(core, T0 + 660.0, 660.0)
    assert core.clock.now_s == T0 + 660.0


@pytest.mark.parametrize("speed", [1500.0, 3000.0])
def test_a_fast_simulator_is_followed_from_its_first_messages_not_taken_for_jumps(
    speed: float,
) -> None:
    """At 1500x the simulator publishes every 150 s of plant time, 0.1 wall s apart.  Before
    the speed was measured, each burst lay beyond the 120 s window: a 'jump' every 0.1 s, each
    re-basing the clock, so the speed was never measured and the status stayed degraded."""
    core = _core()
    interval_s = speed / 10.0  # the simulator's automatic telemetry interval
    for k in range(40):  # 4 wall seconds
        _feed(core, T0 + interval_s * k, 0.1 * k)
        core.tick(0.1 * k)
    assert core.clock.now_s == T0 + interval_s * 39
    assert core.clock.measured and core.clock.speed == pytest.approx(speed, rel=0.01)
    assert core.ingest.rejected.total() == 0
    assert not any("clock" in r for r in core.status().reasons)


def test_before_the_speed_is_measured_a_forged_message_cannot_move_the_clock_far() -> None:
    core = _core()
    _feed(core, T0, 0.0)
    forged = PotlineTelemetry(
        ts=T0 + 3600.0, current_ka=400.0, voltage_v=1200.0, power_mw=480.0, pots_online=300
    )
    core.on_message(TOPICS.potline("L1"), encode(forged), 0.2)  # 0.2 wall s: 720 s at most
    assert core.clock.now_s == T0
    assert core.ingest.rejected == {"bad_ts": 1}


def test_the_whole_plant_moving_together_is_a_jump_in_either_direction() -> None:
    for offset_s in (-6 * 3600.0, 5 * 3600.0):
        core = _running_core()
        _feed(core, T0 + 60.0, 60.0)
        _feed(core, T0 + 120.0 + offset_s, 120.0)  # every stream on the new time base
        assert core.clock.now_s == T0 + 120.0 + offset_s
        assert any("clock jumped" in r for r in core.status().reasons)


# --- 5. out-of-order telemetry ------------------------------------------------------------


def test_telemetry_older_than_its_streams_last_is_not_integrated_twice() -> None:
    """A gateway flushes a line message 3,000 s old: it would have added ~33 t today."""
    core = _running_core()
    for k in range(1, 61):
        _feed(core, T0 + 60.0 * k, 60.0 * k, current_ka=420.0)
    before = core.tracker.state(T0 + 3600.0).lines["L1"]
    old = PotlineTelemetry(
        ts=T0 + 600.0, current_ka=440.0, voltage_v=1200.0, power_mw=500.0, pots_online=300
    )
    core.on_message(TOPICS.potline("L1"), encode(old), 3601.0)
    after = core.tracker.state(T0 + 3600.0).lines["L1"]
    assert after.produced_today_t == before.produced_today_t
    assert after.heat_budget_mwh == before.heat_budget_mwh
    assert core.ingest.rejected == {"out_of_order": 1}
    # a duplicate of the latest is out of order too
    _feed(core, T0 + 3600.0, 3602.0, current_ka=420.0)
    assert core.ingest.rejected["out_of_order"] == 5


# --- 6. weather forecasts blinded -----------------------------------------------------------


def test_forecasts_issued_in_the_future_cannot_evict_the_real_ones() -> None:
    core = _running_core()
    times = [T0 + 900.0 * k for k in range(96)]
    for k in range(16):
        future = WeatherForecast(ts=T0, issued_ts=T0 + 1e9 + k, times=times, ghi_wm2=[0.0] * 96)
        core.on_message(TOPICS.weather("s"), encode(future), 0.1)
    assert core.ingest.rejected == {"bad_ts": 16}
    real = WeatherForecast(ts=T0, issued_ts=T0, times=times, ghi_wm2=[800.0] * 96)
    core.on_message(TOPICS.weather("s"), encode(real), 0.2)
    assert core.forecasters.last_weather == real
    assert core.supply is not None
    store = core.supply.plants["pv1"]._nwp  # what the forecaster keeps of NWP issues
    assert store.latest_issued_s == T0


# --- 7. unknown asset names ---------------------------------------------------------------


def test_telemetry_of_an_asset_not_in_the_site_is_refused_and_never_expected() -> None:
    core = _running_core()
    forged = GridTelemetry(ts=T0 + 1.0, power_mw=5.0, frequency_hz=50.0)
    core.on_message(TOPICS.grid("pcc9"), encode(forged), 1.0)
    for k in range(1, 12):  # 11 minutes: past stale_after_s for anything heard once
        _feed(core, T0 + 60.0 * k, 60.0 * k)
        core.tick(60.0 * k)
    assert core.ingest.rejected == {"unknown_asset": 1}
    assert core.status().state == ControllerState.RUNNING
    assert not any("pcc9" in r for r in core.status().reasons)


# --- 9. lies are followed --------------------------------------------------------------------


def _bess(core: object, ts: float, soc: float, power_mw: float, wall_s: float) -> None:
    payload = BessTelemetry(ts=ts, power_mw=power_mw, soc_frac=soc, energy_capacity_mwh=200.0)
    core.on_message(TOPICS.bess("B1"), encode(payload), wall_s)  # type: ignore[attr-defined]


def test_a_bess_soc_that_its_own_power_cannot_explain_is_not_believed() -> None:
    """The battery idles at 10 % for an hour; then its meter says 90 %: the plan must not
    discharge a battery that is really empty."""
    core = _core()
    for k in range(61):
        _feed(core, T0 + 60.0 * k, 60.0 * k, skip=("B1",))
        _bess(core, T0 + 60.0 * k, 0.10, 0.0, 60.0 * k)
    _bess(core, T0 + 3660.0, 0.90, 0.0, 3660.0)
    _feed(core, T0 + 3660.0, 3660.0, skip=("B1",))
    core.tick(3660.0)
    state = core.tracker.state(T0 + 3660.0)
    assert state.bess_soc_frac["B1"] <= 0.10 + 0.05
    assert core.plausibility.suspects["bess_soc"] == 1
    assert any("bess B1: suspect telemetry" in r for r in core.status().reasons)
    job = core.take_plan_job()
    assert job is not None
    schedule = scheduler.solve(job.site, job.state, job.forecast, job.config)
    assert float(np.max(schedule.bess_power_mw["B1"])) <= 1e-6  # nothing to discharge
    # a soc its power does explain is believed again
    _bess(core, T0 + 3720.0, 0.10, 0.0, 3720.0)
    assert core.plausibility.suspect_now == {}


def test_pv_at_nameplate_in_the_dark_is_not_believed() -> None:
    core = _running_core()  # 08:00 local in Yunnan (see SITE)
    night_s = T0 + 14 * 3600.0  # 22:00 local
    for k in range(1, 3):
        _feed(core, night_s + 60.0 * k, night_s - T0 + 60.0 * k, pv_mw=0.0)
    lie = RenewableTelemetry(
        ts=night_s + 180.0,
        kind=RenewableKind.PV,
        power_mw=300.0,
        available_mw=300.0,
        capacity_mw=300.0,
    )
    core.on_message(TOPICS.renewable("pv1"), encode(lie), night_s - T0 + 180.0)
    assert core.tracker.renewable_available_mw <= 0.08 * 300.0 + 1e-9
    assert core.plausibility.suspects == {"pv_clear_sky": 1}


def test_a_line_current_beyond_its_ramp_and_its_setpoint_is_not_believed() -> None:
    core = _running_core()
    core.drain()
    sent = core.safety.last_applied["potline", "L1"]
    liar = PotlineTelemetry(
        ts=T0 + 60.0, current_ka=sent + 30.0, voltage_v=1200.0, power_mw=520.0, pots_online=300
    )
    core.on_message(TOPICS.potline("L1"), encode(liar), 60.0)
    used = core.tracker.state(T0 + 60.0).lines["L1"].current_ka
    assert used <= max(sent, 400.0 + RAMP_KA_PER_S * 60.0) + 0.02 * 400.0 + 1e-9
    assert core.plausibility.suspects == {"potline_current": 1}
    # a trip to 0 kA is possible at any time, and believed
    trip = PotlineTelemetry(
        ts=T0 + 120.0, current_ka=0.0, voltage_v=0.0, power_mw=0.0, pots_online=300
    )
    core.on_message(TOPICS.potline("L1"), encode(trip), 120.0)
    assert core.tracker.state(T0 + 120.0).lines["L1"].current_ka == 0.0


# --- 1. no message kills the loop --------------------------------------------------------------


_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.sampled_from([0.0, -1.0, 1e11, T0, T0 + 1e6, 400.0, 1e5, 2000.0]),
    st.text(max_size=20),
    st.lists(st.floats(-1e6, 1e6), max_size=30),
    st.dictionaries(st.sampled_from(["L1", "L9", "B1", "C1", ""]), st.floats(-1e3, 1e3)),
)


@st.composite
def _payloads(draw: st.DrawFn) -> tuple[str, bytes]:
    """A message on one of the contract's topics, with the fields of its payload type (and
    sometimes an extra one), each drawn from anything JSON can carry."""
    kind = draw(st.sampled_from(sorted(PAYLOAD_TYPES)))
    fields = PAYLOAD_TYPES[kind].__struct_fields__
    body = {name: draw(_VALUES) for name in fields if draw(st.booleans()) or name == "ts"}
    if draw(st.booleans()):
        body["ts"] = draw(st.floats(T0 - 7200.0, T0 + 7200.0))
    topic = {
        "potline": TOPICS.potline("L1"),
        "pots": TOPICS.pots("L1"),
        "grid": TOPICS.grid("main"),
        "renewable": TOPICS.renewable("pv1"),
        "bess": TOPICS.bess("B1"),
        "captive": TOPICS.captive("C1"),
        "weather": TOPICS.weather("s"),
        "alarm": TOPICS.alarm(),
        "potline_setpoint": TOPICS.potline_setpoint("L1"),
        "bess_setpoint": TOPICS.bess_setpoint("B1"),
        "captive_setpoint": TOPICS.captive_setpoint("C1"),
        "status": TOPICS.status(),
        "plan": TOPICS.plan(),
        "mode": TOPICS.mode(),
        "lease": TOPICS.lease(),
        "instance_status": TOPICS.instance_status("b"),
    }[kind]
    return topic, json.dumps(body).encode()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages=st.lists(_payloads(), min_size=1, max_size=40))
def test_no_message_of_any_type_takes_the_core_down_or_its_setpoints_out_of_limits(
    messages: list[tuple[str, bytes]],
) -> None:
    logging.disable(logging.CRITICAL)
    try:
        core = _running_core()
        core.drain()
        last_ka = core.safety.last_applied["potline", "L1"]
        last_s = T0
        for k, (topic, data) in enumerate(messages):
            core.on_message(topic, data, 0.1 * k)
            core.tick(0.1 * k)
            if (job := core.take_plan_job()) is not None:
                core.on_schedule(scheduler.solve(job.site, job.state, job.forecast, job.config))
            for pub in core.drain():
                parsed = TOPICS.parse(pub.topic)
                assert parsed is not None
                if parsed.kind == "potline_setpoint":
                    sp = decode("potline_setpoint", pub.payload, PotlineSetpoint)
                    assert LINE.hard_min_ka - 1e-9 <= sp.current_ka <= LINE.hard_max_ka + 1e-9
                    ramp = LINE.ramp_ka_per_h * max(sp.ts - last_s, 0.0) / 3600.0
                    assert abs(sp.current_ka - last_ka) <= ramp + 1e-6
                    last_ka, last_s = sp.current_ka, sp.ts
                elif parsed.kind == "bess_setpoint":
                    bsp = decode("bess_setpoint", pub.payload, PowerSetpoint)
                    assert abs(bsp.power_mw) <= 100.0 + 1e-9
        assert core.ingest.rejected.get("internal_error", 0) == 0
        assert math.isfinite(core.clock.now_s or 0.0)
    finally:
        logging.disable(logging.NOTSET)


def test_after_a_jump_two_stray_messages_on_the_old_time_base_cannot_jump_it_back() -> None:
    """Nine streams at 1 Hz move a day ahead together (a jump, on the fifth).  The streams that
    moved keep their place, so the old time base needs a quorum of its own: two strays (a
    gateway's late buffer, forged messages) used to be enough, because the jump had emptied the
    record of streams heard and the quorum fell to two."""
    keys = [("renewable", f"r{k}") for k in range(9)]
    streams = Streams(SITE, tolerance_s=120.0)
    streams.known = frozenset(keys)
    clock = PlantClock()

    def hear(key: tuple[str, str], ts: float, wall_s: float) -> Verdict:
        check = streams.check(key, ts, wall_s, None, clock)
        if check.verdict is Verdict.JUMP:
            clock.reset(ts, wall_s)
        elif check.verdict is Verdict.ACCEPT:
            clock.advance(ts, wall_s)
        return check.verdict

    for second in range(5):
        assert {hear(k, T0 + second, float(second)) for k in keys} == {Verdict.ACCEPT}
    day_s = 86_400.0
    verdicts = [hear(k, T0 + day_s + 5.0, 5.0) for k in keys[:5]]
    assert verdicts[4] is Verdict.JUMP and Verdict.JUMP not in verdicts[:4]
    # at once, before the other four streams are heard on the new time base
    strays = {hear(k, T0 + 6.0, 5.1) for k in keys[:2]}
    assert strays.isdisjoint({Verdict.ACCEPT, Verdict.JUMP})
    assert clock.now_s == T0 + day_s + 5.0


def test_wall_clock_tolerance_holds_telemetry_to_the_daemons_utc_clock() -> None:
    """On a real plant: telemetry stamped 60 s off the daemon's UTC clock is bad_ts, even when
    the whole plant agrees on it; the daemon gives its core its UTC clock (service.py)."""
    utc = [T0]
    core = ControllerCore(
        SITE,
        ControllerSection(wall_clock_tolerance_s=5.0),
        PlannerConfig(),
        TOPICS,
        utc=lambda: utc[0],
    )
    _feed(core, T0, 0.0)
    assert core.clock.now_s == T0
    utc[0] = T0 + 1.0
    _feed(core, T0 + 61.0, 1.0)  # every stream, 60 s ahead of UTC
    assert core.clock.now_s == T0
    assert core.ingest.rejected["bad_ts"] == 4
    daemon = Daemon(DaemonConfig(mqtt=MqttSettings(topic_prefix="p")), SITE, utc=lambda: 42.0)
    assert daemon.core._utc is not None and daemon.core._utc() == 42.0
