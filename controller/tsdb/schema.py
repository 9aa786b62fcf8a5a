"""What is logged, as points: wire-contract payloads, plans, tracker state, events and KPIs.

``docs/influx-schema.md`` is the reference for the measurements, tags and fields made here; keep
the two in step.  Every point carries the ``site`` tag; times are plant time (the payload's
``ts``, the plan's step times...).  A field keeps one type for ever (InfluxDB refuses a write
that changes it): physical values are always floats, counts always ints.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Final

import msgspec

from controller.planner.types import PlantState, Schedule
from controller.site import LineModel
from controller.tsdb.points import FieldValue, Point
from wire import (
    BessTelemetry,
    CaptiveTelemetry,
    ControllerState,
    ControllerStatus,
    GridTelemetry,
    ModeCommand,
    PlantAlarm,
    PotlineSetpoint,
    PotlineTelemetry,
    PotVoltages,
    PowerSetpoint,
    RenewableTelemetry,
    WeatherForecast,
)

TELEMETRY: Final = "telemetry"
FORECAST: Final = "forecast"
PLAN: Final = "plan"
SETPOINT: Final = "setpoint"
EVENT: Final = "event"
KPI: Final = "kpi"
STATE: Final = "state"

ANODE_EFFECT_V: Final = 8.0
"""A pot above this voltage is in an anode effect (DESIGN §3)."""

STATE_CODES: Final = {
    ControllerState.OFFLINE: 0,
    ControllerState.STARTING: 1,
    ControllerState.RUNNING: 2,
    ControllerState.DEGRADED: 3,
    ControllerState.FALLBACK: 4,
    ControllerState.MANUAL: 5,
    ControllerState.STANDBY: 6,
}
"""``state_code`` of the status event: a number Grafana can map to colours."""


def _tags(site: str, kind: str, asset: str = "", **more: str) -> dict[str, str]:
    tags = {"site": site, "kind": kind, "asset": asset, **more}
    return {k: v for k, v in tags.items() if v}


def _finite(**fields: float | None) -> dict[str, FieldValue]:
    """Float fields, leaving out absent (None) and non-finite values."""
    return {k: float(v) for k, v in fields.items() if v is not None and math.isfinite(v)}


# --- wire-contract payloads ----------------------------------------------------------------


def payload_points(kind: str, asset: str, payload: msgspec.Struct, site: str) -> list[Point]:
    """The points for one contract payload received or sent on a topic of ``kind`` (the
    :class:`~wire.Topic` kind) for ``asset``.  Kinds that are not logged this
    way (``plan``: see :func:`plan_points`) and payloads of an unexpected type give no point."""
    match payload:
        case PotlineTelemetry():
            return [_potline(asset, payload, site)]
        case PotVoltages():
            return _pots(asset, payload, site)
        case GridTelemetry():
            return [_grid(asset, payload, site)]
        case RenewableTelemetry():
            return [_renewable(asset, payload, site)]
        case BessTelemetry():
            fields = _finite(
                power_mw=payload.power_mw,
                soc_frac=payload.soc_frac,
                energy_capacity_mwh=payload.energy_capacity_mwh,
            )
            return [Point(TELEMETRY, _tags(site, "bess", asset), fields, payload.ts)]
        case CaptiveTelemetry():
            fields = _finite(
                power_mw=payload.power_mw,
                min_stable_mw=payload.min_stable_mw,
                max_mw=payload.max_mw,
            )
            return [Point(TELEMETRY, _tags(site, "captive", asset), fields, payload.ts)]
        case WeatherForecast():
            return weather_points(asset, payload, site)
        case PlantAlarm():
            return [
                event_point(
                    site,
                    "alarm",
                    payload.ts,
                    asset=payload.asset,
                    code=payload.code,
                    message=payload.message,
                )
            ]
        case PotlineSetpoint():
            fields = _finite(current_ka=payload.current_ka, valid_until_s=payload.valid_until)
            return [_setpoint("potline", asset, payload, fields, site)]
        case PowerSetpoint():
            asset_kind = kind.removesuffix("_setpoint") if kind.endswith("_setpoint") else "power"
            fields = _finite(power_mw=payload.power_mw, valid_until_s=payload.valid_until)
            return [_setpoint(asset_kind, asset, payload, fields, site)]
        case ControllerStatus():
            return [status_point(payload, site)]
        case ModeCommand():
            return [_mode(payload, site)]
    return []


def _potline(asset: str, p: PotlineTelemetry, site: str) -> Point:
    fields: dict[str, FieldValue] = _finite(
        current_ka=p.current_ka, voltage_v=p.voltage_v, power_mw=p.power_mw
    )
    fields["pots_online"] = int(p.pots_online)
    return Point(TELEMETRY, _tags(site, "potline", asset), fields, p.ts)


def _pots(asset: str, p: PotVoltages, site: str) -> list[Point]:
    """Per-pot voltages summarised: max, mean, min, how many pots reported and how many are in
    an anode effect (> 8 V).  One field per pot would be 300 series per line for little use."""
    volts = p.voltage_v
    if not all(map(math.isfinite, volts)):  # decoded payloads are finite: this is the fast path
        volts = [v for v in volts if math.isfinite(v)]
    if not volts:
        return []
    highest = max(volts)
    fields: dict[str, FieldValue] = _finite(
        voltage_max_v=highest, voltage_mean_v=sum(volts) / len(volts), voltage_min_v=min(volts)
    )
    fields["pots_reporting"] = len(volts)
    # at 1 Hz per line this is the hot path: no pot in an anode effect is the usual case
    anode = sum(map(ANODE_EFFECT_V.__lt__, volts)) if highest > ANODE_EFFECT_V else 0
    fields["anode_effects"] = anode
    return [Point(TELEMETRY, _tags(site, "pots", asset), fields, p.ts)]


def _grid(asset: str, p: GridTelemetry, site: str) -> Point:
    fields = _finite(
        power_mw=p.power_mw,
        import_mw=max(p.power_mw, 0.0),
        export_mw=max(-p.power_mw, 0.0),
        frequency_hz=p.frequency_hz,
        shed_mw=p.shed_mw,
    )
    return Point(TELEMETRY, _tags(site, "grid", asset), fields, p.ts)


def _renewable(asset: str, p: RenewableTelemetry, site: str) -> Point:
    fields = _finite(
        power_mw=p.power_mw,
        available_mw=p.available_mw,
        curtailed_mw=max(p.available_mw - p.power_mw, 0.0),
        capacity_mw=p.capacity_mw,
        ghi_wm2=p.ghi_wm2,
        wind_speed_ms=p.wind_speed_ms,
        flow_m3s=p.flow_m3s,
    )
    return Point(TELEMETRY, _tags(site, "renewable", asset, tech=p.kind.value), fields, p.ts)


def _setpoint(
    kind: str,
    asset: str,
    payload: PotlineSetpoint | PowerSetpoint,
    fields: dict[str, FieldValue],
    site: str,
) -> Point:
    # a tag, as on the plan's points: a setpoint is found and joined with its plan by a plain
    # filter; VictoriaMetrics keeps a tag as text, but reads a string field like 7e51... as +Inf
    tags = _tags(
        site,
        kind,
        asset,
        source=payload.source.value,
        plan_id=payload.plan_id,
        instance=payload.instance,
    )
    return Point(SETPOINT, tags, fields, payload.ts)


def weather_points(asset: str, forecast: WeatherForecast, site: str) -> list[Point]:
    """A weather forecast at its valid times, one series per issue (tag ``issued``, ISO 8601
    UTC), with ``lead_h`` = valid time − issue time [h]."""
    issued = datetime.fromtimestamp(forecast.issued_ts, UTC).isoformat(timespec="seconds")
    tags = _tags(site, "weather", asset, issued=issued)
    series = {
        "ghi_wm2": forecast.ghi_wm2,
        "wind_speed_ms": forecast.wind_speed_ms,
        "flow_m3s": forecast.flow_m3s,
    }
    out = []
    for k, t_s in enumerate(forecast.times):
        fields = _finite(
            lead_h=(t_s - forecast.issued_ts) / 3600.0,
            **{name: values[k] for name, values in series.items() if values and k < len(values)},
        )
        out.append(Point(FORECAST, tags, fields, t_s))
    return out


def status_point(status: ControllerStatus, site: str) -> Point:
    """The controller's state as an event: ``state`` (text), ``state_code`` (see
    :data:`STATE_CODES`), ``reasons`` joined by "; "."""
    fields: dict[str, FieldValue] = {
        "count": 1,
        "state": status.state.value,
        "state_code": STATE_CODES[status.state],
        "reasons": "; ".join(status.reasons),
    }
    if status.last_plan_ts is not None:
        fields["last_plan_ts_s"] = float(status.last_plan_ts)
    return Point(EVENT, _tags(site, "status", instance=status.instance), fields, status.ts)


def _mode(command: ModeCommand, site: str) -> Point:
    manual = [
        *(f"{k} {v:g} kA" for k, v in command.potline_current_ka.items()),
        *(f"{k} {v:g} MW" for k, v in command.bess_power_mw.items()),
        *(f"{k} {v:g} MW" for k, v in command.captive_power_mw.items()),
    ]
    fields: dict[str, FieldValue] = {
        "count": 1,
        "mode": command.mode.value,
        "manual_setpoints": len(manual),
        "message": ", ".join(manual),
    }
    return Point(EVENT, _tags(site, "mode"), fields, command.ts)


# --- the controller's own records ----------------------------------------------------------


def event_point(
    site: str,
    kind: str,
    ts_s: float,
    *,
    asset: str = "",
    code: str = "",
    message: str = "",
    fields: Mapping[str, FieldValue] | None = None,
) -> Point:
    """Something that happened: a mode change, a fallback, a reconnect, a safety clamp...

    ``kind`` says what (``mode``, ``fallback``, ``reconnect``, ``safety``, ``alarm``...),
    ``code`` refines it (``clamped``, ``stale_telemetry``...); ``count`` = 1 so that events can
    be summed per window.
    """
    values: dict[str, FieldValue] = {"count": 1}
    if message:
        values["message"] = message
    if fields:
        values.update(fields)
    return Point(EVENT, _tags(site, kind, asset, code=code), values, ts_s)


def plan_points(
    schedule: Schedule,
    site: str,
    plan_id: str,
    ts_s: float,
    *,
    lines: Sequence[LineModel] = (),
) -> list[Point]:
    """A whole plan: one point per step and asset at the step's start time, the supply forecast
    it was made with (P10/P50/P90), and a summary point at ``ts_s`` (when it was made).

    Every point carries the tag ``plan_id``, so that successive plans over the same hours stay
    apart.  Given the ``lines`` models, pot-line points also carry the continuous band and the
    hard limits [kA], which the dashboard draws around the current.
    """
    models = {m.name: m for m in lines}
    times = [float(t) for t in schedule.times_s]
    out: list[Point] = [_plan_summary(schedule, site, plan_id, ts_s)]
    for name, current in schedule.line_current_ka.items():
        tags = _tags(site, "potline", name, plan_id=plan_id)
        heat = schedule.heat_budget_mwh.get(name)
        production = schedule.production_t.get(name)
        limits = _line_limits(models.get(name))
        for k, t_s in enumerate(times):
            fields = _finite(
                current_ka=float(current[k]),
                heat_budget_mwh=None if heat is None else float(heat[k]),
                production_t=None if production is None else float(production[k]),
            )
            out.append(Point(PLAN, tags, {**fields, **limits}, t_s))
    for name, power in schedule.bess_power_mw.items():
        tags = _tags(site, "bess", name, plan_id=plan_id)
        soc = schedule.bess_soc_frac.get(name)
        for k, t_s in enumerate(times):
            fields = _finite(
                power_mw=float(power[k]), soc_frac=None if soc is None else float(soc[k])
            )
            out.append(Point(PLAN, tags, fields, t_s))
    for name, power in schedule.captive_mw.items():
        tags = _tags(site, "captive", name, plan_id=plan_id)
        out.extend(
            Point(PLAN, tags, _finite(power_mw=float(power[k])), t_s) for k, t_s in enumerate(times)
        )
    site_tags = _tags(site, "site", plan_id=plan_id)
    forecast_tags = _tags(site, "renewable", plan_id=plan_id)
    fc = schedule.forecast
    for k, t_s in enumerate(times):
        lead_h = (t_s - ts_s) / 3600.0
        fields = _finite(
            grid_mw=float(schedule.grid_mw[k]),
            renewable_used_mw=float(schedule.renewable_used_mw[k]),
            curtailed_mw=float(schedule.curtailed_mw[k]),
            lead_h=lead_h,
        )
        out.append(Point(PLAN, site_tags, fields, t_s))
    for k, t in enumerate(fc.times_s):
        t_s = float(t)
        fields = _finite(
            p10_mw=float(fc.p10_mw[k]),
            p50_mw=float(fc.p50_mw[k]),
            p90_mw=float(fc.p90_mw[k]),
            lead_h=(t_s - ts_s) / 3600.0,
        )
        out.append(Point(FORECAST, forecast_tags, fields, t_s))
    return out


def _line_limits(model: LineModel | None) -> dict[str, FieldValue]:
    if model is None:
        return {}
    nominal = model.nominal_current_ka
    return _finite(
        band_low_ka=model.band_low_frac * nominal,
        band_high_ka=model.band_high_frac * nominal,
        hard_min_ka=model.hard_min_ka,
        hard_max_ka=model.hard_max_ka,
        nominal_ka=nominal,
        heat_budget_limit_mwh=model.heat_budget_mwh,
    )


def _plan_summary(schedule: Schedule, site: str, plan_id: str, ts_s: float) -> Point:
    fields: dict[str, FieldValue] = {
        "count": 1,
        "status": schedule.status.value,
        "steps": len(schedule.times_s),
        "step_s": float(schedule.step_s),
        "solve_ms": float(schedule.solve_ms),
    }
    if math.isfinite(schedule.objective):
        fields["objective"] = float(schedule.objective)
    if schedule.reason:
        fields["reason"] = schedule.reason
    for family, slack in schedule.bent.items():
        if math.isfinite(slack):
            fields[f"bent_{family}"] = float(slack)
    return Point(PLAN, _tags(site, "summary", plan_id=plan_id), fields, ts_s)


def state_points(state: PlantState, site: str) -> list[Point]:
    """What the controller's tracker knows now (measurement ``state``): per line the heat
    budget it estimates, production today, time used outside the band; per BESS the SOC."""
    out = []
    for name, line in state.lines.items():
        fields: dict[str, FieldValue] = _finite(
            current_ka=line.current_ka,
            heat_budget_mwh=line.heat_budget_mwh,
            hx_lag_mw=line.hx_lag_mw,
            produced_today_t=line.produced_today_t,
            deep_used_h=line.deep_used_h,
            high_used_h=line.high_used_h,
        )
        fields["available"] = bool(line.available)
        if line.pots_online is not None:
            fields["pots_online"] = int(line.pots_online)
        out.append(Point(STATE, _tags(site, "potline", name), fields, state.t_s))
    for name, soc in state.bess_soc_frac.items():
        out.append(Point(STATE, _tags(site, "bess", name), _finite(soc_frac=soc), state.t_s))
    for name, mw in state.captive_mw.items():
        out.append(Point(STATE, _tags(site, "captive", name), _finite(power_mw=mw), state.t_s))
    return [p for p in out if p.fields]


def kpi_points(
    kpis: Mapping[str, object], site: str, ts_s: float, *, period: str = ""
) -> list[Point]:
    """KPIs (docs/kpis.md) as measurement ``kpi``: the numbers at the top level in one point
    (``kind=site``), each nested table (``lines: {L1: {...}}``) as one point per entry
    (``kind=lines``, ``asset=L1``).  ``period`` tags the window they cover (``day``, ``run``...).
    Values that are not numbers (or not finite) are left out.
    """
    out = []
    top = _numbers(kpis)
    if top:
        out.append(Point(KPI, _tags(site, "site", period=period), top, ts_s))
    for key, value in kpis.items():
        if isinstance(value, Mapping):
            for name, table in value.items():
                if isinstance(table, Mapping) and (fields := _numbers(table)):
                    tags = _tags(site, key, str(name), period=period)
                    out.append(Point(KPI, tags, fields, ts_s))
    return out


def _numbers(table: Mapping[str, object]) -> dict[str, FieldValue]:
    out: dict[str, FieldValue] = {}
    for key, value in table.items():
        if isinstance(value, bool):
            out[str(key)] = value
        elif isinstance(value, numbers.Real) and math.isfinite(value):
            # KPIs are quantities: always floats, so a field never changes type between runs
            out[str(key)] = float(value)
    return out
