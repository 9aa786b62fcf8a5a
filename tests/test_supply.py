"""The site supply forecast the planner gets: per-plant forecasters fed from the contract."""

from __future__ import annotations

import numpy as np

from controller.site import LineModel, RenewableModel, SiteModel
from controller.supply import SupplyForecaster
from wire import RenewableKind, RenewableTelemetry, WeatherForecast

T0 = 1_780_272_000.0


def site() -> SiteModel:
    return SiteModel(
        "s",
        (LineModel("L1"),),
        islanded=True,
        renewable=(RenewableModel("w1", "wind", 300.0), RenewableModel("w2", "wind", 200.0)),
        latitude_deg=40.0,
        longitude_deg=110.0,
    )


def curve(speed: float, capacity: float) -> float:
    return capacity * min(max((speed - 3.0) / 9.0, 0.0), 1.0) ** 3


def feed(f: SupplyForecaster, hours: int, speed_of: object) -> None:
    for k in range(hours * 12):
        ts = T0 + 300.0 * k
        v = speed_of(ts)  # type: ignore[operator]
        for name, cap in (("w1", 300.0), ("w2", 200.0)):
            f.observe_telemetry(
                name,
                RenewableTelemetry(
                    ts=ts,
                    kind=RenewableKind.WIND,
                    power_mw=curve(v, cap),
                    available_mw=curve(v, cap),
                    capacity_mw=cap,
                    wind_speed_ms=v,
                ),
            )


def test_total_is_ordered_bounded_and_follows_the_weather_forecast() -> None:
    f = SupplyForecaster(site())
    feed(f, 72, lambda ts: 8.0 + 4.0 * np.sin(ts / 20_000.0))
    now = T0 + 72 * 3600.0
    times = now + 900.0 * np.arange(96)
    calm = WeatherForecast(ts=now, issued_ts=now, times=list(times), wind_speed_ms=[4.0] * 96)
    windy = WeatherForecast(ts=now, issued_ts=now, times=list(times), wind_speed_ms=[11.0] * 96)
    f.observe_weather(calm)
    low = f.forecast(now, times, 900.0)
    f.observe_weather(windy)
    high = f.forecast(now, times, 900.0)
    for q in (low, high):
        assert np.all(q.p10_mw <= q.p50_mw + 1e-9)
        assert np.all(q.p50_mw <= q.p90_mw + 1e-9)
        assert np.all(q.p10_mw >= 0.0)
        assert np.all(q.p90_mw <= 500.0 + 1e-6)
    # beyond the first hours, where the NWP dominates, a windy forecast means more supply
    assert high.p50_mw[16:].mean() > low.p50_mw[16:].mean() + 50.0


def test_unknown_plants_are_ignored() -> None:
    f = SupplyForecaster(site())
    f.observe_telemetry(
        "nope",
        RenewableTelemetry(
            ts=T0, kind=RenewableKind.PV, power_mw=1.0, available_mw=1.0, capacity_mw=1.0
        ),
    )
    assert set(f.plants) == {"w1", "w2"}
