"""The planner's heat model of a pot-line: exchanger lag and heat budget, as recursions.

ΔQ = Q(I) − Q(I_N) is the line's heat deviation from nominal [MW].  The shell heat exchangers
(when fitted) follow it with a first-order lag, u; what they have not absorbed accumulates in the
ledge and the melt as the heat budget H, which the pots' own control slowly works off::

    du/dt = (ΔQ − u) / τ_hx,    dH/dt = ΔQ − u − H / τ_rec

Over a step of Δ hours with ΔQ held, both are solved exactly (zero-order hold)::

    u[k+1] = a_u·u[k] + (1 − a_u)·ΔQ[k],                 a_u = e^(−Δ/τ_hx)
    H[k+1] = a_H·H[k] + g·(ΔQ[k] − u[k]),                a_H = e^(−Δ/τ_rec)
    g = ∫₀^Δ e^(−(Δ−s)/τ_rec)·e^(−s/τ_hx) ds = (a_u − a_H) / (1/τ_rec − 1/τ_hx)

so that a step of any length gives the same states as many short ones (the planner's grid may
be non-uniform).  g → Δ for short steps.  Without exchangers u stays where it is (a_u = 1) and
every MWh of deviation lands in H.  The planner keeps |H| ≤ B and brings it back near 0 at
each local midnight.
"""

from __future__ import annotations

from typing import overload

import numpy as np

from controller.planner.recursion import FloatArray, Recursion, decay
from controller.site import LineModel


@overload
def hx_lag(line: LineModel, dt_h: float) -> tuple[Recursion, float]: ...
@overload
def hx_lag(line: LineModel, dt_h: FloatArray) -> tuple[Recursion, FloatArray]: ...
def hx_lag(
    line: LineModel, dt_h: float | FloatArray
) -> tuple[Recursion, float] | tuple[Recursion, FloatArray]:
    """The exchanger lag recursion for u and its input coefficient on ΔQ (per step)."""
    if not line.heat_exchangers:
        if isinstance(dt_h, np.ndarray):
            return Recursion(f"{line.name}-hx_lag", np.ones(dt_h.shape)), np.zeros(dt_h.shape)
        return Recursion(f"{line.name}-hx_lag", 1.0), 0.0
    if isinstance(dt_h, np.ndarray):
        a = decay(dt_h, line.hx_time_constant_h)
        return Recursion(f"{line.name}-hx_lag", a), 1.0 - a
    a_step = decay(dt_h, line.hx_time_constant_h)
    return Recursion(f"{line.name}-hx_lag", a_step), 1.0 - a_step


def heat_budget(line: LineModel, dt_h: float | FloatArray) -> Recursion:
    """The heat-budget recursion for H; its inputs are g·ΔQ and −g·u (:func:`heat_gain_h`)."""
    return Recursion(f"{line.name}-heat_budget", decay(dt_h, line.heat_recovery_h))


@overload
def heat_gain_h(line: LineModel, dt_h: float) -> float: ...
@overload
def heat_gain_h(line: LineModel, dt_h: FloatArray) -> FloatArray: ...
def heat_gain_h(line: LineModel, dt_h: float | FloatArray) -> float | FloatArray:
    """g [h]: the exact weight of the step's un-absorbed heat (ΔQ[k] − u[k]) in H[k+1]."""
    dt = np.asarray(dt_h, dtype=float)
    tau_rec = line.heat_recovery_h
    a_h = np.exp(-dt / tau_rec) if tau_rec > 0 else np.zeros(dt.shape)
    if tau_rec <= 0:
        g = np.zeros(dt.shape)
    elif not line.heat_exchangers:
        g = tau_rec * (1.0 - a_h)
    elif line.hx_time_constant_h <= 0:
        g = np.zeros(dt.shape)  # the exchangers follow at once: nothing goes un-absorbed
    else:
        tau_hx = line.hx_time_constant_h
        a_u = np.exp(-dt / tau_hx)
        rate = 1.0 / tau_rec - 1.0 / tau_hx
        g = (
            (a_u - a_h) / rate
            if abs(rate) > 1e-12
            else dt * a_h  # τ_rec = τ_hx: the limit of the expression above
        )
    return float(g) if np.ndim(dt_h) == 0 else np.asarray(g, dtype=np.float64)


def heat_gap_mw(line: LineModel, superheat_k: float | None, t_from_now_h: FloatArray) -> FloatArray:
    """|ΔQ − u| ≤ this [MW] at each step: the calibrated gap, narrowed by the bath's room now.

    ``heat_gap_kw_per_pot`` was calibrated to dip a bath at its superheat target just to the
    safe band's lower edge (LineModel), i.e. to a room of target − edge.  The observer knows how
    much room the bath has now (:class:`controller.thermal.BathObserver`), less ``bath_margin_k``,
    the observer's measured mismatch with the plant; the gap is scaled to that room (to zero when
    none is left) and recovers to the calibrated one as the bath does, with the melt's own time
    constant C_m/(G + hA)::

        gap[k] = gap_N − (gap_N − gap_N·room/room_N)·e^(−t_k/τ_bath),   room ≤ room_N

    Without an estimate (no telemetry yet) the calibrated gap holds throughout."""
    p = line.thermal
    gap_n = line.heat_gap_kw_per_pot * line.pots * 1e-3
    t = np.asarray(t_from_now_h, dtype=float)
    if superheat_k is None or not np.isfinite(superheat_k):
        return np.full(t.shape, gap_n)
    low, high = p.safe_superheat_k
    room_n = min(p.superheat_target_k - low, high - p.superheat_target_k)
    room = min(superheat_k - low, high - superheat_k) - p.bath_margin_k
    frac = min(max(room / room_n, 0.0), 1.0) if room_n > 0.0 else 1.0
    tau_h = p.thermal_capacity_mj_per_k / (p.loss_conductance_kw_per_k + p.ledge_h_a_kw_per_k)
    tau_h /= 3.6  # MJ/(kW/K)·1/K = 1000 s; in hours
    return np.asarray(gap_n - gap_n * (1.0 - frac) * np.exp(-t / tau_h), dtype=np.float64)
