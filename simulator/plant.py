"""The whole simulated site: pot-lines, renewables, BESS, captive unit and grid, one step at a time.

Each step (``step_s`` of plant time) the plant:

1. takes each asset's effective setpoint from its protection guard (or the safe default);
2. balances the site: renewables first, then BESS and captive unit as set, then the grid
   within its import/export limits.  Surplus that cannot be exported is curtailed.  Islanded,
   the captive unit follows the island's net load within its limits and ramp rate (frequency
   control); what it cannot cover drops the frequency and the plant sheds pot-line current,
   what it cannot back off raises the frequency — visible in telemetry and alarms, never hidden;
3. advances the pot-line physics at the (possibly shed) line current;
4. adds the step to the KPI totals (:class:`simulator.kpi.KpiAccumulator`).
"""

from __future__ import annotations

import logging
import math

import msgspec
import numpy as np

from simulator.assets import Bess, Captive, import_price_per_mwh
from simulator.kpi import KpiAccumulator, SiteStep
from simulator.potline import PotLine
from simulator.protection import RejectCounter, SetpointGuard
from simulator.scenario import Scenario
from simulator.weather import SiteWeather
from wire import (
    BessTelemetry,
    CaptiveTelemetry,
    GridTelemetry,
    PayloadError,
    PlantAlarm,
    PotlineSetpoint,
    PotlineTelemetry,
    PotVoltages,
    PowerSetpoint,
    RenewableTelemetry,
    Topics,
    WeatherForecast,
    decode,
)

log = logging.getLogger(__name__)

NOMINAL_FREQUENCY_HZ = 50.0
ISLAND_STIFFNESS_FRAC_PER_HZ = 0.04
"""Island frequency response: an imbalance of 4 % of the site load moves frequency by 1 Hz
(a primary-control droop of the order of a small coal-fired island)."""
UFLS_MAX_DIP_HZ = 2.0
"""Under-frequency load shedding (and over-frequency tripping) keeps the island within ±2 Hz:
deeper imbalances are resolved by shedding, so the reported nadir saturates there."""
ISLAND_BUS = "bus"


