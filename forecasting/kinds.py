"""What differs between PV, wind and hydro: the normalised output y and the weather background.

* PV: y is the plant's clear-sky index, output / clear-sky output (from :class:`PvPlantModel`),
  so the sun's daily course is taken out and what is left is the weather; the scale s is the
  clear-sky output as a share of capacity (zero at night).
* Wind and hydro: y is output / capacity (s = 1), and the weather forecast (wind speed, river
  flow) becomes a background y through a :class:`LearnedCurve` fitted on the plant's own
  (measured driver, output) pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Protocol

import numpy as np

from forecasting.curve import LearnedCurve
from forecasting.nwp import NwpStore
from forecasting.pvmodel import PvPlantModel
from forecasting.solar import SolarGeometry
from forecasting.types import Array, BoolArray, Kind

MIN_SCALE: Final = 0.05
"""PV bins whose clear-sky output is under 5 % of capacity (dawn, dusk) carry no usable index."""


@dataclass(frozen=True)
class Normalised:
    """Bins of history in the kind's terms: y, the scale s, and whether y is usable."""

    y: Array
    scale: Array
    valid: BoolArray


class KindModel(Protocol):
    kind: Kind
    capacity_mw: float
    y_max: float
    """Largest meaningful y (the ceiling used to clip the candidates)."""

    def learn(self, t_s: Array, power_mw: Array, driver: Array, nwp: NwpStore) -> None: ...

    def normalise(self, t_s: Array, power_mw: Array) -> Normalised: ...

    def scale(self, t_s: Array) -> Array: ...

    def background(self, t_s: Array, driver: Array) -> Array: ...

    def corrected(
        self, t_s: Array, driver_t: Array, driver_nwp_now: Array, driver_now: Array
    ) -> Array: ...


class PvKind:
    """PV: clear-sky index of the plant's output; background from forecast GHI."""

    kind: Kind = "pv"
    y_max = 1.5
    """Cloud enhancement lifts GHI up to ~1.3 × clear sky; leave room above it."""

    def __init__(self, capacity_mw: float, geometry: SolarGeometry) -> None:
        self.capacity_mw = capacity_mw
        self.model = PvPlantModel(capacity_mw, geometry)

    def learn(self, t_s: Array, power_mw: Array, driver: Array, nwp: NwpStore) -> None:
        self.model.learn(t_s, power_mw, driver)

    def normalise(self, t_s: Array, power_mw: Array) -> Normalised:
        scale = self.scale(t_s)
        valid = np.isfinite(power_mw) & (scale >= MIN_SCALE)
        y = np.full(t_s.size, np.nan)
        y[valid] = power_mw[valid] / (self.capacity_mw * scale[valid])
        return Normalised(y, scale, valid)

    def scale(self, t_s: Array) -> Array:
        return self.model.clear_sky_mw(t_s) / self.capacity_mw

    def background(self, t_s: Array, driver: Array) -> Array:
        """Forecast GHI [W/m²] through the plant model, as a clear-sky index."""
        out = np.full(t_s.size, np.nan)
        ok = np.isfinite(driver)
        if ok.any():
            clear = self.model.clear_sky_mw(t_s[ok])
            power = self.model.power_mw(t_s[ok], driver[ok])
            out[ok] = np.where(clear > 0.0, power / np.maximum(clear, 1e-9), 0.0)
        return out

    def corrected(
        self, t_s: Array, driver_t: Array, driver_nwp_now: Array, driver_now: Array
    ) -> Array:
        # PV's error correction is made in y by the caller: GHI errors do not carry over
        # from one sun position to another, clear-sky index errors do.
        return np.full(t_s.size, np.nan)


class DriverKind:
    """Wind or hydro: output share of capacity; background from the forecast driver."""

    y_max = 1.0

    def __init__(self, kind: Kind, capacity_mw: float) -> None:
        self.kind = kind
        self.capacity_mw = capacity_mw
        self.curve = LearnedCurve(capacity_mw)
        self._measured = False

    def learn(self, t_s: Array, power_mw: Array, driver: Array, nwp: NwpStore) -> None:
        """Pairs of measured driver and output; without a measurement, the weather forecast
        of the bin's time stands in for it (a model-output-statistics curve)."""
        measured = np.isfinite(driver)
        self._measured = self._measured or bool(measured.any())
        if self._measured:
            self.curve.add(driver, power_mw)
        elif len(nwp):
            self.curve.add(nwp.value(t_s, t_s), power_mw)

    def normalise(self, t_s: Array, power_mw: Array) -> Normalised:
        valid = np.isfinite(power_mw)
        y = np.where(valid, power_mw / self.capacity_mw, np.nan)
        return Normalised(y, self.scale(t_s), valid)

    def scale(self, t_s: Array) -> Array:
        return np.ones(t_s.size)

    def background(self, t_s: Array, driver: Array) -> Array:
        if not self.curve.ready:
            return np.full(t_s.size, np.nan)
        return self.curve(driver) / self.capacity_mw

    def corrected(
        self, t_s: Array, driver_t: Array, driver_nwp_now: Array, driver_now: Array
    ) -> Array:
        """The forecast driver shifted by its current error, through the curve.

        Wind speed errors are additive (a weather system early or late); flow errors are
        relative (a wetter or drier catchment than forecast).
        """
        with np.errstate(invalid="ignore", divide="ignore"):
            if self.kind == "hydro":
                shifted = driver_t * driver_now / driver_nwp_now
            else:
                shifted = driver_t + driver_now - driver_nwp_now
        return self.background(t_s, np.maximum(shifted, 0.0))


def make_kind(kind: Kind, capacity_mw: float, geometry: SolarGeometry | None) -> KindModel:
    if kind == "pv":
        if geometry is None:
            raise ValueError("a PV forecaster needs the site's solar geometry")
        return PvKind(capacity_mw, geometry)
    if kind in ("wind", "hydro"):
        return DriverKind(kind, capacity_mw)
    raise ValueError(f"unknown kind {kind!r} (known: pv, wind, hydro)")
