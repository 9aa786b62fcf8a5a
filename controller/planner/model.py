"""The scheduler's LP, one constraint family per builder (equations in each docstring).

Notation per step k (Δ hours): I_l line current [kA]; P_l(I) ≈ p0 + p1·I line power and
ΔQ_l(I) ≈ q0 + q1·I heat deviation from nominal [MW], tangents at a reference current that is
re-chosen every cycle; r renewable used; ch/dis BESS charge/discharge; E BESS energy; c captive
output; g⁺/g⁻ grid import/export; all [MW] or [MWh].  Soft limits carry priced slack in blocks
named ``slack:<family>``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from controller.planner.lineheat import heat_budget, heat_gain_h, heat_gap_mw, hx_lag
from controller.planner.lp import FloatArray, IntArray, LinearProgram
from controller.planner.recursion import Recursion, Term
from controller.planner.types import (
    LineState,
    PlannerConfig,
    PlantState,
    Schedule,
    far_step_problem,
)
from controller.site import BessModel, CaptiveModel, LineModel, SiteModel
from forecasting.types import QuantileForecast

# Slack prices, in objective units (1 = one MWh of renewable energy).  Each is far above what
# bending the limit could gain, so a limit bends only when nothing else is feasible.
PRICE_UNSERVED_PER_MWH = 1e4
PRICE_HEAT_PER_MWH = 200.0
PRICE_PRODUCTION_PER_T = 300.0
PRICE_PRODUCTION_DRIFT_PER_T = PRICE_PRODUCTION_PER_T / 24.0
"""Per hourly checkpoint within the day: a tonne of drift that lasts a day costs what a tonne
missed at the day's end does."""
PRICE_SOC_PER_MWH = 100.0
PRICE_RESERVE_PER_MWH = 20.0
PRICE_EXCURSION_PER_KAH = 1e-3
"""Tiny cost on leaving the continuous band: among equal plans, prefer the gentler one."""
PRICE_DURATION_PER_KAH = 5.0
"""Beyond the band's duration budget (only when the present current already is)."""
PRICE_THROUGHPUT_PER_MWH = 0.08
"""Cost on each MWh through the BESS.  Without it the LP would charge and discharge at once to
burn surplus as losses and call it renewable use: that loop gains (1/η² − 1) = 0.136 MWh of
"use" per MWh discharged and costs (1/η² + 1)·0.08 = 0.17, so it never pays, while storing a
surplus for later still gains ≈ 0.8 per MWh."""
DISCOUNT_PER_H = 0.002
"""Renewable energy later in the horizon weighs this much less per hour of lead.  The forecast
is uncertain and the plan is re-made every cycle: without it, a surplus forecast to last is
absorbed by the BESS or the lines "later" as well as now, the LP picks later, and every cycle
puts it off again until the surplus is gone.  Costs and CO2 are not discounted: that would
put production off in the same way, towards the end of each day."""
HEAT_END_OF_DAY_FRAC = 0.2
"""At each local midnight |H| ≤ this fraction of B (soft): the budget comes back near 0."""
DAY_S = 86_400.0


