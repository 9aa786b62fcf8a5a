"""The safety layer between a plan and the plant: hard limits, ramp limits, expiry, fallback.

Every setpoint the controller sends goes through :class:`SafetyLayer`, in the daemon and in
the in-process backtest alike.  It is pure: no I/O and no clock; time is passed in as plant
time ``now_s`` [s].  For each target it

1. refuses NaN/inf and holds the last known value instead (the safe value when none is known),
2. clamps to the asset's hard limits ``[lower, upper]``,
3. limits the change from the last applied value to ``ramp_per_h · Δt / 3600``,
4. clamps again, so that the result is within the hard limits even when the ramp reference is
   not (an observed value outside them, or limits tightened since),

and stamps each payload with ``valid_until = now_s + validity_s`` so that the plant's own
protection returns the asset to its safe default if the controller goes silent (DESIGN §3).
Hard limits win over ramp limits: a plant outside its limits is brought back in one step.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from controller.planner.types import Schedule
from controller.site import SiteModel
from wire import PotlineSetpoint, PowerSetpoint, Source, Topics

AssetKind = Literal["potline", "bess", "captive"]
EventCode = Literal["clamped", "ramp_limited", "refused_nan", "unknown_asset"]
Key = tuple[str, str]
Command = tuple[str, PotlineSetpoint | PowerSetpoint]


@dataclass(frozen=True)
class AssetLimits:
    """What the safety layer enforces for one asset, in the asset's unit (kA or MW).

    ``ramp_per_h`` is the largest change per hour (None: unlimited).  ``safe_value`` is where
    the asset goes on fallback; None means hold the last applied value (a coal unit must not be
    thrown to some fixed output).
    """

    kind: AssetKind
    asset: str
    lower: float
    upper: float
    ramp_per_h: float | None
    safe_value: float | None


def limits_for(site: SiteModel) -> dict[Key, AssetLimits]:
    """The hard limits, ramp limits and safe values of every controllable asset of ``site``.

    Pot-lines: hard limits and ramp from :class:`~controller.site.LineModel`, safe value the
    nominal current.  BESS: ±rated power, no ramp limit (power electronics), safe value idle.
    Captive units: [min stable, max] output and their ramp rate; on fallback they hold.
    """
    out: dict[Key, AssetLimits] = {}
    for line in site.lines:
        out["potline", line.name] = AssetLimits(
            "potline",
            line.name,
            line.hard_min_ka,
            line.hard_max_ka,
            line.ramp_ka_per_h,
            line.nominal_current_ka,
        )
    for b in site.bess:
        out["bess", b.name] = AssetLimits("bess", b.name, -b.power_mw, b.power_mw, None, 0.0)
    for c in site.captive:
        out["captive", c.name] = AssetLimits(
            "captive", c.name, c.min_mw, c.max_mw, c.ramp_mw_per_h, None
        )
    return out


@dataclass(frozen=True)
class SafetyEvent:
    """Something the safety layer changed or refused.  ``applied`` is NaN when nothing was sent."""

    kind: str
    asset: str
    code: EventCode
    requested: float
    applied: float


class SafetyLayer:
    """Turns targets into setpoint payloads that respect each asset's limits.

    Parameters
    ----------
    site : SiteModel
        The assets and their limits (see :func:`limits_for`).
    validity_s : float
        How long a setpoint stays valid after it is sent [s]; the caller re-sends (a heartbeat
        is just another :meth:`dispatch`) before it runs out.
    topics : Topics, optional
        Topic builder; the default prefix when None.
    instance : str, optional
        The controller instance that sends the setpoints (their ``instance``; "" says none).

    Attributes
    ----------
    limits : dict
        (kind, asset) → :class:`AssetLimits`.
    events : list of SafetyEvent
        Appended by :meth:`dispatch`; the caller may clear it.
    last_applied : dict
        (kind, asset) → the last value sent [kA or MW].
    """

    def __init__(
        self,
        site: SiteModel,
        *,
        validity_s: float,
        topics: Topics | None = None,
        instance: str = "",
    ) -> None:
        if not (math.isfinite(validity_s) and validity_s > 0.0):
            raise ValueError(f"validity_s must be finite and > 0, not {validity_s}")
        self.limits = limits_for(site)
        for lim in self.limits.values():
            if not (
                math.isfinite(lim.lower) and math.isfinite(lim.upper) and lim.lower <= lim.upper
            ):
                raise ValueError(f"{lim.kind} {lim.asset}: bad limits [{lim.lower}, {lim.upper}]")
        self.validity_s = validity_s
        self.instance = instance
        self.events: list[SafetyEvent] = []
        self.last_applied: dict[Key, float] = {}
        self._applied_at_s: dict[Key, float] = {}
        self._observed: dict[Key, tuple[float, float]] = {}
        t = topics if topics is not None else Topics()
        # Built once here so that an asset name the contract cannot carry fails at start-up,
        # not in the middle of a dispatch.
        build = {
            "potline": t.potline_setpoint,
            "bess": t.bess_setpoint,
            "captive": t.captive_setpoint,
        }
        self._topics = {key: build[lim.kind](lim.asset) for key, lim in self.limits.items()}

    def observe(self, kind: str, asset: str, value: float, t_s: float) -> None:
        """Record a measured value [kA or MW] at ``t_s`` [s]: the first setpoint ramps from it.

        Once something has been applied, the ramp reference is the applied sequence, not the
        measurement: ramping from 1 Hz telemetry would allow a second's worth of change per
        command, and its noise would let consecutive commands differ by more than the ramp.
        """
        if (kind, asset) in self.limits and math.isfinite(value) and math.isfinite(t_s):
            self._observed[kind, asset] = (value, t_s)

    def measured(self) -> dict[Key, float]:
        """The latest measured value of each asset heard from [kA or MW]."""
        return {key: value for key, (value, _) in self._observed.items()}

    def forget_applied(self) -> None:
        """Ramp from the measured values again (after a standby period, in which another
        controller set the plant)."""
        self.last_applied.clear()
        self._applied_at_s.clear()

    def rebase(self, t_s: float) -> None:
        """Take ``t_s`` as the time of every ramp reference: after a clock jump forward, the
        jump must not count as time in which the plant could have ramped."""
        for key in self._applied_at_s:
            self._applied_at_s[key] = t_s
        self._observed = {key: (value, t_s) for key, (value, _) in self._observed.items()}

    def dispatch(
        self, targets: Mapping[Key, float], now_s: float, *, source: Source, plan_id: str
    ) -> list[Command]:
        """Check ``targets`` ((kind, asset) → kA or MW) and return ``(topic, payload)`` pairs."""
        if not math.isfinite(now_s):
            raise ValueError(f"now_s must be finite, not {now_s}")
        out: list[Command] = []
        for key, raw in targets.items():
            kind, asset = key
            requested = float(raw)  # numpy scalars from a schedule; float32 is not a float
            lim = self.limits.get(key)
            if lim is None:
                self.events.append(SafetyEvent(kind, asset, "unknown_asset", requested, math.nan))
                continue
            ref = self._reference(key)
            target = requested
            refused = not math.isfinite(requested)
            if refused:
                # A broken plan must not move the plant: hold what it runs at, else go safe.
                held = ref[0] if ref is not None else lim.safe_value
                if held is None:
                    self.events.append(SafetyEvent(kind, asset, "refused_nan", requested, math.nan))
                    continue
                target = held
            n_events = len(self.events)
            value = self._limit(lim, target, ref, now_s)
            if refused:
                self.events.insert(
                    n_events, SafetyEvent(kind, asset, "refused_nan", requested, value)
                )
            self.last_applied[key] = value
            self._applied_at_s[key] = now_s
            out.append((self._topics[key], self._payload(lim, value, now_s, source, plan_id)))
        return out

    def safe_setpoints(self, now_s: float, *, plan_id: str = "") -> list[Command]:
        """Every asset towards its safe value (captive units hold), ramp-limited, as fallback.

        A captive unit with nothing applied or observed yet is left out: there is no value to
        hold, and the plant holds it anyway.
        """
        targets: dict[Key, float] = {}
        for key, lim in self.limits.items():
            ref = self._reference(key)
            if lim.safe_value is not None:
                targets[key] = lim.safe_value
            elif ref is not None:
                targets[key] = ref[0]
        return self.dispatch(targets, now_s, source=Source.FALLBACK, plan_id=plan_id)

    def from_schedule(self, schedule: Schedule, now_s: float) -> dict[Key, float]:
        """The targets of the schedule's step that contains ``now_s``.

        Before the first step this is step 0; after the last it is the last step (whether a
        plan is too old to follow is the caller's decision).
        """
        n = len(schedule.times_s)
        if n == 0:
            return {}
        k = int(np.searchsorted(schedule.times_s, now_s, side="right")) - 1
        k = min(max(k, 0), n - 1)
        targets: dict[Key, float] = {}
        for kind, series in (
            ("potline", schedule.line_current_ka),
            ("bess", schedule.bess_power_mw),
            ("captive", schedule.captive_mw),
        ):
            for asset, values in series.items():
                targets[kind, asset] = float(values[k])
        return targets

    def _reference(self, key: Key) -> tuple[float, float] | None:
        """The ramp reference (value, time): the last applied value, else the last observed."""
        if key in self.last_applied:
            return self.last_applied[key], self._applied_at_s[key]
        return self._observed.get(key)

    def _limit(
        self, lim: AssetLimits, target: float, ref: tuple[float, float] | None, now_s: float
    ) -> float:
        """Clamp, ramp-limit against ``ref``, clamp again; record an event for each change."""
        clamped = min(max(target, lim.lower), lim.upper)
        if clamped != target:
            self.events.append(SafetyEvent(lim.kind, lim.asset, "clamped", target, clamped))
        value = clamped
        if lim.ramp_per_h is not None and ref is not None:
            ref_value, ref_t_s = ref
            # Time running backwards (a replayed or reordered clock) allows no change at all.
            step = lim.ramp_per_h * max(0.0, now_s - ref_t_s) / 3600.0
            value = min(max(clamped, ref_value - step), ref_value + step)
            if value != clamped:
                self.events.append(SafetyEvent(lim.kind, lim.asset, "ramp_limited", clamped, value))
        final = min(max(value, lim.lower), lim.upper)
        if final != value:
            self.events.append(SafetyEvent(lim.kind, lim.asset, "clamped", value, final))
        return final

    def _payload(
        self, lim: AssetLimits, value: float, now_s: float, source: Source, plan_id: str
    ) -> PotlineSetpoint | PowerSetpoint:
        valid_until = now_s + self.validity_s
        if lim.kind == "potline":
            return PotlineSetpoint(
                ts=now_s,
                current_ka=value,
                valid_until=valid_until,
                plan_id=plan_id,
                source=source,
                instance=self.instance,
            )
        return PowerSetpoint(
            ts=now_s,
            power_mw=value,
            valid_until=valid_until,
            plan_id=plan_id,
            source=source,
            instance=self.instance,
        )
