"""Harness pieces on their own: scenario → site model, the rule strategy, the persistence
forecast and the capture ratio, on hand-built inputs whose answers can be checked by hand."""

from __future__ import annotations

from dataclasses import replace

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.planner.types import LineState, PlannerConfig, PlantState
from controller.safety import SafetyLayer
from controller.site import SiteModel
from harness.backtest import capture_ratio
from harness.site_from_scenario import site_from_scenario
from harness.strategies import (
    Context,
    RuleStrategy,
    persistence_forecast,
    production_bias_ka,
)
from simulator.scenario import load_scenario

T0_S = 1_780_272_000.0
"""2026-06-01 00:00 UTC = 08:00 local (UTC+8)."""


# --- site_from_scenario -------------------------------------------------------------------


def test_site_maps_captive_grid_and_renewables() -> None:
    site = site_from_scenario(load_scenario("inner-mongolia-wind"))
    (coal,) = site.captive
    assert coal.min_mw == pytest.approx(0.45 * 600.0)
    assert coal.max_mw == 600.0
    assert coal.ramp_mw_per_h == pytest.approx(0.015 * 600.0 * 60.0)  # 540 MW/h
    assert coal.co2_t_per_mwh == 0.8
    assert coal.cost_per_mwh == 250.0
    assert site.grid is not None
    assert (site.grid.import_limit_mw, site.grid.export_limit_mw) == (600.0, 100.0)
    assert site.grid.carbon_t_per_mwh == 0.75
    assert site.grid.export_per_mwh == 280.0
    assert site.grid.import_price_per_mwh(9) == 930.0  # 09:00 is a peak hour
    assert site.grid.import_price_per_mwh(3) == 230.0
    assert site.renewable_capacity_mw == {"wind1": 1100.0, "pv1": 500.0}
    assert site.renewable_kind == {"wind1": "wind", "pv1": "pv"}
    assert (site.latitude_deg, site.longitude_deg, site.altitude_m) == (40.6, 109.8, 1050.0)
    assert site.auxiliary_load_mw == 40.0
    assert site.utc_offset_h == 8.0
    assert [b.name for b in site.bess] == ["bess1"]
    assert site.bess[0].energy_mwh == 200.0


def test_site_maps_lines_and_islanding() -> None:
    site = site_from_scenario(load_scenario("xinjiang-islanded"))
    assert site.islanded
    line = site.lines[0]
    assert (line.pots, line.nominal_current_ka) == (300, 400.0)
    assert (line.hard_min_ka, line.hard_max_ka) == pytest.approx((280.0, 440.0))
    assert line.heat_exchangers
    # with exchangers the deep/high envelope of DESIGN §4 is kept
    assert (line.deep_low_frac, line.high_max_frac) == (0.85, 1.10)
    assert line.power_mw(400.0) == pytest.approx(480.0, rel=1e-3)  # 300 pots x 4.00 V x 400 kA


def test_lines_without_exchangers_get_only_five_percent() -> None:
    sc = load_scenario("yunnan-hydro-solar")
    spec = sc.potline[0]
    bare = msgspec.structs.replace(
        spec, pots=150, physics=msgspec.structs.replace(spec.physics, heat_exchangers=False)
    )
    sc = msgspec.structs.replace(sc, potline=[bare, *sc.potline[1:]])
    line = site_from_scenario(sc).lines[0]
    assert not line.heat_exchangers
    assert (line.deep_low_frac, line.band_low_frac) == (0.95, 0.95)
    assert (line.band_high_frac, line.high_max_frac) == (1.05, 1.05)
    assert line.heat_budget_mwh == pytest.approx(15.0)  # B scales with the pots: 30 x 150/300


# --- rule strategy --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site() -> SiteModel:
    return site_from_scenario(load_scenario("yunnan-hydro-solar"))


def _context(site: SiteModel, available_mw: float) -> Context:
    return Context(
        site=site,
        planner=PlannerConfig(),
        safety=SafetyLayer(site, validity_s=1800.0),
        cycle_s=900.0,
        renewable_times_s=np.array([T0_S]),
        renewable_mw=np.array([available_mw]),
    )


def _state(site: SiteModel, *, soc: float = 0.5, **line: float) -> PlantState:
    fields = {"current_ka": 400.0, **line}
    return PlantState(
        t_s=T0_S,
        lines={ln.name: LineState(**fields) for ln in site.lines},  # type: ignore[arg-type]
        bess_soc_frac={b.name: soc for b in site.bess},
    )


def _on_track_t(site: SiteModel) -> float:
    """What a line at nominal has produced by 08:00 local: no production bias."""
    return site.lines[0].production_t_per_h(400.0) * 8.0


def test_rule_follows_a_surplus_up_to_the_band(site: SiteModel) -> None:
    # 2000 MW available against a 1000 MW site: far more than ±5 % of the lines can take
    targets, schedule = RuleStrategy().decide(
        T0_S, _state(site, produced_today_t=_on_track_t(site)), _context(site, 2000.0)
    )
    assert schedule is None
    for line in site.lines:
        assert targets["potline", line.name] == pytest.approx(420.0)  # band top, ramp allows it
    assert targets["bess", "bess1"] == -100.0  # the rest charges the battery at full power


