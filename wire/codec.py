"""The codec of the MQTT wire contract: compact JSON out, strict validation in.

Decoding is strict: unknown fields, wrong types, NaN/inf, out-of-range values and oversized
payloads raise :class:`PayloadError`, whose ``kind`` is one of :data:`REJECT_KINDS` so that
callers can count rejections per kind.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import msgspec

from wire.payloads import (
    BessTelemetry,
    CaptiveTelemetry,
    ControllerLease,
    ControllerStatus,
    GridTelemetry,
    ModeCommand,
    PlanMessage,
    PlantAlarm,
    PotlineSetpoint,
    PotlineTelemetry,
    PotVoltages,
    PowerSetpoint,
    RenewableTelemetry,
    WeatherForecast,
)

MAX_PAYLOAD_BYTES: Final = 64 * 1024
"""Larger payloads are rejected before parsing (a 300-pot voltage list is about 3 KB)."""
MAX_PLAN_BYTES: Final = 1024 * 1024
"""The retained plan is larger: 48 h at 5 min is 576 steps of some fifteen series."""

REJECT_KINDS: Final = (
    "oversized",
    "malformed_json",
    "schema",
    "out_of_range",
    "unknown_topic",
)

PAYLOAD_TYPES: Final[dict[str, type[msgspec.Struct]]] = {
    "potline": PotlineTelemetry,
    "pots": PotVoltages,
    "grid": GridTelemetry,
    "renewable": RenewableTelemetry,
    "bess": BessTelemetry,
    "captive": CaptiveTelemetry,
    "weather": WeatherForecast,
    "alarm": PlantAlarm,
    "potline_setpoint": PotlineSetpoint,
    "bess_setpoint": PowerSetpoint,
    "captive_setpoint": PowerSetpoint,
    "status": ControllerStatus,
    "instance_status": ControllerStatus,
    "lease": ControllerLease,
    "mode": ModeCommand,
    "plan": PlanMessage,
}
"""Topic kind (:class:`wire.topics.Topic`) → the payload type it carries."""


@dataclass(frozen=True, slots=True)
class Publication:
    """One encoded message for the broker, as either side queues it for its link."""

    topic: str
    payload: bytes
    qos: int
    retain: bool = False


class ContractError(Exception):
    """Base of the contract's errors."""


class PayloadError(ContractError):
    """A message that must be counted under ``kind`` and dropped."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(f"{kind}: {reason}")
        self.kind = kind
        self.reason = reason


_encoder = msgspec.json.Encoder()
_decoders: dict[type[msgspec.Struct], msgspec.json.Decoder[Any]] = {}

P = TypeVar("P", bound=msgspec.Struct)


def encode(payload: msgspec.Struct) -> bytes:
    """Encode a payload as compact JSON.  Refuses NaN/inf rather than emitting invalid JSON."""
    for name in payload.__struct_fields__:
        value = getattr(payload, name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{type(payload).__name__}.{name} is {value}, not finite")
    return _encoder.encode(payload)


def decode(kind: str, data: bytes | bytearray | str, type_: type[P] | None = None) -> P:
    """Decode and validate a payload for a topic kind (see :data:`PAYLOAD_TYPES`).

    Raises:
        PayloadError: with ``kind`` one of :data:`REJECT_KINDS`.
    """
    target: type[Any] = type_ if type_ is not None else PAYLOAD_TYPES[kind]
    if isinstance(data, str):
        data = data.encode()
    limit = MAX_PLAN_BYTES if target is PlanMessage else MAX_PAYLOAD_BYTES
    if len(data) > limit:
        raise PayloadError("oversized", f"{len(data)} bytes > {limit}")
    decoder = _decoders.get(target)
    if decoder is None:
        decoder = _decoders[target] = msgspec.json.Decoder(target)
    try:
        result: P = decoder.decode(data)
    except msgspec.ValidationError as exc:
        text = str(exc)
        reason = (
            "out_of_range"
            if "out of range" in text
            or "Expected `float` >=" in text
            or ("Expected `float` <=" in text)
            or "Expected `int` >=" in text
            or "Expected `int` <=" in text
            else "schema"
        )
        raise PayloadError(reason, text) from None
    except msgspec.DecodeError as exc:
        raise PayloadError("malformed_json", str(exc)) from None
    return result


# --- TOML files (config and scenarios) ------------------------------------------------------
