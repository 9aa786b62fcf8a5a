"""The broker link: how both sides of the wire contract reach the broker.

The daemon and the simulator's bridge connect the same way: one fresh :mod:`aiomqtt` client per
attempt built from the ``[mqtt]`` settings (:func:`make_client`), TLS files checked at start
(:func:`check_tls`), the password fetched from where the config names it
(:func:`resolve_password`), reconnects with capped, jittered backoff (:class:`Backoff`) and an
outage logged once when it starts and once when it ends (:class:`LinkLog`); messages the client
had to drop because its incoming queue was full are counted (:data:`INCOMING_DROPS`).  The
``[mqtt]`` table of the config file is :class:`MqttSettings`.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Final, Literal

import aiomqtt
import msgspec

from wire.tomlfile import FileError, convert, read_secret_file
from wire.topics import DEFAULT_PREFIX

log = logging.getLogger(__name__)

BACKOFF_INITIAL_S: Final = 0.5
BACKOFF_MAX_S: Final = 30.0
CLIENT_TIMEOUT_S: Final = 5.0
"""aiomqtt's wait for CONNACK, SUBACK and the disconnect: bounds a stop on a dead link."""
PUBLISH_TIMEOUT_S: Final = 60.0
"""A QoS 1 publish's wait for its PUBACK.  The PUBACK queues behind whatever the broker is
sending us: under a burst of telemetry it can take seconds, which is not a lost link
(keepalive tells that), and a reconnect would only make the backlog worse."""


class TlsSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    ca_file: str | None = None
    """CA bundle to verify the broker; None uses the system store."""
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = False
    """Skip hostname verification (test brokers only)."""


class MqttSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The ``[mqtt]`` table.  Secrets are named, never stored: ``password_env`` or
    ``password_file`` say where the password is; it is read at the edge and never logged."""

    url: Annotated[str, msgspec.Meta(pattern=r"^mqtts?://[^/:]+(:\d{1,5})?/?$")] = (
        "mqtt://127.0.0.1:1883"
    )
    client_id: Annotated[str, msgspec.Meta(max_length=64)] = ""
    username: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    protocol: Literal["3.1.1", "5"] = "5"
    keepalive_s: Annotated[int, msgspec.Meta(ge=5, le=3600)] = 30
    topic_prefix: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")] = (
        DEFAULT_PREFIX
    )
    tls: TlsSettings | None = None
    """TLS files; None: an ``mqtts://`` broker is checked against the system's CA store."""

    def __post_init__(self) -> None:
        if self.password_env and self.password_file:
            raise ValueError("password_env: give password_env or password_file, not both")

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[1].rstrip("/").rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        rest = self.url.split("://", 1)[1].rstrip("/")
        if ":" in rest:
            return int(rest.rsplit(":", 1)[1])
        return 8883 if self.url.startswith("mqtts://") else 1883


class _IncomingDrops(logging.Filter):
    """Counts the messages aiomqtt drops when its incoming queue is full.

    aiomqtt says so with one warning per message on the logger it is given; this filter on that
    logger counts them, lets the first of a burst through and holds back the rest, and logs how
    many were dropped once none has been for :data:`QUIET_S` (checked by :meth:`settle`, which
    the daemon calls every tick, and at the client's next other log record).
    """

    MESSAGE: Final = "Message queue is full. Discarding message."
    QUIET_S: Final = 1.0

    def __init__(self) -> None:
        super().__init__()
        self.total = 0
        self._burst = 0
        self._last_drop_s = 0.0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != self.MESSAGE:
            self.settle()
            return True
        self.total += 1
        self._burst += 1
        self._last_drop_s = time.monotonic()
        if self._burst == 1:
            record.msg = (
                "incoming queue full: dropping messages (the loop is not keeping up with the "
                "broker); counted, and summed up when it is over"
            )
            return True
        return False

    def settle(self) -> None:
        """Sum up a burst of drops that is over."""
        if self._burst == 0 or time.monotonic() - self._last_drop_s < self.QUIET_S:
            return
        if self._burst > 1:
            log.warning("incoming queue full: %d messages were dropped", self._burst)
        self._burst = 0