def test_rule_small_surplus_moves_current_by_its_share(site: SiteModel) -> None:
    nominal_mw = sum(ln.power_mw(400.0) for ln in site.lines) + site.auxiliary_load_mw
    state = _state(site, produced_today_t=_on_track_t(site))
    targets, _ = RuleStrategy().decide(T0_S, state, _context(site, nominal_mw + 19.05))
    # each line takes half of 19.05 MW at dP/dI = 300 x (1.65 + 2 x 5.875e-3 x 400) mW/kA
    assert targets["potline", "L1"] == pytest.approx(400.0 + 9.525 / 1.905)
    assert targets["bess", "bess1"] == pytest.approx(0.0, abs=0.5)


def test_rule_deficit_goes_down_and_discharges(site: SiteModel) -> None:
    state = _state(site, produced_today_t=_on_track_t(site))
    targets, _ = RuleStrategy().decide(T0_S, state, _context(site, 0.0))
    assert targets["potline", "L1"] == pytest.approx(380.0)
    assert targets["bess", "bess1"] == 100.0
    empty, _ = RuleStrategy().decide(
        T0_S, _state(site, soc=0.1, produced_today_t=_on_track_t(site)), _context(site, 0.0)
    )
    assert empty["bess", "bess1"] == 0.0  # at its SOC floor


def test_rule_heat_guard_steers_back_to_nominal(site: SiteModel) -> None:
    hot = _state(site, current_ka=415.0, heat_budget_mwh=20.0, produced_today_t=_on_track_t(site))
    targets, _ = RuleStrategy().decide(T0_S, hot, _context(site, 2000.0))
    assert targets["potline", "L1"] == pytest.approx(400.0)  # surplus, but no more heat
    cold = _state(site, current_ka=385.0, heat_budget_mwh=-20.0, produced_today_t=1e6)
    targets, _ = RuleStrategy().decide(T0_S, cold, _context(site, 0.0))
    assert targets["potline", "L1"] == pytest.approx(400.0)


def test_rule_production_guard_lifts_a_lagging_line(site: SiteModel) -> None:
    line = site.lines[0]
    lagging = LineState(current_ka=380.0, produced_today_t=_on_track_t(site) - 3.0)
    # 08:00 local: 3 t behind, caught up within 4 h at 0.0936 t/h per kA
    assert production_bias_ka(line, lagging, T0_S, site) == pytest.approx(
        3.0 / (line.production_t_per_h(1.0) * 4.0)
    )
    ahead = replace(lagging, produced_today_t=_on_track_t(site) + 3.0)
    assert production_bias_ka(line, ahead, T0_S, site) == 0.0
    targets, _ = RuleStrategy().decide(
        T0_S,
        _state(site, current_ka=380.0, produced_today_t=_on_track_t(site) - 3.0),
        _context(site, 0.0),
    )
    assert targets["potline", "L1"] == pytest.approx(380.0 + 8.01, abs=0.01)


def test_rule_uses_the_envelope_only_when_asked_and_budget_allows(site: SiteModel) -> None:
    state = _state(site, produced_today_t=_on_track_t(site))
    targets, _ = RuleStrategy(use_envelope=True).decide(T0_S, state, _context(site, 0.0))
    assert targets["potline", "L1"] == pytest.approx(380.0)  # ramp: 20 kA per 15 min
    deep = _state(site, current_ka=345.0, produced_today_t=_on_track_t(site))
    targets, _ = RuleStrategy(use_envelope=True).decide(T0_S, deep, _context(site, 0.0))
    assert targets["potline", "L1"] == pytest.approx(340.0)
    spent = _state(site, current_ka=345.0, deep_used_h=4.0, produced_today_t=_on_track_t(site))
    targets, _ = RuleStrategy(use_envelope=True).decide(T0_S, spent, _context(site, 0.0))
    assert targets["potline", "L1"] == pytest.approx(365.0)  # back towards the band


def test_rule_captive_fills_the_residual_within_its_limits() -> None:
    site = site_from_scenario(load_scenario("inner-mongolia-wind"))
    state = replace(_state(site, produced_today_t=1e6), captive_mw={"coal1": 550.0})
    targets, _ = RuleStrategy().decide(T0_S, state, _context(site, 1500.0))
    assert targets["captive", "coal1"] == 270.0  # min stable in a surplus
    targets, _ = RuleStrategy().decide(T0_S, state, _context(site, 0.0))
    assert targets["captive", "coal1"] == 600.0  # all it has in a deficit (grid takes the rest)


