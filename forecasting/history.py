"""Bounded observation history: incoming samples averaged into fixed 5-minute bins.

Samples may come at any resolution (1 s to 1 h), late or with gaps; each lands in the bin that
contains its time and the bin keeps sums, so memory and cost do not depend on the input rate.
Bins older than the span are dropped as time moves on.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Final

import numpy as np

from forecasting.types import Array, IntArray

BIN_S: Final = 300.0
"""History resolution [s]: finer than the planner's 15-minute step, coarse enough to be cheap."""
SPAN_S: Final = 7.0 * 86_400.0
"""Span kept [s]: three days of climatology behind a hindcast two days back, plus slack."""


@dataclass(frozen=True)
class Frame:
    """A contiguous copy of the history: one entry per bin, NaN where a bin has no sample.

    ``first_bin`` is the index (floor(t / BIN_S)) of entry 0; centres are mid-bin times [s].
    """

    first_bin: int
    centers_s: Array
    power_mw: Array
    measurement: Array

    def index(self, t_s: Array) -> IntArray:
        """Entry index of the bin containing each time (may be out of range)."""
        return np.floor(t_s / BIN_S).astype(np.int64) - self.first_bin


class BinnedHistory:
    """Bin-averaged power and weather measurement of one plant.

    Attributes
    ----------
    rejected : int
        Samples refused: non-finite or negative power, or older than the span.
    """

    def __init__(self, span_s: float = SPAN_S) -> None:
        self._n = math.ceil(span_s / BIN_S)
        self._first = 0
        self._newest = -1
        self._power_sum = np.zeros(self._n)
        self._power_count = np.zeros(self._n)
        self._meas_sum = np.zeros(self._n)
        self._meas_count = np.zeros(self._n)
        self._last_t = -math.inf
        self._spacings: deque[float] = deque(maxlen=32)
        self.rejected = 0

    @property
    def newest_bin(self) -> int:
        """Index of the latest bin that holds a sample; −1 before any."""
        return self._newest

    def spacing_s(self) -> float:
        """Typical time between samples [s] (median of the latest intervals); BIN_S if unknown."""
        return float(np.median(self._spacings)) if self._spacings else BIN_S

    def add(self, t_s: float, power_mw: float, measurement: float | None) -> bool:
        """Add one sample; returns False (and counts it) if it was refused."""
        if not (math.isfinite(t_s) and math.isfinite(power_mw) and power_mw >= 0.0):
            self.rejected += 1
            return False
        k = math.floor(t_s / BIN_S)
        if self._newest < 0:
            self._first = k - self._n + 1
        elif k > self._first + self._n - 1:
            self._shift(k - (self._first + self._n - 1))
        if k < self._first:
            self.rejected += 1
            return False
        i = k - self._first
        self._power_sum[i] += power_mw
        self._power_count[i] += 1.0
        if measurement is not None and math.isfinite(measurement) and measurement >= 0.0:
            self._meas_sum[i] += measurement
            self._meas_count[i] += 1.0
        self._newest = max(self._newest, k)
        if t_s > self._last_t:
            if math.isfinite(self._last_t):
                self._spacings.append(t_s - self._last_t)
            self._last_t = t_s
        return True

    def frame(self) -> Frame:
        """A copy of the bins, oldest first, ending with the newest bin."""
        with np.errstate(invalid="ignore", divide="ignore"):
            power = np.where(self._power_count > 0, self._power_sum / self._power_count, np.nan)
            meas = np.where(self._meas_count > 0, self._meas_sum / self._meas_count, np.nan)
        power = power.astype(np.float64)
        meas = meas.astype(np.float64)
        centers = (self._first + np.arange(self._n, dtype=np.float64) + 0.5) * BIN_S
        return Frame(self._first, centers, power, meas)

    def _shift(self, by: int) -> None:
        if by >= self._n:
            for a in (self._power_sum, self._power_count, self._meas_sum, self._meas_count):
                a[:] = 0.0
        else:
            for a in (self._power_sum, self._power_count, self._meas_sum, self._meas_count):
                a[:-by] = a[by:]
                a[-by:] = 0.0
        self._first += by
