"""Rolling-origin evaluation of a plant's forecaster against the baselines.

The forecaster and the baselines are fed the same observations and weather forecasts in time
order; at every issue time each forecasts the next 48 h on a regular grid, and the forecasts are
scored against the truth (the observed output averaged over each step, centred on its valid time)
by lead-time bucket.  Pure: the series come in as arrays, a JSON-able dict comes out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

import numpy as np

from forecasting.baselines import DiurnalClimatology, Persistence, SmartPersistence
from forecasting.metrics import (
    BUCKETS_H,
    coverage,
    crps_from_quantiles,
    mean_pinball,
    nmae,
    nrmse,
    skill,
)
from forecasting.plant import PlantForecaster
from forecasting.solar import SolarGeometry
from forecasting.types import Array, BoolArray, Kind, QuantileForecast, WeatherInput

HORIZON_S: Final = 48.0 * 3600.0
REFERENCES: Final = ("persistence", "smart_persistence", "climatology")


class Forecaster(Protocol):
    """What the model and the baselines have in common."""

    def observe(self, t_s: float, power_mw: float, measurement: float | None = None) -> None: ...

    def observe_weather(self, weather: WeatherInput) -> None: ...

    def forecast(self, issue_s: float, times_s: Array) -> QuantileForecast: ...


@dataclass(frozen=True)
class PlantSpec:
    """What the forecaster is told about a plant."""

    name: str
    kind: Kind
    capacity_mw: float
    latitude_deg: float
    longitude_deg: float
    altitude_m: float = 0.0


@dataclass(frozen=True)
class Series:
    """Observations in time order: output [MW] and the weather measurement (NaN: none)."""

    times_s: Array
    power_mw: Array
    measurement: Array = field(default_factory=lambda: np.empty(0))

    def measurement_at(self, i: int) -> float | None:
        if self.measurement.size == 0:
            return None
        value = float(self.measurement[i])
        return value if math.isfinite(value) else None


def truth_at(series: Series, valid_s: Array, window_s: float) -> Array:
    """Mean observed output over [t − w/2, t + w/2) for each valid time t; NaN where none."""
    csum = np.concatenate([[0.0], np.cumsum(series.power_mw)])
    lo = np.searchsorted(series.times_s, valid_s - window_s / 2.0, side="left")
    hi = np.searchsorted(series.times_s, valid_s + window_s / 2.0, side="left")
    count = hi - lo
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, (csum[hi] - csum[lo]) / np.maximum(count, 1), np.nan)


def rolling_origin(
    plant: PlantSpec,
    observations: Series,
    weather: Sequence[WeatherInput],
    truth: Series,
    issues_s: Array,
    step_s: float,
) -> dict[str, object]:
    """Issue forecasts at ``issues_s`` for 48 h every ``step_s`` and score them.

    Returns the JSON object of one plant: source, kind, capacity, issues, and per bucket the
    model's and the references' scores (see docs/forecasting.md).  PV is scored in daylight
    only (clear-sky GHI above zero at the valid time): night-time zeros would flatter every
    method alike.
    """
    site = {
        "latitude_deg": plant.latitude_deg,
        "longitude_deg": plant.longitude_deg,
        "altitude_m": plant.altitude_m,
    }
    model = PlantForecaster(plant.kind, plant.capacity_mw, **site)
    refs: dict[str, Forecaster] = {
        "persistence": Persistence(plant.capacity_mw),
        "smart_persistence": SmartPersistence(plant.kind, plant.capacity_mw, **site),
        "climatology": DiurnalClimatology(plant.capacity_mw),
    }
    everyone: list[Forecaster] = [model, *refs.values()]
    geometry = SolarGeometry(plant.latitude_deg, plant.longitude_deg, plant.altitude_m)
    offsets = np.arange(1, int(HORIZON_S / step_s) + 1, dtype=np.float64) * step_s
    collected: dict[str, list[Array]] = {
        k: [] for k in ("lead_h", "truth", "p10", "p50", "p90", *REFERENCES)
    }
    obs_i = weather_i = 0
    for issue in np.sort(issues_s).tolist():
        while obs_i < observations.times_s.size and observations.times_s[obs_i] <= issue:
            t, p = float(observations.times_s[obs_i]), float(observations.power_mw[obs_i])
            m = observations.measurement_at(obs_i)
            for f in everyone:
                f.observe(t, p, m)
            obs_i += 1
        while weather_i < len(weather) and weather[weather_i].issued_s <= issue:
            for f in everyone:
                f.observe_weather(weather[weather_i])
            weather_i += 1
        valid = (math.floor(issue / step_s)) * step_s + offsets
        observed = truth_at(truth, valid, step_s)
        keep = np.isfinite(observed)
        if plant.kind == "pv":
            keep &= geometry.ghi_clear_wm2(valid) > 0.0
        if not keep.any():
            continue
        q = model.forecast(issue, valid)
        collected["lead_h"].append((valid[keep] - issue) / 3600.0)
        collected["truth"].append(observed[keep])
        collected["p10"].append(q.p10_mw[keep])
        collected["p50"].append(q.p50_mw[keep])
        collected["p90"].append(q.p90_mw[keep])
        for name, ref in refs.items():
            collected[name].append(ref.forecast(issue, valid).p50_mw[keep])
    arrays = {k: np.concatenate(v) if v else np.empty(0) for k, v in collected.items()}
    return {
        "source": plant.name,
        "kind": plant.kind,
        "capacity_mw": plant.capacity_mw,
        "issues": int(np.size(issues_s)),
        "rejected_observations": model.rejected,
        "buckets": {
            name: _score(arrays, (arrays["lead_h"] > lo) & (arrays["lead_h"] <= hi), plant)
            for name, (lo, hi) in BUCKETS_H.items()
        },
    }


def _score(a: dict[str, Array], sel: BoolArray, plant: PlantSpec) -> dict[str, object]:
    cap = plant.capacity_mw
    o = a["truth"][sel]
    quantiles = {0.1: a["p10"][sel], 0.5: a["p50"][sel], 0.9: a["p90"][sel]}
    rmse_model = nrmse(a["p50"][sel], o, cap)
    model = {
        "nmae": nmae(a["p50"][sel], o, cap),
        "nrmse": rmse_model,
        "pinball": mean_pinball(quantiles, o, cap),
        "crps_approx": crps_from_quantiles(quantiles, o, cap),
        "coverage_p10_p90": coverage(a["p10"][sel], a["p90"][sel], o),
    }
    out: dict[str, object] = {"points": int(o.size), "model": _rounded(model)}
    for name in REFERENCES:
        ref = {"nmae": nmae(a[name][sel], o, cap), "nrmse": nrmse(a[name][sel], o, cap)}
        out[name] = _rounded(ref)
        out[f"skill_vs_{name}"] = _round(skill(rmse_model, ref["nrmse"]))
    out["coverage_p10_p90"] = _round(model["coverage_p10_p90"])
    out["pinball"] = _round(model["pinball"])
    return out


def _round(x: float) -> float | None:
    return round(x, 4) if math.isfinite(x) else None


def _rounded(d: dict[str, float]) -> dict[str, float | None]:
    return {k: _round(v) for k, v in d.items()}
