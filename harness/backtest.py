"""The closed-loop backtest: the simulator and the controller's core, in-process, on plant time.

The controller under test is the one the daemon runs: its
:class:`~controller.core.core.ControllerCore`, with the strategy as its planner
(:mod:`harness.strategies`).  At every plant step (``Plant.step_s``):

1. the plant publishes what it would on MQTT (telemetry, a weather forecast when one is due,
   its alarms) and each message reaches the core encoded, as the broker would hand it over;
2. the core ticks on plant time (the wall clock of a daemon that is never late), takes a plan
   job when its cadence says one is due (every cycle on the grid of plant time, early on a
   forecast miss, a lost asset ...), and the strategy plans it in line;
3. the setpoints the core sends through its safety layer reach the plant encoded, so the
   plant's own decoding and protection are exercised;
4. the plant steps.

The KPIs are the simulator's truth (:meth:`KpiAccumulator.result`), never the planner's model.
A strategy that sends nothing (``flat``) leaves the plant exactly as an offline run.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from controller.config import ControllerSection
from controller.core.cadence import SCHEDULED
from controller.core.core import ControllerCore
from controller.core.ports import PlanJob
from controller.planner.types import FloatArray, PlannerConfig, PlantState, Schedule, SolveStatus
from controller.site import SiteModel
from controller.state import DAY_S
from harness.bound import run_bound
from harness.site_from_scenario import site_from_scenario
from harness.strategies import OPTIMISERS, make_planner
from simulator.kpi import SAFE_BATH_C, SAFE_SUPERHEAT_K, SiteStep
from simulator.plant import Plant
from simulator.scenario import Scenario, load_scenario
from wire import encode

Progress = Callable[[str, float], None]
"""(what is running, fraction of the whole job done) → None."""

QUIET_LOGGERS: dict[str, int] = {
    "simulator.protection": logging.WARNING,
    "controller.core": logging.WARNING,
    "controller.core.alarms": logging.ERROR,
}
"""The plant's protection logs each asset leaving its safe default, and the controller's core
each safety-layer change and status, at INFO, in every run; the core warns of each kind of
plant alarm once and then hourly.  A backtest counts all of them in its KPIs (``alarms``,
``safety_events``), so they stay out of its log."""


@contextlib.contextmanager
def quiet_logs() -> Iterator[None]:
    """Raise the loggers of :data:`QUIET_LOGGERS` to their level for the block, unless they
    are set to log DEBUG (someone is looking)."""
    saved = [(logging.getLogger(name), logging.getLogger(name).level) for name in QUIET_LOGGERS]
    for lg, _ in saved:
        if not lg.isEnabledFor(logging.DEBUG):
            lg.setLevel(QUIET_LOGGERS[lg.name])
    try:
        yield
    finally:
        for lg, level in saved:
            lg.setLevel(level)


TIMING_KEYS = frozenset({"solve_ms_p50", "solve_ms_p95", "solve_s", "runtime_s"})
"""KPIs that depend on the machine, not on the seed."""


@dataclass(frozen=True)
class BacktestResult:
    scenario: str
    strategy: str
    days: float
    seed: int
    kpis: dict[str, object]
    """Simulator KPIs (DESIGN §5) plus solver statistics, alarm and safety-event counts."""
    trace: dict[str, FloatArray] | None
    """Per plant step, when asked for: column name → values (see :class:`Trace`)."""


class Trace:
    """Per-step columns: site powers [MW], per line current/band [kA], heat budget (the
    tracker's estimate; NaN without a tracker in the process) [MWh], mean bath temperature
    [°C] with its safe range and ledge [cm] (the simulator's truth), per BESS SOC [-]."""

    def __init__(self, site: SiteModel, plant: Plant) -> None:
        self.site = site
        self.columns: dict[str, list[float]] = {}
        # The binding safe range of the bath: the tighter of the bath and superheat bands.
        self.bath_range_c = [
            (
                max(SAFE_BATH_C[0], line.p.liquidus_c + SAFE_SUPERHEAT_K[0]),
                min(SAFE_BATH_C[1], line.p.liquidus_c + SAFE_SUPERHEAT_K[1]),
            )
            for line in plant.lines
        ]

    def add(self, step: SiteStep, plant: Plant, state: PlantState | None) -> None:
        row: dict[str, float] = {
            "t_s": step.t_s,
            "renewable_available_mw": step.renewable_available_mw,
            "renewable_used_mw": step.renewable_used_mw,
            "curtailed_mw": step.curtailed_mw,
            "grid_import_mw": step.grid_import_mw,
            "grid_export_mw": step.grid_export_mw,
            "captive_mw": step.captive_mw,
            "bess_mw": step.bess_mw,
        }
        for line, ls, (bath_min_c, bath_max_c) in zip(
            self.site.lines, step.lines, self.bath_range_c, strict=True
        ):
            i_n = line.nominal_current_ka
            tracked = state.lines.get(line.name) if state is not None else None
            row |= {
                f"{line.name}_current_ka": ls.current_ka,
                f"{line.name}_band_low_ka": line.band_low_frac * i_n,
                f"{line.name}_band_high_ka": line.band_high_frac * i_n,
                f"{line.name}_envelope_low_ka": line.deep_low_frac * i_n,
                f"{line.name}_envelope_high_ka": line.high_max_frac * i_n,
                f"{line.name}_heat_budget_mwh": (
                    tracked.heat_budget_mwh if tracked else 0.0 if state else math.nan
                ),
                f"{line.name}_bath_c": ls.mean_bath_temp_c,
                f"{line.name}_bath_est_c": (
                    tracked.bath_c if tracked and tracked.bath_c is not None else math.nan
                ),
                f"{line.name}_bath_min_c": bath_min_c,
                f"{line.name}_bath_max_c": bath_max_c,
                f"{line.name}_ledge_cm": ls.mean_ledge_cm,
            }
        for b in plant.bess:
            row[f"{b.spec.name}_soc_frac"] = b.soc_frac
        for key, value in row.items():
            self.columns.setdefault(key, []).append(value)

    def arrays(self) -> dict[str, FloatArray]:
        return {k: np.asarray(v, dtype=float) for k, v in self.columns.items()}


def _true_supply(plant: Plant) -> Callable[[float, int, float], FloatArray]:
    """The oracle's view: the weather truth, averaged over each planner step."""

    def supply(start_s: float, steps: int, step_s: float) -> FloatArray:
        sub = round(step_s / plant.step_s)
        total = np.zeros(steps * sub)
        for r in plant.scenario.renewable:
            total += plant.weather.available_block_mw(r.name, start_s, steps * sub)
        mean_mw: FloatArray = total.reshape(steps, sub).mean(axis=1)
        return mean_mw

    return supply


class _InProcessBus:
    """The broker, in line: each side's publications reach what the other subscribes to.

    The plant's telemetry, weather forecasts and alarms go to the core as the encoded contract
    messages the daemon receives; the core's commands go to the plant, which decodes them
    itself.  The core's status and plan messages have no subscriber here.
    """

    def __init__(self, plant: Plant, core: ControllerCore) -> None:
        self.plant = plant
        self.core = core
        self.commands = plant.topics.prefix + "/command/"
        self.alarms: Counter[str] = Counter()
        self._next_weather_s = plant.now_s

    def plant_publishes(self, wall_s: float) -> None:
        """Everything the plant publishes at its present time: weather forecast when due,
        telemetry, alarms raised since the last step."""
        plant, core = self.plant, self.core
        if plant.now_s >= self._next_weather_s:
            topic, forecast = plant.weather_forecast()
            core.on_message(topic, encode(forecast), wall_s)
            self._next_weather_s += plant.forecast_interval_s
        for topic, payload in plant.telemetry():
            core.on_message(topic, encode(payload), wall_s)
        for topic, alarm in plant.drain_alarms():
            self.alarms[alarm.code] += 1
            core.on_message(topic, encode(alarm), wall_s)

    def core_publishes(self) -> None:
        for pub in self.core.drain():
            if pub.topic.startswith(self.commands):
                self.plant.receive(pub.topic, pub.payload)


@dataclass
class _Solves:
    """What the optimiser strategies' plans cost, and why plans were made."""

    optimiser: bool
    solve_ms: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)

    def add(self, job: PlanJob, schedule: Schedule) -> None:
        self.reasons[job.why if job.why in SCHEDULED else "early"] += 1
        if self.optimiser:
            self.solve_ms.append(schedule.solve_ms)
            self.statuses[schedule.status.value] += 1


def run_backtest(
    scenario: Scenario | str,
    strategy_name: str,
    *,
    days: float,
    seed: int,
    planner: PlannerConfig | None = None,
    progress: Progress | None = None,
    trace: bool = False,
) -> BacktestResult:
    """Run ``strategy_name`` in closed loop with the simulator for ``days`` of plant time.

    The controller is the daemon's core (:class:`~controller.core.core.ControllerCore`) with
    the strategy as its planner and the daemon's default settings, re-planning every planner
    step (``planner.step_min``); plant time stands in for the wall clock.
    """
    sc = load_scenario(scenario) if isinstance(scenario, str) else scenario
    config = planner or PlannerConfig()
    if not 0.0 < days <= 3660.0:
        raise ValueError(f"days must be in (0, 3660], got {days}")
    if strategy_name == "bound":
        kpis = run_bound(sc, days=days, seed=seed, planner=config)
        if progress is not None:
            progress(f"{sc.name} bound", 1.0)
        return BacktestResult(sc.name, strategy_name, days, seed, kpis, None)
    plant = Plant(sc, seed)
    cycle_s = config.step_min * 60.0
    steps_per_cycle = round(cycle_s / plant.step_s)
    if steps_per_cycle < 1 or abs(steps_per_cycle * plant.step_s - cycle_s) > 1e-6:
        raise ValueError(
            f"the planner's step must be a whole number of plant steps ({plant.step_s:g} s)"
        )
    site = site_from_scenario(sc)
    strategy = make_planner(strategy_name, _true_supply(plant))
    settings = ControllerSection(cycle_min=config.step_min)
    core = ControllerCore(site, settings, config, plant.topics, planner=strategy)
    bus = _InProcessBus(plant, core)
    solves = _Solves(strategy_name in OPTIMISERS)
    steps = max(1, round(days * 86_400.0 / cycle_s)) * steps_per_cycle
    recorder = Trace(site, plant) if trace else None
    started = time.perf_counter()
    start_s = plant.now_s
    first_day_used_mwh: float | None = None
    for k in range(steps):
        wall_s = plant.now_s - start_s
        if first_day_used_mwh is None and plant.now_s >= start_s + DAY_S:
            first_day_used_mwh = _renewable_used_mwh(plant.kpi.result())
        bus.plant_publishes(wall_s)
        core.tick(wall_s)
        job = core.take_plan_job()
        if job is not None:
            schedule = strategy.plan(job)
            solves.add(job, schedule)
            core.on_schedule(schedule)
        bus.core_publishes()
        step = plant.step()
        if recorder is not None:
            recorder.add(step, plant, core.tracker.state(step.t_s))
        if progress is not None and (k + 1) % steps_per_cycle == 0:
            progress(f"{sc.name} {strategy_name}", (k + 1) / steps)
    kpis = plant.kpi.result()
    kpis["renewable_used_after_day1_mwh"] = (
        None
        if first_day_used_mwh is None
        else round(_renewable_used_mwh(kpis) - first_day_used_mwh, 3)
    )
    kpis |= solver_stats(solves.solve_ms, solves.statuses)
    kpis["plans"] = dict(sorted(solves.reasons.items()))
    kpis["alarms"] = dict(sorted(bus.alarms.items()))
    kpis["safety_events"] = dict(sorted(core.dispatcher.events.items()))
    kpis["rejected_commands"] = dict(plant.rejected)
    kpis["rejected_messages"] = dict(core.ingest.rejected)
    kpis["suspect_telemetry"] = dict(sorted(core.plausibility.suspects.items()))
    kpis["runtime_s"] = round(time.perf_counter() - started, 3)
    return BacktestResult(
        sc.name, strategy_name, days, seed, kpis, recorder.arrays() if recorder else None
    )


def solver_stats(solve_ms: Sequence[float], plans: Mapping[str, int]) -> dict[str, object]:
    """The KPIs of a run's plans: how many, solve time p50/p95 [ms] and total [s], fallback
    and time-limit plans (``plans``: count by status)."""
    ms = np.asarray(solve_ms, dtype=float)
    return {
        "solves": int(ms.size),
        "solve_ms_p50": round(float(np.percentile(ms, 50)), 2) if ms.size else None,
        "solve_ms_p95": round(float(np.percentile(ms, 95)), 2) if ms.size else None,
        "solve_s": round(float(ms.sum()) / 1e3, 3),
        "fallback_plans": plans.get(SolveStatus.FALLBACK.value, 0),
        "time_limit_plans": plans.get(SolveStatus.TIME_LIMIT.value, 0),
    }


def _renewable_used_mwh(kpis: Mapping[str, object]) -> float:
    value = kpis.get("renewable_used_mwh", 0.0)
    return float(value) if isinstance(value, int | float) else 0.0


def capture_ratio(
    results: Mapping[str, Mapping[str, object]],
    key: str = "renewable_used_mwh",
    against: str = "oracle",
    strategy: str = "mpc",
) -> float | None:
    """(``strategy`` − flat) / (``against`` − flat) renewable used (``key``), against the
    ``oracle`` or the ``bound``; None when a term is missing or ``against`` gains nothing over
    flat (no headroom to capture)."""
    used: dict[str, float] = {}
    for name in ("flat", strategy, against):
        value = results.get(name, {}).get(key)
        if not isinstance(value, int | float):
            return None
        used[name] = float(value)
    headroom = used[against] - used["flat"]
    if headroom <= 0.0:
        return None
    return round((used[strategy] - used["flat"]) / headroom, 4)


def summary(
    scenario: str, days: float, seed: int, results: Mapping[str, BacktestResult]
) -> dict[str, object]:
    """The JSON object of one scenario: KPIs per strategy and the capture ratio."""
    kpis = {name: r.kpis for name, r in results.items()}
    return {
        "scenario": scenario,
        "days": days,
        "seed": seed,
        "results": kpis,
        "capture_ratio": capture_ratio(kpis),
        "capture_ratio_after_day1": capture_ratio(kpis, "renewable_used_after_day1_mwh"),
        "capture_ratio_vs_bound": capture_ratio(kpis, against="bound"),
        "capture_ratio_vs_bound_after_day1": capture_ratio(
            kpis, "renewable_used_after_day1_mwh", against="bound"
        ),
    }


def run_all(
    scenario_names: Sequence[str],
    strategies: Sequence[str],
    days: float,
    seed: int,
    *,
    planner: PlannerConfig | None = None,
    progress: Progress | None = None,
    trace: bool = False,
    on_result: Callable[[BacktestResult], None] | None = None,
) -> list[dict[str, object]]:
    """Every strategy on every scenario; one :func:`summary` per scenario.

    ``on_result`` sees each run as it finishes (to write its trace without keeping them all).
    """
    out: list[dict[str, object]] = []
    jobs = max(len(scenario_names) * len(strategies), 1)
    done = 0
    for name in scenario_names:
        sc = load_scenario(name)
        results: dict[str, BacktestResult] = {}
        for strategy in strategies:
            offset = done

            def report(label: str, frac: float, offset: int = offset) -> None:
                if progress is not None:
                    progress(label, (offset + frac) / jobs)

            results[strategy] = run_backtest(
                sc,
                strategy,
                days=days,
                seed=seed,
                planner=planner,
                progress=report,
                trace=trace,
            )
            done += 1
            if on_result is not None:
                on_result(results[strategy])
        out.append(summary(sc.name, days, seed, results))
    return out
