"""The shared broker connection against a real Mosquitto: what a full incoming queue costs."""

from __future__ import annotations

import asyncio
import logging

import aiomqtt
import pytest
from daemon_helpers import mqtt, new_prefix

from harness.mosquitto import MosquittoBroker
from wire.link import INCOMING_DROPS, make_client


async def test_messages_dropped_for_a_full_incoming_queue_are_counted_and_logged_once(
    broker: MosquittoBroker, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A subscriber that does not read while 40 messages arrive, with room for 5: 35 are
    dropped by aiomqtt.  They are counted, the burst is logged once when it starts and summed
    up once when it is over, and the 5 queued are still there to read."""
    caplog.set_level(logging.INFO, logger="wire.link")
    monkeypatch.setattr(INCOMING_DROPS, "QUIET_S", 0.2)
    topic = f"{new_prefix()}/burst"
    before = INCOMING_DROPS.total
    async with make_client(mqtt(broker, "x"), None, default_id="t", max_queued_incoming=5) as sub:
        await sub.subscribe(topic, qos=1)
        async with aiomqtt.Client(broker.host, broker.port, timeout=5) as pub:
            for k in range(40):
                await pub.publish(topic, str(k).encode(), qos=1)
        async with asyncio.timeout(10.0):
            while INCOMING_DROPS.total - before < 35:
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        INCOMING_DROPS.settle()
        got = []
        async with asyncio.timeout(5.0):
            async for message in sub.messages:
                got.append(int(bytes(message.payload)))
                if len(got) == 5:
                    break
    assert INCOMING_DROPS.total - before == 35
    assert got == [0, 1, 2, 3, 4]
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("wire.link")]
    assert sum("dropping messages" in m for m in lines) == 1
    assert sum("35 messages were dropped" in m for m in lines) == 1
