"""``smelter-ems sweep``: a grid of backtests on a real Dask cluster, cell for cell the same as
the backtests run one by one (deterministic by seed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("distributed")

from controller.planner.types import PlannerConfig
from harness.backtest import TIMING_KEYS, run_backtest
from harness.mosquitto import free_port
from harness.sweep.cells import Cell, flatten
from harness.sweep.engine import connect, make_cells, run_cells
from harness.sweep.grid import GridError, apply, parse_axis, parse_seeds, settings
from harness.sweep.summary import add_derived, summarise
from simulator.scenario import load_scenario

SCENARIO = "yunnan-hydro-solar"
DAYS = 0.25  # a quarter day: 24 plans a cell, a second or so each


def test_seeds_are_ranges_and_lists_each_once() -> None:
    assert parse_seeds("1-4") == [1, 2, 3, 4]
    assert parse_seeds("1,3, 5-7,3") == [1, 3, 5, 6, 7]
    for bad in ("", "a", "4-2", "1-"):
        with pytest.raises(GridError, match="--seeds"):
            parse_seeds(bad)


def test_settings_are_every_combination_of_the_axes() -> None:
    axes = [parse_axis("planner.far_step_min=30,60"), parse_axis("site.bess_energy_mwh=200,400")]
    grid = settings(axes)
    assert [s.label for s in grid] == [
        "planner.far_step_min=30 site.bess_energy_mwh=200",
        "planner.far_step_min=30 site.bess_energy_mwh=400",
        "planner.far_step_min=60 site.bess_energy_mwh=200",
        "planner.far_step_min=60 site.bess_energy_mwh=400",
    ]
    assert settings([])[0].label == "default"


def test_a_setting_reaches_the_plant_and_the_planner_checked_like_the_files() -> None:
    scenario = load_scenario(SCENARIO)
    setting = settings(
        [
            parse_axis("site.bess_energy_mwh=321"),
            parse_axis("site.potline.physics.hx_range_frac=0.2"),
            parse_axis("planner.far_step_min=60"),
        ]
    )[0]
    sc, pc = apply(setting, scenario, PlannerConfig())
    assert sc.bess and all(b.energy_mwh == 321 for b in sc.bess)
    assert all(p.physics.hx_range_frac == 0.2 for p in sc.potline)
    assert pc.far_step_min == 60
    assert scenario.bess[0].energy_mwh != 321  # the scenario given is left as it was


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("planner.horizon_h=99", "planner.horizon_h = 99: Expected `float` <= 48"),
        ("planner.no_such_key=1", "no key 'no_such_key'"),
        ("site.bess.energy_mwh=-5", "site.bess[0].energy_mwh = -5"),
        ("site.bess.soc_initial_frac=0.95", "site.bess[0].soc_initial_frac = 0.95: must lie"),
        ("site.grid.import_limit_mw=abc", "site.grid.import_limit_mw = abc"),
        ("planner.step_min=7.5", "whole number of minutes"),
        ("controller.cycle_min=5", "starts with planner. or site."),
    ],
)
def test_a_bad_setting_names_its_key_and_the_reason(text: str, says: str) -> None:
    scenario = load_scenario(SCENARIO)
    with pytest.raises(GridError) as err:
        apply(settings([parse_axis(text)])[0], scenario, PlannerConfig())
    assert says in str(err.value)


def test_capture_of_each_strategy_is_against_flat_and_oracle_of_its_seed() -> None:
    rows: list[dict[str, Any]] = [
        _row(1, "flat", 100.0),
        _row(1, "mpc", 190.0),
        _row(1, "oracle", 200.0),
        _row(2, "flat", 100.0),
        _row(2, "mpc", 150.0),
        _row(2, "oracle", 200.0),
    ]
    add_derived(rows)
    assert [r["capture_ratio"] for r in rows] == [0.0, 0.9, 1.0, 0.0, 0.5, 1.0]
    assert rows[1]["production_error_pct"] == pytest.approx(1.0)
    mpc = next(e for e in summarise(rows) if e["strategy"] == "mpc")
    assert mpc["capture_ratio"] == {"median": 0.7, "p10": 0.54, "p90": 0.86, "worst": 0.5, "n": 2}


def _row(seed: int, strategy: str, used_mwh: float) -> dict[str, Any]:
    return {
        "scenario": "s",
        "setting": "default",
        "seed": seed,
        "strategy": strategy,
        "error": None,
        "renewable_used_mwh": used_mwh,
        "aluminium_t": 101.0,
        "aluminium_target_t": 100.0,
    }


def _one_by_one(cell: Cell) -> dict[str, Any]:
    result = run_backtest(
        cell.scenario, cell.strategy, days=cell.days, seed=cell.seed, planner=cell.planner
    )
    return flatten(result.kpis)


def _same_kpis(row: dict[str, Any], kpis: dict[str, Any]) -> None:
    for key, value in kpis.items():
        if key not in TIMING_KEYS:
            assert row[key] == value, (row["setting"], row["seed"], row["strategy"], key)


def test_a_sweep_on_two_local_workers_is_the_backtests_one_by_one_and_a_bad_cell_fails_alone() -> (
    None
):
    scenario = load_scenario(SCENARIO)
    grid = settings([parse_axis("site.bess_energy_mwh=200,400")])
    cells = make_cells([scenario], [1, 2], ["flat", "mpc"], DAYS, grid, PlannerConfig())
    broken = Cell(scenario, 3, "no-such-strategy", DAYS, grid[0], PlannerConfig(), len(cells))
    with connect(workers=2) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        rows = run_cells(client, [*cells, broken])
    assert [r["index"] for r in rows] == list(range(len(cells) + 1))
    assert rows[-1]["error"].startswith("ValueError: unknown strategy 'no-such-strategy'")
    for cell, row in zip(cells, rows, strict=False):
        assert row["error"] is None
        _same_kpis(row, _one_by_one(cell))
    # the setting reached the plant: a bigger battery moves energy the smaller one cannot
    small = [r for r in rows[:-1] if r["site.bess_energy_mwh"] == 200 and r["strategy"] == "mpc"]
    large = [r for r in rows[:-1] if r["site.bess_energy_mwh"] == 400 and r["strategy"] == "mpc"]
    assert [r["renewable_used_mwh"] for r in small] != [r["renewable_used_mwh"] for r in large]


@pytest.fixture
def dask_cluster(tmp_path: Path) -> Iterator[str]:
    """A scheduler and two workers, each its own process on loopback, as on a cluster."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    scheduler = f"distributed.cli.dask_scheduler --host 127.0.0.1 --port {port} --no-dashboard"
    worker = f"distributed.cli.dask_worker {address} --nthreads 1 --host 127.0.0.1 --no-dashboard"
    log = (tmp_path / "dask.log").open("w")
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", *command.split()], stdout=log, stderr=subprocess.STDOUT
        )
        for command in (scheduler, worker, worker)
    ]
    try:
        yield address
    finally:
        for p in procs[::-1]:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        log.close()


