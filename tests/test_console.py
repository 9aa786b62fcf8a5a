"""The console's parts without a broker: credentials, the journal, a read-only console, the
server's answers while the solver is busy.  The page itself is tested in a browser against a
real plant (test_console_browser.py)."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from test_daemon_core import SITE, T0, TOPICS, _feed

from controller.config import ControllerSection, DaemonConfig
from controller.console.journal import HISTORY_STEP_S, Journal
from controller.console.modedesk import REFUSED_PER_WINDOW, REFUSED_WINDOW_S, ModeDesk, describe
from controller.console.operators import TOKEN_ENV, load_operators
from controller.daemon.http import serve_http
from controller.daemon.service import Daemon
from wire import Mode, ModeCommand, PotlineTelemetry
from wire.link import MqttSettings
from wire.tomlfile import FileError


def test_operators_from_a_file_and_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "operators"
    path.write_text("# shift A\nalice:aaaaaaaaaaaaaaaa\n\nbob : bbbbbbbbbbbbbbbb\n")
    ops = load_operators(str(path), {TOKEN_ENV: "ignored-when-a-file-is-named"})
    assert ops.who("Bearer aaaaaaaaaaaaaaaa") == "alice"
    assert ops.who("Bearer bbbbbbbbbbbbbbbb") == "bob"
    assert ops.who("Bearer aaaaaaaaaaaaaaab") is None
    assert ops.who("Basic aaaaaaaaaaaaaaaa") is None and ops.who(None) is None
    assert load_operators("", {TOKEN_ENV: "cccccccccccccccc"}).who("Bearer cccccccccccccccc") == (
        "operator"
    )
    assert not load_operators("", {}).enabled  # nothing configured: read-only


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("alice\n", "line 1: expected name:token"),
        ("# ok\nalice:short\n", "line 2: the token must have at least 12 chars"),
        ("", "file is empty"),
    ],
)
def test_a_bad_operators_file_is_named_with_the_line_never_the_token(
    tmp_path: Path, text: str, reason: str
) -> None:
    path = tmp_path / "operators"
    path.write_text(text)
    with pytest.raises(FileError) as caught:
        load_operators(str(path), {})
    assert caught.value.key == "controller.operator_tokens_file"
    assert caught.value.reason == reason
    assert "short" not in str(caught.value)


def test_the_journal_keeps_a_row_per_five_minutes_and_turns_moving_counters_into_events() -> None:
    journal = Journal()
    for k in range(31):  # 30 min of 1-min telemetry
        ts = T0 + 60.0 * k
        journal.observe(
            "potline",
            "L1",
            PotlineTelemetry(
                ts=ts, current_ka=400.0, voltage_v=1200.0, power_mw=480.0, pots_online=300
            ),
        )
    rows = journal.rows()
    assert rows["ts"] == [T0 + HISTORY_STEP_S * k for k in range(7)]
    assert set(rows["load_mw"]) == {480.0}
    journal.poll(T0, "running", {"bad_ts": 0}, {})
    journal.poll(T0, "degraded", {"bad_ts": 3}, {"bess_soc": 1})
    journal.poll(T0, "degraded", {"bad_ts": 3}, {"bess_soc": 1})  # nothing moved
    events = journal.since(0)
    assert [(e["kind"], e["code"]) for e in events] == [
        ("state", "degraded"),
        ("rejected", "bad_ts"),
        ("suspect", "bess_soc"),
    ]
    assert events[1]["message"] == "3 messages refused (bad_ts)"
    assert journal.since(journal.last_seq) == []


def test_describe_names_the_manual_setpoints() -> None:
    command = ModeCommand(
        ts=T0, mode=Mode.MANUAL, potline_current_ka={"L1": 390.0}, bess_power_mw={"B1": -50.0}
    )
    assert describe(command) == "manual (L1 390 ka, B1 -50 mw)"
    assert describe(ModeCommand(ts=T0, mode=Mode.HOLD)) == "hold"


def _request(url: str, body: dict[str, Any] | None = None, token: str = "") -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = json.dumps(body).encode() if body is not None else None
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data, headers), timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _daemon(tmp_path: Path, environ: dict[str, str]) -> Daemon:
    config = DaemonConfig(
        mqtt=MqttSettings(topic_prefix=TOPICS.prefix),
        controller=ControllerSection(state_file=str(tmp_path / "s.json")),
    )
    return Daemon(config, SITE, environ=environ)


async def test_without_a_credential_the_console_is_read_only(tmp_path: Path) -> None:
    daemon = _daemon(tmp_path, {})
    _feed(daemon.core, T0, 0.0)
    server = await serve_http("127.0.0.1", 0, daemon)
    url = f"http://127.0.0.1:{server.port}"
    try:
        code, body = await asyncio.to_thread(_request, f"{url}/api/mode", {"mode": "hold"}, "x")
        assert code == 403 and b"read-only" in body
        code, body = await asyncio.to_thread(_request, f"{url}/api/status")
        status = json.loads(body)
        assert code == 200 and status["operators"] is False and status["mode"]["mode"] == "auto"
        assert [line["name"] for line in status["lines"]] == [ln.name for ln in SITE.lines]
        code, body = await asyncio.to_thread(_request, f"{url}/")
        assert code == 200 and b"/static/uPlot.iife.min.js" in body
        for path in ("/static/uPlot.iife.min.js", "/static/uPlot-LICENSE.txt"):
            assert (await asyncio.to_thread(_request, url + path))[0] == 200
        # a name that would resolve to a served file through a path join, a hidden file, code
        for path in ("/static/..%2Fstatic%2Fconsole.js", "/static/.x.js", "/static/app.py"):
            assert (await asyncio.to_thread(_request, url + path))[0] == 404
    finally:
        await server.close()
    assert daemon.core.mode.mode == Mode.AUTO


async def test_a_token_without_a_broker_is_refused_with_the_reason(tmp_path: Path) -> None:
    daemon = _daemon(tmp_path, {"SMELTER_OPERATOR_TOKEN": "alice:aaaaaaaaaaaaaaaa"})
    _feed(daemon.core, T0, 0.0)
    server = await serve_http("127.0.0.1", 0, daemon)
    url = f"http://127.0.0.1:{server.port}/api/mode"
    try:
        code, body = await asyncio.to_thread(_request, url, {"mode": "hold"})
        assert code == 401
        code, body = await asyncio.to_thread(_request, url, {"mode": "hold"}, "aaaaaaaaaaaaaaaa")
        assert code == 503 and b"not connected to the broker" in body
    finally:
        await server.close()
    who = [e["who"] for e in daemon.journal.since(0) if e["kind"] == "operator"]
    assert who == ["", "alice"]  # the anonymous attempt, then alice's refusal


def test_refused_requests_are_journaled_at_most_five_a_minute_per_address(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    wall_s = [0.0]
    config = DaemonConfig(
        mqtt=MqttSettings(topic_prefix=TOPICS.prefix),
        controller=ControllerSection(state_file=str(tmp_path / "s.json")),
    )
    daemon = Daemon(config, SITE, environ={}, monotonic=lambda: wall_s[0])
    desk = ModeDesk(daemon, daemon.journal)

    def flood(remote: str, n: int) -> list[str]:
        seq = daemon.journal.last_seq
        for _ in range(n):
            assert desk.refuse_unauthenticated(remote, 401, "no credential").http_status == 401
            wall_s[0] += 0.5
        return [str(e["message"]) for e in daemon.journal.since(seq)]

    first = flood("10.0.0.1", 100)  # in 50 s
    assert (
        first[:REFUSED_PER_WINDOW]
        == ["mode change from 10.0.0.1 refused: no credential"] * REFUSED_PER_WINDOW
    )
    assert first[REFUSED_PER_WINDOW:] == [
        f"more than {REFUSED_PER_WINDOW} mode changes from 10.0.0.1 refused within 60 s: "
        "the rest are not journaled"
    ]
    logged = [r for r in caplog.records if r.name == "controller.console.modedesk"]
    assert len(logged) == len(first)  # the log is spared the flood too
    # another address has its own quota meanwhile
    assert len(flood("10.0.0.2", 20)) == REFUSED_PER_WINDOW + 1
    # the next minute: journaled again, with the count of those that were not
    wall_s[0] += REFUSED_WINDOW_S
    again = flood("10.0.0.1", 1)
    unjournaled = 100 - REFUSED_PER_WINDOW
    assert again == [
        f"mode change from 10.0.0.1 refused: no credential ({unjournaled} more refused before, "
        "not journaled)"
    ]


async def test_healthz_and_the_api_answer_while_the_solver_is_busy(tmp_path: Path) -> None:
    """The solver has one thread; the web server never waits for it."""
    daemon = _daemon(tmp_path, {})
    _feed(daemon.core, T0, 0.0)
    release = threading.Event()
    busy = asyncio.get_running_loop().run_in_executor(daemon._executor, release.wait, 30.0)
    server = await serve_http("127.0.0.1", 0, daemon)
    url = f"http://127.0.0.1:{server.port}"
    try:
        for path in ("/healthz", "/api/status", "/api/plan", "/api/kpis", "/metrics"):
            code, _ = await asyncio.wait_for(asyncio.to_thread(_request, url + path), 5.0)
            assert code == 200, path
        assert not busy.done()
    finally:
        release.set()
        await busy
        await server.close()
