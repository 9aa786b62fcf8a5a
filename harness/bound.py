"""The bound: one perfect-foresight LP over the whole run, which no strategy may exceed.

The ``oracle`` strategy is the product's planner handed the true supply, still on a receding
horizon and in closed loop; it is a strong strategy, not an upper bound (it can lose to the
``mpc``).  The bound maximises the renewable energy used on site over the whole run at once,
knowing the true availability of every plant step, under the limits every strategy is held
to (docs/backtest.md, "The bound"):

- each line's current envelope (deep_low … high_max × I_N), its ramp, the band-duration
  budget per 24 h window (the planner's rule, area form), the heat budget with the exchanger
  lag (|H| ≤ B, |H| ≤ 0.2·B at each local midnight, the heat-gap rate) and the daily
  production rule (target ≤ P(midnight) ≤ target × (1 + tolerance), from what the tracker
  assumes was produced since midnight at the start);
- the BESS (power, energy 0 … capacity, round-trip losses; an island's reserved share of
  discharge power), the captive units (min stable … max, ramp), the grid (import and export
  limits) and the site balance.

Relaxed, because the exact set is not convex or the limit is the plant's and not a rule:

- line power P(I) = N·(E0·I + R·I²) becomes a variable p between the tangents of P below and
  its secant over the envelope above (the convex hull of P's graph); the heat ΔQ follows it
  exactly, ΔQ = p − N·E_tn·I − Q(I_N).  ``line_hull_mwh`` reports Σ (p − P(I))·Δ;
- the BESS may charge and discharge in the same step (the hull of a one-setpoint battery:
  it may lose energy on purpose); ``bess_overlap_mwh`` reports Σ min(ch, dis)·Δ;
- the SOC band, the BESS's terminal energy, the planner's import margin and P10 reserve are
  planning choices, not limits: left out (energy 0 … capacity is kept);
- the production of a last day the run ends inside is capped at a whole day's, and need only
  be still reachable by midnight at the highest current;
- load the site cannot supply may be shed (priced 1,000 per MWh, so only when nothing else
  balances; ``shed_mwh``).

Not relaxed: the pot voltage of the simulator's pots differs from the line model's by their
resistance spread and the pots' own resistance control; the bound uses the line model, as the
planner does (docs/backtest.md says what that means for the figures).

The step is the plant's (1 min): the supply is the simulator's truth per step, and the
exchanger and heat recursions are exact for it.  ``step_min`` larger gives a faster, looser
bound (averaging the supply over a step only raises what can be used).
"""

from __future__ import annotations

import time

import numpy as np

from controller.planner.highs import HighsModel, LpStatus
from controller.planner.lineheat import heat_budget, heat_gain_h, hx_lag
from controller.planner.lp import FloatArray, IntArray, LinearProgram
from controller.planner.model import (
    HEAT_END_OF_DAY_FRAC,
    PRICE_THROUGHPUT_PER_MWH,
    Axis,
    add_band_duration,
    add_line_ramp,
    add_ramp,
    bess_energy,
    day_starts,
    tangent,
)
from controller.planner.recursion import Recursion, Term
from controller.planner.types import PlannerConfig
from controller.site import LineModel, SiteModel
from controller.state import DAY_S
from harness.site_from_scenario import site_from_scenario
from simulator.plant import Plant
from simulator.scenario import Scenario

PRICE_SHED_PER_MWH = 1e3
TIME_LIMIT_S = 600.0
TANGENTS = 5
"""Tangent points of P(I) across the envelope (the hull's lower side)."""