INCOMING_DROPS: Final = _IncomingDrops()
"""Messages dropped by this process's MQTT clients for a full incoming queue (``.total``)."""
CLIENT_LOG: Final = logging.getLogger(f"{__name__}.client")
"""The logger given to every aiomqtt client (and through it to paho)."""
CLIENT_LOG.addFilter(INCOMING_DROPS)


class Backoff:
    """Capped exponential backoff with jitter, so that clients which lost the same broker do not
    all come back in lockstep."""

    def __init__(
        self,
        initial_s: float = BACKOFF_INITIAL_S,
        max_s: float = BACKOFF_MAX_S,
        rng: random.Random | None = None,
    ) -> None:
        self._initial_s = initial_s
        self._max_s = max_s
        self._rng = rng if rng is not None else random.Random()
        self._failures = 0

    def next_delay_s(self) -> float:
        # The exponent is capped only to keep 2**n a float; max_s caps the delay itself.
        ceiling_s = min(self._max_s, self._initial_s * 2.0 ** min(self._failures, 60))
        self._failures += 1
        return self._rng.uniform(ceiling_s / 2, ceiling_s)

    def reset(self) -> None:
        self._failures = 0


class LinkLog:
    """Logs a broker outage once when it starts and once when it ends, not once per attempt."""

    def __init__(
        self,
        url: str,
        *,
        while_down: str = "",
        logger: logging.Logger = log,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = url
        self._while_down = while_down
        self._log = logger
        self._monotonic = monotonic
        self._connected = False
        self._ever_connected = False
        self._down_since_s: float | None = None
        self._failed_attempts = 0

    def up(self) -> None:
        if self._down_since_s is None:
            self._log.info("connected to MQTT broker %s", self._url)
        else:
            self._log.info(
                "%s MQTT broker %s after %.1f s (%d failed attempts)",
                "reconnected to" if self._ever_connected else "connected to",
                self._url,
                self._monotonic() - self._down_since_s,
                self._failed_attempts,
            )
        self._connected = self._ever_connected = True
        self._down_since_s = None
        self._failed_attempts = 0

    def down(self, exc: aiomqtt.MqttError) -> None:
        """A connection attempt failed, or an established connection was lost."""
        if self._down_since_s is not None:
            self._failed_attempts += 1
            self._log.debug("MQTT broker %s still unreachable: %s", self._url, exc)
            return
        self._down_since_s = self._monotonic()
        lost = self._connected
        self._connected = False
        self._failed_attempts = 0 if lost else 1
        self._log.warning(
            "%s MQTT broker %s (%s); %sretrying with backoff up to %.0f s",
            "lost the connection to" if lost else "cannot connect to",
            self._url,
            exc,
            f"{self._while_down}; " if self._while_down else "",
            BACKOFF_MAX_S,
        )


MQTT_FLAGS: Final = {
    "username": "--mqtt-username",
    "password_file": "--mqtt-password-file",
    "ca_file": "--mqtt-ca-file",
    "cert_file": "--mqtt-cert-file",
    "key_file": "--mqtt-key-file",
}
"""The ``[mqtt]`` keys the command line can set (``run`` and ``simulate``), and their flags."""


def with_flags(settings: MqttSettings, url: str | None = None, **given: str | None) -> MqttSettings:
    """``settings`` with what the command line gives: ``url`` (``--broker``) and the keys of
    :data:`MQTT_FLAGS` (None: not given).  A password file given here replaces a configured
    ``password_env``; a TLS file needs an ``mqtts://`` URL.

    Raises:
        FileError: a value is not valid, naming the flag.
    """
    raw = msgspec.to_builtins(settings)
    if url is not None:
        raw["url"] = url
    for key in ("username", "password_file"):
        if given.get(key) is not None:
            raw[key] = given[key]
    if given.get("password_file") is not None:
        raw.pop("password_env", None)
    tls = {k: given[k] for k in ("ca_file", "cert_file", "key_file") if given.get(k) is not None}
    if tls:
        if not str(raw.get("url", "")).startswith("mqtts://"):
            flag = MQTT_FLAGS[next(iter(tls))]
            raise FileError(
                "command line", flag, raw.get("url"), "needs an mqtts:// broker URL (--broker)"
            )
        raw["tls"] = {**(raw.get("tls") or {}), **tls}
    try:
        return convert(raw, MqttSettings, "command line")
    except FileError as exc:
        key = exc.key.removeprefix("tls.")
        flag = "--broker" if key == "url" else MQTT_FLAGS.get(key, exc.key)
        raise FileError("command line", flag, exc.value, exc.reason) from None


def mqtt_from_args(settings: MqttSettings, args: argparse.Namespace) -> MqttSettings:
    """:func:`with_flags` from parsed arguments (``--broker`` and :data:`MQTT_FLAGS`; a
    namespace without them changes nothing)."""
    given = {key: getattr(args, f"mqtt_{key}", None) for key in MQTT_FLAGS}
    return with_flags(settings, getattr(args, "broker", None), **given)


# --- clients ------------------------------------------------------------------------------


def make_client(
    settings: MqttSettings,
    password: str | None,
    *,
    default_id: str,
    will: aiomqtt.Will | None = None,
    max_queued_incoming: int = 10_000,
) -> aiomqtt.Client:
    """A fresh aiomqtt client for ``settings`` (one per connection attempt: aiomqtt cannot always
    re-enter a client whose connection failed, empicano/aiomqtt#269)."""
    tls_params: aiomqtt.TLSParameters | None = None
    tls_insecure: bool | None = None
    if settings.url.startswith("mqtts://"):
        tls = settings.tls or TlsSettings()
        tls_params = aiomqtt.TLSParameters(
            ca_certs=tls.ca_file, certfile=tls.cert_file, keyfile=tls.key_file
        )
        tls_insecure = tls.insecure
    protocol = (
        aiomqtt.ProtocolVersion.V5 if settings.protocol == "5" else aiomqtt.ProtocolVersion.V311
    )
    return aiomqtt.Client(
        settings.host,
        settings.port,
        identifier=settings.client_id or f"{default_id}-{os.getpid()}",
        username=settings.username,
        password=password,
        protocol=protocol,
        keepalive=settings.keepalive_s,
        timeout=CLIENT_TIMEOUT_S,
        max_queued_incoming_messages=max_queued_incoming,
        logger=CLIENT_LOG,
        will=will,
        tls_params=tls_params,
        tls_insecure=tls_insecure,
    )


def check_tls(settings: MqttSettings) -> None:
    """Fail at start on TLS files that are not there, rather than retry a doomed connection."""
    if settings.tls is None:
        return
    if not settings.url.startswith("mqtts://"):
        log.warning("[mqtt.tls] is ignored: the url %s is not mqtts://", settings.url)
        return
    tls = settings.tls
    for key, path in (
        ("ca_file", tls.ca_file),
        ("cert_file", tls.cert_file),
        ("key_file", tls.key_file),
    ):
        if path is not None and not Path(path).is_file():
            raise FileError("", f"mqtt.tls.{key}", path, "file not found")


def resolve_password(settings: MqttSettings, environ: Mapping[str, str]) -> str | None:
    """Fetch the broker password from where ``[mqtt]`` says it is (None: no password).

    The config names the place (``password_env`` or ``password_file``), never the secret.  Errors
    name the key and the place, never the secret's value.

    Raises:
        FileError: the variable or file is missing, unreadable or empty, or there is no username.
    """
    if settings.password_env:
        password = _password_from_env(settings.password_env, environ)
    elif settings.password_file:
        password = read_secret_file(settings.password_file, "mqtt.password_file")
    else:
        return None
    if settings.username is None:
        # paho (and MQTT 3.1.1) only sends a password together with a username; without this
        # check the password would be dropped silently and the broker would answer "not
        # authorised" with no hint why.
        raise FileError(
            "", "mqtt.username", None, "a password is configured, so a username is needed"
        )
    return password


def _password_from_env(name: str, environ: Mapping[str, str]) -> str:
    key = "mqtt.password_env"
    if name not in environ:
        raise FileError("", key, name, "environment variable is not set")
    if not environ[name]:
        raise FileError("", key, name, "environment variable is empty")
    return environ[name]
