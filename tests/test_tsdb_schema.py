"""What gets logged: contract payloads, plans, tracker state, events and KPIs as points; and the
simulator's logging option (``smelter-ems simulate --log-dir/--influx-url``)."""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import line_protocol_parser
import msgspec
import numpy as np
import pytest
from victoria import VictoriaMetrics

from controller.planner.types import LineState, PlantState, Schedule, SolveStatus
from controller.site import LineModel
from controller.tsdb import InfluxSettings, Point, encode_line, open_sink
from controller.tsdb.schema import (
    event_point,
    kpi_points,
    payload_points,
    plan_points,
    state_points,
)
from forecasting.types import QuantileForecast
from harness import simlog
from harness.mosquitto import MosquittoBroker
from simulator.bridge import serve
from simulator.config import SimulatorConfig, SimulatorSection
from simulator.scenario import load_scenario
from smelter_ems.cli import main
from wire import (
    BessTelemetry,
    ControllerState,
    ControllerStatus,
    GridTelemetry,
    Mode,
    ModeCommand,
    PlantAlarm,
    PotlineSetpoint,
    PotlineTelemetry,
    PotVoltages,
    PowerSetpoint,
    RenewableKind,
    RenewableTelemetry,
    Source,
    WeatherForecast,
)
from wire.link import MqttSettings

T = 1_800_000_000.0


def one(points: list[Point]) -> Point:
    assert len(points) == 1
    assert encode_line(points[0]) is not None
    return points[0]


def test_telemetry_payloads_become_telemetry_points_with_units_in_field_names() -> None:
    p = one(
        payload_points(
            "potline",
            "L1",
            PotlineTelemetry(
                ts=T, current_ka=400, voltage_v=1200.0, power_mw=480.0, pots_online=300
            ),
            "yunnan",
        )
    )
    assert p.measurement == "telemetry"
    assert p.tags == {"site": "yunnan", "kind": "potline", "asset": "L1"}
    assert p.fields == {
        "current_ka": 400.0,
        "voltage_v": 1200.0,
        "power_mw": 480.0,
        "pots_online": 300,
    }
    assert type(p.fields["current_ka"]) is float  # a JSON 400 must not make an int field
    assert p.ts_s == T

    grid = one(
        payload_points("grid", "pcc", GridTelemetry(ts=T, power_mw=-20.0, frequency_hz=50.0), "s")
    )
    assert (grid.fields["import_mw"], grid.fields["export_mw"]) == (0.0, 20.0)

    pv = one(
        payload_points(
            "renewable",
            "pv1",
            RenewableTelemetry(
                ts=T,
                kind=RenewableKind.PV,
                power_mw=80.0,
                available_mw=100.0,
                capacity_mw=150.0,
                ghi_wm2=700.0,
            ),
            "s",
        )
    )
    assert pv.tags["tech"] == "pv"
    assert pv.fields["curtailed_mw"] == 20.0
    assert "wind_speed_ms" not in pv.fields

    bess = one(
        payload_points(
            "bess",
            "b1",
            BessTelemetry(ts=T, power_mw=5.0, soc_frac=0.5, energy_capacity_mwh=200.0),
            "s",
        )
    )
    assert bess.fields["soc_frac"] == 0.5


def test_pot_voltages_are_summarised_with_anode_effects_counted() -> None:
    p = one(payload_points("pots", "L1", PotVoltages(ts=T, voltage_v=[4.0, 4.2, 9.5, 8.0]), "s"))
    assert p.fields == {
        "voltage_max_v": 9.5,
        "voltage_mean_v": pytest.approx(6.425),
        "voltage_min_v": 4.0,
        "pots_reporting": 4,
        "anode_effects": 1,  # > 8 V, not >= 8 V
    }
    assert payload_points("pots", "L1", PotVoltages(ts=T, voltage_v=[]), "s") == []


