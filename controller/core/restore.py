"""Restart restore: the state file's lines are resumed at the first telemetry.

The operator's mode and the setpoints sent last take effect at once (:mod:`.modes`); the
lines' heat budget, exchanger lag, production today and band usage wait for the first
telemetry, which says how long the daemon was away in plant time.  A state file more than
:data:`MAX_STATE_AGE_S` old (or from the future) is not resumed: its heat budget means nothing now.
"""

from __future__ import annotations

import logging
from typing import Final

from controller.core.records import SavedState
from controller.state import StateTracker

log = logging.getLogger(__name__)

MAX_STATE_AGE_S: Final = 86_400.0
"""A state file older than this (plant time) is not resumed."""


class Resume:
    def __init__(self) -> None:
        self.pending: SavedState | None = None

    def take(self, saved: SavedState) -> None:
        self.pending = saved

    def at_telemetry(self, ts: float, tracker: StateTracker) -> tuple[str, str] | None:
        """At telemetry stamped ``ts``: resume a pending state into ``tracker``.  Returns
        (notice for the status, event message or "" when it was not resumed), or None when
        nothing was pending."""
        saved, self.pending = self.pending, None
        if saved is None:
            return None
        age_s = ts - saved.saved_ts
        if not 0.0 <= age_s <= MAX_STATE_AGE_S:
            return f"state file ignored: saved {age_s / 3600:.1f} h from now in plant time", ""
        lines = tracker.restore(saved.lines, hold_until_s=saved.applied_valid_until_s)
        log.info("resumed %d lines from the state file saved %.0f s ago", len(lines), age_s)
        return (
            f"resumed from the state file saved {age_s:.0f} s before (plant time)",
            f"state file saved {age_s:.0f} s before",
        )
