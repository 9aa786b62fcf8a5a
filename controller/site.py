"""The controller's description of a site: assets, limits and planner parameters.

This is what the planner and the safety layer know about the plant, and these types are also
the schema of the daemon's site file (:mod:`controller.sitefile`, docs/configuration.md): each
field is declared once, here, with its unit, default, bounds (``msgspec.Meta``, checked when a
file is read) and meaning; cross-field checks run in ``__post_init__`` on every construction.
The evaluation harness builds the same types from a simulator scenario
(``harness.site_from_scenario``); the controller itself never reads scenarios.

All are frozen, hashable ``msgspec.Struct``s (a :class:`LineModel` is a cache key of the state
tracker) that refuse unknown keys; derive one with ``msgspec.structs.replace``, which runs the
checks again.
"""

from __future__ import annotations

from typing import Annotated, Literal, TypeVar

import msgspec
import numpy as np
import numpy.typing as npt

from controller.thermal import PotThermal
from wire import Name

Ka = TypeVar("Ka", float, npt.NDArray[np.float64])
"""A current [kA], or an array of them: the line model's curves take either."""

FARADAY_KG_PER_KAH = 0.3356
"""Aluminium per kA·h at 100 % current efficiency [kg] (27 / (3 · 96485) · 3600)."""

Pos = Annotated[float, msgspec.Meta(gt=0.0)]
NonNeg = Annotated[float, msgspec.Meta(ge=0.0)]
Fraction = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
AboveOne = Annotated[float, msgspec.Meta(ge=1.0, le=1.5)]
"""A multiple of nominal current at or above nominal (hard and envelope upper limits)."""
HoursPerDay = Annotated[float, msgspec.Meta(ge=0.0, le=24.0)]
Hour = Annotated[int, msgspec.Meta(ge=0, le=23)]
RenewableKind = Literal["pv", "wind", "hydro"]


