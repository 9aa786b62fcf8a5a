"""Scenario files: the description of one simulated site, loaded from TOML into frozen types.

A scenario names the site, its pot-lines (with their physics), renewable plants, storage,
captive unit and grid connection.  Built-in scenarios live in ``simulator/scenarios/*.toml``;
copy one, edit it and pass its path wherever a scenario name is accepted.  Every value has a
default here, with its source, so a scenario file only states what differs.

Bad values fail at load with the key, the value and the reason (:class:`FileError`).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated

import msgspec

from wire import RenewableKind
from wire.tomlfile import FileError, load_toml

Pos = Annotated[float, msgspec.Meta(gt=0.0)]
NonNeg = Annotated[float, msgspec.Meta(ge=0.0)]
Fraction = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
AssetName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]


class _Spec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class PotPhysics(_Spec, frozen=True, kw_only=True):
    """Per-pot physics.  Defaults: DESIGN §4; the calibration is derived in docs/simulator.md."""

    e0_v: Pos = 1.65
    """Back-EMF plus overvoltages [V]: V = E0 + R·I (4.00 V at 400 kA)."""
    resistance_uohm: Pos = 5.875
    """Pot ohmic resistance [µΩ]."""
    resistance_spread_frac: Annotated[float, msgspec.Meta(ge=0.0, le=0.1)] = 0.01
    """Standard deviation of the per-pot resistance, as a fraction."""
    e_tn_v: Pos = 2.06
    """Thermoneutral voltage [V]: the part of V that goes into the reaction, not heat."""
    current_efficiency: Annotated[float, msgspec.Meta(gt=0.5, le=1.0)] = 0.93
    thermal_capacity_mj_per_k: Pos = 30.0
    """Melt node (bath + metal pad) heat capacity C_m [MJ/K]."""
    loss_conductance_kw_per_k: Pos = 0.733
    """G: melt to ambient through top, bottom and shell [kW/K]; calibrated so that the nominal
    superheat is 9 K (DESIGN gives ≈0.66; see docs/simulator.md)."""
    loss_spread_frac: Annotated[float, msgspec.Meta(ge=0.0, le=0.2)] = 0.03
    """Standard deviation of the per-pot G, as a fraction (pot age, cover, position)."""
    ledge_h_a_kw_per_k: Pos = 11.0
    """hA: bath to ledge heat transfer [kW/K]."""
    liquidus_c: Pos = 955.0
    ambient_c: float = 40.0
    """Pot-room air around the shells [°C]."""
    ledge_area_m2: Pos = 14.0
    ledge_conductivity_w_per_mk: Pos = 1.5
    ledge_latent_kj_per_kg: Pos = 310.0
    ledge_density_kg_m3: Pos = 3000.0
    shell_resistance_k_per_kw: Pos = 5.91
    """Ledge face to air through sidewall, shell and air film [K/kW]; calibrated so the
    nominal ledge settles at 7 cm."""
    freeze_capacity_mj_per_k: Pos = 220.0
    """Apparent heat capacity below the liquidus [MJ/K]: latent heat of the freezing bath and
    stored heat of anodes and cathode, calibrated to outage tolerance (≤0.5 h harmless,
    >3 h pots start to freeze: Øye & Sørlie)."""
    freeze_depth_k: Pos = 25.0
    """A pot whose melt falls this far below the liquidus is frozen (needs a restart)."""
    superheat_target_k: Pos = 9.0
    ledge_target_cm: Pos = 7.0
    resistance_control_v: NonNeg = 0.2
    """Authority of each pot's own resistance (ACD) control [±V]."""
    resistance_slew_v_per_h: NonNeg = 0.05
    heat_exchangers: bool = True
    """EnPot-like shell heat exchangers on this line."""
    hx_range_frac: Annotated[float, msgspec.Meta(ge=0.0, le=0.5)] = 0.30
    """Heat-loss adjustment of the exchangers, ± fraction of nominal heat generation."""
    hx_time_constant_h: Pos = 0.5
    anode_effects_per_pot_day: NonNeg = 0.05
    anode_effect_v: Annotated[float, msgspec.Meta(gt=8.0, le=60.0)] = 10.0
    anode_effect_minutes: Annotated[float, msgspec.Meta(gt=0.0, le=30.0)] = 3.0


