"""Renewable supply forecast for the planner, from telemetry and published weather forecasts.

One :class:`forecasting.plant.PlantForecaster` per renewable plant learns from that plant's
``available_mw`` and its weather measurement, and from the site's NWP-like forecasts
(``smelter/forecast/weather/{site}``).  The planner needs the site total: P50s add up; the P10
and P90 of the total are taken as the sums of the plants' quantiles, which assumes the plants'
errors move together — conservative for the P10 reserve, since weather errors at one site are
strongly correlated.
"""

from __future__ import annotations

import pickle
from collections.abc import Collection
from typing import Any

import numpy as np

from controller.planner.types import FloatArray
from controller.site import SiteModel
from forecasting.plant import PlantForecaster
from forecasting.types import QuantileForecast, WeatherInput
from wire import RenewableTelemetry, WeatherForecast

FORECASTERS_VERSION = 1
"""Bumped whenever the forecasters' classes change shape: an older dump is then not loaded."""


class SupplyForecaster:
    """Site-level supply forecaster.  Pure: time comes from the payloads and the caller."""

    def __init__(self, site: SiteModel) -> None:
        self.site = site
        self.plants = {
            r.name: PlantForecaster(
                r.kind,
                r.capacity_mw,
                latitude_deg=site.latitude_deg,
                longitude_deg=site.longitude_deg,
                altitude_m=site.altitude_m,
            )
            for r in site.renewable
        }

    def fingerprint(self) -> tuple[Any, ...]:
        """What learned forecasters are only valid for: the plants and the site's position."""
        plants = sorted((r.name, r.kind, float(r.capacity_mw)) for r in self.site.renewable)
        position = (self.site.latitude_deg, self.site.longitude_deg, self.site.altitude_m)
        return (tuple(plants), position)

    def dumps(self, last_ts: float) -> bytes:
        """The learned forecasters as bytes, for a restart (``last_ts``: plant time now)."""
        state = {
            "version": FORECASTERS_VERSION,
            "fingerprint": self.fingerprint(),
            "last_ts": float(last_ts),
            "plants": self.plants,
        }
        return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def loads(cls, site: SiteModel, data: bytes) -> tuple[SupplyForecaster, float]:
        """Forecasters from :meth:`dumps` and the plant time they were saved at.

        A pickle runs code as it loads: only ever call this on a file that only this service
        can write (the daemon checks).  Raises ValueError on anything unusable, with the reason.
        """
        fresh = cls(site)
        try:
            state = pickle.loads(data)  # our own private file, checked by the caller
        except Exception as exc:  # a damaged pickle can raise almost anything
            raise ValueError(f"not a forecaster dump ({type(exc).__name__}: {exc})") from exc
        if not isinstance(state, dict) or state.get("version") != FORECASTERS_VERSION:
            version = state.get("version") if isinstance(state, dict) else None
            raise ValueError(f"version {version}, expected {FORECASTERS_VERSION}")
        if state.get("fingerprint") != fresh.fingerprint():
            raise ValueError("saved for other renewable plants or another site position")
        plants = state.get("plants")
        if not isinstance(plants, dict) or set(plants) != set(fresh.plants):
            raise ValueError("the plants do not match")
        if not all(isinstance(p, PlantForecaster) for p in plants.values()):
            raise ValueError("not forecasters")
        fresh.plants = plants
        return fresh, float(state.get("last_ts", 0.0))

    def observe_telemetry(self, plant: str, payload: RenewableTelemetry) -> None:
        forecaster = self.plants.get(plant)
        if forecaster is None:
            return
        measurement = {
            "pv": payload.ghi_wm2,
            "wind": payload.wind_speed_ms,
            "hydro": payload.flow_m3s,
        }[payload.kind.value]
        forecaster.observe(payload.ts, payload.available_mw, measurement)

    def observe_weather(self, payload: WeatherForecast) -> None:
        def arr(v: list[float] | None) -> FloatArray | None:
            return None if v is None else np.asarray(v, dtype=float)

        weather = WeatherInput(
            issued_s=payload.issued_ts,
            times_s=np.asarray(payload.times, dtype=float),
            ghi_wm2=arr(payload.ghi_wm2),
            wind_speed_ms=arr(payload.wind_speed_ms),
            flow_m3s=arr(payload.flow_m3s),
        )
        for forecaster in self.plants.values():
            forecaster.observe_weather(weather)

    def forecast(
        self,
        issue_s: float,
        starts_s: FloatArray,
        step_s: float,
        *,
        unreliable: Collection[str] = (),
    ) -> QuantileForecast:
        """Total availability over the steps that start at ``starts_s`` and last ``step_s``
        (the planner's steps): the forecasters predict the mean around a valid time, so each
        step is asked at its midpoint; the result is stamped with the step starts.

        Plants in ``unreliable`` (their telemetry is stale) add nothing to the P10: the
        planner's reserve then covers losing them altogether.
        """
        starts_s = np.asarray(starts_s, dtype=float)
        mid_s = starts_s + step_s / 2.0
        p10 = np.zeros(starts_s.size)
        p50 = np.zeros(starts_s.size)
        p90 = np.zeros(starts_s.size)
        for name, forecaster in self.plants.items():
            q = forecaster.forecast(issue_s, mid_s)
            if name not in unreliable:
                p10 += q.p10_mw
            p50 += q.p50_mw
            p90 += q.p90_mw
        return QuantileForecast(
            starts_s, p10_mw=np.minimum(p10, p50), p50_mw=p50, p90_mw=np.maximum(p90, p50)
        )
