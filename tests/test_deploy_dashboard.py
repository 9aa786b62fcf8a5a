"""The Grafana dashboard against what the daemon writes.

Every Flux query of deploy/grafana/smelter-ems.json is parsed; each measurement, ``kind``,
field and tag it names must be one that :mod:`controller.tsdb.schema` writes: the catalogue
below is made by the schema's own functions from one payload of every kind, a plan, the
tracker's state, an event and the KPIs, not written by hand.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from daemon_helpers import SCENARIO

from controller.planner.types import LineState, PlantState, Schedule, SolveStatus
from controller.tsdb import Point
from controller.tsdb.schema import (
    event_point,
    kpi_points,
    payload_points,
    plan_points,
    state_points,
)
from forecasting.types import QuantileForecast
from harness.site_from_scenario import site_from_scenario
from wire import (
    BessTelemetry,
    CaptiveTelemetry,
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

DASHBOARD = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "smelter-ems.json"
T = 1_800_000_000.0
SITE = "s"
COLUMNS = {"_time", "_value", "_field", "_measurement", "_start", "_stop"}
"""Flux's own columns; every other column a query names is a tag."""


def _schedule() -> Schedule:
    times = T + 900.0 * np.arange(4)
    p50 = np.full(4, 100.0)
    return Schedule(
        plan_id="p1",
        status=SolveStatus.OPTIMAL,
        times_s=times,
        step_s=900.0,
        line_current_ka={"L1": np.full(4, 390.0)},
        bess_power_mw={"B1": np.zeros(4)},
        bess_soc_frac={"B1": np.full(4, 0.5)},
        captive_mw={"C1": np.full(4, 300.0)},
        grid_mw=np.full(4, 5.0),
        renewable_used_mw=np.full(4, 90.0),
        curtailed_mw=np.full(4, 10.0),
        heat_budget_mwh={"L1": np.zeros(4)},
        production_t={"L1": np.full(4, 9.0)},
        forecast=QuantileForecast(times, p50 * 0.8, p50, p50 * 1.2),
        bent={"heat_budget": 0.5},
        solve_ms=42.0,
    )


def written_points() -> list[Point]:
    """One of every kind of point the daemon writes."""
    line = site_from_scenario(SCENARIO).lines[0]
    payloads: list[tuple[str, str, Any]] = [
        (
            "potline",
            "L1",
            PotlineTelemetry(ts=T, current_ka=400, voltage_v=1200, power_mw=480, pots_online=300),
        ),
        ("pots", "L1", PotVoltages(ts=T, voltage_v=[4.0, 9.0])),
        ("grid", "G1", GridTelemetry(ts=T, power_mw=-20.0, frequency_hz=50.0)),
        (
            "renewable",
            "pv1",
            RenewableTelemetry(
                ts=T,
                kind=RenewableKind.PV,
                power_mw=80,
                available_mw=100,
                capacity_mw=150,
                ghi_wm2=700,
            ),
        ),
        ("bess", "B1", BessTelemetry(ts=T, power_mw=5, soc_frac=0.5, energy_capacity_mwh=200)),
        ("captive", "C1", CaptiveTelemetry(ts=T, power_mw=300, min_stable_mw=240, max_mw=600)),
        (
            "weather",
            "site",
            WeatherForecast(ts=T, issued_ts=T, times=[T, T + 3600], ghi_wm2=[0.0, 100.0]),
        ),
        ("alarm", "", PlantAlarm(ts=T, asset="L1", code="clamped", message="m")),
        (
            "potline_setpoint",
            "L1",
            PotlineSetpoint(
                ts=T, current_ka=380, valid_until=T + 60, plan_id="p1", source=Source.MPC
            ),
        ),
        ("bess_setpoint", "B1", PowerSetpoint(ts=T, power_mw=-10.0, valid_until=T + 60)),
        ("status", "", ControllerStatus(ts=T, state=ControllerState.RUNNING, last_plan_ts=T)),
        ("mode", "", ModeCommand(ts=T, mode=Mode.AUTO)),
    ]
    points = [
        p for kind, asset, payload in payloads for p in payload_points(kind, asset, payload, SITE)
    ]
    points += plan_points(_schedule(), SITE, "p1", T, lines=[line])
    points += state_points(
        PlantState(t_s=T, lines={"L1": LineState(current_ka=395.0)}, bess_soc_frac={"B1": 0.4}),
        SITE,
    )
    points.append(event_point(SITE, "fallback", T, code="stale_telemetry", message="m"))
    points += kpi_points(
        {"renewable_used_mwh": 1.0, "lines": {"L1": {"aluminium_t": 9.0}}}, SITE, T
    )
    return points


