"""What the console remembers: recent events, the last hours of the plant, the latest
telemetry, and the solve-time histogram.

:class:`Journal` sits between the core and the time-series log as the core's
:class:`~controller.core.ports.Recorder` (:meth:`Journal.tee`): everything the core reports goes
on to the log unchanged, and the journal keeps a small in-memory picture of it for the page.
Counters that the core keeps but does not report as events (messages refused by kind,
plausibility suspects) and changes of the controller's state become events when
:meth:`Journal.poll` sees them move.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Final

import msgspec
from prometheus_client import Histogram

from controller.core.ports import Recorder
from controller.planner.types import PlantState, Schedule, SolveStatus
from wire import (
    BessTelemetry,
    CaptiveTelemetry,
    GridTelemetry,
    PotlineTelemetry,
    RenewableTelemetry,
)

log = logging.getLogger(__name__)

EVENTS_KEPT: Final = 500
HISTORY_STEP_S: Final = 300.0
"""One row of the plant's history per this many plant seconds."""
HISTORY_KEPT_H: Final = 24.0
SOLVE_BUCKETS_S: Final = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0)
"""Solve times [s]: the LP takes 0.1-2 s on the default horizon, the time limit is 10 s."""
TELEMETRY: Final = (
    PotlineTelemetry,
    GridTelemetry,
    RenewableTelemetry,
    BessTelemetry,
    CaptiveTelemetry,
)


@dataclass(frozen=True)
class Event:
    seq: int
    ts: float
    """Plant time [s] (0 before the plant was heard)."""
    wall_utc_s: float
    kind: str
    code: str
    message: str
    asset: str = ""
    who: str = ""


@dataclass(frozen=True)
class HistoryRow:
    ts: float
    load_mw: float
    """Pot-lines' power."""
    renewable_available_mw: float
    renewable_used_mw: float
    grid_mw: float
    bess_mw: float
    captive_mw: float


