"""Plausibility: telemetry is checked against the physics the controller already knows.

A meter can be wrong, or lie, within the contract's bounds.  Each check below compares a value
with what is physically possible given the site description and the stream's own history;
a value that fails is *suspect*: it is replaced by the nearest possible value before anything
else (tracker, forecasters, safety layer, meter) sees it, the check is counted, and the status
says so while the stream stays suspect.

============  ======================================================================  =========
stream        check                                                                   value used
============  ======================================================================  =========
BESS          ``soc_frac`` against the SOC integrated from its own ``power_mw`` (with  the
              its round-trip efficiency) since it last agreed, within                  nearest
              :data:`SOC_TOLERANCE_FRAC` plus :data:`SOC_DRIFT_FRAC_PER_H` of drift;   inside
              ``power_mw`` within its rated power                                      the bound
renewable     ``available_mw`` at most the site's capacity (+ :data:`CAPACITY_MARGIN`); the bound
              PV also at most capacity x (:data:`PV_MARGIN_FRAC` +
              :data:`PV_CLEAR_SKY_GAIN` x clear-sky GHI / 1000 W/m²)
pot-line      ``current_ka`` at most the previous measurement plus a ramp's worth      the bound
              since, or the last setpoint or nominal current if higher (a line may
              drop at any time, a trip or load shedding, and come back to what it was
              sent or to its plant-side default; it cannot rise faster than its
              rectifiers otherwise), and at most its hard maximum, each
              + :data:`CURRENT_TOLERANCE_FRAC` of nominal
============  ======================================================================  =========

The PV bound was measured on the simulator (14 days, seeds 1-3, summer and winter, the three
built-in scenarios): the highest output was 0.038 of capacity above 1.25 x clear-sky GHI.  A
lie inside the physics (PV at nameplate under a clear noon sky, a line reporting the current it
was told to draw) cannot be told by physics and passes; docs/reliability.md says what else
limits the harm.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Final

import msgspec
import numpy as np

from controller.site import SiteModel
from forecasting.solar import SolarGeometry
from wire import BessTelemetry, PotlineTelemetry, RenewableTelemetry

SOC_TOLERANCE_FRAC: Final = 0.03
SOC_DRIFT_FRAC_PER_H: Final = 0.02
CAPACITY_MARGIN: Final = 0.02
PV_MARGIN_FRAC: Final = 0.08
PV_CLEAR_SKY_GAIN: Final = 1.25
CURRENT_TOLERANCE_FRAC: Final = 0.02
CLEAR_SKY_KNOT_S: Final = 300.0
CHECKS: Final = ("bess_soc", "bess_power", "renewable_capacity", "pv_clear_sky", "potline_current")
"""The checks, by the name they are counted under."""


@dataclass
class _Soc:
    estimate: float
    agreed_ts: float
    ts: float
    power_mw: float


@dataclass
class Plausibility:
    """Checks telemetry against physics; keeps what each stream's history needs."""

    site: SiteModel
    suspects: Counter[str] = field(default_factory=Counter)
    """Failed checks by name (``bess_soc``, ``bess_power``, ``renewable_capacity``,
    ``pv_clear_sky``, ``potline_current``)."""
    suspect_now: dict[tuple[str, str], str] = field(default_factory=dict)
    """Streams suspect at their last message → why (for the status)."""

    def __post_init__(self) -> None:
        self._bess = {b.name: b for b in self.site.bess}
        self._renewable = {r.name: r for r in self.site.renewable}
        self._lines = {ln.name: ln for ln in self.site.lines}
        self._soc: dict[str, _Soc] = {}
        self._current: dict[str, tuple[float, float]] = {}
        """Line → (current used [kA], ts) of its last message."""
        self._geometry: SolarGeometry | None = None
        self._clear: dict[int, float] = {}

    def check(
        self, kind: str, asset: str, payload: msgspec.Struct, setpoint: float | None
    ) -> msgspec.Struct:
        """``payload`` as the controller may use it: unchanged when plausible, else with each
        suspect value replaced by the nearest possible one.  ``setpoint``: the last value sent
        to this asset, if any."""
        problems: list[str] = []
        out = payload
        if isinstance(payload, BessTelemetry) and asset in self._bess:
            out = self._bess_check(asset, payload, problems)
        elif isinstance(payload, RenewableTelemetry) and asset in self._renewable:
            out = self._renewable_check(asset, payload, problems)
        elif isinstance(payload, PotlineTelemetry) and asset in self._lines:
            out = self._line_check(asset, payload, setpoint, problems)
        key = (kind, asset)
        if problems:
            self.suspect_now[key] = "; ".join(problems)
        else:
            self.suspect_now.pop(key, None)
        return out

    def reasons(self) -> list[str]:
        return [
            f"{kind} {asset}: suspect telemetry ({why})"
            for (kind, asset), why in sorted(self.suspect_now.items())
        ]

    def rebase(self) -> None:
        """After a clock jump: histories on the old time base start again."""
        self._soc.clear()
        self._current.clear()

    # --- the checks ----------------------------------------------------------------------

    def _bess_check(self, asset: str, p: BessTelemetry, problems: list[str]) -> BessTelemetry:
        spec = self._bess[asset]
        power = p.power_mw
        if abs(power) > spec.power_mw * (1.0 + CAPACITY_MARGIN):
            self.suspects["bess_power"] += 1
            power = math.copysign(spec.power_mw, power)
            problems.append(f"power {p.power_mw:.1f} MW beyond its rating {spec.power_mw:g}")
        state = self._soc.get(asset)
        soc = p.soc_frac
        if state is None:
            self._soc[asset] = _Soc(soc, p.ts, p.ts, power)
        else:
            dt_h = max(p.ts - state.ts, 0.0) / 3600.0
            eff = math.sqrt(spec.round_trip_efficiency)
            held = state.power_mw
            delta_mwh = -held / eff * dt_h if held > 0.0 else -held * eff * dt_h
            state.estimate = min(max(state.estimate + delta_mwh / spec.energy_mwh, 0.0), 1.0)
            state.ts, state.power_mw = p.ts, power
            tol = SOC_TOLERANCE_FRAC + SOC_DRIFT_FRAC_PER_H * (p.ts - state.agreed_ts) / 3600.0
            if abs(soc - state.estimate) <= tol:
                state.estimate, state.agreed_ts = soc, p.ts
            else:
                self.suspects["bess_soc"] += 1
                used = min(max(soc, state.estimate - tol), state.estimate + tol)
                problems.append(
                    f"soc_frac {soc:.3f}, its power says {state.estimate:.3f}; using {used:.3f}"
                )
                soc = used
        if soc == p.soc_frac and power == p.power_mw:
            return p
        return msgspec.structs.replace(p, soc_frac=soc, power_mw=power)

    def _renewable_check(
        self, asset: str, p: RenewableTelemetry, problems: list[str]
    ) -> RenewableTelemetry:
        spec = self._renewable[asset]
        bound = spec.capacity_mw * (1.0 + CAPACITY_MARGIN)
        check = "renewable_capacity"
        if spec.kind == "pv":
            ghi_clear = float(self._clear_sky(p.ts))
            pv_bound = spec.capacity_mw * (PV_MARGIN_FRAC + PV_CLEAR_SKY_GAIN * ghi_clear / 1e3)
            if pv_bound < bound:
                bound, check = pv_bound, "pv_clear_sky"
        if p.available_mw <= bound and p.power_mw <= bound:
            return p
        self.suspects[check] += 1
        problems.append(f"available {p.available_mw:.0f} MW over the possible {bound:.0f}")
        return msgspec.structs.replace(
            p, available_mw=min(p.available_mw, bound), power_mw=min(p.power_mw, bound)
        )

    def _line_check(
        self, asset: str, p: PotlineTelemetry, setpoint: float | None, problems: list[str]
    ) -> PotlineTelemetry:
        line = self._lines[asset]
        tol = CURRENT_TOLERANCE_FRAC * line.nominal_current_ka
        bound = line.hard_max_ka
        last = self._current.get(asset)
        if last is not None:
            # back up to a value it may have been sent to at once: the last setpoint, or the
            # nominal current its plant-side watchdog returns it to (after a shed, a trip)
            prev_ka, prev_ts = last
            reach = prev_ka + line.ramp_ka_per_h * max(p.ts - prev_ts, 0.0) / 3600.0
            targets = [line.nominal_current_ka] + ([setpoint] if setpoint is not None else [])
            bound = min(bound, max(reach, *targets))
        bound += tol
        current = p.current_ka
        if current > bound:
            self.suspects["potline_current"] += 1
            problems.append(f"current {current:.1f} kA over the possible {bound:.1f}")
            current = bound
        self._current[asset] = (current, p.ts)
        if current == p.current_ka:
            return p
        return msgspec.structs.replace(p, current_ka=current)

    def _clear_sky(self, ts: float) -> float:
        """Clear-sky GHI [W/m²], the higher of the two 5-minute knots around ``ts`` (cached:
        telemetry comes every second)."""
        knot = math.floor(ts / CLEAR_SKY_KNOT_S)
        value = self._clear.get(knot)
        if value is None:
            if self._geometry is None:
                s = self.site
                self._geometry = SolarGeometry(s.latitude_deg, s.longitude_deg, s.altitude_m)
            ends = np.array([knot, knot + 1], dtype=float) * CLEAR_SKY_KNOT_S
            value = float(np.max(self._geometry.ghi_clear_wm2(ends)))
            if len(self._clear) > 1000:
                self._clear.clear()
            self._clear[knot] = value
        return value
