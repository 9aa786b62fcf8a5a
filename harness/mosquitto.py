"""A Mosquitto broker of our own, on a free loopback port with a generated config: the demo's
(:mod:`harness.demo.broker`), the tests' and the benches'.

The broker can be stopped and started again on the same port, so tests can take it away
under a connected client and bring it back.  With ``users`` it takes only those users (a
password file made by ``mosquitto_passwd``) and applies an ACL file, which a test may rewrite
and have the broker read again (:meth:`MosquittoBroker.reload`, SIGHUP).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from harness.processes import stop_process

HOST: Final = "127.0.0.1"
_SBIN_DIRS: Final = "/usr/sbin:/usr/local/sbin"


def find_mosquitto() -> str | None:
    """The mosquitto executable; Debian puts it in /usr/sbin, often not on a user's PATH."""
    return shutil.which("mosquitto") or shutil.which("mosquitto", path=_SBIN_DIRS)


def free_port() -> int:
    """A TCP port free on the loopback address now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def accepts_connections(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class MosquittoBroker:
    """One mosquitto process with its config and log in ``workdir``."""

    def __init__(
        self,
        executable: str,
        workdir: Path,
        *,
        users: Mapping[str, str] | None = None,
        acl: str = "",
        own_session: bool = False,
    ) -> None:
        self.executable = executable
        self.host = HOST
        self.port = free_port()
        self.workdir = workdir
        self.config_path = workdir / "mosquitto.conf"
        self.log_path = workdir / "mosquitto.log"
        self.acl_path = workdir / "acl"
        self.users = dict(users or {})
        """User → password; empty: anonymous clients, no ACL."""
        self.own_session = own_session
        """Run it in a session of its own: a Ctrl-C at the terminal does not reach it (the demo
        stops it last)."""
        self._process: subprocess.Popen[bytes] | None = None
        if self.users:
            self._write_passwords()
            self.acl_path.write_text(acl, encoding="utf-8")
        self.config_path.write_text(self._config_text(), encoding="utf-8")

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _write_passwords(self) -> None:
        passwd = shutil.which("mosquitto_passwd") or shutil.which(
            "mosquitto_passwd", path=_SBIN_DIRS
        )
        if passwd is None:
            raise RuntimeError("mosquitto_passwd not found (it comes with mosquitto)")
        path = self.workdir / "passwords"
        for i, (user, password) in enumerate(self.users.items()):
            create = ["-c"] if i == 0 else []
            subprocess.run([passwd, *create, "-b", str(path), user, password], check=True)

    def write_acl(self, acl: str) -> None:
        """Replace the ACL file (it takes effect at :meth:`reload`)."""
        self.acl_path.write_text(acl, encoding="utf-8")

    def reload(self) -> None:
        """SIGHUP: the broker reads its password and ACL files again."""
        if self._process is not None:
            self._process.send_signal(signal.SIGHUP)

    def _config_text(self) -> str:
        access = (
            [
                "allow_anonymous false",
                f"password_file {self.workdir / 'passwords'}",
                f"acl_file {self.acl_path}",
            ]
            if self.users
            else ["allow_anonymous true"]
        )
        lines = [
            f"listener {self.port} {self.host}",
            *access,
            "persistence false",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
        ]
        if os.geteuid() == 0:
            # As root, mosquitto drops to user "mosquitto" before opening its log file, which it
            # then cannot write in our temporary directory; keep the current user instead.
            lines.append(f"user {pwd.getpwuid(os.geteuid()).pw_name}")
        return "\n".join(lines) + "\n"

    def start(self, timeout_s: float = 10.0) -> None:
        """Start the broker (no-op when running) and wait until it accepts connections."""
        if self.running:
            return
        with (self.workdir / "mosquitto.stderr").open("ab") as stderr:
            self._process = subprocess.Popen(
                [self.executable, "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=self.own_session,
            )
        deadline = time.monotonic() + timeout_s
        while not accepts_connections(self.host, self.port):
            if self._process.poll() is not None:
                code = self._process.returncode
                self._process = None
                raise RuntimeError(f"mosquitto exited with {code}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mosquitto did not listen within {timeout_s} s")
            time.sleep(0.02)

    def stop(self, *, kill: bool = False, timeout_s: float = 5.0) -> None:
        """Stop the broker: SIGTERM (clean) or SIGKILL (``kill``, like a crash)."""
        process, self._process = self._process, None
        if process is not None:
            stop_process(process, timeout_s, kill=kill)

    def log_tail(self, lines: int = 20) -> str:
        texts = []
        for path in (self.log_path, self.workdir / "mosquitto.stderr"):
            if path.exists():
                texts.extend(path.read_text(encoding="utf-8", errors="replace").splitlines())
        return "\n".join(texts[-lines:])
