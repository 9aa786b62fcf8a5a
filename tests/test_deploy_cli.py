"""Defaults safe to run from anywhere, and the broker login from the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from controller.config import ControllerSection, state_directory
from smelter_ems.cli import build_parser
from wire.link import MqttSettings, mqtt_from_args
from wire.tomlfile import FileError


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"STATE_DIRECTORY": "/var/lib/smelter-ems", "HOME": "/h"}, "/var/lib/smelter-ems"),
        # several StateDirectory= entries: systemd joins them with ':'
        ({"STATE_DIRECTORY": "/var/lib/a:/var/lib/b"}, "/var/lib/a"),
        ({"XDG_STATE_HOME": "/x/state", "HOME": "/h"}, "/x/state/smelter-ems"),
        ({"XDG_STATE_HOME": "relative", "HOME": "/h"}, "/h/.local/state/smelter-ems"),
        ({"HOME": "/h"}, "/h/.local/state/smelter-ems"),
    ],
)
def test_the_state_lives_in_the_platforms_state_directory(
    environ: dict[str, str], expected: str
) -> None:
    assert state_directory(environ) == Path(expected)


def test_no_state_file_configured_is_never_the_current_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert ControllerSection().resolved_state_file == tmp_path / "smelter-ems" / "state.json"
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/smelter-ems")
    assert ControllerSection().resolved_state_file == Path("/var/lib/smelter-ems/state.json")


def _mqtt(*argv: str, config: MqttSettings | None = None) -> MqttSettings:
    args = build_parser().parse_args(["run", *argv])
    return mqtt_from_args(config or MqttSettings(), args)


def test_the_broker_login_comes_from_the_command_line_too() -> None:
    configured = MqttSettings(
        url="mqtts://broker:8883", username="old", password_env="SECRET", protocol="5"
    )
    got = _mqtt(
        "--mqtt-username",
        "controller",
        "--mqtt-password-file",
        "/etc/smelter-ems/mqtt.password",
        "--mqtt-ca-file",
        "/etc/smelter-ems/ca.crt",
        "--mqtt-cert-file",
        "/c.crt",
        "--mqtt-key-file",
        "/c.key",
        config=configured,
    )
    assert got.username == "controller"
    assert got.password_file == "/etc/smelter-ems/mqtt.password"
    assert got.password_env is None  # the file given on the command line replaces it
    assert got.tls is not None
    assert (got.tls.ca_file, got.tls.cert_file, got.tls.key_file) == (
        "/etc/smelter-ems/ca.crt",
        "/c.crt",
        "/c.key",
    )
    assert got.url == "mqtts://broker:8883"
    assert _mqtt(config=configured) == configured  # no flag: the config as it is


@pytest.mark.parametrize(
    ("argv", "flag", "reason"),
    [
        (["--mqtt-ca-file", "/ca.crt"], "--mqtt-ca-file", "needs an mqtts:// broker URL"),
        (["--broker", "http://x:1"], "--broker", "Expected `str` matching regex"),
    ],
)
def test_a_bad_flag_is_named(argv: list[str], flag: str, reason: str) -> None:
    with pytest.raises(FileError) as caught:
        _mqtt(*argv)
    assert caught.value.key == flag
    assert reason in caught.value.reason


def test_run_says_which_flag_is_wrong(tmp_path: Path) -> None:
    argv = ["run", "--site", str(tmp_path / "x.toml"), "--broker", "mqtt://127.0.0.1:1"]
    done = subprocess.run(
        [sys.executable, "-m", "smelter_ems.cli", *argv, "--mqtt-ca-file", "/ca.crt"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "key '--mqtt-ca-file' = 'mqtt://127.0.0.1:1': needs an mqtts:// broker URL" in (
        done.stderr
    )
