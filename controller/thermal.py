"""The mean pot's bath and ledge: an observer of a line's thermal state from its telemetry.

The planner's heat budget (:mod:`controller.planner.lineheat`) is linear bookkeeping of heat
the exchangers did not absorb; what the plant must keep in its safe band (DESIGN §4: bath
950–980 °C, superheat 5–15 K, ledge 5–10 cm) is the bath itself.  This module integrates the
documented two-node thermal model of one pot (docs/simulator.md) for the line's mean pot::

    C(T) dT/dt = Q − G·(T − T_amb) − L_hx − hA·max(T − T_liq, 0)
    ρ·L_f·A ds/dt = (T_liq − T_amb)/(s/(k·A) + R_shell) − hA·max(T − T_liq, 0)
    Q = I·(V − E_tn)

with the plant's own loops as documented: the exchangers follow the current's heat change
(feed-forward) with a superheat trim, a first-order actuator of range ±hx_range·Q_N; each
pot's resistance control ΔV steers superheat and ledge back to target, slew-limited.

Telemetry corrects it: the line's measured voltage gives the mean pot voltage, hence the heat
actually generated (resistance control and anode effects included) and the control's ΔV,
which is then not modelled but measured.  Bath temperature itself is not measured on line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

import msgspec

HX_FEEDBACK_KW_PER_K = 80.0
"""The exchangers' superheat trim [kW per K] (the plant's loop: simulator/potline.py)."""
CONTROL_GAIN_PER_K = 0.2
"""Resistance control: ΔV moves 0.2·slew·error per hour, error in K (+ cm of ledge), capped
at the slew (the plant's loop: simulator/potline.py)."""

_Pos = Annotated[float, msgspec.Meta(gt=0.0, le=1.0e4)]


class PotThermal(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One pot's thermal constants (defaults: DESIGN §4, calibrated in docs/simulator.md:
    9 K superheat and a 7 cm ledge at nominal current)."""

    thermal_capacity_mj_per_k: _Pos = 30.0
    """C_m: melt (bath + metal pad) heat capacity [MJ/K]."""
    freeze_capacity_mj_per_k: _Pos = 220.0
    """Apparent extra capacity below the liquidus (the bath freezing) [MJ/K]."""
    loss_conductance_kw_per_k: _Pos = 0.733
    """G: melt to ambient through top, bottom and shell [kW/K]."""
    ledge_h_a_kw_per_k: _Pos = 11.0
    """hA: bath to ledge heat transfer [kW/K]."""
    liquidus_c: _Pos = 955.0
    ambient_c: Annotated[float, msgspec.Meta(ge=-50.0, le=100.0)] = 40.0
    ledge_area_m2: _Pos = 14.0
    ledge_conductivity_w_per_mk: _Pos = 1.5
    ledge_latent_kj_per_kg: _Pos = 310.0
    ledge_density_kg_m3: _Pos = 3000.0
    shell_resistance_k_per_kw: _Pos = 5.91
    """Ledge face to air through sidewall, shell and air film [K/kW]."""
    superheat_target_k: _Pos = 9.0
    ledge_target_cm: _Pos = 7.0
    resistance_control_v: Annotated[float, msgspec.Meta(ge=0.0, le=2.0)] = 0.2
    """Authority of each pot's resistance control [±V]."""
    resistance_slew_v_per_h: Annotated[float, msgspec.Meta(ge=0.0, le=10.0)] = 0.05
    hx_range_frac: Annotated[float, msgspec.Meta(ge=0.0, le=0.5)] = 0.30
    """The exchangers' range, ± fraction of nominal heat generation."""
    safe_superheat_k: tuple[float, float] = (5.0, 15.0)
    """The safe band of the superheat (DESIGN §4) [K]."""
    bath_margin_k: Annotated[float, msgspec.Meta(ge=0.0, le=10.0)] = 0.5
    """The planner keeps this far inside the safe band, for what the observer does not see:
    its measured mismatch with the simulator's mean bath (0.46 K at most over 3 days,
    inner-mongolia-wind seed 11; docs/backtest.md) [K]."""

    @property
    def shell_k_a_kw_per_mk(self) -> float:
        return self.ledge_conductivity_w_per_mk * self.ledge_area_m2 * 1e-3

    def shell_kw(self, ledge_m: float) -> float:
        """Heat conducted from the ledge face through ledge, sidewall and shell [kW]."""
        return (self.liquidus_c - self.ambient_c) / (
            max(ledge_m, 0.0) / self.shell_k_a_kw_per_mk + self.shell_resistance_k_per_kw
        )

    def steady_bath_c(self, heat_kw: float, hx_kw: float = 0.0) -> float:
        """The bath temperature where a pot making ``heat_kw`` loses as much (above the
        liquidus): Q − L_hx = G·(T − T_amb) + hA·(T − T_liq)."""
        g, h_a = self.loss_conductance_kw_per_k, self.ledge_h_a_kw_per_k
        return (heat_kw - hx_kw + g * self.ambient_c + h_a * self.liquidus_c) / (g + h_a)

    def steady_ledge_m(self, bath_c: float) -> float:
        """The ledge thickness at which the shell conducts what the bath gives the ledge."""
        side_kw = self.ledge_h_a_kw_per_k * max(bath_c - self.liquidus_c, 0.1)
        return max(
            self.shell_k_a_kw_per_mk
            * ((self.liquidus_c - self.ambient_c) / side_kw - self.shell_resistance_k_per_kw),
            0.0,
        )


@dataclass
class BathObserver:
    """The mean pot of one line: bath [°C], ledge [m], exchanger load [kW], control ΔV [V].

    Starts in the plant's documented steady state at nominal current: superheat at target,
    exchangers idle, ΔV = 0 (the mean pot has the nominal resistance)."""

    p: PotThermal
    nominal_current_ka: float
    e0_v: float
    resistance_uohm: float
    e_tn_v: float
    heat_exchangers: bool
    hx_time_constant_h: float
    bath_c: float = math.nan
    ledge_m: float = math.nan
    hx_kw: float = 0.0
    delta_v: float = 0.0
    voltage_measured: bool = False
    """ΔV comes from telemetry (held between samples) rather than the control's model."""

    def __post_init__(self) -> None:
        if math.isnan(self.bath_c):
            self.bath_c = self.p.liquidus_c + self.p.superheat_target_k
        if math.isnan(self.ledge_m):
            self.ledge_m = self.p.steady_ledge_m(self.bath_c)

    @property
    def superheat_k(self) -> float:
        return self.bath_c - self.p.liquidus_c

    def model_voltage_v(self, current_ka: float) -> float:
        """The mean pot's voltage E0 + R·I + ΔV [V]."""
        return self.e0_v + self.resistance_uohm * 1e-3 * current_ka + self.delta_v

    def measure_voltage(self, current_ka: float, pot_voltage_v: float) -> None:
        """Telemetry's correction: the measured mean pot voltage fixes ΔV (the pots' control
        state, anode effects included)."""
        if current_ka > 0.0 and pot_voltage_v > 0.0:
            self.delta_v = pot_voltage_v - (self.e0_v + self.resistance_uohm * 1e-3 * current_ka)
            self.voltage_measured = True

    def step(self, current_ka: float, dt_s: float) -> None:
        """Advance by ``dt_s`` at ``current_ka`` (explicit Euler: keep dt_s to a few minutes;
        the fastest node's time constant is C_m/(G + hA) ≈ 43 min)."""
        p = self.p
        q_kw = current_ka * (self.model_voltage_v(current_ka) - self.e_tn_v)
        sh = self.superheat_k
        side_kw = p.ledge_h_a_kw_per_k * max(sh, 0.0)
        loss_kw = p.loss_conductance_kw_per_k * (self.bath_c - p.ambient_c) + self.hx_kw
        cap_kj_per_k = 1e3 * (
            p.thermal_capacity_mj_per_k + (0.0 if sh >= 0.0 else p.freeze_capacity_mj_per_k)
        )
        latent_kj_per_m = p.ledge_density_kg_m3 * p.ledge_latent_kj_per_kg * p.ledge_area_m2
        shell_kw = p.shell_kw(self.ledge_m)
        self.bath_c += dt_s * (q_kw - loss_kw - side_kw) / cap_kj_per_k
        self.ledge_m = max(self.ledge_m + dt_s * (shell_kw - side_kw) / latent_kj_per_m, 0.0)
        if not self.voltage_measured:
            self._resistance_control(sh, dt_s)
        if self.heat_exchangers:
            self._exchangers(q_kw, sh, dt_s)

    def _resistance_control(self, sh: float, dt_s: float) -> None:
        """The pots' own control, modelled while telemetry has not measured it."""
        p = self.p
        error = (p.superheat_target_k - sh) + (self.ledge_m * 100.0 - p.ledge_target_cm)
        max_dv = p.resistance_slew_v_per_h * dt_s / 3600.0
        self.delta_v = min(
            max(
                self.delta_v + min(max(CONTROL_GAIN_PER_K * max_dv * error, -max_dv), max_dv),
                -p.resistance_control_v,
            ),
            p.resistance_control_v,
        )

    def _exchangers(self, q_kw: float, sh: float, dt_s: float) -> None:
        p = self.p
        i_n = self.nominal_current_ka
        q_nominal_kw = i_n * (self.e0_v + self.resistance_uohm * 1e-3 * i_n - self.e_tn_v)
        span_kw = p.hx_range_frac * q_nominal_kw
        q_at_nominal_kw = i_n * (self.model_voltage_v(i_n) - self.e_tn_v)
        want_kw = min(
            max(
                q_kw - q_at_nominal_kw + HX_FEEDBACK_KW_PER_K * (sh - p.superheat_target_k),
                -span_kw,
            ),
            span_kw,
        )
        tau_s = self.hx_time_constant_h * 3600.0
        alpha = 1.0 - math.exp(-dt_s / tau_s) if tau_s > 0.0 else 1.0
        self.hx_kw += alpha * (want_kw - self.hx_kw)
