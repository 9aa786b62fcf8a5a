"""The core's records: the plan as the contract's plan payload, and the state that survives a
restart (written and read by :mod:`controller.daemon.persist`)."""

from __future__ import annotations

from typing import Final

import msgspec
import numpy as np

from controller.planner.types import FloatArray, Schedule
from controller.state import LineSnapshot
from wire import ModeCommand, PlanMessage

STATE_VERSION: Final = 1


def _series(values: FloatArray) -> list[float]:
    # four decimals: 0.1 A, 0.1 kW, 1e-4 of SOC — finer than any meter, and half the bytes
    rounded: list[float] = np.round(np.nan_to_num(np.asarray(values, dtype=float)), 4).tolist()
    return rounded


def plan_message(schedule: Schedule) -> PlanMessage:
    """The whole plan as the contract's plan payload (``ts`` = the plan's first step)."""
    fc = schedule.forecast
    times = [float(t) for t in schedule.times_s]
    return PlanMessage(
        ts=times[0] if times else 0.0,
        plan_id=schedule.plan_id,
        status=schedule.status.value,
        reason=schedule.reason[:1000],
        step_s=schedule.step_s,
        times=times,
        step_lengths_s=(
            [] if schedule.step_lengths_s is None else [float(v) for v in schedule.step_lengths_s]
        ),
        line_current_ka={k: _series(v) for k, v in schedule.line_current_ka.items()},
        bess_power_mw={k: _series(v) for k, v in schedule.bess_power_mw.items()},
        bess_soc_frac={k: _series(v) for k, v in schedule.bess_soc_frac.items()},
        captive_mw={k: _series(v) for k, v in schedule.captive_mw.items()},
        heat_budget_mwh={k: _series(v) for k, v in schedule.heat_budget_mwh.items()},
        grid_mw=_series(schedule.grid_mw),
        renewable_used_mw=_series(schedule.renewable_used_mw),
        curtailed_mw=_series(schedule.curtailed_mw),
        forecast_p10_mw=_series(fc.p10_mw),
        forecast_p50_mw=_series(fc.p50_mw),
        forecast_p90_mw=_series(fc.p90_mw),
        bent={k[:64]: float(v) for k, v in schedule.bent.items()},
        solve_ms=max(schedule.solve_ms, 0.0),
    )


class SavedState(msgspec.Struct, frozen=True, kw_only=True):
    """What the daemon keeps across a restart."""

    version: int = STATE_VERSION
    saved_ts: float
    """Plant time of the save [s]."""
    saved_wall_s: float
    lines: dict[str, LineSnapshot]
    mode: ModeCommand | None = None
    applied: dict[str, float] = msgspec.field(default_factory=dict)
    """"kind/asset" → the last setpoint sent [kA or MW]."""
    applied_valid_until_s: float = 0.0
    plan: PlanMessage | None = None
