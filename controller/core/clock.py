"""Plant time, taken from telemetry timestamps, and the jumps it makes.

The daemon plans on plant time (on a real plant that is wall time; under the simulator, its
accelerated clock).  :class:`PlantClock` follows the newest telemetry ``ts``, estimates how fast
plant time runs against the wall clock (to extrapolate it while the plant is silent), and tells
a clock jump (:meth:`PlantClock.jump`) from telemetry that is merely a little late.
"""

from __future__ import annotations

from typing import Final

BACKWARD_TOLERANCE_WALL_S: Final = 2.0
"""Telemetry may arrive this late (wall time, scaled by the plant's speed) without being a
clock jump back."""
MIN_BACKWARD_S: Final = 60.0
"""... and at least this late in plant time."""
SPEED_WINDOW_WALL_S: Final = 2.0
"""The speed estimate is refreshed over windows of this many wall seconds."""


class PlantClock:
    """Plant time from telemetry timestamps, and an estimate of its speed against the wall."""

    def __init__(self) -> None:
        self.now_s: float | None = None
        self.wall_at_now_s = 0.0
        self.speed = 1.0
        self._anchor: tuple[float, float] | None = None  # (wall, plant) at the window start

    def extrapolated_s(self, wall_s: float) -> float | None:
        """Plant time now, from the last telemetry and the speed (None before any)."""
        if self.now_s is None:
            return None
        return self.now_s + max(wall_s - self.wall_at_now_s, 0.0) * self.speed

    def jump(
        self, ts: float, wall_s: float, forward_s: float, asset_last_ts: float | None
    ) -> str | None:
        """What is wrong with ``ts`` as the next plant time, or None when nothing is: more than
        ``forward_s`` ahead of the extrapolated time is a jump forward; behind the same asset's
        previous telemetry (``asset_last_ts``) by more than the tolerance is a jump back.

        A jump back is judged per asset: a meter whose clock runs steadily behind the others
        sends late telemetry, which is no jump (its values are taken, plant time stays with
        the newest)."""
        now = self.now_s
        expected = self.extrapolated_s(wall_s)
        if now is None or expected is None:
            return None
        if ts > expected + forward_s:
            return f"clock jumped forward by {ts - now:.0f} s"
        late_s = max(MIN_BACKWARD_S, BACKWARD_TOLERANCE_WALL_S * self.speed)
        if asset_last_ts is not None and ts < asset_last_ts - late_s:
            return f"clock jumped back by {now - ts:.0f} s"
        return None

    def advance(self, ts: float, wall_s: float) -> None:
        if self.now_s is None or ts > self.now_s:
            self.now_s, self.wall_at_now_s = ts, wall_s
        if self._anchor is None:
            self._anchor = (wall_s, ts)
        elif wall_s - self._anchor[0] >= SPEED_WINDOW_WALL_S:
            rate = (ts - self._anchor[1]) / (wall_s - self._anchor[0])
            if rate > 0.0:
                self.speed = 0.5 * self.speed + 0.5 * rate if self.speed > 0 else rate
            self._anchor = (wall_s, ts)

    def reset(self, ts: float, wall_s: float) -> None:
        """After a jump: ``ts`` is now."""
        self.now_s, self.wall_at_now_s, self._anchor = ts, wall_s, (wall_s, ts)
