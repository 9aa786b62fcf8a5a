"""The day's metered KPIs (controller.core.metering), on hand-checkable telemetry."""

from __future__ import annotations

import pytest

from controller.core.metering import Meter
from controller.site import (
    BessModel,
    CaptiveModel,
    GridModel,
    LineModel,
    RenewableModel,
    SiteModel,
)
from wire import (
    BessTelemetry,
    CaptiveTelemetry,
    GridTelemetry,
    PotlineTelemetry,
    RenewableKind,
    RenewableTelemetry,
)

T0 = 1_780_272_000.0  # 2026-06-01 00:00 UTC = 08:00 at UTC+8
TARIFF = {"peak_per_mwh": 900.0, "flat_per_mwh": 600.0, "valley_per_mwh": 200.0}
LINE = LineModel("L1")
SITE = SiteModel(
    "s",
    (LINE,),
    grid=GridModel(1000.0, 500.0, 0.5, export_per_mwh=100.0, **TARIFF),  # type: ignore[arg-type]
    bess=(BessModel("B1"),),
    captive=(CaptiveModel("C1", min_mw=100.0, max_mw=300.0, ramp_mw_per_h=100.0),),
    renewable=(RenewableModel("pv1", RenewableKind.PV, 500.0),),
    auxiliary_load_mw=20.0,
)


def feed(meter: Meter, ts: float, *, pv_mw: float = 200.0, grid_mw: float = 280.0) -> None:
    meter.observe(
        "renewable",
        "pv1",
        RenewableTelemetry(
            ts=ts, kind=RenewableKind.PV, power_mw=pv_mw, available_mw=pv_mw, capacity_mw=500.0
        ),
        ts,
    )
    meter.observe("grid", "pcc", GridTelemetry(ts=ts, power_mw=grid_mw, frequency_hz=50.0), ts)
    meter.observe(
        "potline",
        "L1",
        PotlineTelemetry(
            ts=ts, current_ka=400.0, voltage_v=1200.0, power_mw=480.0, pots_online=300
        ),
        ts,
    )


def run(meter: Meter, start_s: float, minutes: int, **values: float) -> None:
    for k in range(minutes + 1):
        feed(meter, start_s + 60.0 * k, **values)


def test_an_hour_of_every_kind_of_meter_adds_up_by_hand() -> None:
    """08:00-09:00 local (a peak hour at 900 CNY/MWh): 200 MW PV, 100 MW exported, BESS
    charging 50 MW, captive unit at 150 MW (0.8 t/MWh, 250 CNY/MWh)."""
    meter = Meter(SITE, stale_after_s=300.0)
    for k in range(61):
        ts = T0 + 60.0 * k
        feed(meter, ts, grid_mw=-100.0)
        meter.observe(
            "bess",
            "B1",
            BessTelemetry(ts=ts, power_mw=-50.0, soc_frac=0.5, energy_capacity_mwh=200.0),
            ts,
        )
        meter.observe(
            "captive",
            "C1",
            CaptiveTelemetry(ts=ts, power_mw=150.0, min_stable_mw=100.0, max_mw=300.0),
            ts,
        )
    ((hour_s, t),) = meter.take()
    assert hour_s == T0 + 3600.0
    assert t["metered_h"] == pytest.approx(1.0)
    assert t["renewable_used_mwh"] == pytest.approx(100.0)  # 200 delivered, 100 of it exported
    assert t["grid_export_mwh"] == pytest.approx(100.0)
    assert t["site_consumption_mwh"] == pytest.approx(480.0 + 20.0 + 50.0)
    assert t["co2_t"] == pytest.approx(150.0 * 0.8)  # nothing imported
    assert t["cost"] == pytest.approx(150.0 * 250.0 - 100.0 * 100.0)
    assert t["aluminium_t"] == pytest.approx(LINE.production_t_per_h(400.0))


def test_the_tariff_follows_the_local_hour() -> None:
    """07:00-09:00 local: a flat hour (600) then a peak hour (900) at 280 MW imported."""
    meter = Meter(SITE, stale_after_s=300.0)
    run(meter, T0 - 3600.0, 120)
    (_, first), (_, second) = meter.take()
    assert first["cost"] == pytest.approx(280.0 * 600.0)
    assert second["cost"] == pytest.approx(280.0 * (600.0 + 900.0))