def test_sweep_through_an_existing_cluster_of_separate_processes(
    dask_cluster: str, tmp_path: Path
) -> None:
    from distributed import Client  # noqa: PLC0415

    with Client(dask_cluster, timeout="30s") as client:
        client.wait_for_workers(2, timeout=60)
    out = tmp_path / "out"
    env = os.environ | {"PYTHONWARNINGS": "ignore"}
    args = f"--scenario {SCENARIO} --seeds 1-2 --days {DAYS} --strategy flat,mpc,oracle --json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "smelter_ems",
            "sweep",
            "--scheduler",
            dask_cluster,
            *args.split(),
            "--set",
            "planner.far_step_min=30,60",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    doc = json.loads(done.stdout)
    assert doc["cells"] == 12 and doc["failed"] == []
    assert {Path(p).name for p in doc["files"]} == {
        "cells.parquet",
        "cells.csv",
        "summary.json",
        "distributions.png",
    }
    mpc = [e for e in doc["summary"] if e["strategy"] == "mpc"]
    assert [e["setting"] for e in mpc] == ["planner.far_step_min=30", "planner.far_step_min=60"]
    assert all(e["capture_ratio"]["n"] == 2 for e in mpc)

    import pyarrow.parquet as pq  # noqa: PLC0415

    rows = pq.read_table(out / "cells.parquet").to_pylist()
    scenario = load_scenario(SCENARIO)
    axes = settings([parse_axis("planner.far_step_min=30,60")])
    cells = make_cells([scenario], [1, 2], ["flat", "mpc", "oracle"], DAYS, axes, PlannerConfig())
    assert len(rows) == len(cells)
    for cell, row in zip(cells, rows, strict=True):
        assert (row["setting"], row["seed"], row["strategy"]) == cell.key[1:]
        _same_kpis(row, _one_by_one(cell))
    assert (out / "distributions.png").stat().st_size > 10_000