class Axis:
    """The planner's time grid: step k covers [t0 + edges_s[k], t0 + edges_s[k + 1]).

    ``Axis(t0_s, n, dt_h)`` is the uniform grid; :meth:`for_config` also builds the
    non-uniform one (fine near, coarse far).
    """

    __slots__ = ("edges_s", "t0_s")

    def __init__(self, t0_s: float, n: int, dt_h: float) -> None:
        self.t0_s = float(t0_s)
        self.edges_s: FloatArray = np.arange(n + 1, dtype=np.float64) * dt_h * 3600.0
        """Step edges after ``t0_s`` [s], from 0 to the horizon (n + 1 values)."""

    @classmethod
    def from_edges(cls, t0_s: float, edges_s: FloatArray) -> Axis:
        axis = cls(t0_s, 0, 0.0)
        axis.edges_s = np.asarray(edges_s, dtype=np.float64)
        return axis

    @classmethod
    def for_config(cls, t0_s: float, cfg: PlannerConfig, utc_offset_h: float) -> Axis:
        """``cfg.step_min`` for ``cfg.near_h``, then ``cfg.far_step_min`` steps whose edges sit
        on local whole multiples of it (one bridging step gets there, so local midnights are
        edges); the last step ends at the horizon.  Uniform when ``far_step_min`` is None or
        no coarser than ``step_min``."""
        far_min = cfg.far_step_min
        if far_min is None or far_min <= cfg.step_min or cfg.near_h >= cfg.horizon_h:
            return cls(t0_s, cfg.steps, cfg.step_h)
        problem = far_step_problem(far_min, cfg.step_min)
        if problem:
            raise ValueError(f"far_step_min {far_min:g}: {problem}")
        step_s, far_s = cfg.step_min * 60.0, far_min * 60.0
        horizon_s = cfg.steps * step_s
        near = np.arange(math.ceil(cfg.near_h * 3600.0 / step_s - 1e-9) + 1) * step_s
        # the first far edge: the next local whole multiple of far_s
        offset_s = utc_offset_h * 3600.0
        first_s = math.ceil((t0_s + near[-1] + offset_s) / far_s - 1e-9) * far_s - offset_s - t0_s
        far = first_s + np.arange(math.ceil((horizon_s - first_s) / far_s - 1e-9) + 1) * far_s
        edges = np.minimum(np.concatenate([near, far]), horizon_s)
        return cls.from_edges(t0_s, edges[np.concatenate([[True], np.diff(edges) > 1e-6])])

    @property
    def n(self) -> int:
        return int(self.edges_s.size - 1)

    @property
    def dt_h(self) -> FloatArray:
        """Each step's length [h]."""
        return np.asarray(np.diff(self.edges_s) / 3600.0, dtype=np.float64)

    @property
    def times_s(self) -> FloatArray:
        """Start of each step [s]."""
        return np.asarray(self.t0_s + self.edges_s[:-1], dtype=np.float64)

    @property
    def ends_s(self) -> FloatArray:
        return np.asarray(self.t0_s + self.edges_s[1:], dtype=np.float64)


@dataclass
class Built:
    """Column blocks the extraction needs, and the fixed parts of linearised expressions."""

    current: dict[str, IntArray]
    charge: dict[str, IntArray]
    discharge: dict[str, IntArray]
    captive: dict[str, IntArray]
    used: IntArray
    grid_in: IntArray | None
    grid_out: IntArray | None
    slacks: dict[str, IntArray]
    grid_in_margin: IntArray | None = None
    """Import into the margin below the limit (:func:`import_margin_mw`), priced extra."""


def _reference_currents(
    line: LineModel, state: PlantState, axis: Axis, reference: Schedule | None
) -> FloatArray:
    """Where to linearise: the previous plan's currents at these times, else the present one."""
    now = (
        state.lines[line.name].current_ka if line.name in state.lines else (line.nominal_current_ka)
    )
    ref = np.full(axis.n, now)
    if reference is not None and line.name in reference.line_current_ka:
        idx = np.searchsorted(reference.times_s, axis.times_s, side="right") - 1
        ok = (idx >= 0) & (idx < reference.times_s.size)
        ref[ok] = reference.line_current_ka[line.name][idx[ok]]
    lo = line.deep_low_frac * line.nominal_current_ka
    return np.asarray(np.clip(ref, lo, line.high_max_frac * line.nominal_current_ka), dtype=float)


