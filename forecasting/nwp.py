"""The latest weather forecasts of one quantity, and what they said as of any past time.

Learning from history needs the forecast that *was* available at a past issue time, not the
newest one, so a few issues are kept (enough to cover two days of leads behind a 6-hourly cycle).
"""

from __future__ import annotations

import bisect
from typing import Final

import numpy as np

from forecasting.types import Array

KEEP_ISSUES: Final = 16
"""Issues kept: four days of a 6-hourly cycle, beyond the longest lead learned from."""
COVER_BEFORE_S: Final = 3600.0
"""A forecast also stands for up to an hour before its first valid time (it starts just after
its issue, while the observation it is compared with may be a little older)."""


class NwpStore:
    """Issued forecasts of one weather quantity, oldest first."""

    def __init__(self) -> None:
        self._issued: list[float] = []
        self._series: list[tuple[Array, Array]] = []

    def __len__(self) -> int:
        return len(self._issued)

    @property
    def latest_issued_s(self) -> float | None:
        return self._issued[-1] if self._issued else None

    def add(self, issued_s: float, times_s: Array, values: Array) -> bool:
        """Keep one issue's finite values; False if it had none or repeats a known issue."""
        ok = np.isfinite(times_s) & np.isfinite(values)
        if not ok.any() or not np.isfinite(issued_s):
            return False
        order = np.argsort(times_s[ok], kind="stable")
        times, vals = times_s[ok][order], np.maximum(values[ok][order], 0.0)
        i = bisect.bisect_left(self._issued, issued_s)
        if i < len(self._issued) and self._issued[i] == issued_s:
            self._series[i] = (times, vals)
            return True
        self._issued.insert(i, issued_s)
        self._series.insert(i, (times, vals))
        if len(self._issued) > KEEP_ISSUES:
            del self._issued[0], self._series[0]
        return True

    def value(self, times_s: Array, as_of_s: Array) -> Array:
        """For each (time, as-of) pair: the latest forecast issued at or before as-of that
        covers the time, interpolated there; NaN where none does."""
        out = np.full(times_s.shape, np.nan)
        for issued, (times, vals) in zip(self._issued, self._series, strict=True):
            cover = (
                (issued <= as_of_s)
                & (times_s >= times[0] - COVER_BEFORE_S)
                & (times_s <= times[-1])
            )
            if cover.any():
                out[cover] = np.interp(times_s[cover], times, vals)
        return out