def test_a_forward_jump_into_the_next_day_starts_its_totals_afresh() -> None:
    meter = Meter(SITE, stale_after_s=300.0)
    start_s = T0 + 13.5 * 3600.0  # 21:30 local
    run(meter, start_s, 60)
    jump_s = start_s + 5 * 3600.0  # 02:30 local, the next day
    meter.rebase(jump_s)
    run(meter, jump_s, 60)
    hour_s, last = meter.take()[-1]
    assert hour_s == jump_s + 1800.0  # 03:00
    assert last["metered_h"] == pytest.approx(0.5)
    assert last["grid_import_mwh"] == pytest.approx(140.0)


def test_a_jump_back_never_closes_an_hour_twice() -> None:
    """21:00 to 00:30, then the clock goes back to 23:50: the midnight point (the whole day)
    is not written again over it."""
    meter = Meter(SITE, stale_after_s=300.0)
    midnight_s = T0 + 16 * 3600.0
    run(meter, midnight_s - 3 * 3600.0, 210)
    meter.rebase(midnight_s - 600.0)
    run(meter, midnight_s - 600.0, 20)
    stamps = [hour_s for hour_s, _ in meter.take()]
    assert stamps.count(midnight_s) == 1
    assert stamps == sorted(stamps)


def test_a_meter_that_went_quiet_adds_nothing_after_stale_after_s() -> None:
    """The PV meter reports once, then goes quiet; the grid and the line go on for 3 h."""
    meter = Meter(SITE, stale_after_s=120.0)
    start_s = T0 + 3600.0
    feed(meter, start_s)
    for k in range(1, 181):
        ts = start_s + 60.0 * k
        meter.observe("grid", "pcc", GridTelemetry(ts=ts, power_mw=280.0, frequency_hz=50.0), ts)
    _, last = meter.take()[-1]
    assert last["renewable_available_mwh"] == pytest.approx(200.0 * 120.0 / 3600.0)
    assert last["grid_import_mwh"] == pytest.approx(280.0 * 3.0)
    # the line's meter went quiet too: no production, and no target, after its 120 s
    target_t_per_h = LINE.production_t_per_h(LINE.nominal_current_ka)
    assert last["aluminium_target_t"] == pytest.approx(target_t_per_h * 120.0 / 3600.0)
    assert last["metered_h"] == pytest.approx(3.0)  # the grid meter was heard throughout


def test_while_every_meter_is_silent_no_time_and_no_target_is_counted() -> None:
    """A telemetry outage is not a production shortfall: 3 h of silence between two readings
    adds neither metered time nor nominal production to the day."""
    meter = Meter(SITE, stale_after_s=120.0)
    start_s = T0 + 3600.0
    run(meter, start_s, 10)
    run(meter, start_s + 4 * 3600.0, 10)
    meter.advance(start_s + 4 * 3600.0 + 600.0)
    t = meter.table()
    # two 10-minute runs of readings; a value is held until the next reading of its meter if
    # that comes within stale_after_s, so neither the gap nor the 10 minutes after count
    assert t["metered_h"] == pytest.approx(1200.0 / 3600.0)
    target_t_per_h = LINE.production_t_per_h(LINE.nominal_current_ka)
    assert t["aluminium_target_t"] == pytest.approx(target_t_per_h * t["metered_h"])


def test_half_hour_time_zones_close_the_day_at_local_midnight() -> None:
    """UTC+5:30: readings on the local hour (xx:30 UTC); the day closes at 00:00 local."""
    site = SiteModel("in", (LINE,), grid=GridModel(1000.0, 0.0, 0.7), utc_offset_h=5.5)
    meter = Meter(site, stale_after_s=300.0)
    local_midnight_s = T0 + 18.5 * 3600.0  # 00:00 at UTC+5:30 on 2 June
    run(meter, local_midnight_s - 2 * 3600.0, 180)
    readings = meter.take()
    assert [h - local_midnight_s for h, _ in readings] == [-3600.0, 0.0, 3600.0]
    assert readings[1][1]["metered_h"] == pytest.approx(2.0)  # the day that ended
    assert readings[2][1]["metered_h"] == pytest.approx(1.0)  # the new day
