"""The payloads of the MQTT wire contract: what each topic carries, with its units and bounds.

Every payload is a UTF-8 JSON object with ``ts`` (UNIX seconds, UTC).  Units are in the field
names.  Bounds are wide enough for any real plant and tight enough to catch garbage and unit
mistakes; :func:`wire.codec.decode` enforces them.  ``docs/contract.md`` is the user-facing
description; keep the two in step.
"""

from __future__ import annotations

import enum
from typing import Annotated, Literal

import msgspec

# Bounds wide enough for any real plant, tight enough to catch garbage and unit mistakes.
Ts = Annotated[float, msgspec.Meta(ge=0.0, le=1.0e11)]
PowerMW = Annotated[float, msgspec.Meta(ge=-1.0e5, le=1.0e5)]
NonNegPowerMW = Annotated[float, msgspec.Meta(ge=0.0, le=1.0e5)]
CurrentKA = Annotated[float, msgspec.Meta(ge=0.0, le=2000.0)]
Frac = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
Name = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
PlanId = Annotated[str, msgspec.Meta(max_length=128)]
InstanceId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.-]{0,64}$")]
"""A controller instance's id (``[controller] instance_id``); "" where none was given."""


class Source(enum.StrEnum):
    """Who produced a setpoint."""

    MPC = "mpc"
    FALLBACK = "fallback"
    MANUAL = "manual"
    RULE = "rule"
    FLAT = "flat"


class RenewableKind(enum.StrEnum):
    PV = "pv"
    WIND = "wind"
    HYDRO = "hydro"


