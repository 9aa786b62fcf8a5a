"""Running the cells on Dask: a local cluster sized to the machine, or one already running.

Each cell is one task (:func:`~harness.sweep.cells.run_cell`); a backtest holds the GIL, so a
local cluster has one process per worker and one thread each.  Rows come back in the order
they finish and are put back in the grid's order at the end.  A task that fails in a way the
cell cannot report itself (its worker died, a cell that cannot be sent) still gives a row,
with its error.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from controller.planner.types import PlannerConfig
from harness.sweep.cells import Cell, identity, run_cell
from harness.sweep.grid import GridError, Setting, apply
from simulator.scenario import Scenario

Row = dict[str, Any]


class EngineUnavailableError(RuntimeError):
    """Dask is not installed."""


def make_cells(
    scenarios: Sequence[Scenario],
    seeds: Sequence[int],
    strategies: Sequence[str],
    days: float,
    settings: Sequence[Setting],
    planner: PlannerConfig,
) -> list[Cell]:
    """Every (scenario, setting, seed, strategy), each setting checked on each scenario first.

    Raises:
        GridError: a setting that does not fit a scenario, naming both.
    """
    cells: list[Cell] = []
    for scenario in scenarios:
        for setting in settings:
            try:
                sc, pc = apply(setting, scenario, planner)
            except GridError as exc:
                raise GridError(f"scenario {scenario.name}: {exc}") from None
            for seed in seeds:
                for strategy in strategies:
                    cells.append(Cell(sc, seed, strategy, days, setting, pc, len(cells)))
    return cells


@contextlib.contextmanager
def connect(workers: int | None = None, scheduler: str | None = None) -> Iterator[Any]:
    """A Dask client: of the cluster at ``scheduler`` (``tcp://HOST:PORT``), or of a local
    cluster of ``workers`` processes (default: one per CPU), closed on the way out."""
    try:
        from dask.distributed import Client, LocalCluster  # noqa: PLC0415  (an extra)
    except ImportError as exc:
        raise EngineUnavailableError(
            "sweep runs on Dask: pip install 'smelter-ems[sweep]'"
        ) from exc
    if scheduler is not None:
        with Client(scheduler, timeout="30s") as client:
            yield client
        return
    n = workers or os.cpu_count() or 1
    with (
        LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            # no dashboard; its bare HTTP server (health, metrics) on any free port, not 8787
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            silence_logs=40,  # logging.ERROR: a worker's chatter is not the sweep's output
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def run_cells(
    client: Any,
    cells: Sequence[Cell],
    *,
    run: Callable[[Cell], Row] = run_cell,
    on_row: Callable[[Row], None] | None = None,
) -> list[Row]:
    """Run every cell on the client's cluster; the rows in the grid's order."""
    from dask.distributed import as_completed  # noqa: PLC0415  (an extra)

    futures = client.map(run, cells, pure=False)
    cell_of = {f.key: c for f, c in zip(futures, cells, strict=True)}
    rows: list[Row] = []
    for future in as_completed(futures):
        cell = cell_of[future.key]
        if future.status == "finished":
            row = future.result()
        else:
            exc = future.exception()
            row = identity(cell) | {"error": f"{type(exc).__name__}: {exc}"}
        future.release()
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return sorted(rows, key=lambda r: int(r["index"]))
