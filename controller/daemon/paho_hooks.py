"""The two places where the daemon reaches under aiomqtt into its paho client.

**Refused publications.**  Under MQTT 5 a broker says in the PUBACK whether it took a QoS 1
message: reason code 0x87 (not authorised) when an ACL denies the topic, 0x97 (quota
exceeded), 0x83 (implementation specific: Mosquitto's payload too large)...  aiomqtt 2.5's
``await client.publish(...)`` returns normally whatever the code: its paho ``on_publish``
callback receives the reason code and drops it (``aiomqtt/client.py``, ``_on_publish``).
paho-mqtt 2.x does pass it to that callback (callback API version 2: ``(client, userdata, mid,
reason_code, properties)``), for QoS 1 correctly; for QoS 2 it reports success after a refused
PUBREC (eclipse-paho/paho.mqtt.python#895), which this daemon does not use.  Under MQTT 3.1.1
there is no reason code: a broker acknowledges a refused message as if it took it (or drops
the connection), so refusals cannot be seen.  :class:`PubackWatch` wraps the callback and keeps
the failure codes; the daemon publishes one message at a time and awaits its PUBACK, so the
codes taken after a publish are that message's.

**A connection that ends without DISCONNECT.**  A broker publishes a client's last will only
when the connection ends without a clean DISCONNECT, and aiomqtt's context exit always sends
one.  :func:`drop_connection` shuts the socket first, so that the broker sends the will (the
retained status ``offline``) when the daemon could not say so itself.
"""

from __future__ import annotations

import contextlib
import socket
from typing import Any

import aiomqtt
from paho.mqtt.client import Client as PahoClient
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode


def _paho(client: aiomqtt.Client) -> PahoClient:
    paho: PahoClient = client._client
    return paho


class PubackWatch:
    """The failure reason codes of one client's PUBACKs, until taken."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self._refused: list[ReasonCode] = []
        paho = _paho(client)
        inner = paho.on_publish

        def on_publish(
            c: PahoClient, userdata: Any, mid: int, reason_code: ReasonCode, properties: Properties
        ) -> None:
            if reason_code.is_failure:
                self._refused.append(reason_code)
            if inner is not None:
                inner(c, userdata, mid, reason_code, properties)  # type: ignore[call-arg]

        paho.on_publish = on_publish

    def take(self) -> ReasonCode | None:
        """The failure code of the publication just acknowledged (None: the broker took it)."""
        refused, self._refused = self._refused, []
        return refused[0] if refused else None


def drop_connection(client: aiomqtt.Client) -> None:
    """End the connection without DISCONNECT: the broker then publishes the last will."""
    sock = _paho(client).socket()
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
