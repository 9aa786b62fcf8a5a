"""Candidate predictors of y at valid times, as they stood at given issue times.

One function serves both the live forecast and the hindcasts the forecaster learns from, so
what it is trained on is exactly what it is run with.  Everything is vectorised over rows
(valid time, issue time, index of the newest bin usable at the issue).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from forecasting.history import BIN_S, Frame
from forecasting.kinds import KindModel, Normalised
from forecasting.nwp import NwpStore
from forecasting.types import Array, BoolArray, IntArray

CLIMATE_BINS: Final = int(3 * 86_400 / BIN_S)
"""Climatology window: the last three days."""
TREND_BINS: Final = int(6 * 3600 / BIN_S)
"""A river's trend is taken over the last six hours."""
MIN_WINDOW_S: Final = 900.0
"""The 'current' value is the mean of the last 15 minutes (or of two samples, if sparser)."""


def window_bins(spacing_s: float) -> int:
    return max(1, int(np.ceil(max(MIN_WINDOW_S, 2.0 * spacing_s) / BIN_S)))


class Prepared:
    """A frame in the kind's terms, with running sums for windowed means."""

    def __init__(self, frame: Frame, norm: Normalised, window: int) -> None:
        self.frame = frame
        self.norm = norm
        self.window = window
        valid = norm.valid
        idx = np.arange(valid.size)
        self.last_valid = np.maximum.accumulate(np.where(valid, idx, -1))
        y0 = np.where(valid, norm.y, 0.0)
        w2 = np.where(valid, norm.scale**2, 0.0)
        meas = np.isfinite(frame.measurement)
        self._sums = {
            "n": _cumsum(valid.astype(np.float64)),
            "y": _cumsum(y0),
            "w2": _cumsum(w2),
            "w2y": _cumsum(w2 * y0),
            "mn": _cumsum((meas & valid).astype(np.float64)),
            "m": _cumsum(np.where(meas & valid, frame.measurement, 0.0)),
        }

    def mean(self, num: str, den: str, end: IntArray, length: int) -> Array:
        """Ratio of sums over bins (end − length, end]; NaN where the denominator is zero."""
        n = self.norm.valid.size
        hi = np.clip(end, -1, n - 1) + 1
        lo = np.clip(end - length, -1, n - 1) + 1
        top = self._sums[num][hi] - self._sums[num][lo]
        bottom = self._sums[den][hi] - self._sums[den][lo]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(bottom > 0.0, top / np.where(bottom > 0.0, bottom, 1.0), np.nan)


def _cumsum(x: Array) -> Array:
    return np.concatenate([[0.0], np.cumsum(x)])


@dataclass(frozen=True)
class Candidates:
    """Predictors per row: with the weather forecast (NaN rows where it is missing) and
    without it; the lead from the newest observation; the scale s at the valid time."""

    with_nwp: Array
    plain: Array
    lead_s: Array
    scale: Array
    observed: BoolArray


def candidates(
    kind: KindModel,
    prep: Prepared,
    nwp: NwpStore,
    t_s: Array,
    as_of_s: Array,
    as_of_bin: IntArray,
) -> Candidates:
    """Candidate predictors of y at valid times ``t_s`` issued at ``as_of_s``.

    ``as_of_bin`` is the frame index of the newest bin the issue may use.  Columns, plain:
    [y_now, climatology] (+ trend for hydro); with the weather forecast:
    [y_now, background, background + current error in y, climatology, corrected driver]
    (PV has no corrected driver; hydro adds the trend).
    """
    n_frame = prep.norm.valid.size
    end = np.where(as_of_bin >= 0, prep.last_valid[np.clip(as_of_bin, 0, n_frame - 1)], -1)
    observed = end >= 0
    end_c = np.clip(end, 0, n_frame - 1)
    t_now = np.where(observed, prep.frame.centers_s[end_c], as_of_s)
    lead = np.maximum(t_s - t_now, 0.0)
    w = prep.window
    y_now = prep.mean("y", "n", end, w)
    drv_now = prep.mean("m", "mn", end, w)
    anchor = np.clip(as_of_bin, -1, n_frame - 1)
    if kind.kind == "pv":
        # weight by clear-sky output squared: dawn and dusk barely matter in MW
        clim = prep.mean("w2y", "w2", anchor, CLIMATE_BINS)
    else:
        clim = prep.mean("y", "n", anchor, CLIMATE_BINS)
    clim = np.where(np.isfinite(clim), clim, y_now)
    y_now = np.where(np.isfinite(y_now), y_now, clim)
    y_now = np.nan_to_num(y_now, nan=0.0)
    clim = np.nan_to_num(clim, nan=0.0)
    plain = [y_now, clim]

    drv_t = nwp.value(t_s, as_of_s)
    drv_nwp_now = nwp.value(t_now, as_of_s)
    bg_t = kind.background(t_s, drv_t)
    bg_now = kind.background(t_now, drv_nwp_now)
    corr_y = bg_t + np.where(np.isfinite(bg_now), y_now - bg_now, 0.0)
    with_nwp = [y_now, bg_t, corr_y, clim]
    if kind.kind != "pv":
        corr_drv = kind.corrected(t_s, drv_t, drv_nwp_now, drv_now)
        with_nwp.append(np.where(np.isfinite(corr_drv), corr_drv, corr_y))
    if kind.kind == "hydro":
        before = prep.mean("y", "n", end - TREND_BINS, w)
        slope = np.where(np.isfinite(before), (y_now - before) / (TREND_BINS * BIN_S), 0.0)
        trend = np.clip(y_now + slope * lead, 0.0, 2.0 * kind.y_max)
        plain.append(trend)
        with_nwp.append(trend)
    x_nwp = np.clip(np.stack(with_nwp, axis=1), -kind.y_max, 2.0 * kind.y_max)
    x_plain = np.clip(np.stack(plain, axis=1), -kind.y_max, 2.0 * kind.y_max)
    return Candidates(x_nwp, x_plain, lead, kind.scale(t_s), observed)
