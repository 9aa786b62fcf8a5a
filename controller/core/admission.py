"""The trust boundary: what a valid message must also be before the core acts on it.

The codec (:mod:`wire.codec`) checks that a message is well formed.  Admission checks that it
belongs to this plant and to this time, against the site description (the asset registry) and
the plant clock (:mod:`.streams`):

- telemetry: a stream of the site, newer than its last message, within the window around plant
  time unless the whole plant jumped (:class:`~controller.core.streams.Streams`);
- operator commands: stamped within ``command_window_s`` of plant time (a command from the far
  future would lock every later one out) and naming only assets of the site; a command that
  fails is refused as a whole and never kept in the state file; the mode kept in the state file
  is held to the same horizon ahead and the same assets once plant time is known;
- weather forecasts: for this site, issued no later than the end of the telemetry window (one
  issued in the far future would evict every real one);
- plant alarms: about an asset of the site.

A refused message is counted under its reject kind (``unknown_asset``, ``out_of_order``,
``bad_ts``) beside the codec's, logged once per kind, and has no effect at all.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.core.clock import PlantClock
from controller.core.streams import DELAY_WALL_S, Check, Streams, Verdict
from controller.site import SiteModel
from wire import ModeCommand, PlantAlarm, WeatherForecast


@dataclass(frozen=True, slots=True)
class Refusal:
    kind: str
    """The reject kind it is counted under."""
    reason: str


class Admission:
    def __init__(
        self,
        site: SiteModel,
        *,
        ts_tolerance_s: float,
        command_window_s: float,
        wall_clock_tolerance_s: float | None = None,
    ) -> None:
        self.site = site
        self.command_window_s = command_window_s
        self.streams = Streams(
            site, tolerance_s=ts_tolerance_s, wall_clock_tolerance_s=wall_clock_tolerance_s
        )
        self.names = frozenset(a for _, a in self.streams.known)
        self._assets = {
            "potline": frozenset(ln.name for ln in site.lines),
            "bess": frozenset(b.name for b in site.bess),
            "captive": frozenset(c.name for c in site.captive),
        }

    def telemetry(
        self,
        kind: str,
        asset: str,
        ts: float,
        wall_s: float,
        utc_s: float | None,
        clock: PlantClock,
    ) -> Check:
        return self.streams.check((kind, asset), ts, wall_s, utc_s, clock)

    def command_horizon_s(self, clock: PlantClock) -> float:
        """How far from plant time an operator command may be stamped [s]: the configured
        window, or the delivery delay a fast plant's clock runs through, if longer."""
        return max(self.command_window_s, DELAY_WALL_S * clock.speed)

    def command(self, command: ModeCommand, clock: PlantClock) -> Refusal | None:
        """Why the operator's ``command`` is refused, or None.  Plant time must be known."""
        assert clock.now_s is not None
        if abs(command.ts - clock.now_s) > self.command_horizon_s(clock):
            off = command.ts - clock.now_s
            return Refusal(Verdict.BAD_TS.value, f"mode command {off:+.0f} s off plant time")
        return self._unknown_assets(command)

    def kept_mode(self, command: ModeCommand, clock: PlantClock) -> Refusal | None:
        """Why the mode in force, kept from before plant time was known (the state file) or
        from before the clock jumped, must be dropped, or None.  Unlike a new command it may be
        old, but not stamped beyond the horizon ahead (it would lock every real command out)
        nor name an asset the site no longer has.  Plant time must be known."""
        assert clock.now_s is not None
        off = command.ts - clock.now_s
        if off > self.command_horizon_s(clock):
            return Refusal(Verdict.BAD_TS.value, f"kept mode stamped {off:+.0f} s ahead")
        return self._unknown_assets(command)

    def _unknown_assets(self, command: ModeCommand) -> Refusal | None:
        for kind, named in (
            ("potline", command.potline_current_ka),
            ("bess", command.bess_power_mw),
            ("captive", command.captive_power_mw),
        ):
            unknown = sorted(set(named) - self._assets[kind])
            if unknown:
                return Refusal(
                    Verdict.UNKNOWN_ASSET.value,
                    f"mode command for {kind} {', '.join(unknown)}, not in the site",
                )
        return None

    def weather(self, site: str, forecast: WeatherForecast, clock: PlantClock) -> Refusal | None:
        if site != self.site.name:
            return Refusal(Verdict.UNKNOWN_ASSET.value, f"weather forecast for site {site}")
        if clock.now_s is not None:
            latest_s = clock.now_s + self.streams.window_s(clock)
            if forecast.issued_ts > latest_s:
                off = forecast.issued_ts - clock.now_s
                return Refusal(Verdict.BAD_TS.value, f"weather forecast issued {off:+.0f} s ahead")
        return None

    def alarm(self, alarm: PlantAlarm) -> Refusal | None:
        if alarm.asset not in self.names:
            return Refusal(Verdict.UNKNOWN_ASSET.value, f"plant alarm about {alarm.asset[:64]}")
        return None
