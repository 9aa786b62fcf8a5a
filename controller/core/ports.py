"""What the control core exchanges with the shells that run it (the daemon, the backtest).

The core takes messages and clock ticks and queues publications (:class:`wire.link.Publication`);
when a plan is due it hands out a :class:`PlanJob`, which the shell gives to a :class:`Planner`
(in a worker thread in the daemon, in line in the backtest) and returns the :class:`Schedule`
to the core.  What
the core hears, sends and plans goes to a :class:`Recorder` (the time-series log).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import msgspec

from controller.planner.types import PlannerConfig, PlantState, Schedule
from controller.site import SiteModel
from forecasting.types import QuantileForecast
from wire import Publication, Source


@dataclass(frozen=True)
class PlanJob:
    """Everything a planner needs, captured when the plan falls due (it runs off the loop)."""

    now_s: float
    site: SiteModel
    """The site as it can be planned now: a BESS whose telemetry is stale is left out."""
    state: PlantState
    forecast: QuantileForecast
    """Renewable availability over the plan's steps (``config.step_min`` from ``now_s``).
    From the forecasters when the planner uses them; otherwise persistence of the latest
    observed availability."""
    config: PlannerConfig
    why: str
    """What made the plan due: "first plan", "cycle", or the event of an early re-plan."""


class Planner(Protocol):
    """What turns a :class:`PlanJob` into a :class:`Schedule`: the product's optimiser
    (:class:`MpcPlanner`), or a backtest's baseline or bound (``harness.strategies``)."""

    @property
    def name(self) -> str: ...

    @property
    def source(self) -> Source:
        """Stamped on the setpoints that its plans give (a fallback plan's say ``fallback``)."""
        ...

    @property
    def uses_forecast(self) -> bool:
        """Whether the core should run the renewable forecasters for it."""
        ...

    def plan(self, job: PlanJob) -> Schedule:
        """A plan for ``job``; must not raise on bad numbers (return a fallback plan)."""
        ...


class Recorder(Protocol):
    """Where the core reports what it heard, sent, planned and did (the time-series log)."""

    def payload(self, kind: str, asset: str, payload: msgspec.Struct) -> None: ...

    def plan(self, schedule: Schedule, state: PlantState) -> None: ...

    def event(
        self, kind: str, ts_s: float, *, asset: str = "", code: str = "", message: str = ""
    ) -> None: ...

    def kpis(self, ts_s: float, table: dict[str, float]) -> None: ...


__all__ = ["PlanJob", "Planner", "Publication", "Recorder"]
