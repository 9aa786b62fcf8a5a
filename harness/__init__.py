"""The evaluation harness: the controller's core in closed loop with the simulator.

With the command-line dispatcher, the only package that imports both ``controller`` and
``simulator`` (DESIGN §2, tests/test_layering.py).  Public API::

    site_from_scenario(scenario) -> SiteModel
    run_backtest(scenario, strategy_name, days=..., seed=...) -> BacktestResult
    run_all(scenario_names, strategies, days, seed) -> [summary JSON object per scenario]
    capture_ratio(results) -> float | None
    make_planner(strategy_name, true_supply) -> Planner   (flat, rule, mpc, oracle; the bound
    is one LP over the run, harness.bound)
"""

from harness.backtest import BacktestResult, capture_ratio, run_all, run_backtest
from harness.site_from_scenario import site_from_scenario
from harness.strategies import STRATEGIES, make_planner

__all__ = [
    "STRATEGIES",
    "BacktestResult",
    "capture_ratio",
    "make_planner",
    "run_all",
    "run_backtest",
    "site_from_scenario",
]