def build(
    site: SiteModel,
    state: PlantState,
    fc: QuantileForecast,
    cfg: PlannerConfig,
    axis: Axis,
    reference: Schedule | None,
) -> tuple[LinearProgram, Built]:
    lp = LinearProgram()
    n, dt = axis.n, axis.dt_h
    built = Built({}, {}, {}, {}, np.empty(0, np.int64), None, None, {})
    load_terms: list[tuple[IntArray, FloatArray]] = []
    load_const = np.full(n, float(site.auxiliary_load_mw))

    for line in site.lines:
        ls = state.lines.get(line.name)
        i_ref = _reference_currents(line, state, axis, reference)
        p0, p1 = tangent(line.power_mw, line.dpower_mw_per_ka, i_ref)
        i_now = ls.current_ka if ls else line.nominal_current_ka
        cur = add_line_band(lp, line, ls.available if ls else False, i_now, dt)
        built.current[line.name] = cur
        load_terms.append((cur, p1))
        load_const += p0
        add_line_ramp(lp, line, cur, ls.current_ka if ls else line.nominal_current_ka, dt)
        add_band_duration(
            lp, line, cur, ls.deep_used_h if ls else 0.0, ls.high_used_h if ls else 0.0, axis
        )
        add_heat_budget(lp, site, line, cur, i_ref, ls, axis)
        add_production(lp, site, line, cur, ls, axis, cfg)

    for b in site.bess:
        reserve = cfg.island_bess_reserve_frac if site.islanded else 0.0
        ch, dis, _ = add_bess(lp, b, state.bess_soc_frac.get(b.name, 0.5), dt, reserve)
        built.charge[b.name], built.discharge[b.name] = ch, dis
    for c in site.captive:
        built.captive[c.name] = add_captive(lp, c, state.captive_mw.get(c.name, c.min_mw), dt, cfg)
    usable = fc.p50_mw + cfg.supply_upside_frac * (fc.p90_mw - fc.p50_mw)
    built.used = lp.var(
        "renewable_used", n, 0.0, usable, -cfg.weight_renewable_per_mwh * renewable_weight_h(axis)
    )
    add_grid(lp, site, built, axis, cfg)
    add_energy_balance(lp, site, built, load_terms, load_const, axis)
    if cfg.reserve_p10:
        add_reserve(lp, site, built, load_terms, load_const, fc, axis)
    built.slacks = {k: v for k, v in lp.blocks.items() if k.startswith("slack:")}
    return lp, built


def renewable_weight_h(axis: Axis) -> FloatArray:
    """The weight of each step's renewable energy in the objective [h]: its length, discounted
    by :data:`DISCOUNT_PER_H` per hour of lead (at the step's middle)."""
    mid_h = (axis.edges_s[:-1] + axis.edges_s[1:]) / 7200.0
    return np.asarray(axis.dt_h * (1.0 - DISCOUNT_PER_H * mid_h), dtype=np.float64)


