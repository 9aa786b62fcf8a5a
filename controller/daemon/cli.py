"""``smelter-ems run`` and the daemon's half of ``check-config``: the config file, the site
file and the flags in, the daemon out.

Nothing here needs the simulator: a plant runs the controller from its config and site files
alone.  The console script's dispatcher (:mod:`smelter_ems.cli`) declares the flags, without
importing the daemon, and adds ``run --scenario``, a convenience for the demo and tests that
takes the site from a simulator scenario (:mod:`harness.daemon_cli`).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

import msgspec

from controller import daemon
from controller.config import ControllerSection, DaemonConfig, load_daemon_config
from controller.planner import dryrun
from controller.site import SiteModel
from controller.sitefile import load_site
from controller.tsdb.settings import with_overrides
from wire.link import mqtt_from_args
from wire.tomlfile import FileError, convert

log = logging.getLogger(__name__)

EXIT_USAGE = 2


def usage_error(message: str) -> int:
    print(f"smelter-ems: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def daemon_config(args: argparse.Namespace) -> DaemonConfig:
    """The config file (or the defaults) with the command line's overrides."""
    config = load_daemon_config(args.config) if args.config else DaemonConfig()
    raw_ctl = msgspec.to_builtins(config.controller)
    for key in ("site", "state_file", "http_port"):
        if getattr(args, key) is not None:
            raw_ctl[key] = getattr(args, key)
    return msgspec.structs.replace(
        config,
        mqtt=mqtt_from_args(config.mqtt, args),
        controller=convert(raw_ctl, ControllerSection, "command line"),
        influx=with_overrides(
            config.influx, url=args.influx_url, org=args.influx_org, bucket=args.influx_bucket
        ),
    )


def configured_site(config: DaemonConfig, source: str, key: str) -> SiteModel:
    """The site file ``controller.site`` names.  An error inside it names the site file's key;
    no file, or one that cannot be read, is reported as a bad value of ``key`` (the flag, or
    the config file's key) of ``source`` (the config file, or "" for the command line).

    Raises:
        FileError: no site file is named, or it cannot be read, or it has a bad key.
    """
    path = config.controller.site
    if not path:
        raise FileError(
            source, key, "", "no site file: give --site FILE, or [controller] site in the config"
        )
    try:
        return load_site(path)
    except FileError as exc:
        if exc.key == "(file)":
            raise FileError(source, key, path, exc.reason) from None
        raise


def run_command(args: argparse.Namespace, site: SiteModel | None = None) -> int:
    """Run the daemon on ``site``, or on the site file of ``--site`` or the config."""
    try:
        config = daemon_config(args)
        if site is None:
            in_config = args.site is None and args.config is not None
            site = configured_site(
                config,
                args.config if in_config else "",
                "controller.site" if in_config else "--site",
            )
    except FileError as exc:
        return usage_error(str(exc))
    log.info(
        "controlling %s (%d pot-lines, %d BESS, %d captive, %s) via %s under %s/",
        site.name,
        len(site.lines),
        len(site.bess),
        len(site.captive),
        "islanded" if site.islanded else "grid-connected",
        config.mqtt.url,
        config.mqtt.topic_prefix,
    )
    return daemon.run(config, site)


def names_a_site(path: str) -> bool:
    """Whether the (valid) config file names the site file (``[controller] site``)."""
    return bool(load_daemon_config(path).controller.site)


def check_config(path: str, *, dry_solve: bool = False) -> int:
    """The daemon's tables of the config file and the site file it names: print what is wrong
    and return 2, or return 0 (printing nothing: the dispatcher says what was checked).

    ``dry_solve``: also solve the configured planning problem once
    (:func:`controller.planner.dryrun.dry_solve`) and print how long it took; return 1 when
    it took over half the time limit or fell back, with the remedies."""
    try:
        config = load_daemon_config(path)
        site = configured_site(config, path, "controller.site") if config.controller.site else None
    except FileError as exc:
        return usage_error(str(exc))
    if dry_solve:
        if site is None:
            return usage_error(f"{path}: --solve needs the site file ([controller] site)")
        run = dryrun.dry_solve(site, config.planner, time.time())
        print(
            f"{path}: planner: one cold solve of the configured problem took "
            f"{run.solve_ms:.0f} ms ({run.status.value}; "
            f"time limit {config.planner.time_limit_s:g} s)"
        )
        if run.warning:
            print(f"{path}: warning: {run.warning}")
            return 1
    return 0
