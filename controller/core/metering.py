"""The KPIs the controller can measure itself, from telemetry, since local midnight.

The backtest reports KPIs from the simulator's truth (docs/kpis.md); a daemon on a real plant
has only its meters.  :class:`Meter` integrates the site's metered powers over plant time
(each value held until the next telemetry, never across a clock jump) into the same KPI names:
energies, CO2 and cost from the site's factors and tariff, and aluminium by Faraday from the
measured line currents.  At every full hour of plant time it closes a reading of the day's
totals so far (at local midnight: the whole day, then the totals start again), stamped with
the hour; the core logs each as a ``kpi`` point with ``period=day`` (docs/influx-schema.md).
Only what the meters saw is counted: ``aluminium_target_t`` is nominal production over the
same metered time.
"""

from __future__ import annotations

import math

import msgspec

from controller.site import SiteModel
from wire import (
    BessTelemetry,
    CaptiveTelemetry,
    GridTelemetry,
    PotlineTelemetry,
    RenewableTelemetry,
)

HOUR_S = 3600.0

TOTAL_KEYS = (
    "renewable_available_mwh",
    "renewable_used_mwh",
    "curtailed_mwh",
    "site_consumption_mwh",
    "grid_import_mwh",
    "grid_export_mwh",
    "captive_mwh",
    "shed_mwh",
    "co2_t",
    "cost",
    "aluminium_t",
    "aluminium_target_t",
)


class Meter:
    """Integrates metered power and line current into the day's KPIs."""

    def __init__(self, site: SiteModel) -> None:
        self.site = site
        self._available_mw: dict[str, float] = {}
        self._delivered_mw: dict[str, float] = {}
        self._grid_mw: dict[str, float] = {}
        self._shed_mw: dict[str, float] = {}
        self._line_mw: dict[str, float] = {}
        self._line_t_per_h: dict[str, float] = {}
        self._bess_mw: dict[str, float] = {}
        self._captive_mw: dict[str, float] = {}
        self._lines = {ln.name: ln for ln in site.lines}
        self._captive = {c.name: c for c in site.captive}
        self._target_t_per_h = sum(
            ln.production_t_per_h(ln.nominal_current_ka) for ln in site.lines
        )
        self._t_s: float | None = None
        self.totals: dict[str, float] = dict.fromkeys(TOTAL_KEYS, 0.0)
        self.readings: list[tuple[float, dict[str, float]]] = []
        """Closed hourly readings (plant time of the hour, the day's KPIs so far), oldest
        first, until the caller takes them."""

    def observe(self, kind: str, asset: str, payload: msgspec.Struct, ts: float) -> None:
        """Telemetry stamped ``ts``: integrate up to ``ts`` on the values held, then take it."""
        self.advance(ts)
        if isinstance(payload, RenewableTelemetry):
            self._available_mw[asset] = payload.available_mw
            self._delivered_mw[asset] = payload.power_mw
        elif isinstance(payload, GridTelemetry):
            self._grid_mw[asset] = payload.power_mw
            self._shed_mw[asset] = payload.shed_mw
        elif isinstance(payload, PotlineTelemetry):
            self._line_mw[asset] = payload.power_mw
            line = self._lines.get(asset)
            if line is not None:
                self._line_t_per_h[asset] = line.production_t_per_h(
                    payload.current_ka, payload.pots_online
                )
        elif isinstance(payload, BessTelemetry):
            self._bess_mw[asset] = payload.power_mw
        elif isinstance(payload, CaptiveTelemetry):
            self._captive_mw[asset] = payload.power_mw

    def advance(self, ts: float) -> None:
        """Integrate up to ``ts``, closing a reading at each full hour on the way."""
        if self._t_s is None:
            self._t_s = ts
            return
        while ts > self._t_s:
            hour_s = (math.floor(self._t_s / HOUR_S) + 1) * HOUR_S
            self._integrate(min(ts, hour_s))
            if self._t_s >= hour_s:
                self.readings.append((hour_s, self.table()))
                if self.site.local_hour(hour_s) == 0:
                    self.totals = dict.fromkeys(TOTAL_KEYS, 0.0)

    def rebase(self, ts: float) -> None:
        """After a clock jump: go on from ``ts`` without integrating the jump."""
        self._t_s = ts

    def take(self) -> list[tuple[float, dict[str, float]]]:
        out, self.readings = self.readings, []
        return out

    def table(self) -> dict[str, float]:
        """The day's KPIs so far (docs/kpis.md names)."""
        t = dict(self.totals)
        consumed = t["site_consumption_mwh"]
        t["renewable_share"] = t["renewable_used_mwh"] / consumed if consumed else 0.0
        return t

    def _integrate(self, to_s: float) -> None:
        assert self._t_s is not None
        dt_h = (to_s - self._t_s) / HOUR_S
        self._t_s = to_s
        if dt_h <= 0.0:
            return
        site, tot = self.site, self.totals
        available = sum(self._available_mw.values())
        delivered = sum(self._delivered_mw.values())
        grid = sum(self._grid_mw.values())
        imported, exported = max(grid, 0.0), max(-grid, 0.0)
        charging = sum(-p for p in self._bess_mw.values() if p < 0.0)
        tot["renewable_available_mwh"] += available * dt_h
        tot["renewable_used_mwh"] += max(delivered - exported, 0.0) * dt_h
        tot["curtailed_mwh"] += max(available - delivered, 0.0) * dt_h
        load = sum(self._line_mw.values()) + site.auxiliary_load_mw + charging
        tot["site_consumption_mwh"] += load * dt_h
        tot["grid_import_mwh"] += imported * dt_h
        tot["grid_export_mwh"] += exported * dt_h
        tot["captive_mwh"] += sum(self._captive_mw.values()) * dt_h
        tot["shed_mwh"] += sum(self._shed_mw.values()) * dt_h
        tot["aluminium_t"] += sum(self._line_t_per_h.values()) * dt_h
        tot["aluminium_target_t"] += self._target_t_per_h * dt_h
        co2 = cost = 0.0
        for name, mw in self._captive_mw.items():
            unit = self._captive.get(name)
            if unit is not None:
                co2 += mw * unit.co2_t_per_mwh
                cost += mw * unit.cost_per_mwh
        if site.grid is not None:
            co2 += imported * site.grid.carbon_t_per_mwh
            cost += imported * site.grid.import_price_per_mwh(site.local_hour(to_s - 1e-6))
            cost -= exported * site.grid.export_per_mwh
        tot["co2_t"] += co2 * dt_h
        tot["cost"] += cost * dt_h
