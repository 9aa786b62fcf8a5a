"""The planner's heat model of a pot-line: exchanger lag and heat budget, as recursions.

ΔQ = Q(I) − Q(I_N) is the line's heat deviation from nominal [MW].  The shell heat exchangers
(when fitted) follow it with a first-order lag, u; what they have not absorbed accumulates in the
ledge and the melt as the heat budget H, which the pots' own control slowly works off::

    u[k+1] = e^(−Δ/τ_hx)·u[k] + (1 − e^(−Δ/τ_hx))·ΔQ[k]
    H[k+1] = e^(−Δ/τ_rec)·H[k] + Δ·(ΔQ[k] − u[k])

The planner keeps |H| ≤ B and brings it back near 0 at each local midnight.  Without
exchangers u stays 0 and every MWh of deviation lands in H.
"""

from __future__ import annotations

from controller.recursion import Recursion, decay
from controller.site import LineModel


def hx_lag(line: LineModel, dt_h: float) -> tuple[Recursion, float]:
    """The exchanger lag recursion for u and its input coefficient on ΔQ."""
    if not line.heat_exchangers:
        return Recursion(f"{line.name}-hx_lag", 1.0), 0.0
    a = decay(dt_h, line.hx_time_constant_h)
    return Recursion(f"{line.name}-hx_lag", a), 1.0 - a


def heat_budget(line: LineModel, dt_h: float) -> Recursion:
    """The heat-budget recursion for H; its inputs are Δ·ΔQ and −Δ·u."""
    return Recursion(f"{line.name}-heat_budget", decay(dt_h, line.heat_recovery_h))
