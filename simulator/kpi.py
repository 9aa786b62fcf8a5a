"""KPI totals over a run, from the simulator's truth (DESIGN §5; docs/kpis.md)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from simulator.potline import FARADAY_KG_PER_KAH, LineStep, PotLine
from simulator.scenario import Scenario

SAFE_BATH_C = (950.0, 980.0)
SAFE_SUPERHEAT_K = (5.0, 15.0)
SAFE_LEDGE_CM = (5.0, 10.0)
"""DESIGN §4 safe thermal band.  A line is outside it when its mean pot is."""


@dataclass(frozen=True)
class SiteStep:
    """One step of the site: mean powers over the step [MW], and its extras."""

    t_s: float
    dt_s: float
    lines: list[LineStep]
    renewable_available_mw: float
    renewable_used_mw: float
    curtailed_mw: float
    grid_import_mw: float
    grid_export_mw: float
    captive_mw: float
    captive_co2_t_per_h: float
    captive_cost_per_h: float
    bess_mw: float
    load_mw: float
    import_price_per_mwh: float
    shed_mw: float
    """Pot-line load cut by the plant's protection before the step."""
    unserved_mw: float
    """Load left unserved after shedding (islanded sites; frequency sags)."""
    overgeneration_mw: float
    frequency_hz: float


def hourly_matched_share(hours: Iterable[Sequence[float]]) -> float:
    """Σ_h min(G_h, C_h) / Σ_h C_h over (renewable generated G_h, consumption C_h) per hour
    [MWh]: the share of consumption that renewable generation of the same hour matched."""
    rows = list(hours)
    consumed = sum(c for _, c in rows)
    return sum(min(g, c) for g, c in rows) / consumed if consumed > 0 else 0.0


@dataclass
class _LineStats:
    min_bath_temp_c: float = float("inf")
    max_bath_temp_c: float = float("-inf")
    min_ledge_cm: float = float("inf")
    max_ledge_cm: float = float("-inf")
    thermal_violation_min: float = 0.0
    aluminium_t: float = 0.0