class Plant:
    """A simulated site.  Pure: plant time only, no wall clock, no I/O."""

    def __init__(
        self,
        scenario: Scenario,
        seed: int,
        *,
        step_s: float = 60.0,
        topics: Topics | None = None,
    ) -> None:
        if not 0.0 < step_s <= 600.0:
            raise ValueError(f"step_s must be in (0, 600], got {step_s}")
        self.scenario = scenario
        self.seed = seed
        self.step_s = step_s
        self.topics = topics or Topics()
        self.now_s = scenario.start
        self.weather = SiteWeather(scenario, seed, step_s=step_s)
        self.forecast_interval_s = scenario.weather.forecast_interval_h * 3600.0
        self.lines = [
            PotLine(spec, np.random.default_rng([seed, 1000 + i]))
            for i, spec in enumerate(scenario.potline)
        ]
        self.bess = [Bess(spec) for spec in scenario.bess]
        self.captive = [Captive(spec) for spec in scenario.captive]
        watchdog_s = scenario.protection.watchdog_s
        self.line_guards = {
            s.name: SetpointGuard(
                s.name, s.min_current_ka, s.max_current_ka, s.nominal_current_ka, watchdog_s
            )
            for s in scenario.potline
        }
        self.bess_guards = {
            s.name: SetpointGuard(s.name, -s.power_mw, s.power_mw, 0.0, watchdog_s)
            for s in scenario.bess
        }
        self.captive_guards = {
            s.name: SetpointGuard(s.name, s.min_stable_mw, s.max_mw, None, watchdog_s)
            for s in scenario.captive
        }
        self.rejects = RejectCounter()
        self.kpi = KpiAccumulator(scenario)
        self._alarms: list[PlantAlarm] = []
        self._renewable_used_frac = 1.0
        self._grid_mw = 0.0
        self._frequency_hz = NOMINAL_FREQUENCY_HZ
        self._shed_mw = 0.0
        self._frozen_seen = [0 for _ in self.lines]
        self._line_current_override: dict[str, float] = {}
        self._reserve_mw = 0.0
        self._response_mw = 0.0

    @property
    def rejected(self) -> dict[str, int]:
        return self.rejects.counts

    # --- commands ----------------------------------------------------------------------------

    def receive(self, topic: str, data: bytes) -> None:
        """A raw command message from the controller.  Never raises."""
        parsed = self.topics.parse(topic)
        guards = {
            "potline_setpoint": self.line_guards,
            "bess_setpoint": self.bess_guards,
            "captive_setpoint": self.captive_guards,
        }
        if parsed is None or parsed.kind not in guards or parsed.asset not in guards[parsed.kind]:
            self.rejects.reject("unknown_topic", topic[:200])
            return
        try:
            if parsed.kind == "potline_setpoint":
                sp = decode(parsed.kind, data, PotlineSetpoint)
                value, until = sp.current_ka, sp.valid_until
            else:
                psp = decode(parsed.kind, data, PowerSetpoint)
                value, until = psp.power_mw, psp.valid_until
        except PayloadError as exc:
            self.rejects.reject(exc.kind, f"{topic}: {exc.reason}")
            return
        guards[parsed.kind][parsed.asset].apply(self.now_s, value, until)

    def set_line_current(self, line: str, current_ka: float) -> None:
        """Force a line's current regardless of setpoints (offline runs: ``--current-frac`` and
        outages).  ``current_ka`` 0 is a full outage.  Clear with :meth:`clear_line_current`."""
        self._line_current_override[line] = current_ka

    def clear_line_current(self, line: str) -> None:
        self._line_current_override.pop(line, None)

    # --- physics -----------------------------------------------------------------------------

    def step(self) -> SiteStep:
        """Advance the plant by ``step_s``."""
        dt = self.step_s
        now = self.now_s
        sc = self.scenario
        currents = [
            self._line_current_override.get(
                line.spec.name, self.line_guards[line.spec.name].effective(now, line.current_ka)
            )
            for line in self.lines
        ]
        line_mw = [
            self._line_power_mw(line, i) for line, i in zip(self.lines, currents, strict=True)
        ]
        bess_mw = [
            b.feasible_mw(self.bess_guards[b.spec.name].effective(now, 0.0), dt) for b in self.bess
        ]
        renew_mw = {r.name: self.weather.available_mw(r.name, now) for r in sc.renewable}
        available_mw = sum(renew_mw.values())
        charge_mw = -sum(min(p, 0.0) for p in bess_mw)
        bess_out_mw = sum(max(p, 0.0) for p in bess_mw)
        # Islanded, the BESS also gives fast frequency response beyond its setpoint.
        headroom_mw = [
            b.feasible_mw(b.spec.power_mw, dt) - p for b, p in zip(self.bess, bess_mw, strict=True)
        ]
        self._reserve_mw = sum(headroom_mw) if sc.islanded else 0.0

        # Shedding is decided on the load the lines are about to draw ...
        planned_mw = sum(line_mw) + sc.auxiliary_load_mw + charge_mw
        _, _, _, shed_mw, surplus_mw = self._settle(planned_mw, available_mw, bess_out_mw, dt)
        self._frequency_hz = self._frequency(shed_mw - surplus_mw, planned_mw)
        if shed_mw > 1e-6:
            currents = self._shed(currents, line_mw, shed_mw)
        self._shed_mw = shed_mw

        results = [line.step(i, dt) for line, i in zip(self.lines, currents, strict=True)]
        self._check_freezing(now)

        # ... and the site balances on what they really drew (anode effects, control trims).
        load_mw = sum(r.power_mw for r in results) + sc.auxiliary_load_mw + charge_mw
        captive_mw, grid_mw, curtailed_mw, unserved_mw, surplus_mw = self._settle(
            load_mw, available_mw, bess_out_mw, dt
        )
        for c, p in zip(self.captive, captive_mw, strict=True):
            c.power_mw = p
        response_mw = self._response_mw
        total_headroom = sum(headroom_mw)
        for k, (b, p) in enumerate(zip(self.bess, bess_mw, strict=True)):
            share = headroom_mw[k] / total_headroom if total_headroom > 0 else 0.0
            bess_mw[k] = p + response_mw * share
            b.step(bess_mw[k], dt)

        exported_mw = max(-grid_mw, 0.0)
        used_mw = max(available_mw - curtailed_mw - exported_mw, 0.0)
        self._renewable_used_frac = (
            (available_mw - curtailed_mw) / available_mw if available_mw > 0 else 1.0
        )
        self._grid_mw = grid_mw
        price = import_price_per_mwh(sc.grid, now, sc.utc_offset_h) if sc.grid else 0.0
        site = SiteStep(
            t_s=now,
            dt_s=dt,
            lines=results,
            renewable_available_mw=available_mw,
            renewable_used_mw=used_mw,
            curtailed_mw=curtailed_mw,
            grid_import_mw=max(grid_mw, 0.0),
            grid_export_mw=exported_mw,
            captive_mw=sum(captive_mw),
            captive_co2_t_per_h=sum(
                p * c.spec.co2_t_per_mwh for p, c in zip(captive_mw, self.captive, strict=True)
            ),
            captive_cost_per_h=sum(
                p * c.spec.fuel_cost_per_mwh for p, c in zip(captive_mw, self.captive, strict=True)
            ),
            bess_mw=sum(bess_mw),
            load_mw=load_mw - charge_mw - sum(min(p, 0.0) for p in bess_mw),
            import_price_per_mwh=price,
            shed_mw=shed_mw,
            unserved_mw=unserved_mw,
            overgeneration_mw=surplus_mw,
            frequency_hz=self._frequency_hz,
        )
        self.kpi.add(site, self.lines)
        self.now_s = now + dt
        return site

    def _line_power_mw(self, line: PotLine, current_ka: float) -> float:
        """Power the line will draw at ``current_ka`` with its pots' present resistances."""
        p = line.p
        online = ~line.frozen
        v = p.e0_v + line.resistance_uohm[online] * 1e-3 * current_ka + line.delta_v[online]
        return float(current_ka * np.sum(v)) * 1e-3

    def _captive_setpoints_mw(self, dt_s: float) -> list[float]:
        return [
            c.reachable_mw(self.captive_guards[c.spec.name].effective(self.now_s, c.power_mw), dt_s)
            for c in self.captive
        ]

    def _settle(
        self, load_mw: float, available_mw: float, bess_out_mw: float, dt_s: float
    ) -> tuple[list[float], float, float, float, float]:
        """Balance a site load: (captive, grid (+ import), curtailed, short, over-generation).
        Pure: called on the planned load to decide shedding, then on the load drawn."""
        if self.scenario.islanded:
            captive_mw, curtailed, short, surplus = self._balance_island(
                load_mw, available_mw, bess_out_mw, dt_s
            )
            return captive_mw, 0.0, curtailed, short, surplus
        captive_mw = self._captive_setpoints_mw(dt_s)
        net_mw = load_mw - available_mw - bess_out_mw - sum(captive_mw)
        grid_mw, curtailed, short, surplus = self._balance_grid(net_mw, available_mw)
        return captive_mw, grid_mw, curtailed, short, surplus

    def _balance_grid(
        self, net_mw: float, available_mw: float
    ) -> tuple[float, float, float, float]:
        """Grid takes the net load within its limits; returns (grid, curtailed, short, surplus)."""
        grid = self.scenario.grid
        assert grid is not None
        if net_mw >= 0.0:
            imported = min(net_mw, grid.import_limit_mw)
            return imported, 0.0, net_mw - imported, 0.0
        surplus = -net_mw
        exported = min(surplus, grid.export_limit_mw)
        curtailed = min(surplus - exported, available_mw)
        return -exported, curtailed, 0.0, surplus - exported - curtailed

    def _balance_island(
        self, load_mw: float, available_mw: float, bess_out_mw: float, dt_s: float
    ) -> tuple[list[float], float, float, float]:
        """Captive units follow the net load within limits and ramps (frequency control);
        returns (captive outputs, curtailed, short, surplus)."""
        residual = load_mw - available_mw - bess_out_mw
        total_max = sum(c.spec.max_mw for c in self.captive) or 1.0
        captive_mw = [
            c.reachable_mw(residual * c.spec.max_mw / total_max, dt_s) for c in self.captive
        ]
        gap = residual - sum(captive_mw)
        self._response_mw = min(max(gap, 0.0), self._reserve_mw)
        gap -= self._response_mw
        if gap > 0.0:
            return captive_mw, 0.0, gap, 0.0
        curtailed = min(-gap, available_mw)
        return captive_mw, curtailed, 0.0, -gap - curtailed

    def _frequency(self, imbalance_mw: float, load_mw: float) -> float:
        if not self.scenario.islanded:
            return NOMINAL_FREQUENCY_HZ
        stiffness_mw_per_hz = max(ISLAND_STIFFNESS_FRAC_PER_HZ * load_mw, 1.0)
        deviation_hz = -imbalance_mw / stiffness_mw_per_hz
        return NOMINAL_FREQUENCY_HZ + min(max(deviation_hz, -UFLS_MAX_DIP_HZ), UFLS_MAX_DIP_HZ)

    def _shed(self, currents: list[float], line_mw: list[float], deficit_mw: float) -> list[float]:
        """Under-frequency load shedding: cut pot-line current so the lines drop ``deficit_mw``."""
        total = sum(line_mw)
        shed = []
        for line, i_ka, p_mw in zip(self.lines, currents, line_mw, strict=True):
            target_mw = max(p_mw - deficit_mw * (p_mw / total if total > 0 else 0.0), 0.0)
            shed.append(self._current_for_power(line, target_mw))
            if target_mw < p_mw - 1e-6:
                self._alarms.append(
                    PlantAlarm(
                        ts=self.now_s,
                        asset=line.spec.name,
                        code="load_shed",
                        message=f"island short of {deficit_mw:.1f} MW at "
                        f"{self._frequency_hz:.2f} Hz: current cut from {i_ka:.1f} kA",
                    )
                )
        return shed

    def _current_for_power(self, line: PotLine, power_mw: float) -> float:
        """Solve P = I·Σ(E0 + ΔV) + I²·ΣR for I [kA] (positive root)."""
        online = ~line.frozen
        a = float(np.sum(line.resistance_uohm[online])) * 1e-3  # V per kA, summed
        b = float(np.sum(line.p.e0_v + line.delta_v[online]))
        if a <= 0.0:
            return 0.0
        return (-b + math.sqrt(b * b + 4.0 * a * power_mw * 1e3)) / (2.0 * a)

    def _check_freezing(self, now_s: float) -> None:
        for k, line in enumerate(self.lines):
            frozen = int(np.count_nonzero(line.frozen))
            if frozen > self._frozen_seen[k]:
                self._alarms.append(
                    PlantAlarm(
                        ts=now_s,
                        asset=line.spec.name,
                        code="pots_frozen",
                        message=f"{frozen - self._frozen_seen[k]} more pot(s) frozen and cut out; "
                        f"{frozen} frozen in all",
                    )
                )
                self._frozen_seen[k] = frozen

    # --- observations --------------------------------------------------------------------------

    def telemetry(self) -> list[tuple[str, msgspec.Struct]]:
        """Every telemetry topic of the contract at plant time ``now_s``."""
        t = self.topics
        now = self.now_s
        out: list[tuple[str, msgspec.Struct]] = []
        for line in self.lines:
            line_v = float(np.sum(line.voltage_v))
            out.append(
                (
                    t.potline(line.spec.name),
                    PotlineTelemetry(
                        ts=now,
                        current_ka=round(line.current_ka, 4),
                        voltage_v=round(line_v, 3),
                        power_mw=round(line.current_ka * line_v * 1e-3, 4),
                        pots_online=line.pots_online,
                    ),
                )
            )
            out.append(
                (
                    t.pots(line.spec.name),
                    PotVoltages(ts=now, voltage_v=[round(float(v), 4) for v in line.voltage_v]),
                )
            )
        if self.scenario.grid is not None:
            out.append(
                (
                    t.grid(self.scenario.grid.name),
                    GridTelemetry(
                        ts=now, power_mw=round(self._grid_mw, 4), frequency_hz=self._frequency_hz
                    ),
                )
            )
        else:
            out.append(
                (
                    t.grid(ISLAND_BUS),
                    GridTelemetry(
                        ts=now,
                        power_mw=0.0,
                        frequency_hz=round(self._frequency_hz, 4),
                        shed_mw=round(self._shed_mw, 4),
                    ),
                )
            )
        for r in self.scenario.renewable:
            avail = self.weather.available_mw(r.name, now)
            meas = self.weather.measurement(r.name, now)
            out.append(
                (
                    t.renewable(r.name),
                    RenewableTelemetry(
                        ts=now,
                        kind=r.kind,
                        power_mw=round(avail * self._renewable_used_frac, 4),
                        available_mw=round(avail, 4),
                        capacity_mw=r.capacity_mw,
                        **{k: round(v, 3) for k, v in meas.items()},
                    ),
                )
            )
        for b in self.bess:
            out.append(
                (
                    t.bess(b.spec.name),
                    BessTelemetry(
                        ts=now,
                        power_mw=round(b.power_mw, 4),
                        soc_frac=round(b.soc_frac, 6),
                        energy_capacity_mwh=b.spec.energy_mwh,
                    ),
                )
            )
        for c in self.captive:
            out.append(
                (
                    t.captive(c.spec.name),
                    CaptiveTelemetry(
                        ts=now,
                        power_mw=round(c.power_mw, 4),
                        min_stable_mw=c.spec.min_stable_mw,
                        max_mw=c.spec.max_mw,
                    ),
                )
            )
        return out

    def weather_forecast(self) -> tuple[str, WeatherForecast]:
        return self.topics.weather(self.scenario.site), self.weather.forecast(self.now_s)

    def drain_alarms(self) -> list[tuple[str, PlantAlarm]]:
        """Plant-protection alarms raised since the last call."""
        alarms = self._alarms
        self._alarms = []
        for guards in (self.line_guards, self.bess_guards, self.captive_guards):
            for g in guards.values():
                alarms.extend(g.alarms)
                g.alarms = []
        alarms.sort(key=lambda a: a.ts)
        return [(self.topics.alarm(), a) for a in alarms]
