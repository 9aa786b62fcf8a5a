"""The MQTT wire contract, the one package both sides import (DESIGN §2, docs/contract.md).

The controller decodes telemetry and encodes commands; the simulator, which stands in for the
plant, does the reverse.  The contract proper is re-exported here:

- :mod:`wire.payloads`: what each topic carries, with units in the field names and bounds;
- :mod:`wire.topics`: the topics under one prefix, built and parsed;
- :mod:`wire.codec`: compact JSON out, strict validation in (:class:`PayloadError`).

Beside it, how both sides reach the broker and read their shared config file:
:mod:`wire.link` (client, TLS, password, backoff, outage log; the ``[mqtt]`` table),
:mod:`wire.tasks` (asyncio helpers of both shells) and :mod:`wire.tomlfile` (typed TOML with
errors that name the key).
"""

from wire.codec import (
    MAX_PAYLOAD_BYTES,
    MAX_PLAN_BYTES,
    PAYLOAD_TYPES,
    REJECT_KINDS,
    ContractError,
    PayloadError,
    Publication,
    decode,
    encode,
)
from wire.payloads import (
    BessTelemetry,
    CaptiveTelemetry,
    ControllerLease,
    ControllerState,
    ControllerStatus,
    CurrentKA,
    Frac,
    GridTelemetry,
    InstanceId,
    Mode,
    ModeCommand,
    Name,
    NonNegPowerMW,
    Payload,
    PlanId,
    PlanMessage,
    PlantAlarm,
    PotlineSetpoint,
    PotlineTelemetry,
    PotVoltages,
    PowerMW,
    PowerSetpoint,
    RenewableKind,
    RenewableTelemetry,
    Source,
    Ts,
    WeatherForecast,
)
from wire.topics import DEFAULT_PREFIX, Topic, TopicKind, Topics

__all__ = [
    "DEFAULT_PREFIX",
    "MAX_PAYLOAD_BYTES",
    "MAX_PLAN_BYTES",
    "PAYLOAD_TYPES",
    "REJECT_KINDS",
    "BessTelemetry",
    "CaptiveTelemetry",
    "ContractError",
    "ControllerLease",
    "ControllerState",
    "ControllerStatus",
    "CurrentKA",
    "Frac",
    "GridTelemetry",
    "InstanceId",
    "Mode",
    "ModeCommand",
    "Name",
    "NonNegPowerMW",
    "Payload",
    "PayloadError",
    "PlanId",
    "PlanMessage",
    "PlantAlarm",
    "PotVoltages",
    "PotlineSetpoint",
    "PotlineTelemetry",
    "PowerMW",
    "PowerSetpoint",
    "Publication",
    "RenewableKind",
    "RenewableTelemetry",
    "Source",
    "Topic",
    "TopicKind",
    "Topics",
    "Ts",
    "WeatherForecast",
    "decode",
    "encode",
]
