"""The closed-loop backtest: the simulator and one strategy, in-process, on simulated time.

The loop does what the daemon does over MQTT:

1. at every plant step, every telemetry payload goes through the wire codec (``encode`` →
   ``decode``) into the :class:`StateTracker`, and the measured currents and powers into the
   safety layer (the daemon hears telemetry continuously, not once a cycle);
2. every cycle (``cycle_s`` of plant time) the strategy decides from the tracker's
   :class:`PlantState` and what it has seen;
3. its targets go through the :class:`SafetyLayer` (setpoints valid for two cycles), and each
   setpoint is delivered encoded to ``plant.receive``, so the plant's own decoding and
   protection are exercised;
4. the plant steps through the cycle (``Plant.step_s`` at a time).

The KPIs are the simulator's truth (:meth:`KpiAccumulator.result`), never the planner's model.
A strategy that sends nothing (``flat``) leaves the plant exactly as an offline run.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import msgspec
import numpy as np

from controller.planner.types import FloatArray, PlannerConfig, PlantState, SolveStatus
from controller.safety import SafetyLayer
from controller.site import SiteModel
from controller.state import DAY_S, StateTracker
from controller.supply import SupplyForecaster
from harness.site_from_scenario import site_from_scenario
from harness.strategies import Context, make_strategy
from simulator.kpi import SAFE_BATH_C, SAFE_SUPERHEAT_K, SiteStep
from simulator.plant import Plant
from simulator.scenario import Scenario, load_scenario
from wire import (
    BessTelemetry,
    CaptiveTelemetry,
    PotlineTelemetry,
    RenewableTelemetry,
    Source,
    WeatherForecast,
    decode,
    encode,
)

Progress = Callable[[str, float], None]
"""(what is running, fraction of the whole job done) → None."""

VALIDITY_CYCLES = 2
"""Setpoints stay valid for two cycles: one missed cycle does not drop the plant to defaults."""
SOURCES = {"flat": Source.FLAT, "rule": Source.RULE, "mpc": Source.MPC, "oracle": Source.MPC}
TIMING_KEYS = frozenset({"solve_ms_p50", "solve_ms_p95", "runtime_s"})
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
    """Per plant step, when asked for: column name → values (see :class:`_Trace`)."""


class _Trace:
    """Per-step columns: site powers [MW], per line current/band [kA], heat budget (the
    tracker's estimate) [MWh], mean bath temperature [°C] with its safe range and ledge [cm]
    (the simulator's truth), per BESS SOC [-]."""

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

    def add(self, step: SiteStep, plant: Plant, state: PlantState) -> None:
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
            tracked = state.lines.get(line.name)
            row |= {
                f"{line.name}_current_ka": ls.current_ka,
                f"{line.name}_band_low_ka": line.band_low_frac * i_n,
                f"{line.name}_band_high_ka": line.band_high_frac * i_n,
                f"{line.name}_envelope_low_ka": line.deep_low_frac * i_n,
                f"{line.name}_envelope_high_ka": line.high_max_frac * i_n,
                f"{line.name}_heat_budget_mwh": tracked.heat_budget_mwh if tracked else 0.0,
                f"{line.name}_bath_c": ls.mean_bath_temp_c,
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


def _observe(
    plant: Plant, tracker: StateTracker, safety: SafetyLayer, supply: SupplyForecaster | None
) -> None:
    """Telemetry to the controller's side, through the same codec the daemon's MQTT uses."""
    for topic, payload in plant.telemetry():
        parsed = plant.topics.parse(topic)
        if parsed is None:
            continue
        decoded: msgspec.Struct = decode(parsed.kind, encode(payload))
        tracker.observe_telemetry(parsed.kind, parsed.asset, decoded)
        if supply is not None and isinstance(decoded, RenewableTelemetry):
            supply.observe_telemetry(parsed.asset, decoded)
        if isinstance(decoded, PotlineTelemetry):
            safety.observe("potline", parsed.asset, decoded.current_ka, decoded.ts)
        elif isinstance(decoded, BessTelemetry | CaptiveTelemetry):
            safety.observe(parsed.kind, parsed.asset, decoded.power_mw, decoded.ts)


def run_backtest(
    scenario: Scenario | str,
    strategy_name: str,
    *,
    days: float,
    seed: int,
    planner: PlannerConfig | None = None,
    cycle_s: float = 900.0,
    progress: Progress | None = None,
    trace: bool = False,
) -> BacktestResult:
    """Run ``strategy_name`` in closed loop with the simulator for ``days`` of plant time."""
    sc = load_scenario(scenario) if isinstance(scenario, str) else scenario
    planner = planner or PlannerConfig()
    strategy = make_strategy(strategy_name)
    plant = Plant(sc, seed)
    steps_per_cycle = round(cycle_s / plant.step_s)
    if steps_per_cycle < 1 or abs(steps_per_cycle * plant.step_s - cycle_s) > 1e-6:
        raise ValueError(f"cycle_s must be a whole number of plant steps ({plant.step_s:g} s)")
    if not 0.0 < days <= 3660.0:
        raise ValueError(f"days must be in (0, 3660], got {days}")
    site = site_from_scenario(sc)
    tracker = StateTracker(site)
    safety = SafetyLayer(site, validity_s=VALIDITY_CYCLES * cycle_s, topics=plant.topics)
    true_supply = _true_supply(plant) if strategy_name == "oracle" else None
    # mpc forecasts as the daemon will: from telemetry and the published weather forecasts
    supply = SupplyForecaster(site) if strategy_name == "mpc" else None
    next_weather_s = plant.now_s
    cycles = max(1, round(days * 86_400.0 / cycle_s))
    recorder = _Trace(site, plant) if trace else None
    solve_ms: list[float] = []
    plans: Counter[str] = Counter()
    alarms: Counter[str] = Counter()
    started = time.perf_counter()
    first_day_end_s = plant.now_s + DAY_S
    first_day_used_mwh: float | None = None
    for cycle in range(cycles):
        now_s = plant.now_s
        if first_day_used_mwh is None and now_s >= first_day_end_s:
            first_day_used_mwh = _renewable_used_mwh(plant.kpi.result())
        if supply is not None and now_s >= next_weather_s:
            _, forecast = plant.weather_forecast()
            supply.observe_weather(decode("weather", encode(forecast), WeatherForecast))
            next_weather_s = now_s + plant.forecast_interval_s
        _observe(plant, tracker, safety, supply)
        state = tracker.state(now_s)
        times_s, available_mw = tracker.renewable_history()
        context = Context(
            site, planner, safety, cycle_s, times_s, available_mw, true_supply, supply
        )
        targets, schedule = strategy.decide(now_s, state, context)
        if schedule is not None:
            solve_ms.append(schedule.solve_ms)
            plans[schedule.status.value] += 1
        # Sending nothing at all (flat) must leave the plant exactly as an offline run.
        if targets:
            plan_id = schedule.plan_id if schedule is not None else f"{strategy_name}-{cycle}"
            for topic, payload in safety.dispatch(
                targets, now_s, source=SOURCES[strategy_name], plan_id=plan_id
            ):
                plant.receive(topic, encode(payload))
        for k in range(steps_per_cycle):
            if k > 0:
                # The daemon hears telemetry at 1 Hz, not once a cycle: within-cycle changes
                # (load shedding, a new setpoint) reach the tracker's heat and production
                # estimates one plant step late, not one cycle late.
                _observe(plant, tracker, safety, supply)
            step = plant.step()
            alarms.update(a.code for _, a in plant.drain_alarms())
            if recorder is not None:
                recorder.add(step, plant, tracker.state(step.t_s))
        if progress is not None:
            progress(f"{sc.name} {strategy_name}", (cycle + 1) / cycles)
    kpis = plant.kpi.result()
    kpis["renewable_used_after_day1_mwh"] = (
        None
        if first_day_used_mwh is None
        else round(_renewable_used_mwh(kpis) - first_day_used_mwh, 3)
    )
    kpis |= _solver_stats(solve_ms, plans)
    kpis["alarms"] = dict(sorted(alarms.items()))
    kpis["safety_events"] = dict(sorted(Counter(e.code for e in safety.events).items()))
    kpis["rejected_commands"] = dict(plant.rejected)
    kpis["runtime_s"] = round(time.perf_counter() - started, 3)
    return BacktestResult(
        sc.name, strategy_name, days, seed, kpis, recorder.arrays() if recorder else None
    )


def _solver_stats(solve_ms: Sequence[float], plans: Mapping[str, int]) -> dict[str, object]:
    ms = np.asarray(solve_ms, dtype=float)
    return {
        "solves": int(ms.size),
        "solve_ms_p50": round(float(np.percentile(ms, 50)), 2) if ms.size else None,
        "solve_ms_p95": round(float(np.percentile(ms, 95)), 2) if ms.size else None,
        "fallback_plans": plans.get(SolveStatus.FALLBACK.value, 0),
        "time_limit_plans": plans.get(SolveStatus.TIME_LIMIT.value, 0),
    }


def _renewable_used_mwh(kpis: Mapping[str, object]) -> float:
    value = kpis.get("renewable_used_mwh", 0.0)
    return float(value) if isinstance(value, int | float) else 0.0


def capture_ratio(
    results: Mapping[str, Mapping[str, object]], key: str = "renewable_used_mwh"
) -> float | None:
    """(mpc − flat) / (oracle − flat) renewable used (``key``); None when a term is missing or
    the oracle gains nothing over flat (no headroom to capture)."""
    used: dict[str, float] = {}
    for name in ("flat", "mpc", "oracle"):
        value = results.get(name, {}).get(key)
        if not isinstance(value, int | float):
            return None
        used[name] = float(value)
    headroom = used["oracle"] - used["flat"]
    if headroom <= 0.0:
        return None
    return round((used["mpc"] - used["flat"]) / headroom, 4)


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
    }


def run_all(
    scenario_names: Sequence[str],
    strategies: Sequence[str],
    days: float,
    seed: int,
    *,
    planner: PlannerConfig | None = None,
    cycle_s: float = 900.0,
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
                cycle_s=cycle_s,
                progress=report,
                trace=trace,
            )
            done += 1
            if on_result is not None:
                on_result(results[strategy])
        out.append(summary(sc.name, days, seed, results))
    return out
