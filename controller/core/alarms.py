"""Plant alarms the controller hears: counted per code, logged without flooding the log.

Alarms come in bursts (a line shed on every step of an island's shortfall, a setpoint clamped
at every dispatch).  The first alarm of a burst of one (asset, code) is logged with its
message; the rest are counted and summed up once per :data:`SUMMARY_S` of plant time while the
burst lasts.  A burst ends after :data:`BURST_GAP_S` without that alarm; the next one starts a
new burst (and its log line says how many the last one had).  Only alarms about the site's own
assets get here (:mod:`.admission`).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Final

from wire import PlantAlarm

log = logging.getLogger(__name__)

SUMMARY_S: Final = 3600.0
BURST_GAP_S: Final = 600.0


@dataclass
class _Burst:
    last_ts: float
    logged_ts: float
    unlogged: int = 0
    total: int = 1


class AlarmLog:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        """Alarms heard, by code."""
        self._bursts: dict[tuple[str, str], _Burst] = {}

    def heard(self, alarm: PlantAlarm) -> None:
        key = (alarm.asset, alarm.code)
        self.counts[alarm.code] += 1
        burst = self._bursts.get(key)
        if burst is None or alarm.ts - burst.last_ts >= BURST_GAP_S:
            before = f"; the last burst had {burst.total}" if burst is not None else ""
            log.warning(
                "plant alarm %s on %s: %s (more of it in this burst are counted, summed up "
                "hourly%s)",
                alarm.code,
                alarm.asset,
                alarm.message,
                before,
            )
            self._bursts[key] = _Burst(alarm.ts, alarm.ts)
            return
        burst.last_ts = max(burst.last_ts, alarm.ts)
        burst.unlogged += 1
        burst.total += 1
        if alarm.ts - burst.logged_ts >= SUMMARY_S:
            log.warning(
                "plant alarm %s on %s: %d more in the last %.1f h of plant time; latest: %s",
                alarm.code,
                alarm.asset,
                burst.unlogged,
                (alarm.ts - burst.logged_ts) / 3600.0,
                alarm.message,
            )
            burst.unlogged = 0
            burst.logged_ts = alarm.ts
