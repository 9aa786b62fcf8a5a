"""The scheduler's LP, one constraint family per builder (equations in each docstring).

Notation per step k (Δ hours): I_l line current [kA]; P_l(I) ≈ p0 + p1·I line power and
ΔQ_l(I) ≈ q0 + q1·I heat deviation from nominal [MW], tangents at a reference current that is
re-chosen every cycle; r renewable used; ch/dis BESS charge/discharge; E BESS energy; c captive
output; g⁺/g⁻ grid import/export; all [MW] or [MWh].  Soft limits carry priced slack in blocks
named ``slack:<family>``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from controller.lineheat import heat_budget, hx_lag
from controller.lp import FloatArray, IntArray, LinearProgram
from controller.planning import LineState, PlannerConfig, PlantState, Schedule, SupplyForecast
from controller.recursion import Recursion, Term
from controller.site import BessModel, CaptiveModel, LineModel, SiteModel

# Slack prices, in objective units (1 = one MWh of renewable energy).  Each is far above what
# bending the limit could gain, so a limit bends only when nothing else is feasible.
PRICE_UNSERVED_PER_MWH = 1e4
PRICE_HEAT_PER_MWH = 200.0
PRICE_PRODUCTION_PER_T = 300.0
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
HEAT_END_OF_DAY_FRAC = 0.2
"""At each local midnight |H| ≤ this fraction of B (soft): the budget comes back near 0."""
DAY_S = 86_400.0


@dataclass(frozen=True)
class Axis:
    t0_s: float
    n: int
    dt_h: float

    @property
    def times_s(self) -> FloatArray:
        return np.asarray(self.t0_s + np.arange(self.n) * self.dt_h * 3600.0, dtype=np.float64)


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
    fc: SupplyForecast,
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
        p1 = np.array([line.dpower_mw_per_ka(i) for i in i_ref])
        p0 = np.array([line.power_mw(i) for i in i_ref]) - p1 * i_ref
        i_now = ls.current_ka if ls else line.nominal_current_ka
        cur = add_line_band(lp, line, ls.available if ls else False, i_now, n, dt)
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
        ch, dis, _ = add_bess(lp, b, state.bess_soc_frac.get(b.name, 0.5), n, dt, reserve)
        built.charge[b.name], built.discharge[b.name] = ch, dis
    for c in site.captive:
        built.captive[c.name] = add_captive(
            lp, c, state.captive_mw.get(c.name, c.min_mw), n, dt, cfg, site
        )
    built.used = lp.var("renewable_used", n, 0.0, fc.p50_mw, -cfg.weight_renewable_per_mwh * dt)
    add_grid(lp, site, built, axis, cfg)
    add_energy_balance(lp, site, built, load_terms, load_const, axis)
    if cfg.reserve_p10:
        add_reserve(lp, site, built, load_terms, load_const, fc, axis)
    built.slacks = {k: v for k, v in lp.blocks.items() if k.startswith("slack:")}
    return lp, built


def add_line_band(
    lp: LinearProgram, line: LineModel, available: bool, i_now_ka: float, n: int, dt: float
) -> IntArray:
    """Current envelope: deep_low·I_N ≤ I[k] ≤ high_max·I_N, widened for the first steps to what
    the ramp can reach when the present current is outside it (after an outage or a manual
    period) so that the plan leads back at the ramp rate instead of being infeasible.  A line
    whose telemetry is stale is held at nominal (I[k] = I_N), or as near as the ramp allows."""
    i_n = line.nominal_current_ka
    reach = line.ramp_ka_per_h * dt * np.arange(1, n + 1)
    lo_env, hi_env = (
        (i_n, i_n) if not available else (line.deep_low_frac * i_n, line.high_max_frac * i_n)
    )
    lo = np.minimum(lo_env, i_now_ka + reach)
    hi = np.maximum(hi_env, i_now_ka - reach)
    return lp.var(f"I-{line.name}", n, lo, hi)


def add_line_ramp(
    lp: LinearProgram, line: LineModel, cur: IntArray, i_now_ka: float, dt: float
) -> None:
    """Ramp: |I[k] − I[k−1]| ≤ ramp·Δ, with I[−1] the present current."""
    n = len(cur)
    lim = line.ramp_ka_per_h * dt
    k = np.arange(n)
    row = np.concatenate([k, k[1:]])
    col = np.concatenate([cur, cur[:-1]])
    val = np.concatenate([np.ones(n), -np.ones(n - 1)])
    lb = np.full(n, -lim)
    ub = np.full(n, lim)
    lb[0] += i_now_ka
    ub[0] += i_now_ka
    lp.rows(f"{line.name}-ramp", row, col, val, lb, ub, n)


def add_band_duration(
    lp: LinearProgram,
    line: LineModel,
    cur: IntArray,
    deep_used_h: float,
    high_used_h: float,
    axis: Axis,
) -> None:
    """Excursions beyond the continuous band, limited per 24 h window (area form)::

        x⁻[k] ≥ band_low·I_N − I[k],  x⁺[k] ≥ I[k] − band_high·I_N,  x± ≥ 0
        Σ_window x⁻·Δ ≤ (band_low − deep_low)·I_N · (deep_max_h − used)   (likewise x⁺)

    i.e. at most ``deep_max_h`` hours at full depth, or longer when shallower.
    """
    n, dt = axis.n, axis.dt_h
    i_n = line.nominal_current_ka
    per_day = round(24.0 / dt)
    for side, sign, edge, depth, max_h, used in (
        (
            "deep",
            -1.0,
            line.band_low_frac,
            line.band_low_frac - line.deep_low_frac,
            line.deep_max_h,
            deep_used_h,
        ),
        (
            "high",
            1.0,
            line.band_high_frac,
            line.high_max_frac - line.band_high_frac,
            line.high_max_h,
            high_used_h,
        ),
    ):
        if depth <= 0:
            continue
        x = lp.var(f"x{side}-{line.name}", n, 0.0, np.inf, PRICE_EXCURSION_PER_KAH * dt)
        over = lp.var(f"slack:{line.name}-{side}-duration", 1, 0.0, np.inf, PRICE_DURATION_PER_KAH)
        k = np.arange(n)
        # sign·(I − edge·I_N) − x ≤ 0
        lp.rows(
            f"{line.name}-{side}-excursion",
            np.concatenate([k, k]),
            np.concatenate([cur, x]),
            np.concatenate([np.full(n, sign), -np.ones(n)]),
            -np.inf,
            sign * edge * i_n,
            n,
        )
        windows = [(s, min(s + per_day, n)) for s in range(0, n, per_day)]
        for w, (a, b) in enumerate(windows):
            budget_h = max(max_h - used, 0.0) if w == 0 else max_h
            lp.rows(
                f"{line.name}-{side}-duration",
                np.zeros(b - a + 1, np.int64),
                np.append(x[a:b], over),
                np.append(np.full(b - a, dt), -1.0),
                -np.inf,
                depth * i_n * budget_h,
                1,
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
    """Heat budget with the exchanger lag (controller.lineheat), ΔQ linearised at i_ref::

    u[k+1] = a_u·u[k] + (1 − a_u)·(q0 + q1·I[k])
    H[k+1] = a_H·H[k] + Δ·(q0 + q1·I[k]) − Δ·u[k]
    −B − s⁻ ≤ H[k] ≤ B + s⁺;  |H| ≤ 0.2·B (+ s) at each local midnight and at the end
    """
    n, dt = axis.n, axis.dt_h
    st = ls if ls is not None else LineState(current_ka=line.nominal_current_ka)
    q1 = np.array([line.dheat_mw_per_ka(i) for i in i_ref])
    q0 = (
        np.array([line.heat_mw(i) for i in i_ref])
        - q1 * i_ref
        - line.heat_mw(line.nominal_current_ka)
    )
    # u[k] for k = 0..n-1: u0 is known, u[1..n-1] are variables
    hx, hx_in = hx_lag(line, dt)
    u = lp.var(f"u-{line.name}", n, -np.inf, np.inf)
    lp.rows(
        f"{line.name}-u0", np.zeros(1, np.int64), u[:1], np.ones(1), st.hx_lag_mw, st.hx_lag_mw, 1
    )
    if n > 1:
        r = hx.rows(u[1:], [Term(cur[:-1], hx_in * q1[:-1])], st.hx_lag_mw, hx_in * q0[:-1])
        # the first row of rows() has u[1] − a·u0 = ...; u0 is a variable pinned above, so
        # the known-x0 form is exact
        lp.rows(f"{line.name}-hx_lag", r.row, r.col, r.val, r.rhs, r.rhs, n - 1)
    budget = heat_budget(line, dt)
    h = lp.var(f"H-{line.name}", n, -np.inf, np.inf)
    r = budget.rows(h, [Term(cur, dt * q1), Term(u, -dt)], st.heat_budget_mwh, dt * q0)
    lp.rows(f"{line.name}-heat_budget", r.row, r.col, r.val, r.rhs, r.rhs, n)
    # |ΔQ[k] − u[k]| ≤ gap (soft: after an outage the present gap may already exceed it)
    gap = line.heat_gap_kw_per_pot * line.pots * 1e-3
    g_s = lp.var(f"slack:{line.name}-heat_gap", n, 0.0, np.inf, PRICE_HEAT_PER_MWH * dt)
    k = np.arange(n)
    for sign, family in ((1.0, "heat_gap_high"), (-1.0, "heat_gap_low")):
        lp.rows(
            f"{line.name}-{family}",
            np.concatenate([k, k, k]),
            np.concatenate([cur, u, g_s]),
            np.concatenate([sign * q1, np.full(n, -sign), -np.ones(n)]),
            -np.inf,
            gap - sign * q0,
            n,
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
    days = np.array([site.local_day(t) for t in axis.times_s])
    first = site.local_day(axis.times_s[0]) != site.local_day(axis.times_s[0] - 1.0)
    return np.concatenate([[first], days[1:] != days[:-1]])


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
    horizon's end.
    """
    n, dt = axis.n, axis.dt_h
    pots = ls.pots_online if ls is not None and ls.pots_online is not None else line.pots
    rho = line.production_t_per_h(1.0, pots)
    a = np.where(day_starts(site, axis), 0.0, 1.0)
    prod = lp.var(f"P-{line.name}", n, -np.inf, np.inf)
    r = Recursion(f"{line.name}-production", a).rows(
        prod, [Term(cur, dt * rho)], ls.produced_today_t if ls is not None else 0.0
    )
    lp.rows(f"{line.name}-production", r.row, r.col, r.val, r.rhs, r.rhs, n)
    ends = day_ends(site, axis)
    # Each day's target covers the time its production counts: from local midnight for the
    # first day (produced_today counts from there), from its first step for later ones.
    starts = np.flatnonzero(day_starts(site, axis))
    midnight_s = site.local_day(axis.times_s[0]) * DAY_S - site.utc_offset_h * 3600.0
    frac = np.empty(ends.size)
    for j, e in enumerate(ends):
        later = starts[(starts > 0) & (starts <= e)]
        origin_s = axis.times_s[later[-1]] if later.size else midnight_s
        # a step straddling midnight counts for the day it starts in: so does its time
        frac[j] = (axis.times_s[e] + dt * 3600.0 - origin_s) / DAY_S
    target = line.daily_target_t * pots / line.pots * frac
    lp.soft_range(
        f"{line.name}-production",
        prod[ends],
        target,
        target * (1.0 + cfg.production_tolerance_frac),
        PRICE_PRODUCTION_PER_T,
    )


