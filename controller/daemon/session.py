"""The daemon's broker link: one connection at a time, with backoff, and what waits to be sent.

What the daemon publishes is queued here (:meth:`BrokerSession.queue`); lease messages go ahead
of everything else (:meth:`BrokerSession.send_urgent`); the retained ones are kept and sent
again on every connection.  Each publication is routed as it leaves (:mod:`.outbound`: a
setpoint only while this instance holds the lease) and its MQTT 5 PUBACK read
(:mod:`.paho_hooks`): a refusal is a lasting trouble (:mod:`.troubles`).  The connection closes
cleanly only once the broker has taken the ``offline`` status of a stop (the farewell);
otherwise it is dropped, so that the broker publishes the last will.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import aiomqtt

from controller.core.ports import Publication
from controller.daemon.paho_hooks import PubackWatch, drop_connection
from wire import ControllerState, ControllerStatus, encode
from wire.link import PUBLISH_TIMEOUT_S, Backoff, LinkLog, make_client
from wire.tasks import sleep_unless_stopped, until_first_done

if TYPE_CHECKING:
    from controller.daemon.service import Daemon

log = logging.getLogger(__name__)

MAX_PENDING: Final = 1000
"""Publications queued while the link is down; setpoints among them are dropped first."""


@dataclass
class LinkStats:
    connected: bool = False
    connects: int = 0
    dropped_publications: int = 0
    published: int = 0
    last_tick_wall_s: float = field(default_factory=time.monotonic)


class BrokerSession:
    """The broker link of ``daemon``: it feeds what it hears to the daemon, and sends what the
    daemon queues."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.stats = LinkStats()
        self.pending: deque[Publication] = deque()
        self.urgent: deque[Publication] = deque()
        """Lease messages: published before anything else that waits."""
        self.in_flight: Publication | None = None
        self.retained: dict[str, Publication] = {}
        self.acks: PubackWatch | None = None
        self.farewell: Publication | None = None
        """The ``offline`` status of a stop; once the broker has taken it, the connection may
        close cleanly (which discards the last will)."""
        self.farewell_taken = False
        self.connected_s = 0.0
        """When the present connection began (wall, monotonic)."""
        self.wake = asyncio.Event()

    # --- the outbox -----------------------------------------------------------------------

    def queue(self, pub: Publication) -> None:
        if pub.retain:
            self.retained[pub.topic] = pub
        if not self.stats.connected and not pub.retain:
            self.stats.dropped_publications += 1  # a setpoint for a link that is down is moot
            return
        self.pending.append(pub)
        while len(self.pending) > MAX_PENDING:
            self.pending.popleft()
            self.stats.dropped_publications += 1
        self.wake.set()

    def send_urgent(self, pub: Publication) -> None:
        self.urgent.append(pub)
        self.wake.set()

    def send_retained_again(self, topic: str) -> None:
        """Queue the last retained publication on ``topic`` again, if there is one."""
        pub = self.retained.get(topic)
        if pub is not None:
            self.pending.append(pub)
            self.wake.set()

    def say_farewell(self, pub: Publication) -> None:
        """Queue the ``offline`` status of a stop."""
        self.farewell = pub
        self.queue(pub)

    async def wait_sent(self, timeout_s: float) -> None:
        """Wait until the queued publications are sent; say what is left when they are not."""
        monotonic = self.daemon.monotonic
        deadline = monotonic() + timeout_s
        while self.pending or self.in_flight is not None:
            if not self.stats.connected:
                log.warning("stopping: broker not connected: %s unsent", self.unsent())
                return
            if monotonic() >= deadline:
                log.warning("stopping: after %g s, %s unsent", timeout_s, self.unsent())
                return
            await asyncio.sleep(0.02)

    def unsent(self) -> str:
        """What is still queued, by kind of topic: "2 setpoints, 1 status"."""
        unsent = [*self.pending, *([self.in_flight] if self.in_flight is not None else [])]
        kinds = Counter(
            "setpoints" if "/command/" in p.topic else p.topic.rsplit("/", 1)[-1] for p in unsent
        )
        return ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))

    # --- the connection -------------------------------------------------------------------

    async def stay_connected(self, stop: asyncio.Event) -> None:
        d = self.daemon
        settings = d.config.mqtt
        backoff = Backoff()
        link_log = LinkLog(settings.url, while_down="the plant falls back on its own", logger=log)
        offline = ControllerStatus(
            ts=0.0,
            state=ControllerState.OFFLINE,
            reasons=["controller connection lost"],
            instance=d.instance,
        )
        will = aiomqtt.Will(d.topics.status(), encode(offline), qos=1, retain=True)
        while not stop.is_set():
            client = make_client(
                settings, d.password, default_id=f"smelter-ems-{d.instance}", will=will
            )
            self.acks = PubackWatch(client)
            failure: Exception | None = None
            try:
                async with client:
                    self.farewell_taken = False
                    try:
                        await self._serve(client, stop, link_log, backoff)
                    except (aiomqtt.MqttError, asyncio.CancelledError):
                        raise
                    except Exception as exc:  # a bug: say offline, then let the daemon stop
                        failure = exc
                        log.exception("the broker link failed")
                        await self._say_failed(client, exc)
                    finally:
                        if not self.farewell_taken:
                            drop_connection(client)  # the broker publishes the last will
            except aiomqtt.MqttError as exc:
                if failure is None:
                    d.lease.disconnected()
                    d.follow_lease(d.monotonic())
                    link_log.down(exc)
                    await sleep_unless_stopped(stop, backoff.next_delay_s())
            if failure is not None:
                raise failure

    async def _serve(
        self,
        client: aiomqtt.Client,
        stop: asyncio.Event,
        link_log: LinkLog,
        backoff: Backoff,
    ) -> None:
        """One connection: subscribe, then receive and publish until it ends or ``stop``."""
        d = self.daemon
        topics = d.topics
        await client.subscribe(
            [
                (topics.telemetry_filter, 0),
                (f"{topics.prefix}/forecast/#", 1),
                (topics.alarm(), 1),
                (topics.mode(), 1),
                (topics.lease(), 1),
                (topics.status(), 1),
            ]
        )
        link_log.up()
        backoff.reset()
        self.stats.connected = True
        self.stats.connects += 1
        self.connected_s = d.monotonic()
        d.lease.connected(self.connected_s)
        d.follow_lease(d.monotonic())
        d.core.force_status()
        self.pending.extend(self.retained.values())
        self.wake.set()
        try:
            await until_first_done(self._receive(client), self._publish(client), stop.wait())
            await self._publish_pending(client)
        finally:
            self.stats.connected = False

    async def _say_failed(self, client: aiomqtt.Client, exc: Exception) -> None:
        """The link failed (a bug): try to say ``offline`` with the reason before the connection
        goes; if the broker does not take it, the connection is dropped and the will says it."""
        d = self.daemon
        farewell = d.offline_status(d.monotonic(), f"controller failed: {said(exc)}")
        with contextlib.suppress(Exception):
            out = d.outbound.route(farewell, active=d.is_active) or farewell
            await client.publish(
                out.topic,
                out.payload,
                qos=out.qos,
                retain=out.retain,
                timeout=d.config.controller.shutdown_stage_s,
            )
            self.farewell_taken = self.acks is None or self.acks.take() is None

    async def _receive(self, client: aiomqtt.Client) -> None:
        d = self.daemon
        core = d.core
        monotonic = d.monotonic
        controller_topics = (d.topics.lease(), d.topics.status())
        async for message in client.messages:
            payload = message.payload
            data = payload if isinstance(payload, bytes | bytearray) else str(payload).encode()
            topic = message.topic.value
            if topic in controller_topics:
                d.on_controller_message(topic, bytes(data), message.retain, monotonic())
            else:
                core.on_message(topic, data, monotonic())
            if core.has_output:  # a mode command queues setpoints at once
                d.flush()

    async def _publish(self, client: aiomqtt.Client) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            await self._publish_pending(client)

    async def _publish_pending(self, client: aiomqtt.Client) -> None:
        d = self.daemon
        while self.urgent or self.pending:
            pub = (self.urgent or self.pending).popleft()
            out = d.outbound.route(pub, active=d.is_active)
            if out is None:
                continue
            self.in_flight = pub
            try:
                await client.publish(
                    out.topic,
                    out.payload,
                    qos=out.qos,
                    retain=out.retain,
                    timeout=PUBLISH_TIMEOUT_S,
                )
            except BaseException:
                if pub.topic != d.topics.lease():  # a stale claim is not worth sending again
                    self.pending.appendleft(pub)
                raise
            finally:
                self.in_flight = None
            self.stats.published += 1
            refused = self.acks.take() if self.acks is not None else None
            d.refusals.outcome(d.outbound.kind(pub.topic), out.topic, refused)
            if pub is self.farewell and refused is None:
                self.farewell_taken = True


def said(exc: BaseException) -> str:
    """An exception in a few words for a status reason or a log line."""
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return f"{type(exc).__name__}: {text}"[:300]
