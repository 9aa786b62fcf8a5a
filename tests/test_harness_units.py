"""Harness pieces on their own: scenario → site model, the strategies as planners and the
capture ratio, on hand-built inputs whose answers can be checked by hand."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.core.ports import PlanJob
from controller.planner.types import LineState, PlannerConfig, PlantState, SolveStatus
from controller.safety import SafetyLayer
from controller.site import SiteModel
from forecasting.types import QuantileForecast
from harness.backtest import capture_ratio
from harness.processes import ProcessExitedError, log_says
from harness.site_from_scenario import site_from_scenario
from harness.strategies import (
    FlatPlanner,
    OraclePlanner,
    RulePlanner,
    production_bias_ka,
)
from simulator.scenario import load_scenario
from wire import Source

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
    targets = RulePlanner().targets(
        T0_S, _state(site, produced_today_t=_on_track_t(site)), site, 2000.0
    )
    for line in site.lines:
        assert targets["potline", line.name] == pytest.approx(420.0)  # band top, ramp allows it
    assert targets["bess", "bess1"] == -100.0  # the rest charges the battery at full power


def test_rule_small_surplus_moves_current_by_its_share(site: SiteModel) -> None:
    nominal_mw = sum(ln.power_mw(400.0) for ln in site.lines) + site.auxiliary_load_mw
    state = _state(site, produced_today_t=_on_track_t(site))
    targets = RulePlanner().targets(T0_S, state, site, nominal_mw + 19.05)
    # each line takes half of 19.05 MW at dP/dI = 300 x (1.65 + 2 x 5.875e-3 x 400) mW/kA
    assert targets["potline", "L1"] == pytest.approx(400.0 + 9.525 / 1.905)
    assert targets["bess", "bess1"] == pytest.approx(0.0, abs=0.5)


def test_rule_deficit_goes_down_and_discharges(site: SiteModel) -> None:
    state = _state(site, produced_today_t=_on_track_t(site))
    targets = RulePlanner().targets(T0_S, state, site, 0.0)
    assert targets["potline", "L1"] == pytest.approx(380.0)
    assert targets["bess", "bess1"] == 100.0
    empty = RulePlanner().targets(
        T0_S, _state(site, soc=0.1, produced_today_t=_on_track_t(site)), site, 0.0
    )
    assert empty["bess", "bess1"] == 0.0  # at its SOC floor


def test_rule_heat_guard_steers_back_to_nominal(site: SiteModel) -> None:
    hot = _state(site, current_ka=415.0, heat_budget_mwh=20.0, produced_today_t=_on_track_t(site))
    targets = RulePlanner().targets(T0_S, hot, site, 2000.0)
    assert targets["potline", "L1"] == pytest.approx(400.0)  # surplus, but no more heat
    cold = _state(site, current_ka=385.0, heat_budget_mwh=-20.0, produced_today_t=1e6)
    targets = RulePlanner().targets(T0_S, cold, site, 0.0)
    assert targets["potline", "L1"] == pytest.approx(400.0)


def test_rule_production_guard_keeps_a_line_on_pace(site: SiteModel) -> None:
    line = site.lines[0]
    lagging = LineState(current_ka=380.0, produced_today_t=_on_track_t(site) - 3.0)
    # 08:00 local: 3 t behind, caught up within 4 h at 0.0936 t/h per kA
    bias_ka = 3.0 / (line.production_t_per_h(1.0) * 4.0)
    assert production_bias_ka(line, lagging, T0_S, site) == pytest.approx(bias_ka)
    ahead = replace(lagging, produced_today_t=_on_track_t(site) + 3.0)
    assert production_bias_ka(line, ahead, T0_S, site) == pytest.approx(-bias_ka)
    # behind, in a deficit: not below nominal, plus the bias (a lag held by a bias on top of
    # the band's bottom would never close)
    behind = _state(site, current_ka=400.0, produced_today_t=_on_track_t(site) - 3.0)
    targets = RulePlanner().targets(T0_S, behind, site, 0.0)
    assert targets["potline", "L1"] == pytest.approx(400.0 + bias_ka)
    assert bias_ka == pytest.approx(8.01, abs=0.01)
    # ahead, in a surplus: the lead is spent first, from the band's top
    lead = _state(site, current_ka=420.0, produced_today_t=_on_track_t(site) + 3.0)
    targets = RulePlanner().targets(T0_S, lead, site, 2000.0)
    assert targets["potline", "L1"] == pytest.approx(420.0 - bias_ka)
    # on pace, in a deficit: the band's bottom
    on_pace = _state(site, current_ka=380.0, produced_today_t=_on_track_t(site))
    assert RulePlanner().targets(T0_S, on_pace, site, 0.0)["potline", "L1"] == pytest.approx(380.0)


def test_rule_uses_the_envelope_only_when_asked_and_budget_allows(site: SiteModel) -> None:
    state = _state(site, produced_today_t=_on_track_t(site))
    targets = RulePlanner(use_envelope=True).targets(T0_S, state, site, 0.0)
    assert targets["potline", "L1"] == pytest.approx(380.0)  # ramp: 20 kA per 15 min
    deep = _state(site, current_ka=345.0, produced_today_t=_on_track_t(site))
    targets = RulePlanner(use_envelope=True).targets(T0_S, deep, site, 0.0)
    assert targets["potline", "L1"] == pytest.approx(340.0)
    spent = _state(site, current_ka=345.0, deep_used_h=4.0, produced_today_t=_on_track_t(site))
    targets = RulePlanner(use_envelope=True).targets(T0_S, spent, site, 0.0)
    assert targets["potline", "L1"] == pytest.approx(365.0)  # back towards the band


def test_rule_captive_fills_the_residual_within_its_limits() -> None:
    site = site_from_scenario(load_scenario("inner-mongolia-wind"))
    state = replace(_state(site, produced_today_t=1e6), captive_mw={"coal1": 550.0})
    targets = RulePlanner().targets(T0_S, state, site, 1500.0)
    assert targets["captive", "coal1"] == 270.0  # min stable in a surplus
    targets = RulePlanner().targets(T0_S, state, site, 0.0)
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
    targets = RulePlanner(use_envelope=envelope).targets(T0_S, state, site, available_mw)
    for line in site.lines:
        assert line.hard_min_ka <= targets["potline", line.name] <= line.hard_max_ka
    for b in site.bess:
        assert -b.power_mw <= targets["bess", b.name] <= b.power_mw
    for c in site.captive:
        assert c.min_mw <= targets["captive", c.name] <= c.max_mw


def _job(site: SiteModel, state: PlantState, available_mw: float) -> PlanJob:
    cfg = PlannerConfig()
    starts = T0_S + 900.0 * np.arange(cfg.steps)
    forecast = QuantileForecast.point(starts, np.full(cfg.steps, available_mw))
    return PlanJob(T0_S, site, state, forecast, cfg, "cycle")


def test_the_rules_plan_holds_its_decision_over_the_horizon(site: SiteModel) -> None:
    state = _state(site, produced_today_t=_on_track_t(site))
    rule = RulePlanner()
    schedule = rule.plan(_job(site, state, 2000.0))
    targets = rule.targets(T0_S, state, site, 2000.0)
    assert schedule.status == SolveStatus.OPTIMAL
    for line in site.lines:
        assert np.all(schedule.line_current_ka[line.name] == targets["potline", line.name])
    assert np.all(schedule.bess_power_mw["bess1"] == targets["bess", "bess1"])
    # the site balance of that decision: renewables take what the load leaves room for
    load_mw = sum(ln.power_mw(420.0) for ln in site.lines) + site.auxiliary_load_mw + 100.0
    assert schedule.renewable_used_mw[0] == pytest.approx(min(2000.0, load_mw))
    islanded = site_from_scenario(load_scenario("xinjiang-islanded"))
    plan = rule.plan(_job(islanded, _state(islanded, produced_today_t=1e6), 500.0))
    assert plan.captive_mw == {}  # islanded, the plant's frequency control moves the unit


def test_flat_plans_command_nothing(site: SiteModel) -> None:
    state = _state(site)
    schedule = FlatPlanner().plan(_job(site, state, 500.0))
    safety = SafetyLayer(site, validity_s=1800.0)
    assert safety.from_schedule(schedule, T0_S) == {}
    assert FlatPlanner().source == Source.FLAT


def test_the_oracle_plans_on_the_truth_not_the_forecast(site: SiteModel) -> None:
    asked: list[tuple[float, int, float]] = []

    def truth(start_s: float, steps: int, step_s: float) -> np.ndarray:
        asked.append((start_s, steps, step_s))
        return np.full(steps, 1500.0)

    schedule = OraclePlanner(truth).plan(_job(site, _state(site), 0.0))
    assert asked == [(T0_S, 96, 900.0)]
    assert np.all(schedule.forecast.p50_mw == 1500.0)
    assert np.all(schedule.forecast.p10_mw == schedule.forecast.p90_mw)


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


async def test_log_says_reads_the_log_off_the_loop_until_the_text_a_stop_or_the_process_ends(
    tmp_path: Path,
) -> None:
    log = tmp_path / "run.log"
    stop = asyncio.Event()
    stop.set()
    assert await log_says(log, "connected", stop=stop) is False  # no log yet, and stopped
    log.write_text("starting\nconnected to MQTT broker\n", encoding="utf-8")
    assert await log_says(log, "connected to MQTT") is True
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    await asyncio.to_thread(process.wait)
    with pytest.raises(ProcessExitedError) as exited:
        await log_says(log, "claiming it", process=process)
    assert exited.value.code == 3