@settings(max_examples=150, deadline=None)
@given(
    current_ka=st.floats(0.0, 1000.0),
    heat_mwh=st.floats(-100.0, 100.0),
    produced_t=st.floats(0.0, 2000.0),
    deep_h=st.floats(0.0, 10.0),
    soc=st.floats(0.0, 1.0),
    captive_mw=st.floats(0.0, 2000.0),
    available_mw=st.floats(0.0, 5000.0),
    envelope=st.booleans(),
)
def test_rule_never_leaves_hard_limits(
    current_ka: float,
    heat_mwh: float,
    produced_t: float,
    deep_h: float,
    soc: float,
    captive_mw: float,
    available_mw: float,
    envelope: bool,
) -> None:
    site = site_from_scenario(load_scenario("inner-mongolia-wind"))
    state = replace(
        _state(
            site,
            soc=soc,
            current_ka=current_ka,
            heat_budget_mwh=heat_mwh,
            produced_today_t=produced_t,
            deep_used_h=deep_h,
        ),
        captive_mw={"coal1": captive_mw},
    )
    targets, _ = RuleStrategy(use_envelope=envelope).decide(
        T0_S, state, _context(site, available_mw)
    )
    for line in site.lines:
        assert line.hard_min_ka <= targets["potline", line.name] <= line.hard_max_ka
    for b in site.bess:
        assert -b.power_mw <= targets["bess", b.name] <= b.power_mw
    for c in site.captive:
        assert c.min_mw <= targets["captive", c.name] <= c.max_mw


# --- persistence forecast -------------------------------------------------------------------


def _history(days: float) -> tuple[np.ndarray, np.ndarray]:
    t = T0_S - days * 86_400.0 + np.arange(int(days * 96) + 1) * 900.0
    return t, 500.0 + 400.0 * np.sin(2 * np.pi * t / 86_400.0)


def test_persistence_is_yesterday_at_the_same_time_after_the_first_hour() -> None:
    times, mw = _history(2.0)
    cfg = PlannerConfig(horizon_h=24.0, step_min=15.0)
    fc = persistence_forecast(times, mw, T0_S, cfg, capacity_mw=2000.0)
    assert fc.times_s[0] == T0_S
    assert np.allclose(np.diff(fc.times_s), 900.0)
    mid = fc.times_s + 450.0
    expected = 500.0 + 400.0 * np.sin(2 * np.pi * (mid - 86_400.0) / 86_400.0)
    # linear interpolation of a 15-min sampled sine: within 0.4 % of its amplitude
    assert np.allclose(fc.p50_mw[4:], expected[4:], atol=1.5)
    # the first hour blends from the latest observation: step 0 is 7/8 of the way there
    assert fc.p50_mw[0] == pytest.approx(mw[-1] * 7 / 8 + np.interp(mid[0] - 86_400, times, mw) / 8)
    assert np.allclose(fc.p10_mw, 0.7 * fc.p50_mw)
    assert np.allclose(fc.p90_mw, np.minimum(1.3 * fc.p50_mw, 2000.0))


def test_persistence_holds_the_latest_where_yesterday_was_not_seen() -> None:
    times, mw = _history(0.5)  # observed since 12 h ago
    fc = persistence_forecast(times, mw, T0_S, PlannerConfig(), capacity_mw=2000.0)
    unseen = fc.times_s + 450.0 - 86_400.0 < times[0]  # the first 12 h of the horizon
    assert unseen.sum() == 48
    assert np.allclose(fc.p50_mw[unseen], mw[-1])
    assert np.allclose(fc.p50_mw[~unseen], np.interp(fc.times_s[~unseen] + 450 - 86_400, times, mw))
    empty = persistence_forecast(np.empty(0), np.empty(0), T0_S, PlannerConfig(), 2000.0)
    assert np.all(empty.p50_mw == 0.0)


def test_persistence_p90_is_capped_by_capacity() -> None:
    times = np.array([T0_S])
    fc = persistence_forecast(times, np.array([1900.0]), T0_S, PlannerConfig(), 2000.0)
    assert np.all(fc.p90_mw <= 2000.0)
    assert np.all(fc.p50_mw == 1900.0)


def test_persistence_beyond_a_day_looks_two_days_back() -> None:
    times, mw = _history(3.0)
    cfg = PlannerConfig(horizon_h=48.0, step_min=60.0)
    fc = persistence_forecast(times, mw, T0_S, cfg, capacity_mw=2000.0)
    mid = fc.times_s + 1800.0
    expected = 500.0 + 400.0 * np.sin(2 * np.pi * mid / 86_400.0)  # a daily cycle repeats
    assert np.allclose(fc.p50_mw[1:], expected[1:], atol=1.5)


# --- capture ratio --------------------------------------------------------------------------


def test_capture_ratio_arithmetic() -> None:
    def r(flat: float, mpc: float, oracle: float) -> dict[str, dict[str, object]]:
        return {
            "flat": {"renewable_used_mwh": flat},
            "mpc": {"renewable_used_mwh": mpc},
            "oracle": {"renewable_used_mwh": oracle},
        }

    assert capture_ratio(r(100.0, 150.0, 200.0)) == 0.5
    assert capture_ratio(r(100.0, 90.0, 200.0)) == -0.1
    assert capture_ratio(r(100.0, 150.0, 100.0)) is None  # no headroom
    assert capture_ratio(r(100.0, 150.0, 90.0)) is None
    assert capture_ratio({"flat": {"renewable_used_mwh": 1.0}}) is None
