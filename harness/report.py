"""Presenting backtests: the ``backtest`` subcommand, a table, CSV traces and PNG plots.

Plots need matplotlib, the ``plots`` extra (``pip install 'smelter-ems[plots]'``); it is
imported only when plots are asked for, and runs on the Agg backend (no display).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path
from typing import Any, Final, TextIO

from tqdm import tqdm

from controller.planner.types import PlannerConfig
from harness.backtest import BacktestResult, quiet_logs, run_all
from harness.strategies import STRATEGIES
from simulator.scenario import builtin_names, load_scenario
from wire.tomlfile import FileError, convert

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

TABLE_ROWS = (
    ("renewable_available_mwh", "{:.0f}"),
    ("renewable_used_mwh", "{:.0f}"),
    ("renewable_used_after_day1_mwh", "{:.0f}"),
    ("renewable_used_unrelaxed_mwh", "{:.0f}"),
    ("renewable_share", "{:.3f}"),
    ("curtailed_mwh", "{:.0f}"),
    ("grid_import_mwh", "{:.0f}"),
    ("grid_export_mwh", "{:.0f}"),
    ("captive_mwh", "{:.0f}"),
    ("co2_t", "{:.0f}"),
    ("cost", "{:.0f}"),
    ("aluminium_t", "{:.1f}"),
    ("aluminium_target_t", "{:.1f}"),
    ("thermal_violation_min", "{:.0f}"),
    ("min_bath_temp_c", "{:.2f}"),
    ("max_bath_temp_c", "{:.2f}"),
    ("shed_mwh", "{:.1f}"),
    ("solves", "{:d}"),
    ("solve_ms_p50", "{:.1f}"),
    ("solve_ms_p95", "{:.1f}"),
    ("fallback_plans", "{:d}"),
    ("runtime_s", "{:.1f}"),
)


BAR_FORMAT: Final = "{desc} {bar} {percentage:3.0f}% [{elapsed}<{remaining}]"


class PlotsUnavailableError(RuntimeError):
    """matplotlib is not installed."""


def format_table(summary: dict[str, Any]) -> str:
    """One scenario's KPIs, a column per strategy, and the capture ratio."""
    results: dict[str, dict[str, Any]] = summary["results"]
    names = list(results)
    width = max(12, *(len(n) + 2 for n in names))
    lines = [
        f"{summary['scenario']}  ({summary['days']:g} days, seed {summary['seed']})",
        f"{'':<30}" + "".join(f"{n:>{width}}" for n in names),
    ]
    for key, fmt in TABLE_ROWS:
        cells = []
        for n in names:
            value = results[n].get(key)
            cells.append("-" if value is None else fmt.format(value))
        lines.append(f"{key:<30}" + "".join(f"{c:>{width}}" for c in cells))
    for key in (
        "capture_ratio",
        "capture_ratio_after_day1",
        "capture_ratio_vs_bound",
        "capture_ratio_vs_bound_after_day1",
    ):
        ratio = summary.get(key)
        lines.append(f"{key:<30}{'-' if ratio is None else f'{ratio:.3f}':>{width}}")
    return "\n".join(lines)


def write_trace_csv(result: BacktestResult, path: Path) -> None:
    """The per-step trace as CSV, one column per series (units in the names).  Values have six
    significant digits; times (``*_s``, UNIX seconds) are written to the millisecond."""
    if result.trace is None:
        raise ValueError("this result was run without trace=True")
    columns = list(result.trace)
    formats = ["{:.3f}" if c.endswith("_s") else "{:.6g}" for c in columns]
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for row in zip(*(result.trace[c] for c in columns), strict=True):
            writer.writerow([fmt.format(v) for fmt, v in zip(formats, row, strict=True)])


def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401, PLC0415
    except ImportError:
        raise PlotsUnavailableError(
            "plots need matplotlib: pip install 'smelter-ems[plots]'"
        ) from None


