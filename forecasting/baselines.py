"""Reference forecasts a model must beat: persistence, smart persistence, diurnal climatology.

They take observations like :class:`PlantForecaster` (same ``observe``/``observe_weather``/
``forecast``), ignore weather forecasts, and give a point forecast (P10 = P50 = P90).
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np

from forecasting.features import window_bins
from forecasting.history import BIN_S, BinnedHistory, Frame
from forecasting.kinds import MIN_SCALE
from forecasting.pvmodel import PvPlantModel
from forecasting.solar import DAY_S, SolarGeometry
from forecasting.types import Array, Kind, QuantileForecast, WeatherInput, as_float_array

CLIMATE_DAYS: Final = 3
"""Days averaged by the diurnal climatology."""


class _Baseline:
    def __init__(self, capacity_mw: float) -> None:
        self.capacity_mw = float(capacity_mw)
        self._history = BinnedHistory()

    def observe(self, t_s: float, power_mw: float, measurement: float | None = None) -> None:
        if math.isfinite(power_mw):
            power_mw = min(power_mw, self.capacity_mw)
        self._history.add(t_s, power_mw, measurement)

    def observe_weather(self, weather: WeatherInput) -> None:
        """Baselines ignore weather forecasts."""

    def forecast(self, issue_s: float, times_s: Array) -> QuantileForecast:
        times = as_float_array(times_s)
        if self._history.newest_bin < 0:
            return QuantileForecast.point(times, np.zeros(times.size))
        frame = self._history.frame()
        last = min(math.floor(issue_s / BIN_S) - frame.first_bin, frame.power_mw.size - 1)
        p50 = np.clip(self._point(frame, last, issue_s, times), 0.0, self.capacity_mw)
        return QuantileForecast.point(times, p50)

    def _point(self, frame: Frame, last: int, issue_s: float, times: Array) -> Array:
        raise NotImplementedError

    def _recent_mean(self, values: Array, last: int) -> float:
        """Mean of the last window of bins with a value, ending at the newest such bin."""
        idx = np.flatnonzero(np.isfinite(values[: max(last + 1, 0)]))
        if idx.size == 0:
            return math.nan
        end = idx[-1]
        window = values[max(end - window_bins(self._history.spacing_s()) + 1, 0) : end + 1]
        return float(np.nanmean(window))


class Persistence(_Baseline):
    """Output stays at the mean of the last 15 minutes observed."""

    def _point(self, frame: Frame, last: int, issue_s: float, times: Array) -> Array:
        now = self._recent_mean(frame.power_mw, last)
        return np.full(times.size, 0.0 if math.isnan(now) else now)


class SmartPersistence(_Baseline):
    """PV: the clear-sky index of the last daylight 15 minutes, times the clear-sky output at
    each valid time (the clear-sky model is fitted like :class:`PvPlantModel` does for the
    forecaster, so the baseline is as strong as it can be).  Other kinds: persistence."""

    def __init__(
        self,
        kind: Kind,
        capacity_mw: float,
        *,
        latitude_deg: float,
        longitude_deg: float,
        altitude_m: float = 0.0,
    ) -> None:
        super().__init__(capacity_mw)
        self._pv = (
            PvPlantModel(capacity_mw, SolarGeometry(latitude_deg, longitude_deg, altitude_m))
            if kind == "pv"
            else None
        )
        self._learned_bin = -1

    def _point(self, frame: Frame, last: int, issue_s: float, times: Array) -> Array:
        if self._pv is None:
            now = self._recent_mean(frame.power_mw, last)
            return np.full(times.size, 0.0 if math.isnan(now) else now)
        complete = self._history.newest_bin - 1 - frame.first_bin
        start = max(self._learned_bin + 1 - frame.first_bin, 0)
        if complete >= start:
            sl = slice(start, complete + 1)
            self._pv.learn(frame.centers_s[sl], frame.power_mw[sl], frame.measurement[sl])
            self._learned_bin = complete + frame.first_bin
        clear = self._pv.clear_sky_mw(frame.centers_s) / self.capacity_mw
        with np.errstate(invalid="ignore", divide="ignore"):
            index = np.where(
                clear >= MIN_SCALE, frame.power_mw / (self.capacity_mw * clear), np.nan
            )
        now = self._recent_mean(index, last)
        return (0.0 if math.isnan(now) else now) * self._pv.clear_sky_mw(times)


class DiurnalClimatology(_Baseline):
    """The mean output at the same time of day over the last three days known at the issue."""

    def _point(self, frame: Frame, last: int, issue_s: float, times: Array) -> Array:
        power = frame.power_mw[: max(last + 1, 0)]
        overall = float(np.nanmean(power)) if np.isfinite(power).any() else 0.0
        first_day = np.maximum(np.ceil((times - issue_s) / DAY_S), 1.0)
        total = np.zeros(times.size)
        count = np.zeros(times.size)
        for d in range(CLIMATE_DAYS):
            idx = frame.index(times - (first_day + d) * DAY_S)
            ok = (idx >= 0) & (idx <= last)
            vals = np.where(ok, frame.power_mw[np.clip(idx, 0, frame.power_mw.size - 1)], np.nan)
            seen = np.isfinite(vals)
            total += np.where(seen, vals, 0.0)
            count += seen
        return np.where(count > 0, total / np.maximum(count, 1.0), overall)
