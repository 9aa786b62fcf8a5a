"""Plant time, taken from telemetry timestamps, and the jumps it makes.

The daemon plans on plant time (on a real plant that is wall time; under the simulator, its
accelerated clock).  :class:`PlantClock` follows the newest telemetry ``ts``, estimates how fast
plant time runs against the wall clock (to extrapolate it while the plant is silent).  Which
telemetry may move it, and what a jump is, is :mod:`.streams`'s to say.
"""

from __future__ import annotations

from typing import Final

SPEED_WINDOW_WALL_S: Final = 2.0
"""The speed estimate is refreshed over windows of this many wall seconds."""
FIRST_SPEED_WINDOW_WALL_S: Final = 0.5
"""... the first one sooner: until then plant time is assumed to run at wall-clock speed."""


class PlantClock:
    """Plant time from telemetry timestamps, and an estimate of its speed against the wall."""

    def __init__(self) -> None:
        self.now_s: float | None = None
        self.wall_at_now_s = 0.0
        self.speed = 1.0
        self._anchor: tuple[float, float] | None = None  # (wall, plant) at the window start
        self._measured = False
        self.first_wall_s: float | None = None
        """Wall time of the first telemetry taken."""

    @property
    def measured(self) -> bool:
        """Whether :attr:`speed` has been measured (else it is the assumed 1x)."""
        return self._measured

    def extrapolated_s(self, wall_s: float) -> float | None:
        """Plant time now, from the last telemetry and the speed (None before any)."""
        if self.now_s is None:
            return None
        return self.now_s + max(wall_s - self.wall_at_now_s, 0.0) * self.speed

    def advance(self, ts: float, wall_s: float) -> None:
        if self.now_s is None or ts > self.now_s:
            self.now_s, self.wall_at_now_s = ts, wall_s
        if self._anchor is None:
            self._anchor = (wall_s, ts)
            self.first_wall_s = wall_s
        elif wall_s - self._anchor[0] >= (
            SPEED_WINDOW_WALL_S if self._measured else FIRST_SPEED_WINDOW_WALL_S
        ):
            rate = (ts - self._anchor[1]) / (wall_s - self._anchor[0])
            if rate > 0.0:
                # the first measurement replaces the assumed 1x; later ones are smoothed
                self.speed = 0.5 * self.speed + 0.5 * rate if self._measured else rate
                self._measured = True
            self._anchor = (wall_s, ts)

    def reset(self, ts: float, wall_s: float) -> None:
        """After a jump: ``ts`` is now."""
        self.now_s, self.wall_at_now_s, self._anchor = ts, wall_s, (wall_s, ts)
