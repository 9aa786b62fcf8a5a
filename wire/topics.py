"""The topics of the MQTT wire contract: how they are built and parsed under one prefix."""

from __future__ import annotations

import re
from typing import Final, Literal

import msgspec

DEFAULT_PREFIX: Final = "smelter"

_NAME_RE: Final = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

TopicKind = Literal[
    "potline",
    "pots",
    "grid",
    "renewable",
    "bess",
    "captive",
    "weather",
    "alarm",
    "potline_setpoint",
    "bess_setpoint",
    "captive_setpoint",
    "status",
    "instance_status",
    "lease",
    "plan",
    "mode",
]


class Topic(msgspec.Struct, frozen=True):
    """A parsed topic: what it carries and for which asset ("" for site-wide topics)."""

    kind: TopicKind
    asset: str = ""


class Topics:
    """Builds and parses the contract's topics under one prefix."""

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        if not prefix or "#" in prefix or "+" in prefix or prefix.endswith("/"):
            raise ValueError(f"invalid topic prefix {prefix!r}")
        self.prefix = prefix

    def potline(self, line: str) -> str:
        return f"{self.prefix}/telemetry/potline/{_check_name(line)}"

    def pots(self, line: str) -> str:
        return f"{self.prefix}/telemetry/potline/{_check_name(line)}/pots"

    def grid(self, meter: str) -> str:
        return f"{self.prefix}/telemetry/grid/{_check_name(meter)}"

    def renewable(self, plant: str) -> str:
        return f"{self.prefix}/telemetry/renewable/{_check_name(plant)}"

    def bess(self, unit: str) -> str:
        return f"{self.prefix}/telemetry/bess/{_check_name(unit)}"

    def captive(self, unit: str) -> str:
        return f"{self.prefix}/telemetry/captive/{_check_name(unit)}"

    def weather(self, site: str) -> str:
        return f"{self.prefix}/forecast/weather/{_check_name(site)}"

    def alarm(self) -> str:
        return f"{self.prefix}/plant/alarm"

    def potline_setpoint(self, line: str) -> str:
        return f"{self.prefix}/command/potline/{_check_name(line)}/setpoint"

    def bess_setpoint(self, unit: str) -> str:
        return f"{self.prefix}/command/bess/{_check_name(unit)}/setpoint"

    def captive_setpoint(self, unit: str) -> str:
        return f"{self.prefix}/command/captive/{_check_name(unit)}/setpoint"

    def status(self) -> str:
        return f"{self.prefix}/controller/status"

    def instance_status(self, instance: str) -> str:
        """One controller instance's own status (an instance that is not the active one says
        ``standby`` here, not on :meth:`status`)."""
        return f"{self.prefix}/controller/instance/{_check_name(instance)}/status"

    def lease(self) -> str:
        """Which instance is the active controller (:class:`wire.payloads.ControllerLease`)."""
        return f"{self.prefix}/controller/lease"

    def plan(self) -> str:
        return f"{self.prefix}/controller/plan"

    def mode(self) -> str:
        return f"{self.prefix}/controller/mode/set"

    @property
    def telemetry_filter(self) -> str:
        return f"{self.prefix}/telemetry/#"

    @property
    def command_filter(self) -> str:
        return f"{self.prefix}/command/#"

    def parse(self, topic: str) -> Topic | None:
        """Return what ``topic`` carries, or None when it is not part of the contract."""
        head = self.prefix + "/"
        if not topic.startswith(head):
            return None
        parts = topic[len(head) :].split("/")
        match parts:
            case ["telemetry", "potline", line] if _valid(line):
                return Topic("potline", line)
            case ["telemetry", "potline", line, "pots"] if _valid(line):
                return Topic("pots", line)
            case ["telemetry", ("grid" | "renewable" | "bess" | "captive") as kind, name] if _valid(
                name
            ):
                return Topic(kind, name)
            case ["forecast", "weather", site] if _valid(site):
                return Topic("weather", site)
            case ["plant", "alarm"]:
                return Topic("alarm")
            case ["command", "potline", line, "setpoint"] if _valid(line):
                return Topic("potline_setpoint", line)
            case ["command", "bess", unit, "setpoint"] if _valid(unit):
                return Topic("bess_setpoint", unit)
            case ["command", "captive", unit, "setpoint"] if _valid(unit):
                return Topic("captive_setpoint", unit)
            case ["controller", "status"]:
                return Topic("status")
            case ["controller", "instance", instance, "status"] if _valid(instance):
                return Topic("instance_status", instance)
            case ["controller", "lease"]:
                return Topic("lease")
            case ["controller", "plan"]:
                return Topic("plan")
            case ["controller", "mode", "set"]:
                return Topic("mode")
        return None


def _valid(name: str) -> bool:
    return bool(_NAME_RE.match(name))


def _check_name(name: str) -> str:
    if not _valid(name):
        raise ValueError(f"asset name {name!r} must match {_NAME_RE.pattern}")
    return name
