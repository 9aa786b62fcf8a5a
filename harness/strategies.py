"""The strategies a backtest compares (DESIGN §5): ``flat``, ``rule``, ``mpc`` and ``oracle``.

A strategy sees the plant only as the controller would: the :class:`PlantState` the state
tracker estimated from telemetry, and a :class:`Context` with the site model, the planner
settings and the renewable availability observed so far.  Only the oracle is also handed the
true future availability.  It returns targets ``(kind, asset) → value`` [kA or MW] for the
safety layer, and the schedule behind them when it planned one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from controller.planner import scheduler
from controller.planner.types import (
    FloatArray,
    LineState,
    PlannerConfig,
    PlantState,
    Schedule,
)
from controller.safety import SafetyLayer
from controller.site import LineModel, SiteModel
from controller.supply import SupplyForecaster
from forecasting.types import QuantileForecast

Key = tuple[str, str]
Targets = dict[Key, float]
TrueSupply = Callable[[float, int, float], FloatArray]
"""(start [s], steps, step [s]) → mean true renewable availability in each step [MW]."""

DAY_S = 86_400.0
PRODUCTION_CATCH_UP_H = 4.0
"""The rule's production guard aims to close today's lag within this many hours."""
PERSISTENCE_BLEND_H = 1.0
"""The persistence forecast moves from the latest observation to the diurnal value over 1 h."""
PERSISTENCE_P10_FRAC = 0.7
PERSISTENCE_P90_FRAC = 1.3
"""Placeholder quantiles around persistence until the forecasting package provides its own."""


@dataclass(frozen=True)
class Context:
    """What a strategy may know at a decision, besides the plant state."""

    site: SiteModel
    planner: PlannerConfig
    safety: SafetyLayer
    cycle_s: float
    renewable_times_s: FloatArray
    """Times of the renewable observations seen so far [s], oldest first."""
    renewable_mw: FloatArray
    """Total available renewable power at those times [MW]."""
    true_supply: TrueSupply | None = None
    """The simulator's true future availability: handed to the oracle only."""
    supply: SupplyForecaster | None = None
    """The forecaster fed from telemetry and weather forecasts (mpc); persistence without it."""

    @property
    def latest_renewable_mw(self) -> float:
        return float(self.renewable_mw[-1]) if self.renewable_mw.size else 0.0


class Strategy(Protocol):
    name: str

    def decide(
        self, now_s: float, state: PlantState, context: Context
    ) -> tuple[Targets, Schedule | None]: ...


@dataclass
class FlatStrategy:
    """No EMS: no setpoints at all, so the plant keeps its safe defaults (nominal current,
    BESS idle, captive unit holding): the baseline every gain is measured from."""

    name: str = "flat"

    def decide(
        self, now_s: float, state: PlantState, context: Context
    ) -> tuple[Targets, Schedule | None]:
        return {}, None


