"""A plan may start at any second: the daemon re-plans on events, not only on the 15-min grid.

Regression: with a start off the grid no step ended exactly at local midnight, so production
never restarted at midnight and the whole horizon was held to one day's target (the plan bent
the production and deep-band limits by hundreds of tonnes and hours).
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.planner import scheduler
from controller.planner.model import Axis, day_ends, day_starts
from controller.planner.types import LineState, PlannerConfig, PlantState
from controller.site import GridModel, LineModel, SiteModel
from forecasting.types import QuantileForecast

SITE = SiteModel(
    name="s",
    lines=(LineModel("L1"),),
    grid=GridModel(import_limit_mw=1000.0, export_limit_mw=0.0, carbon_t_per_mwh=0.6),
    utc_offset_h=8.0,
)
MIDNIGHT_LOCAL_S = 1_780_243_200.0  # 2026-06-01 00:00 +08:00


def _state(t_s: float) -> PlantState:
    line = SITE.lines[0]
    since_h = (t_s / 3600.0 + 8.0) % 24.0
    produced = line.production_t_per_h(line.nominal_current_ka) * since_h
    return PlantState(t_s=t_s, lines={"L1": LineState(current_ka=400.0, produced_today_t=produced)})


def _forecast(t_s: float, cfg: PlannerConfig) -> QuantileForecast:
    times = t_s + np.arange(cfg.steps) * cfg.step_min * 60.0
    flat = np.full(cfg.steps, 300.0)
    return QuantileForecast.point(times, flat)


@settings(max_examples=15, deadline=None)
@given(offset_s=st.integers(min_value=0, max_value=86_399))
def test_a_plan_off_the_grid_bends_nothing_a_plan_on_it_does_not(offset_s: int) -> None:
    cfg = PlannerConfig()
    t_s = MIDNIGHT_LOCAL_S + offset_s
    plan = scheduler.solve(SITE, _state(t_s), _forecast(t_s, cfg), cfg)
    assert plan.bent == {}, plan.bent


@given(offset_s=st.integers(min_value=0, max_value=86_399))
def test_each_local_midnight_in_the_horizon_ends_exactly_one_day(offset_s: int) -> None:
    cfg = PlannerConfig()
    axis = Axis(MIDNIGHT_LOCAL_S + offset_s, cfg.steps, cfg.step_h)
    starts = day_starts(SITE, axis)
    ends = day_ends(SITE, axis)
    # a new day starts at the first step at or after each local midnight in the horizon
    first_midnight_s = MIDNIGHT_LOCAL_S + (86_400.0 if offset_s > 0 else 0.0)
    after = np.flatnonzero(axis.times_s >= first_midnight_s)
    expected = {int(after[0])} if after.size else set()
    assert set(np.flatnonzero(starts).tolist()) == expected
    # the step before each of them ends a day, and so does the last step
    assert {k - 1 for k in expected if k > 0} | {axis.n - 1} == set(ends.tolist())
