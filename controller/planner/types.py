"""Types the planner takes and returns: plant state, supply forecast, planner settings, schedule.

Pure data: frozen dataclasses and numpy arrays, no I/O.  The scheduler
(:mod:`controller.planner.scheduler`) maps ``(SiteModel, PlantState, QuantileForecast,
PlannerConfig)`` to a :class:`Schedule`; the safety layer (:mod:`controller.safety`) turns a
schedule's first step into setpoints.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Annotated

import msgspec
import numpy as np
import numpy.typing as npt

from forecasting.types import QuantileForecast

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class LineState:
    """What the controller knows about one pot-line now."""

    current_ka: float
    heat_budget_mwh: float = 0.0
    """H: accumulated heat deviation the exchangers have not (yet) absorbed [MWh]."""
    hx_lag_mw: float = 0.0
    """u: heat deviation the exchangers are absorbing now (first-order lag of ΔQ) [MW]."""
    produced_today_t: float = 0.0
    """Aluminium produced since local midnight [t]."""
    deep_used_h: float = 0.0
    """Hours spent below the continuous band in the last 24 h."""
    high_used_h: float = 0.0
    """Hours spent above the continuous band in the last 24 h."""
    pots_online: int | None = None
    available: bool = True
    """False when its telemetry is stale: the planner then holds it at nominal."""
    bath_c: float | None = None
    """The mean pot's bath temperature, as the tracker's observer estimates it [°C]."""
    superheat_k: float | None = None
    """Its superheat above the liquidus [K]."""
    ledge_cm: float | None = None
    """Its side-ledge thickness [cm]."""


@dataclass(frozen=True)
class PlantState:
    t_s: float
    lines: dict[str, LineState]
    bess_soc_frac: dict[str, float] = field(default_factory=dict)
    captive_mw: dict[str, float] = field(default_factory=dict)


class PlannerConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Planner settings, declared once: the ``[planner]`` table of the config file is this
    type, and the backtest's flags go through it too, so the bounds below hold wherever a
    setting comes from (:func:`wire.tomlfile.convert` reports a bad one with its key).

    Weights: renewable use first, then CO2, then cost (docs/scheduler.md).
    """

    horizon_h: Annotated[float, msgspec.Meta(ge=1.0, le=48.0)] = 24.0
    """How far ahead each plan looks [h]."""
    step_min: Annotated[float, msgspec.Meta(ge=5.0, le=60.0)] = 15.0
    """The plan's step [min]; it must divide the horizon."""
    time_limit_s: Annotated[float, msgspec.Meta(gt=0.0, le=600.0)] = 10.0
    """The solver's time limit; past it without a solution the plan is the fallback."""
    weight_renewable_per_mwh: Annotated[float, msgspec.Meta(ge=0.0)] = 1.0
    weight_co2_per_t: Annotated[float, msgspec.Meta(ge=0.0)] = 0.05
    weight_cost_per_cny: Annotated[float, msgspec.Meta(ge=0.0)] = 1e-4
    production_tolerance_frac: Annotated[float, msgspec.Meta(ge=0.0, le=0.1)] = 0.002
    """Daily production is kept in [target, target · (1 + tolerance)]."""
    production_drift_frac: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.0075
    """Within the day, production since local midnight keeps within ± this share of the
    daily target of the pro-rata target, checked hourly over the next 24 h."""
    import_margin_frac: Annotated[float, msgspec.Meta(ge=0.0, lt=1.0)] = 0.05
    """Plan imports up to (1 − margin) of the limit: supply varies within a planning step, and
    a plan that sits on the limit makes the plant shed load on every dip.  Importing into the
    margin costs extra (``slack:import_margin``) rather than being forbidden."""
    variability_margin_frac: Annotated[float, msgspec.Meta(ge=0.0, lt=1.0)] = 0.08
    """The import margin is at least this share of the site's wind and PV capacity.  Their
    1-min output deviates from its 15-min mean by a standard deviation of 1.6–2.1 % of
    capacity in the built-in scenarios (7 days, seed 1; bench/supply_swing.py): 0.08 is 4–5
    of those, and 0.1 % of minutes deviate by more than 8.5–15 %.  At 0.05 of the limit alone
    (30 MW), Inner Mongolia's 1.6 GW of wind and PV took imports over its 600 MW limit for
    366 minutes in 7 days (45 MWh of pot-line load shed); at 0.08, 6 minutes (0.3 MWh)."""
    island_bess_reserve_frac: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.3
    """Islanded sites: the share of BESS power (and an hour of it in energy) the plan leaves
    for the plant's fast frequency response, which covers what the captive unit's ramp cannot."""
    reserve_p10: bool = True
    """Keep the plan feasible if supply comes in at P10 (dispatchable headroom)."""
    supply_upside_frac: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 1.0
    """Plan to use up to P50 + this·(P90 − P50) of the renewable supply (1: P90).  A surplus
    the plan did not prepare for is lost renewable energy (weight 1 per MWh) while preparing
    for one that does not come costs imports or fuel (≈ 0.1 per MWh), so the quantile worth
    preparing for is about 1 / (1 + 0.1) ≈ P90; the P10 reserve still covers the downside."""
    far_step_min: Annotated[float, msgspec.Meta(ge=5.0, le=240.0)] | None = None
    """Step length beyond ``near_h`` [min]: a non-uniform grid, ``step_min`` where the plan is
    acted on and coarser beyond, aligned to local whole multiples of it (so that midnights are
    step boundaries); None: ``step_min`` throughout.  The forecast stays on the ``step_min``
    grid (``steps``); the planner averages it over each coarse step."""
    near_h: Annotated[float, msgspec.Meta(ge=0.0, le=48.0)] = 6.0
    """How far ahead the grid keeps ``step_min`` when ``far_step_min`` is set [h]."""

    def __post_init__(self) -> None:
        steps = self.horizon_h * 60.0 / self.step_min
        if abs(steps - round(steps)) > 1e-9:
            raise ValueError("step_min: must divide the horizon into whole steps")
        problem = far_step_problem(self.far_step_min, self.step_min)
        if problem:
            raise ValueError(f"far_step_min: {problem}")

    @property
    def step_h(self) -> float:
        return self.step_min / 60.0

    @property
    def steps(self) -> int:
        return round(self.horizon_h * 60.0 / self.step_min)