class Catalogue:
    def __init__(self, points: list[Point]) -> None:
        self.fields: dict[tuple[str, str], set[str]] = defaultdict(set)
        """(measurement, kind) → fields."""
        self.tags: dict[str, set[str]] = defaultdict(set)
        """measurement → tag keys."""
        for p in points:
            self.fields[p.measurement, p.tags.get("kind", "")] |= set(p.fields)
            self.tags[p.measurement] |= set(p.tags)

    def kinds(self, measurement: str) -> set[str]:
        return {k for m, k in self.fields if m == measurement}


def flux_queries() -> list[tuple[str, str]]:
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [
        (f"{panel['title']} {target['refId']}", target["query"])
        for panel in board["panels"]
        for target in panel.get("targets", [])
    ]


def names(query: str, column: str) -> set[str]:
    return set(re.findall(rf'r\.{column} == "([^"$]+)"', query))


CATALOGUE = Catalogue(written_points())


@pytest.mark.parametrize(("where", "query"), flux_queries())
def test_each_query_names_what_the_daemon_writes(where: str, query: str) -> None:
    check(where, query, CATALOGUE)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('r._field == "soc_frac"', 'r._field == "soc_pct"'),
        ('r._measurement == "telemetry"', 'r._measurement == "telemetries"'),
        ('r.kind == "bess"', 'r.kind == "battery"'),
        ('r.site == "${site}")', 'r.site == "${site}" and r.unit == "x")'),
        ('r.site == "${site}"', "true"),
    ],
)
def test_the_check_catches_a_query_that_drifted(old: str, new: str) -> None:
    where, query = next(q for q in flux_queries() if q[0].startswith("BESS"))
    assert old in query
    with pytest.raises(AssertionError):
        check(where, query.replace(old, new), CATALOGUE)


def check(where: str, query: str, catalogue: Catalogue) -> None:
    measurements = names(query, "_measurement")
    assert len(measurements) == 1, "one measurement per query"
    (measurement,) = measurements
    assert measurement in catalogue.tags, f"{where}: no measurement {measurement!r} is written"
    kinds = names(query, "kind") or catalogue.kinds(measurement)
    assert kinds <= catalogue.kinds(measurement), f"{where}: kind {kinds}"
    fields = set().union(*(catalogue.fields[measurement, k] for k in kinds))
    missing = names(query, "_field") - fields
    assert not missing, f"{where}: {measurement} ({', '.join(sorted(kinds))}) has no {missing}"
    # every tag the query filters on, maps with, groups or keeps by
    tags = set(re.findall(r"\br\.([A-Za-z_]\w*)", query))
    for listed in re.findall(r"columns: \[([^\]]*)\]", query):
        tags |= set(re.findall(r'"([^"]+)"', listed))
    unknown = tags - COLUMNS - catalogue.tags[measurement]
    assert not unknown, f"{where}: {measurement} has no tag {unknown}"
    # each panel shows one site: the one the dashboard's variable picks
    assert 'r.site == "${site}"' in query, f"{where}: not filtered by the site tag"


def test_the_dashboard_lists_sites_from_the_site_tag_and_every_query_was_checked() -> None:
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    site_var = next(v for v in board["templating"]["list"] if v["name"] == "site")
    assert 'tag: "site"' in site_var["query"]
    assert all(p.tags.get("site") == SITE for p in written_points())
    # a query the parser would miss (another language, a measurement by regex) would go unchecked
    for where, query in flux_queries():
        assert query.startswith('from(bucket: "${bucket}")'), where
        assert len(names(query, "_measurement")) == 1, where
