"""Plant alarms the controller hears: counted per code, logged without flooding the log.

The first alarm of each code is logged with its message; the rest of that code are counted
and summed up once per :data:`SUMMARY_S` of plant time while they keep coming.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Final

from wire import PlantAlarm

log = logging.getLogger(__name__)

SUMMARY_S: Final = 3600.0


class AlarmLog:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._unlogged: Counter[str] = Counter()
        self._logged_at: dict[str, float] = {}

    def heard(self, alarm: PlantAlarm) -> None:
        code = alarm.code
        self.counts[code] += 1
        last = self._logged_at.get(code)
        if last is None:
            log.warning(
                "plant alarm %s on %s: %s (more of this code are counted, summed up hourly)",
                code,
                alarm.asset,
                alarm.message,
            )
            self._logged_at[code] = alarm.ts
            return
        self._unlogged[code] += 1
        if alarm.ts - last >= SUMMARY_S:
            log.warning(
                "plant alarm %s: %d more in the last %.1f h of plant time; latest on %s: %s",
                code,
                self._unlogged[code],
                (alarm.ts - last) / 3600.0,
                alarm.asset,
                alarm.message,
            )
            self._unlogged[code] = 0
            self._logged_at[code] = alarm.ts
