"""The scheduler: hand-checkable tiny cases, the recursions, invariants and property tests."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.linalg import expm

from controller.planner.highs import HighsModel, LpResult, LpStatus
from controller.planner.lineheat import heat_budget, heat_gain_h, hx_lag
from controller.planner.model import Axis
from controller.planner.recursion import Recursion, Term
from controller.planner.scheduler import fit_forecast, solve
from controller.planner.types import (
    LineState,
    PlannerConfig,
    PlantState,
    SolveStatus,
)
from controller.site import (
    BessModel,
    CaptiveModel,
    GridModel,
    LineModel,
    RenewableKind,
    RenewableModel,
    SiteModel,
)
from forecasting.types import QuantileForecast

T0 = 1_780_272_000.0  # 2026-06-01 00:00 UTC = 08:00 local (UTC+8)
FLAT_TARIFF = dict(peak_per_mwh=500.0, flat_per_mwh=500.0, valley_per_mwh=500.0)
FIXED = dict(band_low_frac=1.0, band_high_frac=1.0, deep_low_frac=1.0, high_max_frac=1.0)
BAND5 = dict(deep_low_frac=0.95, high_max_frac=1.05)


def produced_so_far(line: LineModel, t_s: float = T0, offset_h: float = 8.0) -> float:
    return line.daily_target_t * ((t_s / 3600.0 + offset_h) % 24.0) / 24.0


def state_for(site: SiteModel, **soc: float) -> PlantState:
    return PlantState(
        T0,
        {
            ln.name: LineState(ln.nominal_current_ka, produced_today_t=produced_so_far(ln))
            for ln in site.lines
        },
        bess_soc_frac={b.name: soc.get(b.name, 0.5) for b in site.bess},
        captive_mw={c.name: c.min_mw for c in site.captive},
    )


def flat_forecast(cfg: PlannerConfig, mw: float | np.ndarray) -> QuantileForecast:
    times = T0 + np.arange(cfg.steps) * cfg.step_min * 60.0
    return QuantileForecast.point(times, np.broadcast_to(np.asarray(mw, float), times.shape).copy())


def test_line_absorbs_a_surplus_at_the_top_of_its_band() -> None:
    """Hand case: R = 600 MW all day, one line limited to ±5 %, no export, generous tolerances.
    The best plan runs at +5 % (420 kA) throughout: one ramp step of 20 kA gets there at once
    (ramp 80 kA/h · 0.25 h).  Load linearised at 400 kA: 480 + 1.905 · 20 = 518.1 MW used."""
    line = LineModel("L1", **BAND5, heat_budget_mwh=1e4)
    site = SiteModel("s", (line,), grid=GridModel(1000.0, 0.0, 0.5, **FLAT_TARIFF))
    cfg = PlannerConfig(horizon_h=24, production_tolerance_frac=0.06, production_drift_frac=0.06)
    s = solve(site, state_for(site), flat_forecast(cfg, 600.0), cfg)
    assert s.status == SolveStatus.OPTIMAL
    np.testing.assert_allclose(s.line_current_ka["L1"], 420.0, atol=1e-6)
    np.testing.assert_allclose(s.renewable_used_mw, 480.0 + 1.905 * 20.0, atol=1e-6)
    np.testing.assert_allclose(s.curtailed_mw, 600.0 - 518.1, atol=1e-6)


def test_relinearised_around_the_previous_plan_the_load_is_exact() -> None:
    line = LineModel("L1", **BAND5, heat_budget_mwh=1e4)
    site = SiteModel("s", (line,), grid=GridModel(1000.0, 0.0, 0.5, **FLAT_TARIFF))
    cfg = PlannerConfig(horizon_h=24, production_tolerance_frac=0.06, production_drift_frac=0.06)
    first = solve(site, state_for(site), flat_forecast(cfg, 600.0), cfg)
    second = solve(site, state_for(site), flat_forecast(cfg, 600.0), cfg, reference=first)
    # P(420 kA) = 300 · (1.65 · 420 + 5.875e-3 · 420²) / 1000 = 300 · 1729.35 / 1000 = 518.805 MW
    np.testing.assert_allclose(second.renewable_used_mw[1:], 518.805, atol=1e-6)


def fixed_line_with_bess() -> SiteModel:
    """A fixed 400-kA line (480 MW), a 100 MW / 200 MWh BESS, a 1000 MW grid, no export."""
    return SiteModel(
        "s",
        (LineModel("L1", **FIXED),),
        bess=(BessModel("b1"),),
        grid=GridModel(1000.0, 0.0, 0.5, **FLAT_TARIFF),
    )


def test_bess_stores_what_it_can_of_a_surplus() -> None:
    """Hand case: fixed 400 kA line (480 MW), R = 580 MW for 2 h then 380 MW; BESS 100 MW /
    200 MWh from SOC 10 %, η = √0.88 = 0.93808.  It can store 160 MWh (to 90 %), i.e. draw
    160/0.93808 = 170.56 MWh of the 200 MWh surplus: 29.44 MWh is curtailed, no more."""
    site = fixed_line_with_bess()
    cfg = PlannerConfig(horizon_h=24)
    r = np.where(np.arange(cfg.steps) < 8, 580.0, 380.0)
    s = solve(site, state_for(site, b1=0.10), flat_forecast(cfg, r), cfg)
    assert s.status == SolveStatus.OPTIMAL
    assert float(np.sum(s.curtailed_mw) * cfg.step_h) == pytest.approx(
        200.0 - 160.0 / math.sqrt(0.88), abs=1e-3
    )
    assert s.bess_soc_frac["b1"][7] == pytest.approx(0.90, abs=1e-6)
    assert np.all(s.bess_power_mw["b1"][:8] <= 0.0)


def test_a_lasting_surplus_is_stored_now_not_later() -> None:
    """R = 580 MW for 6 h, 100 MW over a fixed 480 MW line; the BESS (from 10 %) can take
    160 MWh, i.e. 1.7 h at full power.  Storing in any 1.7 h of the 6 h uses the same energy,
    but the forecast may be wrong and the plan is re-made every cycle: it must charge at once
    (a plan that charges "later" is put off again each cycle until the surplus is gone)."""
    site = fixed_line_with_bess()
    cfg = PlannerConfig(horizon_h=24)
    r = np.where(np.arange(cfg.steps) < 24, 580.0, 380.0)
    s = solve(site, state_for(site, b1=0.10), flat_forecast(cfg, r), cfg)
    np.testing.assert_allclose(s.bess_power_mw["b1"][:6], -100.0, atol=1e-6)
    assert s.bess_soc_frac["b1"][6] == pytest.approx(0.90, abs=1e-6)


def test_a_grid_site_holds_captive_output_for_a_p10_outcome() -> None:
    """Fixed 480 MW line, import limit 300 MW, captive 100–600 MW dearer than imports, supply
    P50 = 400 MW but P10 = 0.  Within a step the captive unit holds its setpoint and the grid
    takes the difference, so for a P10 outcome imports ≤ 300 MW needs c ≥ 480 − 0 − 300 =
    180 MW (counting the unit's maximum instead, the plan would sit at 100 MW and shed)."""
    line = LineModel("L1", **FIXED)
    site = SiteModel(
        "s",
        (line,),
        captive=(CaptiveModel("c1", 100.0, 600.0, 6000.0, co2_t_per_mwh=2.0),),
        grid=GridModel(300.0, 0.0, 0.1, **FLAT_TARIFF),
    )
    cfg = PlannerConfig(horizon_h=24)
    p50 = flat_forecast(cfg, 400.0)
    fc = QuantileForecast(p50.times_s, np.zeros(cfg.steps), p50.p50_mw, p50.p90_mw)
    s = solve(site, state_for(site), fc, cfg)
    assert "reserve_p10" not in s.bent
    np.testing.assert_allclose(s.captive_mw["c1"], 180.0, atol=1e-6)


def test_the_plan_prepares_for_the_upside_of_the_forecast() -> None:
    """Fixed 480 MW line, BESS from 10 %, supply P50 = 480 MW (no surplus) but P90 = 580 MW.
    Planning on P50 + f·(P90 − P50) the BESS expects f·100 MW to store: a missed surplus is
    lost renewable energy, a shortfall only imports."""
    site = fixed_line_with_bess()
    for frac in (0.0, 0.5, 1.0):
        cfg = PlannerConfig(horizon_h=6, supply_upside_frac=frac)
        p50 = flat_forecast(cfg, 480.0)
        fc = QuantileForecast(p50.times_s, p50.p50_mw, p50.p50_mw, np.full(cfg.steps, 580.0))
        s = solve(site, state_for(site, b1=0.10), fc, cfg)
        assert s.bess_power_mw["b1"][0] == pytest.approx(-100.0 * frac, abs=1e-6)


def test_recursion_rows_and_trajectory_agree() -> None:
    """The constraint rows, solved for x, give the same states as rolling forward."""
    rng = np.random.default_rng(1)
    n = 12
    a = rng.uniform(0.0, 1.0, n)
    v = rng.normal(size=n)
    c = rng.normal(size=n)
    d = rng.normal(size=n)
    rec = Recursion("r", a)
    rows = rec.rows(np.arange(n), [Term(np.arange(n, 2 * n), c)], x0=3.0, d=d)
    m = np.zeros((n, 2 * n))
    np.add.at(m, (rows.row, rows.col), rows.val)
    x = np.linalg.solve(m[:, :n], rows.rhs - m[:, n:] @ v)
    np.testing.assert_allclose(x, rec.trajectory(3.0, [(v, c)], d))


def test_production_target_is_met_within_tolerance() -> None:
    line = LineModel("L1")
    site = SiteModel("s", (line,), bess=(BessModel("b1"),), grid=GridModel(1000.0, 0.0, 0.5))
    cfg = PlannerConfig(horizon_h=24)
    r = 300.0 + 400.0 * np.clip(np.sin(np.arange(cfg.steps) / 96 * 2 * np.pi), 0, None)
    s = solve(site, state_for(site), flat_forecast(cfg, r), cfg)
    midnight = 64  # step 64 starts at 00:00 local
    today = produced_so_far(line) + float(np.sum(s.production_t["L1"][:midnight]))
    assert line.daily_target_t <= today + 1e-6
    assert today <= line.daily_target_t * (1 + cfg.production_tolerance_frac) + 1e-6


def test_the_step_acted_on_keeps_within_the_production_drift() -> None:
    """Hand case: the line is ahead of pro rata by exactly the drift allowance, at nominal, and
    a surplus lasts half an hour.  With checkpoints only on the hour the plan would run the
    first step at the ramp's top (420 kA) and even it out before the hour; a run (or a day)
    ending meanwhile would keep the excess.  The checkpoint at the end of the first step holds
    it at nominal: 400 kA puts production exactly on the drift's edge again."""
    line = LineModel("L1", **BAND5, heat_budget_mwh=1e4)
    site = SiteModel("s", (line,), grid=GridModel(1000.0, 0.0, 0.5, **FLAT_TARIFF))
    cfg = PlannerConfig(horizon_h=24)
    ahead_t = cfg.production_drift_frac * line.daily_target_t
    state = PlantState(
        T0, {"L1": LineState(400.0, produced_today_t=produced_so_far(line) + ahead_t)}, {}, {}
    )
    r = np.zeros(cfg.steps)
    r[:2] = 600.0  # a surplus for the first half hour, then nothing
    s = solve(site, state, flat_forecast(cfg, r), cfg)
    assert s.status == SolveStatus.OPTIMAL and not s.bent
    assert s.line_current_ka["L1"][0] == pytest.approx(400.0, abs=1e-6)
    assert s.line_current_ka["L1"][1] > 410.0  # the surplus is still used where it may be


def test_stale_line_is_held_at_nominal() -> None:
    line = LineModel("L1")
    site = SiteModel("s", (line,), grid=GridModel(1000.0, 0.0, 0.5))
    cfg = PlannerConfig(horizon_h=24)
    st0 = state_for(site)
    stale = PlantState(
        T0,
        {
            "L1": LineState(
                400.0, produced_today_t=st0.lines["L1"].produced_today_t, available=False
            )
        },
    )
    s = solve(site, stale, flat_forecast(cfg, 700.0), cfg)
    np.testing.assert_allclose(s.line_current_ka["L1"], 400.0)


def test_solver_trouble_gives_the_fallback_plan_with_a_reason() -> None:
    line = LineModel("L1")
    site = SiteModel("s", (line,), bess=(BessModel("b1"),), grid=GridModel(1000.0, 0.0, 0.5))
    cfg = PlannerConfig(horizon_h=24)
    bad = PlantState(T0, {"L1": LineState(float("nan"))}, {"b1": 0.5})
    s = solve(site, bad, flat_forecast(cfg, 500.0), cfg)
    assert s.status == SolveStatus.FALLBACK
    assert "non-finite" in s.reason
    np.testing.assert_allclose(s.line_current_ka["L1"], 400.0)
    np.testing.assert_allclose(s.bess_power_mw["b1"], 0.0)


def test_an_unclassified_highs_outcome_is_solved_again_without_presolve(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """HiGHS's presolve now and then returns "model status Unknown" without a solution (seen
    twice in a 7-day Xinjiang run); the same LP then solves without presolve."""
    line = LineModel("L1")
    site = SiteModel("s", (line,), grid=GridModel(1000.0, 0.0, 0.5))
    cfg = PlannerConfig(horizon_h=24)
    presolve: list[str] = []
    real = HighsModel._run

    def flaky(self: HighsModel, deadline_s: float, *, warm: bool) -> LpResult:
        presolve.append(self._highs.getOptionValue("presolve")[1])
        if presolve[-1] != "off":
            return LpResult(LpStatus.FAILED, None, float("nan"), "Unknown", warm, 0)
        return real(self, deadline_s, warm=warm)

    monkeypatch.setattr(HighsModel, "_run", flaky)
    s = solve(site, state_for(site), flat_forecast(cfg, 500.0), cfg)
    assert presolve == ["choose", "off"]
    assert s.status == SolveStatus.OPTIMAL


def test_an_impossible_state_bends_soft_limits_and_says_which() -> None:
    line = LineModel("L1", heat_budget_mwh=30.0)
    site = SiteModel("s", (line,), grid=GridModel(1000.0, 0.0, 0.5))
    cfg = PlannerConfig(horizon_h=24)
    hot = PlantState(
        T0, {"L1": LineState(400.0, heat_budget_mwh=200.0, produced_today_t=produced_so_far(line))}
    )
    s = solve(site, hot, flat_forecast(cfg, 500.0), cfg)
    assert s.status == SolveStatus.OPTIMAL
    assert any(k.startswith("L1-heat") for k in s.bent)
    # it does what it can: the lowest current the envelope and the ramp allow, at once
    assert s.line_current_ka["L1"][0] < 400.0


ISLAND = SiteModel(
    "island",
    (
        LineModel("L1"),
        LineModel("L2", heat_exchangers=False, deep_low_frac=0.95, high_max_frac=1.05),
    ),
    bess=(BessModel("b1"),),
    captive=(CaptiveModel("c1", min_mw=450.0, max_mw=1100.0, ramp_mw_per_h=990.0),),
    auxiliary_load_mw=40.0,
    islanded=True,
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    supply=st.lists(st.floats(0.0, 1500.0), min_size=4, max_size=4),
    currents=st.tuples(st.floats(280.0, 440.0), st.floats(280.0, 440.0)),
    heat=st.floats(-100.0, 100.0),
    soc=st.floats(0.0, 1.0),
    captive=st.floats(0.0, 1500.0),
)
def test_always_a_plan_within_the_envelope(
    supply: list[float], currents: tuple[float, float], heat: float, soc: float, captive: float
) -> None:
    cfg = PlannerConfig(horizon_h=24, step_min=30)
    r = np.repeat(supply, cfg.steps // 4)
    state = PlantState(
        T0,
        {
            "L1": LineState(currents[0], heat_budget_mwh=heat, produced_today_t=300.0),
            "L2": LineState(currents[1], produced_today_t=300.0),
        },
        bess_soc_frac={"b1": soc},
        captive_mw={"c1": captive},
    )
    s = solve(ISLAND, state, QuantileForecast(flat_forecast(cfg, r).times_s, 0.8 * r, r, r), cfg)
    assert s.status in (SolveStatus.OPTIMAL, SolveStatus.TIME_LIMIT)
    for ln, i_now in zip(ISLAND.lines, currents, strict=True):
        i = s.line_current_ka[ln.name]
        i_n = ln.nominal_current_ka
        reach = ln.ramp_ka_per_h * cfg.step_h * np.arange(1, cfg.steps + 1)
        assert np.all(i >= np.minimum(ln.deep_low_frac * i_n, i_now + reach) - 1e-6)
        assert np.all(i <= np.maximum(ln.high_max_frac * i_n, i_now - reach) + 1e-6)
        steps = np.diff(np.concatenate([[i_now], i]))
        assert np.all(np.abs(steps) <= ln.ramp_ka_per_h * cfg.step_h + 1e-6)
    assert np.all(s.bess_soc_frac["b1"] >= -1e-9)
    assert np.all(np.abs(s.bess_power_mw["b1"]) <= 100.0 + 1e-6)
    c = s.captive_mw["c1"]
    assert np.all(c >= 450.0 - 1e-6) and np.all(c <= 1100.0 + 1e-6)
    # The balance bends only when nothing else can: the captive minimum (450 MW) is below the
    # smallest load (2 · 372 + 40 MW) and surplus can be curtailed, so no over-generation unless
    # the unit starts so high that its ramp cannot come down in time ...
    if captive <= 1100.0:
        assert "balance_over" not in s.bent
    # ... and no shortfall when renewables alone exceed the largest load (2 · 559 + 40 MW).
    if min(supply) >= 1200.0:
        assert "balance_short" not in s.bent


# --- variable step lengths: the non-uniform grid -------------------------------------------

NON_UNIFORM = dict(far_step_min=60.0, near_h=6.0)


def test_heat_recursions_are_exact_for_steps_of_any_length() -> None:
    """u and H after steps of 15 min to 2 h, ΔQ held in each, against the exact solution of
    du/dt = (ΔQ − u)/τ_hx, dH/dt = ΔQ − u − H/τ_rec by the matrix exponential (independent of
    controller.planner.lineheat).  The old Euler-like input weight Δ instead of g is 27 % off
    for one 15-min step and 2.6× off for a 1-h step, so this fails for any step-length-blind
    form."""
    line = LineModel("L1")
    tau_u, tau_h = line.hx_time_constant_h, line.heat_recovery_h
    dt = np.array([0.25, 0.25, 1.0, 0.5, 2.0, 1.0 / 60.0])
    dq = np.array([30.0, -50.0, 10.0, 0.0, 25.0, -5.0])
    u0, h0 = 5.0, -3.0
    m = np.array([[-1 / tau_u, 0.0, 1 / tau_u], [-1.0, -1 / tau_h, 1.0], [0.0, 0.0, 0.0]])
    z = np.array([u0, h0])
    expected = []
    for d, q in zip(dt, dq, strict=True):
        z = (expm(m * d) @ np.array([*z, q]))[:2]
        expected.append(z)
    hx, hx_in = hx_lag(line, dt)
    u_next = hx.trajectory(u0, [(dq, hx_in)])
    u = np.concatenate([[u0], u_next[:-1]])
    g = heat_gain_h(line, dt)
    h = heat_budget(line, dt).trajectory(h0, [(dq, g), (u, -g)])
    np.testing.assert_allclose(np.column_stack([u_next, h]), np.array(expected), rtol=1e-12)


def test_heat_budget_without_exchangers_is_exact_too() -> None:
    line = LineModel("L1", heat_exchangers=False)
    dt = np.array([0.25, 1.0, 3.0])
    dq = np.array([20.0, -10.0, 5.0])
    h = heat_budget(line, dt).trajectory(2.0, [(dq, heat_gain_h(line, dt))])
    expected, x = [], 2.0
    for d, q in zip(dt, dq, strict=True):  # dH/dt = ΔQ − H/τ: H → τ·ΔQ exponentially
        x = q * line.heat_recovery_h + (x - q * line.heat_recovery_h) * math.exp(-d / 6.0)
        expected.append(x)
    np.testing.assert_allclose(h, expected, rtol=1e-12)


def test_closed_form_gives_the_recursion_at_chosen_steps() -> None:
    rng = np.random.default_rng(3)
    n = 20
    a = rng.uniform(0.0, 1.0, n)
    a[[0, 7, 13]] = 0.0  # restarts, as production at midnight
    c, d, v = rng.normal(size=n), rng.normal(size=n), rng.normal(size=n)
    rec = Recursion("r", a)
    at = np.array([0, 6, 7, 12, 19])
    e = rec.closed_form(at, [Term(np.arange(n), c)], 4.0, d)
    value = e.const.copy()
    np.add.at(value, e.row, e.val * v[e.col])
    np.testing.assert_allclose(value, rec.trajectory(4.0, [(v, c)], d)[at], atol=1e-12)
    # a restart (a[7] = 0: x[8] forgets x[7]) cuts what came before out of the expression
    assert set(e.col[e.row == 3].tolist()) == set(range(7, 13))
    assert set(e.col[e.row == 4].tolist()) == set(range(13, 20))


def test_non_uniform_grid_is_fine_near_and_on_local_hours_far() -> None:
    cfg = PlannerConfig(horizon_h=24, **NON_UNIFORM)
    t0 = T0 + 450.0  # 08:07:30 local, off the 15-min grid
    axis = Axis.for_config(t0, cfg, utc_offset_h=8.0)
    np.testing.assert_allclose(axis.dt_h[:24], 0.25)
    assert axis.dt_h[24] == pytest.approx(52.5 / 60.0)  # 14:07:30 → 15:00 local
    np.testing.assert_allclose(axis.dt_h[25:-1], 1.0)
    assert axis.dt_h[-1] == pytest.approx(7.5 / 60.0)  # the horizon ends at 08:07:30
    assert axis.ends_s[-1] == pytest.approx(t0 + 24 * 3600.0)
    local_h = (axis.times_s[25:] / 3600.0 + 8.0) % 24.0
    np.testing.assert_allclose(local_h, np.round(local_h), atol=1e-9)
    assert np.any(np.isclose((axis.ends_s / 3600.0 + 8.0) % 24.0, 0.0))  # midnight is an edge
    uniform = Axis.for_config(t0, PlannerConfig(horizon_h=24), utc_offset_h=8.0)
    np.testing.assert_array_equal(uniform.times_s, t0 + np.arange(96) * 900.0)


def test_a_non_uniform_plan_absorbs_the_surplus_as_the_uniform_one() -> None:
    """The top-of-band hand case on 15 min for 6 h and 1 h beyond: 420 kA throughout."""
    line = LineModel("L1", **BAND5, heat_budget_mwh=1e4)
    site = SiteModel("s", (line,), grid=GridModel(1000.0, 0.0, 0.5, **FLAT_TARIFF))
    cfg = PlannerConfig(
        horizon_h=24, production_tolerance_frac=0.06, production_drift_frac=0.06, **NON_UNIFORM
    )
    s = solve(site, state_for(site), flat_forecast(cfg, 600.0), cfg)
    assert s.status == SolveStatus.OPTIMAL
    assert s.step_lengths_s is not None and s.times_s.size == 24 + 18
    assert float(np.sum(s.step_lengths_s)) == pytest.approx(24 * 3600.0)
    np.testing.assert_allclose(s.line_current_ka["L1"], 420.0, atol=1e-6)
    np.testing.assert_allclose(s.renewable_used_mw, 518.1, atol=1e-6)


def test_bess_stores_a_surplus_in_the_coarse_steps_as_in_fine_ones() -> None:
    """The BESS hand case with the 2-h surplus 8 h ahead, where the grid is hourly: it still
    stores 160 MWh and curtails 200 − 160/η = 29.44 MWh, as on the uniform grid."""
    site = fixed_line_with_bess()
    for cfg in (PlannerConfig(horizon_h=24), PlannerConfig(horizon_h=24, **NON_UNIFORM)):
        hours = np.arange(cfg.steps) * cfg.step_h
        r = np.where((hours >= 8.0) & (hours < 10.0), 580.0, 380.0)
        s = solve(site, state_for(site, b1=0.10), flat_forecast(cfg, r), cfg)
        assert s.status == SolveStatus.OPTIMAL
        lengths_h = (s.step_lengths_s if s.step_lengths_s is not None else 0.0) / 3600.0
        assert float(np.sum(s.curtailed_mw * lengths_h)) == pytest.approx(
            200.0 - 160.0 / math.sqrt(0.88), abs=1e-3
        )
        assert float(np.max(s.bess_soc_frac["b1"])) == pytest.approx(0.90, abs=1e-6)


def test_forecast_is_averaged_over_each_coarse_step() -> None:
    cfg = PlannerConfig(horizon_h=8, near_h=1.0, far_step_min=60.0)
    times = T0 + np.arange(cfg.steps) * 900.0
    p50 = np.arange(cfg.steps, dtype=float)  # 0, 1, 2, ... per 15 min
    fc = fit_forecast(
        QuantileForecast(times, 0.5 * p50, p50, 2.0 * p50), Axis.for_config(T0, cfg, 8.0)
    )
    np.testing.assert_allclose(fc.p50_mw, [0, 1, 2, 3, 5.5, 9.5, 13.5, 17.5, 21.5, 25.5, 29.5])
    np.testing.assert_allclose(fc.p10_mw, 0.5 * fc.p50_mw)


# --- the import margin --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "captive_max_mw", "grid_mw", "into_margin_mw"),
    [
        # wind 1000 MW: margin max(0.05·500, 0.08·1000) = 80 MW; the captive unit covers the
        # 480 − 420 = 60 MW the grid may not take
        ("wind", 600.0, 420.0, 0.0),
        # no captive unit: the plan imports into the margin (bent), not load left unserved
        ("wind", 0.0, 480.0, 60.0),
        # hydro does not swing within a step: margin 0.05·500 = 25 MW, 480 ≤ 475 + 5
        ("hydro", 0.0, 480.0, 5.0),
    ],
)
def test_imports_keep_a_margin_for_supply_swinging_within_a_step(
    kind: RenewableKind, captive_max_mw: float, grid_mw: float, into_margin_mw: float
) -> None:
    """Hand case: a fixed 480-MW line, no renewable supply now, import limit 500 MW, imports
    cheaper and cleaner than the captive unit."""
    line = LineModel("L1", **FIXED)
    captive = (
        (CaptiveModel("c1", 0.0, captive_max_mw, 1e4, co2_t_per_mwh=2.0, cost_per_mwh=2e3),)
        if captive_max_mw
        else ()
    )
    site = SiteModel(
        "s",
        (line,),
        captive=captive,
        grid=GridModel(500.0, 0.0, 0.5, **FLAT_TARIFF),
        renewable=(RenewableModel("r1", kind, 1000.0),),
    )
    cfg = PlannerConfig(horizon_h=4)
    s = solve(site, state_for(site), flat_forecast(cfg, 0.0), cfg)
    assert s.status == SolveStatus.OPTIMAL
    np.testing.assert_allclose(s.grid_mw, grid_mw, atol=1e-6)
    np.testing.assert_allclose(
        s.bent.get("import_margin", 0.0), into_margin_mw * cfg.steps, atol=1e-6
    )
    assert "balance_short" not in s.bent
