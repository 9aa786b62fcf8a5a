"""The bound (harness/bound.py): one perfect-foresight LP over the whole run, which no
strategy may exceed, measured by the simulator's truth."""

from __future__ import annotations

import pytest

from controller.planner.types import PlannerConfig
from harness.backtest import capture_ratio, run_backtest
from harness.bound import run_bound
from simulator.scenario import builtin_names, load_scenario

DAYS = 0.5
SEED = 3


def _used(kpis: dict[str, object], key: str = "renewable_used_mwh") -> float:
    value = kpis[key]
    assert isinstance(value, int | float), (key, value)
    return float(value)


@pytest.mark.parametrize("name", builtin_names())
def test_no_strategy_uses_more_renewable_energy_than_the_bound(name: str) -> None:
    """Half a day from the scenario's start: flat, mpc and oracle, each in closed loop with the
    simulator, against the bound over the same span.  The bound's own figures hang together:
    nothing curtailed below zero, no more used than was available, and the unrelaxed variant
    no higher."""
    bound = run_backtest(name, "bound", days=DAYS, seed=SEED).kpis
    assert bound["bound_status"] == "optimal"
    used = {
        s: _used(run_backtest(name, s, days=DAYS, seed=SEED).kpis)
        for s in ("flat", "mpc", "oracle")
    }
    for strategy, mwh in used.items():
        assert mwh <= _used(bound), (strategy, mwh, bound["renewable_used_mwh"])
    assert _used(bound, "renewable_used_unrelaxed_mwh") <= _used(bound) + 1e-6
    assert _used(bound, "curtailed_mwh") >= -1e-6
    assert _used(bound) <= _used(bound, "renewable_available_mwh") + 1e-6


def test_a_coarser_step_only_loosens_the_bound() -> None:
    """Averaging the supply over 15 min relaxes the 1-min LP: the bound can only rise (to the
    solver's tolerance; the heat recursions differ a little between the grids)."""
    sc = load_scenario("yunnan-hydro-solar")
    fine = run_bound(sc, days=0.25, seed=SEED, planner=PlannerConfig(), step_min=1.0)
    coarse = run_bound(sc, days=0.25, seed=SEED, planner=PlannerConfig(), step_min=15.0)
    assert _used(fine, "renewable_available_mwh") == pytest.approx(
        _used(coarse, "renewable_available_mwh")
    )
    assert _used(coarse) >= _used(fine) - 1e-3 * _used(fine)


def test_capture_against_the_bound_is_measured_from_flat() -> None:
    results = {
        "flat": {"renewable_used_mwh": 100.0},
        "mpc": {"renewable_used_mwh": 150.0},
        "oracle": {"renewable_used_mwh": 160.0},
        "bound": {"renewable_used_mwh": 200.0},
    }
    assert capture_ratio(results) == pytest.approx(50.0 / 60.0, abs=1e-4)
    assert capture_ratio(results, against="bound") == 0.5
    assert (
        capture_ratio({**results, "bound": {"renewable_used_mwh": 90.0}}, against="bound") is None
    )
