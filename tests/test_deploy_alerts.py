"""The Prometheus alert rules against the metrics a daemon exports, and against promtool.

Every ``smelter_*`` name in deploy/prometheus/ (the rules and their unit tests) must be a
sample a daemon's ``/metrics`` shows: the exposition is made by the daemon's own collector.
Then ``promtool check rules``, ``check config`` and ``test rules`` (alerts.test.yml: which
alerts fire when) where promtool is installed (Debian: prometheus).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import _missing_service
from daemon_helpers import SCENARIO
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from controller.config import ControllerSection, DaemonConfig
from controller.daemon.http import DaemonCollector
from controller.daemon.service import Daemon
from controller.tsdb import InfluxSettings, open_sink
from harness.site_from_scenario import site_from_scenario

PROMETHEUS = Path(__file__).resolve().parents[1] / "deploy" / "prometheus"
ALERTS = PROMETHEUS / "alerts.yml"


async def exported_samples(tmp_path: Path) -> set[str]:
    """The sample names (counters' with ``_total``) of a daemon's /metrics, with its
    time-series sink open (its metrics are shown only then)."""
    config = DaemonConfig(
        controller=ControllerSection(state_file=str(tmp_path / "s.json"), http_port=0)
    )
    daemon = Daemon(config, site_from_scenario(SCENARIO))
    daemon.sink = open_sink(InfluxSettings(files_dir=str(tmp_path / "points")), token=None)
    try:
        registry = CollectorRegistry()
        registry.register(DaemonCollector(daemon))
        text = generate_latest(registry).decode()
    finally:
        await daemon.sink.close(5.0)
    names = set()
    for family in text_string_to_metric_families(text):
        # a labelled counter with nothing counted yet has no sample, only its family
        names.add(family.name + ("_total" if family.type == "counter" else ""))
        names |= {sample.name for sample in family.samples}
    return names


def rules() -> list[dict[str, object]]:
    doc = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_the_issue_asks_for_these_alerts() -> None:
    names = {rule["alert"] for rule in rules()}
    assert {
        "SmelterControllerNotRunning",
        "SmelterPlansStale",
        "SmelterFallback",
        "SmelterRejectsRising",
        "SmelterTsdbSpoolGrowing",
    } <= names
    for rule in rules():
        assert set(rule) >= {"alert", "expr", "labels", "annotations"}, rule["alert"]


async def test_every_metric_named_is_one_the_daemon_exports(tmp_path: Path) -> None:
    exported = await exported_samples(tmp_path)
    assert "smelter_controller_active" in exported  # the parse found the daemon's metrics
    for path in (ALERTS, PROMETHEUS / "alerts.test.yml"):
        named = set(re.findall(r"\bsmelter_[a-z_]+\b", path.read_text(encoding="utf-8")))
        named -= {"smelter_ems"}
        assert named, path
        assert named <= exported, f"{path.name}: not exported: {sorted(named - exported)}"


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        _missing_service("promtool is not installed (apt-get install prometheus)")
    return path


@pytest.mark.parametrize(
    "argv",
    [
        ["check", "rules", "alerts.yml"],
        ["check", "config", "prometheus.yml"],
        ["test", "rules", "alerts.test.yml"],
    ],
    ids=" ".join,
)
def test_promtool(argv: list[str]) -> None:
    done = subprocess.run(
        [_promtool(), *argv],
        cwd=PROMETHEUS,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr
