"""Battery storage, captive coal unit and the grid connection: small state machines per step."""

from __future__ import annotations

import math

from simulator.scenario import BessSpec, CaptiveSpec, GridSpec


class Bess:
    """Battery: SOC with one-way efficiencies √RTE, power and SOC limits.

    ``power_mw`` is positive when discharging into the site, negative when charging::

        E[t+1] = E[t] − dt·P⁺/η_d + dt·P⁻·η_c,    η_c = η_d = √RTE
    """

    def __init__(self, spec: BessSpec) -> None:
        self.spec = spec
        self.eta = math.sqrt(spec.round_trip_efficiency)
        self.energy_mwh = spec.soc_initial_frac * spec.energy_mwh
        self.power_mw = 0.0

    @property
    def soc_frac(self) -> float:
        return self.energy_mwh / self.spec.energy_mwh

    def feasible_mw(self, want_mw: float, dt_s: float) -> float:
        """The power closest to ``want_mw`` that the power and SOC limits allow for ``dt_s``."""
        s = self.spec
        p = max(-s.power_mw, min(s.power_mw, want_mw))
        h = dt_s / 3600.0
        if p > 0.0:
            room_mwh = max(self.energy_mwh - s.soc_min_frac * s.energy_mwh, 0.0)
            p = min(p, room_mwh * self.eta / h)
        elif p < 0.0:
            room_mwh = max(s.soc_max_frac * s.energy_mwh - self.energy_mwh, 0.0)
            p = max(p, -room_mwh / self.eta / h)
        return p

    def step(self, power_mw: float, dt_s: float) -> None:
        h = dt_s / 3600.0
        if power_mw >= 0.0:
            self.energy_mwh -= power_mw * h / self.eta
        else:
            self.energy_mwh -= power_mw * h * self.eta
        self.power_mw = power_mw


class Captive:
    """Captive coal unit: output within [min stable, max], moving at most its ramp rate."""

    def __init__(self, spec: CaptiveSpec) -> None:
        self.spec = spec
        start = spec.min_stable_mw if spec.initial_mw is None else spec.initial_mw
        self.power_mw = min(max(start, spec.min_stable_mw), spec.max_mw)

    def reachable_mw(self, want_mw: float, dt_s: float) -> float:
        s = self.spec
        ramp_mw = s.ramp_frac_per_min * s.max_mw * dt_s / 60.0
        target = min(max(want_mw, s.min_stable_mw), s.max_mw)
        return min(max(target, self.power_mw - ramp_mw), self.power_mw + ramp_mw)


def local_hour(ts: float, utc_offset_h: float) -> int:
    return int(((ts / 3600.0) + utc_offset_h) % 24.0)


def import_price_per_mwh(grid: GridSpec, ts: float, utc_offset_h: float) -> float:
    """Time-of-use import price at plant time ``ts`` [CNY/MWh]."""
    hour = local_hour(ts, utc_offset_h)
    t = grid.tariff
    if hour in t.peak_hours:
        return t.peak_per_mwh
    if hour in t.valley_hours:
        return t.valley_per_mwh
    return t.flat_per_mwh
