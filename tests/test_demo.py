"""``smelter-ems demo`` as a user runs it: the command as a process, its files, its numbers
against the in-process backtest, and its page in a real headless browser (Debian's chromium
driven through chromium-driver)."""

from __future__ import annotations

import json
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import line_protocol_parser
import pytest
from demo_helpers import SCENARIO, demo, require

from harness.backtest import run_backtest
from harness.demo.figures import FIGURES

pytestmark = [pytest.mark.services, pytest.mark.timeout(240)]

DAYS = 0.5
SPEED = 1500.0
PNGS = {*FIGURES, "hourly_share"}


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One demo run of half a simulated day, shared by the tests that read its files."""
    require("mosquitto", shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists())
    out = tmp_path_factory.mktemp("demo")
    process = demo(out, "--days", str(DAYS), "--speed", str(SPEED))
    stdout, stderr = process.communicate(timeout=180)
    assert process.returncode == 0, stderr[-3000:]
    return out, stdout


def _num(kpis: dict[str, Any], key: str) -> float:
    value = kpis[key]
    assert isinstance(value, int | float), (key, value)
    return float(value)


def test_the_demo_writes_its_files_and_says_where_the_report_is(demo_out: tuple[Path, str]) -> None:
    out, stdout = demo_out
    assert stdout.strip().splitlines()[-1] == f"report: {(out / 'report.html').resolve()}"
    for name in PNGS:
        png = out / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    kpis = json.loads((out / "kpis.json").read_text(encoding="utf-8"))
    assert kpis["broker"] == "mosquitto" and not kpis["interrupted"]
    assert kpis["influx"] is None  # the daemon logged to points/, read below
    for side in ("controller", "flat"):
        k = kpis[side]
        assert _num(k, "co2_t_per_t_al") == pytest.approx(k["co2_t"] / k["aluminium_t"], rel=1e-3)
        assert len(k["renewable_share_by_hour"]["share"]) == round(DAYS * 24)
    assert kpis["controller"]["plans"] >= DAYS * 96 * 0.9  # a plan every 15 plant-minutes
    assert kpis["controller"]["fallback_plans"] == 0
    # the daemon's line-protocol log: what it heard, planned and sent
    measurements: set[str] = set()
    for path in (out / "points").glob("*.lp"):
        for line in path.read_text(encoding="utf-8").splitlines():
            measurements.add(line_protocol_parser.parse_line(line)["measurement"])
    assert {"telemetry", "plan", "setpoint", "forecast", "event"} <= measurements


def test_the_demo_agrees_with_the_in_process_backtest(demo_out: tuple[Path, str]) -> None:
    """The controller's KPIs of the demo (the daemon process, over MQTT) against the backtest
    of the same scenario and seed with the mpc strategy (the same core, in-process).

    They differ by what MQTT and the process add (tests/test_daemon.py: plans reach the plant a
    solve time x speed later, messages wall milliseconds late) and by the lease: the daemon
    sends its first setpoints a third of the demo's 2 s lease after it claims it, 17
    plant-minutes at 1,500x, a fixed cost that weighs more on half a day than on the daemon
    test's day (0.5 % there).  Measured here over half a day (this test prints it, `-s`):
    renewable energy used 0.53 % below the backtest, aluminium 0.003 % below.  Bounds: 1 % and
    0.2 %, narrower than the difference a controller makes (mpc against flat over the same half
    day: 3.2 % more renewable energy used), which the last assertion keeps 0.8 of.
    The flat baseline is the backtest's flat strategy exactly (a plant that gets no setpoints).
    """
    out, _ = demo_out
    kpis = json.loads((out / "kpis.json").read_text(encoding="utf-8"))
    ctl, flat = kpis["controller"], kpis["flat"]
    ref = run_backtest(SCENARIO, "mpc", days=DAYS, seed=1).kpis
    base = run_backtest(SCENARIO, "flat", days=DAYS, seed=1).kpis
    used, used_ref, used_base = (_num(k, "renewable_used_mwh") for k in (ctl, ref, base))
    al, al_ref = _num(ctl, "aluminium_t"), _num(ref, "aluminium_t")
    print(f"renewable used: demo {used:.1f}, backtest {used_ref:.1f}, flat {used_base:.1f} MWh")
    print(f"demo vs backtest: renewable used {100 * (used / used_ref - 1):+.2f} %, ", end="")
    print(f"aluminium {100 * (al / al_ref - 1):+.3f} %; mpc vs flat {used_ref / used_base:.3f}x")
    assert abs(used - used_ref) <= 0.01 * used_ref
    assert _num(ctl, "aluminium_t") == pytest.approx(_num(ref, "aluminium_t"), rel=0.002)
    assert used - used_base > 0.8 * (used_ref - used_base)
    assert ctl["thermal_violation_min"] == 0.0 and ctl["frozen_pots"] == 0
    for key in ("renewable_used_mwh", "co2_t", "aluminium_t", "renewable_share_hourly"):
        assert flat[key] == base[key], key
    assert ctl["co2_t_per_t_al"] < flat["co2_t_per_t_al"]


def test_the_report_renders_offline_in_headless_chromium(demo_out: tuple[Path, str]) -> None:
    """Every figure is there, decoded and not blank, and the page asks the network for nothing
    (Chrome's own network log, not a guess from the HTML)."""
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    require(
        "chromium and chromium-driver (apt-get install chromium chromium-driver)",
        chromium and driver_path,
    )
    from selenium import webdriver  # noqa: PLC0415  (only where the browser is)
    from selenium.webdriver.chrome.service import Service  # noqa: PLC0415

    out, _ = demo_out
    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    browser = webdriver.Chrome(options=options, service=Service(executable_path=str(driver_path)))
    try:
        browser.get((out / "report.html").resolve().as_uri())
        images = browser.execute_script(
            """
            return Array.from(document.images).map(img => {
                const c = document.createElement('canvas');
                c.width = img.naturalWidth; c.height = img.naturalHeight;
                const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
                const px = ctx.getImageData(0, 0, c.width, c.height).data;
                const colours = new Set();
                for (let i = 0; i < px.length; i += 4 * 97)
                    colours.add(px[i] << 16 | px[i + 1] << 8 | px[i + 2]);
                return {alt: img.alt, complete: img.complete, w: img.naturalWidth,
                        h: img.naturalHeight, colours: colours.size};
            });
            """
        )
        requests = [
            json.loads(entry["message"])["message"]["params"]["request"]["url"]
            for entry in browser.get_log("performance")
            if '"Network.requestWillBeSent"' in entry["message"]
        ]
        title = browser.title
    finally:
        browser.quit()
    assert title.startswith("smelter-ems demo")
    assert len(images) == len(PNGS)
    for img in images:
        assert img["complete"] and img["w"] > 300 and img["h"] > 100, img
        assert img["colours"] > 5, img  # axes, curves and labels, not a blank picture
    assert requests and all(u.startswith(("file:", "data:")) for u in requests), requests


def test_the_demo_runs_on_the_embedded_broker_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    """amqtt instead of Mosquitto; SIGINT after two plant-hours: the daemon and the broker are
    gone, a report of the hours run is written, and the exit code says it was interrupted."""
    process = demo(tmp_path, "--days", "1", "--speed", "1200", "--embedded-broker")
    deadline = time.monotonic() + 60.0
    while time.monotonic() < deadline and not (tmp_path / "run" / "daemon.log").exists():
        time.sleep(0.1)
    time.sleep(9.0)  # the daemon's start, then about two plant-hours at 1,200x
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=90)
    assert process.returncode == 130, stderr[-3000:]
    kpis = json.loads((tmp_path / "kpis.json").read_text(encoding="utf-8"))
    assert kpis["broker"] == "amqtt" and kpis["interrupted"]
    assert 1.0 <= kpis["controller"]["hours"] < 24.0
    assert kpis["controller"]["plans"] >= 2
    assert stdout.strip().splitlines()[-1].startswith("report: ")
    leftover = [
        p.name for p in Path("/proc").iterdir() if p.name.isdigit() and str(tmp_path) in _cmdline(p)
    ]
    assert leftover == []


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
