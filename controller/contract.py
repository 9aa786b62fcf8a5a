"""The MQTT wire contract: topics, payload types and a validating codec.

Both sides use this one module: the controller decodes telemetry and encodes commands, the
simulator (which stands in for the plant) does the reverse.  ``docs/contract.md`` is the
user-facing description; keep the two in step.

Every payload is a UTF-8 JSON object with ``ts`` (UNIX seconds, UTC).  Units are in the
field names.  Decoding is strict: unknown fields, wrong types, NaN/inf, out-of-range values
and oversized payloads raise :class:`PayloadError`, whose ``kind`` is one of
:data:`REJECT_KINDS` so that callers can count rejections per kind.

Exceptions::

    ContractError
    ├── PayloadError     a message that must be dropped (kind, reason)
    └── FileError        a TOML file (config or scenario) with a bad key (key, value, reason)
"""

from __future__ import annotations

import enum
import math
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Final, Literal, TypeVar

import msgspec

DEFAULT_PREFIX: Final = "smelter"
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

_NAME_RE: Final = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

# Bounds wide enough for any real plant, tight enough to catch garbage and unit mistakes.
Ts = Annotated[float, msgspec.Meta(ge=0.0, le=1.0e11)]
PowerMW = Annotated[float, msgspec.Meta(ge=-1.0e5, le=1.0e5)]
NonNegPowerMW = Annotated[float, msgspec.Meta(ge=0.0, le=1.0e5)]
CurrentKA = Annotated[float, msgspec.Meta(ge=0.0, le=2000.0)]
Frac = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
Name = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
PlanId = Annotated[str, msgspec.Meta(max_length=128)]


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
    """NWP-like forecast for one site: ``times`` are UNIX seconds of the valid times."""

    issued_ts: Ts
    times: Annotated[list[Ts], msgspec.Meta(max_length=5000)]
    ghi_wm2: _Series | None = None
    wind_speed_ms: _Series | None = None
    flow_m3s: _Series | None = None


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


class PowerSetpoint(_Payload, frozen=True, kw_only=True):
    """BESS (+ discharge / − charge) or captive unit output setpoint."""

    power_mw: PowerMW
    valid_until: Ts
    plan_id: PlanId = ""
    source: Source = Source.MPC


class ControllerStatus(_Payload, frozen=True, kw_only=True):
    state: ControllerState
    reasons: list[str] = msgspec.field(default_factory=list)
    last_plan_ts: Ts | None = None


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
    | ModeCommand
    | PlanMessage
)


# --- topics --------------------------------------------------------------------------------

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
    "plan",
    "mode",
]

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
    "mode": ModeCommand,
    "plan": PlanMessage,
}


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


# --- codec ---------------------------------------------------------------------------------


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


class FileError(ContractError):
    """A bad TOML file: names the file, the key, the offending value and the reason."""

    def __init__(self, source: str, key: str, value: object, reason: str) -> None:
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        where = f"{source}: " if source else ""
        super().__init__(f"{where}key '{key}' = {shown}: {reason}")
        self.source = source
        self.key = key
        self.value = value
        self.reason = reason


_MISSING: Final = object()
_PATH_TOKEN = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]")


def _lookup(raw: object, path: str) -> tuple[str, object]:
    """Follow a msgspec error path (``$.potline[0].pots``) into the raw data."""
    key_parts: list[str] = []
    node: object = raw
    for name, index in _PATH_TOKEN.findall(path.removeprefix("$")):
        if name:
            key_parts.append(name)
            node = node.get(name, _MISSING) if isinstance(node, Mapping) else _MISSING
        else:
            key_parts[-1:] = [f"{key_parts[-1] if key_parts else ''}[{index}]"]
            i = int(index)
            node = node[i] if isinstance(node, list) and i < len(node) else _MISSING
    return ".".join(key_parts) or "(top level)", node


def convert(raw: Mapping[str, Any], type_: type[P], source: str = "") -> P:
    """Convert parsed TOML (or any mapping) into a frozen Struct, or raise :class:`FileError`."""
    try:
        return msgspec.convert(raw, type_, strict=False)
    except msgspec.ValidationError as exc:
        text = str(exc)
        reason, _, path = text.partition(" - at `")
        path = path.rstrip("`")
        missing = re.search(r"missing required field `([^`]+)`", reason)
        unknown = re.search(r"unknown field `([^`]+)`", reason)
        cross = re.match(r"^([A-Za-z_]\w*): (.+)$", reason)
        if missing or unknown:
            field = (missing or unknown).group(1)  # type: ignore[union-attr]
            path = f"{path or '$'}.{field}"
        elif cross:
            # a __post_init__ check, written as "field: reason"
            path, reason = f"{path or '$'}.{cross.group(1)}", cross.group(2)
        key, value = _lookup(raw, path or "$")
        if value is _MISSING:
            value = "(missing)" if missing else None
        if unknown:
            reason = "unknown key (misspelt, or not valid here)"
        raise FileError(source, key, value, reason) from None


def load_toml(path: str | Path, type_: type[P]) -> P:
    """Read a TOML file into a validated Struct; syntax errors are reported as FileError too."""
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileError(str(p), "(file)", str(p), "file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise FileError(str(p), "(syntax)", None, f"not valid TOML: {exc}") from None
    return convert(raw, type_, str(p))


# --- connection settings (shared by the daemon's and the simulator's config files) -----------


def read_secret_file(path: str, key: str) -> str:
    """A secret (password, API token) from the file the config key ``key`` names.

    Errors name the key and the file, never the secret (not even the byte a decode error
    would quote).  The final newline that ``echo secret > file`` and editors add is dropped.

    Raises:
        FileError: the file is missing, unreadable, not UTF-8 text or empty.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileError("", key, path, "file not found") from None
    except UnicodeDecodeError:
        raise FileError("", key, path, "file is not UTF-8 text") from None
    except OSError as exc:
        raise FileError("", key, path, f"cannot read the file: {exc.strerror}") from None
    secret = text.rstrip("\r\n")
    if not secret:
        raise FileError("", key, path, "file is empty")
    return secret


class TlsSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    ca_file: str | None = None
    """CA bundle to verify the broker; None uses the system store."""
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = False
    """Skip hostname verification (test brokers only)."""


class MqttSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The ``[mqtt]`` table.  Secrets are named, never stored: ``password_env`` or
    ``password_file`` say where the password is; it is read at the edge and never logged."""

    url: Annotated[str, msgspec.Meta(pattern=r"^mqtts?://[^/:]+(:\d{1,5})?/?$")] = (
        "mqtt://127.0.0.1:1883"
    )
    client_id: Annotated[str, msgspec.Meta(max_length=64)] = ""
    username: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    protocol: Literal["3.1.1", "5"] = "5"
    keepalive_s: Annotated[int, msgspec.Meta(ge=5, le=3600)] = 30
    topic_prefix: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")] = (
        DEFAULT_PREFIX
    )
    tls: TlsSettings | None = None

    def __post_init__(self) -> None:
        if self.password_env and self.password_file:
            raise ValueError("password_env: give password_env or password_file, not both")
        if self.url.startswith("mqtts://") and self.tls is None:
            raise ValueError("tls: mqtts:// needs a [mqtt.tls] table (it may be empty)")

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[1].rstrip("/").rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        rest = self.url.split("://", 1)[1].rstrip("/")
        if ":" in rest:
            return int(rest.rsplit(":", 1)[1])
        return 8883 if self.url.startswith("mqtts://") else 1883