def far_step_problem(far_step_min: float | None, step_min: float) -> str | None:
    """Why ``far_step_min`` cannot go with ``step_min``; None when it can (or is unset)."""
    if far_step_min is None:
        return None
    if not far_step_min > 0.0 or (1440.0 / far_step_min) % 1.0 > 1e-9:
        return "must divide a day into whole steps"
    if far_step_min < step_min:
        return "must not be shorter than step_min"
    return None


class SolveStatus(enum.StrEnum):
    OPTIMAL = "optimal"
    TIME_LIMIT = "time_limit_with_solution"
    FALLBACK = "fallback"


@dataclass(frozen=True)
class Schedule:
    """A plan over the horizon.  Step k covers [times_s[k], times_s[k] + step_s) on a uniform
    grid, [times_s[k], times_s[k] + step_lengths_s[k]) on a non-uniform one."""

    plan_id: str
    status: SolveStatus
    times_s: FloatArray
    step_s: float
    """The first step's length [s]: every step's on a uniform grid (see ``step_lengths_s``)."""
    line_current_ka: dict[str, FloatArray]
    bess_power_mw: dict[str, FloatArray]
    """+ discharge / − charge."""
    bess_soc_frac: dict[str, FloatArray]
    """SOC at the end of each step."""
    captive_mw: dict[str, FloatArray]
    grid_mw: FloatArray
    """+ import / − export."""
    renewable_used_mw: FloatArray
    curtailed_mw: FloatArray
    heat_budget_mwh: dict[str, FloatArray]
    """H at the end of each step."""
    production_t: dict[str, FloatArray]
    """Production in each step [t]."""
    forecast: QuantileForecast
    """The renewable supply the plan was made for, on its own steps."""
    bent: dict[str, float] = field(default_factory=dict)
    """Soft limits the plan had to bend: family name → total slack (in the family's unit)."""
    objective: float = float("nan")
    solve_ms: float = 0.0
    reason: str = ""
    """Why this is a fallback plan, when it is one."""
    step_lengths_s: FloatArray | None = None
    """Each step's length [s] (step k covers [times_s[k], times_s[k] + step_lengths_s[k]));
    None: ``step_s`` throughout."""
