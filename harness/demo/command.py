"""``smelter-ems demo``: the closed loop over MQTT, then ``kpis.json``, the PNGs and
``report.html`` in ``--out`` (docs/demo.md)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import sys
from pathlib import Path
from typing import Final

from tqdm import tqdm

from controller.config import ControllerSection
from controller.tsdb import resolve_token
from controller.tsdb.settings import InfluxSettings, with_overrides
from harness.demo.broker import BrokerError
from harness.demo.figures import Inputs, draw_all
from harness.demo.kpis import build_kpis, flat_baseline
from harness.demo.listen import Heard, RecordingPlant
from harness.demo.page import write_page
from harness.demo.session import DemoError, DemoOptions, run_demo
from harness.report import PlotsUnavailableError, require_matplotlib
from harness.site_from_scenario import site_from_scenario
from simulator.scenario import load_scenario
from wire.tomlfile import FileError

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130
MAX_SPEED: Final = 10_000.0
MIN_REPORT_H: Final = 1.0
"""A run stopped before this much plant time writes no report."""
QUIET: Final = {
    "simulator.bridge": logging.WARNING,
    "simulator.protection": logging.WARNING,
    "wire.link": logging.WARNING,
}
"""The in-process simulator's routine INFO lines would break the progress bar."""


def _error(message: str, code: int = EXIT_USAGE) -> int:
    print(f"smelter-ems: error: {message}", file=sys.stderr)
    return code


class _Bar:
    """Simulated time, renewable share so far and the controller's state, on stderr."""

    def __init__(self, days: float, *, disable: bool) -> None:
        self.total_h = days * 24.0
        self._bar = tqdm(
            total=round(self.total_h, 2),
            unit="h",
            file=sys.stderr,
            disable=disable,
            desc="plant time",
            bar_format="{desc} {bar} {n:.1f}/{total:g} h [{elapsed}<{remaining}]{postfix}",
        )

    def __call__(self, plant: RecordingPlant, heard: Heard) -> None:
        done_h = round(plant.done_frac * self.total_h, 2)
        share = plant.renewable_share_so_far()
        shown = "–" if math.isnan(share) else f"{100 * share:.1f} %"
        self._bar.set_postfix_str(f"renewable {shown}, controller {heard.state}", refresh=False)
        self._bar.update(done_h - self._bar.n)

    def close(self) -> None:
        self._bar.close()


def demo_command(args: argparse.Namespace) -> int:
    """Run the demo; 0 with the report written, 130 when stopped before any report."""
    try:
        scenario = load_scenario(args.scenario)
        if not 0.0 < args.days <= 7.0:
            raise ValueError(f"--days must be in (0, 7], got {args.days:g}")
        if not 0.0 < args.speed <= MAX_SPEED:
            raise ValueError(f"--speed must be in (0, {MAX_SPEED:g}], got {args.speed:g}")
        if args.broker is not None and not args.broker.startswith("mqtt://"):
            raise ValueError(f"--broker must be mqtt://HOST:PORT, got {args.broker}")
        influx_flags = (args.influx_url, args.influx_org, args.influx_bucket)
        if any(v is not None for v in influx_flags) and not all(influx_flags):
            raise ValueError("--influx-url, --influx-org and --influx-bucket go together")
        if args.influx_url is not None:
            settings = with_overrides(
                InfluxSettings(),
                url=args.influx_url,
                org=args.influx_org,
                bucket=args.influx_bucket,
            )
            resolve_token(settings)
        require_matplotlib()
    except (FileError, ValueError, PlotsUnavailableError) as exc:
        return _error(str(exc))
    out = Path(args.out)
    opts = DemoOptions(
        scenario,
        args.days,
        args.speed,
        args.seed,
        out,
        broker_url=args.broker,
        embedded_broker=args.embedded_broker,
        influx_url=args.influx_url,
        influx_org=args.influx_org,
        influx_bucket=args.influx_bucket,
    )
    bar = _Bar(args.days, disable=not (args.progress or sys.stderr.isatty()))
    levels = [(logging.getLogger(n), logging.getLogger(n).level) for n in QUIET]
    for lg, _ in levels:
        lg.setLevel(QUIET[lg.name])
    try:
        run = asyncio.run(run_demo(opts, bar))
    except (DemoError, BrokerError, FileError) as exc:
        return _error(str(exc), EXIT_FAILURE)
    finally:
        bar.close()
        for lg, level in levels:
            lg.setLevel(level)
    ran_h = (run.plant.now_s - run.plant.start_s) / 3600.0
    if run.interrupted and ran_h < MIN_REPORT_H:
        print(
            f"smelter-ems: demo stopped after {ran_h:.1f} h of plant time: no report",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    ran_days = min(args.days, ran_h / 24.0) if run.interrupted else args.days
    site = site_from_scenario(scenario)
    end_s = run.plant.trace.columns["t_s"][-1] + run.plant.step_s
    flat = flat_baseline(scenario, args.seed, site, end_s=end_s)
    kpis = build_kpis(
        scenario=scenario,
        seed=args.seed,
        days=round(ran_days, 4),
        speed=args.speed,
        broker=run.broker,
        controlled=run.plant,
        flat=flat,
        heard=run.heard,
        interrupted=run.interrupted,
    )
    kpis["wall_s"] = round(run.wall_s, 1)
    kpis["influx"] = _influx(args, run.unsent_points)
    (out / "kpis.json").write_text(json.dumps(kpis, indent=1), encoding="utf-8")
    inputs = Inputs(
        run.plant.trace.arrays(), flat.trace.arrays(), run.heard, site, scenario.utc_offset_h
    )
    by_hour = {name: kpis[name]["renewable_share_by_hour"] for name in ("controller", "flat")}
    figures = draw_all(inputs, by_hour, out)
    report = out / "report.html"
    write_page(report, kpis, figures, ControllerSection().cycle_min)
    print(_summary(kpis))
    if run.unsent_points:
        print(
            f"smelter-ems: warning: {run.unsent_points} of the daemon's points did not reach "
            f"InfluxDB at {args.influx_url} ({out / 'run' / 'daemon.log'} says why); they are "
            f"in {out / 'points' / 'spool'} (line protocol, precision ms) until the next demo "
            "in this folder",
            file=sys.stderr,
        )
    print(f"report: {report.resolve()}")
    return EXIT_INTERRUPTED if run.interrupted else EXIT_OK


def _influx(args: argparse.Namespace, unsent_points: int | None) -> dict[str, object] | None:
    """Where the daemon's points went, for ``kpis.json`` and the page; None: ``points/``."""
    if args.influx_url is None:
        return None
    return {
        "url": args.influx_url,
        "org": args.influx_org,
        "bucket": args.influx_bucket,
        "unsent_points": unsent_points,
    }


def _summary(kpis: dict[str, object]) -> str:
    c, f = kpis["controller"], kpis["flat"]
    assert isinstance(c, dict) and isinstance(f, dict)
    lines = [f"{'':<28}{'controller':>14}{'flat':>14}"]
    for key, scale, unit in (
        ("renewable_used_mwh", 1.0, "MWh"),
        ("renewable_share", 100.0, "%"),
        ("renewable_share_hourly", 100.0, "%"),
        ("co2_t_per_t_al", 1.0, "t/t"),
        ("aluminium_t", 1.0, "t"),
        ("thermal_violation_min", 1.0, "min"),
    ):
        cells = [
            f"{v * scale:>10.3f} {unit:<3}" if isinstance(v, int | float) else f"{'-':>14}"
            for v in (c.get(key), f.get(key))
        ]
        lines.append(f"{key:<28}" + "".join(cells))
    return "\n".join(lines)