def write_plots(result: BacktestResult, path: Path) -> None:
    """Six panels on one time axis: supply, line current, heat budget, bath, SOC, grid."""
    require_matplotlib()
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    t = result.trace
    if t is None:
        raise ValueError("this result was run without trace=True")
    hours = (t["t_s"] - t["t_s"][0]) / 3600.0
    lines = [c.removesuffix("_current_ka") for c in t if c.endswith("_current_ka")]
    units = [c.removesuffix("_soc_frac") for c in t if c.endswith("_soc_frac")]
    fig, ax = plt.subplots(6, 1, figsize=(12, 16), sharex=True)
    ax[0].plot(hours, t["renewable_available_mw"], label="available")
    ax[0].plot(hours, t["renewable_used_mw"], label="used on site")
    ax[0].set_ylabel("renewable [MW]")
    for name in lines:
        (curve,) = ax[1].plot(hours, t[f"{name}_current_ka"], label=name)
        for key, style in (("band", "--"), ("envelope", ":")):
            for side in ("low", "high"):
                ax[1].plot(hours, t[f"{name}_{key}_{side}_ka"], style, color=curve.get_color())
        ax[2].plot(hours, t[f"{name}_heat_budget_mwh"], label=name)
        ax[3].plot(hours, t[f"{name}_bath_c"], label=name, color=curve.get_color())
        for side in ("min", "max"):
            ax[3].plot(hours, t[f"{name}_bath_{side}_c"], ":", color=curve.get_color())
    ax[1].set_ylabel("pot-line current [kA]\n(-- band, : envelope)")
    ax[2].set_ylabel("heat budget [MWh]\n(tracker estimate)")
    ax[3].set_ylabel("mean bath [°C]\n(simulator; : safe range)")
    for name in units:
        ax[4].plot(hours, t[f"{name}_soc_frac"], label=name)
    ax[4].set_ylabel("BESS SOC [-]")
    ax[5].plot(hours, t["grid_import_mw"], label="grid import")
    ax[5].plot(hours, t["grid_export_mw"], label="grid export")
    ax[5].plot(hours, t["captive_mw"], label="captive")
    ax[5].set_ylabel("[MW]")
    ax[5].set_xlabel("hours since start")
    for a in ax:
        if a.get_legend_handles_labels()[0]:
            a.legend(loc="upper right", fontsize="small")
        a.grid(alpha=0.3)
    fig.suptitle(f"{result.scenario} — {result.strategy} (seed {result.seed})")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


class PercentBar:
    """The backtest's progress as a tqdm bar (percent of the whole job, what runs now)."""

    def __init__(self, stream: TextIO, *, disable: bool) -> None:
        self._bar = tqdm(total=100, file=stream, disable=disable, unit="%", bar_format=BAR_FORMAT)

    def __call__(self, label: str, frac: float) -> None:
        percent = math.floor(100.0 * min(max(frac, 0.0), 1.0))
        if percent != self._bar.n:
            self._bar.set_description_str(label, refresh=False)
            self._bar.update(percent - self._bar.n)

    def close(self) -> None:
        self._bar.close()


def _error(message: str) -> int:
    print(f"smelter-ems: error: {message}", file=sys.stderr)
    return EXIT_USAGE


PLANNER_FLAGS: Final = ("horizon_h", "step_min", "far_step_min")
"""``[planner]`` keys the backtest takes as flags (``--horizon-h`` ...)."""


def planner_from_flags(args: argparse.Namespace) -> PlannerConfig:
    """The planner settings the flags give, checked against the same bounds as the config
    file's ``[planner]`` table.

    Raises:
        ValueError: a flag out of bounds, named as on the command line.
    """
    raw = {key: getattr(args, key) for key in PLANNER_FLAGS if getattr(args, key) is not None}
    try:
        planner = convert(raw, PlannerConfig, "command line")
    except FileError as exc:
        flag = "--" + exc.key.replace("_", "-")
        reason = exc.reason
        for key in PLANNER_FLAGS:
            reason = reason.replace(key, "--" + key.replace("_", "-"))
        raise ValueError(f"{flag} {exc.value}: {reason}") from None
    if not float(planner.step_min).is_integer():
        raise ValueError("--step-min must be a whole number of minutes (the plant steps 1 min)")
    return planner


def backtest_command(args: argparse.Namespace) -> int:
    """``smelter-ems backtest``: see docs/backtest.md."""
    strategies = [s.strip() for s in args.strategy.split(",") if s.strip()]
    unknown = [s for s in strategies if s not in STRATEGIES]
    if not strategies or unknown:
        return _error(f"--strategy: unknown {unknown or '(none)'}; known: {','.join(STRATEGIES)}")
    names = builtin_names() if args.scenario == "all" else [args.scenario]
    try:
        for name in names:
            load_scenario(name)
        planner = planner_from_flags(args)
        if not 0.0 < args.days <= 3660.0:
            raise ValueError(f"--days must be in (0, 3660], got {args.days}")
        out = Path(args.out) if args.out else None
        if out is not None:
            require_matplotlib()
    except (FileError, ValueError, PlotsUnavailableError) as exc:
        return _error(str(exc))

    def save(result: BacktestResult) -> None:
        if out is None or result.trace is None:  # the bound has no trace
            return
        folder = out / result.scenario
        folder.mkdir(parents=True, exist_ok=True)
        write_trace_csv(result, folder / f"{result.strategy}.csv")
        write_plots(result, folder / f"{result.strategy}.png")

    bar = PercentBar(sys.stderr, disable=not (args.progress or sys.stderr.isatty()))
    try:
        with quiet_logs():
            summaries = run_all(
                names,
                strategies,
                args.days,
                args.seed,
                planner=planner,
                progress=bar,
                trace=out is not None,
                on_result=save,
            )
    finally:
        bar.close()
    if out is not None:
        for s in summaries:
            (out / str(s["scenario"]) / "summary.json").write_text(json.dumps(s, indent=1))
    if args.json:
        print(json.dumps(summaries if args.scenario == "all" else summaries[0]))
    else:
        print("\n\n".join(format_table(s) for s in summaries))
    return EXIT_OK
