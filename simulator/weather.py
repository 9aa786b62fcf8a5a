"""The site's weather truth, each renewable plant's available power, and an NWP-like forecast.

One :class:`SiteWeather` per simulated site.  It holds three site-level processes, one per
renewable kind, shared by every plant of that kind:

* global horizontal irradiance ``ghi_wm2`` = clear-sky GHI (solar geometry from NREL SPA,
  Ineichen–Perez clear sky with the site's Linke-turbidity climatology, all via pvlib) × a
  stochastic clear-sky index (cloud regimes with persistence, AR(1) variability inside each);
* hub-height wind speed ``wind_speed_ms``: an Ornstein–Uhlenbeck process in Gaussian space mapped
  to a Weibull marginal, with a mild diurnal cycle;
* river flow ``flow_m3s``: an annual sinusoid (wet season peak in late July in the northern
  hemisphere) times slow log-normal AR(1) noise.

Each plant maps its process through its own spec (tilt and performance ratio, power curve,
rated flow).  Truth is generated in whole-day blocks, in order, from one random stream per
process whose state is carried from block to block, so values depend only on the seed and the
step, never on how :meth:`SiteWeather.ensure` was chunked.  Values are step-held: a query at
``ts`` returns the value at the start of the step that contains ``ts``.

The forecast model, with its numbers, is in :meth:`SiteWeather.forecast` and in
``docs/simulator-weather.md``.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Final

import numpy as np
import numpy.typing as npt

# pvlib's turbidity climatology look-up takes a DatetimeIndex; pandas ships without type hints.
import pandas as pd  # type: ignore[import-untyped]
from pvlib import atmosphere, clearsky, irradiance, spa
from scipy import optimize, signal, special

from simulator.scenario import RenewableSpec, Scenario
from wire import RenewableKind, WeatherForecast

Array = npt.NDArray[np.float64]

_DAY_S: Final = 86_400.0
_HOUR_S: Final = 3_600.0
_YEAR_S: Final = 365.2422 * _DAY_S
"""Tropical year [s]: keeps the seasonal phase from drifting over decades."""

# --- solar geometry and clear sky -----------------------------------------------------------

_SUN_KNOT_S: Final = 600.0
"""SPA is evaluated every 10 min and the sun's unit vector interpolated in between, at a tenth
of the cost: zenith within 0.01°, clear-sky GHI within 0.2 W/m² (the refraction term, linear
between knots, is off by up to 0.4° in the minutes around sunrise and sunset)."""
_AIR_TEMP_C: Final = 12.0
"""Annual mean air temperature for the refraction correction only (pvlib's default)."""
_ATMOS_REFRACT_DEG: Final = 0.5667
"""Refraction at sunrise/sunset (Reda & Andreas 2004, NREL/TP-560-34302)."""
_SUN_GROUP_DAYS: Final = 8
"""SPA runs on 8 days of knots per call: its per-call cost dominates at coarse steps."""
_GROUND_ALBEDO: Final = 0.2
"""Ground reflectance for the transposition (grass/soil, the common default)."""
_MID_MONTH_DOY: Final = np.array([15, 46, 74, 105, 135, 166, 196, 227, 258, 288, 319, 349.0])

# --- cloud regimes (clear-sky index kc = GHI / clear-sky GHI) --------------------------------
# Illustrative values, not fitted to a site: 1-min kc distributions are multimodal (a clear
# mode near 1, a broken-cloud spread with enhancement above 1, an overcast mode near 0.3);
# these three regimes reproduce that shape and hour-scale persistence.

_REGIME_KC_MEAN: Final = np.array([1.0, 0.65, 0.30])
"""Mean kc of the clear, broken and overcast regimes."""
_REGIME_KC_STD: Final = np.array([0.02, 0.20, 0.08])
"""Standard deviation of kc inside each regime."""
_REGIME_KC_TAU_S: Final = np.array([1800.0, 180.0, 900.0])
"""Correlation time of kc inside each regime [s]: broken cumulus flickers in minutes."""
_REGIME_RESAMPLE_S: Final = np.array([12.0, 4.0, 8.0]) * _HOUR_S
"""Mean time between regime draws [s] (a draw may return the same regime)."""
_REGIME_BLEND_TAU_S: Final = 1200.0
"""A regime change (a front, a cloud deck arriving) takes ~20 min, not one step."""
_KC_MAX: Final = 1.3
"""Upper bound of kc: cloud enhancement at broken cumulus edges rarely exceeds 1.3."""
_KC_MEAN_RANGE: Final = (0.31, 0.99)
"""Configured mean kc is clipped to what a mix of the three regimes can produce."""

# --- wind --------------------------------------------------------------------------------------

_WIND_TAU_S: Final = 6.0 * _HOUR_S
"""Correlation time of the synoptic wind speed [s] (weather systems pass in hours to days)."""
_WIND_DIURNAL_AMPLITUDE: Final = 0.08
"""± fraction of the speed: hub-height (~100 m) wind over land peaks at night, when the stable
boundary layer decouples it from the surface (nocturnal low-level jet)."""
_WIND_DIURNAL_PEAK_H: Final = 1.0
"""Local solar hour of the diurnal maximum."""

# --- plant aggregation ---------------------------------------------------------------------

_PLANT_SMOOTHING_TAU_S: Final = {
    RenewableKind.PV: 300.0,
    RenewableKind.WIND: 900.0,
    RenewableKind.HYDRO: 0.0,
}
"""A plant of hundreds of MW spreads over kilometres: cloud shadows (≈ 3 km at ≈ 10 m/s) and
gusts (a 20 km farm at ≈ 10 m/s) do not hit all of it at once, so its output is a low-passed
version of the point process (Lave et al., wavelet variability model).  The point measurement
(``ghi_wm2``, ``wind_speed_ms``) stays unsmoothed, as a met mast sees it."""

# --- river flow --------------------------------------------------------------------------------

_FLOW_NOISE_STD: Final = 0.10
"""Std of the log-flow anomaly (rain events, upstream regulation) [-]."""
_FLOW_NOISE_TAU_S: Final = 5.0 * _DAY_S
"""Correlation time of the flow anomaly [s]: a catchment responds over days."""
_WET_PEAK_NORTH_S: Final = datetime(2001, 7, 24, tzinfo=UTC).timestamp()
"""A date of peak seasonal flow in the northern hemisphere (East Asian monsoon, late July)."""

# --- forecast error (each std is multiplied by WeatherSpec.forecast_error_growth) --------------

_KC_ERR_STD: Final = (0.05, 0.20)
"""Clear-sky index error std at lead 0 and at 48 h [-], grown as sqrt(lead)."""
_KC_ERR_TAU_S: Final = 4.0 * _HOUR_S
_WIND_ERR_STD_MS: Final = (0.8, 2.5)
"""Hub-height wind speed error std at lead 0 and at 48 h [m/s], grown as sqrt(lead)."""
_WIND_ERR_TAU_S: Final = 6.0 * _HOUR_S
_FLOW_ERR_STD: Final = (0.02, 0.06)
"""Log-flow error std at lead 0 and at 48 h [-], grown linearly (rivers are slow)."""
_FLOW_ERR_TAU_S: Final = 24.0 * _HOUR_S
_ERR_REF_LEAD_S: Final = 48.0 * _HOUR_S

_MAX_FORECAST_POINTS: Final = 5000
"""WeatherForecast series limit in the wire contract."""

# Random streams: one per process, so adding a plant of one kind never shifts another's draws.
_STREAM_REGIME: Final = 1
_STREAM_KC: Final = 2
_STREAM_WIND: Final = 3
_STREAM_FLOW: Final = 4
_STREAM_FORECAST: Final = 100


def solar_position_deg(
    unix_s: npt.ArrayLike, latitude_deg: float, longitude_deg: float, altitude_m: float
) -> tuple[Array, Array, Array]:
    """Solar position by the NREL SPA (pvlib.spa), evaluated at every time given.

    Parameters
    ----------
    unix_s : array_like
        Times [UNIX s, UTC].
    latitude_deg, longitude_deg : float
        Site position [°], north and east positive.
    altitude_m : float
        Site altitude [m]; sets the pressure of the refraction correction.

    Returns
    -------
    zenith_deg, apparent_zenith_deg, azimuth_deg : ndarray
        True and refraction-corrected zenith [°]; azimuth clockwise from north [°].

    References
    ----------
    I. Reda and A. Andreas, "Solar position algorithm for solar radiation applications",
    Solar Energy 76(5), 577–589, 2004 (NREL/TP-560-34302).
    """
    t = np.atleast_1d(np.asarray(unix_s, dtype=np.float64))
    dt64 = (t * 1e3).astype("datetime64[ms]")
    year = dt64.astype("datetime64[Y]").astype(np.int64) + 1970
    month = dt64.astype("datetime64[M]").astype(np.int64) % 12 + 1
    delta_t_s = spa.calculate_deltat(year, month)
    pressure_hpa = float(atmosphere.alt2pres(altitude_m)) / 100.0
    out = spa.solar_position(
        t,
        latitude_deg,
        longitude_deg,
        altitude_m,
        pressure_hpa,
        _AIR_TEMP_C,
        delta_t_s,
        _ATMOS_REFRACT_DEG,
        numthreads=1,
    )
    apparent_zenith, zenith, azimuth = out[0], out[1], out[4]
    return (
        np.asarray(zenith, dtype=np.float64),
        np.asarray(apparent_zenith, dtype=np.float64),
        np.asarray(azimuth, dtype=np.float64),
    )


def wind_power_mw(speed_ms: npt.ArrayLike, spec: RenewableSpec) -> Array:
    """Wind plant output from hub-height speed through the spec's power curve.

    Parameters
    ----------
    speed_ms : array_like
        Hub-height wind speed [m/s].
    spec : RenewableSpec
        A wind plant: ``capacity_mw``, ``cut_in_ms``, ``rated_ms``, ``cut_out_ms``.

    Returns
    -------
    ndarray
        Available power [MW], in [0, capacity].

    Notes
    -----
    P = C · (v³ − v_in³) / (v_r³ − v_in³) for v_in ≤ v < v_r, C for v_r ≤ v < v_out, else 0:
    the kinetic power in the wind grows as v³, the rotor's share of it is taken as constant
    below rated, and the turbines shut down at (and above) cut-out.
    """
    v = np.asarray(speed_ms, dtype=np.float64)
    v_in, v_r = spec.cut_in_ms, spec.rated_ms
    cubic = (v**3 - v_in**3) / (v_r**3 - v_in**3)
    frac = np.where(v < v_in, 0.0, np.where(v >= v_r, 1.0, cubic))
    frac = np.where(v >= spec.cut_out_ms, 0.0, frac)
    return np.asarray(spec.capacity_mw * frac, dtype=np.float64)


def _ar1(rng: np.random.Generator, n: int, phi: float, previous: float) -> Array:
    """n steps of a unit-variance AR(1), x_k = φ·x_{k−1} + √(1−φ²)·ε_k, continuing ``previous``."""
    eps = rng.standard_normal(n)
    out = signal.lfilter([math.sqrt(1.0 - phi * phi)], [1.0, -phi], eps, zi=[phi * previous])[0]
    return np.asarray(out, dtype=np.float64)


def _regime_occupancy(mean_kc: float) -> Array:
    """Long-run share of time in each cloud regime giving mean kc ``mean_kc``.

    Of all mixes with that mean, the one of maximum entropy: p_i ∝ exp(β·μ_i), β solved for.
    """
    target = min(max(mean_kc, _KC_MEAN_RANGE[0]), _KC_MEAN_RANGE[1])
    mu = _REGIME_KC_MEAN

    def weights(beta: float) -> Array:
        w = np.exp(beta * (mu - mu.max()))
        return np.asarray(w / w.sum(), dtype=np.float64)

    beta = float(optimize.brentq(lambda b: float(weights(b) @ mu) - target, -200.0, 200.0))
    return weights(beta)


def _day_of_year(unix_s: Array) -> Array:
    """Fractional day of year, 1.0 at 1 January 00:00 UTC."""
    dt64 = (unix_s * 1e3).astype("datetime64[ms]")
    since_new_year = dt64 - dt64.astype("datetime64[Y]")
    return np.asarray(since_new_year / np.timedelta64(1, "D") + 1.0, dtype=np.float64)


def _sqrt_growth(lead_s: Array, std: tuple[float, float]) -> Array:
    return std[0] + (std[1] - std[0]) * np.sqrt(np.maximum(lead_s, 0.0) / _ERR_REF_LEAD_S)


class _CloudProcess:
    """Clear-sky index: a semi-Markov chain of cloud regimes plus AR(1) noise in each regime.

    Regime changes are events in continuous time: in regime i the next draw comes after an
    exponential time of mean D_i, and draws regime j with probability q_j.  The long-run
    occupancy is p_i ∝ q_i·D_i, so q ∝ p / D gives the occupancy of :func:`_regime_occupancy`.
    """

    def __init__(self, seed: int, mean_kc: float, step_s: float) -> None:
        self._step_s = step_s
        self._regime_rng = np.random.default_rng([seed, _STREAM_REGIME])
        self._noise_rng = np.random.default_rng([seed, _STREAM_KC])
        occupancy = _regime_occupancy(mean_kc)
        draw = occupancy / _REGIME_RESAMPLE_S
        self._draw_p = draw / draw.sum()
        self._regime = int(self._regime_rng.choice(3, p=occupancy))
        self._next_draw_s = float(self._regime_rng.exponential(_REGIME_RESAMPLE_S[self._regime]))
        self._phi = np.exp(-step_s / _REGIME_KC_TAU_S)
        self._noise = self._noise_rng.standard_normal(3)
        self._blend_alpha = math.exp(-step_s / _REGIME_BLEND_TAU_S)
        self._blend = float(_REGIME_KC_MEAN[self._regime])

    def block(self, first_step: int, n: int) -> tuple[Array, Array]:
        """kc and its regime-level (NWP-resolvable) part for steps first_step … first_step+n−1.

        Times are relative to the scenario start.
        """
        regime = np.empty(n, dtype=np.intp)
        pos = 0
        end_s = (first_step + n) * self._step_s
        while self._next_draw_s < end_s:
            change = max(math.ceil(self._next_draw_s / self._step_s) - first_step, pos)
            regime[pos:change] = self._regime
            pos = change
            self._regime = int(self._regime_rng.choice(3, p=self._draw_p))
            self._next_draw_s += float(
                self._regime_rng.exponential(_REGIME_RESAMPLE_S[self._regime])
            )
        regime[pos:] = self._regime

        a = self._blend_alpha
        level = signal.lfilter([1.0 - a], [1.0, -a], _REGIME_KC_MEAN[regime], zi=[a * self._blend])
        regime_kc = np.asarray(level[0], dtype=np.float64)
        self._blend = float(regime_kc[-1])

        noise = np.empty((3, n))
        for i in range(3):
            noise[i] = _ar1(self._noise_rng, n, float(self._phi[i]), float(self._noise[i]))
            self._noise[i] = noise[i, -1]
        picked = noise[regime, np.arange(n)]
        kc = np.clip(regime_kc + _REGIME_KC_STD[regime] * picked, 0.0, _KC_MAX)
        return kc, np.clip(regime_kc, 0.0, _KC_MAX)


class _WindProcess:
    """Hub-height speed: OU in Gaussian space → Weibull(mean, k) marginal × diurnal factor."""

    def __init__(self, seed: int, spec: RenewableSpec, step_s: float, longitude_deg: float) -> None:
        self._rng = np.random.default_rng([seed, _STREAM_WIND])
        self._z = float(self._rng.standard_normal())
        self._phi = math.exp(-step_s / _WIND_TAU_S)
        self._k = spec.weibull_k
        self._scale_ms = spec.mean_wind_speed_ms / math.gamma(1.0 + 1.0 / spec.weibull_k)
        self._solar_hour_offset_h = longitude_deg / 15.0

    def block(self, t_s: Array) -> Array:
        z = _ar1(self._rng, t_s.size, self._phi, self._z)
        self._z = float(z[-1])
        # Weibull quantile of Φ(z): c·(−ln(1 − Φ(z)))^(1/k), with ln(1 − Φ(z)) = ln Φ(−z)
        # computed directly so that the upper tail does not round to ln(0).
        speed = self._scale_ms * (-special.log_ndtr(-z)) ** (1.0 / self._k)
        solar_h = np.mod(t_s / _HOUR_S + self._solar_hour_offset_h, 24.0)
        diurnal = 1.0 + _WIND_DIURNAL_AMPLITUDE * np.cos(
            2.0 * np.pi * (solar_h - _WIND_DIURNAL_PEAK_H) / 24.0
        )
        return np.asarray(speed * diurnal, dtype=np.float64)


class _FlowProcess:
    """River flow: mean · (1 + A·cos(2π(t − t_peak)/year)) · exp(σ·x − σ²/2), x a slow AR(1)."""

    def __init__(self, seed: int, spec: RenewableSpec, step_s: float, latitude_deg: float) -> None:
        self._rng = np.random.default_rng([seed, _STREAM_FLOW])
        self._x = float(self._rng.standard_normal())
        self._phi = math.exp(-step_s / _FLOW_NOISE_TAU_S)
        self._mean_m3s = spec.mean_flow_m3s
        self._amplitude = spec.seasonal_amplitude_frac
        self._peak_s = _WET_PEAK_NORTH_S if latitude_deg >= 0.0 else _WET_PEAK_NORTH_S + _YEAR_S / 2

    def block(self, t_s: Array) -> Array:
        x = _ar1(self._rng, t_s.size, self._phi, self._x)
        self._x = float(x[-1])
        season = 1.0 + self._amplitude * np.cos(2.0 * np.pi * (t_s - self._peak_s) / _YEAR_S)
        # −σ²/2 keeps the mean of the log-normal factor at 1
        noise = np.exp(_FLOW_NOISE_STD * x - 0.5 * _FLOW_NOISE_STD**2)
        return np.asarray(self._mean_m3s * season * noise, dtype=np.float64)


class SiteWeather:
    """Weather truth, renewable availability and forecasts for one scenario's site.

    Parameters
    ----------
    scenario : Scenario
        The site (position, renewable plants, weather settings).
    seed : int
        Non-negative seed; the same (scenario, seed, step_s) always gives the same weather.
    step_s : float
        Truth resolution [s]; must divide a day.

    Raises
    ------
    ValueError
        A bad seed or step, a wind plant whose cut-in < rated < cut-out does not hold, or a
        forecast longer than the contract's 5,000 points.

    Notes
    -----
    The site's wind process takes its mean speed and Weibull k from the scenario's first wind
    plant, its river process its mean flow and seasonal amplitude from the first hydro plant;
    the other plants of that kind share the process and differ only in their conversion.
    """

    def __init__(self, scenario: Scenario, seed: int, step_s: float = 60.0) -> None:
        if seed < 0:
            raise ValueError(f"seed must be non-negative, got {seed}")
        if not (math.isfinite(step_s) and 0.0 < step_s <= _DAY_S):
            raise ValueError(f"step_s must be in (0, 86400], got {step_s}")
        steps_per_day = round(_DAY_S / step_s)
        if abs(steps_per_day * step_s - _DAY_S) > 1e-6:
            raise ValueError(f"step_s must divide a day (86400 s), got {step_s}")
        weather = scenario.weather
        self._forecast_step_s = weather.forecast_step_min * 60.0
        self._forecast_points = int(weather.forecast_horizon_h * _HOUR_S / self._forecast_step_s)
        if not 1 <= self._forecast_points <= _MAX_FORECAST_POINTS:
            raise ValueError(
                f"weather: forecast_horizon_h / forecast_step_min gives {self._forecast_points}"
                f" points; the contract allows 1 to {_MAX_FORECAST_POINTS}"
            )
        self._plants = {p.name: p for p in scenario.renewable}
        for p in scenario.renewable:
            if p.kind == RenewableKind.WIND and not (p.cut_in_ms < p.rated_ms < p.cut_out_ms):
                raise ValueError(
                    f"renewable {p.name}: needs cut_in_ms < rated_ms < cut_out_ms, got "
                    f"{p.cut_in_ms}, {p.rated_ms}, {p.cut_out_ms}"
                )

        self.step_s = float(step_s)
        self.start_s = float(scenario.start)
        self._seed = seed
        self._steps_per_block = steps_per_day
        # the largest knot spacing ≤ 10 min that divides a day, so knots lie on one grid
        self._sun_stride = max(
            d for d in range(1, max(1, int(_SUN_KNOT_S // step_s)) + 1) if steps_per_day % d == 0
        )
        self._knots_per_block = steps_per_day // self._sun_stride
        self._sun_group: tuple[int, tuple[Array, Array, Array]] | None = None
        self._error_growth = weather.forecast_error_growth
        self._latitude_deg = scenario.latitude_deg
        self._longitude_deg = scenario.longitude_deg
        self._altitude_m = scenario.altitude_m
        self._pressure_pa = float(atmosphere.alt2pres(scenario.altitude_m))
        # an equator-facing array
        self._array_azimuth_deg = 180.0 if scenario.latitude_deg >= 0.0 else 0.0
        self._linke_doy, self._linke = self._linke_turbidity_climatology()

        pv = _first_of(scenario.renewable, RenewableKind.PV)
        wind = _first_of(scenario.renewable, RenewableKind.WIND)
        hydro = _first_of(scenario.renewable, RenewableKind.HYDRO)
        self._clouds = (
            _CloudProcess(seed, weather.mean_clear_sky_index, self.step_s) if pv else None
        )
        self._wind = _WindProcess(seed, wind, self.step_s, scenario.longitude_deg) if wind else None
        self._flow = (
            _FlowProcess(seed, hydro, self.step_s, scenario.latitude_deg) if hydro else None
        )

        # Series by name ("ghi", "wind", "plant:<name>", ...), valid up to _n_steps.  Buffers
        # grow by doubling so that day-by-day generation stays linear in the simulated time.
        self._n_steps = 0
        self._truth: dict[str, Array] = {}
        self._smoothing_state: dict[str, Array] = {}

    # --- time axis -------------------------------------------------------------------------

    def ensure(self, until_s: float) -> None:
        """Generate the truth at least up to and including the step that contains ``until_s``.

        Parameters
        ----------
        until_s : float
            Plant time [UNIX s]; times before the start need nothing.
        """
        if not math.isfinite(until_s):
            raise ValueError(f"until_s must be finite, got {until_s}")
        if until_s >= self.start_s:
            self._ensure_steps(math.floor((until_s - self.start_s) / self.step_s) + 1)

    def index(self, ts: float) -> int:
        """Index of the step that contains ``ts``: floor((ts − start_s) / step_s).

        Raises
        ------
        ValueError
            ``ts`` before the start, or not finite.
        """
        if not math.isfinite(ts):
            raise ValueError(f"ts must be finite, got {ts}")
        if ts < self.start_s:
            raise ValueError(f"ts {ts} is before the scenario start {self.start_s}")
        i = math.floor((ts - self.start_s) / self.step_s)
        self._ensure_steps(i + 1)
        return i

    # --- truth -----------------------------------------------------------------------------

    def available_mw(self, name: str, ts: float) -> float:
        """Available power of renewable plant ``name`` at plant time ``ts`` [MW]."""
        self._spec(name)
        i = self.index(ts)  # first: it may grow (replace) the buffers
        return float(self._truth[f"plant:{name}"][i])

    def available_block_mw(self, name: str, start_s: float, n: int) -> Array:
        """Available power [MW] of plant ``name`` for ``n`` consecutive steps from ``start_s``.

        Returns a new array (the caller may modify it); step k is ``index(start_s) + k``.
        """
        if n < 0:
            raise ValueError(f"n must be non-negative, got {n}")
        self._spec(name)
        i0 = self.index(start_s)
        self._ensure_steps(i0 + n)
        return self._truth[f"plant:{name}"][i0 : i0 + n].copy()

    def measurement(self, name: str, ts: float) -> dict[str, float]:
        """The weather quantity plant ``name`` measures at ``ts``.

        Returns
        -------
        dict
            ``{"ghi_wm2": ..}`` [W/m²] for PV, ``{"wind_speed_ms": ..}`` [m/s] (hub height)
            for wind, ``{"flow_m3s": ..}`` [m³/s] for hydro.
        """
        kind = self._spec(name).kind
        i = self.index(ts)
        if kind == RenewableKind.PV:
            return {"ghi_wm2": float(self._truth["ghi"][i])}
        if kind == RenewableKind.WIND:
            return {"wind_speed_ms": float(self._truth["wind"][i])}
        return {"flow_m3s": float(self._truth["flow"][i])}

    def clear_sky_ghi_wm2(self, ts: float) -> float:
        """Clear-sky global horizontal irradiance at the site [W/m²] (Ineichen–Perez)."""
        i = self.index(ts)
        return float(self._truth["clear_sky_ghi"][i])

    # --- forecast --------------------------------------------------------------------------

    def forecast(self, issued_s: float) -> WeatherForecast:
        """An NWP-like forecast issued at ``issued_s``: the truth plus lead-dependent error.

        Valid times are every ``forecast_step_min`` on the UNIX-epoch grid, the first one
        strictly after ``issued_s``, over ``forecast_horizon_h``.  With g the scenario's
        ``forecast_error_growth``, L the lead (valid − issued) and ξ a unit-variance AR(1)
        over lead (correlation time τ), drawn from a stream seeded by (seed, int(issued_s)):

        * clear-sky index: kc_f = clip(kc + g·[(kc_regime − kc) + σ_kc(L)·ξ], 0, 1.3), where
          kc_regime is the cloud-regime level without the minute-scale flicker an NWP model
          cannot resolve; σ_kc = 0.05 + 0.15·√(L/48 h), τ = 4 h;  GHI_f = GHI_clear · kc_f;
        * wind: v_f = max(v + g·σ_v(L)·ξ, 0), σ_v = 0.8 + 1.7·√(L/48 h) m/s, τ = 6 h;
        * flow: Q_f = Q · exp(g·σ_Q(L)·ξ), σ_Q = 0.02 + 0.04·L/48 h, τ = 24 h.

        With g = 0 the forecast equals the truth at the valid times.  Series are None for
        kinds the site has no plant of.

        Raises
        ------
        ValueError
            ``issued_s`` not finite, or so early that a valid time falls before the start.
        """
        if not math.isfinite(issued_s):
            raise ValueError(f"issued_s must be finite, got {issued_s}")
        step = self._forecast_step_s
        n = self._forecast_points
        times = (math.floor(issued_s / step) + 1 + np.arange(n, dtype=np.float64)) * step
        if times[0] < self.start_s:
            raise ValueError(f"forecast issued at {issued_s} has valid times before the start")
        self.ensure(float(times[-1]))
        idx = np.floor((times - self.start_s) / self.step_s).astype(np.intp)
        lead_s = times - issued_s
        g = self._error_growth
        rng = np.random.default_rng([self._seed, _STREAM_FORECAST, int(issued_s)])
        # Every kind's errors are drawn, present or not, so the streams never shift.
        xi_kc = _ar1(rng, n, math.exp(-step / _KC_ERR_TAU_S), float(rng.standard_normal()))
        xi_wind = _ar1(rng, n, math.exp(-step / _WIND_ERR_TAU_S), float(rng.standard_normal()))
        xi_flow = _ar1(rng, n, math.exp(-step / _FLOW_ERR_TAU_S), float(rng.standard_normal()))

        ghi: list[float] | None = None
        wind: list[float] | None = None
        flow: list[float] | None = None
        truth = self._truth
        if self._clouds is not None:
            kc = truth["kc"][idx]
            kc_error = (truth["kc_regime"][idx] - kc) + _sqrt_growth(lead_s, _KC_ERR_STD) * xi_kc
            clear_sky = truth["clear_sky_ghi"][idx]
            ghi = (clear_sky * np.clip(kc + g * kc_error, 0.0, _KC_MAX)).tolist()
        if self._wind is not None:
            wind_error_ms = _sqrt_growth(lead_s, _WIND_ERR_STD_MS) * xi_wind
            wind = np.maximum(truth["wind"][idx] + g * wind_error_ms, 0.0).tolist()
        if self._flow is not None:
            flow_std = _FLOW_ERR_STD[0] + (_FLOW_ERR_STD[1] - _FLOW_ERR_STD[0]) * (
                lead_s / _ERR_REF_LEAD_S
            )
            flow = (truth["flow"][idx] * np.exp(g * flow_std * xi_flow)).tolist()
        return WeatherForecast(
            ts=issued_s,
            issued_ts=issued_s,
            times=times.tolist(),
            ghi_wm2=ghi,
            wind_speed_ms=wind,
            flow_m3s=flow,
        )

    # --- generation ------------------------------------------------------------------------

    def _ensure_steps(self, n_steps: int) -> None:
        per_block = self._steps_per_block
        while self._n_steps < n_steps:
            first_step = self._n_steps
            for key, values in self._generate_block(first_step).items():
                buffer = self._truth.get(key, np.empty(0))
                if buffer.size < first_step + per_block:
                    grown = np.empty(max(2 * buffer.size, first_step + per_block))
                    grown[:first_step] = buffer[:first_step]
                    self._truth[key] = buffer = grown
                buffer[first_step : first_step + per_block] = values
            self._n_steps = first_step + per_block

    def _generate_block(self, first_step: int) -> dict[str, Array]:
        """One day of truth, advancing every process's state by one block."""
        n = self._steps_per_block
        t_s = self.start_s + (first_step + np.arange(n, dtype=np.float64)) * self.step_s
        zenith, apparent_zenith, azimuth = self._sun(first_step, n)
        doy = _day_of_year(t_s)
        out = {"clear_sky_ghi": self._clear_sky(apparent_zenith, doy)}
        if self._clouds is not None:
            kc, kc_regime = self._clouds.block(first_step, n)
            out |= {"kc": kc, "kc_regime": kc_regime, "ghi": out["clear_sky_ghi"] * kc}
        if self._wind is not None:
            out["wind"] = self._wind.block(t_s)
        if self._flow is not None:
            out["flow"] = self._flow.block(t_s)
        for name, spec in self._plants.items():
            if spec.kind == RenewableKind.PV:
                # cloudiness averaged over the plant's area; the sun itself is not smoothed
                ghi_plant = out["clear_sky_ghi"] * self._aggregate(name, spec, out["kc"])
                power = self._pv_power_mw(spec, ghi_plant, zenith, azimuth, doy)
            elif spec.kind == RenewableKind.WIND:
                power = self._aggregate(name, spec, wind_power_mw(out["wind"], spec))
            else:
                power = spec.capacity_mw * np.minimum(out["flow"] / spec.rated_flow_m3s, 1.0)
            out[f"plant:{name}"] = power
        return out

    def _aggregate(self, name: str, spec: RenewableSpec, series: Array) -> Array:
        """First-order low-pass over a plant's area (state carried across blocks): of the
        clear-sky index for PV, of the output for wind."""
        tau_s = _PLANT_SMOOTHING_TAU_S[spec.kind]
        if tau_s <= 0.0:
            return series
        alpha = 1.0 - math.exp(-self.step_s / tau_s)
        state = self._smoothing_state.get(name)
        if state is None:
            state = np.array([(1.0 - alpha) * series[0]])
        smoothed, self._smoothing_state[name] = signal.lfilter(
            [alpha], [1.0, alpha - 1.0], series, zi=state
        )
        return np.asarray(smoothed, dtype=np.float64)

    def _sun(self, first_step: int, n: int) -> tuple[Array, Array, Array]:
        """Zenith, apparent zenith and azimuth [°] for the n steps of one block.

        The sun's unit vector is interpolated between SPA knots, not its angles: azimuth wraps
        through north when the sun passes north of the zenith (tropical sites in summer).
        """
        stride = self._sun_stride
        j0 = first_step // stride
        group, local = divmod(j0, _SUN_GROUP_DAYS * self._knots_per_block)
        if self._sun_group is None or self._sun_group[0] != group:
            self._sun_group = (group, self._sun_knots(group))
        zen, app_zen, az = (
            k[local : local + self._knots_per_block + 1] for k in self._sun_group[1]
        )
        if stride == 1:
            return zen[:n], app_zen[:n], az[:n]
        z, a = np.radians(zen), np.radians(az)
        vec = np.stack([np.sin(z) * np.sin(a), np.sin(z) * np.cos(a), np.cos(z)])
        j = np.arange(n) // stride
        w = (np.arange(n) % stride) / stride
        v = vec[:, j] * (1.0 - w) + vec[:, j + 1] * w
        v /= np.linalg.norm(v, axis=0)
        zenith = np.degrees(np.arccos(np.clip(v[2], -1.0, 1.0)))
        azimuth = np.mod(np.degrees(np.arctan2(v[0], v[1])), 360.0)
        refraction = zen - app_zen
        apparent = zenith - (refraction[j] * (1.0 - w) + refraction[j + 1] * w)
        return zenith, apparent, azimuth

    def _sun_knots(self, group: int) -> tuple[Array, Array, Array]:
        """SPA at the knots of one fixed group of days (plus the next group's first knot).

        The groups are fixed, not whatever range ensure() asked for, so every knot is always
        computed in the same batch and the result is bit-identical however truth was chunked.
        """
        per_group = _SUN_GROUP_DAYS * self._knots_per_block
        knots = group * per_group + np.arange(per_group + 1, dtype=np.float64)
        knot_t = self.start_s + knots * self._sun_stride * self.step_s
        return solar_position_deg(knot_t, self._latitude_deg, self._longitude_deg, self._altitude_m)

    def _clear_sky(self, apparent_zenith: Array, doy: Array) -> Array:
        """Ineichen–Perez clear-sky GHI [W/m²], evaluated only while the sun is up."""
        ghi = np.zeros(apparent_zenith.size)
        up = apparent_zenith < 90.0
        if not up.any():
            return ghi
        linke = np.interp(doy[up], self._linke_doy, self._linke)
        airmass = atmosphere.get_absolute_airmass(
            atmosphere.get_relative_airmass(apparent_zenith[up]), self._pressure_pa
        )
        dni_extra = irradiance.get_extra_radiation(doy[up])
        ghi[up] = clearsky.ineichen(
            apparent_zenith[up], airmass, linke, self._altitude_m, dni_extra
        )["ghi"]
        return ghi

    def _pv_power_mw(
        self, spec: RenewableSpec, ghi: Array, zenith: Array, azimuth: Array, doy: Array
    ) -> Array:
        """PV output [MW]: C · PR · POA / 1000 W/m², clipped to [0, C].

        Erbs splits GHI into beam and diffuse; an isotropic sky transposes them onto the
        equator-facing plane at the plant's tilt.
        """
        poa = np.zeros(ghi.size)
        lit = ghi > 0.0
        if lit.any():
            parts = irradiance.erbs(ghi[lit], zenith[lit], doy[lit])
            poa[lit] = irradiance.get_total_irradiance(
                spec.tilt_deg,
                self._array_azimuth_deg,
                zenith[lit],
                azimuth[lit],
                parts["dni"],
                ghi[lit],
                parts["dhi"],
                albedo=_GROUND_ALBEDO,
                model="isotropic",
            )["poa_global"]
        power = spec.capacity_mw * spec.performance_ratio * poa / 1000.0
        return np.clip(power, 0.0, spec.capacity_mw)

    def _linke_turbidity_climatology(self) -> tuple[Array, Array]:
        """The site's monthly Linke turbidity (pvlib's SoDa climatology), as a periodic table
        over day of year for interpolation."""
        mid_months = pd.DatetimeIndex([f"2001-{m:02d}-15" for m in range(1, 13)], tz="UTC")
        monthly = clearsky.lookup_linke_turbidity(
            mid_months, self._latitude_deg, self._longitude_deg, interp_turbidity=False
        ).to_numpy(dtype=np.float64)
        doy = np.concatenate(
            [[_MID_MONTH_DOY[-1] - 365.0], _MID_MONTH_DOY, [_MID_MONTH_DOY[0] + 365.0]]
        )
        values = np.concatenate([[monthly[-1]], monthly, [monthly[0]]])
        return doy, values

    # --- look-ups --------------------------------------------------------------------------

    def _spec(self, name: str) -> RenewableSpec:
        try:
            return self._plants[name]
        except KeyError:
            known = ", ".join(self._plants) or "none"
            raise KeyError(f"no renewable plant {name!r} (known: {known})") from None


def _first_of(plants: list[RenewableSpec], kind: RenewableKind) -> RenewableSpec | None:
    return next((p for p in plants if p.kind == kind), None)