class ControllerState(enum.StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    DEGRADED = "degraded"
    FALLBACK = "fallback"
    MANUAL = "manual"
    STANDBY = "standby"
    """Another instance is the active controller; this one sends no setpoints."""
    OFFLINE = "offline"


class Mode(enum.StrEnum):
    AUTO = "auto"
    MANUAL = "manual"
    HOLD = "hold"


class _Payload(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    ts: Ts


# --- plant -> controller -------------------------------------------------------------------


class PotlineTelemetry(_Payload, frozen=True, kw_only=True):
    current_ka: CurrentKA
    voltage_v: Annotated[float, msgspec.Meta(ge=0.0, le=1.0e4)]
    power_mw: NonNegPowerMW
    pots_online: Annotated[int, msgspec.Meta(ge=0, le=10_000)]


class PotVoltages(_Payload, frozen=True, kw_only=True):
    voltage_v: Annotated[
        list[Annotated[float, msgspec.Meta(ge=0.0, le=100.0)]], msgspec.Meta(max_length=2000)
    ]


class GridTelemetry(_Payload, frozen=True, kw_only=True):
    power_mw: PowerMW
    """Positive = import from the grid, negative = export."""
    frequency_hz: Annotated[float, msgspec.Meta(ge=40.0, le=70.0)]
    shed_mw: NonNegPowerMW = 0.0
    """Load the plant's under-frequency protection shed (islanded sites), 0 otherwise."""


class RenewableTelemetry(_Payload, frozen=True, kw_only=True):
    kind: RenewableKind
    power_mw: NonNegPowerMW
    available_mw: NonNegPowerMW
    capacity_mw: NonNegPowerMW
    ghi_wm2: Annotated[float, msgspec.Meta(ge=0.0, le=2000.0)] | None = None
    wind_speed_ms: Annotated[float, msgspec.Meta(ge=0.0, le=100.0)] | None = None
    flow_m3s: Annotated[float, msgspec.Meta(ge=0.0, le=1.0e6)] | None = None


class BessTelemetry(_Payload, frozen=True, kw_only=True):
    power_mw: PowerMW
    """Positive = discharge into the site, negative = charge."""
    soc_frac: Frac
    energy_capacity_mwh: NonNegPowerMW


class CaptiveTelemetry(_Payload, frozen=True, kw_only=True):
    power_mw: NonNegPowerMW
    min_stable_mw: NonNegPowerMW
    max_mw: NonNegPowerMW


_Series = Annotated[
    list[Annotated[float, msgspec.Meta(ge=-1.0e6, le=1.0e6)]], msgspec.Meta(max_length=5000)
]


class WeatherForecast(_Payload, frozen=True, kw_only=True):
    """NWP-like forecast for one site: ``times`` are UNIX seconds of the valid times; each
    series, when present, has one value per time."""

    issued_ts: Ts
    times: Annotated[list[Ts], msgspec.Meta(max_length=5000)]
    ghi_wm2: _Series | None = None
    wind_speed_ms: _Series | None = None
    flow_m3s: _Series | None = None

    def __post_init__(self) -> None:
        for name in ("ghi_wm2", "wind_speed_ms", "flow_m3s"):
            series = getattr(self, name)
            if series is not None and len(series) != len(self.times):
                raise ValueError(f"{name} has {len(series)} values for {len(self.times)} times")


class PlantAlarm(_Payload, frozen=True, kw_only=True):
    """Plant-side protection events (clamped setpoint, expiry, watchdog, shedding, freezing)."""

    asset: Annotated[str, msgspec.Meta(max_length=200)]
    code: Annotated[str, msgspec.Meta(max_length=64)]
    message: Annotated[str, msgspec.Meta(max_length=1000)]


# --- controller -> plant -------------------------------------------------------------------


class PotlineSetpoint(_Payload, frozen=True, kw_only=True):
    current_ka: CurrentKA
    valid_until: Ts
    plan_id: PlanId = ""
    source: Source = Source.MPC
    instance: InstanceId = ""
    """The controller instance that sent it ("" from a sender that does not say)."""


class PowerSetpoint(_Payload, frozen=True, kw_only=True):
    """BESS (+ discharge / − charge) or captive unit output setpoint."""

    power_mw: PowerMW
    valid_until: Ts
    plan_id: PlanId = ""
    source: Source = Source.MPC
    instance: InstanceId = ""
    """The controller instance that sent it ("" from a sender that does not say)."""


class ControllerStatus(_Payload, frozen=True, kw_only=True):
    state: ControllerState
    reasons: list[str] = msgspec.field(default_factory=list)
    last_plan_ts: Ts | None = None
    instance: InstanceId = ""
    """The controller instance whose status it is (a last will says whose connection was lost)."""


class ControllerLease(_Payload, frozen=True, kw_only=True):
    """Which controller instance is the active one (``{prefix}/controller/lease``, retained).

    The active instance renews it every ``ttl_s / 3`` wall seconds; another instance that has
    heard no new lease message for ``ttl_s`` of its own clock takes it over.  ``seq`` grows by
    one with every message, whoever sends it (docs/operations.md, One active controller)."""

    instance: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
    seq: Annotated[int, msgspec.Meta(ge=1, le=2**53)]
    ttl_s: Annotated[float, msgspec.Meta(gt=0.0, le=3600.0)]
    """Wall seconds, judged by each receiver's own clock from when it heard the message."""


class ModeCommand(_Payload, frozen=True, kw_only=True):
    mode: Mode
    potline_current_ka: dict[str, CurrentKA] = msgspec.field(default_factory=dict)
    bess_power_mw: dict[str, PowerMW] = msgspec.field(default_factory=dict)
    captive_power_mw: dict[str, NonNegPowerMW] = msgspec.field(default_factory=dict)


_Named = dict[Name, _Series]


class PlanMessage(_Payload, frozen=True, kw_only=True):
    """The whole current plan (``smelter/controller/plan``, retained): step k covers
    ``[times[k], times[k] + step_lengths_s[k])``, or ``step_s`` throughout when
    ``step_lengths_s`` is empty (a uniform grid); SOC and heat budget are at the end of each
    step."""

    plan_id: PlanId
    status: Literal["optimal", "time_limit_with_solution", "fallback"]
    reason: Annotated[str, msgspec.Meta(max_length=1000)] = ""
    step_s: Annotated[float, msgspec.Meta(gt=0.0, le=86_400.0)]
    """The first step's length [s]."""
    times: Annotated[list[Ts], msgspec.Meta(max_length=5000)]
    step_lengths_s: Annotated[
        list[Annotated[float, msgspec.Meta(gt=0.0, le=86_400.0)]], msgspec.Meta(max_length=5000)
    ] = msgspec.field(default_factory=list)
    """Each step's length [s] on a non-uniform grid (``[planner] far_step_min``)."""
    line_current_ka: _Named
    bess_power_mw: _Named = msgspec.field(default_factory=dict)
    bess_soc_frac: _Named = msgspec.field(default_factory=dict)
    captive_mw: _Named = msgspec.field(default_factory=dict)
    heat_budget_mwh: _Named = msgspec.field(default_factory=dict)
    grid_mw: _Series
    renewable_used_mw: _Series
    curtailed_mw: _Series
    forecast_p10_mw: _Series
    forecast_p50_mw: _Series
    forecast_p90_mw: _Series
    bent: dict[Annotated[str, msgspec.Meta(max_length=64)], float] = msgspec.field(
        default_factory=dict
    )
    solve_ms: Annotated[float, msgspec.Meta(ge=0.0)] = 0.0


Payload = (
    PotlineTelemetry
    | PotVoltages
    | GridTelemetry
    | RenewableTelemetry
    | BessTelemetry
    | CaptiveTelemetry
    | WeatherForecast
    | PlantAlarm
    | PotlineSetpoint
    | PowerSetpoint
    | ControllerStatus
    | ControllerLease
    | ModeCommand
    | PlanMessage
)