class Journal:
    def __init__(self) -> None:
        self.events: deque[Event] = deque(maxlen=EVENTS_KEPT)
        self.history: deque[HistoryRow] = deque(maxlen=int(HISTORY_KEPT_H * 3600 / HISTORY_STEP_S))
        self.latest: dict[tuple[str, str], msgspec.Struct] = {}
        """The newest telemetry per (kind, asset), as the core took it."""
        self.solve_seconds = Histogram(
            "smelter_solve_seconds",
            "Wall time of each solve whose plan was taken",
            buckets=SOLVE_BUCKETS_S,
            registry=None,
        )
        self._seq = 0
        self.rows_added = 0
        self._next_row_s: float | None = None
        self._seen: dict[str, Counter[str]] = {"rejected": Counter(), "suspect": Counter()}
        self._state = ""
        self.sink: Recorder | None = None
        """The time-series log, once :meth:`tee` has been called."""

    def tee(self, recorder: Recorder | None) -> Recorder:
        """The core's recorder: this journal, then ``recorder`` (the time-series log)."""
        self.sink = recorder
        return _Tee(self, recorder)

    def operator(self, code: str, message: str, ts: float, who: str) -> None:
        """What an operator did from the console: in the journal and the time-series log."""
        self.add("operator", code, message, ts, who=who)
        if self.sink is not None:
            self.sink.event("operator", ts, code=code, message=message)

    def add(
        self, kind: str, code: str, message: str, ts: float, *, asset: str = "", who: str = ""
    ) -> Event:
        self._seq += 1
        event = Event(self._seq, ts, time.time(), kind, code, message, asset, who)
        self.events.append(event)
        return event

    def since(self, seq: int) -> list[dict[str, object]]:
        """Events after ``seq``, oldest first."""
        return [asdict(e) for e in self.events if e.seq > seq]

    @property
    def last_seq(self) -> int:
        return self._seq

    def poll(
        self,
        ts: float,
        state: str,
        rejected: Mapping[str, int],
        suspects: Mapping[str, int],
    ) -> None:
        """Counters and the state as they are now: what moved since the last poll is an event."""
        if state != self._state:
            if self._state:
                self.add("state", state, f"controller {self._state} → {state}", ts)
            self._state = state
        for name, counts, what in (
            ("rejected", rejected, "messages refused"),
            ("suspect", suspects, "implausible telemetry corrected"),
        ):
            seen = self._seen[name]
            for kind, n in sorted(counts.items()):
                if n > seen[kind]:
                    self.add(name, kind, f"{n - seen[kind]} {what} ({kind})", ts)
                    seen[kind] = n

    def observe(self, kind: str, asset: str, payload: msgspec.Struct) -> None:
        if not isinstance(payload, TELEMETRY):
            return
        self.latest[kind, asset] = payload
        ts = payload.ts
        if self._next_row_s is None or ts < self._next_row_s - HISTORY_STEP_S:
            self._next_row_s = ts  # the first row, or the plant's clock went back
        if ts >= self._next_row_s:
            self.history.append(self._row(ts))
            self.rows_added += 1
            self._next_row_s = ts - ts % HISTORY_STEP_S + HISTORY_STEP_S

    def _row(self, ts: float) -> HistoryRow:
        sums: dict[str, float] = dict.fromkeys(
            ("load", "available", "used", "grid", "bess", "captive"), 0.0
        )
        for (kind, _), p in self.latest.items():
            if isinstance(p, PotlineTelemetry):
                sums["load"] += p.power_mw
            elif isinstance(p, RenewableTelemetry):
                sums["available"] += p.available_mw
                sums["used"] += p.power_mw
            elif isinstance(p, GridTelemetry):
                sums["grid"] += p.power_mw
            elif isinstance(p, BessTelemetry | CaptiveTelemetry):
                sums[kind] += p.power_mw
        return HistoryRow(
            ts,
            sums["load"],
            sums["available"],
            sums["used"],
            sums["grid"],
            sums["bess"],
            sums["captive"],
        )

    def rows(self) -> dict[str, list[float]]:
        """The history as columns (what a chart takes)."""
        fields = HistoryRow.__dataclass_fields__
        return {name: [getattr(r, name) for r in self.history] for name in fields}


class _Tee:
    """A :class:`~controller.core.ports.Recorder` that shows the journal everything first.

    The journal is for display: a failure in it is logged once and never reaches the core
    (which records from its message and planning paths), nor stops the time-series log."""

    def __init__(self, journal: Journal, then: Recorder | None) -> None:
        self.journal = journal
        self.then = then
        self._failed = False

    def _show(self, call: Callable[[], object]) -> None:
        try:
            call()
        except Exception:  # the page may miss a value; control must not
            if not self._failed:
                log.exception("the console's journal failed; the page may be incomplete")
            self._failed = True

    def payload(self, kind: str, asset: str, payload: msgspec.Struct) -> None:
        self._show(lambda: self.journal.observe(kind, asset, payload))
        if self.then is not None:
            self.then.payload(kind, asset, payload)

    def plan(self, schedule: Schedule, state: PlantState) -> None:
        if schedule.status != SolveStatus.FALLBACK or schedule.solve_ms > 0.0:
            self._show(lambda: self.journal.solve_seconds.observe(schedule.solve_ms / 1e3))
        if self.then is not None:
            self.then.plan(schedule, state)

    def event(
        self, kind: str, ts_s: float, *, asset: str = "", code: str = "", message: str = ""
    ) -> None:
        self._show(lambda: self.journal.add(kind, code, message, ts_s, asset=asset))
        if self.then is not None:
            self.then.event(kind, ts_s, asset=asset, code=code, message=message)

    def kpis(self, ts_s: float, table: dict[str, float]) -> None:
        if self.then is not None:
            self.then.kpis(ts_s, table)
