"""What the controller knows about the plant, estimated from telemetry.

The tracker integrates each pot-line's heat budget and exchanger lag with the same recursions
the planner uses (:mod:`controller.planner.lineheat`), counts production since local midnight
and the deep/high band usage of the last 24 h, and keeps each renewable plant's latest
availability. Heat is computed from the planner's line model at the measured current, not
from measured voltages, so that model bias (anode effects, resistance spread) cannot drift
into the budget.

Beside the budget, each line's mean pot is observed (:class:`controller.thermal.BathObserver`):
bath temperature, superheat and ledge from the documented pot physics at the measured current,
corrected by the measured line voltage (the pots' own resistance control and anode effects),
which the budget leaves out.
"""

from __future__ import annotations

import functools
import math
from collections import deque
from dataclasses import dataclass, field

import msgspec
import numpy as np

from controller.planner.lineheat import heat_budget, heat_gain_h, hx_lag
from controller.planner.recursion import Recursion
from controller.planner.types import LineState, PlantState
from controller.site import LineModel, SiteModel
from controller.thermal import BathObserver
from wire import BessTelemetry, CaptiveTelemetry, PotlineTelemetry, RenewableTelemetry

DAY_S = 86_400.0
MAX_INTEGRATION_STEP_S = 60.0
"""Longer intervals (a telemetry gap, a restart) are integrated in steps of at most this."""


@functools.lru_cache(maxsize=256)
def _recursions(model: LineModel, dt_h: float) -> tuple[tuple[Recursion, float], Recursion, float]:
    """The exchanger-lag and heat-budget recursions for an interval and the budget's input
    weight g (:func:`heat_gain_h`), the same as the planner's: built once per length
    (telemetry comes at a steady rate, so a handful of lengths recur)."""
    return hx_lag(model, dt_h), heat_budget(model, dt_h), heat_gain_h(model, dt_h)


def bath_observer(model: LineModel) -> BathObserver:
    """A line's mean-pot observer, in the plant's steady state at nominal current."""
    return BathObserver(
        model.thermal,
        nominal_current_ka=model.nominal_current_ka,
        e0_v=model.e0_v,
        resistance_uohm=model.resistance_uohm,
        e_tn_v=model.e_tn_v,
        heat_exchangers=model.heat_exchangers,
        hx_time_constant_h=model.hx_time_constant_h,
    )


class LineSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """One line's integrated state, as the daemon's state file keeps it across a restart."""

    t_s: float
    current_ka: float
    heat_budget_mwh: float
    hx_lag_mw: float
    produced_today_t: float
    day: int
    usage: list[tuple[float, float, float]]
    bath: tuple[float, float, float, float] | None = None
    """The bath observer's (bath °C, ledge m, exchanger kW, ΔV V); None: start it afresh."""


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
    """(t_s, deep full-depth hours, high full-depth hours) per interval outside the continuous
    band, last 24 h."""
    bath: BathObserver = field(init=False)
    hold_until_s: float | None = None
    """After a restore: the restored current holds until here (its setpoint's validity), and
    the plant's watchdog has put the line back to nominal after it."""

    def __post_init__(self) -> None:
        self.bath = bath_observer(self.model)

    def advance(self, t_s: float, site: SiteModel) -> None:
        """Integrate from the last sample to ``t_s`` at the last current (zero-order hold)."""
        if self.hold_until_s is not None and self.t_s is not None and t_s > self.hold_until_s:
            self._advance(max(self.hold_until_s, self.t_s), site)
            self.current_ka = self.model.nominal_current_ka
            self.hold_until_s = None
        self._advance(t_s, site)

    def _advance(self, t_s: float, site: SiteModel) -> None:
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
            # Sub-steps: exact for a held current either way; they keep the band-usage window
            # fine-grained over a long gap.
            n = math.ceil((b - a) / MAX_INTEGRATION_STEP_S) if b > a else 0
            for i in range(n):
                self._integrate(a + (b - a) * i / n, a + (b - a) * (i + 1) / n, site)
        self.t_s = t_s

    def _integrate(self, a_s: float, b_s: float, site: SiteModel) -> None:
        m = self.model
        dt_h = (b_s - a_s) / 3600.0
        day = site.local_day(a_s)
        if self.day != day:
            self.day, self.produced_today_t = day, 0.0
        self.produced_today_t += m.production_t_per_h(self.current_ka, self.pots_online) * dt_h
        dq_mw = m.heat_mw(self.current_ka) - m.heat_mw(m.nominal_current_ka)
        # the recursions are built for this interval's length, and exact for it (the current
        # held): the tracker and the planner integrate the same model
        (hx, hx_in), budget, gain_h = _recursions(m, dt_h)
        u = self.hx_lag_mw
        self.heat_budget_mwh = budget.step(self.heat_budget_mwh, gain_h * (dq_mw - u))
        self.hx_lag_mw = hx.step(u, hx_in * dq_mw)
        self.bath.step(self.current_ka, b_s - a_s)
        i_n = m.nominal_current_ka
        depth_deep = max((m.band_low_frac - m.deep_low_frac) * i_n, 1e-9)
        depth_high = max((m.high_max_frac - m.band_high_frac) * i_n, 1e-9)
        deep = max(m.band_low_frac * i_n - self.current_ka, 0.0) / depth_deep * dt_h
        high = max(self.current_ka - m.band_high_frac * i_n, 0.0) / depth_high * dt_h
        if deep > 0.0 or high > 0.0:  # only the intervals outside the band: sums stay short
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
        self._latest_s = -np.inf

    def observe_telemetry(self, kind: str, asset: str, payload: msgspec.Struct) -> None:
        """Take one decoded telemetry payload (other kinds and unknown assets are ignored)."""
        if isinstance(payload, PotlineTelemetry) and asset in self._lines:
            line = self._lines[asset]
            line.advance(payload.ts, self.site)
            line.seen_s = payload.ts
            line.current_ka = payload.current_ka
            line.pots_online = payload.pots_online
            if payload.pots_online > 0:
                line.bath.measure_voltage(
                    payload.current_ka, payload.voltage_v / payload.pots_online
                )
        elif isinstance(payload, BessTelemetry):
            self._soc[asset] = payload.soc_frac
        elif isinstance(payload, CaptiveTelemetry):
            self._captive[asset] = payload.power_mw
        elif isinstance(payload, RenewableTelemetry):
            self._renewable[asset] = payload.available_mw
        else:
            return
        self._latest_s = max(self._latest_s, payload.ts)

    def snapshot(self) -> dict[str, LineSnapshot]:
        """Each line's integrated state (lines never seen are left out)."""
        return {
            name: LineSnapshot(
                t_s=line.t_s,
                current_ka=line.current_ka,
                heat_budget_mwh=line.heat_budget_mwh,
                hx_lag_mw=line.hx_lag_mw,
                produced_today_t=line.produced_today_t,
                day=line.day if line.day is not None else self.site.local_day(line.t_s),
                usage=list(line.usage),
                # to a µK, nm, mW, nV: what matters, and short in the state file
                bath=(
                    round(line.bath.bath_c, 6),
                    round(line.bath.ledge_m, 9),
                    round(line.bath.hx_kw, 6),
                    round(line.bath.delta_v, 9),
                ),
            )
            for name, line in self._lines.items()
            if line.t_s is not None
        }

    def restore(self, snapshots: dict[str, LineSnapshot], *, hold_until_s: float) -> list[str]:
        """Continue from a snapshot: the next telemetry integrates the gap, at the restored
        current until ``hold_until_s`` (the last setpoint's validity) and nominal after it.
        Returns the names of the lines restored (unknown names are ignored)."""
        restored = []
        for name, snap in snapshots.items():
            line = self._lines.get(name)
            if line is None:
                continue
            line.t_s = snap.t_s
            line.current_ka = snap.current_ka
            line.heat_budget_mwh = snap.heat_budget_mwh
            line.hx_lag_mw = snap.hx_lag_mw
            line.produced_today_t = snap.produced_today_t
            line.day = snap.day
            line.usage = deque(tuple(u) for u in snap.usage)  # type: ignore[misc]
            if snap.bath is not None:
                b = line.bath
                b.bath_c, b.ledge_m, b.hx_kw, b.delta_v = snap.bath
            line.hold_until_s = hold_until_s
            restored.append(name)
        return restored

    @property
    def renewable_available_mw(self) -> float:
        """The latest total renewable availability [MW] (0 before any was seen)."""
        return sum(self._renewable.values())

    def rebase(self, t_s: float) -> None:
        """The plant's clock jumped to ``t_s`` (either way): integrate on from there, keeping
        the budgets; the jump itself is not integrated (it is not time the plant ran)."""
        for line in self._lines.values():
            if line.t_s is not None:
                line.t_s = t_s
            if line.seen_s is not None:
                line.seen_s = t_s
            while line.usage and line.usage[-1][0] > t_s:
                line.usage.pop()
        self._latest_s = t_s

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
                bath_c=line.bath.bath_c,
                superheat_k=line.bath.superheat_k,
                ledge_cm=line.bath.ledge_m * 100.0,
            )
        return PlantState(
            t_s=t_s, lines=lines, bess_soc_frac=dict(self._soc), captive_mw=dict(self._captive)
        )
