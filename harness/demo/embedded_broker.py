"""``python -m harness.demo.embedded_broker PORT READY_FILE``: amqtt on 127.0.0.1:PORT until
SIGTERM/SIGINT; READY_FILE is created once it listens.

The demo's broker where Mosquitto is not installed (:mod:`harness.demo.broker`): anonymous
clients, MQTT 3.1.1, retained messages in memory, no $SYS topics.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path

from amqtt.broker import Broker


async def serve(port: int, ready: Path) -> None:
    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {}},
        }
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await broker.start()
    ready.touch()
    try:
        await stop.wait()
    finally:
        await broker.shutdown()


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if len(sys.argv) != 3 or not sys.argv[1].isdigit():
        print("usage: python -m harness.demo.embedded_broker PORT READY_FILE", file=sys.stderr)
        return 2
    asyncio.run(serve(int(sys.argv[1]), Path(sys.argv[2])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
