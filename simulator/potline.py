"""Pot-line physics, per pot, vectorised over the pots of one line.

Electrical (per pot, line current I in series through all pots online)::

    V = E0 + R·I + ΔV_ctl (+ V_AE during an anode effect)
    Q = I · (V − E_tn)                    heat generated in the pot [W]
    m_Al = 0.3356 · I[kA] · CE  kg/h      Faraday

Thermal, two nodes per pot (melt temperature T, side-ledge thickness s)::

    C(T) dT/dt = Q − G (T − T_amb) − L_hx − hA · max(T − T_liq, 0)
    ρ L_f A ds/dt = q_shell(s) − hA · max(T − T_liq, 0),
    q_shell(s) = (T_liq − T_amb) / (s / (k A) + R_shell)

``C(T)`` is C_m above the liquidus and C_m + C_freeze below it (the bath freezing); a pot
whose melt falls ``freeze_depth_k`` below the liquidus is frozen and cut out of the line.
``L_hx`` is the heat loss added (or, negative, withheld) by the shell heat exchangers: the
plant runs them to follow heat generation, a first-order actuator with time constant
``hx_time_constant_h`` and range ±``hx_range_frac``·Q_nom.  ``ΔV_ctl`` is each pot's own
resistance (anode–cathode distance) control, steering superheat and ledge back to target
within ±``resistance_control_v`` at ≤ ``resistance_slew_v_per_h``.

The derivation of the calibrated defaults is in ``docs/simulator.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from simulator.scenario import PotlineSpec, PotPhysics

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

FARADAY_KG_PER_KAH = 0.3356
"""Aluminium produced per kA·h at 100 % current efficiency [kg] (27/(3·96485)·3600)."""
CE_LOW_SUPERHEAT_K = 5.0
"""Below this superheat, sludge and an unstable metal pad cost current efficiency."""
CE_LOSS_PER_K = 0.005
HX_FEEDBACK_KW_PER_K = 80.0
"""Superheat trim of the heat-exchanger loop [kW per K of superheat error]."""


@dataclass(frozen=True)
class LineStep:
    """What one step of a line produced (line totals and extremes), for telemetry and KPIs."""

    current_ka: float
    voltage_v: float
    power_mw: float
    heat_mw: float
    aluminium_kg: float
    pots_online: int
    mean_bath_temp_c: float
    mean_ledge_cm: float


def pot_voltage_v(
    p: PotPhysics, current_ka: float | FloatArray, resistance_uohm: FloatArray | float
) -> FloatArray:
    """Pot voltage V = E0 + R·I [V] at ``current_ka`` [kA] and ``resistance_uohm`` [µΩ]."""
    return np.asarray(p.e0_v + resistance_uohm * 1e-3 * np.asarray(current_ka), dtype=float)


def heat_kw(
    p: PotPhysics, current_ka: float | FloatArray, voltage_v: float | FloatArray
) -> FloatArray:
    """Heat generated in a pot Q = I·(V − E_tn) [kW]."""
    return np.asarray(np.asarray(current_ka) * (np.asarray(voltage_v) - p.e_tn_v), dtype=float)


def shell_heat_kw(p: PotPhysics, ledge_m: FloatArray) -> FloatArray:
    """Heat conducted from the ledge face out through ledge, sidewall and shell [kW]."""
    k_a_kw_per_mk = p.ledge_conductivity_w_per_mk * p.ledge_area_m2 * 1e-3
    return (p.liquidus_c - p.ambient_c) / (ledge_m / k_a_kw_per_mk + p.shell_resistance_k_per_kw)


class PotLine:
    """State and physics of one pot-line.  ``step`` advances it by ``dt_s`` at a line current."""

    def __init__(self, spec: PotlineSpec, rng: np.random.Generator) -> None:
        p = spec.physics
        self.spec = spec
        self.p = p
        n = spec.pots
        self.resistance_uohm: FloatArray = p.resistance_uohm * (
            1.0 + p.resistance_spread_frac * rng.standard_normal(n)
        )
        self.loss_kw_per_k: FloatArray = p.loss_conductance_kw_per_k * (
            1.0 + p.loss_spread_frac * rng.standard_normal(n)
        )
        self._rng = rng
        i_n = spec.nominal_current_ka
        v_n = pot_voltage_v(p, i_n, p.resistance_uohm)
        self.q_nominal_kw = float(heat_kw(p, i_n, v_n))
        # Start each pot in its own steady state at nominal current: its resistance control has
        # brought the superheat to target (within its authority), the exchangers are idle.
        h_a = p.ledge_h_a_kw_per_k
        bath_target_c = p.liquidus_c + p.superheat_target_k
        q_target_kw = (
            self.loss_kw_per_k * (bath_target_c - p.ambient_c) + h_a * p.superheat_target_k
        )
        self.delta_v: FloatArray = np.clip(
            q_target_kw / i_n + p.e_tn_v - pot_voltage_v(p, i_n, self.resistance_uohm),
            -p.resistance_control_v,
            p.resistance_control_v,
        )
        q = heat_kw(p, i_n, pot_voltage_v(p, i_n, self.resistance_uohm) + self.delta_v)
        self.bath_c: FloatArray = (q + self.loss_kw_per_k * p.ambient_c + h_a * p.liquidus_c) / (
            self.loss_kw_per_k + h_a
        )
        side_kw = h_a * np.maximum(self.bath_c - p.liquidus_c, 0.1)
        k_a = p.ledge_conductivity_w_per_mk * p.ledge_area_m2 * 1e-3
        self.ledge_m: FloatArray = k_a * (
            (p.liquidus_c - p.ambient_c) / side_kw - p.shell_resistance_k_per_kw
        )
        self.hx_kw: FloatArray = np.zeros(n)
        self.frozen: BoolArray = np.zeros(n, dtype=bool)
        self.ae_remaining_s: FloatArray = np.zeros(n)
        self.voltage_v: FloatArray = pot_voltage_v(p, i_n, self.resistance_uohm)
        self.current_ka = i_n
        self.heat_in_mj = 0.0
        """Cumulative heat generated in the line's pots [MJ]."""
        self.heat_out_mj = 0.0
        """Cumulative heat lost to ambient (top/bottom, exchangers, shell) [MJ]."""

    # --- physics ---------------------------------------------------------------------------

    def _anode_effects(self, dt_s: float) -> BoolArray:
        p = self.p
        rate_per_s = p.anode_effects_per_pot_day / 86_400.0
        if rate_per_s > 0.0 and self.current_ka > 0.0:
            starts = self._rng.random(self.spec.pots) < rate_per_s * dt_s
            self.ae_remaining_s[starts & ~self.frozen] = p.anode_effect_minutes * 60.0
        active: BoolArray = self.ae_remaining_s > 0.0
        self.ae_remaining_s = np.maximum(self.ae_remaining_s - dt_s, 0.0)
        return active

    def step(self, current_ka: float, dt_s: float) -> LineStep:
        """Advance every pot by ``dt_s`` seconds at line current ``current_ka`` (explicit Euler;
        stable for dt_s up to several minutes: the fastest node has τ ≈ C_m/(G+hA) ≈ 43 min)."""
        p = self.p
        self.current_ka = current_ka
        online = ~self.frozen
        ae = self._anode_effects(dt_s)
        v = pot_voltage_v(p, current_ka, self.resistance_uohm) + self.delta_v
        v = np.where(ae, np.maximum(v, p.anode_effect_v), v)
        v = np.where(online, v, 0.0)
        self.voltage_v = v
        q_kw = np.where(online, heat_kw(p, current_ka, v), 0.0)

        superheat = self.bath_c - p.liquidus_c
        side_kw = p.ledge_h_a_kw_per_k * np.maximum(superheat, 0.0)
        loss_kw = self.loss_kw_per_k * (self.bath_c - p.ambient_c) + self.hx_kw
        capacity_kj_per_k = 1e3 * np.where(
            superheat >= 0.0,
            p.thermal_capacity_mj_per_k,
            p.thermal_capacity_mj_per_k + p.freeze_capacity_mj_per_k,
        )
        shell_kw = shell_heat_kw(p, self.ledge_m)
        latent_kj_per_m = p.ledge_density_kg_m3 * p.ledge_latent_kj_per_kg * p.ledge_area_m2

        self.heat_in_mj += float(np.sum(q_kw)) * dt_s * 1e-3
        self.heat_out_mj += float(np.sum(loss_kw + shell_kw)) * dt_s * 1e-3
        self.bath_c = self.bath_c + dt_s * (q_kw - loss_kw - side_kw) / capacity_kj_per_k
        self.ledge_m = np.maximum(self.ledge_m + dt_s * (shell_kw - side_kw) / latent_kj_per_m, 0.0)
        self._control(q_kw, superheat, dt_s)
        self.frozen |= self.bath_c < p.liquidus_c - p.freeze_depth_k

        ce = np.clip(
            p.current_efficiency - CE_LOSS_PER_K * np.maximum(CE_LOW_SUPERHEAT_K - superheat, 0.0),
            0.0,
            1.0,
        )
        al_kg = float(np.sum(np.where(online, FARADAY_KG_PER_KAH * current_ka * ce, 0.0)))
        line_v = float(np.sum(v))
        return LineStep(
            current_ka=current_ka,
            voltage_v=line_v,
            power_mw=current_ka * line_v * 1e-3,
            heat_mw=float(np.sum(q_kw)) * 1e-3,
            aluminium_kg=al_kg * dt_s / 3600.0,
            pots_online=int(np.count_nonzero(~self.frozen)),
            mean_bath_temp_c=float(np.mean(self.bath_c)),
            mean_ledge_cm=float(np.mean(self.ledge_m)) * 100.0,
        )

    def _control(self, q_kw: FloatArray, superheat: FloatArray, dt_s: float) -> None:
        """The plant's own loops: pot resistance control and shell heat exchangers."""
        p = self.p
        # Resistance control, integral with a slew limit: raise the voltage (more heat) while
        # the pot runs cold or its ledge is thick, lower it while hot or the ledge is thin.
        ledge_err_cm = (self.ledge_m * 100.0) - p.ledge_target_cm
        error = (p.superheat_target_k - superheat) + ledge_err_cm
        max_dv = p.resistance_slew_v_per_h * dt_s / 3600.0
        self.delta_v = np.clip(
            self.delta_v + np.clip(0.2 * max_dv * error, -max_dv, max_dv),
            -p.resistance_control_v,
            p.resistance_control_v,
        )
        if not p.heat_exchangers:
            return
        # Exchangers follow heat generation (feed-forward) with a superheat trim (feedback).
        span_kw = p.hx_range_frac * self.q_nominal_kw
        # The feed-forward is the heat change due to line current alone, so that it does not
        # undo what the pots' resistance control is doing.
        i_n = self.spec.nominal_current_ka
        q_at_nominal_kw = heat_kw(
            p, i_n, pot_voltage_v(p, i_n, self.resistance_uohm) + self.delta_v
        )
        online = ~self.frozen
        want_kw = np.clip(
            np.where(online, q_kw - q_at_nominal_kw, -span_kw)
            + HX_FEEDBACK_KW_PER_K * (superheat - p.superheat_target_k),
            -span_kw,
            span_kw,
        )
        alpha = 1.0 - np.exp(-dt_s / (p.hx_time_constant_h * 3600.0))
        self.hx_kw = self.hx_kw + alpha * (want_kw - self.hx_kw)

    # --- observations ----------------------------------------------------------------------

    def stored_energy_mj(self) -> float:
        """Heat content of the line relative to liquid at the liquidus with no ledge [MJ]:
        Σ C(T)·(T − T_liq) − ρ·L_f·A·s.  Its change closes the balance with heat in and out."""
        p = self.p
        superheat = self.bath_c - p.liquidus_c
        capacity = np.where(
            superheat >= 0.0,
            p.thermal_capacity_mj_per_k,
            p.thermal_capacity_mj_per_k + p.freeze_capacity_mj_per_k,
        )
        latent_mj_per_m = p.ledge_density_kg_m3 * p.ledge_latent_kj_per_kg * p.ledge_area_m2 * 1e-3
        return float(np.sum(capacity * superheat) - latent_mj_per_m * np.sum(self.ledge_m))

    @property
    def superheat_k(self) -> FloatArray:
        return self.bath_c - self.p.liquidus_c

    @property
    def pots_online(self) -> int:
        return int(np.count_nonzero(~self.frozen))
