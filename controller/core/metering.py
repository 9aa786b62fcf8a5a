"""The KPIs the controller can measure itself, from telemetry, since local midnight.

The backtest reports KPIs from the simulator's truth (docs/kpis.md); a daemon on a real plant
has only its meters.  :class:`Meter` integrates the site's metered powers over plant time into
the same KPI names: energies, CO2 and cost from the site's factors and tariff, and aluminium
by Faraday from the measured line currents.  Each value is held until the next telemetry of
its asset, for at most ``stale_after_s`` (a meter that went quiet adds nothing), and never
across a clock jump.  At every full local hour of plant time it closes a reading of the day's
totals so far, stamped with the hour (at local midnight: the whole day, then the totals start
again); the core logs each as a ``kpi`` point with ``period=day`` (docs/influx-schema.md).
Only what the meters saw is counted: ``metered_h`` says how long any meter was heard (while
every one is silent nothing is counted, the auxiliary load neither), and
``aluminium_target_t`` is each line's nominal production over the time its meter was heard.
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
    "metered_h",
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

Held = dict[str, tuple[float, float]]
"""Asset → (value, plant time of its telemetry)."""


class Meter:
    """Integrates metered power and line current into the day's KPIs."""

    def __init__(self, site: SiteModel, *, stale_after_s: float) -> None:
        self.site = site
        self.stale_after_s = stale_after_s
        self._available: Held = {}
        self._delivered: Held = {}
        self._grid: Held = {}
        self._shed: Held = {}
        self._line_mw: Held = {}
        self._line_t_per_h: Held = {}
        self._bess: Held = {}
        self._captive_mw: Held = {}
        self._lines = {ln.name: ln for ln in site.lines}
        self._target_t_per_h = {
            ln.name: ln.production_t_per_h(ln.nominal_current_ka) for ln in site.lines
        }
        """Each line's nominal production: the target of the time its meter was heard."""
        self._captive = {c.name: c for c in site.captive}
        self._offset_s = site.utc_offset_h * HOUR_S
        self._t_s: float | None = None
        self._closed_s = -math.inf
        """The latest hour a reading was closed at: none is ever closed twice."""
        self.totals: dict[str, float] = dict.fromkeys(TOTAL_KEYS, 0.0)
        self.readings: list[tuple[float, dict[str, float]]] = []
        """Closed hourly readings (plant time of the hour, the day's KPIs so far), oldest
        first, until the caller takes them."""

    def observe(self, kind: str, asset: str, payload: msgspec.Struct, ts: float) -> None:
        """Telemetry stamped ``ts``: integrate up to ``ts`` on the values held, then take it."""
        self.advance(ts)
        if isinstance(payload, RenewableTelemetry):
            self._available[asset] = (payload.available_mw, ts)
            self._delivered[asset] = (payload.power_mw, ts)
        elif isinstance(payload, GridTelemetry):
            self._grid[asset] = (payload.power_mw, ts)
            self._shed[asset] = (payload.shed_mw, ts)
        elif isinstance(payload, PotlineTelemetry):
            self._line_mw[asset] = (payload.power_mw, ts)
            line = self._lines.get(asset)
            if line is not None:
                rate = line.production_t_per_h(payload.current_ka, payload.pots_online)
                self._line_t_per_h[asset] = (rate, ts)
        elif isinstance(payload, BessTelemetry):
            self._bess[asset] = (payload.power_mw, ts)
        elif isinstance(payload, CaptiveTelemetry):
            self._captive_mw[asset] = (payload.power_mw, ts)

    def advance(self, ts: float) -> None:
        """Integrate up to ``ts``, closing a reading at each full local hour on the way."""
        if self._t_s is None:
            self._t_s = ts
            return
        while ts > self._t_s:
            hour_s = self._next_hour_s(self._t_s)
            self._integrate(min(ts, hour_s))
            if self._t_s >= hour_s:
                if hour_s > self._closed_s:
                    self.readings.append((hour_s, self.table()))
                    self._closed_s = hour_s
                if self.site.local_hour(hour_s) == 0:
                    self.totals = dict.fromkeys(TOTAL_KEYS, 0.0)

    def rebase(self, ts: float) -> None:
        """After a clock jump: go on from ``ts`` without integrating the jump; in another local
        day, the day's totals start again (the day jumped over or into is not whole)."""
        if self._t_s is not None and self.site.local_day(ts) != self.site.local_day(self._t_s):
            self.totals = dict.fromkeys(TOTAL_KEYS, 0.0)
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

    def _next_hour_s(self, t_s: float) -> float:
        """The next full hour of local time after ``t_s`` (half-hour time zones included)."""
        return (math.floor((t_s + self._offset_s) / HOUR_S) + 1) * HOUR_S - self._offset_s

    def _sum(self, held: Held, to_s: float) -> float:
        """Sum of the values still fresh at ``to_s``."""
        oldest_s = to_s - self.stale_after_s
        return sum(v for v, seen_s in held.values() if seen_s >= oldest_s)

    def _integrate(self, to_s: float) -> None:
        assert self._t_s is not None
        dt_h = (to_s - self._t_s) / HOUR_S
        self._t_s = to_s
        if dt_h <= 0.0:
            return
        site, tot = self.site, self.totals
        oldest_s = to_s - self.stale_after_s
        heard_lines = [a for a, (_, seen_s) in self._line_t_per_h.items() if seen_s >= oldest_s]
        held = (self._available, self._grid, self._line_mw, self._bess, self._captive_mw)
        if not any(seen_s >= oldest_s for h in held for _, seen_s in h.values()):
            return  # every meter is silent: no time metered, no target, no auxiliary load
        fresh = [self._sum(h, to_s) for h in (self._available, self._delivered, self._grid)]
        available, delivered, grid = fresh
        imported, exported = max(grid, 0.0), max(-grid, 0.0)
        charging = sum(-p for p, seen_s in self._bess.values() if p < 0.0 and seen_s >= oldest_s)
        captive = {a: v for a, (v, seen_s) in self._captive_mw.items() if seen_s >= oldest_s}
        tot["metered_h"] += dt_h
        tot["renewable_available_mwh"] += available * dt_h
        tot["renewable_used_mwh"] += max(delivered - exported, 0.0) * dt_h
        tot["curtailed_mwh"] += max(available - delivered, 0.0) * dt_h
        load = self._sum(self._line_mw, to_s) + site.auxiliary_load_mw + charging
        tot["site_consumption_mwh"] += load * dt_h
        tot["grid_import_mwh"] += imported * dt_h
        tot["grid_export_mwh"] += exported * dt_h
        tot["captive_mwh"] += sum(captive.values()) * dt_h
        tot["shed_mwh"] += self._sum(self._shed, to_s) * dt_h
        tot["aluminium_t"] += self._sum(self._line_t_per_h, to_s) * dt_h
        tot["aluminium_target_t"] += dt_h * sum(self._target_t_per_h[a] for a in heard_lines)
        co2 = cost = 0.0
        for name, mw in captive.items():
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