def bess_energy(b: BessModel, dt_h: float) -> tuple[Recursion, float, float]:
    """E[k+1] = E[k] + Δ·η·ch[k] − Δ/η·dis[k], η = √RTE: the recursion and its two coefficients."""
    eta = math.sqrt(b.round_trip_efficiency)
    return Recursion(f"{b.name}-soc", 1.0), dt_h * eta, -dt_h / eta


def add_bess(
    lp: LinearProgram, b: BessModel, soc_frac: float, n: int, dt: float, reserve_frac: float
) -> tuple[IntArray, IntArray, IntArray]:
    """BESS: 0 ≤ ch ≤ P, 0 ≤ dis ≤ (1 − ρ)·P; E by :func:`bess_energy`;
    E_min + ρ·P·1 h − s ≤ E ≤ E_max + s (soft, the present SOC may already be outside);
    terminal E[n] ≥ min(E0, E_mid) − s.  ρ is the share of power (and an hour of it in energy)
    kept back for the plant's fast frequency response: islanded sites only."""
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
    lp: LinearProgram,
    c: CaptiveModel,
    now_mw: float,
    n: int,
    dt: float,
    cfg: PlannerConfig,
    site: SiteModel,
) -> IntArray:
    """Captive unit: min ≤ c[k] ≤ max, |c[k] − c[k−1]| ≤ ramp·Δ with c[−1] the present output;
    cost w_co2·co2·c + w_cost·fuel·c per MWh."""
    cost = dt * (cfg.weight_co2_per_t * c.co2_t_per_mwh + cfg.weight_cost_per_cny * c.cost_per_mwh)
    col = lp.var(f"c-{c.name}", n, c.min_mw, c.max_mw, cost)
    lim = c.ramp_mw_per_h * dt
    k = np.arange(n)
    row = np.concatenate([k, k[1:]])
    cols = np.concatenate([col, col[:-1]])
    val = np.concatenate([np.ones(n), -np.ones(n - 1)])
    lb, ub = np.full(n, -lim), np.full(n, lim)
    # start from where it is, even if that is outside its limits: never an infeasible first step
    now = min(max(now_mw, c.min_mw - lim), c.max_mw + lim)
    lb[0] += now
    ub[0] += now
    lp.rows(f"{c.name}-ramp", row, cols, val, lb, ub, n)
    return col


