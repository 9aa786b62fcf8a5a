"""``kpis.json``: the demo's KPIs (docs/kpis.md) for the controller and for the flat baseline.

The controller's are the simulator's truth over the MQTT run, plus what the daemon's plans say
of its solver.  The flat baseline (nominal current, BESS idle: no EMS) is the same scenario and
seed run in-process: a plant that gets no setpoints, which is what the backtest's ``flat``
strategy is (harness/backtest.py: "a strategy that sends nothing leaves the plant exactly as an
offline run"; tests/test_demo.py checks that they agree).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Final

from controller.site import SiteModel
from harness.backtest import solver_stats
from harness.demo.listen import Heard, RecordingPlant
from simulator.scenario import Scenario
from wire import Topics

GAIN_KEYS: Final = (
    "renewable_used_mwh",
    "renewable_share",
    "renewable_share_hourly",
    "curtailed_mwh",
    "grid_import_mwh",
    "captive_mwh",
    "co2_t",
    "co2_t_per_t_al",
    "cost",
    "aluminium_t",
)
"""KPIs whose difference (controller − flat) the file gives under ``gain``."""

UNITS: Final = {
    "renewable_available_mwh": "MWh",
    "renewable_used_mwh": "MWh",
    "renewable_share": "fraction of site consumption",
    "renewable_share_hourly": "fraction of site consumption, matched hour by hour",
    "curtailed_mwh": "MWh",
    "site_consumption_mwh": "MWh",
    "grid_import_mwh": "MWh",
    "grid_export_mwh": "MWh",
    "captive_mwh": "MWh",
    "co2_t": "tCO2 (electricity-related)",
    "co2_t_per_t_al": "tCO2 per t aluminium (electricity-related)",
    "cost": "CNY",
    "aluminium_t": "t",
    "aluminium_target_t": "t",
    "thermal_violation_min": "min",
    "min_bath_temp_c": "°C",
    "max_bath_temp_c": "°C",
    "solve_ms_p50": "ms",
    "solve_ms_p95": "ms",
}


def flat_baseline(scenario: Scenario, seed: int, site: SiteModel, end_s: float) -> RecordingPlant:
    """The same plant with no controller, in-process, up to ``end_s`` of plant time."""
    plant = RecordingPlant(scenario, seed, Topics(), site, end_s=end_s)
    while plant.final_kpis is None:
        plant.step()
    return plant


def _with_hourly(plant: RecordingPlant) -> dict[str, Any]:
    plant.snapshot()
    assert plant.final_kpis is not None and plant.final_share_by_hour is not None
    starts, shares = plant.final_share_by_hour
    return {
        **plant.final_kpis,
        "renewable_share_by_hour": {"hour_start_s": starts, "share": shares},
    }


def planning_stats(heard: Heard) -> dict[str, Any]:
    """What the daemon's plans (as heard on the plan topic) say of its planning: the
    backtest's solver KPIs (:func:`harness.backtest.solver_stats`), and how many plans."""
    statuses = Counter(p.status for p in heard.plans)
    return {"plans": len(heard.plans)} | solver_stats([p.solve_ms for p in heard.plans], statuses)


def build_kpis(
    *,
    scenario: Scenario,
    seed: int,
    days: float,
    speed: float,
    broker: str,
    controlled: RecordingPlant,
    flat: RecordingPlant,
    heard: Heard,
    interrupted: bool,
) -> dict[str, Any]:
    controller = _with_hourly(controlled) | planning_stats(heard)
    baseline = _with_hourly(flat)
    gain: dict[str, float | None] = {}
    for key in GAIN_KEYS:
        a, b = controller.get(key), baseline.get(key)
        ok = isinstance(a, int | float) and isinstance(b, int | float)
        gain[key] = round(float(a) - float(b), 6) if ok else None  # type: ignore[arg-type]
    return {
        "scenario": scenario.name,
        "seed": seed,
        "days": days,
        "speed": speed,
        "broker": broker,
        "interrupted": interrupted,
        "grid_carbon_t_per_mwh": scenario.grid.carbon_t_per_mwh if scenario.grid else None,
        "captive_co2_t_per_mwh": {c.name: c.co2_t_per_mwh for c in scenario.captive},
        "controller": controller,
        "flat": baseline,
        "gain": gain,
        "units": UNITS,
    }
