"""The operator console in a real headless browser (Debian's chromium through chromedriver and
selenium), against ``smelter-ems run`` controlling ``smelter-ems simulate`` over Mosquitto.

One plant for the module (the daemon and the simulator as processes at 600x, one browser); the
tests read the page as an operator would.  ``SMELTER_CONSOLE_SCREENSHOT=docs/console.png`` saves
the page with its charts drawn (how docs/console.png was made).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from daemon_helpers import SCENARIO, cli, config_file, new_prefix
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from harness.mosquitto import MosquittoBroker, free_port
from harness.processes import stop_process
from wire import ControllerStatus, decode

pytestmark = pytest.mark.services

TOKEN = "correct-horse-battery-staple"
WAIT_S = 60.0
CHROMIUM = shutil.which("chromium")
DRIVER = shutil.which("chromedriver")


@dataclass
class Plant:
    url: str
    prefix: str
    broker: MosquittoBroker
    driver: Any


def http(url: str, body: dict[str, Any] | None = None, token: str = "") -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _until(check: Any, what: str, timeout_s: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            value = check()
        except (OSError, urllib.error.URLError):
            value = None
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def plant(mosquitto: MosquittoBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plant]:
    if CHROMIUM is None or DRIVER is None:
        message = (
            "chromium and chromedriver are not installed (apt-get install chromium chromium-driver)"
        )
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail(f"{message} (REQUIRE_SERVICES=1)")
        pytest.skip(message)
    mosquitto.start()
    directory = tmp_path_factory.mktemp("console")
    tokens = directory / "operators"
    tokens.write_text(f"# who may change the mode\nalice:{TOKEN}\n", encoding="utf-8")
    tokens.chmod(0o600)
    port, prefix = free_port(), new_prefix()
    config = config_file(
        mosquitto,
        prefix,
        directory,
        directory / "points",
        simulator_speed=600.0,
        controller={"http_port": port, "operator_tokens_file": str(tokens), "lease_ttl_s": 2.0},
    )
    sim = cli(directory, "simulate", "--config", str(config))
    daemon = cli(directory, "run", "--config", str(config))
    url = f"http://127.0.0.1:{port}"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1500"):
        options.add_argument(arg)
    driver = None
    try:
        _until(
            lambda: (s := http(f"{url}/api/status")[1])["active"] and s["plan"] is not None,
            "the daemon to take control and plan",
        )
        driver = webdriver.Chrome(options=options, service=Service(DRIVER))
        driver.set_page_load_timeout(20)
        driver.get(url)
        yield Plant(url, prefix, mosquitto, driver)
    finally:
        if driver is not None:
            driver.quit()
        codes = [stop_process(p) for p in (daemon, sim)]
    assert codes == [0, 0]


def text(plant: Plant, css: str) -> str:
    value: str = plant.driver.find_element(By.CSS_SELECTOR, css).text
    return value


def test_the_page_shows_the_live_state_and_updates_without_a_reload(plant: Plant) -> None:
    _until(lambda: text(plant, "#state") not in ("connecting", ""), "the state on the page")
    assert text(plant, "#state") in ("running", "degraded")
    assert text(plant, "#site").startswith(SCENARIO.site)
    assert text(plant, "#role") == "active"
    assert text(plant, "#live") == "live"
    assert text(plant, "#mode") == "auto"
    plant.driver.execute_script("window.loadedOnce = true;")  # gone if the page reloads
    first = text(plant, "#plant-time")
    lines = text(plant, "#lines tbody")
    assert "L1" in lines and "kA" not in first
    _until(lambda: text(plant, "#plant-time") != first, "plant time to move on the page")
    assert plant.driver.execute_script("return window.loadedOnce === true;")
    # plant time in local plant time: the status's ts shifted by the site's offset
    status = http(f"{plant.url}/api/status")[1]
    assert text(plant, "#tz") == "UTC+8" and status["utc_offset_h"] == 8.0


def test_the_plan_chart_is_drawn_with_the_plan_in_force(plant: Plant) -> None:
    plan = http(f"{plant.url}/api/plan")[1]["plan"]
    assert plan is not None and len(plan["times"]) > 1
    _until(
        lambda: (
            int(
                plant.driver.execute_script(
                    "return document.getElementById('plan-chart').dataset.points;"
                )
            )
            > 1
        ),
        "the plan chart",
    )
    drawn = plant.driver.execute_script(
        """const c = document.querySelector('#plan-chart canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
        return [c.width, n];"""
    )
    assert drawn[0] > 300 and drawn[1] > 1000  # lines on the canvas, not an empty frame
    legend = text(plant, "#plan-chart")
    assert "P50" in legend and "renewable used" in legend
    _until(
        lambda: (
            int(
                plant.driver.execute_script(
                    "return document.getElementById('history-chart').dataset.points;"
                )
            )
            > 1
        ),
        "the history chart",
    )
    shot = os.environ.get("SMELTER_CONSOLE_SCREENSHOT")
    if shot:
        plant.driver.save_screenshot(str(Path(shot)))


async def _status_until(plant: Plant, state: str, reason: str) -> ControllerStatus:
    async with aiomqtt.Client(plant.broker.host, plant.broker.port, timeout=5) as client:
        await client.subscribe(f"{plant.prefix}/controller/status", qos=1)
        async with asyncio.timeout(WAIT_S):
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                status = decode("status", message.payload, ControllerStatus)
                if status.state.value == state and reason in status.reasons:
                    return status
    raise AssertionError("no such status")


def test_a_mode_change_needs_the_operator_token_and_goes_out_as_a_mode_command(
    plant: Plant,
) -> None:
    driver = plant.driver
    driver.find_element(By.CSS_SELECTOR, 'input[name="mode"][value="hold"]').click()
    driver.find_element(By.ID, "token").clear()
    driver.find_element(By.ID, "token").send_keys("not-the-token-at-all")
    driver.find_element(By.ID, "mode-submit").click()
    _until(lambda: "refused (401)" in text(plant, "#mode-result"), "the refusal on the page")
    assert http(f"{plant.url}/api/status")[1]["mode"]["mode"] == "auto"
    _until(lambda: "unauthorized" in text(plant, "#events tbody"), "the refusal in the events")

    driver.find_element(By.ID, "token").clear()
    driver.find_element(By.ID, "token").send_keys(TOKEN)
    driver.find_element(By.ID, "mode-submit").click()
    _until(lambda: "mode hold in force" in text(plant, "#mode-result"), "the mode taken")
    status = asyncio.run(_status_until(plant, "manual", "mode hold set by the operator"))
    assert status.reasons[0] == "mode hold set by the operator"
    _until(lambda: text(plant, "#mode") == "hold", "the mode on the page")
    events = http(f"{plant.url}/api/events")[1]["events"]
    mine = [e for e in events if e["kind"] == "operator" and e["who"] == "alice"]
    assert mine and "alice set mode hold" in mine[-1]["message"]
    assert any(e["kind"] == "mode" and e["code"] == "hold" for e in events)  # the core took it

    # the API refuses what the core or the safety layer would, and says why
    api = f"{plant.url}/api/mode"
    code, body = http(api, {"mode": "manual", "potline_current_ka": {"L1": 900.0}}, TOKEN)
    assert code == 422 and "outside the hard limits" in body["error"]
    code, body = http(api, {"mode": "manual", "bess_power_mw": {"nowhere": 1.0}}, TOKEN)
    assert code == 409 and body["error"].startswith("unknown_asset")
    code, body = http(api, {"mode": "sideways"}, TOKEN)
    assert code == 400
    code, body = http(api, {"mode": "auto"}, TOKEN)
    assert code == 200 and body["taken"] is True
    assert http(f"{plant.url}/api/status")[1]["mode"]["mode"] == "auto"


def test_metrics_carry_the_process_collectors_and_the_solve_time_histogram(plant: Plant) -> None:
    with urllib.request.urlopen(f"{plant.url}/metrics", timeout=10) as response:
        body = response.read().decode()
    assert "process_cpu_seconds_total" in body and "process_resident_memory_bytes" in body
    assert "python_gc_objects_collected_total" in body
    count = next(
        float(line.split()[-1])
        for line in body.splitlines()
        if line.startswith("smelter_solve_seconds_count")
    )
    assert count >= 1
    assert 'smelter_solve_seconds_bucket{le="+Inf"}' in body
