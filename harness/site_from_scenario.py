"""Build the controller's :class:`~controller.site.SiteModel` from a simulator scenario, and
``smelter-ems site --from-scenario NAME``, which prints it as a site file to start from.

Only the evaluation harness may import both packages (DESIGN §2): in the daemon the site model
comes from the operator's site file, here it comes from the scenario the simulator runs, so the
controller sees the same assets and limits the plant really has.
"""

from __future__ import annotations

import argparse

from controller.daemon.cli import usage_error
from controller.site import (
    BessModel,
    CaptiveModel,
    GridModel,
    LineModel,
    RenewableModel,
    SiteModel,
)
from controller.sitefile import site_toml
from controller.thermal import PotThermal
from simulator.plant import ISLAND_BUS
from simulator.scenario import (
    BessSpec,
    CaptiveSpec,
    GridSpec,
    PotlineSpec,
    Scenario,
    load_scenario,
)
from wire.tomlfile import FileError

CONTINUOUS_BAND_FRAC = 0.05
"""Without shell heat exchangers a line has only about ±5 % of flexibility (DESIGN §4)."""
REFERENCE_POTS = 300
"""The line size the default heat budget B of :class:`LineModel` was set for."""


def line_model(spec: PotlineSpec) -> LineModel:
    """A pot-line's planner model: its physics, hard limits and modulation envelope."""
    p = spec.physics
    default = LineModel(name=spec.name)
    # B is the ledge's allowed swing, a per-pot quantity: scale it with the line's size.
    heat_budget_mwh = default.heat_budget_mwh * spec.pots / REFERENCE_POTS
    envelope = {
        "deep_low_frac": default.deep_low_frac,
        "band_low_frac": default.band_low_frac,
        "band_high_frac": default.band_high_frac,
        "high_max_frac": default.high_max_frac,
    }
    if not p.heat_exchangers:
        low, high = 1.0 - CONTINUOUS_BAND_FRAC, 1.0 + CONTINUOUS_BAND_FRAC
        envelope = {
            "deep_low_frac": low,
            "band_low_frac": low,
            "band_high_frac": high,
            "high_max_frac": high,
        }
    # A scenario may tighten the hard limits inside the default envelope: the envelope must
    # never promise what the plant's protection would clamp away.
    lo, hi = spec.min_current_frac, spec.max_current_frac
    return LineModel(
        name=spec.name,
        pots=spec.pots,
        nominal_current_ka=spec.nominal_current_ka,
        e0_v=p.e0_v,
        resistance_uohm=p.resistance_uohm,
        e_tn_v=p.e_tn_v,
        current_efficiency=p.current_efficiency,
        hard_min_frac=lo,
        hard_max_frac=hi,
        heat_budget_mwh=heat_budget_mwh,
        heat_exchangers=p.heat_exchangers,
        hx_time_constant_h=p.hx_time_constant_h,
        thermal=PotThermal(
            **{f: getattr(p, f) for f in PotThermal.__struct_fields__ if hasattr(p, f)}
        ),
        **{key: min(max(frac, lo), hi) for key, frac in envelope.items()},
    )


def bess_model(spec: BessSpec) -> BessModel:
    return BessModel(
        name=spec.name,
        power_mw=spec.power_mw,
        energy_mwh=spec.energy_mwh,
        round_trip_efficiency=spec.round_trip_efficiency,
        soc_min_frac=spec.soc_min_frac,
        soc_max_frac=spec.soc_max_frac,
    )


def captive_model(spec: CaptiveSpec) -> CaptiveModel:
    return CaptiveModel(
        name=spec.name,
        min_mw=spec.min_stable_mw,
        max_mw=spec.max_mw,
        ramp_mw_per_h=spec.ramp_frac_per_min * spec.max_mw * 60.0,
        co2_t_per_mwh=spec.co2_t_per_mwh,
        cost_per_mwh=spec.fuel_cost_per_mwh,
    )


def grid_model(spec: GridSpec) -> GridModel:
    t = spec.tariff
    return GridModel(
        import_limit_mw=spec.import_limit_mw,
        export_limit_mw=spec.export_limit_mw,
        carbon_t_per_mwh=spec.carbon_t_per_mwh,
        peak_per_mwh=t.peak_per_mwh,
        flat_per_mwh=t.flat_per_mwh,
        valley_per_mwh=t.valley_per_mwh,
        peak_hours=frozenset(t.peak_hours),
        valley_hours=frozenset(t.valley_hours),
        export_per_mwh=t.export_per_mwh,
    )


def site_from_scenario(scenario: Scenario) -> SiteModel:
    """The site as the controller sees it; ``grid`` is None for an islanded scenario."""
    return SiteModel(
        name=scenario.site,
        lines=tuple(line_model(p) for p in scenario.potline),
        bess=tuple(bess_model(b) for b in scenario.bess),
        captive=tuple(captive_model(c) for c in scenario.captive),
        islanded=scenario.islanded,
        grid=None if scenario.grid is None else grid_model(scenario.grid),
        auxiliary_load_mw=scenario.auxiliary_load_mw,
        renewable=tuple(
            RenewableModel(r.name, r.kind.value, r.capacity_mw) for r in scenario.renewable
        ),
        grid_meters=(ISLAND_BUS,) if scenario.grid is None else (scenario.grid.name,),
        utc_offset_h=scenario.utc_offset_h,
        latitude_deg=scenario.latitude_deg,
        longitude_deg=scenario.longitude_deg,
        altitude_m=scenario.altitude_m,
    )


def site_file_text(scenario: Scenario) -> str:
    """The scenario's site as a site file, with a header saying where it came from."""
    about = " ".join(scenario.description.split())
    return (
        f"# smelter-ems site file (docs/configuration.md), from the scenario {scenario.name!r}:\n"
        + (f"# {about}\n" if about else "")
        + "# Edit it to describe the plant, then: smelter-ems run --site FILE.\n"
        + "\n"
        + site_toml(site_from_scenario(scenario))
    )


def site_command(args: argparse.Namespace) -> int:
    try:
        scenario = load_scenario(args.from_scenario)
    except FileError as exc:
        if not exc.source:  # the name itself: no such built-in scenario
            exc = FileError("", "--from-scenario", exc.value, exc.reason)
        return usage_error(str(exc))
    print(site_file_text(scenario), end="")
    return 0
