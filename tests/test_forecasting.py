"""Forecasting core: solar geometry and clear sky against reference values, the learned plant
responses against known truths, and the forecaster's invariants (bounds, monotone quantiles,
determinism, gaps, any input resolution) as properties."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pandas as pd  # type: ignore[import-untyped]
import pvlib
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forecasting.baselines import DiurnalClimatology, Persistence, SmartPersistence
from forecasting.curve import LearnedCurve, isotonic_increasing
from forecasting.history import BIN_S, BinnedHistory
from forecasting.nwp import NwpStore
from forecasting.plant import PlantForecaster
from forecasting.pvmodel import PvPlantModel
from forecasting.solar import SolarGeometry, solar_position_deg
from forecasting.types import Kind, QuantileForecast, WeatherInput

T0 = 1_780_272_000.0  # 2026-06-01 00:00 UTC
DAY_S = 86_400.0
SITE = {"latitude_deg": 25.0, "longitude_deg": 102.7, "altitude_m": 1900.0}


# --- solar geometry and clear sky ---------------------------------------------------------


def test_solar_position_matches_the_spa_paper_example() -> None:
    # Reda & Andreas (2004), NREL/TP-560-34302, Table A5.1: Golden, CO, 17 Oct 2003
    # 12:30:30 local (UTC−7), 820 mbar, 11 °C, ΔT = 67 s → topocentric zenith 50.11162°,
    # azimuth 194.34024° (the zenith includes refraction).
    t = datetime(2003, 10, 17, 19, 30, 30, tzinfo=UTC).timestamp()
    _, apparent, azimuth = solar_position_deg(
        np.array([t]),
        39.742476,
        -105.1786,
        1830.14,
        pressure_hpa=820.0,
        temperature_c=11.0,
        delta_t_s=67.0,
    )
    assert apparent[0] == pytest.approx(50.11162, abs=1e-4)
    assert azimuth[0] == pytest.approx(194.34024, abs=1e-4)


def test_cached_geometry_matches_direct_spa() -> None:
    geometry = SolarGeometry(**SITE)
    t = T0 + np.linspace(0.0, 2 * DAY_S, 577) + 37.0  # off the 5-minute knots
    zenith, _, _ = solar_position_deg(t, SITE["latitude_deg"], SITE["longitude_deg"], 1900.0)
    assert np.max(np.abs(geometry.at(t).zenith_deg - zenith)) < 0.02


@pytest.mark.parametrize("day", ["2026-06-01", "2026-12-21"])
def test_clear_sky_ghi_matches_pvlib_location(day: str) -> None:
    # reference: pvlib's own Location.get_clearsky (Ineichen–Perez, SoDa Linke turbidity)
    times = pd.date_range(f"{day} 00:00", periods=200, freq="7min", tz="UTC")
    reference = (
        pvlib.location.Location(25.0, 102.7, altitude=1900.0)
        .get_clearsky(times, model="ineichen")["ghi"]
        .to_numpy()
    )
    mine = SolarGeometry(**SITE).ghi_clear_wm2(np.array([x.timestamp() for x in times]))
    assert np.max(np.abs(mine - reference)) < 2.0  # W/m², at irradiances up to ~1130 W/m²


# --- history, weather forecasts, learned responses ----------------------------------------


def test_history_averages_into_bins_and_counts_bad_samples() -> None:
    h = BinnedHistory(span_s=DAY_S)
    h.add(T0 + 10.0, 10.0, 1.0)
    h.add(T0 + 20.0, 20.0, None)
    h.add(T0 + 400.0, 30.0, 3.0)
    assert not h.add(T0 + 500.0, math.nan, None)
    assert not h.add(T0 + 500.0, -1.0, None)
    frame = h.frame()
    i = frame.index(np.array([T0 + 10.0, T0 + 400.0]))
    assert frame.power_mw[i].tolist() == [15.0, 30.0]
    assert frame.measurement[i].tolist() == [1.0, 3.0]
    assert h.rejected == 2
    # a sample a day later pushes the first bin out (the span is 288 bins); an older one is
    # then refused
    h.add(T0 + DAY_S + 10.0, 5.0, None)
    assert not h.add(T0 + 10.0, 1.0, None)
    power = h.frame().power_mw
    assert power[0] == 30.0 and power[-1] == 5.0 and np.isnan(power[1:-1]).all()


def test_nwp_store_answers_as_of_a_past_time() -> None:
    store = NwpStore()
    times = T0 + 900.0 * np.arange(1, 9, dtype=np.float64)
    store.add(T0, times, np.full(8, 1.0))
    store.add(T0 + 3600.0, times + 3600.0, np.full(8, 2.0))
    at = np.array([T0 + 7200.0, T0 + 7200.0, T0 + 9 * 3600.0])
    as_of = np.array([T0 + 1800.0, T0 + 3600.0, T0 + 3600.0])
    got = store.value(at, as_of)
    assert got[:2].tolist() == [1.0, 2.0]
    assert np.isnan(got[2])  # past every forecast's last valid time


def test_isotonic_regression_by_hand() -> None:
    got = isotonic_increasing(np.array([1.0, 3.0, 2.0, 4.0]), np.ones(4))
    assert got.tolist() == [1.0, 2.5, 2.5, 4.0]


def test_learned_power_curve_recovers_a_known_curve() -> None:
    rng = np.random.default_rng(3)
    capacity = 100.0
    speed = rng.weibull(2.0, 4000) * 8.0

    def true_curve(v: np.ndarray) -> np.ndarray:
        frac = np.clip((v**3 - 27.0) / (12.0**3 - 27.0), 0.0, 1.0)
        return capacity * np.where(v < 3.0, 0.0, frac)

    power = np.clip(true_curve(speed) + rng.normal(0.0, 3.0, speed.size), 0.0, capacity)
    curve = LearnedCurve(capacity)
    curve.add(speed, power)
    v = np.linspace(1.0, 18.0, 35)
    assert np.max(np.abs(curve(v) - true_curve(v))) < 0.06 * capacity
    assert np.all(np.diff(curve(v)) >= 0.0)


def test_pv_model_recovers_tilt_and_performance_ratio() -> None:
    geometry = SolarGeometry(**SITE)
    truth = PvPlantModel(500.0, geometry)
    truth.tilt_deg, truth.performance_ratio = 30.0, 0.85
    t = T0 + np.arange(0.0, 3 * DAY_S, BIN_S) + BIN_S / 2
    kc = np.random.default_rng(5).uniform(0.3, 1.0, t.size)
    ghi = geometry.ghi_clear_wm2(t) * kc
    fitted = PvPlantModel(500.0, geometry)
    fitted.learn(t, truth.power_mw(t, ghi), ghi)
    assert fitted.fitted_on_ghi
    assert fitted.tilt_deg == 30.0
    assert fitted.performance_ratio == pytest.approx(0.85, abs=0.01)


# --- the forecaster ----------------------------------------------------------------------


def _pv_day_mw(t: np.ndarray, geometry: SolarGeometry) -> np.ndarray:
    return 0.8 * 600.0 * geometry.ghi_clear_wm2(t) / 1000.0


def _feed(f: PlantForecaster, t: np.ndarray, power: np.ndarray, meas: np.ndarray) -> None:
    for ti, pi, mi in zip(t.tolist(), power.tolist(), meas.tolist(), strict=True):
        f.observe(ti, pi, mi)


def _wind_series(hours: float, step_s: float, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    t = T0 + np.arange(0.0, hours * 3600.0, step_s)
    speed = 8.0 + 3.0 * np.sin(2 * np.pi * (t - T0) / (17 * 3600.0)) + rng.normal(0, 0.5, t.size)
    speed = np.maximum(speed, 0.0)
    power = 300.0 * np.clip((speed**3 - 27.0) / (12.0**3 - 27.0), 0.0, 1.0)
    return t, power, speed


def _grid(issue_s: float, n: int = 192) -> np.ndarray:
    return (math.floor(issue_s / 900.0) + 1 + np.arange(n)) * 900.0


def test_forecast_before_any_data_is_zero_and_valid() -> None:
    f = PlantForecaster("wind", 300.0, latitude_deg=40.0, longitude_deg=110.0)
    q = f.forecast(T0, _grid(T0))
    assert q.p90_mw.max() == 0.0


def test_forecaster_is_deterministic_and_independent_of_when_it_is_asked() -> None:
    t, power, speed = _wind_series(60.0, 60.0, seed=1)
    weather = WeatherInput(
        T0, T0 + 900.0 * np.arange(1, 300, dtype=np.float64), wind_speed_ms=np.full(299, 8.0)
    )
    end = float(t[-1])
    results = []
    for ask_every in (None, 37):
        f = PlantForecaster("wind", 300.0, latitude_deg=40.0, longitude_deg=110.0)
        f.observe_weather(weather)
        for i, (ti, pi, vi) in enumerate(
            zip(t.tolist(), power.tolist(), speed.tolist(), strict=True)
        ):
            f.observe(ti, pi, vi)
            if ask_every and i % ask_every == 0:
                f.forecast(ti, _grid(ti, 8))
        results.append(f.forecast(end, _grid(end)))
    for a, b in zip(
        (results[0].p10_mw, results[0].p50_mw, results[0].p90_mw),
        (results[1].p10_mw, results[1].p50_mw, results[1].p90_mw),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)


def test_gaps_and_bad_values_are_survived_and_counted() -> None:
    t, power, speed = _wind_series(48.0, 60.0, seed=2)
    power[100:110] = np.nan
    power[200] = -5.0
    keep = (t < T0 + 10 * 3600.0) | (t > T0 + 30 * 3600.0)  # a 20 h hole
    f = PlantForecaster("wind", 300.0, latitude_deg=40.0, longitude_deg=110.0)
    _feed(f, t[keep], power[keep], speed[keep])
    assert f.rejected == 11
    q = f.forecast(float(t[-1]), _grid(float(t[-1])))
    assert np.all(np.isfinite(q.p50_mw))
    # a steady wind near the recent level: the first hour is forecast close to it
    assert abs(q.p50_mw[0] - np.nanmean(power[-15:])) < 0.2 * 300.0


@pytest.mark.parametrize("step_s", [1.0, 3600.0])
def test_any_input_resolution_gives_a_sane_pv_forecast(step_s: float) -> None:
    f = PlantForecaster("pv", 600.0, **SITE)
    geometry = SolarGeometry(**SITE)
    hours = 6.0 if step_s == 1.0 else 96.0  # 1 s for 6 h (21,600 samples), 1 h for 4 days
    t = T0 + np.arange(0.0, hours * 3600.0, step_s)
    power = _pv_day_mw(t, geometry)
    _feed(f, t, power, geometry.ghi_clear_wm2(t))
    issue = float(t[-1])
    times = _grid(issue)
    q = f.forecast(issue, times)
    clear = _pv_day_mw(times, geometry)
    assert np.all(q.p50_mw[clear == 0.0] == 0.0)  # nothing at night
    noon = np.argmax(clear)
    assert q.p50_mw[noon] == pytest.approx(clear[noon], rel=0.15)  # a clear sky persists


def test_baselines_by_hand() -> None:
    geometry = SolarGeometry(**SITE)
    t = T0 + np.arange(0.0, 2 * DAY_S, 60.0)
    power = _pv_day_mw(t, geometry)
    power[t >= T0 + DAY_S] *= 0.5  # the second day is half as bright
    refs = (
        Persistence(600.0),
        SmartPersistence("pv", 600.0, **SITE),
        DiurnalClimatology(600.0),
    )
    for r in refs:
        ghi = geometry.ghi_clear_wm2(t).tolist()
        for ti, pi, gi in zip(t.tolist(), power.tolist(), ghi, strict=True):
            r.observe(ti, pi, gi * (0.5 if ti >= T0 + DAY_S else 1.0))
    issue = T0 + DAY_S + 4 * 3600.0  # local noon-ish of day 2
    times = np.array([issue + 3600.0, issue + DAY_S])
    pers, smart, clim = (r.forecast(issue, times).p50_mw for r in refs)
    recent_mw = np.mean(power[(t >= issue - 900.0) & (t <= issue)])
    assert pers[0] == pers[1] == pytest.approx(recent_mw, rel=0.02)
    assert smart[1] == pytest.approx(0.5 * _pv_day_mw(times[1:], geometry)[0], rel=0.05)
    # climatology: the mean over the (up to three) past days known at the issue; at +1 h
    # only day 1 is, at +24 h days 1 and 2
    assert clim[0] == pytest.approx(_pv_day_mw(times[:1] - DAY_S, geometry)[0], rel=0.03)
    assert clim[1] == pytest.approx(0.75 * _pv_day_mw(times[1:] - DAY_S, geometry)[0], rel=0.03)


@st.composite
def _streams(draw: st.DrawFn) -> tuple[Kind, list[tuple[float, float, float]], float, float]:
    kind: Kind = draw(st.sampled_from(["pv", "wind", "hydro"]))
    capacity = draw(st.floats(1.0, 2000.0))
    step = draw(st.sampled_from([60.0, 300.0, 3600.0]))
    n = draw(st.integers(1, 400))
    values = draw(
        st.lists(
            st.one_of(st.floats(-10.0, 1.3 * capacity), st.just(math.nan)), min_size=n, max_size=n
        )
    )
    gaps = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    t = T0 + step * np.cumsum(np.array(gaps) + 1.0)
    meas = draw(st.floats(0.0, 1200.0))
    rows = [(float(ti), v, meas) for ti, v in zip(t, values, strict=True)]
    return kind, rows, capacity, draw(st.floats(-3600.0, 2 * DAY_S))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_streams())
def test_quantiles_are_monotone_and_within_capacity(
    case: tuple[Kind, list[tuple[float, float, float]], float, float],
) -> None:
    kind, rows, capacity, issue_offset = case
    f = PlantForecaster(kind, capacity, latitude_deg=44.0, longitude_deg=87.3)
    times_nwp = T0 + 900.0 * np.arange(1, 400, dtype=np.float64)
    f.observe_weather(
        WeatherInput(
            T0,
            times_nwp,
            ghi_wm2=np.full(399, 500.0),
            wind_speed_ms=np.full(399, 9.0),
            flow_m3s=np.full(399, 300.0),
        )
    )
    for t, v, m in rows:
        f.observe(t, v, m)
    issue = rows[-1][0] + issue_offset
    q = f.forecast(issue, _grid(issue))
    assert isinstance(q, QuantileForecast)
    assert np.all(q.p10_mw >= 0.0)
    assert np.all(q.p10_mw <= q.p50_mw)
    assert np.all(q.p50_mw <= q.p90_mw)
    assert np.all(q.p90_mw <= capacity)


def test_quantile_forecast_rejects_disorder() -> None:
    one = np.ones(3)
    with pytest.raises(ValueError, match="p50"):
        QuantileForecast(one, one, one, one * 0.5)
    with pytest.raises(ValueError, match="shape"):
        QuantileForecast(one, one, one, np.ones(2))
    with pytest.raises(ValueError, match="shape"):
        WeatherInput(T0, one, ghi_wm2=np.ones(2))
    with pytest.raises(ValueError, match="kind"):
        PlantForecaster("tidal", 1.0, latitude_deg=0.0, longitude_deg=0.0)  # type: ignore[arg-type]
