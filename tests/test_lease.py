"""The controller lease's protocol without a broker: instances on a simulated bus that delivers
every lease message to every instance in one order (as a broker does), after a delay.

Time is each instance's own clock, passed in; so every case is exact.  The same protocol
between real processes through Mosquitto is in tests/test_daemon_lease.py.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

import msgspec
import pytest

from controller.config import ControllerSection
from controller.daemon.lease import FENCE_FRAC, SETTLE_FRAC, Lease, Role
from wire import ControllerLease

TTL_S = 3.0
STEP_S = 0.05


@dataclass
class Bus:
    """A broker: one order for all lease messages, delivered to every connected instance
    ``delay_s`` after they were published; the latest is retained."""

    delay_s: float = 0.01
    instances: list[Lease] = field(default_factory=list)
    in_flight: list[tuple[float, ControllerLease]] = field(default_factory=list)
    retained: ControllerLease | None = None
    log: list[ControllerLease] = field(default_factory=list)
    """Every lease message in the broker's order."""
    cut_off: set[str] = field(default_factory=set)
    """Instances whose messages the broker no longer gets (and which hear nothing)."""
    frozen: dict[str, list[ControllerLease]] = field(default_factory=dict)
    """Instances whose loop is stalled: no ticks; what they are sent waits for them."""
    deaf: set[str] = field(default_factory=set)
    """Instances that have not heard the plant since they connected: they may not claim."""

    def join(self, lease: Lease, now_s: float) -> None:
        if all(i is not lease for i in self.instances):
            self.instances.append(lease)
        lease.connected(now_s)
        if self.retained is not None:
            lease.heard(self.retained, now_s, retained=True)

    def leave(self, name: str) -> None:
        self.instances = [i for i in self.instances if i.instance != name]

    def step(self, now_s: float) -> None:
        for lease in self.instances:
            if lease.instance in self.cut_off or lease.instance in self.frozen:
                continue
            message = lease.tick(now_s, 0.0, may_claim=lease.instance not in self.deaf)
            if message is not None:
                self.in_flight.append((now_s + self.delay_s, message))
        due = [m for t, m in self.in_flight if t <= now_s]
        self.in_flight = [(t, m) for t, m in self.in_flight if t > now_s]
        for message in due:
            self.log.append(message)
            self.retained = message
            for lease in self.instances:
                if lease.instance in self.frozen:
                    self.frozen[lease.instance].append(message)
                elif lease.instance not in self.cut_off:
                    lease.heard(message, now_s, retained=False)

    def thaw(self, name: str, now_s: float) -> None:
        """The stalled loop turns again: a tick first, then the backlog, in order."""
        backlog = self.frozen.pop(name)
        lease = next(i for i in self.instances if i.instance == name)
        message = lease.tick(now_s, 0.0)
        if message is not None:
            self.in_flight.append((now_s + self.delay_s, message))
        for heard in backlog:
            lease.heard(heard, now_s, retained=False)

    def run(self, start_s: float, end_s: float) -> list[tuple[float, set[str]]]:
        """Step from ``start_s`` to ``end_s``; who was active at each step."""
        out = []
        t = start_s
        while t < end_s - 1e-9:
            self.step(t)
            out.append((t, {lease.instance for lease in self.instances if lease.active(t)}))
            t = round(t + STEP_S, 9)
        return out


def _first_active(timeline: list[tuple[float, set[str]]], name: str) -> float:
    return next(t for t, active in timeline if name in active)


def test_a_lone_instance_waits_a_ttl_then_claims_and_holds_the_lease() -> None:
    bus = Bus()
    a = Lease("a", TTL_S)
    bus.join(a, 0.0)
    assert a.role == Role.LISTENING and not a.active(0.0)
    timeline = bus.run(0.0, 20.0)
    took_s = _first_active(timeline, "a")
    # a ttl of listening, a third of one to settle
    assert TTL_S <= took_s <= TTL_S * (1 + SETTLE_FRAC) + 0.2
    assert all(active == {"a"} for t, active in timeline if t >= took_s)
    # renewed every third of the ttl: seq climbs, and always a's
    renewals = [m for m in bus.log if m.instance == "a"]
    assert len(renewals) >= (20.0 - took_s) / (TTL_S / 3) - 1
    assert [m.seq for m in bus.log] == list(range(1, len(bus.log) + 1))


