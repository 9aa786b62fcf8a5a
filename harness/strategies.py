"""The strategies a backtest compares (DESIGN §5), as planners of the one control core.

Each is a :class:`~controller.core.ports.Planner`: the core that the daemon runs calls it with
a :class:`~controller.core.ports.PlanJob` whenever a plan is due, and dispatches the
:class:`~controller.planner.types.Schedule` it returns through the safety layer, exactly as in
the daemon.  They differ only in how they plan:

- ``flat``: no EMS.  Its plans command nothing, so the plant keeps its own safe defaults
  (nominal current, BESS idle, captive unit holding): the baseline every gain is measured from.
- ``rule``: a greedy surplus-follower without an optimiser (:class:`RulePlanner`).
- ``mpc``: the product (:class:`~controller.core.planners.MpcPlanner`), with its own forecasts.
- ``oracle``: the same planner with perfect foresight of the true supply, still on a
  receding horizon in closed loop: a strong strategy, not an upper bound.
- ``bound``: not a planner but one perfect-foresight LP over the whole run
  (:mod:`harness.bound`), which no strategy may exceed.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from controller.core.planners import MpcPlanner
from controller.core.ports import PlanJob, Planner
from controller.planner import scheduler
from controller.planner.highs import HighsModel
from controller.planner.types import FloatArray, LineState, PlantState, Schedule, SolveStatus
from controller.safety import Key
from controller.site import LineModel, SiteModel
from forecasting.types import QuantileForecast
from wire import Source

Targets = dict[Key, float]
TrueSupply = Callable[[float, int, float], FloatArray]
"""(start [s], steps, step [s]) → mean true renewable availability in each step [MW]."""

PRODUCTION_CATCH_UP_H = 4.0
"""The rule's production guard aims to close today's lag within this many hours."""


@dataclass
class FlatPlanner:
    """No EMS: plans that command no asset, so no setpoint is ever sent."""

    name: str = "flat"
    source: Source = Source.FLAT
    uses_forecast: bool = False
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    def plan(self, job: PlanJob) -> Schedule:
        times = job.forecast.times_s
        zeros = np.zeros(times.size)
        return Schedule(
            plan_id=f"flat-{next(self._ids)}",
            status=SolveStatus.OPTIMAL,
            times_s=times,
            step_s=job.config.step_min * 60.0,
            line_current_ka={},
            bess_power_mw={},
            bess_soc_frac={},
            captive_mw={},
            grid_mw=zeros,
            renewable_used_mw=zeros,
            curtailed_mw=zeros,
            heat_budget_mwh={},
            production_t={},
            forecast=job.forecast,
        )


@dataclass
class RulePlanner:
    """A greedy surplus-follower, without an optimiser: what a careful operator might script.

    At each plan, with the renewable availability just observed:

    1. surplus = available + the least the captive units can run at this cycle − the site
       load with every line at nominal (positive: renewables would be curtailed or exported);
    2. each line takes its share of the surplus (by nominal power) as a current change from
       nominal, within the continuous band (with ``use_envelope``, the deep/high bands while
       their 24 h duration budget lasts), plus a production bias when today's output lags the
       pro-rata target;
    3. heat guard: beyond ``heat_guard_frac`` of the heat budget the line may not go further
       on the side that adds to it, which steers it back towards nominal;
    4. ramp-limited from the present current over one cycle and clipped to the hard limits;
    5. the BESS charges from what the lines leave of the surplus and discharges into a
       deficit, within its SOC limits;
    6. a grid-connected captive unit fills the remaining load and backs off to min stable in a
       surplus (islanded, the plant's own frequency control moves it).

    The decision is held over the horizon (:func:`~controller.planner.scheduler.hold`).
    """

    name: str = "rule"
    source: Source = Source.RULE
    uses_forecast: bool = False
    heat_guard_frac: float = 0.5
    use_envelope: bool = False
    """Also use the deep/high bands while their 24 h duration budget lasts.  Off by default:
    stepping into them at the full ramp rate, with no model of the exchangers' lag, takes the
    superheat below 5 K and production short, for hardly more renewable energy used than the
    continuous band alone (docs/backtest.md)."""

    def plan(self, job: PlanJob) -> Schedule:
        # without forecasters the job's forecast is persistence: the latest availability
        available_mw = float(job.forecast.p50_mw[0]) if job.forecast.p50_mw.size else 0.0
        targets = self.targets(job.now_s, job.state, job.site, available_mw, job.config.step_h)
        return scheduler.hold(
            job.site,
            job.state,
            job.forecast,
            job.config,
            {a: v for (k, a), v in targets.items() if k == "potline"},
            {a: v for (k, a), v in targets.items() if k == "bess"},
            {a: v for (k, a), v in targets.items() if k == "captive"},
            status=SolveStatus.OPTIMAL,
        )

    def targets(
        self,
        now_s: float,
        state: PlantState,
        site: SiteModel,
        available_mw: float,
        cycle_h: float = 0.25,
    ) -> Targets:
        """The rule's targets ``(kind, asset) → kA or MW`` for one cycle of ``cycle_h``."""
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
        return targets

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
        # Production keeps pace with the day: behind the pro-rata target the line may not
        # go below nominal (a long deficit would otherwise hold a steady lag, which a
        # proportional bias alone leaves: 5 % of current over the catch-up time); ahead of it
        # the lead is spent first.  Either way the bias closes the gap within the catch-up.
        want = min(max(i_n + surplus_mw / line.dpower_mw_per_ka(i_n), low), high)
        bias = production_bias_ka(line, ls, now_s, site)
        if bias > 0.0:
            want = max(want, i_n)
        want = min(max(want + bias, low), high)
        step = line.ramp_ka_per_h * cycle_h
        want = min(max(want, ls.current_ka - step), ls.current_ka + step)
        return min(max(want, line.hard_min_ka), line.hard_max_ka)


def production_bias_ka(line: LineModel, ls: LineState, now_s: float, site: SiteModel) -> float:
    """Current [kA] that would close today's production gap within
    :data:`PRODUCTION_CATCH_UP_H` (or by local midnight, when that comes sooner): positive
    when the line lags the pro-rata share of the day's target at nominal current, negative
    when it runs ahead of it.
    """
    elapsed_h = (now_s / 3600.0 + site.utc_offset_h) % 24.0
    expected_t = line.production_t_per_h(line.nominal_current_ka, ls.pots_online) * elapsed_h
    lag_t = expected_t - ls.produced_today_t
    t_per_h_per_ka = line.production_t_per_h(1.0, ls.pots_online)
    if t_per_h_per_ka <= 0.0:
        return 0.0
    catch_up_h = min(max(24.0 - elapsed_h, 1.0), PRODUCTION_CATCH_UP_H)
    return lag_t / (t_per_h_per_ka * catch_up_h)


@dataclass(frozen=True)
class OraclePlanner:
    """The product's planner handed the true future supply instead of a forecast."""

    true_supply: TrueSupply
    name: str = "oracle"
    source: Source = Source.MPC
    uses_forecast: bool = False
    model: HighsModel = field(default_factory=HighsModel, compare=False, repr=False)

    def plan(self, job: PlanJob) -> Schedule:
        cfg = job.config
        step_s = cfg.step_min * 60.0
        starts_s = job.forecast.times_s
        truth = QuantileForecast.point(starts_s, self.true_supply(job.now_s, cfg.steps, step_s))
        return scheduler.solve(job.site, job.state, truth, cfg, model=self.model)


STRATEGIES = ("flat", "rule", "mpc", "oracle", "bound")
"""``bound`` is no planner: one LP over the whole run (:mod:`harness.bound`), which the
backtest solves instead of running the plant."""
OPTIMISERS = frozenset({"mpc", "oracle"})
"""The strategies whose plans are solves (the backtest reports their solve times)."""


def make_planner(name: str, true_supply: TrueSupply | None = None) -> Planner:
    """A fresh planner for strategy ``name`` (the oracle needs ``true_supply``)."""
    if name == "flat":
        return FlatPlanner()
    if name == "rule":
        return RulePlanner()
    if name == "mpc":
        return MpcPlanner()
    if name == "oracle":
        if true_supply is None:
            raise ValueError("the oracle needs the true supply")
        return OraclePlanner(true_supply)
    if name == "bound":
        raise ValueError("the bound is no planner: it is one LP over the run (harness.bound)")
    raise ValueError(f"unknown strategy {name!r} (known: {', '.join(STRATEGIES)})")