def add_grid(
    lp: LinearProgram, site: SiteModel, built: Built, axis: Axis, cfg: PlannerConfig
) -> None:
    """Grid: 0 ≤ g⁺ ≤ (1 − margin)·import limit, 0 ≤ g⁻ ≤ export limit; cost per MWh of import
    w_co2·carbon + w_cost·price(hour), of export −w_cost·export price + w_r (exported
    renewable energy is not used on site)."""
    if site.grid is None:
        return
    g = site.grid
    dt = axis.dt_h
    price = np.array([g.import_price_per_mwh(site.local_hour(t)) for t in axis.times_s])
    built.grid_in = lp.var(
        "grid_import",
        axis.n,
        0.0,
        g.import_limit_mw * (1.0 - cfg.import_margin_frac),
        dt * (cfg.weight_co2_per_t * g.carbon_t_per_mwh + cfg.weight_cost_per_cny * price),
    )
    built.grid_out = lp.var(
        "grid_export",
        axis.n,
        0.0,
        g.export_limit_mw,
        dt * (cfg.weight_renewable_per_mwh - cfg.weight_cost_per_cny * g.export_per_mwh),
    )


def _supply_terms(built: Built) -> list[tuple[IntArray, float]]:
    terms: list[tuple[IntArray, float]] = [(built.used, 1.0)]
    terms += [(c, 1.0) for c in built.captive.values()]
    terms += [(d, 1.0) for d in built.discharge.values()]
    terms += [(ch, -1.0) for ch in built.charge.values()]
    if built.grid_in is not None and built.grid_out is not None:
        terms += [(built.grid_in, 1.0), (built.grid_out, -1.0)]
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
    fc: SupplyForecast,
    axis: Axis,
) -> None:
    """P10 reserve: if supply comes in at P10, dispatchable headroom still covers the plan::

        Σ_l P_l + aux + Σch − Σdis ≤ r10 + Σ c_max + import limit + s_res

    so a poor renewable outcome costs imports or captive fuel, not the heat budget or
    production (that matters in islanded and weak-grid sites).
    """
    n = axis.n
    headroom = fc.p10_mw + sum(c.max_mw for c in site.captive)
    if site.grid is not None:
        headroom = headroom + site.grid.import_limit_mw
    s = lp.var("slack:reserve_p10", n, 0.0, np.inf, PRICE_RESERVE_PER_MWH * axis.dt_h)
    k = np.arange(n)
    rows, cols, vals = [k], [s], [-np.ones(n)]
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
