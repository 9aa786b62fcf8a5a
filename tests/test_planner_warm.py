"""Warm-started solves (controller/planner/highs.py) find what a cold solve finds.

A receding sequence of plans with new data each time (state, forecast, time) is solved twice:
on one HiGHS model warm-started from plan to plan, and cold on a fresh model each time.  The
objective must agree to the solver's tolerance at every plan, and so must the plan where the
LP's optimum is unique in it (the first step's setpoints, which are what the plant gets).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.planner.highs import HighsModel, LpResult, LpStatus
from controller.planner.model import Axis, build
from controller.planner.scheduler import fit_forecast, solve
from controller.planner.types import LineState, PlannerConfig, PlantState
from controller.site import BessModel, CaptiveModel, GridModel, LineModel, SiteModel
from forecasting.types import QuantileForecast

T0 = 1_780_272_000.0 + 20 * 3600.0  # 04:00 local: a sequence of 3 h crosses no midnight
OBJECTIVE_RTOL = 1e-7


def site_for(lines: int) -> SiteModel:
    return SiteModel(
        "warm",
        tuple(LineModel(f"L{i + 1}") for i in range(lines)),
        bess=(BessModel("b1"),),
        captive=(CaptiveModel("c1", min_mw=270.0, max_mw=600.0, ramp_mw_per_h=540.0),),
        grid=GridModel(2000.0, 100.0, 0.6),
        auxiliary_load_mw=40.0,
    )


def forecast(t_s: float, cfg: PlannerConfig, level_mw: float, wiggle: float) -> QuantileForecast:
    t = t_s + np.arange(cfg.steps) * cfg.step_min * 60.0
    hours = (t - T0) / 3600.0
    p50 = level_mw * (1.0 + wiggle * np.sin(hours * 0.9 + level_mw / 100.0))
    return QuantileForecast(t, 0.8 * p50, p50, 1.2 * p50)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.integers(1, 2),
    shift=st.booleans(),
    steps=st.lists(
        st.tuples(
            st.floats(300.0, 1200.0),  # renewable level [MW]
            st.floats(0.0, 0.5),  # its variation over the horizon
            st.floats(-12.0, 12.0),  # current change since the last plan [kA]
            st.floats(0.2, 0.8),  # BESS SOC
        ),
        min_size=3,
        max_size=5,
    ),
)
def test_warm_solves_give_the_cold_optimum(
    lines: int, shift: bool, steps: list[tuple[float, float, float, float]]
) -> None:
    site = site_for(lines)
    cfg = PlannerConfig(horizon_h=6.0, step_min=15.0)
    model = HighsModel(shift=shift)
    current = 400.0
    for k, (level_mw, wiggle, d_ka, soc) in enumerate(steps):
        t_s = T0 + k * cfg.step_min * 60.0
        current = min(max(current + d_ka, 360.0), 420.0)
        state = PlantState(
            t_s,
            {ln.name: LineState(current, produced_today_t=200.0) for ln in site.lines},
            {"b1": soc},
            {"c1": 400.0},
        )
        fc = forecast(t_s, cfg, level_mw, wiggle)
        warm = solve(site, state, fc, cfg, model=model)
        cold = solve(site, state, fc, cfg)
        assert warm.status == cold.status
        np.testing.assert_allclose(warm.objective, cold.objective, rtol=OBJECTIVE_RTOL, atol=1e-6)
    assert model.warm_solves == len(steps) - 1  # all but the first started from a basis


def test_a_change_of_structure_solves_cold_and_a_warm_failure_falls_back_to_cold(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another number of steps cannot reuse the basis: the model solves cold.  A warm run that
    fails (here: HiGHS's answer replaced by a failure) is solved again cold."""
    site = site_for(1)
    model = HighsModel()
    for horizon_h in (6.0, 6.0, 8.0):
        cfg = PlannerConfig(horizon_h=horizon_h, step_min=15.0)
        state = PlantState(T0, {"L1": LineState(400.0, produced_today_t=200.0)}, {"b1": 0.5})
        solve(site, state, forecast(T0, cfg, 700.0, 0.3), cfg, model=model)
    assert (model.warm_solves, model.cold_solves) == (1, 2)

    cfg = PlannerConfig(horizon_h=8.0, step_min=15.0)
    state = PlantState(T0, {"L1": LineState(405.0, produced_today_t=200.0)}, {"b1": 0.6})
    axis = Axis.for_config(T0, cfg, site.utc_offset_h)
    lp, _ = build(site, state, fit_forecast(forecast(T0, cfg, 650.0, 0.2), axis), cfg, axis, None)
    runs: list[bool] = []
    real = HighsModel._run

    def failing_warm(self: HighsModel, deadline_s: float, *, warm: bool) -> LpResult:
        runs.append(warm)
        if warm:
            return LpResult(LpStatus.FAILED, None, float("nan"), "Unknown", warm, 0)
        return real(self, deadline_s, warm=warm)

    monkeypatch.setattr(HighsModel, "_run", failing_warm)
    result = model.solve(lp, axis.times_s, cfg.time_limit_s)
    reference = HighsModel(warm=False).solve(lp, axis.times_s, cfg.time_limit_s)
    assert runs == [True, False, False]
    assert result.status == LpStatus.OPTIMAL and not result.warm
    np.testing.assert_allclose(result.objective, reference.objective, rtol=OBJECTIVE_RTOL)


def test_the_first_setpoints_of_a_warm_plan_match_a_cold_one() -> None:
    """Where the optimum is unique in the first step (a surplus the lines must absorb, ramp
    bound), the warm plan's first setpoints are the cold plan's."""
    site = site_for(1)
    cfg = PlannerConfig(horizon_h=6.0, step_min=15.0)
    model = HighsModel()
    for k in range(4):
        t_s = T0 + k * cfg.step_min * 60.0
        state = PlantState(
            t_s, {"L1": LineState(400.0 + 5 * k, produced_today_t=200.0)}, {"b1": 0.5}
        )
        fc = forecast(t_s, cfg, 1500.0 + 20 * k, 0.1)
        warm = solve(site, state, fc, cfg, model=model)
        cold = solve(site, state, fc, cfg)
        np.testing.assert_allclose(
            warm.line_current_ka["L1"][0], cold.line_current_ka["L1"][0], atol=1e-6
        )
        np.testing.assert_allclose(warm.objective, cold.objective, rtol=OBJECTIVE_RTOL)
    assert model.warm_solves == 3
