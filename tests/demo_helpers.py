"""Helpers for the tests that run ``smelter-ems demo`` as a user does: a process of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

SCENARIO = "yunnan-hydro-solar"


def require(what: str, found: object) -> None:
    """Skip when ``found`` is falsy, or fail under ``REQUIRE_SERVICES=1`` (CI)."""
    if found:
        return
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(f"{what} is not installed (REQUIRE_SERVICES=1)")
    pytest.skip(f"{what} is not installed")


def demo(out: Path, *argv: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
    """``smelter-ems demo --scenario yunnan-hydro-solar --out OUT ARGV``, its output piped."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "smelter_ems.cli",
            "demo",
            "--scenario",
            SCENARIO,
            "--out",
            str(out),
            *argv,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=None if env is None else dict(env),
    )