@dataclass
class KpiAccumulator:
    scenario: Scenario
    hours: float = 0.0
    energy: dict[str, float] = field(default_factory=dict)
    thermal_violation_min: float = 0.0
    min_frequency_hz: float = float("inf")
    max_frequency_hz: float = float("-inf")
    lines: list[_LineStats] = field(default_factory=list)
    frozen_pots: int = 0
    hourly: dict[int, list[float]] = field(default_factory=dict)
    """Local clock hour (hours since the epoch, local time) → [renewable generated, site
    consumption] in that hour [MWh], for the hour-by-hour renewable share."""

    def add(self, s: SiteStep, lines: list[PotLine]) -> None:
        h = s.dt_s / 3600.0
        self.hours += h
        carbon = self.scenario.grid.carbon_t_per_mwh if self.scenario.grid else 0.0
        export_price = self.scenario.grid.tariff.export_per_mwh if self.scenario.grid else 0.0
        for key, mw in (
            ("renewable_available_mwh", s.renewable_available_mw),
            ("renewable_used_mwh", s.renewable_used_mw),
            ("curtailed_mwh", s.curtailed_mw),
            ("grid_import_mwh", s.grid_import_mw),
            ("grid_export_mwh", s.grid_export_mw),
            ("captive_mwh", s.captive_mw),
            ("consumption_mwh", s.load_mw),
            ("shed_mwh", s.shed_mw),
            ("unserved_mwh", s.unserved_mw),
            ("overgeneration_mwh", s.overgeneration_mw),
            ("co2_t", s.grid_import_mw * carbon + s.captive_co2_t_per_h),
            (
                "cost",
                s.grid_import_mw * s.import_price_per_mwh
                + s.captive_cost_per_h
                - s.grid_export_mw * export_price,
            ),
        ):
            self.energy[key] = self.energy.get(key, 0.0) + mw * h
        hour = math.floor((s.t_s + self.scenario.utc_offset_h * 3600.0) / 3600.0)
        bucket = self.hourly.setdefault(hour, [0.0, 0.0])
        # generated = used on site + exported (exports come from the renewable surplus first)
        bucket[0] += (s.renewable_available_mw - s.curtailed_mw) * h
        bucket[1] += s.load_mw * h
        self.min_frequency_hz = min(self.min_frequency_hz, s.frequency_hz)
        self.max_frequency_hz = max(self.max_frequency_hz, s.frequency_hz)
        if not self.lines:
            self.lines = [_LineStats() for _ in s.lines]
        any_out = False
        for st, r, line in zip(self.lines, s.lines, lines, strict=True):
            superheat = r.mean_bath_temp_c - line.p.liquidus_c
            out = not (
                SAFE_BATH_C[0] <= r.mean_bath_temp_c <= SAFE_BATH_C[1]
                and SAFE_SUPERHEAT_K[0] <= superheat <= SAFE_SUPERHEAT_K[1]
                and SAFE_LEDGE_CM[0] <= r.mean_ledge_cm <= SAFE_LEDGE_CM[1]
            )
            any_out |= out
            st.thermal_violation_min += s.dt_s / 60.0 if out else 0.0
            st.min_bath_temp_c = min(st.min_bath_temp_c, r.mean_bath_temp_c)
            st.max_bath_temp_c = max(st.max_bath_temp_c, r.mean_bath_temp_c)
            st.min_ledge_cm = min(st.min_ledge_cm, r.mean_ledge_cm)
            st.max_ledge_cm = max(st.max_ledge_cm, r.mean_ledge_cm)
            st.aluminium_t += r.aluminium_kg / 1000.0
        self.thermal_violation_min += s.dt_s / 60.0 if any_out else 0.0
        self.frozen_pots = sum(line.spec.pots - line.pots_online for line in lines)

    def aluminium_target_t(self) -> float:
        """Production at nominal current and nominal current efficiency over the run."""
        return (
            sum(
                p.pots * FARADAY_KG_PER_KAH * p.nominal_current_ka * p.physics.current_efficiency
                for p in self.scenario.potline
            )
            * self.hours
            / 1000.0
        )

    def result(self) -> dict[str, object]:
        e = self.energy
        consumption = e.get("consumption_mwh", 0.0)
        out: dict[str, object] = {k: round(v, 3) for k, v in e.items() if k != "consumption_mwh"}
        out["site_consumption_mwh"] = round(consumption, 3)
        out["renewable_share"] = round(
            e.get("renewable_used_mwh", 0.0) / consumption if consumption > 0 else 0.0, 6
        )
        out["aluminium_t"] = round(sum(s.aluminium_t for s in self.lines), 3)
        out["aluminium_target_t"] = round(self.aluminium_target_t(), 3)
        aluminium_t = sum(s.aluminium_t for s in self.lines)
        out["co2_t_per_t_al"] = (
            round(e.get("co2_t", 0.0) / aluminium_t, 5) if aluminium_t > 0 else None
        )
        out["renewable_share_hourly"] = round(hourly_matched_share(self.hourly.values()), 6)
        out["thermal_violation_min"] = round(self.thermal_violation_min, 1)
        out["min_bath_temp_c"] = round(
            min((s.min_bath_temp_c for s in self.lines), default=float("nan")), 3
        )
        out["max_bath_temp_c"] = round(
            max((s.max_bath_temp_c for s in self.lines), default=float("nan")), 3
        )
        if self.scenario.islanded:
            out["min_frequency_hz"] = round(self.min_frequency_hz, 3)
            out["max_frequency_hz"] = round(self.max_frequency_hz, 3)
        out["potlines"] = len(self.scenario.potline)
        out["pots"] = sum(p.pots for p in self.scenario.potline)
        out["frozen_pots"] = self.frozen_pots
        out["lines"] = {
            spec.name: {
                "min_bath_temp_c": round(st.min_bath_temp_c, 3),
                "max_bath_temp_c": round(st.max_bath_temp_c, 3),
                "min_ledge_cm": round(st.min_ledge_cm, 3),
                "max_ledge_cm": round(st.max_ledge_cm, 3),
                "thermal_violation_min": round(st.thermal_violation_min, 1),
                "aluminium_t": round(st.aluminium_t, 3),
            }
            for spec, st in zip(self.scenario.potline, self.lines, strict=True)
        }
        out["hours"] = round(self.hours, 4)
        return out

    def share_by_hour(self) -> tuple[list[float], list[float]]:
        """Each local clock hour of the run: its start (UNIX s) and the share of the site's
        consumption in it that renewable generation of the same hour matched [0-1].  The first
        and last hours may be partial."""
        offset_s = self.scenario.utc_offset_h * 3600.0
        starts, shares = [], []
        for hour, (gen, used) in sorted(self.hourly.items()):
            starts.append(hour * 3600.0 - offset_s)
            shares.append(round(min(gen, used) / used, 6) if used > 0 else 0.0)
        return starts, shares
