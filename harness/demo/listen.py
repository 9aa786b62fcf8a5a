"""What the demo hears and sees: the controller's status and plans over MQTT, the plant's truth.

The report's controller-side figures (state timeline, forecast band, heat budget, solve times)
come from the contract's retained ``controller/status`` and ``controller/plan`` topics, so they
are the same whether the daemon logs to files or to InfluxDB.  The plant's side comes from the
simulator itself (its truth, never a telemetry reading).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Final

import aiomqtt
import numpy as np

from controller.site import SiteModel
from harness.backtest import Trace
from simulator.kpi import SiteStep
from simulator.plant import Plant
from simulator.scenario import Scenario
from wire import ControllerStatus, PlanMessage, Topics, decode
from wire.link import MqttSettings, make_client

log = logging.getLogger(__name__)

RECONNECT_S: Final = 1.0


@dataclass(frozen=True)
class StatusChange:
    ts: float
    """Plant time of the status [UNIX s]."""
    state: str
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class PlanHead:
    """What the report takes from one plan: its start, its first step and its forecast."""

    plan_id: str
    start_s: float
    step_s: float
    status: str
    solve_ms: float
    heat_budget_mwh: dict[str, float]
    """Each line's heat budget planned for the end of the first step [MWh]."""
    forecast_times_s: tuple[float, ...]
    p10_mw: tuple[float, ...]
    p50_mw: tuple[float, ...]
    p90_mw: tuple[float, ...]


@dataclass
class Heard:
    statuses: list[StatusChange] = field(default_factory=list)
    plans: list[PlanHead] = field(default_factory=list)

    @property
    def state(self) -> str:
        return self.statuses[-1].state if self.statuses else "not heard yet"

    def add(self, payload: object) -> None:
        if isinstance(payload, ControllerStatus):
            reasons = tuple(payload.reasons)
            last = self.statuses[-1] if self.statuses else None
            if last is None or (last.state, last.reasons) != (payload.state.value, reasons):
                self.statuses.append(StatusChange(payload.ts, payload.state.value, reasons))
        elif isinstance(payload, PlanMessage):
            if self.plans and self.plans[-1].plan_id == payload.plan_id:
                return
            self.plans.append(
                PlanHead(
                    plan_id=payload.plan_id,
                    start_s=payload.times[0] if payload.times else payload.ts,
                    step_s=payload.step_s,
                    status=payload.status,
                    solve_ms=payload.solve_ms,
                    heat_budget_mwh={k: v[0] for k, v in payload.heat_budget_mwh.items() if v},
                    forecast_times_s=tuple(payload.times),
                    p10_mw=tuple(payload.forecast_p10_mw),
                    p50_mw=tuple(payload.forecast_p50_mw),
                    p90_mw=tuple(payload.forecast_p90_mw),
                )
            )


async def listen(settings: MqttSettings, password: str | None, heard: Heard) -> None:
    """Record the controller's status and plans until cancelled; reconnects when the link
    drops (the broker outlives the daemon in a demo, but not necessarily an external one)."""
    topics = Topics(settings.topic_prefix)
    wanted = (
        f"{settings.topic_prefix}/controller/status",
        f"{settings.topic_prefix}/controller/plan",
    )
    while True:
        try:
            async with make_client(settings, password, default_id="smelter-demo") as client:
                for topic in wanted:
                    await client.subscribe(topic, qos=1)
                async for message in client.messages:
                    parsed = topics.parse(message.topic.value)
                    payload = message.payload
                    if parsed is None or not isinstance(payload, bytes | bytearray):
                        continue
                    with contextlib.suppress(ValueError):
                        heard.add(decode(parsed.kind, bytes(payload)))
        except aiomqtt.MqttError as exc:
            log.debug("demo listener: %s; reconnecting", exc)
            await asyncio.sleep(RECONNECT_S)


class RecordingPlant(Plant):
    """The simulated plant, recording its truth step by step until ``end_s``.

    At ``end_s`` it keeps the KPIs of the run so far (:attr:`final_kpis`), so the demo's figures
    cover exactly the asked-for time even if the plant steps on while everything stops.
    """

    def __init__(
        self, scenario: Scenario, seed: int, topics: Topics, site: SiteModel, end_s: float
    ) -> None:
        super().__init__(scenario, seed, step_s=60.0, topics=topics)
        self.trace = Trace(site, self)
        self.end_s = end_s
        self.start_s = self.now_s
        self.final_kpis: dict[str, object] | None = None
        self.final_share_by_hour: tuple[list[float], list[float]] | None = None

    def step(self) -> SiteStep:
        result = super().step()
        if self.final_kpis is None:
            self.trace.add(result, self, None)
            if self.now_s >= self.end_s - 1e-6:
                self.snapshot()
        return result

    def snapshot(self) -> None:
        """Keep the KPIs as they stand (at the end, or when the demo is stopped early)."""
        if self.final_kpis is None:
            self.final_kpis = self.kpi.result()
            self.final_share_by_hour = self.kpi.share_by_hour()

    def renewable_share_so_far(self) -> float:
        e = self.kpi.energy
        consumption = e.get("consumption_mwh", 0.0)
        return e.get("renewable_used_mwh", 0.0) / consumption if consumption > 0 else float("nan")

    @property
    def done_frac(self) -> float:
        return float(np.clip((self.now_s - self.start_s) / (self.end_s - self.start_s), 0.0, 1.0))
