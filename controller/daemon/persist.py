"""The plan on the wire and the state file that lets the daemon restart without harm.

:func:`plan_message` turns a :class:`~controller.planner.types.Schedule` into the retained
``smelter/controller/plan`` payload.  :class:`SavedState` is what survives a restart: each
line's heat budget, exchanger lag, production today and band usage, the operator's mode, the
last setpoints and the last plan.  :func:`save` writes it atomically (temporary file, fsync,
rename), so a crash mid-write leaves the previous file whole; :func:`load` says why a file
cannot be used instead of raising.  The renewable forecasters' learning is kept beside it
(:func:`save_forecasters`, :func:`load_forecasters`), so a restart does not forecast cold.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import msgspec
import numpy as np

from controller.planner.types import FloatArray, Schedule
from controller.site import SiteModel
from controller.state import LineSnapshot
from controller.supply import SupplyForecaster
from wire import ModeCommand, PlanMessage

STATE_VERSION: Final = 1


def _series(values: FloatArray) -> list[float]:
    # four decimals: 0.1 A, 0.1 kW, 1e-4 of SOC — finer than any meter, and half the bytes
    return [round(float(v), 4) for v in np.nan_to_num(np.asarray(values, dtype=float))]


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


@dataclass(frozen=True)
class Loaded:
    """A state file read: the state, or None with the reason (None and "" when there is none)."""

    state: SavedState | None
    problem: str = ""


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(SavedState)


def save(path: Path, state: SavedState) -> None:
    """Write ``state`` to ``path`` atomically: readers see the old file or the new, never half."""
    write_atomic(path, _encoder.encode(state))


def write_atomic(path: Path, data: bytes) -> None:
    """Temporary file (readable by the owner only), fsync, rename, fsync of the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def forecasters_path(state_path: Path) -> Path:
    """Where the forecasters are kept: beside the state file (``state.json.forecasters``)."""
    return state_path.with_name(f"{state_path.name}.forecasters")


def save_forecasters(path: Path, data: bytes) -> None:
    """Write :meth:`SupplyForecaster.dumps` bytes atomically, readable by the owner only."""
    write_atomic(path, data)


@dataclass(frozen=True)
class LoadedForecasters:
    """The forecasters read and the plant time they were saved at, or None with the reason."""

    supply: SupplyForecaster | None
    saved_ts: float = 0.0
    problem: str = ""


def load_forecasters(path: Path, site: SiteModel) -> LoadedForecasters:
    """Read the forecasters kept by :func:`save_forecasters`.

    The file is a pickle, which runs code as it loads: it is read only if this user owns it
    and nobody else may write it (or its directory).  A file that cannot be used is moved
    aside (``.unreadable-<time>``)."""
    try:
        st = path.stat()
        parent = path.parent.stat()
    except FileNotFoundError:
        return LoadedForecasters(None)
    except OSError as exc:
        return LoadedForecasters(None, problem=f"forecasters {path} unreadable: {exc.strerror}")
    uid = os.getuid()
    if st.st_uid != uid or st.st_mode & 0o022 or parent.st_mode & 0o002:
        return LoadedForecasters(
            None,
            problem=f"forecasters {path} not loaded: it (or its directory) can be written by "
            "another user, and the file is a pickle, which runs code as it loads",
        )
    try:
        supply, saved_ts = SupplyForecaster.loads(site, path.read_bytes())
    except (OSError, ValueError) as exc:
        aside = path.with_name(f"{path.name}.unreadable-{int(time.time())}")
        try:
            os.replace(path, aside)
        except OSError:
            aside = path
        return LoadedForecasters(
            None, problem=f"forecasters {path} unusable ({str(exc)[:200]}); kept as {aside}"
        )
    return LoadedForecasters(supply, saved_ts)


def load(path: Path) -> Loaded:
    """Read the state file.  A file that cannot be used is moved aside (``.unreadable-<time>``)
    so that it can be inspected and is not retried at every start."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return Loaded(None)
    except OSError as exc:
        return Loaded(None, f"state file {path} unreadable: {exc.strerror}")
    try:
        state = _decoder.decode(data)
        if state.version != STATE_VERSION:
            raise ValueError(f"version {state.version}, expected {STATE_VERSION}")
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
        aside = path.with_name(f"{path.name}.unreadable-{int(time.time())}")
        try:
            os.replace(path, aside)
        except OSError:
            aside = path
        return Loaded(None, f"state file {path} unreadable ({str(exc)[:200]}); kept as {aside}")
    return Loaded(state)
