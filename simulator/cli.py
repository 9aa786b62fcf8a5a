"""The simulator's subcommands: ``simulate``, ``scenarios`` and ``check-config``."""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from typing import TYPE_CHECKING

import msgspec

from simulator.config import SimulatorConfig, SimulatorSection, load_simulator_config
from simulator.offline import OfflineRun, run_offline
from simulator.scenario import builtin_names, load_scenario
from wire.link import mqtt_from_args
from wire.tomlfile import FileError, convert

if TYPE_CHECKING:
    from simulator.bridge import ObserverFactory

KNOWN_TABLES = frozenset({"mqtt", "simulator", "controller", "planner", "influx"})
"""Tables of the shared config file; the controller's are checked by the controller."""


def _error(message: str) -> int:
    print(f"smelter-ems: error: {message}", file=sys.stderr)
    return 2


def _config(args: argparse.Namespace) -> SimulatorConfig:
    config = load_simulator_config(args.config) if args.config else SimulatorConfig()
    sim = config.simulator
    changes: dict[str, object] = {}
    if args.scenario is not None:
        changes["scenario"] = args.scenario
    if args.seed is not None:
        changes["seed"] = args.seed
    if args.speed is not None:
        changes["speed"] = args.speed
    if args.step_s is not None:
        changes["step_s"] = args.step_s
    raw_sim = {**msgspec.to_builtins(sim), **changes}
    return SimulatorConfig(
        mqtt=mqtt_from_args(config.mqtt, args),
        simulator=convert(raw_sim, SimulatorSection, "command line"),
    )


def simulate(args: argparse.Namespace, observe: ObserverFactory | None = None) -> int:
    """Run the simulator; ``observe`` (online only) sees every publication, e.g. to log it."""
    try:
        config = _config(args)
        scenario = load_scenario(config.simulator.scenario)
    except FileError as exc:
        return _error(str(exc))
    if args.offline:
        try:
            run = OfflineRun(
                days=args.days,
                seed=config.simulator.seed,
                current_frac=args.current_frac,
                outage_start_h=args.outage_start_h,
                outage_hours=args.outage_hours,
                step_s=config.simulator.step_s,
            )
        except ValueError as exc:
            return _error(str(exc))
        result = run_offline(scenario, run)
        if args.json:
            print(json.dumps(result))
        else:
            _print_table(result)
        return 0
    from simulator import bridge  # noqa: PLC0415  (aiomqtt only when online)

    return bridge.run(config, scenario, observe=observe)


def _print_table(result: dict[str, object]) -> None:
    for key, value in result.items():
        if isinstance(value, dict):
            for name, stats in value.items():
                print(f"{key}.{name}: " + ", ".join(f"{k}={v}" for k, v in stats.items()))
        else:
            print(f"{key:>24}: {value}")


def scenarios(args: argparse.Namespace) -> int:
    rows = []
    for name in builtin_names():
        s = load_scenario(name)
        rows.append(
            {
                "name": s.name,
                "description": s.description,
                "islanded": s.islanded,
                "potlines": len(s.potline),
                "pots": sum(p.pots for p in s.potline),
                "renewable_mw": {
                    r.kind.value: sum(x.capacity_mw for x in s.renewable if x.kind == r.kind)
                    for r in s.renewable
                },
                "bess_mwh": sum(b.energy_mwh for b in s.bess),
                "captive_mw": sum(c.max_mw for c in s.captive),
            }
        )
    if args.json:
        print(json.dumps(rows))
    else:
        for r in rows:
            print(f"{r['name']:<22} {r['description']}")
    return 0


def check_config(path: str, *, announce: bool = True) -> int:
    """Validate the file's TOML, its table names and the simulator's tables; print what is
    wrong and return 2, or 0 (printing OK when ``announce``)."""

    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        return _error(f"{path}: file not found")
    except tomllib.TOMLDecodeError as exc:
        return _error(f"{path}: not valid TOML: {exc}")
    unknown = sorted(set(raw) - KNOWN_TABLES)
    if unknown:
        return _error(
            f"{path}: key '{unknown[0]}': unknown table (known: {', '.join(sorted(KNOWN_TABLES))})"
        )
    try:
        config = load_simulator_config(path)
    except FileError as exc:
        return _error(str(exc))
    try:
        load_scenario(config.simulator.scenario)
    except FileError as exc:
        if exc.source:  # an error inside the scenario file: it names that file
            return _error(str(exc))
        return _error(str(FileError(path, "simulator.scenario", exc.value, exc.reason)))
    if announce:
        print(f"{path}: OK")
    return 0
