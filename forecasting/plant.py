"""One renewable plant's forecaster: point and quantiles of available power up to 48 h.

How it works (details in docs/forecasting.md):

1. Observations are averaged into 5-minute bins (:class:`BinnedHistory`); weather forecasts are
   kept per issue (:class:`NwpStore`).
2. When new bins are complete, the plant's response is refitted (PV tilt and performance ratio,
   or the wind/hydro curve), then every new bin serves as the target of hindcasts at a set of
   leads: the candidates (:func:`candidates`) are rebuilt as they stood at each past issue time,
   the current blend's residuals feed the error band, and the rows feed the blend's fit.
3. A forecast builds the same candidates for the requested valid times, blends them with the
   weights of their lead, and puts around it the error band of that lead and predicted level.

It is deterministic: the result depends only on the sequence of calls and their arguments.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np

from forecasting.blend import (
    COVERAGE,
    HOUR_S,
    LEVEL_EDGES,
    LeadBlend,
    ResidualBand,
    band_class,
)
from forecasting.features import CLIMATE_BINS, Candidates, Prepared, candidates, window_bins
from forecasting.history import BIN_S, BinnedHistory, Frame
from forecasting.kinds import KindModel, make_kind
from forecasting.nwp import NwpStore
from forecasting.solar import SolarGeometry
from forecasting.types import (
    KINDS,
    Array,
    IntArray,
    Kind,
    QuantileForecast,
    WeatherInput,
    as_float_array,
)

HINDCAST_LEADS_S: Final = HOUR_S * np.array(
    [1 / 6, 1 / 3, 2 / 3, 1, 1.5, 2, 3, 4, 6, 9, 12, 18, 24, 30, 36, 42, 47.5]
)
"""Leads at which each new bin is hindcast [s]: spread over the 48 h the planner looks ahead."""
MIN_PRIOR_SCALE: Final = 0.1
"""The prior spread of y is taken over bins whose clear-sky output is over 10 % of capacity:
near dawn and dusk the clear-sky index is noise."""
RANGE_SPREAD: Final = 0.4
"""The band's half-width for a plant known only by its range: with y anywhere between zero and
its ceiling (1: rated output, or clear sky for PV), uniformly, |y − 0.5| ≤ 0.4 80 % of the
time."""
RANGE_WEIGHT_S: Final = 86_400.0
"""That knowledge counts as one day of history (one diurnal cycle, the least that shows a plant's
range) against the forecaster's age: it dominates the first hours, and after a week it is an
eighth.  The spread of the last three days alone would say a river at its rated flow, or a calm
morning, cannot move."""


class PlantForecaster:
    """Forecaster of one renewable plant's available power.

    Parameters
    ----------
    kind : {"pv", "wind", "hydro"}
    capacity_mw : float
        Installed capacity [MW]: forecasts lie in [0, capacity].
    latitude_deg, longitude_deg, altitude_m : float
        Site position [°, °, m] (solar geometry for PV).

    Attributes
    ----------
    rejected : int
        Observations ignored: non-finite or negative power, or older than the history kept.
    """

    def __init__(
        self,
        kind: Kind,
        capacity_mw: float,
        *,
        latitude_deg: float,
        longitude_deg: float,
        altitude_m: float = 0.0,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r} (known: {', '.join(KINDS)})")
        if not (math.isfinite(capacity_mw) and capacity_mw > 0.0):
            raise ValueError(f"capacity_mw must be positive, got {capacity_mw}")
        self.kind: Kind = kind
        self.capacity_mw = float(capacity_mw)
        geometry = SolarGeometry(latitude_deg, longitude_deg, altitude_m) if kind == "pv" else None
        self._model: KindModel = make_kind(kind, self.capacity_mw, geometry)
        self._history = BinnedHistory()
        self._nwp = NwpStore()
        self._blend_nwp = LeadBlend(6 if kind == "hydro" else 5 if kind == "wind" else 4, 0, 1)
        self._blend_plain = LeadBlend(3 if kind == "hydro" else 2, 0, 1)
        # PV adds a low-sun class to the residuals' level classes
        self._low_scale = kind == "pv"
        classes = LEVEL_EDGES.size + 1 + (1 if self._low_scale else 0)
        self._band_nwp = ResidualBand(classes)
        self._band_plain = ResidualBand(classes)
        self._learned_bin: int | None = None
        self._first_bin: int | None = None

    @property
    def rejected(self) -> int:
        return self._history.rejected

    @property
    def model(self) -> KindModel:
        """The fitted plant response (PV tilt and PR, or the learned curve)."""
        return self._model

    def observe(self, t_s: float, power_mw: float, measurement: float | None = None) -> None:
        """One observation of available power [MW] with the plant's weather measurement
        (GHI [W/m²], hub-height wind speed [m/s] or river flow [m³/s]), at any resolution."""
        if math.isfinite(power_mw) and power_mw > self.capacity_mw:
            power_mw = self.capacity_mw  # meters read a little over nameplate now and then
        self._history.add(t_s, power_mw, measurement)

    def observe_weather(self, weather: WeatherInput) -> None:
        """Take in a weather forecast; its series for this plant's kind, if any, is kept."""
        series = weather.series(self.kind)
        if series is not None:
            self._nwp.add(float(weather.issued_s), weather.times_s, series)

    def learn(self) -> None:
        """Fold in every hour of observations completed so far.

        :meth:`forecast` does this itself; calling it when telemetry arrives keeps that work
        (a few ms per hour of data) off the planner's path.
        """
        self._learn()

    def forecast(self, issue_s: float, times_s: Array) -> QuantileForecast:
        """P10/P50/P90 of available power [MW] at ``times_s``, issued at ``issue_s``.

        Uses observations up to ``issue_s`` and the latest weather forecast issued by then.
        """
        times = as_float_array(times_s)
        if not (math.isfinite(issue_s) and np.all(np.isfinite(times))):
            raise ValueError("issue_s and times_s must be finite")
        self._learn()
        if self._history.newest_bin < 0:
            zeros = np.zeros(times.size)
            return QuantileForecast(times, zeros, zeros.copy(), zeros.copy())
        prep = self._prepared()
        as_of_bin = math.floor(issue_s / BIN_S) - prep.frame.first_bin
        rows = np.full(times.size, as_of_bin, dtype=np.int64)
        cands = candidates(self._model, prep, self._nwp, times, np.full(times.size, issue_s), rows)
        y50, half = self._blend(cands)
        # P50 is the blend itself: the residual median per lead and level, added on, chased
        # the last few days' weather and cost more accuracy than it gained in calibration
        y = y50[:, None] + half[:, None] * np.array([-1.0, 0.0, 1.0])
        mw = self.capacity_mw * cands.scale[:, None] * y
        mw = np.sort(np.clip(mw, 0.0, self.capacity_mw), axis=1)
        return QuantileForecast(times, mw[:, 0], mw[:, 1], mw[:, 2])

    # --- internals -------------------------------------------------------------------------

    def _prepared(self) -> Prepared:
        frame = self._history.frame()
        norm = self._model.normalise(frame.centers_s, frame.power_mw)
        return Prepared(frame, norm, window_bins(self._history.spacing_s()))

    def _blend(self, c: Candidates) -> tuple[Array, Array]:
        """Point prediction in y per row, and the half-width of its P10–P90 band in y."""
        has_nwp = np.all(np.isfinite(c.with_nwp), axis=1)
        y = np.empty(c.lead_s.size)
        half = np.empty(c.lead_s.size)
        for blend, band, x, sel in (
            (self._blend_nwp, self._band_nwp, c.with_nwp, has_nwp),
            (self._blend_plain, self._band_plain, c.plain, ~has_nwp),
        ):
            if sel.any():
                y[sel] = np.clip(blend.predict(c.lead_s[sel], x[sel]), 0.0, self._model.y_max)
                cls = band_class(y[sel], c.scale[sel], self._low_scale)
                half[sel] = band.half_width(c.lead_s[sel], cls)
        return y, half

    def _learn(self) -> None:
        """Learn from every hour of history completed since the last call.

        Whole hours, in order, whatever the calling pattern: the result depends only on the
        observations, not on when forecasts were asked for.
        """
        newest = self._history.newest_bin
        if newest < 0:
            return
        done_bin = math.floor(math.floor(newest * BIN_S / HOUR_S) * HOUR_S / BIN_S) - 1
        if self._learned_bin is not None and done_bin <= self._learned_bin:
            return
        frame = self._history.frame()
        first = frame.first_bin
        start = first if self._learned_bin is None else max(self._learned_bin + 1, first)
        if self._first_bin is None:
            # the first bin that holds a sample: the forecaster's age counts from it
            seen = np.flatnonzero(np.isfinite(frame.power_mw[: done_bin - first + 1]))
            if seen.size:
                self._first_bin = first + int(seen[0])
        self._learned_bin = done_bin
        bins = np.arange(start, done_bin + 1)
        hours = np.floor(bins * BIN_S / HOUR_S)
        for hour in np.unique(hours):
            chunk = bins[hours == hour] - first
            chunk = chunk[np.isfinite(frame.power_mw[chunk])]
            if chunk.size:
                self._learn_chunk(frame, chunk)
            for blend in (self._blend_nwp, self._blend_plain):
                blend.snapshot((hour + 1.0) * HOUR_S)
        # the prior spread of y: the last three days of learned bins (a fixed window, so the
        # result does not depend on when forecasts were asked for), weighed against the
        # plant's range by the forecaster's age
        recent = slice(max(done_bin - first - CLIMATE_BINS + 1, 0), done_bin - first + 1)
        norm = self._model.normalise(frame.centers_s[recent], frame.power_mw[recent])
        y = norm.y[norm.valid & (norm.scale >= MIN_PRIOR_SCALE)]
        if y.size >= 2 and self._first_bin is not None:
            spread = float(np.quantile(np.abs(y - y.mean()), COVERAGE))
            age_s = (done_bin + 1 - self._first_bin) * BIN_S
            prior = (age_s * spread + RANGE_WEIGHT_S * RANGE_SPREAD) / (age_s + RANGE_WEIGHT_S)
            self._band_nwp.set_prior(prior)
            self._band_plain.set_prior(prior)

    def _learn_chunk(self, frame: Frame, new: IntArray) -> None:
        """Refit the plant response on new bins, then learn from hindcasts targeting them."""
        t_new = frame.centers_s[new]
        self._model.learn(t_new, frame.power_mw[new], frame.measurement[new], self._nwp)
        prep = Prepared(
            frame,
            self._model.normalise(frame.centers_s, frame.power_mw),
            window_bins(self._history.spacing_s()),
        )
        targets = new[prep.norm.valid[new]]
        if targets.size == 0:
            return
        leads = HINDCAST_LEADS_S.size
        t_target = np.repeat(frame.centers_s[targets], leads)
        y_target = np.repeat(prep.norm.y[targets], leads)
        as_of = t_target - np.tile(HINDCAST_LEADS_S, targets.size)
        # only bins complete at the issue time: a hindcast must not see its own future
        as_of_bin = np.floor(as_of / BIN_S).astype(np.int64) - frame.first_bin - 1
        c = candidates(self._model, prep, self._nwp, t_target, as_of, as_of_bin)
        weight = c.scale**2
        has_nwp = np.all(np.isfinite(c.with_nwp), axis=1)
        # the plain blend learns everywhere, so it is ready when a weather forecast is missing
        for blend, band, x, sel in (
            (self._blend_nwp, self._band_nwp, c.with_nwp, has_nwp & c.observed),
            (self._blend_plain, self._band_plain, c.plain, c.observed),
        ):
            if not sel.any():
                continue
            # residuals of the weights a forecast issued at the hindcast's issue time would
            # have had: out of sample, or the band comes out too narrow
            pred = blend.predict(c.lead_s[sel], x[sel], as_of[sel])
            pred = np.clip(pred, 0.0, self._model.y_max)
            cls = band_class(pred, c.scale[sel], self._low_scale)
            band.add(c.lead_s[sel], cls, y_target[sel] - pred)
            blend.forget(float(t_new[-1]))
            blend.learn(c.lead_s[sel], x[sel], y_target[sel], weight[sel])
