"""The renewable forecasters' lifecycle: fed, restored after a restart, started afresh.

The forecasters (:class:`~controller.supply.SupplyForecaster`) learn from each plant's
telemetry and from the site's weather forecasts.  Kept from before a restart they are used at
once, and their age is checked at the first telemetry (:data:`MAX_FORECASTERS_AGE_S` of plant
time); after a clock jump their history, on the old time base, is worthless and they start
afresh.  Either way they are given the newest weather forecast already received.

A planner that does not use them (``Planner.uses_forecast`` false: the backtest's baselines
and its oracle) gets persistence of the latest observed availability instead, and no
forecaster runs.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Final

import numpy as np

from controller.planner.types import FloatArray
from controller.site import SiteModel
from controller.supply import SupplyForecaster
from forecasting.types import QuantileForecast
from wire import RenewableTelemetry, WeatherForecast

log = logging.getLogger(__name__)

MAX_FORECASTERS_AGE_S: Final = 14 * 86_400.0
"""Forecasters saved longer ago than this (plant time) are not resumed: their residual pools
describe another season."""


class Forecasters:
    """The site's supply forecasters, or persistence when ``enabled`` is false."""

    def __init__(self, site: SiteModel, *, enabled: bool = True) -> None:
        self.site = site
        self.enabled = enabled
        self.supply: SupplyForecaster | None = SupplyForecaster(site) if enabled else None
        self.last_weather: WeatherForecast | None = None
        self._saved_ts: float | None = None
        """Set while restored forecasters wait for the first telemetry to check their age."""

    def observe_weather(self, payload: WeatherForecast) -> None:
        self.last_weather = payload
        if self.supply is not None:
            self.supply.observe_weather(payload)

    def observe_telemetry(self, asset: str, payload: RenewableTelemetry) -> None:
        if self.supply is not None:
            self.supply.observe_telemetry(asset, payload)

    def restore(self, supply: SupplyForecaster, saved_ts: float) -> None:
        """Use forecasters kept from before a restart (their age is checked by :meth:`check`)."""
        if not self.enabled:
            return
        self.supply = supply
        self._saved_ts = saved_ts
        if self.last_weather is not None:
            supply.observe_weather(self.last_weather)

    def check(self, ts: float) -> str | None:
        """At telemetry stamped ``ts``: restored forecasters too old (or from the future) start
        afresh; returns the reason then, for the status."""
        saved_ts, self._saved_ts = self._saved_ts, None
        if saved_ts is None:
            return None
        age_s = ts - saved_ts
        if 0.0 <= age_s <= MAX_FORECASTERS_AGE_S:
            log.info("forecasters resumed, saved %.0f s before (plant time)", age_s)
            return None
        log.warning(
            "forecasters saved %.1f h from now in plant time: starting them afresh", age_s / 3600
        )
        self.start_afresh()
        return f"forecasters saved {age_s / 3600:.1f} h from now: started afresh"

    def start_afresh(self) -> None:
        """New forecasters (no history), given the newest weather forecast received."""
        if not self.enabled:
            return
        self.supply = SupplyForecaster(self.site)
        if self.last_weather is not None:
            self.supply.observe_weather(self.last_weather)

    def dump(self, now_s: float | None) -> bytes | None:
        """Their learning, for a restart (None before the first telemetry, while restored ones
        still wait for it, or when there are none)."""
        if now_s is None or self._saved_ts is not None or self.supply is None:
            return None
        return self.supply.dumps(now_s)

    def forecast(
        self,
        now_s: float,
        starts_s: FloatArray,
        step_s: float,
        *,
        unreliable: Collection[str],
        latest_mw: float,
    ) -> QuantileForecast:
        """Renewable availability over the steps that start at ``starts_s``; without
        forecasters, ``latest_mw`` (the latest observed availability) held."""
        if self.supply is not None:
            return self.supply.forecast(now_s, starts_s, step_s, unreliable=unreliable)
        return QuantileForecast.point(starts_s, np.full(starts_s.size, latest_mw))
