"""Receding-horizon schedule for pot-line current, BESS and captive unit (LP, HiGHS).

``solve(site, state, forecast, config)`` builds the LP of :mod:`controller.planner.model`,
solves it with HiGHS (:mod:`controller.planner.highs`, warm-started from the planner's last
solve when given its model) under a time limit and returns a :class:`Schedule`.  It never
comes back empty: limits that can bend are soft with priced slack (reported in
``Schedule.bent``), and when the solver fails or runs out of time without a solution it
returns :func:`fallback` (nominal current, BESS idle, captive unit holding) with the reason.
Trajectories in the schedule are rolled forward with the same recursions that built the
constraints (:mod:`controller.planner.recursion`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from controller.planner.highs import HighsModel, LpStatus
from controller.planner.lineheat import heat_budget, heat_gain_h, hx_lag
from controller.planner.lp import FloatArray
from controller.planner.model import Axis, Built, bess_energy, build
from controller.planner.types import (
    LineState,
    PlannerConfig,
    PlantState,
    Schedule,
    SolveStatus,
)
from controller.site import LineModel, SiteModel
from forecasting.types import QuantileForecast

BENT_TOLERANCE = 1e-6


def solve(
    site: SiteModel,
    state: PlantState,
    forecast: QuantileForecast,
    config: PlannerConfig,
    reference: Schedule | None = None,
    model: HighsModel | None = None,
) -> Schedule:
    """Plan from ``state`` over ``config.horizon_h``; linearise around ``reference`` (the previous
    plan) when given.  ``model``: the planner's HiGHS model, warm-started from its last solve
    (None: a cold solve on a fresh one).  Never raises on bad numbers or solver trouble: returns
    a fallback."""
    t_start = time.perf_counter()
    try:
        axis = Axis.for_config(state.t_s, config, site.utc_offset_h)
    except ValueError as exc:
        return fallback(site, state, forecast, config, f"bad grid: {exc}", solve_ms=_ms(t_start))
    fc = fit_forecast(forecast, axis)
    try:
        lp, built = build(site, state, fc, config, axis, reference)
        res = (model or HighsModel(warm=False)).solve(
            lp, axis.times_s, config.time_limit_s, started_s=t_start
        )
    except ValueError as exc:
        return fallback(
            site, state, fc, config, f"model could not be built: {exc}", solve_ms=_ms(t_start)
        )
    solve_ms = _ms(t_start)
    if res.x is None or res.status == LpStatus.FAILED:
        return fallback(site, state, fc, config, f"solver: {res.message}", solve_ms=solve_ms)
    status = SolveStatus.OPTIMAL if res.status == LpStatus.OPTIMAL else SolveStatus.TIME_LIMIT
    x = np.asarray(res.x, dtype=float)
    currents = {name: x[cols] for name, cols in built.current.items()}
    bess = {name: x[built.discharge[name]] - x[built.charge[name]] for name in built.charge}
    captive = {name: x[cols] for name, cols in built.captive.items()}
    grid = (
        x[built.grid_in] - x[built.grid_out]
        if built.grid_in is not None and built.grid_out is not None
        else np.zeros(axis.n)
    )
    if built.grid_in_margin is not None:
        grid = grid + x[built.grid_in_margin]
    dispatch = _Dispatch(currents, bess, captive, grid, x[built.used])
    return _schedule(
        site,
        state,
        fc,
        axis,
        dispatch,
        status=status,
        bent=_bent(built, x),
        objective=res.objective,
        solve_ms=solve_ms,
    )


def fallback(
    site: SiteModel,
    state: PlantState,
    forecast: QuantileForecast,
    config: PlannerConfig,
    reason: str,
    *,
    solve_ms: float = 0.0,
) -> Schedule:
    """The safe plan: nominal current, BESS idle, captive unit holding its present output."""
    currents = {ln.name: ln.nominal_current_ka for ln in site.lines}
    bess = dict.fromkeys((b.name for b in site.bess), 0.0)
    captive = {
        c.name: min(max(state.captive_mw.get(c.name, c.min_mw), c.min_mw), c.max_mw)
        for c in site.captive
    }
    return hold(
        site,
        state,
        forecast,
        config,
        currents,
        bess,
        captive,
        status=SolveStatus.FALLBACK,
        reason=reason,
        solve_ms=solve_ms,
    )


def hold(
    site: SiteModel,
    state: PlantState,
    forecast: QuantileForecast,
    config: PlannerConfig,
    currents_ka: Mapping[str, float],
    bess_mw: Mapping[str, float],
    captive_mw: Mapping[str, float],
    *,
    status: SolveStatus,
    reason: str = "",
    solve_ms: float = 0.0,
) -> Schedule:
    """A plan that holds the given setpoints over the whole horizon, with the trajectories
    (heat budget, SOC, production) and the site balance they give.  Lines and BESS left out
    are taken at nominal and idle for the trajectories; captive units left out are not
    commanded (the plant's own control moves them).  The fallback plan is one; so is a
    rule-based controller's decision."""
    try:
        axis = Axis.for_config(state.t_s, config, site.utc_offset_h)
    except ValueError:
        axis = Axis(state.t_s, config.steps, config.step_h)
    fc = fit_forecast(forecast, axis)
    n = axis.n
    currents = {
        ln.name: np.full(n, float(currents_ka.get(ln.name, ln.nominal_current_ka)))
        for ln in site.lines
    }
    bess = {b.name: np.full(n, float(bess_mw.get(b.name, 0.0))) for b in site.bess}
    captive = {name: np.full(n, float(mw)) for name, mw in captive_mw.items()}
    load = sum(ln.power_mw(float(currents[ln.name][0])) for ln in site.lines)
    load += site.auxiliary_load_mw + sum(max(-float(p[0]), 0.0) for p in bess.values())
    fixed = sum(float(p[0]) for p in captive.values()) + sum(
        max(float(p[0]), 0.0) for p in bess.values()
    )
    room = np.full(n, max(load - fixed, 0.0))
    used = np.minimum(fc.p50_mw, room)
    grid = room - used if site.grid is not None else np.zeros(n)
    dispatch = _Dispatch(currents, bess, captive, grid, used)
    return _schedule(
        site,
        state,
        fc,
        axis,
        dispatch,
        status=status,
        bent={},
        objective=float("nan"),
        solve_ms=solve_ms,
        reason=reason,
    )


def fit_forecast(forecast: QuantileForecast, axis: Axis) -> QuantileForecast:
    """The forecast on the planner's axis; NaN → 0.

    On a uniform grid, value k is the forecast's value k (truncated, or padded with its last
    value).  On a non-uniform one the forecast is read as a step function on its own times
    (each value holds until the next time, the last one on) and averaged over each step.
    """
    times = np.asarray(forecast.times_s, dtype=float)
    if (
        times.shape == axis.times_s.shape
        and np.allclose(times, axis.times_s, rtol=0.0, atol=1e-6)
        and all(np.isfinite(v).all() for v in (forecast.p10_mw, forecast.p50_mw, forecast.p90_mw))
    ):
        return forecast  # already on the planner's steps (the daemon's and backtest's case)
    fine = (
        axis.n > 1
        and not np.allclose(axis.dt_h, axis.dt_h[0], rtol=0.0, atol=1e-9)
        and times.size > 1
        and bool(np.all(np.diff(times) > 0.0))
    )

    def fit(v: FloatArray) -> FloatArray:
        v = np.nan_to_num(np.asarray(v, dtype=float), nan=0.0, posinf=0.0, neginf=0.0)
        if fine:
            return np.asarray(np.maximum(step_average(times, v, axis.edges_s + axis.t0_s), 0.0))
        if v.size < axis.n:
            v = np.concatenate([v, np.full(axis.n - v.size, v[-1] if v.size else 0.0)])
        return np.asarray(np.maximum(v[: axis.n], 0.0), dtype=float)

    p50 = fit(forecast.p50_mw)
    return QuantileForecast(
        axis.times_s,
        p10_mw=np.minimum(fit(forecast.p10_mw), p50),
        p50_mw=p50,
        p90_mw=np.maximum(fit(forecast.p90_mw), p50),
    )


def step_average(times_s: FloatArray, values: FloatArray, edges_s: FloatArray) -> FloatArray:
    """The mean over [edges_s[k], edges_s[k+1]) of the step function that takes values[j] on
    [times_s[j], times_s[j+1]) (values[0] before times_s[0], the last value after the last)."""
    knots = np.concatenate([times_s[1:], edges_s])
    order = np.unique(knots)
    held = values[np.clip(np.searchsorted(times_s, order[:-1], side="right") - 1, 0, None)]
    area = np.concatenate([[0.0], np.cumsum(held * np.diff(order))])
    at_edges = np.interp(edges_s, order, area)
    return np.asarray(np.diff(at_edges) / np.diff(edges_s), dtype=np.float64)


def _ms(t_start: float) -> float:
    return (time.perf_counter() - t_start) * 1e3


@dataclass(frozen=True)
class _Dispatch:
    """A plan's decisions per step, before the trajectories are rolled forward."""

    currents: dict[str, FloatArray]
    bess: dict[str, FloatArray]
    captive: dict[str, FloatArray]
    grid: FloatArray
    used: FloatArray


def _bent(built: Built, x: FloatArray) -> dict[str, float]:
    bent = {}
    for name, cols in built.slacks.items():
        total = float(np.sum(x[cols]))
        if total > BENT_TOLERANCE:
            bent[name.removeprefix("slack:")] = total
    return bent


def heat_trajectory(
    line: LineModel, ls: LineState, current_ka: FloatArray, dt_h: FloatArray | float
) -> FloatArray:
    """H at the end of each step for a current trajectory, with the true (nonlinear) Q(I)."""
    dt = np.broadcast_to(np.asarray(dt_h, dtype=float), np.shape(current_ka)).copy()
    dq = line.heat_mw(np.asarray(current_ka, dtype=np.float64)) - line.heat_mw(
        line.nominal_current_ka
    )
    hx, hx_in = hx_lag(line, dt)
    u_next = hx.trajectory(ls.hx_lag_mw, [(dq, hx_in)])
    u = np.concatenate([[ls.hx_lag_mw], u_next[:-1]])
    g = heat_gain_h(line, dt)
    return heat_budget(line, dt).trajectory(ls.heat_budget_mwh, [(dq, g), (u, -g)])


def _schedule(
    site: SiteModel,
    state: PlantState,
    fc: QuantileForecast,
    axis: Axis,
    d: _Dispatch,
    *,
    status: SolveStatus,
    bent: dict[str, float],
    objective: float,
    solve_ms: float,
    reason: str = "",
) -> Schedule:
    dt = axis.dt_h
    currents, bess = d.currents, d.bess
    heat, production = {}, {}
    for line in site.lines:
        ls = state.lines.get(line.name) or LineState(current_ka=line.nominal_current_ka)
        heat[line.name] = heat_trajectory(line, ls, currents[line.name], dt)
        # Faraday: production is proportional to current
        rate_t_per_kah = line.production_t_per_h(1.0, ls.pots_online)
        production[line.name] = rate_t_per_kah * currents[line.name] * dt
    soc = {}
    for b in site.bess:
        rec, c_ch, c_dis = bess_energy(b, dt)
        p = bess[b.name]
        e = rec.trajectory(
            state.bess_soc_frac.get(b.name, 0.5) * b.energy_mwh,
            [(np.maximum(-p, 0.0), c_ch), (np.maximum(p, 0.0), c_dis)],
        )
        soc[b.name] = e / b.energy_mwh
    return Schedule(
        plan_id=uuid.uuid4().hex[:12],
        status=status,
        times_s=axis.times_s,
        step_s=float(dt[0] * 3600.0) if dt.size else 0.0,
        line_current_ka=currents,
        bess_power_mw=bess,
        bess_soc_frac=soc,
        captive_mw=d.captive,
        grid_mw=d.grid,
        renewable_used_mw=d.used,
        curtailed_mw=np.maximum(fc.p50_mw - d.used, 0.0),
        heat_budget_mwh=heat,
        production_t=production,
        forecast=fc,
        bent=bent,
        objective=objective,
        solve_ms=solve_ms,
        reason=reason,
        step_lengths_s=dt * 3600.0,
    )
