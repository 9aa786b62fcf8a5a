"""The bath observer (controller.thermal): hand-checkable steady states, telemetry's correction,
and the simulator's truth in a short closed loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.planner.lineheat import heat_gap_mw
from controller.site import LineModel, SiteModel
from controller.state import StateTracker, bath_observer
from controller.thermal import BathObserver, PotThermal
from harness.backtest import run_backtest
from wire import PotlineTelemetry

NO_CONTROL = PotThermal(resistance_control_v=0.0)


def _observer(p: PotThermal = NO_CONTROL, *, exchangers: bool = False) -> BathObserver:
    return bath_observer(LineModel("L1", heat_exchangers=exchangers, thermal=p))


def _run(obs: BathObserver, current_ka: float, hours: float, dt_s: float = 60.0) -> None:
    for _ in range(round(hours * 3600.0 / dt_s)):
        obs.step(current_ka, dt_s)


def test_starts_in_the_documented_steady_state_at_nominal() -> None:
    obs = _observer()
    assert obs.bath_c == pytest.approx(964.0)  # liquidus 955 + superheat target 9
    # the ledge conducts what the bath gives it: 11 kW/K · 9 K = 99 kW through 7.0 cm
    assert obs.ledge_m * 100.0 == pytest.approx(7.0, abs=0.05)
    before = (obs.bath_c, obs.ledge_m)
    _run(obs, 400.0, 2.0)
    # Q = 400 kA · (1.65 + 5.875e-3·400 − 2.06) V = 776 kW; 776 = 0.733·(T − 40) + 11·(T − 955)
    # gives T = 963.97 °C: the calibration's 9 K superheat, so the state barely moves (the
    # 0.03 K difference thins the ledge by ~0.01 cm in 2 h)
    assert obs.bath_c == pytest.approx(before[0], abs=0.05)
    assert obs.ledge_m == pytest.approx(before[1], abs=2e-4)


@pytest.mark.parametrize(
    ("current_ka", "bath_c"),
    [
        # Q = I·(E0 + R·I − E_tn); T = (Q + G·T_amb + hA·T_liq)/(G + hA), G = 0.733, hA = 11
        (400.0, (776.0 + 0.733 * 40.0 + 11.0 * 955.0) / 11.733),  # 963.97
        (420.0, (420.0 * 2.0575 + 0.733 * 40.0 + 11.0 * 955.0) / 11.733),  # 971.50
        (390.0, (390.0 * 1.88125 + 0.733 * 40.0 + 11.0 * 955.0) / 11.733),  # 960.59
    ],
)
def test_constant_current_settles_at_the_heat_balance(current_ka: float, bath_c: float) -> None:
    """Without exchangers and pot control the bath settles where heat made equals heat lost."""
    q_kw = current_ka * (1.65 + 5.875e-3 * current_ka - 2.06)
    obs = _observer()
    _run(obs, current_ka, 8.0)  # 11 time constants of C/(G + hA) ≈ 43 min
    assert obs.bath_c == pytest.approx(NO_CONTROL.steady_bath_c(q_kw), abs=0.01)
    assert obs.bath_c == pytest.approx(bath_c, abs=0.1)


def test_exchangers_hold_the_bath_through_a_current_step_within_their_range() -> None:
    """The exchangers follow the heat change: a −5 % step (−76 kW a pot, within ±233 kW)
    leaves the bath where it was once the lag has passed; without them it falls ~6.5 K."""
    with_hx, without = _observer(exchangers=True), _observer()
    _run(with_hx, 380.0, 6.0)
    _run(without, 380.0, 6.0)
    assert with_hx.bath_c == pytest.approx(964.0, abs=0.3)
    assert without.bath_c < 958.0


def test_the_measured_voltage_corrects_the_heat() -> None:
    """Pots 0.1 V above the model (their resistance control): the observer takes the measured
    voltage, hence 40 kW more heat a pot at 400 kA, and the bath settles 40/11.733 K hotter."""
    obs = _observer()
    obs.measure_voltage(400.0, 4.0 + 0.1)
    assert obs.delta_v == pytest.approx(0.1)
    _run(obs, 400.0, 8.0)
    assert obs.bath_c == pytest.approx(NO_CONTROL.steady_bath_c(776.0) + 40.0 / 11.733, abs=0.01)


def test_resistance_control_brings_the_superheat_back_towards_target() -> None:
    obs = _observer(PotThermal(), exchangers=False)
    _run(obs, 390.0, 3.0)
    cold = obs.superheat_k
    _run(obs, 390.0, 6.0)
    assert obs.delta_v > 0.0
    assert obs.superheat_k > cold


@settings(max_examples=40, deadline=None)
@given(
    current_ka=st.floats(360.0, 440.0),
    dt_s=st.sampled_from([10.0, 30.0, 60.0, 120.0]),
)
def test_heat_balance_closes(current_ka: float, dt_s: float) -> None:
    """Invariant: over any step the stored heat changes by heat made minus heat lost."""
    p = PotThermal()
    obs = _observer(p, exchangers=True)
    _run(obs, current_ka, 0.5, dt_s)

    def stored_kj() -> float:
        cap = p.thermal_capacity_mj_per_k * 1e3
        latent = p.ledge_density_kg_m3 * p.ledge_latent_kj_per_kg * p.ledge_area_m2
        return cap * obs.superheat_k - latent * obs.ledge_m

    before = stored_kj()
    q_kw = current_ka * (obs.model_voltage_v(current_ka) - obs.e_tn_v)
    out_kw = (
        p.loss_conductance_kw_per_k * (obs.bath_c - p.ambient_c)
        + obs.hx_kw
        + p.shell_kw(obs.ledge_m)
    )
    obs.step(current_ka, dt_s)
    assert obs.superheat_k > 0.0
    assert stored_kj() - before == pytest.approx((q_kw - out_kw) * dt_s, rel=1e-9, abs=1e-6)


BATH_TOLERANCE_K = 0.6
"""The observer's estimate against the simulator's mean bath, at every plant step."""


def test_the_estimate_follows_the_simulators_bath_in_closed_loop() -> None:
    """Half a day of the mpc on the wind site (swings through the envelope): the tracker's
    estimate stays within BATH_TOLERANCE_K of the simulator's mean bath, 0.25 K on average.
    The residual is the per-pot spread (resistance ±1 %, losses ±3 %) and sampling."""
    r = run_backtest("inner-mongolia-wind", "mpc", days=0.5, seed=11, trace=True)
    assert r.trace is not None
    for name in ("L1", "L2"):
        est, true = r.trace[f"{name}_bath_est_c"], r.trace[f"{name}_bath_c"]
        assert not np.any(np.isnan(est))
        assert np.ptp(true) > 1.0, "the run should move the bath"
        err = est - true
        assert float(np.max(np.abs(err))) <= BATH_TOLERANCE_K
        assert float(np.mean(np.abs(err))) <= 0.25
        assert math.isfinite(float(np.mean(err)))


def test_the_heat_gap_narrows_with_the_baths_room_and_recovers_with_the_melt() -> None:
    """Calibrated gap (100 kW × 300 pots = 30 MW) at the target superheat less the margin
    (room 4 − 0.5 of 4 K → 26.25 MW now); none left at the band's edge; the melt's time
    constant C/(G + hA) = 30 MJ/K / 11.733 kW/K = 0.71 h brings it back."""
    line = LineModel("L1")
    t_h = np.array([0.0, 30.0 / 11.733 / 3.6, 24.0])
    assert heat_gap_mw(line, None, t_h) == pytest.approx([30.0, 30.0, 30.0])
    at_target = heat_gap_mw(line, 9.0, t_h)
    assert at_target[0] == pytest.approx(30.0 * 3.5 / 4.0)
    assert at_target[1] == pytest.approx(30.0 - 30.0 * 0.5 / 4.0 * math.exp(-1.0))
    assert at_target[2] == pytest.approx(30.0, abs=1e-6)
    assert heat_gap_mw(line, 5.2, t_h)[0] == 0.0  # inside the margin: no gap now
    assert heat_gap_mw(line, 14.0, t_h)[0] == pytest.approx(30.0 * 0.5 / 4.0)  # hot side too


def test_the_tracker_estimates_the_bath_and_keeps_it_across_a_restart() -> None:
    """Telemetry at 380 kA with the pots 0.05 V above the model for 3 h: the tracker's bath
    is the observer's fed the same; a snapshot restores it (to the state file's rounding)."""
    line = LineModel("L1")
    site = SiteModel("s", (line,), islanded=True)
    tracker = StateTracker(site)
    obs = bath_observer(line)
    pot_v = 1.65 + 5.875e-3 * 380.0 + 0.05
    t0 = 1_780_272_000.0
    for k in range(3 * 60 + 1):
        tracker.observe_telemetry(
            "potline",
            "L1",
            PotlineTelemetry(
                ts=t0 + 60.0 * k,
                current_ka=380.0,
                voltage_v=300 * pot_v,
                power_mw=380.0 * 300 * pot_v * 1e-3,
                pots_online=300,
            ),
        )
        if k:
            obs.step(380.0, 60.0)
        obs.measure_voltage(380.0, pot_v)
    ls = tracker.state(t0 + 3 * 3600.0).lines["L1"]
    assert ls.bath_c == pytest.approx(obs.bath_c, abs=1e-9)
    assert ls.superheat_k == pytest.approx(obs.bath_c - 955.0, abs=1e-9)
    assert ls.ledge_cm == pytest.approx(obs.ledge_m * 100.0, abs=1e-9)
    again = StateTracker(site)
    again.restore(tracker.snapshot(), hold_until_s=t0 + 3 * 3600.0)
    bath = again.state(t0 + 3 * 3600.0).lines["L1"].bath_c
    assert bath == pytest.approx(obs.bath_c, abs=1e-6)
