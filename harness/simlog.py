"""``smelter-ems simulate`` with logging: every publication of the simulated plant as points.

The simulator may not import the time-series code (DESIGN §2), so it offers an observer hook
(:data:`simulator.bridge.PublishObserver`) and this harness module plugs a point sink into it:
each (topic, payload) is parsed with the contract's :class:`~wire.Topics` and
turned into points by :func:`controller.tsdb.schema.payload_points`, with the scenario's
``site`` as the ``site`` tag: the daemon controlling that scenario uses the same one, so the two
logs of one site fall in the same series.

Logging is off unless asked for (``simulate`` is a test tool, and the daemon that listens to it
logs the same telemetry): ``--influx-url URL`` writes to InfluxDB (token from ``INFLUX_TOKEN``,
other ``[influx]`` keys from ``--config``), ``--log-dir DIR`` writes line-protocol files to DIR
(and, with ``--influx-url``, keeps DIR/spool for points waiting for the database).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Final

import msgspec

from controller.tsdb import InfluxSettings, open_sink, resolve_token
from controller.tsdb.schema import payload_points
from controller.tsdb.settings import with_overrides
from simulator import cli as sim_cli
from simulator.bridge import ObserverFactory, PublishObserver
from simulator.config import SimulatorConfig
from simulator.scenario import Scenario
from wire import Topics
from wire.tomlfile import FileError, convert

log = logging.getLogger(__name__)

DEFAULT_LOG_DIR: Final = "smelter-ems-simlog"
"""Where ``--influx-url`` alone keeps its spool (relative to the working directory)."""
CLOSE_TIMEOUT_S: Final = 5.0


def simulate_command(args: argparse.Namespace) -> int:
    """``smelter-ems simulate``, logging its publications when the flags ask for it."""
    try:
        settings = settings_from_args(args)
        token = None if settings is None else resolve_token(settings)
    except FileError as exc:
        print(f"smelter-ems: error: {exc}", file=sys.stderr)
        return 2
    if settings is None:
        return sim_cli.simulate(args)
    if args.offline:
        print(
            "smelter-ems: error: --influx-url and --log-dir log the MQTT simulator's "
            "publications; --offline publishes nothing",
            file=sys.stderr,
        )
        return 2
    return sim_cli.simulate(args, observe=observer_factory(settings, token))


def settings_from_args(args: argparse.Namespace) -> InfluxSettings | None:
    """The ``[influx]`` settings for this run, or None when logging was not asked for.

    Raises:
        FileError: a bad ``[influx]`` table in ``--config``, or a bad ``--influx-*`` value.
    """
    url = getattr(args, "influx_url", None)
    log_dir = getattr(args, "log_dir", None)
    if url is None and log_dir is None:
        return None
    base = _config_table(args.config) if getattr(args, "config", None) else InfluxSettings()
    directory = Path(log_dir or DEFAULT_LOG_DIR)
    # --log-dir alone means files, even if the config file names the daemon's InfluxDB
    placed = msgspec.structs.replace(
        base,
        url=None if url is None else base.url,
        files_dir=str(directory),
        spool_dir=str(directory / "spool"),
    )
    return with_overrides(
        placed,
        url=url,
        org=getattr(args, "influx_org", None),
        bucket=getattr(args, "influx_bucket", None),
    )


def _config_table(path: str) -> InfluxSettings:
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return InfluxSettings()  # the simulator's own loading reports what is wrong with it
    table = raw.get("influx", {})
    try:
        return convert(table if isinstance(table, dict) else {}, InfluxSettings, path)
    except FileError as exc:
        raise FileError(path, f"influx.{exc.key}", exc.value, exc.reason) from None


def observer_factory(settings: InfluxSettings, token: str | None) -> ObserverFactory:
    """Makes, for one run, an observer that writes every publication to a sink."""

    @asynccontextmanager
    async def observe(
        config: SimulatorConfig, scenario: Scenario
    ) -> AsyncIterator[PublishObserver]:
        sink = open_sink(settings, token=token)
        topics = Topics(config.mqtt.topic_prefix)
        site = scenario.site

        def on_publish(topic: str, payload: msgspec.Struct) -> None:
            parsed = topics.parse(topic)
            if parsed is not None:
                sink.write(payload_points(parsed.kind, parsed.asset, payload, site))

        try:
            yield on_publish
        finally:
            await sink.close(CLOSE_TIMEOUT_S)
            stats = sink.stats()
            log.info(
                "logged %d points (%d still in the spool, %d dropped, %d rejected)",
                stats.written,
                stats.spool_points,
                stats.dropped,
                stats.rejected,
            )

    return observe
