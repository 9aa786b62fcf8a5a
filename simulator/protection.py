"""Plant-side protection, as the plant's PLCs do it.

- A setpoint outside the asset's hard limits is clamped to them and raises an alarm.
- A setpoint whose ``valid_until`` has passed returns the asset to its safe default.
- No valid command for ``watchdog_s`` of plant time returns the asset to its safe default.
- Bad messages (malformed, wrong type, NaN, out of range, oversized, unknown topic) are
  counted per kind, logged once per kind, and dropped: the last valid setpoint stays.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from wire import PlantAlarm

log = logging.getLogger(__name__)


@dataclass
class SetpointGuard:
    """One asset's setpoint as the plant applies it.  Values are in the asset's unit."""

    asset: str
    lower: float
    upper: float
    safe_default: float | None
    """None = hold the current value (captive unit)."""
    watchdog_s: float
    value: float | None = None
    valid_until: float = 0.0
    last_command_s: float = -float("inf")
    in_fallback: bool = True
    alarms: list[PlantAlarm] = field(default_factory=list)

    def apply(self, now_s: float, value: float, valid_until: float) -> None:
        """A decoded, well-formed setpoint arrives at plant time ``now_s``."""
        if valid_until <= now_s:
            self._alarm(
                now_s,
                "expired_on_arrival",
                f"setpoint {value:g} arrived with valid_until {valid_until:.0f} "
                f"already past (plant time {now_s:.0f}); ignored",
            )
            return
        clamped = min(max(value, self.lower), self.upper)
        if clamped != value:
            self._alarm(
                now_s,
                "clamped",
                f"setpoint {value:g} outside hard limits [{self.lower:g}, "
                f"{self.upper:g}]; clamped to {clamped:g}",
            )
        self.value = clamped
        self.valid_until = valid_until
        self.last_command_s = now_s
        if self.in_fallback:
            log.info("%s: valid setpoint received, leaving safe default", self.asset)
        self.in_fallback = False

    def effective(self, now_s: float, current: float) -> float:
        """The value the asset runs at now: the setpoint, or the safe default."""
        if not self.in_fallback:
            if now_s >= self.valid_until:
                self._fallback(now_s, "expired", f"setpoint expired at {self.valid_until:.0f}")
            elif now_s - self.last_command_s > self.watchdog_s:
                self._fallback(now_s, "watchdog", f"no valid command for {self.watchdog_s:.0f} s")
        if self.in_fallback or self.value is None:
            return current if self.safe_default is None else self.safe_default
        return self.value

    def _fallback(self, now_s: float, code: str, why: str) -> None:
        self.in_fallback = True
        default = "holds" if self.safe_default is None else f"{self.safe_default:g}"
        self._alarm(now_s, code, f"{why}; safe default ({default})")
        log.warning("%s: %s; returning to safe default", self.asset, why)

    def _alarm(self, now_s: float, code: str, message: str) -> None:
        self.alarms.append(PlantAlarm(ts=now_s, asset=self.asset, code=code, message=message))


@dataclass
class RejectCounter:
    """Counts dropped messages per kind and logs each kind once, not once per message."""

    counts: dict[str, int] = field(default_factory=dict)

    def reject(self, kind: str, detail: str) -> None:
        n = self.counts.get(kind, 0) + 1
        self.counts[kind] = n
        if n == 1:
            log.warning(
                "dropping bad command message (%s): %s; further ones are counted silently",
                kind,
                detail,
            )
