"""The state tracker: heat budget by the shared recursions, production, renewable history."""

from __future__ import annotations

import numpy as np
import pytest

from controller.planner.scheduler import heat_trajectory
from controller.planner.types import LineState
from controller.site import LineModel, RenewableModel, SiteModel
from controller.state import StateTracker
from wire import PotlineTelemetry, RenewableKind, RenewableTelemetry

T0 = 1_780_272_000.0  # 08:00 local


def potline(ts: float, ka: float) -> PotlineTelemetry:
    return PotlineTelemetry(ts=ts, current_ka=ka, voltage_v=1200.0, power_mw=480.0, pots_online=300)


def renewable(ts: float, mw: float) -> RenewableTelemetry:
    return RenewableTelemetry(
        ts=ts, kind=RenewableKind.PV, power_mw=mw, available_mw=mw, capacity_mw=1000.0
    )


def test_renewable_availability_is_the_sum_of_each_plants_latest() -> None:
    site = SiteModel(
        "s",
        (LineModel("L1"),),
        islanded=True,
        renewable=(RenewableModel("a", "pv", 1e3), RenewableModel("b", "pv", 1e3)),
    )
    t = StateTracker(site)
    for k in range(3):
        ts = T0 + 60 * k
        t.observe_telemetry("potline", "L1", potline(ts, 400.0))  # arrives first, same ts
        t.observe_telemetry("renewable", "a", renewable(ts, 100.0 + k))
        t.observe_telemetry("renewable", "b", renewable(ts, 50.0))
        assert t.renewable_available_mw == 150.0 + k


def test_fresh_start_assumes_nominal_production_since_midnight() -> None:
    line = LineModel("L1")
    t = StateTracker(SiteModel("s", (line,), islanded=True))
    t.observe_telemetry("potline", "L1", potline(T0, 400.0))
    # 8 h at nominal: 300 · 0.3356 · 400 · 0.93 · 8 / 1000 t
    assert t.state(T0).lines["L1"].produced_today_t == pytest.approx(
        300 * 0.3356 * 400 * 0.93 * 8 / 1000
    )


def test_heat_budget_of_a_step_down_matches_the_lag_integral() -> None:
    """A step from 400 to 340 kA held long: H tends to −ΔQ·τ_hx (decayed by recovery).  With
    recovery off, H → ΔQ·τ_hx exactly: ΔQ = Q(340) − Q(400) [MW], τ_hx = 0.5 h (after 12 h
    the lag's e^−24 is gone)."""
    line = LineModel("L1", heat_recovery_h=1e9)
    t = StateTracker(SiteModel("s", (line,), islanded=True))
    for k in range(12 * 60 + 1):
        t.observe_telemetry("potline", "L1", potline(T0 + 60 * k, 340.0 if k else 400.0))
    dq = line.heat_mw(340.0) - line.heat_mw(400.0)
    assert t.state(T0 + 12 * 3600).lines["L1"].heat_budget_mwh == pytest.approx(dq * 0.5, rel=1e-6)


def test_the_tracker_and_the_planner_integrate_the_same_heat_budget() -> None:
    """Currents held for 15 min each, told every minute to the tracker: its heat budget at each
    quarter hour is the planner's trajectory for 15-min steps (one model, exact per step).
    The tracker's old Euler weight Δ instead of g was 2 % off here."""
    line = LineModel("L1")
    t = StateTracker(SiteModel("s", (line,), islanded=True))
    currents = np.array([400.0, 360.0, 340.0, 340.0, 420.0, 440.0, 400.0, 380.0])
    tracked = []
    for k in range(currents.size * 15 + 1):
        ts = T0 + 60 * k
        t.observe_telemetry("potline", "L1", potline(ts, currents[min(k // 15, currents.size - 1)]))
        if k and k % 15 == 0:  # integrated up to here with the previous quarter's current
            tracked.append(t.state(ts).lines["L1"].heat_budget_mwh)
    planned = heat_trajectory(line, LineState(current_ka=400.0), currents, 0.25)
    np.testing.assert_allclose(tracked, planned, rtol=1e-9, atol=1e-9)


def test_a_silent_line_is_reported_unavailable() -> None:
    t = StateTracker(SiteModel("s", (LineModel("L1"),), islanded=True), stale_after_s=300.0)
    t.observe_telemetry("potline", "L1", potline(T0, 400.0))
    assert t.state(T0 + 200).lines["L1"].available
    assert not t.state(T0 + 400).lines["L1"].available
