"""``smelter-ems run --scenario NAME``: the daemon on a simulator scenario's site.

A convenience for the demo and the tests, next to ``simulate`` of the same scenario; the daemon
itself (:mod:`controller.daemon.cli`) reads a site file and needs nothing of the simulator.
"""

from __future__ import annotations

import argparse

from controller.daemon.cli import run_command, usage_error
from harness.site_from_scenario import site_from_scenario
from simulator.scenario import load_scenario
from wire.tomlfile import FileError


def run_on_scenario(args: argparse.Namespace) -> int:
    try:
        scenario = load_scenario(args.scenario)
    except FileError as exc:
        return usage_error(str(exc))
    return run_command(args, site=site_from_scenario(scenario))
