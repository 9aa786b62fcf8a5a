"""Solar geometry, clear-sky irradiance and plane-of-array transposition at one site.

The sun's position (NREL SPA) and the clear-sky GHI (Ineichen–Perez with the site's Linke
turbidity climatology) are computed through pvlib for whole UTC days on a 5-minute grid, kept in
a small cache and interpolated: a forecaster asks for the same few days over and over, and SPA
is the expensive part.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

import numpy as np

# pvlib's turbidity look-up takes a DatetimeIndex; pandas ships without type hints.
import pandas as pd  # type: ignore[import-untyped]
from pvlib import atmosphere, clearsky, irradiance, spa

from forecasting.types import Array, BoolArray, as_float_array

DAY_S: Final = 86_400.0
KNOT_S: Final = 300.0
"""Grid of the cached geometry [s]: zenith is linear to < 0.01° over 5 minutes."""
_KNOTS_PER_DAY: Final = int(DAY_S / KNOT_S)
_CACHED_DAYS: Final = 16
"""Enough for a week of history plus two days of forecast."""
AIR_TEMP_C: Final = 12.0
"""Air temperature for the refraction correction only (pvlib's default annual mean)."""
ATMOS_REFRACT_DEG: Final = 0.5667
"""Refraction at sunrise/sunset (Reda & Andreas 2004, NREL/TP-560-34302)."""
GROUND_ALBEDO: Final = 0.2
"""Ground reflectance (grass/soil, the common default) for the transposition."""
_MID_MONTH_DOY: Final = np.array([15, 46, 74, 105, 135, 166, 196, 227, 258, 288, 319, 349.0])


def solar_position_deg(
    unix_s: Array,
    latitude_deg: float,
    longitude_deg: float,
    altitude_m: float,
    *,
    pressure_hpa: float | None = None,
    temperature_c: float = AIR_TEMP_C,
    delta_t_s: float | None = None,
) -> tuple[Array, Array, Array]:
    """Solar position by the NREL SPA (pvlib.spa).

    Parameters
    ----------
    unix_s : ndarray
        Times [UNIX s, UTC].
    latitude_deg, longitude_deg : float
        Site position [°], north and east positive.
    altitude_m : float
        Site altitude [m].
    pressure_hpa : float, optional
        Air pressure for refraction [hPa]; default from the altitude (standard atmosphere).
    temperature_c : float
        Air temperature for refraction [°C].
    delta_t_s : float, optional
        TT − UT [s]; default pvlib's polynomial for the first time's year.

    Returns
    -------
    zenith_deg, apparent_zenith_deg, azimuth_deg : ndarray
        Topocentric zenith without and with refraction [°]; azimuth east of north [°].

    References
    ----------
    I. Reda and A. Andreas, "Solar position algorithm for solar radiation applications",
    Solar Energy 76(5), 577–589, 2004 (NREL/TP-560-34302).
    """
    t = as_float_array(unix_s)
    if pressure_hpa is None:
        pressure_hpa = float(atmosphere.alt2pres(altitude_m)) / 100.0
    if delta_t_s is None:
        when = np.datetime64(int(t[0]), "s") if t.size else np.datetime64(0, "s")
        year = when.astype("datetime64[Y]").astype(np.int64) + 1970
        month = when.astype("datetime64[M]").astype(np.int64) % 12 + 1
        delta_t_s = float(spa.calculate_deltat(year, month))
    out = spa.solar_position(
        t,
        latitude_deg,
        longitude_deg,
        altitude_m,
        pressure_hpa,
        temperature_c,
        delta_t_s,
        ATMOS_REFRACT_DEG,
        numthreads=1,
    )
    return (
        np.asarray(out[1], dtype=np.float64),
        np.asarray(out[0], dtype=np.float64),
        np.asarray(out[4], dtype=np.float64),
    )


def day_of_year(unix_s: Array) -> Array:
    """Fractional day of year, 1.0 at 1 January 00:00 UTC."""
    dt64 = (unix_s * 1e3).astype("datetime64[ms]")
    return np.asarray((dt64 - dt64.astype("datetime64[Y]")) / np.timedelta64(1, "D") + 1.0)


@dataclass(frozen=True)
class Sun:
    """The sun at a set of times: unit vector (east, north, up), true zenith, clear-sky GHI."""

    east: Array
    north: Array
    up: Array
    zenith_deg: Array
    ghi_clear_wm2: Array
    doy: Array

    def subset(self, mask: BoolArray) -> Sun:
        """The sun at the times selected by a boolean mask."""
        return Sun(
            self.east[mask],
            self.north[mask],
            self.up[mask],
            self.zenith_deg[mask],
            self.ghi_clear_wm2[mask],
            self.doy[mask],
        )


class SolarGeometry:
    """Cached solar geometry and clear-sky GHI at one site.

    Parameters
    ----------
    latitude_deg, longitude_deg : float
        Site position [°].
    altitude_m : float
        Site altitude [m]: pressure for refraction and air mass, altitude for Ineichen–Perez.
    """

    def __init__(self, latitude_deg: float, longitude_deg: float, altitude_m: float = 0.0) -> None:
        self.latitude_deg = float(latitude_deg)
        self.longitude_deg = float(longitude_deg)
        self.altitude_m = float(altitude_m)
        self._pressure_pa = float(atmosphere.alt2pres(altitude_m))
        self._days: OrderedDict[int, Array] = OrderedDict()
        mid_months = pd.DatetimeIndex([f"2001-{m:02d}-15" for m in range(1, 13)], tz="UTC")
        monthly = clearsky.lookup_linke_turbidity(
            mid_months, latitude_deg, longitude_deg, interp_turbidity=False
        ).to_numpy(dtype=np.float64)
        # periodic over the year so that interpolation wraps from December to January
        self._linke_doy = np.concatenate(
            [[_MID_MONTH_DOY[-1] - 365.0], _MID_MONTH_DOY, [_MID_MONTH_DOY[0] + 365.0]]
        )
        self._linke = np.concatenate([[monthly[-1]], monthly, [monthly[0]]])

    def at(self, unix_s: Array) -> Sun:
        """The sun at arbitrary times, interpolated linearly between 5-minute knots."""
        t = as_float_array(unix_s)
        pos = t / KNOT_S
        knot = np.floor(pos)
        frac = pos - knot
        day = np.floor(knot / _KNOTS_PER_DAY).astype(np.int64)
        local = (knot - day * _KNOTS_PER_DAY).astype(np.intp)
        values = np.empty((4, t.size))
        for d in np.unique(day):
            sel = day == d
            table = self._day(int(d))
            i = local[sel]
            f = frac[sel]
            values[:, sel] = table[:, i] * (1.0 - f) + table[:, i + 1] * f
        norm = np.sqrt(values[0] ** 2 + values[1] ** 2 + values[2] ** 2)
        norm = np.where(norm > 0.0, norm, 1.0)
        east, north, up = values[0] / norm, values[1] / norm, values[2] / norm
        zenith = np.degrees(np.arccos(np.clip(up, -1.0, 1.0)))
        return Sun(east, north, up, zenith, np.maximum(values[3], 0.0), day_of_year(t))

    def day_knots(self, day: int) -> Sun:
        """The sun at the 289 knots of UTC day ``day`` (floor(t / 86400)), midnight to midnight."""
        table = self._day(day)
        t = day * DAY_S + np.arange(_KNOTS_PER_DAY + 1, dtype=np.float64) * KNOT_S
        up = np.clip(table[2], -1.0, 1.0)
        return Sun(
            table[0],
            table[1],
            up,
            np.degrees(np.arccos(up)),
            np.maximum(table[3], 0.0),
            day_of_year(t),
        )

    def ghi_clear_wm2(self, unix_s: Array) -> Array:
        """Clear-sky global horizontal irradiance [W/m²] (Ineichen–Perez)."""
        return self.at(unix_s).ghi_clear_wm2

    def _day(self, day: int) -> Array:
        """Rows east, north, up, clear-sky GHI at the 289 knots of one UTC day."""
        table = self._days.get(day)
        if table is not None:
            self._days.move_to_end(day)
            return table
        t = day * DAY_S + np.arange(_KNOTS_PER_DAY + 1, dtype=np.float64) * KNOT_S
        zenith, apparent, azimuth = solar_position_deg(
            t, self.latitude_deg, self.longitude_deg, self.altitude_m
        )
        z, a = np.radians(zenith), np.radians(azimuth)
        table = np.stack(
            [np.sin(z) * np.sin(a), np.sin(z) * np.cos(a), np.cos(z), self._clear_sky(t, apparent)]
        )
        self._days[day] = table
        if len(self._days) > _CACHED_DAYS:
            self._days.popitem(last=False)
        return table

    def _clear_sky(self, t: Array, apparent_zenith: Array) -> Array:
        ghi = np.zeros(t.size)
        up = apparent_zenith < 90.0
        if not up.any():
            return ghi
        doy = day_of_year(t[up])
        linke = np.interp(doy, self._linke_doy, self._linke)
        airmass = atmosphere.get_absolute_airmass(
            atmosphere.get_relative_airmass(apparent_zenith[up]), self._pressure_pa
        )
        dni_extra = irradiance.get_extra_radiation(doy)
        ghi[up] = clearsky.ineichen(
            apparent_zenith[up], airmass, linke, self.altitude_m, dni_extra
        )["ghi"]
        return ghi


def tilted_normals(tilts_deg: Array, latitude_deg: float) -> Array:
    """Unit normals (east, north, up) of equator-facing planes at each tilt, shape (n, 3)."""
    b = np.radians(as_float_array(tilts_deg))
    toward_equator = -1.0 if latitude_deg >= 0.0 else 1.0
    return np.stack([np.zeros_like(b), toward_equator * np.sin(b), np.cos(b)], axis=1)


def poa_wm2(ghi_wm2: Array, sun: Sun, normals: Array) -> Array:
    """Plane-of-array irradiance [W/m²] for each plane (rows of ``normals``), shape (n, len(ghi)).

    Notes
    -----
    Erbs et al. (1982) split GHI into beam and diffuse; an isotropic sky (Liu & Jordan)
    transposes them: POA = DNI·max(cos AOI, 0) + DHI·(1 + cos β)/2 + GHI·ρ·(1 − cos β)/2,
    with ρ the ground albedo and β the tilt (cos β is the normal's up component).
    """
    ghi = np.maximum(as_float_array(ghi_wm2), 0.0)
    lit = (ghi > 0.0) & (sun.up > 0.0)
    dni = np.zeros_like(ghi)
    dhi = ghi.copy()
    if lit.any():
        parts = irradiance.erbs(ghi[lit], sun.zenith_deg[lit], sun.doy[lit])
        dni[lit] = np.asarray(parts["dni"], dtype=np.float64)
        dhi[lit] = np.asarray(parts["dhi"], dtype=np.float64)
    cos_aoi = normals[:, :1] * sun.east + normals[:, 1:2] * sun.north + normals[:, 2:3] * sun.up
    cos_tilt = normals[:, 2:3]
    beam = dni * np.maximum(cos_aoi, 0.0)
    sky = dhi * (1.0 + cos_tilt) / 2.0
    ground = ghi * GROUND_ALBEDO * (1.0 - cos_tilt) / 2.0
    return np.asarray(beam + sky + ground, dtype=np.float64)
