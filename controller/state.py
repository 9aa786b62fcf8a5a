"""What the controller knows about the plant, estimated from telemetry.

The tracker integrates each pot-line's heat budget and exchanger lag with the same recursions
the planner uses (:mod:`controller.lineheat`), counts production since local midnight and the
deep/high band usage of the last 24 h, and remembers the renewable availability it has seen.
Heat is computed from the planner's line model at the measured current, not from measured
voltages, so that model bias (anode effects, resistance spread) cannot drift into the budget.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import msgspec
import numpy as np

from controller.contract import (
    BessTelemetry,
    CaptiveTelemetry,
    PotlineTelemetry,
    RenewableTelemetry,
)
from controller.lineheat import heat_budget, hx_lag
from controller.planning import FloatArray, LineState, PlantState
from controller.site import LineModel, SiteModel

DAY_S = 86_400.0
HISTORY_S = 3 * DAY_S
"""Renewable history kept for persistence forecasts."""


@dataclass
class _Line:
    model: LineModel
    t_s: float | None = None
    """Integrated up to here."""
    seen_s: float | None = None
    """Time of the last telemetry: what staleness is judged by."""
    current_ka: float = 0.0
    pots_online: int | None = None
    heat_budget_mwh: float = 0.0
    hx_lag_mw: float = 0.0
    produced_today_t: float = 0.0
    day: int | None = None
    usage: deque[tuple[float, float, float]] = field(default_factory=deque)
    """(t_s, deep full-depth hours, high full-depth hours) per interval, last 24 h."""

    def advance(self, t_s: float, site: SiteModel) -> None:
        """Integrate from the last sample to ``t_s`` at the last current (zero-order hold)."""
        if self.t_s is None:
            # Nothing seen yet today: assume the line ran at nominal since local midnight, so a
            # fresh start does not chase a day's production it merely did not witness.
            since_midnight_h = (t_s / 3600.0 + site.utc_offset_h) % 24.0
            self.day = site.local_day(t_s)
            self.produced_today_t = (
                self.model.production_t_per_h(self.model.nominal_current_ka) * since_midnight_h
            )
            self.t_s = t_s
            return
        if t_s <= self.t_s:
            return
        start = self.t_s
        # split at local midnight so production resets exactly there
        midnight_s = (site.local_day(start) + 1) * DAY_S - site.utc_offset_h * 3600.0
        for a, b in ((start, min(t_s, midnight_s)), (max(start, midnight_s), t_s)):
            if b > a:
                self._integrate(a, b, site)
        self.t_s = t_s

    def _integrate(self, a_s: float, b_s: float, site: SiteModel) -> None:
        m = self.model
        dt_h = (b_s - a_s) / 3600.0
        day = site.local_day(a_s)
        if self.day != day:
            self.day, self.produced_today_t = day, 0.0
        self.produced_today_t += m.production_t_per_h(self.current_ka, self.pots_online) * dt_h
        dq_mw = m.heat_mw(self.current_ka) - m.heat_mw(m.nominal_current_ka)
        # the recursions are built for this interval's length: a variable step is exact
        hx, hx_in = hx_lag(m, dt_h)
        u = self.hx_lag_mw
        self.heat_budget_mwh = heat_budget(m, dt_h).step(self.heat_budget_mwh, dt_h * (dq_mw - u))
        self.hx_lag_mw = hx.step(u, hx_in * dq_mw)
        i_n = m.nominal_current_ka
        depth_deep = max((m.band_low_frac - m.deep_low_frac) * i_n, 1e-9)
        depth_high = max((m.high_max_frac - m.band_high_frac) * i_n, 1e-9)
        deep = max(m.band_low_frac * i_n - self.current_ka, 0.0) / depth_deep * dt_h
        high = max(self.current_ka - m.band_high_frac * i_n, 0.0) / depth_high * dt_h
        self.usage.append((b_s, deep, high))
        while self.usage and self.usage[0][0] < b_s - DAY_S:
            self.usage.popleft()


class StateTracker:
    """Builds a :class:`PlantState` from decoded telemetry.  Pure: time comes from payloads."""

    def __init__(self, site: SiteModel, *, stale_after_s: float = 300.0) -> None:
        self.site = site
        self.stale_after_s = stale_after_s
        self._lines = {m.name: _Line(m) for m in site.lines}
        self._soc: dict[str, float] = {}
        self._captive: dict[str, float] = {}
        self._renewable: dict[str, float] = {}
        self._history: deque[tuple[float, float]] = deque()
        self._latest_s = -np.inf

    def observe_telemetry(self, kind: str, asset: str, payload: msgspec.Struct) -> None:
        """Take one decoded telemetry payload (other kinds and unknown assets are ignored)."""
        if isinstance(payload, PotlineTelemetry) and asset in self._lines:
            line = self._lines[asset]
            line.advance(payload.ts, self.site)
            line.seen_s = payload.ts
            line.current_ka = payload.current_ka
            line.pots_online = payload.pots_online
        elif isinstance(payload, BessTelemetry):
            self._soc[asset] = payload.soc_frac
        elif isinstance(payload, CaptiveTelemetry):
            self._captive[asset] = payload.power_mw
        elif isinstance(payload, RenewableTelemetry):
            self._renewable[asset] = payload.available_mw
            total = sum(self._renewable.values())
            if self._history and self._history[-1][0] == payload.ts:
                self._history[-1] = (payload.ts, total)  # another plant, the same instant
            elif not self._history or payload.ts > self._history[-1][0]:
                self._history.append((payload.ts, total))
                while self._history and self._history[0][0] < payload.ts - HISTORY_S:
                    self._history.popleft()
        else:
            return
        self._latest_s = max(self._latest_s, payload.ts)

    def renewable_history(self) -> tuple[FloatArray, FloatArray]:
        """(times [s], total available renewable power [MW]) seen so far, oldest first."""
        if not self._history:
            return np.empty(0), np.empty(0)
        arr = np.asarray(self._history, dtype=float)
        return arr[:, 0], arr[:, 1]

    def state(self, t_s: float) -> PlantState:
        lines = {}
        for name, line in self._lines.items():
            fresh = line.seen_s is not None and t_s - line.seen_s <= self.stale_after_s
            if line.t_s is not None:
                line.advance(t_s, self.site)
            lines[name] = LineState(
                current_ka=line.current_ka
                if line.t_s is not None
                else line.model.nominal_current_ka,
                heat_budget_mwh=line.heat_budget_mwh,
                hx_lag_mw=line.hx_lag_mw,
                produced_today_t=line.produced_today_t,
                deep_used_h=sum(u[1] for u in line.usage),
                high_used_h=sum(u[2] for u in line.usage),
                pots_online=line.pots_online,
                available=fresh,
            )
        return PlantState(
            t_s=t_s, lines=lines, bess_soc_frac=dict(self._soc), captive_mw=dict(self._captive)
        )
