"""The daemon's view of the TOML config file: ``[mqtt]``, ``[controller]``, ``[planner]``,
``[influx]``.

The daemon and the simulator share one config file; the ``[simulator]`` table belongs to the
simulator and is ignored here; ``[influx]`` is the time-series logging's.
Inside the tables we read, unknown keys are errors (:class:`~wire.FileError`
names the key, the value and the reason).  Every key is documented in
``deploy/smelter-ems.example.toml`` and ``docs/operations.md``.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import msgspec

from controller.planner.types import PlannerConfig
from controller.tsdb.settings import InfluxSettings
from wire.link import MqttSettings
from wire.tomlfile import load_toml


class ControllerSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The ``[controller]`` table: the site, the loop's timing, fallbacks, files and ports."""

    site: str = ""
    """The site file (:mod:`controller.sitefile`): the plant's assets, limits and tariffs.  A
    relative path is taken from the config file's directory.  Required, here or ``--site``."""
    cycle_min: Annotated[float, msgspec.Meta(ge=1.0, le=240.0)] = 15.0
    """Plan every this many minutes of plant time (and early on a significant event)."""
    stale_after_s: Annotated[float, msgspec.Meta(ge=1.0, le=86_400.0)] = 300.0
    """An asset whose last telemetry is older than this (plant time) is unknown; 0 is not
    allowed: staleness is always on."""
    silence_wall_s: Annotated[float, msgspec.Meta(ge=1.0, le=3600.0)] = 30.0
    """No telemetry at all for this many wall seconds while connected: the plant is silent."""
    validity_s: Annotated[float, msgspec.Meta(ge=60.0, le=86_400.0)] = 1800.0
    """Each setpoint is valid this long (plant time) after it is sent."""
    heartbeat_s: Annotated[float, msgspec.Meta(ge=1.0, le=43_200.0)] = 300.0
    """Setpoints are re-sent this often (plant time), well before they expire."""
    forecast_miss_frac: Annotated[float, msgspec.Meta(gt=0.0, le=1.0)] = 0.15
    """Re-plan early when renewable availability misses the plan's P50 by this share of
    capacity."""
    ts_tolerance_s: Annotated[float, msgspec.Meta(ge=1.0, le=3600.0)] = 120.0
    """Telemetry stamped further than this from the expected plant time (plant seconds; at
    least two wall seconds at the plant's speed) is ``bad_ts`` and dropped, unless the whole
    plant moved with it (a genuine clock jump, docs/operations.md)."""
    wall_clock_tolerance_s: Annotated[float, msgspec.Meta(ge=1.0, le=86_400.0)] | None = None
    """A real-time plant: telemetry stamped further than this from the daemon's own UTC clock
    is ``bad_ts``.  None (the default): not checked, as under a simulator at any speed."""
    command_window_s: Annotated[float, msgspec.Meta(ge=1.0, le=86_400.0)] = 300.0
    """An operator command stamped further than this from plant time (plant seconds; at least
    two wall seconds at the plant's speed) is refused and never kept."""
    state_file: str = ""
    """Where heat budget, production, mode and the last plan survive a restart; empty:
    ``state.json`` in :func:`state_directory` (never the current directory)."""
    http_host: str = "127.0.0.1"
    http_port: Annotated[int, msgspec.Meta(ge=0, le=65_535)] = 9108
    """The console page, its API, ``/healthz`` and ``/metrics``; 0 turns the endpoint off."""
    operator_tokens_file: str = ""
    """The operators who may change the mode from the console: one ``name:token`` a line.
    Empty: the token in ``$SMELTER_OPERATOR_TOKEN``; neither: the console is read-only."""
    shutdown_stage_s: Annotated[float, msgspec.Meta(gt=0.0, le=60.0)] = 5.0
    """Time allowed to each stage of a shutdown."""
    instance_id: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.-]{0,64}$")] = ""
    """This instance's name on the broker (the lease, its status, its setpoints); unique per
    process.  Empty: ``HOSTNAME-PID``."""
    lease_ttl_s: Annotated[float, msgspec.Meta(ge=2.0, le=300.0)] = 10.0
    """Only the instance that holds the lease sends setpoints; it renews it every third of this
    (wall seconds), and another instance takes over once it has heard no renewal for this long
    (docs/operations.md, One active controller)."""

    def __post_init__(self) -> None:
        if self.heartbeat_s >= self.validity_s:
            raise ValueError("heartbeat_s: must be shorter than validity_s, or setpoints expire")
        if self.cycle_min * 60.0 > self.validity_s * 4:
            raise ValueError("cycle_min: longer than four validity periods")

    @property
    def resolved_instance_id(self) -> str:
        """``instance_id``, or ``HOSTNAME-PID`` (the host name cut and cleaned to fit)."""
        if self.instance_id:
            return self.instance_id
        pid = str(os.getpid())
        host = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname())[: 63 - len(pid)]
        return f"{host or 'smelter-ems'}-{pid}"

    @property
    def resolved_state_file(self) -> Path:
        if self.state_file:
            return Path(self.state_file)
        return state_directory(os.environ) / "state.json"


def state_directory(environ: Mapping[str, str]) -> Path:
    """Where the daemon keeps its state when the config names no file: systemd's
    ``$STATE_DIRECTORY`` (``StateDirectory=``, the first one when there are several), else the
    XDG state directory, ``$XDG_STATE_HOME/smelter-ems`` or ``~/.local/state/smelter-ems`` (a
    relative ``XDG_STATE_HOME`` is ignored, as the XDG Base Directory spec says)."""
    systemd = environ.get("STATE_DIRECTORY", "").split(":")[0]
    if systemd:
        return Path(systemd)
    xdg = environ.get("XDG_STATE_HOME", "")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "smelter-ems"
    home = environ.get("HOME") or str(Path.home())
    return Path(home) / ".local" / "state" / "smelter-ems"


class DaemonConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The whole file as the daemon reads it."""

    mqtt: MqttSettings = msgspec.field(default_factory=MqttSettings)
    controller: ControllerSection = msgspec.field(default_factory=ControllerSection)
    planner: PlannerConfig = msgspec.field(default_factory=PlannerConfig)
    """The planner's settings (docs/scheduler.md), with their bounds."""
    influx: InfluxSettings = msgspec.field(default_factory=InfluxSettings)
    """Time-series logging (docs/influx-schema.md)."""
    simulator: dict[str, Any] = msgspec.field(default_factory=dict)
    """The simulator's table: not read by the daemon."""


def load_daemon_config(path: str | Path) -> DaemonConfig:
    """Read and validate the config file; a relative ``controller.site`` is made relative to
    the file's directory (the site file is read by :func:`controller.sitefile.load_site`).

    Raises:
        FileError: the file is missing, not TOML, or has a bad key (key, value and reason).
    """
    config = load_toml(path, DaemonConfig)
    site = config.controller.site
    if not site or Path(site).is_absolute():
        return config
    controller = msgspec.structs.replace(config.controller, site=str(Path(path).parent / site))
    return msgspec.structs.replace(config, controller=controller)