def run_bound(
    sc: Scenario, *, days: float, seed: int, planner: PlannerConfig, step_min: float = 1.0
) -> dict[str, object]:
    """The bound's KPIs over the same span of plant time as a backtest of ``days``."""
    started = time.perf_counter()
    plant = Plant(sc, seed)
    site = site_from_scenario(sc)
    cycle_s = planner.step_min * 60.0
    span_s = max(1, round(days * DAY_S / cycle_s)) * cycle_s
    sub = max(1, round(step_min * 60.0 / plant.step_s))
    step_s = sub * plant.step_s
    n = int(span_s // step_s)
    fine = np.zeros(n * sub)
    for r in sc.renewable:
        fine += plant.weather.available_block_mw(r.name, plant.now_s, n * sub)
    available = fine.reshape(n, sub).mean(axis=1)
    axis = Axis(plant.now_s, n, step_s / 3600.0)
    lp, cols = _build(site, plant, axis, available, planner)
    res = HighsModel(warm=False).solve(lp, axis.times_s, TIME_LIMIT_S)
    kpis: dict[str, object] = {
        "renewable_available_mwh": round(float(available.sum() * axis.dt_h[0]), 3),
        "bound_step_min": step_s / 60.0,
        "bound_status": res.status.value,
        "renewable_used_mwh": None,
    }
    # only a proven optimum is a bound: a maximisation stopped early (time limit) is feasible
    # but below the maximum, so it stays None rather than flatter every capture against it
    if res.x is not None and res.status == LpStatus.OPTIMAL:
        kpis |= _figures(site, axis, cols, res.x, available)
        kpis["bound_rows"], kpis["bound_columns"] = lp.n_rows, lp.n_vars
        # the same LP without the relaxations' slack: line power on the tangent of P at the
        # bound's currents, and the BESS's charging and discharging at once priced as the
        # planner prices it; what it loses against the bound estimates the relaxations' share
        x = res.x
        pins = {ln.name: x[cols[f"I-{ln.name}"]] for ln in site.lines}
        lp2, cols2 = _build(site, plant, axis, available, planner, pins=pins)
        res2 = HighsModel(warm=False).solve(lp2, axis.times_s, TIME_LIMIT_S)
        if res2.x is not None and res2.status == LpStatus.OPTIMAL:
            tight = _figures(site, axis, cols2, res2.x, available)
            kpis["renewable_used_unrelaxed_mwh"] = tight["renewable_used_mwh"]
    kpis["runtime_s"] = round(time.perf_counter() - started, 3)
    return kpis


def _figures(
    site: SiteModel,
    axis: Axis,
    cols: dict[str, IntArray],
    x: FloatArray,
    available: FloatArray,
) -> dict[str, object]:
    dt = axis.dt_h
    used = (x[cols["used"]] - (x[cols["export"]] if "export" in cols else 0.0)) * dt
    day1 = round(DAY_S / (dt[0] * 3600.0))
    hull = sum(
        float(np.sum((x[cols[f"p-{ln.name}"]] - ln.power_mw(x[cols[f"I-{ln.name}"]])) * dt))
        for ln in site.lines
    )
    overlap = sum(
        float(np.sum(np.minimum(x[cols[f"ch-{b.name}"]], x[cols[f"dis-{b.name}"]]) * dt))
        for b in site.bess
    )
    return {
        "renewable_used_mwh": round(float(used.sum()), 3),
        "renewable_used_after_day1_mwh": (
            round(float(used[day1:].sum()), 3) if axis.n > day1 else None
        ),
        "curtailed_mwh": round(float(np.sum((available - x[cols["used"]]) * dt)), 3),
        "line_hull_mwh": round(hull, 3),
        "bess_overlap_mwh": round(overlap, 3),
        "shed_mwh": round(float(np.sum(x[cols["shed"]] * dt)), 3),
    }


def _build(
    site: SiteModel,
    plant: Plant,
    axis: Axis,
    available: FloatArray,
    cfg: PlannerConfig,
    pins: dict[str, FloatArray] | None = None,
) -> tuple[LinearProgram, dict[str, IntArray]]:
    """The bound's LP; with ``pins`` (line → currents), line power on P's tangent at those
    currents and the BESS's throughput priced (the unrelaxed variant)."""
    lp = LinearProgram()
    n, dt = axis.n, axis.dt_h
    cols: dict[str, IntArray] = {}
    load: list[IntArray] = []
    for line in site.lines:
        cur, p = _line(lp, site, line, axis, cfg)
        cols[f"I-{line.name}"], cols[f"p-{line.name}"] = cur, p
        if pins is not None:
            p0, slope = tangent(line.power_mw, line.dpower_mw_per_ka, pins[line.name])
            k = np.arange(n)
            lp.rows(
                f"{line.name}-power_pinned",
                np.concatenate([k, k]),
                np.concatenate([p, cur]),
                np.concatenate([np.ones(n), -slope]),
                p0,
                p0,
                n,
            )
        load.append(p)
    supply: list[tuple[IntArray, float]] = []
    for b, sim in zip(site.bess, plant.bess, strict=True):
        reserve = cfg.island_bess_reserve_frac if site.islanded else 0.0
        price = 0.0 if pins is None else PRICE_THROUGHPUT_PER_MWH * dt
        ch = lp.var(f"ch-{b.name}", n, 0.0, b.power_mw, price)
        dis = lp.var(f"dis-{b.name}", n, 0.0, (1.0 - reserve) * b.power_mw, price)
        e = lp.var(f"E-{b.name}", n, 0.0, b.energy_mwh)
        rec, c_ch, c_dis = bess_energy(b, dt)
        r = rec.rows(e, [Term(ch, c_ch), Term(dis, c_dis)], sim.soc_frac * b.energy_mwh)
        lp.rows(f"{b.name}-soc", r.row, r.col, r.val, r.rhs, r.rhs, n)
        cols[f"ch-{b.name}"], cols[f"dis-{b.name}"] = ch, dis
        supply += [(dis, 1.0), (ch, -1.0)]
    for c, unit in zip(site.captive, plant.captive, strict=True):
        col = lp.var(f"c-{c.name}", n, c.min_mw, c.max_mw)
        add_ramp(lp, f"{c.name}-ramp", col, unit.power_mw, c.ramp_mw_per_h * dt)
        supply.append((col, 1.0))
    cols["used"] = lp.var("renewable_used", n, 0.0, available, -dt)
    supply.append((cols["used"], 1.0))
    if site.grid is not None:
        g = site.grid
        supply.append((lp.var("grid_import", n, 0.0, g.import_limit_mw), 1.0))
        cols["export"] = lp.var("grid_export", n, 0.0, g.export_limit_mw, dt)
        supply.append((cols["export"], -1.0))
    cols["shed"] = lp.var("shed", n, 0.0, np.inf, PRICE_SHED_PER_MWH * dt)
    supply.append((cols["shed"], 1.0))
    k = np.arange(n)
    terms = [*supply, *((p, -1.0) for p in load)]
    lp.rows(
        "balance",
        np.concatenate([k for _ in terms]),
        np.concatenate([c for c, _ in terms]),
        np.concatenate([np.full(n, s) for _, s in terms]),
        site.auxiliary_load_mw,
        site.auxiliary_load_mw,
        n,
    )
    return lp, cols


def _last_of_days(site: SiteModel, axis: Axis) -> IntArray:
    """Steps after which a new local day starts (the planner's rule, :func:`day_starts`: a
    step straddling midnight belongs to the day it starts in)."""
    return np.flatnonzero(day_starts(site, axis)[1:]).astype(np.int64)


def _ends_on_midnight(site: SiteModel, axis: Axis) -> bool:
    local = (axis.ends_s[-1] + site.utc_offset_h * 3600.0) % DAY_S
    return bool(min(local, DAY_S - local) < 1e-6)


def _line(
    lp: LinearProgram, site: SiteModel, line: LineModel, axis: Axis, cfg: PlannerConfig
) -> tuple[IntArray, IntArray]:
    n, dt = axis.n, axis.dt_h
    i_n = line.nominal_current_ka
    lo_ka, hi_ka = line.deep_low_frac * i_n, line.high_max_frac * i_n
    cur = lp.var(f"I-{line.name}", n, lo_ka, hi_ka)
    add_line_ramp(lp, line, cur, i_n, dt)
    add_band_duration(lp, line, cur, 0.0, 0.0, axis, hard=True)
    # line power: the convex hull of P(I) over the envelope
    p = lp.var(f"p-{line.name}", n, line.power_mw(lo_ka), line.power_mw(hi_ka))
    k = np.arange(n)
    secant = (line.power_mw(hi_ka) - line.power_mw(lo_ka)) / (hi_ka - lo_ka)
    for j, i_ka in enumerate(np.linspace(lo_ka, hi_ka, TANGENTS)):
        slope = line.dpower_mw_per_ka(float(i_ka))
        lp.rows(
            f"{line.name}-power_tangent_{j}",
            np.concatenate([k, k]),
            np.concatenate([p, cur]),
            np.concatenate([np.ones(n), np.full(n, -slope)]),
            line.power_mw(float(i_ka)) - slope * i_ka,
            np.inf,
            n,
        )
    lp.rows(
        f"{line.name}-power_secant",
        np.concatenate([k, k]),
        np.concatenate([p, cur]),
        np.concatenate([np.ones(n), np.full(n, -secant)]),
        -np.inf,
        line.power_mw(lo_ka) - secant * lo_ka,
        n,
    )
    # heat: ΔQ = p − c_tn·I − Q(I_N), exact given p
    c_tn = line.pots * line.e_tn_v * 1e-3
    q_n = line.heat_mw(i_n)
    hx, hx_in = hx_lag(line, dt[:-1])
    u = lp.var(
        f"u-{line.name}", n, np.r_[0.0, np.full(n - 1, -np.inf)], np.r_[0.0, np.full(n - 1, np.inf)]
    )
    if n > 1:
        r = hx.rows(u[1:], [Term(p[:-1], hx_in), Term(cur[:-1], -hx_in * c_tn)], 0.0, -hx_in * q_n)
        lp.rows(f"{line.name}-hx_lag", r.row, r.col, r.val, r.rhs, r.rhs, n - 1)
    b = line.heat_budget_mwh
    h_lo, h_hi = np.full(n, -b), np.full(n, b)
    nights = _last_of_days(site, axis)
    if _ends_on_midnight(site, axis):
        nights = np.append(nights, n - 1)
    h_lo[nights], h_hi[nights] = -HEAT_END_OF_DAY_FRAC * b, HEAT_END_OF_DAY_FRAC * b
    h = lp.var(f"H-{line.name}", n, h_lo, h_hi)
    g = heat_gain_h(line, dt)
    r = heat_budget(line, dt).rows(
        h, [Term(p, g), Term(cur, -g * c_tn), Term(u, -g)], 0.0, -g * q_n
    )
    lp.rows(f"{line.name}-heat_budget", r.row, r.col, r.val, r.rhs, r.rhs, n)
    gap = line.heat_gap_kw_per_pot * line.pots * 1e-3
    lp.rows(
        f"{line.name}-heat_gap",
        np.concatenate([k, k, k]),
        np.concatenate([p, cur, u]),
        np.concatenate([np.ones(n), np.full(n, -c_tn), -np.ones(n)]),
        q_n - gap,
        q_n + gap,
        n,
    )
    _production(lp, site, line, cur, axis, cfg)
    return cur, p


def _production(
    lp: LinearProgram,
    site: SiteModel,
    line: LineModel,
    cur: IntArray,
    axis: Axis,
    cfg: PlannerConfig,
) -> None:
    """target ≤ P(midnight) ≤ target·(1 + tol) for each local day, P from local midnight (the
    first day from what the tracker assumes: nominal since midnight); a last day the run ends
    inside: at most a whole day's cap, and at least what the highest current could still
    close by midnight."""
    n, dt = axis.n, axis.dt_h
    rho = line.production_t_per_h(1.0)
    t0 = axis.times_s[0]
    since_h = (t0 / 3600.0 + site.utc_offset_h) % 24.0
    p0 = line.production_t_per_h(line.nominal_current_ka) * since_h
    a = np.where(day_starts(site, axis), 0.0, 1.0)
    ends = np.unique(np.append(_last_of_days(site, axis), n - 1)).astype(np.int64)
    expr = Recursion(f"{line.name}-production", a).closed_form(ends, [Term(cur, dt * rho)], p0, n=n)
    target = line.daily_target_t
    lo = np.full(ends.size, target)
    hi = np.full(ends.size, target * (1.0 + cfg.production_tolerance_frac))
    if not _ends_on_midnight(site, axis):
        left_h = (DAY_S - (axis.ends_s[-1] + site.utc_offset_h * 3600.0) % DAY_S) / 3600.0
        lo[-1] = (
            target - line.production_t_per_h(line.high_max_frac * line.nominal_current_ka) * left_h
        )
    lp.rows(
        f"{line.name}-production",
        expr.row,
        expr.col,
        expr.val,
        lo - expr.const,
        hi - expr.const,
        ends.size,
    )
