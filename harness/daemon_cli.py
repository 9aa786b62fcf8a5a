"""``smelter-ems run`` and ``check-config``: the config file and flags in, the daemon out.

Part of the harness because the site description is read in the scenario format
(:mod:`simulator.scenario`): the daemon itself only ever sees a
:class:`~controller.site.SiteModel`.
"""

from __future__ import annotations

import argparse
import logging
import sys

import msgspec

from controller import daemon
from controller.config import ControllerSection, DaemonConfig, load_daemon_config
from controller.tsdb.settings import with_overrides
from harness.site_from_scenario import site_from_scenario
from simulator import cli as sim_cli
from simulator.scenario import load_scenario
from wire.link import MqttSettings
from wire.tomlfile import FileError, convert

log = logging.getLogger(__name__)


def _error(message: str) -> int:
    print(f"smelter-ems: error: {message}", file=sys.stderr)
    return 2


def daemon_config(args: argparse.Namespace) -> DaemonConfig:
    """The config file (or the defaults) with the command line's overrides."""
    config = load_daemon_config(args.config) if args.config else DaemonConfig()
    raw_mqtt = msgspec.to_builtins(config.mqtt)
    if args.broker is not None:
        raw_mqtt["url"] = args.broker
    raw_ctl = msgspec.to_builtins(config.controller)
    for flag, key in (
        ("scenario", "scenario"),
        ("state_file", "state_file"),
        ("http_port", "http_port"),
    ):
        if getattr(args, flag) is not None:
            raw_ctl[key] = getattr(args, flag)
    return msgspec.structs.replace(
        config,
        mqtt=convert(raw_mqtt, MqttSettings, "--broker"),
        controller=convert(raw_ctl, ControllerSection, "command line"),
        influx=with_overrides(
            config.influx, url=args.influx_url, org=args.influx_org, bucket=args.influx_bucket
        ),
    )


def run_command(args: argparse.Namespace) -> int:
    try:
        config = daemon_config(args)
        if not config.controller.scenario:
            return _error("no site description: give --scenario NAME or controller.scenario")
        scenario = load_scenario(config.controller.scenario)
    except FileError as exc:
        return _error(str(exc))
    site = site_from_scenario(scenario)
    site_name = config.controller.site_name or scenario.site
    log.info(
        "controlling %s (%d pot-lines, %d BESS, %d captive) via %s under %s/",
        site_name,
        len(site.lines),
        len(site.bess),
        len(site.captive),
        config.mqtt.url,
        config.mqtt.topic_prefix,
    )
    return daemon.run(config, site, site_name=site_name)


def check_config(path: str) -> int:
    """Every table of the file: TOML, table names and the simulator's first, then the
    daemon's; print what is wrong and return 2, or print OK and return 0."""
    code = sim_cli.check_config(path, announce=False)
    if code != 0:
        return code
    try:
        config = load_daemon_config(path)
    except FileError as exc:
        return _error(str(exc))
    if config.controller.scenario:
        try:
            load_scenario(config.controller.scenario)
        except FileError as exc:
            if exc.source:  # an error inside the scenario file: it names that file
                return _error(str(exc))
            return _error(str(FileError(path, "controller.scenario", exc.value, exc.reason)))
    print(f"{path}: OK")
    return 0
