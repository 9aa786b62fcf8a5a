"""A PV plant's response to irradiance, learned from its own history.

Output is taken as P = min(PR · POA(GHI; β) · C / 1000 W/m², C): an equator-facing array of
unknown tilt β and performance ratio PR (temperature, soiling, inverter and wiring losses).
With GHI measured at the plant both are fitted by least squares over a tilt grid; without it
the array is taken as horizontal and PR follows the clear-sky envelope of the output.  The
fit gives the plant's clear-sky output, which defines its clear-sky index.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np

from forecasting.solar import DAY_S, KNOT_S, SolarGeometry, poa_wm2, tilted_normals
from forecasting.types import Array, as_float_array

TILTS_DEG: Final = np.arange(0.0, 61.0, 10.0)
"""Candidate tilts [°]: fixed-tilt arrays from flat roofs to high latitudes."""
DEFAULT_PR: Final = 0.80
"""Performance ratio before any data: a typical modern plant (IEC 61724 PR ~0.75–0.85)."""
MIN_GHI_WM2: Final = 50.0
"""Samples below this irradiance say more about shading and inverter start-up than about PR."""
CLIPPING_FRAC: Final = 0.97
"""Samples at or above this share of capacity are clipped and say nothing about PR."""
MIN_FIT_WEIGHT: Final = 50.0
"""Weighted samples before the fitted tilt replaces the default (≈ 4 h of daylight bins)."""
ENVELOPE_QUANTILE: Final = 0.95
"""Without GHI, PR is the 95th percentile of P / clear-sky output (clear moments set it)."""
MEMORY_S: Final = 14.0 * 86_400.0
"""Forgetting time of the fit [s]: PR drifts with season and soiling over weeks."""
_ENVELOPE_KEEP: Final = 2016
_CLEAR_CACHE_DAYS: Final = 16
_KNOT_OFFSETS_S: Final = np.arange(DAY_S / KNOT_S + 1) * KNOT_S


class PvPlantModel:
    """Fitted tilt and performance ratio of one PV plant; its output for any GHI."""

    def __init__(self, capacity_mw: float, geometry: SolarGeometry) -> None:
        self.capacity_mw = float(capacity_mw)
        self.geometry = geometry
        self._normals = tilted_normals(TILTS_DEG, geometry.latitude_deg)
        self._sxy = np.zeros(TILTS_DEG.size)
        self._sxx = np.zeros(TILTS_DEG.size)
        self._syy = np.zeros(TILTS_DEG.size)
        self._weight = 0.0
        self._ratios = np.empty(_ENVELOPE_KEEP)
        self._ratio_count = 0
        self._ratio_next = 0
        self._clock_s = -math.inf
        self.tilt_deg = 0.0
        self.performance_ratio = DEFAULT_PR
        self.fitted_on_ghi = False
        self._clear_cache: dict[tuple[int, float], Array] = {}

    def learn(self, t_s: Array, power_mw: Array, ghi_wm2: Array) -> None:
        """Learn from bin means of output [MW] and measured GHI [W/m²] (NaN: not measured)."""
        t, p, g = as_float_array(t_s), as_float_array(power_mw), as_float_array(ghi_wm2)
        if t.size == 0:
            return
        now = float(np.max(t))
        if math.isfinite(self._clock_s) and now > self._clock_s:
            decay = math.exp(-(now - self._clock_s) / MEMORY_S)
            self._sxy *= decay
            self._sxx *= decay
            self._syy *= decay
            self._weight *= decay
        self._clock_s = max(self._clock_s, now)
        sun = self.geometry.at(t)
        unclipped = np.isfinite(p) & (p < CLIPPING_FRAC * self.capacity_mw)
        use = unclipped & np.isfinite(g) & (g >= MIN_GHI_WM2) & (sun.up > 0.05)
        if use.any():
            poa = poa_wm2(g[use], sun.subset(use), self._normals) * self.capacity_mw / 1000.0
            y = p[use]
            self._sxy += poa @ y
            self._sxx += np.sum(poa * poa, axis=1)
            self._syy += float(y @ y)
            self._weight += float(use.sum())
        envelope = unclipped & (sun.ghi_clear_wm2 >= 4.0 * MIN_GHI_WM2)
        if envelope.any():
            clear = poa_wm2(sun.ghi_clear_wm2[envelope], sun.subset(envelope), self._normals[:1])
            for r in (p[envelope] / (clear[0] * self.capacity_mw / 1000.0)).tolist():
                self._ratios[self._ratio_next] = r
                self._ratio_next = (self._ratio_next + 1) % _ENVELOPE_KEEP
                self._ratio_count = min(self._ratio_count + 1, _ENVELOPE_KEEP)
        self._refit()

    def power_mw(self, t_s: Array, ghi_wm2: Array) -> Array:
        """Plant output [MW] for GHI [W/m²] at times t (NaN GHI gives NaN)."""
        t, g = as_float_array(t_s), as_float_array(ghi_wm2)
        ok = np.isfinite(g)
        out = np.full(t.size, np.nan)
        if ok.any():
            sun = self.geometry.at(t[ok])
            poa = poa_wm2(g[ok], sun, self._normal())[0]
            out[ok] = self._to_mw(poa)
        return out

    def clear_sky_mw(self, t_s: Array) -> Array:
        """Plant output under a clear sky [MW], interpolated between 5-minute knots."""
        t = as_float_array(t_s)
        day = np.floor(t / DAY_S).astype(np.int64)
        poa = np.empty(t.size)
        for d in np.unique(day).tolist():
            sel = day == d
            poa[sel] = np.interp(t[sel] - d * DAY_S, _KNOT_OFFSETS_S, self._clear_poa(d))
        return self._to_mw(poa)

    def _clear_poa(self, day: int) -> Array:
        """Clear-sky POA [W/m²] at the knots of one day, for the current tilt (cached)."""
        key = (day, self.tilt_deg)
        poa = self._clear_cache.get(key)
        if poa is None:
            sun = self.geometry.day_knots(day)
            poa = poa_wm2(sun.ghi_clear_wm2, sun, self._normal())[0]
            self._clear_cache[key] = poa
            if len(self._clear_cache) > _CLEAR_CACHE_DAYS:
                del self._clear_cache[next(iter(self._clear_cache))]
        return poa

    def _to_mw(self, poa: Array) -> Array:
        mw = self.performance_ratio * poa * self.capacity_mw / 1000.0
        return np.asarray(np.clip(mw, 0.0, self.capacity_mw), dtype=np.float64)

    def _normal(self) -> Array:
        return tilted_normals(np.array([self.tilt_deg]), self.geometry.latitude_deg)

    def _refit(self) -> None:
        if self._weight >= MIN_FIT_WEIGHT and np.all(self._sxx > 0.0):
            sse = self._syy - self._sxy**2 / self._sxx
            best = int(np.argmin(sse))
            self.tilt_deg = float(TILTS_DEG[best])
            self.performance_ratio = float(self._sxy[best] / self._sxx[best])
            self.fitted_on_ghi = True
        elif self._ratio_count >= MIN_FIT_WEIGHT:
            self.tilt_deg = 0.0
            ratios = self._ratios[: self._ratio_count]
            self.performance_ratio = float(np.quantile(ratios, ENVELOPE_QUANTILE))
            self.fitted_on_ghi = False