class PotlineSpec(_Spec, frozen=True, kw_only=True):
    name: AssetName
    pots: Annotated[int, msgspec.Meta(ge=1, le=2000)] = 300
    nominal_current_ka: Annotated[float, msgspec.Meta(gt=0.0, le=1000.0)] = 400.0
    min_current_frac: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.70
    """Hard limits the plant's rectifier protection clamps to (DESIGN §4: 0.70–1.10 · I_N)."""
    max_current_frac: Annotated[float, msgspec.Meta(ge=1.0, le=1.5)] = 1.10
    physics: PotPhysics = msgspec.field(default_factory=PotPhysics)

    @property
    def min_current_ka(self) -> float:
        return self.min_current_frac * self.nominal_current_ka

    @property
    def max_current_ka(self) -> float:
        return self.max_current_frac * self.nominal_current_ka


class RenewableSpec(_Spec, frozen=True, kw_only=True):
    name: AssetName
    kind: RenewableKind
    capacity_mw: Pos
    # PV
    tilt_deg: Annotated[float, msgspec.Meta(ge=0.0, le=90.0)] = 25.0
    performance_ratio: Fraction = 0.82
    # wind
    mean_wind_speed_ms: Annotated[float, msgspec.Meta(gt=0.0, le=30.0)] = 7.5
    weibull_k: Annotated[float, msgspec.Meta(gt=0.5, le=5.0)] = 2.0
    cut_in_ms: NonNeg = 3.0
    rated_ms: Pos = 12.0
    cut_out_ms: Pos = 25.0
    # hydro (run-of-river)
    mean_flow_m3s: Pos = 400.0
    rated_flow_m3s: Pos = 500.0
    seasonal_amplitude_frac: Fraction = 0.4


class BessSpec(_Spec, frozen=True, kw_only=True):
    name: AssetName
    power_mw: Pos = 100.0
    energy_mwh: Pos = 200.0
    round_trip_efficiency: Annotated[float, msgspec.Meta(gt=0.3, le=1.0)] = 0.88
    soc_min_frac: Fraction = 0.10
    soc_max_frac: Fraction = 0.90
    soc_initial_frac: Fraction = 0.50

    def __post_init__(self) -> None:
        if not self.soc_min_frac < self.soc_max_frac:
            raise ValueError(f"soc_min_frac: must be below soc_max_frac ({self.soc_max_frac})")
        if not self.soc_min_frac <= self.soc_initial_frac <= self.soc_max_frac:
            raise ValueError("soc_initial_frac: must lie between soc_min_frac and soc_max_frac")


class CaptiveSpec(_Spec, frozen=True, kw_only=True):
    name: AssetName
    max_mw: Pos = 600.0
    min_stable_frac: Fraction = 0.45
    ramp_frac_per_min: Annotated[float, msgspec.Meta(gt=0.0, le=1.0)] = 0.015
    co2_t_per_mwh: NonNeg = 0.8
    fuel_cost_per_mwh: NonNeg = 250.0
    """Marginal cost [CNY/MWh] (coal at ~0.25 CNY/kWh)."""
    initial_mw: NonNeg | None = None
    """Output at the start; None means min stable load."""

    @property
    def min_stable_mw(self) -> float:
        return self.min_stable_frac * self.max_mw


class TariffSpec(_Spec, frozen=True, kw_only=True):
    """Time-of-use import price [CNY/MWh] by local hour; hours not listed are 'flat'."""

    peak_per_mwh: NonNeg = 930.0
    flat_per_mwh: NonNeg = 700.0
    valley_per_mwh: NonNeg = 230.0
    peak_hours: list[Annotated[int, msgspec.Meta(ge=0, le=23)]] = msgspec.field(
        default_factory=lambda: [8, 9, 10, 17, 18, 19, 20]
    )
    valley_hours: list[Annotated[int, msgspec.Meta(ge=0, le=23)]] = msgspec.field(
        default_factory=lambda: [0, 1, 2, 3, 4, 5, 6, 23]
    )
    export_per_mwh: NonNeg = 0.0

    def __post_init__(self) -> None:
        if set(self.peak_hours) & set(self.valley_hours):
            raise ValueError("valley_hours: overlaps peak_hours")