@dataclass
class RuleStrategy:
    """A greedy surplus-follower, without an optimiser: what a careful operator might script.

    Every cycle, with the renewable availability just observed:

    1. surplus = available + the least the captive units can run at this cycle − the site
       load with every line at nominal (positive: renewables would be curtailed or exported);
    2. each line takes its share of the surplus (by nominal power) as a current change from
       nominal, within the continuous band (with ``use_envelope``, the deep/high bands while
       their 24 h duration budget lasts), plus a production bias when today's output lags the
       pro-rata target;
    3. heat guard: beyond ``heat_guard_frac`` of the heat budget the line may not go further
       on the side that adds to it, which steers it back towards nominal;
    4. ramp-limited from the present current and clipped to the hard limits;
    5. the BESS charges from what the lines leave of the surplus and discharges into a
       deficit, within its SOC limits;
    6. a grid-connected captive unit fills the remaining load and backs off to min stable in a
       surplus (islanded, the plant's own frequency control moves it).
    """

    name: str = "rule"
    heat_guard_frac: float = 0.5
    use_envelope: bool = False
    """Also use the deep/high bands while their 24 h duration budget lasts.  Off by default:
    stepping into them at the full ramp rate, with no model of the exchangers' lag, takes the
    superheat below 5 K and production short, for hardly more renewable energy used than the
    continuous band alone (docs/backtest.md)."""

    def decide(
        self, now_s: float, state: PlantState, context: Context
    ) -> tuple[Targets, Schedule | None]:
        site = context.site
        cycle_h = context.cycle_s / 3600.0
        available_mw = context.latest_renewable_mw
        captive_floor_mw = sum(
            max(c.min_mw, state.captive_mw.get(c.name, c.min_mw) - c.ramp_mw_per_h * cycle_h)
            for c in site.captive
        )
        nominal_mw = {ln.name: ln.power_mw(ln.nominal_current_ka) for ln in site.lines}
        total_nominal_mw = sum(nominal_mw.values())
        surplus_mw = available_mw + captive_floor_mw - total_nominal_mw - site.auxiliary_load_mw
        targets: Targets = {}
        load_mw = site.auxiliary_load_mw
        for line in site.lines:
            ls = state.lines.get(line.name) or LineState(current_ka=line.nominal_current_ka)
            share = nominal_mw[line.name] / total_nominal_mw
            current_ka = self._line_target_ka(
                line, ls, surplus_mw * share, now_s=now_s, site=site, cycle_h=cycle_h
            )
            targets["potline", line.name] = current_ka
            load_mw += line.power_mw(current_ka)
        residual_mw = available_mw + captive_floor_mw - load_mw
        total_bess_mw = sum(b.power_mw for b in site.bess) or 1.0
        bess_out_mw = 0.0
        for b in site.bess:
            # An unknown SOC is taken as empty: charging is then still allowed, discharging not.
            soc = state.bess_soc_frac.get(b.name, b.soc_min_frac)
            want_mw = -residual_mw * b.power_mw / total_bess_mw
            if (want_mw < 0.0 and soc >= b.soc_max_frac) or (
                want_mw > 0.0 and soc <= b.soc_min_frac
            ):
                want_mw = 0.0
            targets["bess", b.name] = min(max(want_mw, -b.power_mw), b.power_mw)
            bess_out_mw += targets["bess", b.name]
        if not site.islanded and site.captive:
            need_mw = load_mw - available_mw - bess_out_mw
            total_max_mw = sum(c.max_mw for c in site.captive)
            for c in site.captive:
                targets["captive", c.name] = min(
                    max(need_mw * c.max_mw / total_max_mw, c.min_mw), c.max_mw
                )
        return targets, None

    def _line_target_ka(
        self,
        line: LineModel,
        ls: LineState,
        surplus_mw: float,
        *,
        now_s: float,
        site: SiteModel,
        cycle_h: float,
    ) -> float:
        i_n = line.nominal_current_ka
        if not ls.available:
            return i_n
        deep_ok = self.use_envelope and ls.deep_used_h + cycle_h <= line.deep_max_h
        high_ok = self.use_envelope and ls.high_used_h + cycle_h <= line.high_max_h
        low = (line.deep_low_frac if deep_ok else line.band_low_frac) * i_n
        high = (line.high_max_frac if high_ok else line.band_high_frac) * i_n
        # Heat guard: past heat_guard_frac of the budget the line may not go further on the
        # side that adds to it, which steers it back towards nominal.
        guard_mwh = self.heat_guard_frac * line.heat_budget_mwh
        if ls.heat_budget_mwh > guard_mwh:
            high = i_n
        elif ls.heat_budget_mwh < -guard_mwh:
            low = i_n
        # The production bias acts on the clipped surplus share, so that a deep deficit cannot
        # swamp it: the line then sits above the bottom of its band by the bias.
        want = min(max(i_n + surplus_mw / line.dpower_mw_per_ka(i_n), low), high)
        want = min(want + production_bias_ka(line, ls, now_s, site), high)
        step = line.ramp_ka_per_h * cycle_h
        want = min(max(want, ls.current_ka - step), ls.current_ka + step)
        return min(max(want, line.hard_min_ka), line.hard_max_ka)