def test_weather_forecasts_keep_each_issue_apart() -> None:
    fc = WeatherForecast(
        ts=T, issued_ts=T, times=[T + 3600.0, T + 7200.0], ghi_wm2=[100.0, 200.0], flow_m3s=None
    )
    points = payload_points("weather", "site", fc, "s")
    assert [p.ts_s for p in points] == [T + 3600.0, T + 7200.0]
    assert all(p.measurement == "forecast" and p.tags["issued"].endswith("+00:00") for p in points)
    assert [p.fields for p in points] == [
        {"lead_h": 1.0, "ghi_wm2": 100.0},
        {"lead_h": 2.0, "ghi_wm2": 200.0},
    ]


def test_setpoints_status_mode_and_alarms() -> None:
    sp = one(
        payload_points(
            "potline_setpoint",
            "L1",
            PotlineSetpoint(
                ts=T, current_ka=380.0, valid_until=T + 60, plan_id="p7", source=Source.MPC
            ),
            "s",
        )
    )
    assert sp.measurement == "setpoint"
    assert sp.tags == {
        "site": "s",
        "kind": "potline",
        "asset": "L1",
        "source": "mpc",
        "plan_id": "p7",  # a tag, as on the plan's points: the two join on it
    }
    assert sp.fields == {"current_ka": 380.0, "valid_until_s": T + 60}
    bess = one(
        payload_points(
            "bess_setpoint", "B1", PowerSetpoint(ts=T, power_mw=-10.0, valid_until=T + 60), "s"
        )
    )
    assert bess.tags["kind"] == "bess" and "plan_id" not in bess.tags

    status = one(
        payload_points(
            "status",
            "",
            ControllerStatus(ts=T, state=ControllerState.FALLBACK, reasons=["stale grid", "x"]),
            "s",
        )
    )
    assert status.fields["state"] == "fallback"
    assert status.fields["state_code"] == 4
    assert status.fields["reasons"] == "stale grid; x"

    mode = one(
        payload_points(
            "mode", "", ModeCommand(ts=T, mode=Mode.MANUAL, potline_current_ka={"L1": 390.0}), "s"
        )
    )
    assert mode.fields["mode"] == "manual" and mode.fields["message"] == "L1 390 kA"

    alarm = one(
        payload_points(
            "alarm",
            "",
            PlantAlarm(ts=T, asset="potline/L1", code="clamped", message="too high"),
            "s",
        )
    )
    assert alarm.tags == {"site": "s", "kind": "alarm", "asset": "potline/L1", "code": "clamped"}
    assert alarm.fields == {"count": 1, "message": "too high"}


def test_unknown_payloads_give_no_point() -> None:
    class Other(msgspec.Struct):
        ts: float

    assert payload_points("plan", "", Other(ts=T), "s") == []


def _schedule(steps: int = 4, *, t0_s: float = T, plan_id: str = "plan-1") -> Schedule:
    times = np.asarray(t0_s + 900.0 * np.arange(steps), dtype=np.float64)
    p50 = np.full(steps, 100.0)
    return Schedule(
        plan_id=plan_id,
        status=SolveStatus.OPTIMAL,
        times_s=times,
        step_s=900.0,
        line_current_ka={"L1": np.full(steps, 390.0)},
        bess_power_mw={"B1": np.linspace(-10, 10, steps)},
        bess_soc_frac={"B1": np.full(steps, 0.5)},
        captive_mw={},
        grid_mw=np.full(steps, 5.0),
        renewable_used_mw=np.full(steps, 90.0),
        curtailed_mw=np.full(steps, 10.0),
        heat_budget_mwh={"L1": np.linspace(0, 3, steps)},
        production_t={"L1": np.full(steps, 9.0)},
        forecast=QuantileForecast(times, p50 * 0.8, p50, p50 * 1.2),
        bent={"heat_budget": 0.5},
        solve_ms=42.0,
    )


