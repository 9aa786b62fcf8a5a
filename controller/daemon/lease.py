"""One active controller: the lease on ``{prefix}/controller/lease``.

Two daemons on one broker must not both send setpoints.  The one that holds the lease is the
active controller; every other instance plans as usual but sends none (the core's standby) until
the lease lapses.  The protocol (docs/operations.md, One active controller), with ``T`` the
holder's ``ttl_s``:

- The lease is a retained message (:class:`wire.ControllerLease`: instance, seq, ttl_s).  Its
  holder is the instance of the **latest lease message heard**: the broker puts them in one
  order, and every subscriber hears them in that order (an ordered topic), so all agree.
  ``seq`` is one above the highest heard, so the log shows who followed whom.
- The active instance renews it every ``T/3``.  Time is each instance's own monotonic clock
  from when it *heard* a message: host clocks may disagree, their rates do not.
- Another instance claims the lease when it has heard no new lease message for ``T`` (since it
  connected, when what it found was the retained one), at once when the holder's status on
  ``{prefix}/controller/status`` says ``offline`` (its last will, or a clean stop), and at
  once when the lease the broker holds is its own (retained, after a reconnect).
- A claimant becomes active only when its claim has come back as the latest lease *and* no
  other lease message has followed it for ``T/3`` (the settle); another's lease heard before
  its own claim came back does not stop it (its claim may yet be the later one).  Two
  instances that claim at once both hear both claims within milliseconds: the later claim
  wins, and the other has sent no setpoint.
- The active instance stops at once when it hears another's lease, and when its own lease has
  not come back for ``2T/3`` (it may be cut off, or its loop stalled; the others wait ``T``).
  It then listens again as if it had just connected: a stalled instance that wakes up hears
  who holds the lease now before it claims anything.
- An instance claims only once it has heard the plant since it connected: one that has just
  reconnected would otherwise take over with the plant time of before the outage.
- A live lease message under this instance's id that it did not send (or hears twice) means
  another process runs with the same ``instance_id``: this one stands down for good and says
  why.

So a standby takes over at most ``4T/3`` (+ a tick and a round trip) after the active instance's
last renewal when it goes silent, and about ``T/3`` after it when its last will comes (a crashed
process: at once).  The guarantee that the plant never sees two instances' setpoints interleave
assumes that the broker delivers a message within ``T/3``; the ``instance`` field of every
setpoint lets a plant check it too.
"""

from __future__ import annotations

import enum
import logging
from collections import deque
from typing import Final

from wire import ControllerLease

log = logging.getLogger(__name__)

RENEW_FRAC: Final = 1.0 / 3.0
"""The active instance renews the lease every this share of its ttl."""
SETTLE_FRAC: Final = 1.0 / 3.0
"""A claim that came back waits this share of the ttl for a competing claim."""
FENCE_FRAC: Final = 2.0 / 3.0
"""The active instance stops when its own lease has not come back for this share of the ttl."""
_REMEMBERED: Final = 64
"""Own lease messages remembered (sent, and heard back) to tell them from another process's."""


class Role(enum.StrEnum):
    OFFLINE = "offline"
    """Not connected to the broker."""
    LISTENING = "listening"
    """Connected; waiting up to a ttl to hear whether another instance is active."""
    FOLLOWING = "following"
    """Another instance holds the lease."""
    CLAIMING = "claiming"
    """This instance's claim is out, not yet heard back (after a ttl: listening again)."""
    SETTLING = "settling"
    """The claim came back as the latest; waiting a third of the ttl for a competing one."""
    ACTIVE = "active"
    """This instance holds the lease: it sends setpoints."""
    DUPLICATE = "duplicate"
    """Another process uses this instance's id: this one never claims the lease."""


