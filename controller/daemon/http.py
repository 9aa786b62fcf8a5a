"""``/healthz`` and Prometheus ``/metrics``, read straight from the daemon, served beside the
operator console (:mod:`controller.console`) on a loopback port.

The metrics are collected at scrape time from the core's own counters (a custom
``prometheus_client`` collector), so nothing is counted twice.  ``/healthz`` answers 200 with
the controller's state (and this instance's view of the controller lease) while the event loop
is turning, and 503 when the ticker has not run for :data:`STUCK_S` seconds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Final

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from controller.console.app import Console, ConsoleServer, start
from controller.core.ingest import CORE_REJECT_KINDS
from controller.core.plausibility import CHECKS
from wire import REJECT_KINDS, ControllerState
from wire.link import INCOMING_DROPS

if TYPE_CHECKING:
    from controller.daemon.service import Daemon

STUCK_S: Final = 5.0


class DaemonCollector(Collector):
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def collect(self) -> Iterator[Metric]:
        d, core = self.daemon, self.daemon.core
        accepted = CounterMetricFamily(
            "smelter_messages", "Validated messages taken in, by topic kind", labels=["kind"]
        )
        for kind, n in sorted(core.ingest.accepted.items()):
            accepted.add_metric([kind], n)
        yield accepted
        rejected = CounterMetricFamily(
            "smelter_messages_rejected", "Messages dropped at the edge, by reason", labels=["kind"]
        )
        for kind in (*REJECT_KINDS, *CORE_REJECT_KINDS):
            rejected.add_metric([kind], core.ingest.rejected.get(kind, 0))
        yield rejected
        yield CounterMetricFamily(
            "smelter_mqtt_incoming_dropped",
            "Messages the MQTT client dropped because its incoming queue was full",
            value=INCOMING_DROPS.total,
        )
        status = core.status()
        state = GaugeMetricFamily(
            "smelter_controller_state", "1 for the controller's current state", labels=["state"]
        )
        for s in ControllerState:
            state.add_metric([s.value], 1.0 if s == status.state else 0.0)
        yield state
        yield GaugeMetricFamily(
            "smelter_fallback",
            "1 while setpoints come from a fallback (plant silent or planner fallback)",
            value=1.0 if status.state == ControllerState.FALLBACK else 0.0,
        )
        now = core.clock.now_s
        age = now - float(core.plan.times_s[0]) if core.plan is not None and now else float("nan")
        yield GaugeMetricFamily(
            "smelter_plan_age_seconds", "Plant seconds since the current plan started", value=age
        )
        yield CounterMetricFamily("smelter_plans", "Plans made", value=core.plans_made)
        yield CounterMetricFamily(
            "smelter_fallback_plans", "Plans that were the fallback plan", value=core.fallback_plans
        )
        yield CounterMetricFamily(
            "smelter_setpoints",
            "Setpoints sent through the safety layer",
            value=core.setpoints_sent,
        )
        yield GaugeMetricFamily(
            "smelter_mqtt_connected", "1 while connected to the broker", value=d.stats.connected
        )
        yield CounterMetricFamily(
            "smelter_mqtt_connects", "Successful broker connections", value=d.stats.connects
        )
        yield CounterMetricFamily(
            "smelter_publications_dropped",
            "Publications dropped while the broker link was down",
            value=d.stats.dropped_publications,
        )
        refused = CounterMetricFamily(
            "smelter_mqtt_publish_refused",
            "Publications the broker refused (MQTT 5 PUBACK reason code), by kind and reason",
            labels=["kind", "reason"],
        )
        for (kind, reason), n in sorted(d.refusals.counts.items()):
            refused.add_metric([kind, reason], n)
        yield refused
        yield GaugeMetricFamily(
            "smelter_controller_active",
            "1 while this instance holds the controller lease (sends setpoints)",
            value=1.0 if d.is_active else 0.0,
        )
        yield CounterMetricFamily(
            "smelter_lease_takeovers",
            "Times this instance became the active controller",
            value=d.lease.takeovers,
        )
        yield CounterMetricFamily(
            "smelter_setpoints_withheld",
            "Setpoints not published because this instance did not hold the lease then",
            value=d.outbound.withheld_setpoints,
        )
        failures = CounterMetricFamily(
            "smelter_file_write_failures",
            "Failed writes of the state file and the forecasters file",
            labels=["file"],
        )
        failures.add_metric(["state"], d.state_writes.failures)
        failures.add_metric(["forecasters"], d.forecaster_writes.failures)
        yield failures
        if d.sink is not None:
            tsdb = d.sink.stats()
            points = CounterMetricFamily(
                "smelter_tsdb_points", "Time-series points by outcome", labels=["outcome"]
            )
            for outcome in ("written", "spooled", "replayed", "dropped", "rejected"):
                points.add_metric([outcome], getattr(tsdb, outcome))
            yield points
            yield GaugeMetricFamily(
                "smelter_tsdb_spool_points", "Points waiting in the spool", value=tsdb.spool_points
            )
        alarms = CounterMetricFamily(
            "smelter_plant_alarms", "Plant protection alarms received", labels=["code"]
        )
        for code, n in sorted(core.alarms.items()):
            alarms.add_metric([code], n)
        yield alarms
        suspects = CounterMetricFamily(
            "smelter_suspect_telemetry",
            "Telemetry values the plausibility checks found impossible and corrected",
            labels=["check"],
        )
        for check in CHECKS:
            suspects.add_metric([check], core.plausibility.suspects.get(check, 0))
        yield suspects


def health(daemon: Daemon) -> tuple[int, bytes]:
    stuck_s = time.monotonic() - daemon.stats.last_tick_wall_s
    status = daemon.core.status()
    body = {
        "state": status.state.value,
        "reasons": status.reasons,
        "mqtt_connected": daemon.stats.connected,
        "loop_ok": stuck_s < STUCK_S,
        "lease": daemon.lease.describe(),
    }
    return (200 if stuck_s < STUCK_S else 503), json.dumps(body).encode()


async def serve_http(host: str, port: int, daemon: Daemon) -> ConsoleServer:
    """The daemon's web server: the console (:mod:`controller.console`), ``/metrics`` (the
    daemon's collector, the solve-time histogram and the client library's process, platform
    and garbage-collector collectors) and ``/healthz``."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(DaemonCollector(daemon))
    registry.register(daemon.journal.solve_seconds)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    console = Console(daemon, daemon.journal, daemon.operators, registry, lambda: health(daemon))
    return await start(console, host, port)
