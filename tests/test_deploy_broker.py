"""The broker roles of deploy/mosquitto/ against a real Mosquitto running that configuration.

Who may connect (TLS with the throwaway CA and a password, nothing else), what each role may
publish (the MQTT 5 PUBACK says 0x87 for the rest, and nothing reaches a subscriber) and read,
and the daemon and the simulator as processes, logged in with the command line's ``--mqtt-*``
flags.  A controller whose setpoints the ACL refuses says so in its retained status.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import aiomqtt
import pytest
from conftest import _missing_service
from daemon_helpers import cli, config_file
from deploy_broker import MOSQUITTO_DIR, PREFIX, DeployedBroker, make_secrets

from controller.daemon.paho_hooks import PubackWatch
from harness.mosquitto import find_mosquitto
from harness.processes import log_says, stop_process
from wire import ControllerState, ControllerStatus, Topics, decode

pytestmark = [pytest.mark.services, pytest.mark.timeout(120)]

T = Topics(PREFIX)
NOT_AUTHORIZED = 0x87


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeployedBroker]:
    executable = find_mosquitto()
    if executable is None:
        _missing_service("mosquitto is not installed (apt-get install mosquitto)")
    broker = DeployedBroker(executable, tmp_path_factory.mktemp("deployed-broker"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


class Heard:
    """What one subscriber receives, raw: (topic, payload) in order of arrival."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.seen: list[tuple[str, bytes]] = []
        self._new = asyncio.Event()

    async def pump(self) -> None:
        async for message in self.client.messages:
            assert isinstance(message.payload, bytes)
            self.seen.append((message.topic.value, message.payload))
            self._new.set()

    async def wait_for(
        self, predicate: Callable[[str, bytes], bool], timeout_s: float, *, after: int = 0
    ) -> None:
        async with asyncio.timeout(timeout_s):
            i = after
            while True:
                while i < len(self.seen):
                    if predicate(*self.seen[i]):
                        return
                    i += 1
                self._new.clear()
                await self._new.wait()


@contextlib.asynccontextmanager
async def subscribed(broker: DeployedBroker, role: str, *filters: str) -> AsyncIterator[Heard]:
    async with broker.client(role) as client:
        for f in filters:
            await client.subscribe(f, qos=1)
        w = Heard(client)
        task = asyncio.create_task(w.pump())
        try:
            yield w
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task


# --- who may connect ----------------------------------------------------------------------------


def test_the_secrets_script_refuses_to_overwrite_a_ca(tmp_path: Path) -> None:
    make_secrets(tmp_path)
    before = (tmp_path / "ca.key").read_bytes()
    with pytest.raises(Exception, match="returned non-zero exit status 1"):
        make_secrets(tmp_path)
    assert (tmp_path / "ca.key").read_bytes() == before
    # only the owner reaches the files; inside, containers running as other users read them
    assert oct(tmp_path.stat().st_mode & 0o777) == "0o700"
    roles = ("controller", "plant", "operator", "viewer")
    for role in roles:
        assert len((tmp_path / f"{role}.password").read_text()) == 32
    hashed = (tmp_path / "passwords").read_text().splitlines()
    assert [line.split(":")[0] for line in hashed] == list(roles)
    assert all(line.split(":")[1].startswith("$7$") for line in hashed)  # hashed, not plain


@pytest.mark.parametrize(
    "who",
    [
        "anonymous",
        "wrong password",
        "unknown user",
        "no TLS",
        # paho leaves the socket of a failed handshake to the garbage collector
        pytest.param(
            "broker not trusted",
            marks=pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
        ),
    ],
)
async def test_the_broker_refuses(deployed: DeployedBroker, who: str) -> None:
    client = {
        "anonymous": lambda: deployed.client(None),
        "wrong password": lambda: deployed.client("operator", password="guess"),
        "unknown user": lambda: deployed.client("admin", password="admin"),
        "no TLS": lambda: deployed.client("viewer", tls=False),
        # a CA the broker's certificate does not come from: the client refuses the broker
        "broker not trusted": lambda: deployed.client("viewer", ca_file=_other_ca(deployed)),
    }[who]()
    with pytest.raises(aiomqtt.MqttError):
        async with client:
            pass


def _other_ca(broker: DeployedBroker) -> Path:
    other = broker.workdir.parent / f"{broker.workdir.name}-other-ca"
    if not other.exists():
        make_secrets(other)
    return other / "ca.crt"


async def test_every_role_connects_with_tls_and_its_password(deployed: DeployedBroker) -> None:
    for role in ("controller", "plant", "operator", "viewer"):
        async with deployed.client(role):
            pass


# --- what each role may publish -----------------------------------------------------------------

PUBLISH_CASES = {
    # forging the operator's mode or the controller's setpoints and status
    "plant": {
        T.potline("L1"): True,
        T.weather("site"): True,
        T.alarm(): True,
        T.mode(): False,
        T.potline_setpoint("L1"): False,
        T.bess_setpoint("B1"): False,
        T.status(): False,
    },
    # the mode and nothing else
    "operator": {
        T.mode(): True,
        T.potline_setpoint("L1"): False,
        T.potline("L1"): False,
        T.status(): False,
        T.lease(): False,
        T.plan(): False,
    },
    # setpoints and its own topics, the lease among them, and the mode for its operator console;
    # no telemetry, no alarms
    "controller": {
        T.potline_setpoint("L1"): True,
        T.captive_setpoint("C1"): True,
        T.status(): True,
        T.lease(): True,
        T.plan(): True,
        T.instance_status("host-1"): True,
        T.potline("L1"): False,
        T.grid("G1"): False,
        T.alarm(): False,
        T.mode(): True,
    },
    "viewer": {
        T.potline("L1"): False,
        T.mode(): False,
        T.potline_setpoint("L1"): False,
        T.status(): False,
    },
}


