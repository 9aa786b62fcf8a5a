"""Value types of the forecasting package: what goes in (a weather forecast) and what comes out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]
Kind = Literal["pv", "wind", "hydro"]
KINDS: Final[tuple[Kind, ...]] = ("pv", "wind", "hydro")

WEATHER_FIELD: Final[dict[Kind, str]] = {
    "pv": "ghi_wm2",
    "wind": "wind_speed_ms",
    "hydro": "flow_m3s",
}
"""The weather quantity that drives each kind: what its plant measures and what an NWP forecasts."""


def as_float_array(values: npt.ArrayLike) -> Array:
    """A new 1-D float64 array (a copy, so frozen values cannot change under the caller)."""
    return np.array(values, dtype=np.float64, ndmin=1).ravel()


@dataclass(frozen=True)
class QuantileForecast:
    """Available power of one plant at given valid times, as P10/P50/P90 [MW].

    Invariants (checked): equal shapes, 0 ≤ P10 ≤ P50 ≤ P90 ≤ capacity.
    """

    times_s: Array
    p10_mw: Array
    p50_mw: Array
    p90_mw: Array

    def __post_init__(self) -> None:
        n = self.times_s.shape
        if not (self.p10_mw.shape == self.p50_mw.shape == self.p90_mw.shape == n):
            raise ValueError("forecast arrays must all have the shape of times_s")
        if not (np.all(self.p10_mw >= 0.0) and np.all(self.p10_mw <= self.p50_mw)):
            raise ValueError("forecast quantiles must satisfy 0 ≤ p10 ≤ p50")
        if not np.all(self.p50_mw <= self.p90_mw):
            raise ValueError("forecast quantiles must satisfy p50 ≤ p90")

    @classmethod
    def point(cls, times_s: Array, p50_mw: Array) -> QuantileForecast:
        """A forecast without spread (the baselines'): all three quantiles equal."""
        return cls(times_s, p50_mw, p50_mw, p50_mw)


@dataclass(frozen=True)
class WeatherInput:
    """An NWP-like weather forecast as the forecasters see it.

    ``times_s`` are the valid times [UNIX s]; each series, when present, has their shape:
    global horizontal irradiance [W/m²], hub-height wind speed [m/s], river flow [m³/s].
    Non-finite values are allowed and ignored (they are holes in the forecast).
    """

    issued_s: float
    times_s: Array
    ghi_wm2: Array | None = None
    wind_speed_ms: Array | None = None
    flow_m3s: Array | None = None

    def __post_init__(self) -> None:
        for name in WEATHER_FIELD.values():
            series = getattr(self, name)
            if series is not None and series.shape != self.times_s.shape:
                raise ValueError(f"{name} must have the shape of times_s")

    def series(self, kind: Kind) -> Array | None:
        """The series that drives plants of ``kind``, or None."""
        value: Array | None = getattr(self, WEATHER_FIELD[kind])
        return value
