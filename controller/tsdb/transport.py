"""The HTTP edge of the writer: one line-protocol body to InfluxDB's ``/api/v2/write``.

:class:`InfluxTransport` posts through ``influxdb-client``'s asyncio client
(``InfluxDBClientAsync``, aiohttp underneath) and sorts every failure into what the writer must
do with it::

    WriteError
    ├── UnreachableError  no answer, a timeout, 5xx or 429: keep the points, retry later
    ├── RefusedError      401, 403, 404: a wrong token, org or bucket; keep the points, retry
    │                     later, tell the operator once
    └── BadDataError      400, 413, 422 and other 4xx: the body itself was refused; retrying
                          it cannot help, so its points are counted as rejected

Tests put a fake :class:`Transport` in its place to check the writer's logic without a network.
"""

from __future__ import annotations

from typing import Any, Protocol


class WriteError(Exception):
    """A write that did not (certainly) succeed."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class UnreachableError(WriteError):
    pass


class RefusedError(WriteError):
    pass


class BadDataError(WriteError):
    pass


class Transport(Protocol):
    async def write(self, body: bytes) -> None:
        """Write newline-separated lines (precision ms).  Raises a :class:`WriteError`."""
        ...

    async def close(self) -> None: ...


_REFUSED = frozenset({401, 403, 404})
_RETRY = frozenset({408, 425, 429})


def classify(status: int, message: str) -> WriteError:
    """The :class:`WriteError` for an HTTP error status."""
    text = f"HTTP {status}: {message}" if message else f"HTTP {status}"
    if status in _REFUSED:
        return RefusedError(text, status)
    if status in _RETRY or status >= 500 or status == 0:
        return UnreachableError(text, status)
    return BadDataError(text, status)


class InfluxTransport:
    """Writes to one org and bucket of an InfluxDB 2 compatible server.

    Make it inside a running event loop (the client owns an aiohttp session).  Importing and
    building the client takes a good part of a second, so it happens here, at start-up, not at
    the first write, where it would stall the control loop.
    """

    def __init__(
        self, url: str, *, org: str, bucket: str, token: str | None, timeout_s: float
    ) -> None:
        # Imported here: the file sink (the default) never pays for aiohttp and the client.
        import aiohttp  # noqa: PLC0415
        from influxdb_client.client.influxdb_client_async import (  # noqa: PLC0415
            InfluxDBClientAsync,
        )
        from influxdb_client.domain.write_precision import WritePrecision  # noqa: PLC0415
        from influxdb_client.rest import ApiException  # noqa: PLC0415

        self.url = url
        self._org = org
        self._bucket = bucket
        self._precision = WritePrecision.MS
        self._api_exception: type[Exception] = ApiException
        self._network_errors: tuple[type[Exception], ...] = (
            aiohttp.ClientError,
            TimeoutError,
            OSError,
        )
        self._client: Any = InfluxDBClientAsync(
            url=url,
            token=token or "",  # empty: no Authorization header
            org=org,
            timeout=int(timeout_s * 1000),
        )
        self._write_api: Any = self._client.write_api()

    async def write(self, body: bytes) -> None:
        if self._client is None:
            raise UnreachableError("the client is closed")
        try:
            await self._write_api.write(
                bucket=self._bucket, org=self._org, record=body, write_precision=self._precision
            )
        except self._api_exception as exc:
            raise classify(int(getattr(exc, "status", 0) or 0), _server_message(exc)) from None
        except self._network_errors as exc:
            raise UnreachableError(f"{type(exc).__name__}: {exc}") from None

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()


def _server_message(exc: Any) -> str:
    """The server's own words (InfluxDB answers JSON with a ``message``), kept short."""
    message = getattr(exc, "message", None) or getattr(exc, "reason", None) or ""
    if not message:
        body = getattr(exc, "body", None)
        if isinstance(body, bytes):
            message = body.decode(errors="replace")
        elif isinstance(body, str):
            message = body
    text = " ".join(str(message).split())
    return text[:300]