def production_bias_ka(line: LineModel, ls: LineState, now_s: float, site: SiteModel) -> float:
    """Extra current [kA] that would close today's production lag within
    :data:`PRODUCTION_CATCH_UP_H` (or by local midnight, when that comes sooner).

    The lag is against the pro-rata share of the day's target at nominal current; running
    ahead gives no negative bias (the surplus-following takes current down when it should).
    """
    elapsed_h = (now_s / 3600.0 + site.utc_offset_h) % 24.0
    expected_t = line.production_t_per_h(line.nominal_current_ka, ls.pots_online) * elapsed_h
    lag_t = expected_t - ls.produced_today_t
    t_per_h_per_ka = line.production_t_per_h(1.0, ls.pots_online)
    if lag_t <= 0.0 or t_per_h_per_ka <= 0.0:
        return 0.0
    catch_up_h = min(max(24.0 - elapsed_h, 1.0), PRODUCTION_CATCH_UP_H)
    return lag_t / (t_per_h_per_ka * catch_up_h)


def persistence_forecast(
    times_s: FloatArray,
    available_mw: FloatArray,
    now_s: float,
    config: PlannerConfig,
    capacity_mw: float,
) -> QuantileForecast:
    """The mpc's forecast until the forecasting issue lands: diurnal persistence.

    P50 of step k is the availability observed at the same time of day on the latest past day
    (interpolated at the step's midpoint), blended linearly from the latest observation over
    the first :data:`PERSISTENCE_BLEND_H`; without history that far back, the latest
    observation.  P10 = 0.7·P50 and P90 = min(1.3·P50, capacity) are placeholders.
    """
    step_s = config.step_min * 60.0
    starts_s = now_s + np.arange(config.steps, dtype=float) * step_s
    mid_s = starts_s + step_s / 2.0
    latest_mw = float(available_mw[-1]) if available_mw.size else 0.0
    p50 = np.full(config.steps, latest_mw)
    if available_mw.size:
        days = np.maximum(1.0, np.ceil((mid_s - now_s) / DAY_S))
        past_s = mid_s - days * DAY_S
        diurnal = np.interp(past_s, times_s, available_mw)
        p50 = np.where(past_s >= times_s[0], diurnal, latest_mw)
    lead_h = (mid_s - now_s) / 3600.0
    w = np.clip(1.0 - lead_h / PERSISTENCE_BLEND_H, 0.0, 1.0)
    p50 = np.clip(w * latest_mw + (1.0 - w) * p50, 0.0, capacity_mw)
    return QuantileForecast(
        starts_s,
        p10_mw=PERSISTENCE_P10_FRAC * p50,
        p50_mw=p50,
        p90_mw=np.maximum(np.minimum(PERSISTENCE_P90_FRAC * p50, capacity_mw), p50),
    )


@dataclass
class PlannerStrategy:
    """The product's planner; ``mpc`` forecasts with the forecasting package (persistence when
    it has no forecaster), ``oracle`` knows the truth."""

    name: str

    def decide(
        self, now_s: float, state: PlantState, context: Context
    ) -> tuple[Targets, Schedule | None]:
        cfg = context.planner
        site = context.site
        if self.name == "oracle":
            if context.true_supply is None:
                raise ValueError("the oracle needs the true supply in its context")
            step_s = cfg.step_min * 60.0
            starts_s = now_s + np.arange(cfg.steps, dtype=float) * step_s
            forecast = QuantileForecast.point(
                starts_s, context.true_supply(now_s, cfg.steps, step_s)
            )
        elif context.supply is not None:
            step_s = cfg.step_min * 60.0
            starts_s = now_s + np.arange(cfg.steps, dtype=float) * step_s
            forecast = context.supply.forecast(now_s, starts_s, step_s)
        else:
            capacity_mw = sum(site.renewable_capacity_mw.values())
            forecast = persistence_forecast(
                context.renewable_times_s, context.renewable_mw, now_s, cfg, capacity_mw
            )
        schedule = scheduler.solve(site, state, forecast, cfg)
        return context.safety.from_schedule(schedule, now_s), schedule


STRATEGIES = ("flat", "rule", "mpc", "oracle")


def make_strategy(name: str) -> Strategy:
    """A fresh strategy (strategies may keep state between cycles of one run)."""
    if name == "flat":
        return FlatStrategy()
    if name == "rule":
        return RuleStrategy()
    if name in ("mpc", "oracle"):
        return PlannerStrategy(name)
    raise ValueError(f"unknown strategy {name!r} (known: {', '.join(STRATEGIES)})")
