"""Who has been heard from, and when: stale assets (plant time) and a silent plant (wall time).

An asset whose last telemetry is older than ``stale_after_s`` of plant time is *stale*: the
core treats it as unknown (docs/operations.md).  No telemetry at all for ``silence_wall_s`` of
wall time is a *silent* plant: plant time cannot tell that, because it stands still with it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from controller.safety import Key
from controller.site import SiteModel


@dataclass(frozen=True)
class Changes:
    lost: set[Key] = field(default_factory=set)
    back: set[Key] = field(default_factory=set)


class Watchdog:
    """Per-asset freshness on plant time and the plant's silence on wall time."""

    def __init__(self, site: SiteModel, *, stale_after_s: float, silence_wall_s: float) -> None:
        self.stale_after_s = stale_after_s
        self.silence_wall_s = silence_wall_s
        self.expected: list[Key] = (
            [("potline", ln.name) for ln in site.lines]
            + [("bess", b.name) for b in site.bess]
            + [("captive", c.name) for c in site.captive]
            + [("renewable", r) for r in site.renewable_capacity_mw]
        )
        self._lines = [ln.name for ln in site.lines]
        self.seen: dict[Key, float] = {}
        """(kind, asset) → plant time of its newest telemetry."""
        self.stale: set[Key] = set()
        self.silent = False
        self.last_message_wall_s: float | None = None

    def heard(self, kind: str, asset: str, ts: float, wall_s: float) -> bool:
        """Telemetry of ``(kind, asset)`` stamped ``ts``; True when it ends a silence."""
        self.last_message_wall_s = wall_s
        key = (kind, asset)
        self.seen[key] = max(ts, self.seen.get(key, ts))
        if self.silent:
            self.silent = False
            return True
        return False

    def silence_s(self, wall_s: float) -> float | None:
        """Wall seconds without telemetry, when that has just made the plant silent."""
        last = self.last_message_wall_s
        if self.silent or last is None or wall_s - last <= self.silence_wall_s:
            return None
        self.silent = True
        return wall_s - last

    def update(self, now_s: float) -> Changes:
        """Re-judge staleness at plant time ``now_s``; returns what changed."""
        first = min(self.seen.values()) if self.seen else math.inf
        keys = self.expected + [k for k in self.seen if k[0] == "grid"]
        stale = {k for k in keys if now_s - self.seen.get(k, first) > self.stale_after_s}
        changes = Changes(lost=stale - self.stale, back=self.stale - stale)
        self.stale = stale
        return changes

    def stale_of(self, kind: str) -> set[str]:
        return {a for k, a in self.stale if k == kind}

    def ready_for_first_plan(self, now_s: float, wait_s: float) -> bool:
        """Every line heard from, or ``wait_s`` of plant time since the first telemetry."""
        if not self.seen:
            return False
        heard = all(("potline", ln) in self.seen for ln in self._lines)
        return heard or now_s - min(self.seen.values()) >= wait_s

    def age_s(self, key: Key, now_s: float) -> float | None:
        seen = self.seen.get(key)
        return None if seen is None else now_s - seen

    def rebase(self, ts: float) -> None:
        """After a clock jump: everything counts as heard at ``ts``."""
        self.seen = dict.fromkeys(self.seen, ts)
