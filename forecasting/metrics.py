"""Forecast scores used in the solar and wind forecasting literature, normalised by capacity.

* nMAE = mean|f − o| / C,  nRMSE = √mean(f − o)² / C  (C the installed capacity);
* skill = 1 − RMSE / RMSE_ref (positive: better than the reference; 1: perfect);
* pinball loss of quantile τ: mean(max(τ·(o − q), (τ − 1)·(o − q))) / C, averaged over the
  quantiles given; CRPS ≈ 2 × the mean pinball over evenly spread quantile levels (exact in the
  limit of many levels; with P10/P50/P90 only a rough approximation);
* coverage: the share of observations inside [P10, P90] (0.8 when calibrated).

References: Hong et al., "Probabilistic energy forecasting: GEFCom2014", Int. J. Forecasting
32 (2016); Yang et al., "Verification of deterministic solar forecasts", Solar Energy 210
(2020); Gneiting & Raftery, "Strictly proper scoring rules", JASA 102 (2007).
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np

from forecasting.types import Array, as_float_array

BUCKETS_H: Final[dict[str, tuple[float, float]]] = {
    "0-1h": (0.0, 1.0),
    "1-4h": (1.0, 4.0),
    "4-24h": (4.0, 24.0),
    "24-48h": (24.0, 48.0),
}
"""Lead-time buckets [h], each (lo, hi]: a lead of exactly 1 h is in 0–1 h."""


def bucket_of(lead_h: Array) -> list[str | None]:
    """The bucket name of each lead [h] (None outside 0–48 h)."""
    out: list[str | None] = []
    for lead in as_float_array(lead_h).tolist():
        out.append(next((k for k, (lo, hi) in BUCKETS_H.items() if lo < lead <= hi), None))
    return out


def _pair(forecast: Array, observed: Array) -> tuple[Array, Array]:
    f, o = as_float_array(forecast), as_float_array(observed)
    if f.shape != o.shape:
        raise ValueError("forecast and observed must have the same shape")
    return f, o


def nmae(forecast: Array, observed: Array, capacity_mw: float) -> float:
    """Mean absolute error over capacity [-]; NaN for no data."""
    f, o = _pair(forecast, observed)
    return float(np.mean(np.abs(f - o)) / capacity_mw) if f.size else math.nan


def nrmse(forecast: Array, observed: Array, capacity_mw: float) -> float:
    """Root-mean-square error over capacity [-]; NaN for no data."""
    f, o = _pair(forecast, observed)
    return float(np.sqrt(np.mean((f - o) ** 2)) / capacity_mw) if f.size else math.nan


def skill(rmse: float, rmse_reference: float) -> float:
    """1 − RMSE / RMSE_ref; NaN when the reference is perfect or unknown."""
    if not (math.isfinite(rmse) and math.isfinite(rmse_reference)) or rmse_reference <= 0.0:
        return math.nan
    return 1.0 - rmse / rmse_reference


def pinball(quantile: Array, observed: Array, tau: float) -> Array:
    """Pinball (quantile) loss of each value [same unit as the inputs]."""
    q, o = _pair(quantile, observed)
    diff = o - q
    return np.asarray(np.maximum(tau * diff, (tau - 1.0) * diff), dtype=np.float64)


def mean_pinball(quantiles: dict[float, Array], observed: Array, capacity_mw: float) -> float:
    """Pinball loss averaged over values and over the quantile levels given, over capacity."""
    if not quantiles or as_float_array(observed).size == 0:
        return math.nan
    losses = [float(np.mean(pinball(q, observed, tau))) for tau, q in quantiles.items()]
    return float(np.mean(losses)) / capacity_mw


def crps_from_quantiles(
    quantiles: dict[float, Array], observed: Array, capacity_mw: float
) -> float:
    """CRPS approximated as twice the mean pinball loss over the quantile levels [-]."""
    return 2.0 * mean_pinball(quantiles, observed, capacity_mw)


def coverage(lower: Array, upper: Array, observed: Array) -> float:
    """Share of observations with lower ≤ o ≤ upper; NaN for no data."""
    lo, o = _pair(lower, observed)
    hi, _ = _pair(upper, observed)
    return float(np.mean((o >= lo) & (o <= hi))) if o.size else math.nan