class GridSpec(_Spec, frozen=True, kw_only=True):
    name: AssetName = "pcc"
    import_limit_mw: NonNeg = 2000.0
    export_limit_mw: NonNeg = 0.0
    carbon_t_per_mwh: NonNeg = 0.537
    """Grid carbon intensity (DESIGN §4: Yunnan 0.107, national 0.537, north China > 0.7)."""
    tariff: TariffSpec = msgspec.field(default_factory=TariffSpec)


class WeatherSpec(_Spec, frozen=True, kw_only=True):
    forecast_interval_h: Pos = 6.0
    forecast_horizon_h: Pos = 48.0
    forecast_step_min: Pos = 15.0
    forecast_error_growth: Annotated[float, msgspec.Meta(ge=0.0, le=5.0)] = 1.0
    """Multiplier on the default forecast-error model (0 = perfect forecast)."""
    mean_clear_sky_index: Fraction = 0.75
    """Long-run mean of the clear-sky index (cloudiness of the climate)."""


class ProtectionSpec(_Spec, frozen=True, kw_only=True):
    """Plant-side protection (the PLCs'), in plant time."""

    watchdog_s: Annotated[float, msgspec.Meta(gt=0.0)] = 1800.0
    """No valid command for this long returns an asset to its safe default."""


class Scenario(_Spec, frozen=True, kw_only=True):
    name: AssetName
    description: str = ""
    site: AssetName = "site"
    latitude_deg: Annotated[float, msgspec.Meta(ge=-90.0, le=90.0)]
    longitude_deg: Annotated[float, msgspec.Meta(ge=-180.0, le=180.0)]
    altitude_m: float = 0.0
    utc_offset_h: Annotated[float, msgspec.Meta(ge=-12.0, le=14.0)] = 8.0
    start: Annotated[float, msgspec.Meta(ge=0.0)] = 1_780_272_000.0
    """Plant time at the start [UNIX s]; default 2026-06-01 00:00 UTC."""
    islanded: bool = False
    auxiliary_load_mw: NonNeg = 0.0
    """Constant site load other than pot-lines (carbon plant, casthouse, ...)."""
    potline: list[PotlineSpec]
    renewable: list[RenewableSpec] = msgspec.field(default_factory=list)
    bess: list[BessSpec] = msgspec.field(default_factory=list)
    captive: list[CaptiveSpec] = msgspec.field(default_factory=list)
    grid: GridSpec | None = None
    weather: WeatherSpec = msgspec.field(default_factory=WeatherSpec)
    protection: ProtectionSpec = msgspec.field(default_factory=ProtectionSpec)

    def __post_init__(self) -> None:
        if not self.potline:
            raise ValueError("potline: a scenario needs at least one pot-line")
        names: list[str] = [p.name for p in self.potline] + [r.name for r in self.renewable]
        names += [b.name for b in self.bess] + [c.name for c in self.captive]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"name: asset names must be unique; repeated: {', '.join(dupes)}")
        if self.islanded and self.grid is not None:
            raise ValueError("grid: an islanded scenario has no grid connection")
        if not self.islanded and self.grid is None:
            raise ValueError("grid: a grid-connected scenario needs a [grid] table")
        if self.islanded and not self.captive:
            raise ValueError("captive: an islanded scenario needs a captive unit")


_SCENARIO_PACKAGE = "simulator.scenarios"


def builtin_names() -> list[str]:
    files = resources.files(_SCENARIO_PACKAGE)
    return sorted(p.name.removesuffix(".toml") for p in files.iterdir() if p.name.endswith(".toml"))


def load_scenario(name_or_path: str | Path) -> Scenario:
    """Load a built-in scenario by name, or a scenario file by path."""
    text = str(name_or_path)
    if text in builtin_names():
        with resources.as_file(resources.files(_SCENARIO_PACKAGE) / f"{text}.toml") as p:
            return load_toml(p, Scenario)
    path = Path(text)
    if path.suffix != ".toml" and not path.exists():
        known = ", ".join(builtin_names())
        raise FileError("", "scenario", text, f"no such built-in scenario (known: {known})")
    return load_toml(path, Scenario)