class Lease:
    """One instance's view of the lease.  Pure: times (own monotonic clock) are passed in, and
    :meth:`tick` returns the lease message to publish (retained, QoS 1), if any."""

    def __init__(self, instance: str, ttl_s: float) -> None:
        self.instance = instance
        self.ttl_s = ttl_s
        self.role = Role.OFFLINE
        self.holder: str | None = None
        """The instance of the latest lease message heard."""
        self.takeovers = 0
        """Times this instance became the active controller."""
        self._holder_ttl_s = ttl_s
        self._heard_s = 0.0
        """When the latest lease message was heard (or the connection began)."""
        self._seq = 0
        """The highest seq heard or sent."""
        self._claim_seq = 0
        self._claim_s = 0.0
        self._echo_s = 0.0
        """When this instance last heard its own lease come back."""
        self._settled_s = 0.0
        self._renew_s = 0.0
        self._claim_now = ""
        """Why to claim at the next tick ("": no reason yet)."""
        self._offline: set[str] = set()
        """Instances whose latest status said ``offline`` (its will, or a clean stop)."""
        self._sent: deque[int] = deque(maxlen=_REMEMBERED)
        self._echoed: deque[int] = deque(maxlen=_REMEMBERED)
        self._held_back = False
        """A claim is due, but this instance cannot control yet."""

    # --- what the daemon asks -----------------------------------------------------------

    def active(self, now_s: float) -> bool:
        """Whether this instance may send setpoints now."""
        return self.role == Role.ACTIVE and now_s - self._echo_s < FENCE_FRAC * self.ttl_s

    @property
    def reason(self) -> str:
        """Why this instance is not the active controller (for the status)."""
        match self.role:
            case Role.OFFLINE:
                return "not connected to the broker"
            case Role.LISTENING | Role.FOLLOWING if self._held_back:
                return "no other instance is the active controller; waiting to hear the plant"
            case Role.LISTENING:
                return (
                    f"waiting up to {self.ttl_s:g} s to hear whether another instance is the "
                    "active controller"
                )
            case Role.FOLLOWING:
                return f"instance {self.holder} is the active controller"
            case Role.CLAIMING | Role.SETTLING:
                return "claiming the controller lease"
            case Role.DUPLICATE:
                return (
                    f"another process uses this instance_id ({self.instance}): give each "
                    "instance its own [controller] instance_id"
                )
            case Role.ACTIVE:
                return "the controller lease was not heard back in time"
        return self.role.value

    def describe(self) -> dict[str, object]:
        """For ``/healthz``."""
        return {"instance": self.instance, "role": self.role.value, "holder": self.holder}

    # --- events ---------------------------------------------------------------------------

    def connected(self, now_s: float) -> None:
        """A (re)connection: what the lease is must be heard again."""
        if self.role != Role.DUPLICATE:
            self._listen(now_s)

    def disconnected(self) -> None:
        if self.role == Role.ACTIVE:
            log.warning("controller lease: broker connection lost, setpoints stop")
        if self.role != Role.DUPLICATE:
            self.role = Role.OFFLINE

    def heard(self, lease: ControllerLease, now_s: float, *, retained: bool) -> None:
        """A lease message, in the broker's order; ``retained``: delivered because this
        instance (re)subscribed, not because someone just sent it."""
        self._seq = max(self._seq, lease.seq)
        own = lease.instance == self.instance
        if own and not retained:
            if lease.seq not in self._sent or lease.seq in self._echoed:
                self._duplicate(lease.seq)
                return
            self._echoed.append(lease.seq)
        self.holder = lease.instance
        self._holder_ttl_s = lease.ttl_s
        self._heard_s = now_s
        if not retained:
            self._offline.discard(lease.instance)
        self._offline &= {lease.instance}
        if self.role in (Role.OFFLINE, Role.DUPLICATE):
            return
        if own and lease.seq in self._sent:
            self._own(lease.seq, now_s, retained=retained)
        else:
            self._foreign(lease.instance)

    def heard_status(self, instance: str, *, offline: bool) -> None:
        """A status on ``{prefix}/controller/status``: the holder's ``offline`` releases the
        lease."""
        if offline:
            self._offline.add(instance)
        else:
            self._offline.discard(instance)

    def tick(self, now_s: float, ts: float, *, may_claim: bool = True) -> ControllerLease | None:
        """Time passes: the lease message to publish now (a claim or a renewal), or None.
        ``ts``: plant time for the message's ``ts``; ``may_claim``: whether this instance could
        control now (the daemon: it has heard the plant since it connected), else a claim that
        is due waits for it."""
        match self.role:
            case Role.LISTENING | Role.FOLLOWING:
                why = self._why_claim(now_s)
                if why and not may_claim and not self._held_back:
                    log.info("controller lease: %s; claiming it once the plant is heard", why)
                self._held_back = bool(why) and not may_claim
                return self._claim(now_s, ts, why) if why and may_claim else None
            case Role.CLAIMING:
                if now_s - self._claim_s >= self.ttl_s:
                    log.warning(
                        "controller lease: the claim was not heard back in %g s: listening again",
                        self.ttl_s,
                    )
                    self._listen(now_s)
            case Role.SETTLING | Role.ACTIVE:
                if now_s - self._echo_s >= FENCE_FRAC * self.ttl_s:
                    log.warning(
                        "controller lease: not heard back for %.1f s: setpoints stop; listening "
                        "again",
                        now_s - self._echo_s,
                    )
                    self._listen(now_s)
                    return None
                if self.role == Role.SETTLING and now_s >= self._settled_s:
                    self.role = Role.ACTIVE
                    self.takeovers += 1
                    log.info(
                        "controller lease held (claimed with seq %d): this instance is active",
                        self._claim_seq,
                    )
                if now_s >= self._renew_s:
                    return self._send(now_s, ts)
        return None

    # --- internals ------------------------------------------------------------------------

    def _listen(self, now_s: float) -> None:
        """Start again as if just connected: claim only after a ttl without hearing a lease."""
        self.role = Role.LISTENING
        self._heard_s = now_s
        self._claim_now = ""
        self._held_back = False

    def _why_claim(self, now_s: float) -> str:
        if self._claim_now:
            return self._claim_now
        if self.holder is not None and self.holder in self._offline:
            return f"instance {self.holder} went offline"
        if now_s - self._heard_s >= self._holder_ttl_s:
            if self.holder is None:
                return f"no controller lease heard for {self._holder_ttl_s:g} s"
            return f"no renewal from instance {self.holder} for {self._holder_ttl_s:g} s"
        return ""

    def _own(self, seq: int, now_s: float, *, retained: bool) -> None:
        if self.role in (Role.LISTENING, Role.FOLLOWING):
            if retained:
                # after a reconnect the broker still holds this instance's lease: nobody has
                # claimed it since, so claim it again at once
                self._claim_now = "the broker still holds this instance's lease"
            # a late echo of a renewal (after a stall, or another's claim): no claim on it;
            # what follows it in the broker's order may be another's
            return
        if self.role == Role.CLAIMING and seq == self._claim_seq:
            self.role = Role.SETTLING
            self._settled_s = now_s + SETTLE_FRAC * self.ttl_s
        if self.role in (Role.SETTLING, Role.ACTIVE):
            self._echo_s = now_s

    def _foreign(self, holder: str) -> None:
        if self.role == Role.CLAIMING:
            return  # this instance's claim is still on its way: it may yet come later
        if self.role == Role.ACTIVE:
            log.warning("controller lease: taken by instance %s: setpoints stop", holder)
        elif self.role == Role.SETTLING:
            log.info("controller lease: instance %s claimed it after this one: standing by", holder)
        self.role = Role.FOLLOWING
        self._claim_now = ""

    def _duplicate(self, seq: int) -> None:
        if self.role != Role.DUPLICATE:
            log.error(
                "controller lease: a lease under this instance's id %s (seq %d) that it did "
                "not send: another process uses the same [controller] instance_id; this one "
                "will not send setpoints",
                self.instance,
                seq,
            )
        self.role = Role.DUPLICATE

    def _claim(self, now_s: float, ts: float, why: str) -> ControllerLease:
        log.info("controller lease: claiming it (seq %d): %s", self._seq + 1, why)
        self.role = Role.CLAIMING
        self._claim_now = ""
        self._held_back = False
        self._claim_s = now_s
        message = self._send(now_s, ts)
        self._claim_seq = message.seq
        return message

    def _send(self, now_s: float, ts: float) -> ControllerLease:
        self._seq += 1
        self._sent.append(self._seq)
        self._renew_s = now_s + RENEW_FRAC * self.ttl_s
        return ControllerLease(ts=ts, instance=self.instance, seq=self._seq, ttl_s=self.ttl_s)
