"""A dry solve of the configured planning problem: is it solved well within its time limit?

The first plan of a planner is always a cold solve, so this is the time that matters at
start-up; a problem that takes more than half the time limit will, on a harder cycle, end in
the fallback plan.  ``smelter-ems check-config --solve`` runs it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from controller.planner.scheduler import solve
from controller.planner.types import LineState, PlannerConfig, PlantState, SolveStatus
from controller.site import SiteModel
from forecasting.types import QuantileForecast

SLOW_FRAC = 0.5
REMEDIES = (
    "set [planner] far_step_min = 60 (coarser steps beyond near_h), shorten horizon_h, "
    "lengthen step_min, or raise time_limit_s (docs/scheduler.md, Solve time)"
)


@dataclass(frozen=True)
class DryRun:
    solve_ms: float
    status: SolveStatus
    warning: str
    """Why this configuration is at risk of fallback plans, with the remedies; "" if none."""


def dry_solve(site: SiteModel, cfg: PlannerConfig, t_s: float) -> DryRun:
    """Solve once from a nominal state (lines at nominal, BESS half full, captive units at
    their minimum) with a renewable forecast swinging between 20 % and 80 % of the site's
    capacity over a day (P10/P90 ±30 %)."""
    state = PlantState(
        t_s,
        {ln.name: LineState(ln.nominal_current_ka) for ln in site.lines},
        {b.name: 0.5 for b in site.bess},
        {c.name: c.min_mw for c in site.captive},
    )
    times = t_s + np.arange(cfg.steps, dtype=np.float64) * cfg.step_min * 60.0
    capacity_mw = sum(site.renewable_capacity_mw.values())
    p50 = np.asarray(
        capacity_mw * (0.5 + 0.3 * np.sin((times - t_s) / 86_400.0 * 2.0 * np.pi)), np.float64
    )
    plan = solve(site, state, QuantileForecast(times, 0.7 * p50, p50, 1.3 * p50), cfg)
    limit_ms = cfg.time_limit_s * 1e3
    warning = ""
    if plan.status == SolveStatus.FALLBACK:
        warning = f"the planner's dry solve fell back ({plan.reason}): {REMEDIES}"
    elif plan.solve_ms > SLOW_FRAC * limit_ms:
        warning = (
            f"the planner's dry solve took {plan.solve_ms / 1e3:.1f} s of its "
            f"{cfg.time_limit_s:g} s time limit; past the limit plans are the safe fallback: "
            f"{REMEDIES}"
        )
    return DryRun(plan.solve_ms, plan.status, warning)