def tangent(
    f: Callable[[FloatArray], FloatArray], df: Callable[[FloatArray], FloatArray], x: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """f(x) ≈ c0 + c1·x near each x[k]: (c0, c1)."""
    x = np.asarray(x, dtype=np.float64)
    c1 = np.asarray(df(x), dtype=np.float64)
    return np.asarray(f(x), dtype=np.float64) - c1 * x, c1


def add_line_band(
    lp: LinearProgram, line: LineModel, available: bool, i_now_ka: float, dt: FloatArray
) -> IntArray:
    """Current envelope: deep_low·I_N ≤ I[k] ≤ high_max·I_N, widened for the first steps to what
    the ramp can reach when the present current is outside it (after an outage or a manual
    period) so that the plan leads back at the ramp rate instead of being infeasible.  A line
    whose telemetry is stale is held at nominal (I[k] = I_N), or as near as the ramp allows."""
    i_n = line.nominal_current_ka
    n = dt.size
    reach = line.ramp_ka_per_h * np.cumsum(dt)
    lo_env, hi_env = (
        (i_n, i_n) if not available else (line.deep_low_frac * i_n, line.high_max_frac * i_n)
    )
    lo = np.minimum(lo_env, i_now_ka + reach)
    hi = np.maximum(hi_env, i_now_ka - reach)
    return lp.var(f"I-{line.name}", n, lo, hi)


def add_line_ramp(
    lp: LinearProgram, line: LineModel, cur: IntArray, i_now_ka: float, dt: FloatArray
) -> None:
    """Ramp: |I[k] − I[k−1]| ≤ ramp·Δ[k], with I[−1] the present current."""
    add_ramp(lp, f"{line.name}-ramp", cur, i_now_ka, line.ramp_ka_per_h * dt)


def add_ramp(lp: LinearProgram, family: str, col: IntArray, now: float, lim: FloatArray) -> None:
    """|z[k] − z[k−1]| ≤ lim[k] for the block ``col``, with z[−1] = ``now``: one ranged row
    per step."""
    n = len(col)
    k = np.arange(n)
    row = np.concatenate([k, k[1:]])
    cols = np.concatenate([col, col[:-1]])
    val = np.concatenate([np.ones(n), -np.ones(n - 1)])
    lb, ub = -lim, lim.copy()
    lb[0] += now
    ub[0] += now
    lp.rows(family, row, cols, val, lb, ub, n)


def add_band_duration(
    lp: LinearProgram,
    line: LineModel,
    cur: IntArray,
    deep_used_h: float,
    high_used_h: float,
    axis: Axis,
    *,
    hard: bool = False,
) -> None:
    """Excursions beyond the continuous band, limited per 24 h window (area form)::

        band_low·I_N ≤ I[k] + x⁻[k] − x⁺[k] ≤ band_high·I_N,  x± ≥ 0  (priced: x⁻ is the
        depth below the band, x⁺ the height above it)
        Σ_window x⁻·Δ ≤ (band_low − deep_low)·I_N · (deep_max_h − used)   (likewise x⁺)

    i.e. at most ``deep_max_h`` hours at full depth, or longer when shallower; the windows are
    the horizon's successive 24 h (by step start), the first one net of the hours used.  A
    side without depth (no deep or high band) has no x.  The budget is soft (priced slack,
    for a present current already beyond it) unless ``hard``.
    """
    n, dt = axis.n, axis.dt_h
    i_n = line.nominal_current_ka
    window = np.floor(axis.edges_s[:-1] / 86_400.0 + 1e-9)
    bounds = np.append(np.flatnonzero(np.diff(window, prepend=-1.0)), n)
    k = np.arange(n)
    rows, cols, vals = [k], [cur], [np.ones(n)]
    lb, ub = -np.inf, np.inf
    for side, sign, edge, depth, max_h, used in (
        (
            "deep",
            1.0,
            line.band_low_frac,
            line.band_low_frac - line.deep_low_frac,
            line.deep_max_h,
            deep_used_h,
        ),
        (
            "high",
            -1.0,
            line.band_high_frac,
            line.high_max_frac - line.band_high_frac,
            line.high_max_h,
            high_used_h,
        ),
    ):
        if depth <= 0:
            continue
        x = lp.var(f"x{side}-{line.name}", n, 0.0, np.inf, PRICE_EXCURSION_PER_KAH * dt)
        over = lp.var(
            f"slack:{line.name}-{side}-duration",
            1,
            0.0,
            0.0 if hard else np.inf,
            PRICE_DURATION_PER_KAH,
        )
        rows.append(k)
        cols.append(x)
        vals.append(np.full(n, sign))
        if sign > 0:
            lb = edge * i_n
        else:
            ub = edge * i_n
        for w, (a, b) in enumerate(itertools.pairwise(bounds.tolist())):
            budget_h = max(max_h - used, 0.0) if w == 0 else max_h
            lp.rows(
                f"{line.name}-{side}-duration",
                np.zeros(b - a + 1, np.int64),
                np.append(x[a:b], over),
                np.append(dt[a:b], -1.0),
                -np.inf,
                depth * i_n * budget_h,
                1,
            )
    if len(rows) > 1:
        lp.rows(
            f"{line.name}-excursion",
            np.concatenate(rows),
            np.concatenate(cols),
            np.concatenate(vals),
            lb,
            ub,
            n,
        )


def add_heat_budget(
    lp: LinearProgram,
    site: SiteModel,
    line: LineModel,
    cur: IntArray,
    i_ref: FloatArray,
    ls: LineState | None,
    axis: Axis,
) -> IntArray:
    """Heat budget with the exchanger lag (controller.planner.lineheat), ΔQ linearised at i_ref::

    u[k+1] = a_u·u[k] + (1 − a_u)·(q0 + q1·I[k])
    H[k+1] = a_H·H[k] + g·(q0 + q1·I[k]) − g·u[k]      (g: :func:`heat_gain_h`)
    −B − s⁻ ≤ H[k] ≤ B + s⁺;  |H| ≤ 0.2·B (+ s) at each local midnight and at the end
    """
    n, dt = axis.n, axis.dt_h
    st = ls if ls is not None else LineState(current_ka=line.nominal_current_ka)
    q0, q1 = tangent(line.heat_mw, line.dheat_mw_per_ka, i_ref)
    q0 = q0 - line.heat_mw(line.nominal_current_ka)
    # u[k] for k = 0..n-1: u0 is known, u[1..n-1] are variables
    hx, hx_in = hx_lag(line, dt[:-1])
    u_lo = np.full(n, -np.inf)
    u_hi = np.full(n, np.inf)
    u_lo[0] = u_hi[0] = st.hx_lag_mw  # u0 is known: a variable pinned by its bounds
    u = lp.var(f"u-{line.name}", n, u_lo, u_hi)
    if n > 1:
        r = hx.rows(u[1:], [Term(cur[:-1], hx_in * q1[:-1])], st.hx_lag_mw, hx_in * q0[:-1])
        lp.rows(f"{line.name}-hx_lag", r.row, r.col, r.val, r.rhs, r.rhs, n - 1)
    budget, g = heat_budget(line, dt), heat_gain_h(line, dt)
    h = lp.var(f"H-{line.name}", n, -np.inf, np.inf)
    r = budget.rows(h, [Term(cur, g * q1), Term(u, -g)], st.heat_budget_mwh, g * q0)
    lp.rows(f"{line.name}-heat_budget", r.row, r.col, r.val, r.rhs, r.rhs, n)
    # |ΔQ[k] − u[k]| ≤ gap (soft: after an outage the present gap may already exceed it)
    gap = heat_gap_mw(line, st.superheat_k, (axis.times_s - axis.t0_s) / 3600.0)
    k = np.arange(n)
    lp.soft_rows(
        f"{line.name}-heat_gap",
        np.concatenate([k, k]),
        np.concatenate([cur, u]),
        np.concatenate([q1, -np.ones(n)]),
        -gap - q0,
        gap - q0,
        PRICE_HEAT_PER_MWH * dt,
    )
    b = line.heat_budget_mwh
    lp.soft_range(f"{line.name}-heat", h, -b, b, PRICE_HEAT_PER_MWH)
    ends = day_ends(site, axis)
    lim = HEAT_END_OF_DAY_FRAC * b
    lp.soft_range(f"{line.name}-heat_day_end", h[ends], -lim, lim, PRICE_HEAT_PER_MWH)
    return h


def day_starts(site: SiteModel, axis: Axis) -> npt.NDArray[np.bool_]:
    """Whether step k is the first of a new local day.  A plan may start at any time (the
    daemon re-plans on events), so a step that straddles midnight belongs to the day it
    starts in and the next step starts the new day; on a grid aligned to midnight that is
    the step starting at midnight."""
    # site.local_day, on the array (step k's day, and the day a second before the first)
    days = np.floor_divide(
        np.append(axis.times_s[0] - 1.0, axis.times_s) / 3600.0 + site.utc_offset_h, 24.0
    )
    return np.asarray(days[1:] != days[:-1], dtype=np.bool_)


def day_ends(site: SiteModel, axis: Axis) -> IntArray:
    """Indices k of the last step of each local day in the horizon, plus the last step."""
    ends = np.flatnonzero(day_starts(site, axis)[1:])
    return np.unique(np.append(ends, axis.n - 1)).astype(np.int64)


def add_production(
    lp: LinearProgram,
    site: SiteModel,
    line: LineModel,
    cur: IntArray,
    ls: LineState | None,
    axis: Axis,
    cfg: PlannerConfig,
) -> None:
    """Production since local midnight, a recursion that restarts at each midnight::

        P[k+1] = a[k]·P[k] + Δ·ρ·I[k],   ρ = pots_online · 0.3356 · CE / 1000  [t/kA·h]
        target·f − s⁻ ≤ P[end of day] ≤ target·f·(1 + tol) + s⁺

    with a[k] = 0 where step k starts a new day (:func:`day_starts`), and f the time the day's
    production covers, in days: 1 for a whole day on a grid aligned to midnight, a step more or
    less when a step straddles midnight (it counts for the day it starts in), pro rata at the
    horizon's end.  P is bounded only at each day's end, so it enters the LP in closed form
    there (:meth:`Recursion.closed_form`): one row per day and no P variables.
    """
    n, dt = axis.n, axis.dt_h
    pots = ls.pots_online if ls is not None and ls.pots_online is not None else line.pots
    rho = line.production_t_per_h(1.0, pots)
    a = np.where(day_starts(site, axis), 0.0, 1.0)
    ends = day_ends(site, axis)
    # Beside each day's end: checkpoints at the end of the first step and hourly over the next
    # day, where production since the day's start keeps within ±drift of the pro-rata target
    # (production_drift_frac).  The first one binds the step being acted on: with the hourly
    # ones alone a plan could run up to an hour's swing beyond the drift, to be evened out
    # later, and a run (or a day) that ends meanwhile keeps it.  They sit a whole number of
    # hours after the plan's start, so that their number does not change from one plan to
    # the next (the warm-started model keeps its structure).
    since_start_s = axis.ends_s - axis.times_s[0]
    span_h = int(min(since_start_s[-1], DAY_S) // 3600.0)
    hourly = np.searchsorted(since_start_s, 3600.0 * np.arange(1, span_h + 1) - 1e-6)
    hours = np.unique(np.append(hourly, 0))
    checks = np.concatenate([ends, hours]).astype(np.int64)
    is_end = np.arange(checks.size) < ends.size
    p_end = Recursion(f"{line.name}-production", a).closed_form(
        checks, [Term(cur, dt * rho)], ls.produced_today_t if ls is not None else 0.0, n=n
    )
    # Each day's target covers the time its production counts: from local midnight for the
    # first day (produced_today counts from there), from its first step for later ones.
    starts = np.flatnonzero(day_starts(site, axis))
    midnight_s = site.local_day(axis.times_s[0]) * DAY_S - site.utc_offset_h * 3600.0
    frac = np.empty(checks.size)
    for j, e in enumerate(checks):
        later = starts[(starts > 0) & (starts <= e)]
        origin_s = axis.times_s[later[-1]] if later.size else midnight_s
        # a step straddling midnight counts for the day it starts in: so does its time
        frac[j] = (axis.ends_s[e] - origin_s) / DAY_S
    daily = line.daily_target_t * pots / line.pots
    target = daily * frac
    drift = cfg.production_drift_frac * daily
    lo = np.where(is_end, target, target - drift)
    hi = np.where(is_end, target * (1.0 + cfg.production_tolerance_frac), target + drift)
    lp.soft_rows(
        f"{line.name}-production",
        p_end.row,
        p_end.col,
        p_end.val,
        lo - p_end.const,
        hi - p_end.const,
        np.where(is_end, PRICE_PRODUCTION_PER_T, PRICE_PRODUCTION_DRIFT_PER_T),
    )


def bess_energy(b: BessModel, dt_h: FloatArray) -> tuple[Recursion, FloatArray, FloatArray]:
    """E[k+1] = E[k] + Δ·η·ch[k] − Δ/η·dis[k], η = √RTE: the recursion and its two coefficients."""
    eta = math.sqrt(b.round_trip_efficiency)
    return Recursion(f"{b.name}-soc", 1.0), dt_h * eta, -dt_h / eta


def add_bess(
    lp: LinearProgram, b: BessModel, soc_frac: float, dt: FloatArray, reserve_frac: float
) -> tuple[IntArray, IntArray, IntArray]:
    """BESS: 0 ≤ ch ≤ P, 0 ≤ dis ≤ (1 − ρ)·P; E by :func:`bess_energy`;
    E_min + ρ·P·1 h − s ≤ E ≤ E_max + s (soft, the present SOC may already be outside);
    terminal E[n] ≥ min(E0, E_mid) − s.  ρ is the share of power (and an hour of it in energy)
    kept back for the plant's fast frequency response: islanded sites only."""
    n = dt.size
    ch = lp.var(f"ch-{b.name}", n, 0.0, b.power_mw, PRICE_THROUGHPUT_PER_MWH * dt)
    dis = lp.var(
        f"dis-{b.name}", n, 0.0, (1.0 - reserve_frac) * b.power_mw, PRICE_THROUGHPUT_PER_MWH * dt
    )
    e = lp.var(f"E-{b.name}", n, 0.0, b.energy_mwh)  # physics: hard; the SOC band: soft
    rec, c_ch, c_dis = bess_energy(b, dt)
    e0 = soc_frac * b.energy_mwh
    r = rec.rows(e, [Term(ch, c_ch), Term(dis, c_dis)], e0)
    lp.rows(f"{b.name}-soc", r.row, r.col, r.val, r.rhs, r.rhs, n)
    lp.soft_range(
        f"{b.name}-soc",
        e,
        min(
            b.soc_min_frac * b.energy_mwh + reserve_frac * b.power_mw, b.soc_max_frac * b.energy_mwh
        ),
        b.soc_max_frac * b.energy_mwh,
        PRICE_SOC_PER_MWH,
    )
    mid = 0.5 * (b.soc_min_frac + b.soc_max_frac) * b.energy_mwh
    t = lp.var(f"slack:{b.name}-soc_terminal", 1, 0.0, np.inf, PRICE_SOC_PER_MWH)
    lp.rows(
        f"{b.name}-soc_terminal",
        np.zeros(2, np.int64),
        np.array([e[-1], t[0]]),
        np.ones(2),
        min(e0, mid),
        np.inf,
        1,
    )
    return ch, dis, e


def add_captive(
    lp: LinearProgram, c: CaptiveModel, now_mw: float, dt: FloatArray, cfg: PlannerConfig
) -> IntArray:
    """Captive unit: min ≤ c[k] ≤ max, |c[k] − c[k−1]| ≤ ramp·Δ with c[−1] the present output;
    cost w_co2·co2·c + w_cost·fuel·c per MWh."""
    n = dt.size
    cost = dt * (cfg.weight_co2_per_t * c.co2_t_per_mwh + cfg.weight_cost_per_cny * c.cost_per_mwh)
    col = lp.var(f"c-{c.name}", n, c.min_mw, c.max_mw, cost)
    lim = c.ramp_mw_per_h * dt
    # start from where it is, even if that is outside its limits: never an infeasible first step
    now = min(max(now_mw, c.min_mw - lim[0]), c.max_mw + lim[0])
    add_ramp(lp, f"{c.name}-ramp", col, now, lim)
    return col


def add_grid(
    lp: LinearProgram, site: SiteModel, built: Built, axis: Axis, cfg: PlannerConfig
) -> None:
    """Grid: 0 ≤ g⁺ ≤ limit − m, 0 ≤ m⁺ ≤ m, 0 ≤ g⁻ ≤ export limit; cost per MWh of import
    (g⁺ + m⁺) w_co2·carbon + w_cost·price(hour), of export −w_cost·export price + w_r
    (exported renewable energy is not used on site).

    m is the import margin, :func:`import_margin_mw`: supply varies within a step, and a plan
    that imports up to the limit makes the plant shed load on every dip.  Importing into the
    margin (m⁺, ``slack:import_margin``) is allowed at :data:`PRICE_RESERVE_PER_MWH` on top,
    so a site that cannot be fed otherwise still is, and the plan says so."""
    if site.grid is None:
        return
    g = site.grid
    dt = axis.dt_h
    price = np.array([g.import_price_per_mwh(site.local_hour(t)) for t in axis.times_s])
    cost = dt * (cfg.weight_co2_per_t * g.carbon_t_per_mwh + cfg.weight_cost_per_cny * price)
    margin = import_margin_mw(site, cfg)
    built.grid_in = lp.var("grid_import", axis.n, 0.0, g.import_limit_mw - margin, cost)
    built.grid_in_margin = lp.var(
        "slack:import_margin", axis.n, 0.0, margin, cost + PRICE_RESERVE_PER_MWH * dt
    )
    built.grid_out = lp.var(
        "grid_export",
        axis.n,
        0.0,
        g.export_limit_mw,
        cfg.weight_renewable_per_mwh * renewable_weight_h(axis)
        - dt * cfg.weight_cost_per_cny * g.export_per_mwh,
    )


def import_margin_mw(site: SiteModel, cfg: PlannerConfig) -> float:
    """The import kept free below the limit [MW]: the larger of ``import_margin_frac`` of the
    limit and ``variability_margin_frac`` of the site's wind and PV capacity, never more than
    the limit."""
    if site.grid is None:
        return 0.0
    variable_mw = sum(
        mw
        for name, mw in site.renewable_capacity_mw.items()
        if site.renewable_kind.get(name, "wind") != "hydro"
    )
    limit = site.grid.import_limit_mw
    return min(
        max(cfg.import_margin_frac * limit, cfg.variability_margin_frac * variable_mw), limit
    )


def _supply_terms(built: Built) -> list[tuple[IntArray, float]]:
    terms: list[tuple[IntArray, float]] = [(built.used, 1.0)]
    terms += [(c, 1.0) for c in built.captive.values()]
    terms += [(d, 1.0) for d in built.discharge.values()]
    terms += [(ch, -1.0) for ch in built.charge.values()]
    if built.grid_in is not None and built.grid_out is not None:
        terms += [(built.grid_in, 1.0), (built.grid_out, -1.0)]
    if built.grid_in_margin is not None:
        terms.append((built.grid_in_margin, 1.0))
    return terms


def add_energy_balance(
    lp: LinearProgram,
    site: SiteModel,
    built: Built,
    load_terms: list[tuple[IntArray, FloatArray]],
    load_const: FloatArray,
    axis: Axis,
) -> None:
    """Site balance per step::

        r + Σc + Σdis − Σch + g⁺ − g⁻ + s_short − s_over = Σ_l (p0 + p1·I_l) + aux

    s_short/s_over are unserved load and over-generation, priced far above anything else.
    """
    n = axis.n
    short = lp.var("slack:balance_short", n, 0.0, np.inf, PRICE_UNSERVED_PER_MWH * axis.dt_h)
    over = lp.var("slack:balance_over", n, 0.0, np.inf, PRICE_UNSERVED_PER_MWH * axis.dt_h)
    k = np.arange(n)
    rows, cols, vals = [], [], []
    for c, sign in [*_supply_terms(built), (short, 1.0), (over, -1.0)]:
        rows.append(k)
        cols.append(c)
        vals.append(np.full(n, sign))
    for c, p1 in load_terms:
        rows.append(k)
        cols.append(c)
        vals.append(-p1)
    lp.rows(
        "balance",
        np.concatenate(rows),
        np.concatenate(cols),
        np.concatenate(vals),
        load_const,
        load_const,
        n,
    )


def add_reserve(
    lp: LinearProgram,
    site: SiteModel,
    built: Built,
    load_terms: list[tuple[IntArray, FloatArray]],
    load_const: FloatArray,
    fc: QuantileForecast,
    axis: Axis,
) -> None:
    """P10 reserve: if supply comes in at P10, dispatchable headroom still covers the plan::

        Σ_l P_l + aux + Σch − Σdis ≤ r10 + C + import limit + s_res

    so a poor renewable outcome costs imports or captive fuel, not the heat budget or
    production (that matters in islanded and weak-grid sites).  C is what the captive units
    can give: Σ c_max on an island, where they follow the load; on a grid, where they hold
    their setpoint through the step and the grid takes the difference, their planned output
    Σ c[k] (moved to the left-hand side), so that a P10 step does not take imports over the
    limit and make the plant shed load.
    """
    n = axis.n
    planned = site.grid is not None
    headroom = fc.p10_mw + (0.0 if planned else sum(c.max_mw for c in site.captive))
    if site.grid is not None:
        headroom = headroom + site.grid.import_limit_mw
    s = lp.var("slack:reserve_p10", n, 0.0, np.inf, PRICE_RESERVE_PER_MWH * axis.dt_h)
    k = np.arange(n)
    rows, cols, vals = [k], [s], [-np.ones(n)]
    if planned:
        for c in built.captive.values():
            rows.append(k)
            cols.append(c)
            vals.append(-np.ones(n))
    for c, p1 in load_terms:
        rows.append(k)
        cols.append(c)
        vals.append(p1)
    for c in built.charge.values():
        rows.append(k)
        cols.append(c)
        vals.append(np.ones(n))
    for c in built.discharge.values():
        rows.append(k)
        cols.append(c)
        vals.append(-np.ones(n))
    lp.rows(
        "reserve_p10",
        np.concatenate(rows),
        np.concatenate(cols),
        np.concatenate(vals),
        -np.inf,
        headroom - load_const,
        n,
    )
