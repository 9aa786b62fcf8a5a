"""Forecast evaluation: metric functions against hand-computed cases, the CSV reader's error
reports, and the rolling-origin harness on a short simulated run and on a measured-style file."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pytest

from forecasting.csvdata import parse_timestamp, read_csv_series
from forecasting.evaluation import Series, truth_at
from forecasting.metrics import (
    bucket_of,
    coverage,
    crps_from_quantiles,
    mean_pinball,
    nmae,
    nrmse,
    pinball,
    skill,
)
from harness.forecast_eval import evaluate_csv, evaluate_scenario, main_forecast_eval

T0 = 1_780_272_000.0


# --- metrics ---------------------------------------------------------------------------


def test_errors_by_hand() -> None:
    f, o = np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0, 5.0])
    assert nmae(f, o, 10.0) == pytest.approx((1 + 0 + 2) / 3 / 10)
    assert nrmse(f, o, 10.0) == pytest.approx(math.sqrt((1 + 0 + 4) / 3) / 10)
    assert math.isnan(nmae(np.empty(0), np.empty(0), 1.0))


def test_skill_by_hand() -> None:
    assert skill(0.5, 1.0) == 0.5
    assert skill(2.0, 1.0) == -1.0
    assert math.isnan(skill(0.5, 0.0))


def test_pinball_by_hand() -> None:
    # observation above the quantile costs τ per unit, below it (1 − τ)
    got = pinball(np.array([2.0, 4.0]), np.array([3.0, 3.0]), 0.9)
    assert got.tolist() == pytest.approx([0.9, 0.1])
    quantiles = {0.1: np.array([1.0]), 0.5: np.array([2.0]), 0.9: np.array([4.0])}
    # o = 3: 0.1·2 = 0.2, 0.5·1 = 0.5, 0.1·1 = 0.1 → mean 0.8/3, over capacity 2
    assert mean_pinball(quantiles, np.array([3.0]), 2.0) == pytest.approx(0.8 / 3 / 2)
    assert crps_from_quantiles(quantiles, np.array([3.0]), 2.0) == pytest.approx(0.8 / 3)


def test_coverage_and_buckets_by_hand() -> None:
    lo, hi = np.array([0.0, 1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0, 4.0])
    assert coverage(lo, hi, np.array([0.5, 2.0, 5.0, 2.9])) == 0.5  # bounds are inside
    assert bucket_of(np.array([0.25, 1.0, 1.01, 4.0, 24.0, 30.0, 48.0, 49.0, 0.0])) == [
        "0-1h",
        "0-1h",
        "1-4h",
        "1-4h",
        "4-24h",
        "24-48h",
        "24-48h",
        None,
        None,
    ]


def test_truth_is_the_mean_over_the_step_centred_on_the_valid_time() -> None:
    s = Series(T0 + 60.0 * np.arange(60, dtype=np.float64), np.arange(60, dtype=np.float64))
    got = truth_at(s, np.array([T0 + 900.0, T0 + 99_999.0]), 900.0)
    assert got[0] == pytest.approx(np.mean(np.arange(8, 23)))  # 7.5 min either side
    assert np.isnan(got[1])


# --- CSV -------------------------------------------------------------------------------


def test_timestamps() -> None:
    assert parse_timestamp("1780272000") == T0
    assert parse_timestamp("2026-06-01T08:00:00+08:00") == T0
    assert parse_timestamp("2026-06-01T00:00:00Z") == T0
    with pytest.raises(ValueError, match="time zone"):
        parse_timestamp("2026-06-01T00:00:00")


def test_bad_rows_are_reported_with_line_numbers() -> None:
    text = [
        "timestamp,power_mw,wind_speed_ms",
        "2026-06-01T00:00:00Z,10,5",  # 2
        "2026-06-01T00:05:00Z,-1,5",  # 3 negative
        "not-a-time,10,5",  # 4
        "2026-06-01T00:10:00,10,5",  # 5 no zone
        "2026-06-01T00:10:00Z,nan,5",  # 6
        "2026-06-01T00:05:00Z,11,",  # 7: fine, no measurement
        "2026-06-01T00:05:00Z,11,5",  # 8 not after the previous row
        "",
        "2026-06-01T00:10:00Z,12",  # 10 too few fields
        "2026-06-01T03:00:00Z,12,6",  # 11 after a gap
        "2026-06-01T03:05:00Z,12,6",
    ]
    data = read_csv_series(text, "wind")
    assert [b.line for b in data.bad_rows] == [3, 4, 5, 6, 8, 10]
    assert data.times_s.size == 4
    assert np.isnan(data.measurement[1])
    assert [(g.line, round(g.hours, 2)) for g in data.gaps] == [(11, 2.92)]
    with pytest.raises(ValueError, match="power_mw"):
        read_csv_series(["timestamp,power"], "pv")


def _write_csv(path: Path, days: int) -> None:
    """A synthetic wind plant at 10-minute resolution: a slow swing plus noise."""
    rng = np.random.default_rng(4)
    t = T0 + 600.0 * np.arange(days * 144)
    speed = np.maximum(
        8 + 4 * np.sin(2 * np.pi * (t - T0) / 50_000.0) + rng.normal(0, 1, t.size), 0
    )
    power = 50.0 * np.clip((speed**3 - 27) / (12**3 - 27), 0, 1)
    lines = ["timestamp,power_mw,wind_speed_ms"]
    lines += [f"{ti:.0f},{p:.3f},{v:.2f}" for ti, p, v in zip(t, power, speed, strict=True)]
    lines.insert(100, "garbage,row")  # becomes line 101
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_evaluate_csv(tmp_path: Path) -> None:
    path = tmp_path / "wind.csv"
    _write_csv(path, 4)
    result = evaluate_csv(path, "wind", 50.0, 40.0, 110.0)
    assert result["bad_rows"] == [{"line": 101, "reason": "expected 3 fields, got 2"}]
    buckets = result["buckets"]
    assert isinstance(buckets, dict)
    assert set(buckets) == {"0-1h", "1-4h", "4-24h", "24-48h"}
    assert buckets["0-1h"]["points"] > 0
    json.dumps(result)


def test_main_forecast_eval_on_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "wind.csv"
    _write_csv(path, 3)
    args = argparse.Namespace(
        scenario=None,
        days=7.0,
        seed=1,
        json=True,
        data=str(path),
        kind="wind",
        capacity_mw=50.0,
        lat=None,
        lon=None,
    )
    assert main_forecast_eval(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["kind"] == "wind" and "skill_vs_persistence" in out["buckets"]["1-4h"]
    args.kind = "pv"
    assert main_forecast_eval(args) == 2  # PV needs a position
    args.kind, args.data = "wind", str(tmp_path / "missing.csv")
    assert main_forecast_eval(args) == 1


def test_scenario_evaluation_beats_smart_persistence() -> None:
    # short (4 days: 2 warm-up, 2 scored): a regression guard, not the reported skill
    results = evaluate_scenario("inner-mongolia-wind", 4.0, 1)
    assert {r["kind"] for r in results} == {"wind", "pv"}
    for r in results:
        buckets = r["buckets"]
        assert isinstance(buckets, dict)
        for name in ("1-4h", "4-24h"):
            assert buckets[name]["skill_vs_smart_persistence"] > 0.1, (r["source"], name)
        json.dumps(r)
