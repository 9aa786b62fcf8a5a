"""The broker as deploy/mosquitto/ configures it, for tests: TLS, passwords, the ACL of four roles.

:func:`make_secrets` runs ``deploy/make-secrets.sh`` (a throwaway CA, the broker's
certificate, a password per role); :class:`DeployedBroker` runs ``deploy/mosquitto/
smelter-ems.conf`` with only its port and the directory of its files changed (and a log file
added), and the shipped ACL copied where that configuration expects it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path

import aiomqtt

from harness.mosquitto import MosquittoBroker

REPO = Path(__file__).resolve().parents[1]
MOSQUITTO_DIR = REPO / "deploy" / "mosquitto"
INSTALLED_DIR = "/etc/mosquitto/smelter-ems/"
"""Where the shipped configuration expects the ACL, the certificates and the password file."""
ROLES = ("controller", "plant", "operator", "viewer")
PREFIX = "smelter"
"""The topic prefix the shipped ACL is written for."""


def make_secrets(directory: Path) -> None:
    subprocess.run(
        [str(REPO / "deploy" / "make-secrets.sh"), str(directory), "127.0.0.1", "localhost"],
        check=True,
        capture_output=True,
    )


def deployed_config(port: int, directory: Path, log_path: Path) -> str:
    """The shipped configuration, listening on ``port`` on loopback, its files in ``directory``."""
    text = (MOSQUITTO_DIR / "smelter-ems.conf").read_text(encoding="utf-8")
    assert text.count("\nlistener 8883\n") == 1, "the shipped config has one listener, on 8883"
    assert INSTALLED_DIR in text
    text = text.replace("\nlistener 8883\n", f"\nlistener {port} 127.0.0.1\n")
    text = text.replace(INSTALLED_DIR, f"{directory}/")
    extra = [f"log_dest file {log_path}", "log_type all"]
    if os.geteuid() == 0:  # see MosquittoBroker._config_text
        extra.append(f"user {pwd.getpwuid(os.geteuid()).pw_name}")
    return text + "\n" + "\n".join(extra) + "\n"


class DeployedBroker(MosquittoBroker):
    """Mosquitto with the shipped configuration; its secrets and ACL in ``workdir``."""

    def __init__(self, executable: str, workdir: Path) -> None:
        make_secrets(workdir)
        shutil.copy(MOSQUITTO_DIR / "acl", workdir / "acl")
        self.secrets = workdir
        super().__init__(executable, workdir)

    @property
    def url(self) -> str:
        return f"mqtts://{self.host}:{self.port}"

    def _config_text(self) -> str:
        return deployed_config(self.port, self.workdir, self.log_path)

    def password_file(self, role: str) -> Path:
        return self.secrets / f"{role}.password"

    @property
    def ca_file(self) -> Path:
        return self.secrets / "ca.crt"

    def client(
        self,
        role: str | None,
        *,
        password: str | None = None,
        ca_file: Path | None = None,
        tls: bool = True,
    ) -> aiomqtt.Client:
        """An MQTT 5 client logged in as ``role`` (None: anonymous) with the role's password
        (or ``password``), checking the broker against the throwaway CA (or ``ca_file``)."""
        if role is not None and password is None:
            password = self.password_file(role).read_text(encoding="utf-8")
        return aiomqtt.Client(
            self.host,
            self.port,
            username=role,
            password=password,
            protocol=aiomqtt.ProtocolVersion.V5,
            timeout=5,
            tls_params=aiomqtt.TLSParameters(ca_certs=str(ca_file or self.ca_file))
            if tls
            else None,
        )
