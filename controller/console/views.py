"""The console's JSON: what the page and ``GET /api/...`` show, read from a running daemon.

Everything here runs on the daemon's event loop and only reads: the core's status, plan, state
tracker and meter, the safety layer's setpoints, the journal's latest telemetry.  Times are
plant time (UNIX seconds); the page shows them in the site's local time (``utc_offset_h``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import msgspec

from controller.console.journal import Journal
from controller.core.records import plan_message
from wire import BessTelemetry, CaptiveTelemetry, GridTelemetry, PotlineTelemetry

if TYPE_CHECKING:
    from controller.daemon.service import Daemon

Json = dict[str, Any]


def status_view(daemon: Daemon, journal: Journal, *, operators_enabled: bool) -> Json:
    core, site = daemon.core, daemon.core.site
    status = core.status()
    now = core.clock.now_s
    plan = core.plan
    applied = core.dispatcher.applied
    latest = journal.latest
    lines = []
    snapshots = core.tracker.snapshot()
    since_midnight_h = _local_hours(now, site.utc_offset_h)
    for line in site.lines:
        telemetry = latest.get(("potline", line.name))
        snap = snapshots.get(line.name)
        i_n = line.nominal_current_ka
        per_h = line.production_t_per_h(i_n)
        lines.append(
            {
                "name": line.name,
                "current_ka": telemetry.current_ka
                if isinstance(telemetry, PotlineTelemetry)
                else None,
                "power_mw": telemetry.power_mw if isinstance(telemetry, PotlineTelemetry) else None,
                "setpoint_ka": applied.get(("potline", line.name)),
                "nominal_ka": line.nominal_current_ka,
                "band_ka": [line.band_low_frac * i_n, line.band_high_frac * i_n],
                "envelope_ka": [line.deep_low_frac * i_n, line.high_max_frac * i_n],
                "hard_ka": [line.hard_min_ka, line.hard_max_ka],
                "heat_budget_mwh": snap.heat_budget_mwh if snap is not None else None,
                "heat_limit_mwh": line.heat_budget_mwh,
                "aluminium_today_t": snap.produced_today_t if snap is not None else None,
                "aluminium_target_so_far_t": per_h * since_midnight_h,
                "aluminium_target_day_t": per_h * 24.0,
            }
        )
    bess = []
    for b in site.bess:
        telemetry = latest.get(("bess", b.name))
        bess.append(
            {
                "name": b.name,
                "soc_frac": telemetry.soc_frac if isinstance(telemetry, BessTelemetry) else None,
                "power_mw": telemetry.power_mw if isinstance(telemetry, BessTelemetry) else None,
                "setpoint_mw": applied.get(("bess", b.name)),
                "power_limit_mw": b.power_mw,
                "soc_band_frac": [b.soc_min_frac, b.soc_max_frac],
            }
        )
    captive = []
    for c in site.captive:
        telemetry = latest.get(("captive", c.name))
        captive.append(
            {
                "name": c.name,
                "power_mw": telemetry.power_mw if isinstance(telemetry, CaptiveTelemetry) else None,
                "setpoint_mw": applied.get(("captive", c.name)),
                "range_mw": [c.min_mw, c.max_mw],
            }
        )
    meters = []
    for name in site.meters:
        telemetry = latest.get(("grid", name))
        if isinstance(telemetry, GridTelemetry):
            meters.append(
                {
                    "name": name,
                    "power_mw": telemetry.power_mw,
                    "frequency_hz": telemetry.frequency_hz,
                }
            )
        else:
            meters.append({"name": name, "power_mw": None, "frequency_hz": None})
    kpis = core.meter.table()
    sink = daemon.sink.stats() if daemon.sink is not None else None
    return {
        "site": site.name,
        "utc_offset_h": site.utc_offset_h,
        "instance": daemon.instance,
        "active": daemon.is_active,
        "lease": daemon.lease.describe(),
        "ts": now,
        "state": status.state.value,
        "reasons": status.reasons,
        "mode": {
            "mode": core.mode.mode.value,
            "ts": core.mode.ts,
            "potline_current_ka": core.mode.potline_current_ka,
            "bess_power_mw": core.mode.bess_power_mw,
            "captive_power_mw": core.mode.captive_power_mw,
        },
        "plan": None
        if plan is None
        else {
            "plan_id": plan.plan_id,
            "status": plan.status.value,
            "reason": plan.reason,
            "age_s": now - float(plan.times_s[0]) if now is not None else None,
            "solve_ms": plan.solve_ms,
            "bent": plan.bent,
        },
        "plans_made": core.plans_made,
        "fallback_plans": core.fallback_plans,
        "plan_failure": core.plans.failure,
        "mqtt": {"connected": daemon.stats.connected, "url": daemon.config.mqtt.url},
        "tsdb": {
            "target": daemon.influx.url or f"files in {daemon.influx.files_dir}",
            "written": sink.written if sink else 0,
            "spool_points": sink.spool_points if sink else 0,
            "dropped": sink.dropped if sink else 0,
            "rejected": sink.rejected if sink else 0,
        },
        "lines": lines,
        "bess": bess,
        "captive": captive,
        "grid": {
            "islanded": site.islanded,
            "import_limit_mw": site.grid.import_limit_mw if site.grid else None,
            "export_limit_mw": site.grid.export_limit_mw if site.grid else None,
            "meters": meters,
        },
        "renewable_available_mw": core.tracker.renewable_available_mw,
        "curtailed_today_mwh": kpis.get("curtailed_mwh", 0.0),
        "operators": operators_enabled,
        "wall_utc_s": time.time(),
    }


def plan_view(daemon: Daemon, journal: Journal) -> Json:
    """The plan in force (the contract's plan payload, or None) and the plant's last hours."""
    plan = daemon.core.plan
    return {
        "plan": None if plan is None else _as_json(plan_message(plan)),
        "history": journal.rows(),
    }


def kpi_view(daemon: Daemon) -> Json:
    """Today's KPIs from the controller's meters (docs/kpis.md names), since local midnight."""
    return {"ts": daemon.core.clock.now_s, "period": "day", "kpis": daemon.core.meter.table()}


def _as_json(struct: Any) -> Any:
    return msgspec.to_builtins(struct)


def _local_hours(now: float | None, utc_offset_h: float) -> float:
    """Hours since local midnight at plant time ``now`` (0 before the plant was heard)."""
    if now is None:
        return 0.0
    return ((now + utc_offset_h * 3600.0) % 86_400.0) / 3600.0
