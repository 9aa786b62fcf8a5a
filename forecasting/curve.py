"""A monotone curve learned from (driver, power) pairs: a wind farm's power curve, a hydro
plant's flow-to-power curve.

No shape is assumed (cut-in, rated speed, rated flow, the farm's wake losses and its spatial
smoothing are all in the data): pairs are grouped into equal-count bins along the driver and
the bin means are made non-decreasing by weighted isotonic regression (pool-adjacent-violators).
It forgets: only the latest pairs are kept.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from forecasting.types import Array, as_float_array

KEEP_PAIRS: Final = 4032
"""Pairs kept: two weeks of 5-minute bins."""
BINS: Final = 48
"""Equal-count bins along the driver: about 80 pairs per bin once full."""
MIN_PAIRS: Final = 96
"""Pairs (8 h of 5-minute bins) before the curve is trusted."""


def isotonic_increasing(y: Array, w: Array) -> Array:
    """Weighted least-squares non-decreasing fit of ``y`` (pool-adjacent-violators)."""
    means: list[float] = []
    weights: list[float] = []
    counts: list[int] = []
    for yi, wi in zip(y.tolist(), w.tolist(), strict=True):
        means.append(yi)
        weights.append(wi)
        counts.append(1)
        while len(means) > 1 and means[-2] > means[-1]:
            wsum = weights[-2] + weights[-1]
            merged = (means[-2] * weights[-2] + means[-1] * weights[-1]) / wsum
            count = counts[-2] + counts[-1]
            del means[-1], weights[-1], counts[-1]
            means[-1], weights[-1], counts[-1] = merged, wsum, count
    return np.repeat(np.array(means), counts)


class LearnedCurve:
    """Monotone map from a driver (wind speed [m/s], river flow [m³/s]) to power [MW]."""

    def __init__(self, capacity_mw: float) -> None:
        self.capacity_mw = float(capacity_mw)
        self._x = np.empty(KEEP_PAIRS)
        self._y = np.empty(KEEP_PAIRS)
        self._count = 0
        self._next = 0
        self._knots: tuple[Array, Array] | None = None

    @property
    def pairs(self) -> int:
        return self._count

    @property
    def ready(self) -> bool:
        return self._count >= MIN_PAIRS

    def add(self, driver: Array, power_mw: Array) -> None:
        """Learn from pairs; non-finite or negative entries are skipped."""
        x, y = as_float_array(driver), as_float_array(power_mw)
        ok = np.isfinite(x) & np.isfinite(y) & (x >= 0.0) & (y >= 0.0)
        for xi, yi in zip(x[ok][-KEEP_PAIRS:], y[ok][-KEEP_PAIRS:], strict=True):
            self._x[self._next], self._y[self._next] = xi, yi
            self._next = (self._next + 1) % KEEP_PAIRS
            self._count = min(self._count + 1, KEEP_PAIRS)
        if ok.any():
            self._knots = None

    def knots(self) -> tuple[Array, Array]:
        """Driver and power [MW] at the knots of the fitted curve (both non-decreasing)."""
        if self._knots is None:
            self._knots = self._fit()
        return self._knots

    def __call__(self, driver: Array) -> Array:
        """Power [MW] at each driver value; NaN in, NaN out.

        Beyond the largest driver seen the curve goes on with the slope of its top fifth (a
        power curve rises until rated): after a calm spell a gale is not read as a breeze.
        """
        x = as_float_array(driver)
        kx, ky = self.knots()
        out = np.interp(x, kx, ky)
        top = min(int(0.8 * kx.size), kx.size - 2)
        if top >= 0 and kx[-1] > kx[top]:
            slope = max((ky[-1] - ky[top]) / (kx[-1] - kx[top]), 0.0)
            out = np.where(x > kx[-1], ky[-1] + slope * (x - kx[-1]), out)
        return np.where(np.isfinite(x), np.clip(out, 0.0, self.capacity_mw), np.nan)

    def _fit(self) -> tuple[Array, Array]:
        if self._count < 2:
            return np.array([0.0, 1.0]), np.zeros(2)
        x, y = self._x[: self._count], self._y[: self._count]
        order = np.argsort(x, kind="stable")
        n_groups = min(BINS, self._count // 2)
        starts = (np.arange(n_groups) * self._count) // n_groups
        gw = np.diff(np.append(starts, self._count)).astype(np.float64)
        gx = np.add.reduceat(x[order], starts) / gw
        gy = np.add.reduceat(y[order], starts) / gw
        fitted = isotonic_increasing(gy, gw)
        # anchor zero output at zero driver: no wind, no water, no power
        if gx[0] > 0.0:
            gx = np.concatenate([[0.0], gx])
            fitted = np.concatenate([[0.0], fitted])
        return gx, np.clip(fitted, 0.0, self.capacity_mw)