class _Asset(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    pass


class LineModel(_Asset, frozen=True):
    """A pot-line as the planner sees it (defaults: DESIGN §4).

    Electrical: line power P(I) = N·(E0·I + R·I²), heat Q(I) = N·I·(E0 − E_tn + R·I), both
    linearised by the planner around its operating point.  Envelope: continuous band
    [band_low, band_high]·I_N, deeper down to deep_low for at most deep_max_h and higher up to
    high_max for at most high_max_h per rolling 24 h, ramp ≤ ramp_frac_per_h·I_N per hour,
    hard limits [hard_min, hard_max]·I_N enforced by the safety layer, so
    hard_min ≤ deep_low ≤ band_low ≤ 1 ≤ band_high ≤ high_max ≤ hard_max.
    """

    name: Name
    """The line's name on the wire (``telemetry/potline/{name}``)."""
    pots: Annotated[int, msgspec.Meta(ge=1, le=2000)] = 300
    """Pots in series."""
    nominal_current_ka: Annotated[float, msgspec.Meta(gt=0.0, le=1000.0)] = 400.0
    """I_N [kA]: the line's rated current; the production target is a day at I_N."""
    e0_v: Annotated[float, msgspec.Meta(gt=0.0, le=5.0)] = 1.65
    """Back-EMF plus overvoltages per pot [V]: V = E0 + R·I (4.00 V at 400 kA)."""
    resistance_uohm: Annotated[float, msgspec.Meta(gt=0.0, le=100.0)] = 5.875
    """R: nominal ohmic resistance per pot [µΩ]."""
    e_tn_v: Annotated[float, msgspec.Meta(gt=0.0, le=5.0)] = 2.06
    """Thermoneutral voltage [V]: the part of V that goes into the reaction, not heat."""
    current_efficiency: Annotated[float, msgspec.Meta(gt=0.5, le=1.0)] = 0.93
    """Faraday efficiency: production per kA·h is 0.3356 kg times this."""
    hard_min_frac: Fraction = 0.70
    """Lowest current the safety layer lets out, × I_N (the rectifier's protection limit)."""
    hard_max_frac: AboveOne = 1.10
    """Highest current the safety layer lets out, × I_N."""
    band_low_frac: Fraction = 0.95
    """Continuous band, lower edge × I_N: the line may stay here indefinitely."""
    band_high_frac: AboveOne = 1.05
    """Continuous band, upper edge × I_N."""
    deep_low_frac: Fraction = 0.85
    """Deepest current × I_N, allowed for ``deep_max_h`` per rolling 24 h."""
    deep_max_h: HoursPerDay = 4.0
    """Hours at full depth below the band per rolling 24 h (shallower counts pro rata) [h]."""
    high_max_frac: AboveOne = 1.10
    """Highest planned current × I_N, allowed for ``high_max_h`` per rolling 24 h."""
    high_max_h: HoursPerDay = 2.0
    """Hours at full height above the band per rolling 24 h [h]."""
    ramp_frac_per_h: Annotated[float, msgspec.Meta(gt=0.0, le=10.0)] = 0.20
    """Ramp limit, × I_N per hour (planner and safety layer)."""
    heat_budget_mwh: NonNeg = 30.0
    """±B: heat the exchangers and pot control could not absorb, kept within this [MWh]."""
    heat_exchangers: bool = True
    """EnPot-like shell heat exchangers on this line (without them, about ±5 % only)."""
    hx_time_constant_h: Annotated[float, msgspec.Meta(ge=0.0, le=48.0)] = 0.5
    """The exchangers follow heat generation with this lag; the lag is what the ledge absorbs
    (0: they follow at once) [h]."""
    heat_recovery_h: Pos = 6.0
    """The pots' own control works a heat deviation off with this time constant [h]."""
    heat_gap_kw_per_pot: NonNeg = 100.0
    """|ΔQ − u| ≤ this per pot: how fast heat may go un-absorbed.  The budget H bounds the
    ledge; this bounds the superheat transient of a long swing (calibrated on the simulator:
    a 20 %/h ramp from +5 % to −15 % at 120 kW per pot still dips the superheat to 4.97 K)."""
    thermal: PotThermal = msgspec.field(default_factory=PotThermal)
    """One pot's thermal constants, for the state tracker's bath observer (controller.thermal)."""

    def __post_init__(self) -> None:
        if not self.hard_min_frac <= self.deep_low_frac <= self.band_low_frac:
            raise ValueError(
                f"deep_low_frac: must lie between hard_min_frac ({self.hard_min_frac}) "
                f"and band_low_frac ({self.band_low_frac})"
            )
        if not self.band_high_frac <= self.high_max_frac <= self.hard_max_frac:
            raise ValueError(
                f"high_max_frac: must lie between band_high_frac ({self.band_high_frac}) "
                f"and hard_max_frac ({self.hard_max_frac})"
            )
        if self.heat_mw(self.nominal_current_ka) <= 0.0:
            raise ValueError("e_tn_v: the pots make no heat at nominal current (E0 + R·I_N ≤ E_tn)")

    @property
    def hard_min_ka(self) -> float:
        return self.hard_min_frac * self.nominal_current_ka

    @property
    def hard_max_ka(self) -> float:
        return self.hard_max_frac * self.nominal_current_ka

    @property
    def ramp_ka_per_h(self) -> float:
        return self.ramp_frac_per_h * self.nominal_current_ka

    def power_mw(self, current_ka: Ka) -> Ka:
        """Line power at ``current_ka`` with nominal pot resistance [MW]."""
        i = current_ka
        return self.pots * (self.e0_v * i + self.resistance_uohm * 1e-3 * i * i) * 1e-3

    def dpower_mw_per_ka(self, current_ka: Ka) -> Ka:
        return self.pots * (self.e0_v + 2.0 * self.resistance_uohm * 1e-3 * current_ka) * 1e-3

    def heat_mw(self, current_ka: Ka) -> Ka:
        """Heat generated in the line's pots at ``current_ka`` [MW]."""
        i = current_ka
        return self.pots * i * (self.e0_v - self.e_tn_v + self.resistance_uohm * 1e-3 * i) * 1e-3

    def dheat_mw_per_ka(self, current_ka: Ka) -> Ka:
        return (
            self.pots
            * (self.e0_v - self.e_tn_v + 2.0 * self.resistance_uohm * 1e-3 * current_ka)
            * 1e-3
        )

    def production_t_per_h(self, current_ka: float, pots_online: int | None = None) -> float:
        pots = self.pots if pots_online is None else pots_online
        return pots * FARADAY_KG_PER_KAH * current_ka * self.current_efficiency * 1e-3

    @property
    def daily_target_t(self) -> float:
        return 24.0 * self.production_t_per_h(self.nominal_current_ka)


class BessModel(_Asset, frozen=True):
    """A battery (defaults: DESIGN §4, 100 MW / 200 MWh)."""

    name: Name
    """The unit's name on the wire (``telemetry/bess/{name}``)."""
    power_mw: Annotated[float, msgspec.Meta(gt=0.0, le=1.0e5)] = 100.0
    """Rated power, charge and discharge [MW]."""
    energy_mwh: Annotated[float, msgspec.Meta(gt=0.0, le=1.0e6)] = 200.0
    """Energy capacity [MWh]."""
    round_trip_efficiency: Annotated[float, msgspec.Meta(gt=0.3, le=1.0)] = 0.88
    """Energy out over energy in, split evenly between charge and discharge."""
    soc_min_frac: Fraction = 0.10
    """Lowest state of charge the plan may use."""
    soc_max_frac: Fraction = 0.90
    """Highest state of charge the plan may use."""

    def __post_init__(self) -> None:
        if not self.soc_min_frac < self.soc_max_frac:
            raise ValueError(f"soc_max_frac: must be above soc_min_frac ({self.soc_min_frac})")


class CaptiveModel(_Asset, frozen=True):
    """A captive (coal) unit: output between min stable load and maximum, ramp-limited."""

    name: Name
    """The unit's name on the wire (``telemetry/captive/{name}``)."""
    min_mw: NonNeg
    """Minimum stable output [MW] (DESIGN §4: 40–50 % of maximum for coal)."""
    max_mw: Pos
    """Maximum output [MW]."""
    ramp_mw_per_h: Pos
    """Ramp limit, up and down [MW/h] (1–2 %/min of maximum for coal)."""
    co2_t_per_mwh: NonNeg = 0.8
    """Emissions [tCO2/MWh]."""
    cost_per_mwh: NonNeg = 250.0
    """Marginal cost [CNY/MWh] (coal at ~0.25 CNY/kWh)."""

    def __post_init__(self) -> None:
        if self.min_mw > self.max_mw:
            raise ValueError(f"min_mw: above max_mw ({self.max_mw})")


class GridModel(_Asset, frozen=True):
    """The grid connection and its time-of-use tariff [CNY/MWh]; hours not listed are flat."""

    import_limit_mw: NonNeg
    """Most the site may import [MW]."""
    export_limit_mw: NonNeg
    """Most the site may export [MW]."""
    carbon_t_per_mwh: Annotated[float, msgspec.Meta(ge=0.0, le=2.0)]
    """Carbon intensity of imports [tCO2/MWh] (Yunnan 0.107, national 0.537, north China > 0.7)."""
    peak_per_mwh: NonNeg = 930.0
    """Import price in peak hours [CNY/MWh]."""
    flat_per_mwh: NonNeg = 700.0
    """Import price in hours neither peak nor valley [CNY/MWh]."""
    valley_per_mwh: NonNeg = 230.0
    """Import price in valley hours [CNY/MWh]."""
    peak_hours: frozenset[Hour] = frozenset({8, 9, 10, 17, 18, 19, 20})
    """Local hours (0–23) at the peak price."""
    valley_hours: frozenset[Hour] = frozenset({0, 1, 2, 3, 4, 5, 6, 23})
    """Local hours (0–23) at the valley price."""
    export_per_mwh: NonNeg = 0.0
    """What exported energy earns [CNY/MWh]."""

    def __post_init__(self) -> None:
        overlap = self.peak_hours & self.valley_hours
        if overlap:
            raise ValueError(f"valley_hours: overlaps peak_hours at {sorted(overlap)}")

    def import_price_per_mwh(self, local_hour: int) -> float:
        if local_hour in self.peak_hours:
            return self.peak_per_mwh
        if local_hour in self.valley_hours:
            return self.valley_per_mwh
        return self.flat_per_mwh


class RenewableModel(_Asset, frozen=True):
    """A renewable plant: what the forecasters need to know of it."""

    name: Name
    """The plant's name on the wire (``telemetry/renewable/{name}``)."""
    kind: RenewableKind
    """``pv``, ``wind`` or ``hydro`` (run-of-river)."""
    capacity_mw: Annotated[float, msgspec.Meta(gt=0.0, le=1.0e5)]
    """Rated capacity [MW]."""


class SiteModel(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A whole site: position, pot-lines, storage, captive units, grid (or islanded) and
    renewable plants.  Asset names are unique across the site."""

    name: Name
    """The site: weather forecasts come on ``smelter/forecast/weather/{name}``, and it is the
    ``site`` tag of everything the daemon logs."""
    lines: Annotated[tuple[LineModel, ...], msgspec.Meta(min_length=1)]
    """The pot-lines (at least one)."""
    latitude_deg: Annotated[float, msgspec.Meta(ge=-90.0, le=90.0)] = 0.0
    """Position, for solar geometry in PV forecasts [°, north positive]."""
    longitude_deg: Annotated[float, msgspec.Meta(ge=-180.0, le=180.0)] = 0.0
    """[°, east positive]."""
    altitude_m: Annotated[float, msgspec.Meta(ge=-500.0, le=9000.0)] = 0.0
    """Above sea level [m] (clear-sky irradiance)."""
    utc_offset_h: Annotated[float, msgspec.Meta(ge=-12.0, le=14.0)] = 8.0
    """Local time = UTC + this [h]: tariff hours and production days are in local time."""
    auxiliary_load_mw: NonNeg = 0.0
    """Constant site load other than pot-lines (carbon plant, casthouse, ...) [MW]."""
    islanded: bool = False
    """No grid connection: then there is no ``grid``; otherwise ``grid`` is required."""
    grid: GridModel | None = None
    bess: tuple[BessModel, ...] = ()
    captive: tuple[CaptiveModel, ...] = ()
    renewable: tuple[RenewableModel, ...] = ()
    grid_meters: tuple[Name, ...] = ()
    """The meters on ``telemetry/grid/{name}``: the point of common coupling, or the island's
    bus.  Empty: ``pcc`` for a grid-connected site, ``bus`` for an island (the simulator's)."""

    def __post_init__(self) -> None:
        if not self.lines:
            raise ValueError("lines: a site needs at least one pot-line")
        groups: dict[str, list[str]] = {
            "lines": [a.name for a in self.lines],
            "bess": [a.name for a in self.bess],
            "captive": [a.name for a in self.captive],
            "renewable": [a.name for a in self.renewable],
        }
        names = [n for group in groups.values() for n in group]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            where = next(key for key, group in groups.items() if set(group) & set(repeated))
            raise ValueError(
                f"{where}: asset names must be unique across the site; repeated: "
                + ", ".join(repeated)
            )
        if self.islanded and self.grid is not None:
            raise ValueError("grid: an islanded site has no grid connection")
        if not self.islanded and self.grid is None:
            raise ValueError("grid: missing; a grid-connected site needs it (else islanded = true)")

    @property
    def meters(self) -> tuple[str, ...]:
        """The grid meters whose telemetry the controller takes (see ``grid_meters``)."""
        if self.grid_meters:
            return self.grid_meters
        return ("bus",) if self.islanded else ("pcc",)

    @property
    def renewable_capacity_mw(self) -> dict[str, float]:
        """Plant name → rated capacity [MW] (a new dict each time: not cached, so that a site
        stays picklable and nobody can change it through the dict)."""
        return {r.name: r.capacity_mw for r in self.renewable}

    @property
    def renewable_kind(self) -> dict[str, RenewableKind]:
        """Plant name → "pv", "wind" or "hydro" (what the forecasters need)."""
        return {r.name: r.kind for r in self.renewable}

    def local_hour(self, t_s: float) -> int:
        return int((t_s / 3600.0 + self.utc_offset_h) % 24.0)

    def local_day(self, t_s: float) -> int:
        """Days since the epoch in local time: production targets run per local day."""
        return int((t_s / 3600.0 + self.utc_offset_h) // 24.0)
