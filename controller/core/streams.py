"""The plant clock's rules: which telemetry may move plant time, and when time really jumped.

Plant time advances only from the site's own telemetry streams (one per asset of the site
description: pot-lines, BESS, captive units, renewable plants, grid meters), and only forward.
Each message's ``ts`` is judged before anything else sees it:

- a stream not in the site description: ``unknown_asset``, dropped (it never becomes an asset
  the controller waits for);
- with ``wall_clock_tolerance_s`` set (a real-time plant: set it on every real plant), too far
  from the daemon's UTC clock: ``bad_ts``, dropped, and it does not move the clock;
- outside the window around the expected plant time (``ts_tolerance_s`` either way, widened by
  two wall seconds of the plant's speed for delivery delays, and ahead, until the speed is
  measured, by :data:`UNMEASURED_SPEED_MAX` per wall second since the first telemetry):
  ``bad_ts`` (``out_of_order`` if also not newer than the stream's last), dropped, and it does
  not move the clock;
- unless it is part of a **genuine jump**: when streams that together make up at least half of
  those heard so far (and at least two, where two have been heard) all land on the same new
  time base within :data:`JUMP_WINDOW_WALL_S` of wall time, the whole plant moved (a simulator
  restart), in either direction.  The message that completes the quorum is accepted and the
  core re-bases on it; one forged message, or a single meter with a wrong clock, never can.
  On a real-time plant a jump must agree with the wall clock too, so a gateway flushing the
  buffer of all its meters after an outage cannot take plant time back;
- within the window but not newer than the stream's last accepted ``ts``: ``out_of_order``,
  dropped (a duplicate, a late message behind a newer one).

A meter whose clock runs steadily behind (within the window) is late, not wrong: its messages
are taken, and plant time stays with the newest.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Final

from controller.core.clock import PlantClock
from controller.safety import Key
from controller.site import SiteModel

JUMP_WINDOW_WALL_S: Final = 10.0
"""Streams confirm a jump together within this much wall time."""
DELAY_WALL_S: Final = 2.0
"""Delivery delay a message may have, in wall seconds (times the plant's speed)."""
UNMEASURED_SPEED_MAX: Final = 3600.0
"""Until the plant's speed is measured (:data:`~.clock.FIRST_SPEED_WINDOW_WALL_S` after the
first telemetry), plant time may run ahead by up to this many plant seconds per wall second
since then: a simulator at up to an hour per second is followed from its first messages, not
taken for a clock jump at each of them (which re-based the clock so that its speed was never
measured).  On a real plant ``wall_clock_tolerance_s`` bounds it anyway."""


class Verdict(enum.Enum):
    ACCEPT = "accept"
    JUMP = "jump"
    UNKNOWN_ASSET = "unknown_asset"
    OUT_OF_ORDER = "out_of_order"
    BAD_TS = "bad_ts"


@dataclass(frozen=True, slots=True)
class Check:
    verdict: Verdict
    reason: str = ""
    """Why a message was refused, or what the jump was."""


class Streams:
    """Judges each telemetry message's stream and ``ts`` against the plant clock."""

    def __init__(
        self,
        site: SiteModel,
        *,
        tolerance_s: float,
        wall_clock_tolerance_s: float | None = None,
    ) -> None:
        self.tolerance_s = tolerance_s
        self.wall_clock_tolerance_s = wall_clock_tolerance_s
        self.known: frozenset[Key] = frozenset(
            [("potline", ln.name) for ln in site.lines]
            + [("bess", b.name) for b in site.bess]
            + [("captive", c.name) for c in site.captive]
            + [("renewable", r.name) for r in site.renewable]
            + [("grid", m) for m in site.meters]
        )
        self.last_ts: dict[Key, float] = {}
        """Each stream's newest accepted ``ts``."""
        self.heard: set[Key] = set()
        """Every stream heard since the start: the quorum is a share of them, jumps or not."""
        self._candidates: dict[Key, tuple[float, float, float]] = {}
        """Stream → (offset of its off-window ``ts`` from plant time, wall time heard, ts)."""

    def window_s(self, clock: PlantClock) -> float:
        """How far from the expected plant time a ``ts`` may lie [s]."""
        return max(self.tolerance_s, DELAY_WALL_S * clock.speed)

    def check(
        self, key: Key, ts: float, wall_s: float, utc_s: float | None, clock: PlantClock
    ) -> Check:
        if key not in self.known:
            return Check(Verdict.UNKNOWN_ASSET, f"{key[0]} {key[1]} is not in the site")
        wall_off = self._wall_clock_offset(ts, utc_s)
        if wall_off is not None:
            return Check(Verdict.BAD_TS, f"{wall_off:+.0f} s off the wall clock")
        last = self.last_ts.get(key)
        expected = clock.extrapolated_s(wall_s)
        if expected is None or clock.now_s is None:
            return self._accept(key, ts)
        window = self.window_s(clock)
        if clock.now_s - window <= ts <= expected + window + self._unmeasured_s(clock, wall_s):
            if last is not None and ts <= last:
                return Check(Verdict.OUT_OF_ORDER, f"ts {ts:.3f} not after {last:.3f}")
            self._candidates.pop(key, None)
            return self._accept(key, ts)
        check = self._candidate(key, ts, ts - clock.now_s, wall_s, window)
        if check.verdict is Verdict.BAD_TS and last is not None and ts <= last:
            return Check(Verdict.OUT_OF_ORDER, f"ts {ts:.3f} not after {last:.3f}")
        return check

    @staticmethod
    def _unmeasured_s(clock: PlantClock, wall_s: float) -> float:
        if clock.measured or clock.first_wall_s is None:
            return 0.0
        return max(wall_s - clock.first_wall_s, 0.0) * UNMEASURED_SPEED_MAX

    def _accept(self, key: Key, ts: float) -> Check:
        self.last_ts[key] = ts
        self.heard.add(key)
        return Check(Verdict.ACCEPT)

    def _candidate(
        self, key: Key, ts: float, offset_s: float, wall_s: float, window: float
    ) -> Check:
        self._candidates = {
            k: c for k, c in self._candidates.items() if wall_s - c[1] <= JUMP_WINDOW_WALL_S
        }
        self._candidates[key] = (offset_s, wall_s, ts)
        self.heard.add(key)
        agreeing = {k: c[2] for k, c in self._candidates.items() if abs(c[0] - offset_s) <= window}
        heard = len(self.heard)
        quorum = max(min(2, heard), math.ceil(heard / 2))
        if len(agreeing) >= quorum:
            # every stream starts again from the new time base: those that moved with it at
            # their own ts, so that the old time base needs a quorum of its own to come back
            self.last_ts = agreeing
            self._candidates.clear()
            way = "forward" if offset_s > 0 else "back"
            streams = len(agreeing)
            return Check(
                Verdict.JUMP, f"clock jumped {way} by {abs(offset_s):.0f} s ({streams} streams)"
            )
        return Check(Verdict.BAD_TS, f"{offset_s:+.0f} s off plant time")

    def _wall_clock_offset(self, ts: float, utc_s: float | None) -> float | None:
        """The offset from the wall clock when it is too large (a real-time plant only)."""
        if self.wall_clock_tolerance_s is None or utc_s is None:
            return None
        off = ts - utc_s
        return off if abs(off) > self.wall_clock_tolerance_s else None
