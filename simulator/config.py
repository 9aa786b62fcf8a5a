"""The simulator's view of the TOML config file: ``[mqtt]`` and ``[simulator]``.

The daemon and the simulator share one config file; tables that belong to the daemon
(``[controller]``, ``[influx]``, ...) are ignored here.  Inside the tables we read, unknown
keys are errors, so a misspelt key is reported with its name, value and reason
(:class:`~wire.FileError`) instead of silently taking a default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import msgspec

from wire.link import MqttSettings
from wire.tomlfile import load_toml

_MAX_SPEED: float = 1.0e6
"""A year of plant time in about 30 wall seconds: anything faster is a typo."""


class SimulatorSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The ``[simulator]`` table."""

    scenario: str = "yunnan-hydro-solar"
    """A built-in scenario name or the path of a scenario file."""
    seed: Annotated[int, msgspec.Meta(ge=0)] = 1
    speed: Annotated[float, msgspec.Meta(gt=0.0, le=_MAX_SPEED)] = 1.0
    """Plant seconds per wall second."""
    publish_interval_s: Annotated[float, msgspec.Meta(gt=0.0)] | None = None
    """Plant seconds between telemetry publications; None picks one from ``speed``."""
    step_s: Annotated[float, msgspec.Meta(gt=0.0, le=600.0)] = 60.0
    """Plant physics step [s]."""

    @property
    def resolved_publish_interval_s(self) -> float:
        """Plant seconds between publications.

        Automatic: 1 s of plant time (the contract's 1 Hz), stretched at high speed so that each
        topic gets at most about 10 publications per wall second, which keeps the broker and the
        subscribers' logs sane at 600x.
        """
        if self.publish_interval_s is not None:
            return self.publish_interval_s
        return max(1.0, self.speed / 10.0)


class SimulatorConfig(msgspec.Struct, frozen=True, kw_only=True):
    """The parts of the config file the simulator reads; other top-level tables are ignored."""

    mqtt: MqttSettings = msgspec.field(default_factory=MqttSettings)
    simulator: SimulatorSection = msgspec.field(default_factory=SimulatorSection)


def load_simulator_config(path: str | Path) -> SimulatorConfig:
    """Read the config file.

    Raises:
        FileError: the file is missing, not TOML, or has a bad key (key, value and reason).
    """
    return load_toml(path, SimulatorConfig)
