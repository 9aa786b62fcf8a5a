"""``smelter-ems demo --influx-url``: the daemon it starts logs to a time-series server instead of
line-protocol files.  A real VictoriaMetrics (tests/victoria.py, its ``/api/v2/write``) takes the
points, behind a proxy that keeps what the daemon sent as org, bucket and token (VictoriaMetrics
ignores them); the points are read back through its export API.

The server is this module's own: the session's holds other tests' points of the same site and
plant time (tests/test_daemon.py), which would mix with the demo's.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import line_protocol_parser
import pytest
from demo_helpers import SCENARIO, demo, require
from victoria import ProxiedRequest, RecordingProxy, VictoriaMetrics, find_victoria_metrics

from harness.demo.command import EXIT_USAGE, demo_command
from harness.demo.figures import FIGURES
from harness.demo.session import prepare_out
from harness.mosquitto import free_port
from harness.site_from_scenario import site_from_scenario
from simulator.scenario import load_scenario
from smelter_ems.cli import build_parser

pytestmark = [pytest.mark.services, pytest.mark.timeout(180)]

DAYS = 0.25
"""Six plant hours, about 20 s at 1,500x: some 23 plans and 90 setpoints a line."""
SPEED = 1500.0
ORG, BUCKET = "smelter-plant", "demo-bucket"
_SCENARIO = load_scenario(SCENARIO)
SITE = site_from_scenario(_SCENARIO)
LINES = {line.name: line for line in SITE.lines}
START_S = _SCENARIO.start
END_S = START_S + DAYS * 86_400.0
STOP_SLACK_S = 3600.0
"""How far past the asked-for end the daemon's clock may go: the plant steps on while the demo
stops it (a 0.2 s tick of the demo's loop is 5 plant-minutes at 1,500x).  An hour is 2.4 wall
seconds, far more than stopping takes; stamps in the wrong unit or on the wall clock would be off
by months at least."""
HORIZON_S = 86_400.0
"""The planner's default horizon: plan points lie up to this far past the plan's time."""
STATE_CODES = {0, 1, 2, 3, 4, 5, 6}  # offline .. standby (docs/influx-schema.md)
RUNNING, STANDBY = 2, 6


def _require_mosquitto() -> None:
    require("mosquitto", shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists())


@pytest.fixture(scope="module")
def own_victoria(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VictoriaMetrics]:
    executable = find_victoria_metrics()
    require("victoria-metrics (apt-get install victoria-metrics)", executable)
    assert executable is not None
    server = VictoriaMetrics(executable, tmp_path_factory.mktemp("victoria-demo"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass(frozen=True)
class InfluxRun:
    out: Path
    stdout: str
    stderr: str
    token: str
    proxy_url: str
    requests: list[ProxiedRequest]
    server: VictoriaMetrics

    def kpis(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads((self.out / "kpis.json").read_text(encoding="utf-8"))
        return result

    def series(self, metric: str) -> list[dict[str, Any]]:
        """Every series of ``metric`` for the demo's site (ask for a day past the plans)."""
        found = self.server.export(metric, end_s=END_S + HORIZON_S + 2 * STOP_SLACK_S)
        return [s for s in found if s["metric"].get("site") == SITE.name]


@pytest.fixture(scope="module")
def influx_run(
    own_victoria: VictoriaMetrics, tmp_path_factory: pytest.TempPathFactory
) -> InfluxRun:
    """One demo run of six plant hours whose daemon logs to the server through the proxy."""
    _require_mosquitto()
    out = tmp_path_factory.mktemp("demo-influx")
    token = f"demo-token-{uuid.uuid4().hex}"
    env = {**os.environ, "INFLUX_TOKEN": token}
    with RecordingProxy(own_victoria.url) as proxy:
        process = demo(
            out,
            *("--days", str(DAYS), "--speed", str(SPEED)),
            *("--influx-url", proxy.url, "--influx-org", ORG, "--influx-bucket", BUCKET),
            env=env,
        )
        stdout, stderr = process.communicate(timeout=150)
    assert process.returncode == 0, stderr[-3000:]
    return InfluxRun(out, stdout, stderr, token, proxy.url, proxy.requests, own_victoria)


def _in_hard_limits(asset: str, values: list[float]) -> bool:
    line = LINES[asset]
    return all(line.hard_min_ka - 1e-6 <= v <= line.hard_max_ka + 1e-6 for v in values)


def _times_s(series: dict[str, Any]) -> list[float]:
    return [ms / 1e3 for ms in series["timestamps"]]


def test_the_report_is_written_and_says_where_the_points_went(influx_run: InfluxRun) -> None:
    out = influx_run.out
    assert (
        influx_run.stdout.strip().splitlines()[-1] == f"report: {(out / 'report.html').resolve()}"
    )
    for name in {*FIGURES, "hourly_share"}:
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    kpis = influx_run.kpis()
    assert kpis["influx"] == {
        "url": influx_run.proxy_url,
        "org": ORG,
        "bucket": BUCKET,
        "unsent_points": 0,
    }
    assert kpis["controller"]["plans"] >= DAYS * 96 * 0.9  # a plan every 15 plant-minutes
    page = (out / "report.html").read_text(encoding="utf-8")
    assert f"InfluxDB at\n<code>{influx_run.proxy_url}</code>, org <code>{ORG}</code>" in page
    assert "did not reach InfluxDB" not in influx_run.stderr
    # no line-protocol files: everything went to the database, nothing waits in the spool
    assert list((out / "points").rglob("*.lp")) == []


def test_every_write_names_the_org_bucket_and_token_it_was_given(influx_run: InfluxRun) -> None:
    requests = influx_run.requests
    assert len(requests) > 10  # batches every 0.5 s over the run
    for r in requests:
        assert (r.path, r.status) == ("/api/v2/write", 204), r
        assert r.query == {"org": [ORG], "bucket": [BUCKET], "precision": ["ms"]}, r
        assert r.authorization == f"Token {influx_run.token}", r
    log = (influx_run.out / "run" / "daemon.log").read_text(encoding="utf-8")
    assert "InfluxDB writer closed" in log
    for text in (log, influx_run.stdout, influx_run.stderr):
        assert influx_run.token not in text  # the token is never logged


def test_the_plants_telemetry_arrived_every_plant_minute(influx_run: InfluxRun) -> None:
    series = {s["metric"]["asset"]: s for s in influx_run.series("telemetry_current_ka")}
    assert set(series) == set(LINES)
    for asset, s in series.items():
        times_ms = s["timestamps"]
        assert times_ms[0] <= (START_S + 60.0) * 1e3  # the first minute the plant reported
        assert {b - a for a, b in itertools.pairwise(times_ms)} == {60_000}, asset
        assert END_S - 15 * 60.0 <= times_ms[-1] / 1e3 <= END_S + STOP_SLACK_S
        assert _in_hard_limits(asset, s["values"]), asset


def test_plans_arrived_whole_within_the_hard_limits(influx_run: InfluxRun) -> None:
    summaries = influx_run.series("plan_steps")
    steps = {s["metric"]["plan_id"]: int(s["values"][0]) for s in summaries}
    # the plans heard on the plan topic, and a first one made in standby, before the lease
    assert len(steps) >= influx_run.kpis()["controller"]["plans"]
    for s in summaries:
        assert s["metric"]["kind"] == "summary" and len(s["timestamps"]) == 1
        assert START_S <= _times_s(s)[0] <= END_S + STOP_SLACK_S
    current = influx_run.series("plan_current_ka")
    assert {(s["metric"]["plan_id"], s["metric"]["asset"]) for s in current} == {
        (p, a) for p in steps for a in LINES
    }
    for s in current:
        plan_id, asset = s["metric"]["plan_id"], s["metric"]["asset"]
        assert len(s["values"]) == steps[plan_id], (plan_id, asset)  # every step of the plan
        assert _in_hard_limits(asset, s["values"]), (plan_id, asset)
        times = _times_s(s)
        assert times[0] >= START_S and times[-1] <= END_S + STOP_SLACK_S + HORIZON_S
    for field in ("hard_min_ka", "hard_max_ka"):
        for s in influx_run.series(f"plan_{field}"):
            limit = getattr(LINES[s["metric"]["asset"]], field)
            assert s["values"] == pytest.approx([limit] * len(s["values"])), field


def test_setpoints_arrived_within_the_hard_limits_each_naming_its_plan(
    influx_run: InfluxRun,
) -> None:
    setpoints = influx_run.series("setpoint_current_ka")
    planned = {s["metric"]["plan_id"] for s in influx_run.series("plan_steps")}
    heard_plans = influx_run.kpis()["controller"]["plans"]
    for asset in LINES:
        mine = [s for s in setpoints if s["metric"]["asset"] == asset]
        mpc = [s for s in mine if s["metric"]["source"] == "mpc"]
        for s in mine:
            assert s["metric"]["kind"] == "potline" and s["metric"]["instance"], s["metric"]
            assert _in_hard_limits(asset, s["values"]), s["metric"]
            assert all(START_S <= t <= END_S + STOP_SLACK_S for t in _times_s(s)), s["metric"]
        from_plans = {s["metric"]["plan_id"] for s in mpc}
        assert from_plans <= planned, asset
        # one plan's setpoints a cycle; a plan heard just before the stop may not have been sent
        assert len(from_plans) >= heard_plans - 1, asset
        # the daemon's last words, written at SIGTERM: the log was flushed to the database
        shutdown = [s for s in mine if s["metric"].get("plan_id") == "shutdown"]
        assert len(shutdown) == 1 and shutdown[0]["metric"]["source"] == "fallback", asset
        assert _times_s(shutdown[0])[0] >= max(t for s in mpc for t in _times_s(s)), asset


def test_the_controllers_status_changes_arrived(influx_run: InfluxRun) -> None:
    (series,) = [
        s for s in influx_run.series("event_state_code") if s["metric"].get("kind") == "status"
    ]
    codes = [int(v) for v in series["values"]]
    assert set(codes) <= STATE_CODES
    assert codes[0] == STANDBY and RUNNING in codes  # waiting for the lease, then in control
    assert all(START_S <= t <= END_S + STOP_SLACK_S for t in _times_s(series))


def test_points_the_database_did_not_take_are_counted_kept_and_reported(tmp_path: Path) -> None:
    """A URL where nothing listens: the demo still writes its report, and says on stderr, in
    kpis.json and on the page how many points wait in ``points/spool`` (and where)."""
    _require_mosquitto()
    url = f"http://127.0.0.1:{free_port()}"
    process = demo(
        tmp_path,
        *("--days", "0.05", "--speed", str(SPEED)),
        *("--influx-url", url, "--influx-org", ORG, "--influx-bucket", BUCKET),
    )
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr[-3000:]
    assert stdout.strip().splitlines()[-1].startswith("report: ")
    spooled = [
        line_protocol_parser.parse_line(line)
        for path in sorted((tmp_path / "points" / "spool").glob("*.lp"))
        for line in path.read_text(encoding="utf-8").splitlines()
    ]
    assert {"telemetry", "plan", "setpoint"} <= {p["measurement"] for p in spooled}
    kpis = json.loads((tmp_path / "kpis.json").read_text(encoding="utf-8"))
    assert kpis["influx"]["unsent_points"] == len(spooled)
    assert f"warning: {len(spooled)} of the daemon's points did not reach InfluxDB at {url}" in (
        stderr
    )
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert f"InfluxDB: {len(spooled)} points)" in page


def test_a_new_demo_empties_the_spool_a_previous_one_left(tmp_path: Path) -> None:
    """Else the daemon would replay the old run's points into the new run's database."""
    run_dir, points = prepare_out(tmp_path)
    (points / "spool").mkdir()
    old = [points / "spool" / "000000000001.lp", points / "points-1.lp", run_dir / "state.json"]
    for path in old:
        path.write_text("setpoint,site=yunnan current_ka=400.0 1780272000000\n", encoding="utf-8")
    kept = run_dir / "site.toml"
    kept.write_text("# rewritten by each run\n", encoding="utf-8")
    prepare_out(tmp_path)
    assert [p for p in old if p.exists()] == [] and kept.exists()


@pytest.mark.parametrize(
    "flags",
    [
        ["--influx-org", ORG],
        ["--influx-url", "http://127.0.0.1:8086", "--influx-org", ORG],
        ["--influx-url", "http://127.0.0.1:8086", "--influx-bucket", BUCKET],
    ],
)
def test_the_influx_flags_go_together(
    flags: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = build_parser().parse_args(["demo", "--out", str(tmp_path), *flags])
    assert demo_command(args) == EXIT_USAGE
    assert "--influx-url, --influx-org and --influx-bucket go together" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing started