def test_a_plan_is_one_point_per_step_and_asset_plus_its_forecast_and_a_summary() -> None:
    points = plan_points(_schedule(), "s", "plan-1", T - 60.0, lines=[LineModel(name="L1")])
    assert all(p.tags["plan_id"] == "plan-1" for p in points)
    assert all(encode_line(p) is not None for p in points)
    by_kind: dict[str, list[Point]] = {}
    for p in points:
        by_kind.setdefault(f"{p.measurement}/{p.tags['kind']}", []).append(p)
    assert {k: len(v) for k, v in by_kind.items()} == {
        "plan/summary": 1,
        "plan/potline": 4,
        "plan/bess": 4,
        "plan/site": 4,
        "forecast/renewable": 4,
    }
    summary = by_kind["plan/summary"][0]
    assert summary.ts_s == T - 60.0
    assert summary.fields["status"] == "optimal"
    assert summary.fields["bent_heat_budget"] == 0.5
    assert "objective" not in summary.fields  # NaN: left out
    line = by_kind["plan/potline"][2]
    assert line.ts_s == T + 1800.0
    assert line.fields["current_ka"] == 390.0
    assert line.fields["band_low_ka"] == pytest.approx(380.0)
    assert line.fields["hard_max_ka"] == pytest.approx(440.0)
    assert line.fields["heat_budget_mwh"] == 2.0
    fc = by_kind["forecast/renewable"][0].fields
    assert (fc["p10_mw"], fc["p50_mw"], fc["p90_mw"]) == (80.0, 100.0, 120.0)


@pytest.mark.services
@pytest.mark.parametrize("plan_id", ["7e5100000123", "1e1000000000", "123456789012"])
async def test_setpoints_and_their_plan_carry_the_same_plan_id_in_the_store(
    tsdb: VictoriaMetrics, tmp_path: Path, plan_id: str
) -> None:
    """Plan ids are hex; some read as numbers (7e5100000123 is 7·10^5100000123, +Inf as a
    float).  Through the real VictoriaMetrics each setpoint still finds the plan it came from."""
    site = f"s{uuid.uuid4().hex[:8]}"
    now_s = time.time() - 3600.0  # VictoriaMetrics drops points more than 2 days ahead
    plan = plan_points(_schedule(t0_s=now_s, plan_id=plan_id), site, plan_id, now_s - 60.0)
    valid_until = now_s + 1800.0
    setpoints = [
        *payload_points(
            "potline_setpoint",
            "L1",
            PotlineSetpoint(ts=now_s, current_ka=390.0, valid_until=valid_until, plan_id=plan_id),
            site,
        ),
        *payload_points(
            "bess_setpoint",
            "B1",
            PowerSetpoint(ts=now_s, power_mw=-10.0, valid_until=valid_until, plan_id=plan_id),
            site,
        ),
    ]
    settings = InfluxSettings(
        url=tsdb.url, org="o", bucket="b", flush_interval_s=0.05, spool_dir=str(tmp_path / "sp")
    )
    sink = open_sink(settings, token=None)
    sink.write([*plan, *setpoints])
    await _until(lambda: sink.stats().written == len(plan) + len(setpoints))
    await sink.close()
    labels: dict[str, list[dict[str, str]]] = {}
    for series in tsdb.export("(setpoint|plan)_.*"):
        if series["metric"].get("site") == site:
            labels.setdefault(series["metric"]["__name__"], []).append(series["metric"])
    assert "setpoint_plan_id" not in labels  # no number made of the id
    for name, asset in (("current_ka", "L1"), ("power_mw", "B1")):
        sent = [m["plan_id"] for m in labels[f"setpoint_{name}"] if m["asset"] == asset]
        planned = {m["plan_id"] for m in labels[f"plan_{name}"] if m["asset"] == asset}
        assert sent == [plan_id]
        assert planned == {plan_id}


def test_state_events_and_kpis() -> None:
    state = PlantState(
        t_s=T,
        lines={"L1": LineState(current_ka=395.0, heat_budget_mwh=-2.5, pots_online=299)},
        bess_soc_frac={"B1": 0.4},
    )
    points = state_points(state, "s")
    assert [p.tags["kind"] for p in points] == ["potline", "bess"]
    assert points[0].fields["heat_budget_mwh"] == -2.5
    assert points[0].fields["available"] is True

    ev = event_point("s", "fallback", T, code="stale_telemetry", message="grid silent 30 s")
    assert ev.measurement == "event"
    assert ev.tags == {"site": "s", "kind": "fallback", "code": "stale_telemetry"}
    assert ev.fields == {"count": 1, "message": "grid silent 30 s"}

    kpis = {
        "renewable_used_mwh": 120.5,
        "solves": 96,
        "scenario": "yunnan",
        "max_bath_temp_c": float("nan"),
        "lines": {"L1": {"aluminium_t": 900.0, "min_ledge_cm": 6.1}},
    }
    site_kpi, line_kpi = kpi_points(kpis, "s", T, period="day")
    assert site_kpi.fields == {"renewable_used_mwh": 120.5, "solves": 96.0}
    assert site_kpi.tags == {"site": "s", "kind": "site", "period": "day"}
    assert line_kpi.tags == {"site": "s", "kind": "lines", "asset": "L1", "period": "day"}
    assert line_kpi.fields == {"aluminium_t": 900.0, "min_ledge_cm": 6.1}


# --- the simulator's logging option ---------------------------------------------------------------


def _args(**given: object) -> argparse.Namespace:
    values: dict[str, object] = {
        "influx_url": None,
        "influx_org": None,
        "influx_bucket": None,
        "log_dir": None,
        "config": None,
        "offline": False,
    }
    return argparse.Namespace(**{**values, **given})


def test_logging_is_off_unless_asked_for_and_flags_override_the_config(tmp_path: Path) -> None:
    assert simlog.settings_from_args(_args()) is None
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[influx]\nurl = "http://db:8086"\norg = "plant"\nbucket = "ems"\nbatch_size = 500\n'
    )
    files = simlog.settings_from_args(_args(config=str(cfg), log_dir=str(tmp_path / "lp")))
    assert files is not None
    assert files.url is None  # --log-dir alone: files, not the daemon's database
    assert files.files_dir == str(tmp_path / "lp")
    db = simlog.settings_from_args(
        _args(config=str(cfg), influx_url="http://other:8086", influx_bucket="sim")
    )
    assert db is not None
    assert (db.url, db.org, db.bucket, db.batch_size) == ("http://other:8086", "plant", "sim", 500)
    assert db.spool_dir == str(Path(simlog.DEFAULT_LOG_DIR) / "spool")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--influx-url", "ftp://db", "--influx-org", "o", "--influx-bucket", "b"], "influx.url"),
        (["--influx-url", "http://db:8086"], "influx.bucket"),
        (["--offline", "--log-dir", "x"], "--offline publishes nothing"),
    ],
)
def test_simulate_logging_flags_are_checked(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["simulate", *argv]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.services
async def test_the_simulator_logs_every_publication_as_points(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    scenario = load_scenario("inner-mongolia-wind")
    config = SimulatorConfig(
        mqtt=MqttSettings(url=broker.url, topic_prefix=f"t{uuid.uuid4().hex[:8]}"),
        simulator=SimulatorSection(speed=3600.0),
    )
    settings = InfluxSettings(files_dir=str(tmp_path / "lp"), flush_interval_s=0.05)
    observe = simlog.observer_factory(settings, None)
    published: list[str] = []
    stop = asyncio.Event()
    async with observe(config, scenario) as on_publish:

        def both(topic: str, payload: msgspec.Struct) -> None:
            published.append(topic)
            on_publish(topic, payload)

        task = asyncio.create_task(serve(config, scenario, stop=stop, environ={}, on_publish=both))
        await _until(
            lambda: len({t.split("/")[2] for t in published}) >= 6 and len(published) > 200
        )
        stop.set()
        await task
    lines = [
        line for f in sorted((tmp_path / "lp").glob("*.lp")) for line in f.read_text().splitlines()
    ]
    parsed = [line_protocol_parser.parse_line(line) for line in lines]
    kinds = {(p["measurement"], p["tags"].get("kind")) for p in parsed}
    assert {
        ("telemetry", "potline"),
        ("telemetry", "pots"),
        ("telemetry", "grid"),
        ("telemetry", "renewable"),
        ("telemetry", "captive"),
        ("forecast", "weather"),
    } <= kinds
    assert {p["tags"]["site"] for p in parsed} == {scenario.site}  # "baotou", not the name
    # every publication that maps to points did: one point per telemetry message
    telemetry = [t for t in published if "/telemetry/" in t]
    assert sum(p["measurement"] == "telemetry" for p in parsed) == len(telemetry)


async def _until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.01)
