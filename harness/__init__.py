"""The evaluation harness: closed-loop backtests of the controller against the simulator.

With the command-line dispatcher, the only package that imports both ``controller`` and
``simulator`` (DESIGN §2).  Public API::

    site_from_scenario(scenario) -> SiteModel
    run_backtest(scenario, strategy_name, days=..., seed=...) -> BacktestResult
    run_all(scenario_names, strategies, days, seed) -> [summary JSON object per scenario]
    capture_ratio(results) -> float | None
"""

from harness.backtest import BacktestResult, capture_ratio, run_all, run_backtest
from harness.site_from_scenario import site_from_scenario
from harness.strategies import STRATEGIES, Context, Strategy, make_strategy

__all__ = [
    "STRATEGIES",
    "BacktestResult",
    "Context",
    "Strategy",
    "capture_ratio",
    "make_strategy",
    "run_all",
    "run_backtest",
    "site_from_scenario",
]