@pytest.mark.parametrize("role", list(PUBLISH_CASES))
async def test_each_role_publishes_only_what_the_acl_grants(
    deployed: DeployedBroker, role: str
) -> None:
    """Each publication's PUBACK reason code, and what a reader of everything receives: a
    refused message must not reach anyone."""
    cases = PUBLISH_CASES[role]
    async with subscribed(deployed, "viewer", f"{PREFIX}/#") as everything:
        async with deployed.client(role) as client:
            acks = PubackWatch(client)
            codes = {}
            for topic in cases:
                await client.publish(topic, b'{"ts": 0}', qos=1)
                refused = acks.take()
                codes[topic] = refused.value if refused is not None else 0
        # the broker is done with those; a marker from another client arrives after them
        marker = T.mode()
        async with deployed.client("operator") as operator:
            await operator.publish(marker, b'{"marker": true}', qos=1)
        await everything.wait_for(lambda t, p: t == marker and b"marker" in p, 10.0)
    assert codes == {t: 0 if ok else NOT_AUTHORIZED for t, ok in cases.items()}
    heard = {t for t, _ in everything.seen} - {marker}
    assert heard == {t for t, ok in cases.items() if ok and t != marker}


# --- what each role may read --------------------------------------------------------------------


async def test_each_role_reads_only_what_the_acl_grants(deployed: DeployedBroker) -> None:
    """Everyone subscribes to everything; one message on each kind of topic is published by
    the role allowed to; each reader receives what its role may read, and the viewer all."""
    sent = {
        T.potline("L1"): "plant",
        T.alarm(): "plant",
        T.potline_setpoint("L1"): "controller",
        T.status(): "controller",
        T.mode(): "operator",
    }
    may_read = {
        "controller": {T.potline("L1"), T.alarm(), T.status(), T.mode()},
        "plant": {T.potline_setpoint("L1")},
        "operator": set(sent),
        "viewer": set(sent),
    }
    heard: dict[str, set[str]] = {}
    async with contextlib.AsyncExitStack() as stack:
        readers = {
            role: await stack.enter_async_context(subscribed(deployed, role, f"{PREFIX}/#"))
            for role in may_read
        }
        for topic, publisher in sent.items():
            async with deployed.client(publisher) as client:
                await client.publish(topic, b"{}", qos=1)
        marker = T.potline_setpoint("marker")  # all but the controller read setpoints
        async with deployed.client("controller") as client:
            await client.publish(marker, b"{}", qos=1)
        for role, reader in readers.items():
            if role != "controller":
                await reader.wait_for(lambda t, p: t == marker, 10.0)
        # the controller does not read setpoints: a mode, published last, closes its list
        async with deployed.client("operator") as client:
            await client.publish(T.mode(), b'{"last": 1}', qos=1)
        await readers["controller"].wait_for(lambda t, p: b"last" in p, 10.0)
        heard = {role: {t for t, _ in r.seen} - {marker} for role, r in readers.items()}
    assert heard == may_read


# --- the daemon and the simulator, logged in by the command line ---------------------------------


def _login(broker: DeployedBroker, role: str) -> list[str]:
    return [
        "--mqtt-username",
        role,
        "--mqtt-password-file",
        str(broker.password_file(role)),
        "--mqtt-ca-file",
        str(broker.ca_file),
    ]


def _state(state: ControllerState, reason: str = "") -> Callable[[str, bytes], bool]:
    def match(topic: str, payload: bytes) -> bool:
        status = decode("status", payload, ControllerStatus)
        return status.state == state and (not reason or any(reason in r for r in status.reasons))

    return match


async def test_daemon_and_simulator_run_as_their_roles_and_refused_setpoints_show(
    deployed: DeployedBroker, tmp_path: Path
) -> None:
    """``run`` as ``controller`` and ``simulate`` as ``plant``, over TLS with passwords from
    files: the controller runs.  Then the plant takes ``command/#`` away from the controller
    (its ACL without that line, reloaded): the setpoints are refused with MQTT 5 reason code
    0x87 and the retained status says ``fallback`` and why, not ``running``; given back, it
    runs again."""
    config = config_file(
        deployed,
        PREFIX,
        tmp_path,
        tmp_path / "points",
        simulator_speed=300.0,
        controller={"lease_ttl_s": 2.0},
    )
    acl = (MOSQUITTO_DIR / "acl").read_text(encoding="utf-8")
    grant = f"topic write {PREFIX}/command/#\n"
    assert acl.count(grant) == 1
    async with subscribed(deployed, "viewer", T.status()) as statuses:
        daemon = cli(tmp_path, "run", "--config", str(config), *_login(deployed, "controller"))
        plant = cli(tmp_path, "simulate", "--config", str(config), *_login(deployed, "plant"))
        try:
            await log_says(tmp_path / "run.log", "connected to MQTT broker")
            await statuses.wait_for(_state(ControllerState.RUNNING), 60.0)
            deployed.write_acl(acl.replace(grant, ""))
            deployed.reload()
            refused = "the broker refuses setpoints (Not authorized, 0x87)"
            await statuses.wait_for(_state(ControllerState.FALLBACK, refused), 60.0)
            deployed.write_acl(acl)
            deployed.reload()
            mark = len(statuses.seen)
            await statuses.wait_for(_state(ControllerState.RUNNING), 60.0, after=mark)
        finally:
            deployed.write_acl(acl)
            deployed.reload()
            codes = stop_process(daemon), stop_process(plant)
    assert codes == (0, 0)
    log = (tmp_path / "run.log").read_text(encoding="utf-8")
    assert "check the broker's ACL for user controller" in log
