"""The demo's MQTT broker: Mosquitto when it is installed, otherwise amqtt, on a free port.

Either runs as a child process on 127.0.0.1 (anonymous, no persistence) in a session of its own,
with its log in the demo's run folder, and is stopped with SIGTERM.  amqtt (a pure-Python
broker, MQTT 3.1.1 only) lets the demo run on a machine with only Python; the clients then
speak MQTT 3.1.1 to it.  Mosquitto is :class:`harness.mosquitto.MosquittoBroker`, the tests'.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from harness.mosquitto import HOST, MosquittoBroker, find_mosquitto, free_port
from harness.processes import stop_process

START_TIMEOUT_S: Final = 15.0
STOP_TIMEOUT_S: Final = 5.0

BrokerKind = Literal["mosquitto", "amqtt"]


class BrokerError(RuntimeError):
    """No broker could be started (the message says why)."""


@dataclass
class LocalBroker:
    """A broker process of ours on ``127.0.0.1:port``."""

    kind: BrokerKind
    port: int
    mosquitto: MosquittoBroker | None = None
    amqtt: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{HOST}:{self.port}"

    @property
    def protocol(self) -> Literal["3.1.1", "5"]:
        """The MQTT version its clients should speak."""
        return "5" if self.kind == "mosquitto" else "3.1.1"

    def stop(self) -> None:
        if self.mosquitto is not None:
            self.mosquitto.stop(timeout_s=STOP_TIMEOUT_S)
        if self.amqtt is not None:
            stop_process(self.amqtt, STOP_TIMEOUT_S)


def start_broker(workdir: Path, prefer: BrokerKind | None = None) -> LocalBroker:
    """Start Mosquitto if it is installed (or ``prefer`` says so), else the embedded amqtt.

    Raises:
        BrokerError: neither could be started; the message says what to install.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    mosquitto = find_mosquitto()
    if prefer == "amqtt" or (prefer is None and mosquitto is None):
        return _start_amqtt(workdir)
    if mosquitto is None:
        raise BrokerError("mosquitto is not installed (apt-get install mosquitto)")
    # its own session: a Ctrl-C reaches the demo, which stops the broker last
    broker = MosquittoBroker(mosquitto, workdir, own_session=True)
    try:
        broker.start(START_TIMEOUT_S)
    except RuntimeError as exc:
        raise BrokerError(f"{exc}; see {broker.log_path}") from None
    return LocalBroker("mosquitto", broker.port, mosquitto=broker)


def _start_amqtt(workdir: Path) -> LocalBroker:
    try:
        import amqtt  # noqa: F401, PLC0415  (only to say clearly that it is missing)
    except ImportError:
        raise BrokerError(
            "no MQTT broker: install Mosquitto (apt-get install mosquitto) or the embedded "
            "one (pip install 'smelter-ems[demo]'), or pass --broker URL"
        ) from None
    port = free_port()
    log, ready = workdir / "amqtt.log", workdir / "amqtt.ready"
    ready.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "harness.demo.embedded_broker", str(port), str(ready)]
    with log.open("ab") as stderr:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
    broker = LocalBroker("amqtt", port, amqtt=process)
    deadline = time.monotonic() + START_TIMEOUT_S
    # amqtt logs an error for a connection that sends nothing: it says itself when it listens
    while not ready.exists():
        if process.poll() is not None:
            raise BrokerError(f"amqtt exited with {process.returncode}; see {log}")
        if time.monotonic() > deadline:
            broker.stop()
            raise BrokerError(f"amqtt did not listen within {START_TIMEOUT_S:g} s; see {log}")
        time.sleep(0.02)
    return broker
