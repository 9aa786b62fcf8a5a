"""The demo's MQTT broker: Mosquitto when it is installed, otherwise amqtt, on a free port.

Either runs as a child process on 127.0.0.1 (anonymous, no persistence), with its log in the
demo's run folder, and is stopped with SIGTERM.  amqtt (a pure-Python broker, MQTT 3.1.1 only)
lets the demo run on a machine with only Python; the clients then speak MQTT 3.1.1 to it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

HOST: Final = "127.0.0.1"
START_TIMEOUT_S: Final = 15.0
STOP_TIMEOUT_S: Final = 5.0
_SBIN_DIRS: Final = "/usr/sbin:/usr/local/sbin"

BrokerKind = Literal["mosquitto", "amqtt"]


class BrokerError(RuntimeError):
    """No broker could be started (the message says why)."""


def find_mosquitto() -> str | None:
    """The mosquitto executable; Debian puts it in /usr/sbin, often not on a user's PATH."""
    return shutil.which("mosquitto") or shutil.which("mosquitto", path=_SBIN_DIRS)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _listening(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.2):
            return True
    except OSError:
        return False


@dataclass
class LocalBroker:
    """A broker process of ours on ``127.0.0.1:port``."""

    kind: BrokerKind
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"mqtt://{HOST}:{self.port}"

    @property
    def protocol(self) -> Literal["3.1.1", "5"]:
        """The MQTT version its clients should speak."""
        return "5" if self.kind == "mosquitto" else "3.1.1"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_broker(workdir: Path, prefer: BrokerKind | None = None) -> LocalBroker:
    """Start Mosquitto if it is installed (or ``prefer`` says so), else the embedded amqtt.

    Raises:
        BrokerError: neither could be started; the message says what to install.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    mosquitto = find_mosquitto()
    kind: BrokerKind = prefer or ("mosquitto" if mosquitto else "amqtt")
    port = free_port()
    log = workdir / f"{kind}.log"
    ready = workdir / "amqtt.ready"
    if kind == "mosquitto":
        if mosquitto is None:
            raise BrokerError("mosquitto is not installed (apt-get install mosquitto)")
        config = workdir / "mosquitto.conf"
        config.write_text(_mosquitto_config(port, log), encoding="utf-8")
        argv = [mosquitto, "-c", str(config)]
    else:
        try:
            import amqtt  # noqa: F401, PLC0415  (only to say clearly that it is missing)
        except ImportError:
            raise BrokerError(
                "no MQTT broker: install Mosquitto (apt-get install mosquitto) or the embedded "
                "one (pip install 'smelter-ems[demo]'), or pass --broker URL"
            ) from None
        ready.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "harness.demo.embedded_broker", str(port), str(ready)]
    with log.open("ab") as stderr:
        # its own session: a Ctrl-C reaches the demo, which stops the broker last
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
    broker = LocalBroker(kind, port, process)
    deadline = time.monotonic() + START_TIMEOUT_S
    # amqtt logs an error for a connection that sends nothing: it says itself when it listens
    while not (ready.exists() if kind == "amqtt" else _listening(port)):
        if process.poll() is not None:
            raise BrokerError(f"{kind} exited with {process.returncode}; see {log}")
        if time.monotonic() > deadline:
            broker.stop()
            raise BrokerError(f"{kind} did not listen within {START_TIMEOUT_S:g} s; see {log}")
        time.sleep(0.02)
    return broker


def _mosquitto_config(port: int, log: Path) -> str:
    lines = [
        f"listener {port} {HOST}",
        "allow_anonymous true",
        "persistence false",
        f"log_dest file {log}",
        "log_type error",
        "log_type warning",
        "log_type notice",
    ]
    if os.geteuid() == 0:
        # as root, mosquitto drops to user "mosquitto", which cannot write our log file
        lines.append(f"user {pwd.getpwuid(os.geteuid()).pw_name}")
    return "\n".join(lines) + "\n"
