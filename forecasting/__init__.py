"""Renewable supply forecasting (pure numpy/scipy/pvlib; imports nothing of ours).

Public API::

    PlantForecaster(kind, capacity_mw, *, latitude_deg, longitude_deg, altitude_m=0.0)
        .observe(t_s, power_mw, measurement=None)   # any resolution, gaps and bad values ok
        .observe_weather(WeatherInput(...))          # an NWP forecast, when published
        .learn()                                     # optional: fold in completed hours now
        .forecast(issue_s, times_s) -> QuantileForecast   # P10/P50/P90 [MW], 0..capacity
    Persistence, SmartPersistence, DiurnalClimatology   # baselines, same methods
    metrics: nmae, nrmse, skill, pinball, mean_pinball, crps_from_quantiles, coverage
    evaluation.rolling_origin(...)                   # scores by lead bucket (JSON-able)

How the models work and how they score: docs/forecasting.md.
"""

from forecasting.baselines import DiurnalClimatology, Persistence, SmartPersistence
from forecasting.plant import PlantForecaster
from forecasting.types import KINDS, Kind, QuantileForecast, WeatherInput

__all__ = [
    "KINDS",
    "DiurnalClimatology",
    "Kind",
    "Persistence",
    "PlantForecaster",
    "QuantileForecast",
    "SmartPersistence",
    "WeatherInput",
]