def test_a_second_instance_stays_standby_while_the_first_renews() -> None:
    bus = Bus()
    a, b = Lease("a", TTL_S), Lease("b", TTL_S)
    bus.join(a, 0.0)
    bus.run(0.0, 6.0)
    bus.join(b, 6.0)  # it finds a's retained lease
    timeline = bus.run(6.0, 60.0)
    assert all(active == {"a"} for _, active in timeline)
    assert b.role == Role.FOLLOWING and b.holder == "a"
    assert b.reason == "instance a is the active controller"


def test_a_standby_takes_over_within_four_thirds_of_a_ttl_when_the_holder_goes_silent() -> None:
    bus = Bus()
    a, b = Lease("a", TTL_S), Lease("b", TTL_S)
    bus.join(a, 0.0)
    bus.run(0.0, 6.0)
    bus.join(b, 6.0)
    bus.run(6.0, 10.0)
    bus.cut_off.add("a")  # a hangs, or is cut off: it renews no more
    last_renewal_s = 10.0 - STEP_S
    timeline = bus.run(10.0, 20.0)
    took_s = _first_active(timeline, "b")
    assert took_s <= last_renewal_s + TTL_S * (1 + SETTLE_FRAC) + 0.2
    # a stopped commanding on its own clock before b started: never both
    assert not a.active(last_renewal_s + TTL_S * FENCE_FRAC + STEP_S)
    assert all(len(active) <= 1 for _, active in timeline)
    assert all(
        "a" not in active for t, active in timeline if t >= last_renewal_s + TTL_S * FENCE_FRAC
    )


def test_a_holder_whose_loop_stalled_wakes_up_as_a_standby_and_claims_nothing() -> None:
    bus = Bus()
    a, b = Lease("a", TTL_S), Lease("b", TTL_S)
    bus.join(a, 0.0)
    bus.run(0.0, 6.0)
    bus.join(b, 6.0)
    bus.run(6.0, 8.0)
    bus.frozen["a"] = []  # a's event loop stalls (a long GC, SIGSTOP): it sends and hears nothing
    timeline = bus.run(8.0, 14.0)
    assert timeline[-1][1] == {"b"}
    sent_before = len(bus.log)
    bus.thaw("a", 14.0)  # it ticks before it reads what b sent meanwhile
    assert not a.active(14.0)
    timeline = bus.run(14.0, 30.0)
    assert all(active == {"b"} for _, active in timeline)
    assert all(m.instance == "b" for m in bus.log[sent_before:])
    assert a.role == Role.FOLLOWING and a.holder == "b"


def test_two_instances_that_claim_at_once_agree_on_one_and_the_other_never_commands() -> None:
    bus = Bus(delay_s=0.1)  # a slow broker: both claims are out before either comes back
    a, b = Lease("a", TTL_S), Lease("b", TTL_S)
    bus.join(a, 0.0)
    bus.join(b, 0.0)
    timeline = bus.run(0.0, 20.0)
    first, second = bus.log[:2]
    assert {first.instance, second.instance} == {"a", "b"}  # a real race
    assert first.seq == second.seq == 1
    winner = second.instance  # the later claim in the broker's order
    loser = "b" if winner == "a" else "a"
    assert all(loser not in active for _, active in timeline)
    assert timeline[-1][1] == {winner}


def test_the_active_instance_stops_at_once_when_it_hears_another_lease() -> None:
    a = Lease("a", TTL_S)
    bus = Bus()
    bus.join(a, 0.0)
    bus.run(0.0, 6.0)
    assert a.active(6.0)
    a.heard(ControllerLease(ts=0.0, instance="x", seq=99, ttl_s=TTL_S), 6.0, retained=False)
    assert not a.active(6.0) and a.role == Role.FOLLOWING and a.holder == "x"


def test_the_holders_offline_status_releases_the_lease_at_once() -> None:
    bus = Bus()
    a, b = Lease("a", TTL_S), Lease("b", TTL_S)
    bus.join(a, 0.0)
    bus.run(0.0, 6.0)
    bus.join(b, 6.0)
    bus.run(6.0, 8.0)
    bus.leave("a")
    b.heard_status("a", offline=True)  # a's last will
    timeline = bus.run(8.0, 12.0)
    assert _first_active(timeline, "b") <= 8.0 + TTL_S * SETTLE_FRAC + 0.2
    # another instance's will (not the holder's) releases nothing
    c = Lease("c", TTL_S)
    bus.join(c, 12.0)
    c.heard_status("a", offline=True)
    assert all(active == {"b"} for _, active in bus.run(12.0, 30.0))


