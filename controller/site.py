"""The controller's description of a site: assets, limits and planner parameters.

This is what the planner and the safety layer know about the plant.  It is built from the
daemon's config or, in the evaluation harness, from a simulator scenario
(``harness.site_from_scenario``); the controller itself never reads scenarios.
"""

from __future__ import annotations

from dataclasses import dataclass, field

FARADAY_KG_PER_KAH = 0.3356
"""Aluminium per kA·h at 100 % current efficiency [kg] (27 / (3 · 96485) · 3600)."""


@dataclass(frozen=True)
class LineModel:
    """A pot-line as the planner sees it (defaults: DESIGN §4).

    Electrical: line power P(I) = N·(E0·I + R·I²), heat Q(I) = N·I·(E0 − E_tn + R·I), both
    linearised by the planner around its operating point.  Envelope: continuous band
    [band_low, band_high]·I_N, deeper down to deep_low for at most deep_max_h and higher up to
    high_max for at most high_max_h per rolling 24 h, ramp ≤ ramp_frac_per_h·I_N per hour,
    hard limits [hard_min, hard_max]·I_N enforced by the safety layer.
    """

    name: str
    pots: int = 300
    nominal_current_ka: float = 400.0
    e0_v: float = 1.65
    resistance_uohm: float = 5.875
    e_tn_v: float = 2.06
    current_efficiency: float = 0.93
    hard_min_frac: float = 0.70
    hard_max_frac: float = 1.10
    band_low_frac: float = 0.95
    band_high_frac: float = 1.05
    deep_low_frac: float = 0.85
    deep_max_h: float = 4.0
    high_max_frac: float = 1.10
    high_max_h: float = 2.0
    ramp_frac_per_h: float = 0.20
    heat_budget_mwh: float = 30.0
    """±B: heat the exchangers and pot control could not absorb, kept within this [MWh]."""
    heat_exchangers: bool = True
    hx_time_constant_h: float = 0.5
    """The exchangers follow heat generation with this lag; the lag is what the ledge absorbs."""
    heat_recovery_h: float = 6.0
    """The pots' own control works a heat deviation off with this time constant."""
    heat_gap_kw_per_pot: float = 100.0
    """|ΔQ − u| ≤ this per pot: how fast heat may go un-absorbed.  The budget H bounds the
    ledge; this bounds the superheat transient of a long swing (calibrated on the simulator:
    a 20 %/h ramp from +5 % to −15 % at 120 kW per pot still dips the superheat to 4.97 K)."""

    @property
    def hard_min_ka(self) -> float:
        return self.hard_min_frac * self.nominal_current_ka

    @property
    def hard_max_ka(self) -> float:
        return self.hard_max_frac * self.nominal_current_ka

    @property
    def ramp_ka_per_h(self) -> float:
        return self.ramp_frac_per_h * self.nominal_current_ka

    def power_mw(self, current_ka: float) -> float:
        """Line power at ``current_ka`` with nominal pot resistance [MW]."""
        i = current_ka
        return self.pots * (self.e0_v * i + self.resistance_uohm * 1e-3 * i * i) * 1e-3

    def dpower_mw_per_ka(self, current_ka: float) -> float:
        return self.pots * (self.e0_v + 2.0 * self.resistance_uohm * 1e-3 * current_ka) * 1e-3

    def heat_mw(self, current_ka: float) -> float:
        """Heat generated in the line's pots at ``current_ka`` [MW]."""
        i = current_ka
        return self.pots * i * (self.e0_v - self.e_tn_v + self.resistance_uohm * 1e-3 * i) * 1e-3

    def dheat_mw_per_ka(self, current_ka: float) -> float:
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


@dataclass(frozen=True)
class BessModel:
    name: str
    power_mw: float = 100.0
    energy_mwh: float = 200.0
    round_trip_efficiency: float = 0.88
    soc_min_frac: float = 0.10
    soc_max_frac: float = 0.90


@dataclass(frozen=True)
class CaptiveModel:
    name: str
    min_mw: float
    max_mw: float
    ramp_mw_per_h: float
    co2_t_per_mwh: float = 0.8
    cost_per_mwh: float = 250.0


@dataclass(frozen=True)
class GridModel:
    import_limit_mw: float
    export_limit_mw: float
    carbon_t_per_mwh: float
    peak_per_mwh: float = 930.0
    flat_per_mwh: float = 700.0
    valley_per_mwh: float = 230.0
    peak_hours: frozenset[int] = frozenset({8, 9, 10, 17, 18, 19, 20})
    valley_hours: frozenset[int] = frozenset({0, 1, 2, 3, 4, 5, 6, 23})
    export_per_mwh: float = 0.0

    def import_price_per_mwh(self, local_hour: int) -> float:
        if local_hour in self.peak_hours:
            return self.peak_per_mwh
        if local_hour in self.valley_hours:
            return self.valley_per_mwh
        return self.flat_per_mwh


@dataclass(frozen=True)
class SiteModel:
    name: str
    lines: tuple[LineModel, ...]
    bess: tuple[BessModel, ...] = ()
    captive: tuple[CaptiveModel, ...] = ()
    grid: GridModel | None = None
    auxiliary_load_mw: float = 0.0
    renewable_capacity_mw: dict[str, float] = field(default_factory=dict)
    renewable_kind: dict[str, str] = field(default_factory=dict)
    """Plant name → "pv", "wind" or "hydro" (what the forecasters need)."""
    utc_offset_h: float = 8.0
    latitude_deg: float = 0.0
    longitude_deg: float = 0.0
    altitude_m: float = 0.0

    @property
    def islanded(self) -> bool:
        return self.grid is None

    def local_hour(self, t_s: float) -> int:
        return int((t_s / 3600.0 + self.utc_offset_h) % 24.0)

    def local_day(self, t_s: float) -> int:
        """Days since the epoch in local time: production targets run per local day."""
        return int((t_s / 3600.0 + self.utc_offset_h) // 24.0)
