"""``smelter-ems sweep``: a grid of backtests on Dask (docs/sweep.md)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from controller.planner.types import PlannerConfig
from harness.strategies import STRATEGIES
from harness.sweep.engine import EngineUnavailableError, connect, make_cells, run_cells
from harness.sweep.grid import MAX_CELLS, GridError, parse_axis, parse_seeds, settings
from harness.sweep.output import write_all
from harness.sweep.summary import add_derived, format_summary, summarise
from simulator.scenario import builtin_names, load_scenario
from wire.tomlfile import FileError

EXIT_OK = 0
EXIT_CELLS_FAILED = 1
EXIT_USAGE = 2


def sweep_command(args: argparse.Namespace) -> int:
    try:
        cells = _cells(args)
        if args.workers is not None and args.workers < 1:
            raise GridError("--workers: at least 1")
    except (GridError, FileError, ValueError) as exc:
        print(f"smelter-ems: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        with connect(args.workers, args.scheduler) as client:
            bar = _bar(len(cells), args.progress or sys.stderr.isatty())
            try:
                rows = run_cells(client, cells, on_row=lambda _: bar.update())
            finally:
                bar.close()
    except (EngineUnavailableError, OSError) as exc:
        print(f"smelter-ems: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    add_derived(rows)
    summary = summarise(rows)
    failed = [
        {k: r[k] for k in ("scenario", "setting", "seed", "strategy", "error")}
        for r in rows
        if r.get("error") is not None
    ]
    written = write_all(Path(args.out), rows, summary) if args.out else []
    if args.json:
        doc: dict[str, Any] = {"cells": len(rows), "failed": failed, "summary": summary}
        doc["files"] = [str(p) for p in written]
        print(json.dumps(doc))
    else:
        print(format_summary(summary))
        for f in failed:
            print(f"failed: {f['scenario']} {f['setting']} seed {f['seed']} {f['strategy']}:")
            print(f"  {f['error']}")
        for path in written:
            print(f"wrote {path}")
    return EXIT_CELLS_FAILED if failed else EXIT_OK


def _cells(args: argparse.Namespace) -> list[Any]:
    strategies = [s.strip() for s in args.strategy.split(",") if s.strip()]
    unknown = [s for s in strategies if s not in STRATEGIES]
    if not strategies or unknown:
        raise GridError(f"--strategy: unknown {unknown or '(none)'}; known: {','.join(STRATEGIES)}")
    if not 0.0 < args.days <= 3660.0:
        raise GridError(f"--days must be in (0, 3660], got {args.days}")
    names = (
        builtin_names()
        if args.scenario == "all"
        else [s.strip() for s in args.scenario.split(",") if s.strip()]
    )
    scenarios = [load_scenario(n) for n in names]
    seeds = parse_seeds(args.seeds)
    grid = settings([parse_axis(text) for text in args.set])
    n = len(scenarios) * len(grid) * len(seeds) * len(strategies)
    if n > MAX_CELLS:
        raise GridError(f"{n} cells is more than {MAX_CELLS}; split the sweep")
    return make_cells(scenarios, seeds, strategies, args.days, grid, PlannerConfig())


def _bar(total: int, show: bool) -> Any:
    from tqdm import tqdm  # noqa: PLC0415  (the sweep extra)

    return tqdm(total=total, unit="cell", disable=not show, file=sys.stderr, desc="sweep")