def test_a_restart_finds_the_dead_holders_will_and_takes_over_at_once() -> None:
    a2 = Lease("a2", TTL_S)
    a2.heard_status("a1", offline=True)  # retained: the will of the process before
    a2.connected(0.0)
    a2.heard(ControllerLease(ts=0.0, instance="a1", seq=7, ttl_s=TTL_S), 0.0, retained=True)
    claim = a2.tick(0.05, 0.0)
    assert claim is not None and claim.seq == 8 and claim.instance == "a2"


def test_after_a_reconnect_an_instance_whose_lease_it_still_is_claims_it_again_at_once() -> None:
    bus = Bus()
    a = Lease("a", TTL_S)
    bus.join(a, 0.0)
    bus.run(0.0, 6.0)
    a.disconnected()
    assert not a.active(6.0)
    bus.join(a, 7.0)  # the broker still holds a's lease
    timeline = bus.run(7.0, 9.0)
    assert _first_active(timeline, "a") <= 7.0 + TTL_S * SETTLE_FRAC + 0.2


def test_an_instance_claims_only_once_it_has_heard_the_plant() -> None:
    """A daemon that has just reconnected would take over with the plant time of before the
    outage: the claim waits for telemetry."""
    bus = Bus()
    a = Lease("a", TTL_S)
    bus.deaf.add("a")
    bus.join(a, 0.0)
    assert all(not active for _, active in bus.run(0.0, 10.0))
    assert bus.log == [] and a.reason.endswith("waiting to hear the plant")
    bus.deaf.clear()
    timeline = bus.run(10.0, 12.0)
    assert _first_active(timeline, "a") <= 10.0 + TTL_S * SETTLE_FRAC + 0.2


def test_an_instance_whose_id_another_process_uses_never_commands() -> None:
    bus = Bus()
    a = Lease("same", TTL_S)
    bus.join(a, 0.0)
    bus.run(0.0, 6.0)
    twin = Lease("same", TTL_S)
    bus.join(twin, 6.0)
    timeline = bus.run(6.0, 30.0)
    assert twin.role == Role.DUPLICATE and "instance_id" in twin.reason
    assert all(not twin.active(t) for t, _ in timeline)
    assert a.active(30.0 - STEP_S)
    twin.disconnected()
    bus.join(twin, 30.0)  # a reconnect does not make it forget
    assert twin.role == Role.DUPLICATE


@pytest.mark.parametrize("delay_s", [0.01, 0.3])
def test_whatever_the_delay_no_two_instances_are_ever_active_together(delay_s: float) -> None:
    """Three instances, the holder cut off and back, one leaving: at most one active."""
    bus = Bus(delay_s=delay_s)
    names = ("a", "b", "c")
    for i, name in enumerate(names):
        bus.join(Lease(name, TTL_S), 0.7 * i)
    timeline = bus.run(0.0, 10.0)
    holder = next(iter(timeline[-1][1]))
    bus.cut_off.add(holder)
    timeline += bus.run(10.0, 20.0)
    bus.cut_off.clear()
    timeline += bus.run(20.0, 30.0)
    bus.leave(timeline[-1][1].pop())
    timeline += bus.run(30.0, 45.0)
    assert all(len(active) <= 1 for _, active in timeline)
    assert len(timeline[-1][1]) == 1


def test_the_default_instance_id_is_the_host_and_the_pid_cut_to_a_valid_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "plant 7/ems.example.com" + "x" * 80)
    instance = ControllerSection().resolved_instance_id
    assert instance.endswith(f"-{os.getpid()}") and len(instance) <= 64
    assert instance.startswith("plant-7-ems.example.com")
    # a valid name on the wire (the codec checks the pattern when it decodes)
    assert msgspec.json.decode(
        msgspec.json.encode(ControllerLease(ts=0.0, instance=instance, seq=1, ttl_s=TTL_S)),
        type=ControllerLease,
    )
    assert ControllerSection(instance_id="ems-a").resolved_instance_id == "ems-a"
