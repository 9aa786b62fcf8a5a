"""The ``[influx]`` table: where points go, and how much may wait on disk when they cannot.

With no ``url`` (the default) points go to rotating line-protocol files in ``files_dir``.  The
token is named, never stored: ``token_env`` or ``token_file`` say where it is; it is read at the
edge (:func:`resolve_token`) and never logged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Final

import msgspec

from wire.tomlfile import FileError, convert, read_secret_file

DEFAULT_TOKEN_ENV: Final = "INFLUX_TOKEN"


class InfluxSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    url: Annotated[str, msgspec.Meta(pattern=r"^https?://[^/\s]+(/\S*)?$")] | None = None
    """InfluxDB 2 base URL (``http://host:8086``); None writes line-protocol files instead."""
    org: Annotated[str, msgspec.Meta(max_length=256)] = ""
    bucket: Annotated[str, msgspec.Meta(max_length=256)] = ""
    token_env: str | None = DEFAULT_TOKEN_ENV
    """Environment variable holding the API token; unset or empty means no token."""
    token_file: str | None = None
    """File holding the API token (takes precedence over ``token_env``)."""
    batch_size: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 1000
    """Points per write request.  Larger batches cost fewer requests, but their body is copied
    into the socket in one go on the event loop (about 1 ms per 1,000 points)."""
    flush_interval_s: Annotated[float, msgspec.Meta(gt=0.0, le=3600.0)] = 1.0
    """A partial batch is written at the latest this long after its first point."""
    timeout_s: Annotated[float, msgspec.Meta(gt=0.0, le=300.0)] = 10.0
    """One write request's time limit, connection included."""
    retry_max_s: Annotated[float, msgspec.Meta(ge=0.1, le=3600.0)] = 30.0
    """Cap of the jittered exponential backoff between attempts while the database fails."""
    max_queued_points: Annotated[int, msgspec.Meta(ge=1, le=100_000_000)] = 1_000_000
    """Points held in memory before they are encoded; beyond it new points are dropped (and
    counted).  The writer empties the queue into the spool while the database is away, so this
    only fills when the process cannot keep up at all."""
    spool_dir: str = ""
    """Points waiting for the database while it is unreachable, as line-protocol segments;
    empty: ``spool/`` beside the daemon's state file."""
    spool_max_mb: Annotated[float, msgspec.Meta(gt=0.0, le=1.0e6)] = 512.0
    """Size cap of the spool; past it the oldest segment is dropped (its points are counted)."""
    files_dir: str = ""
    """Where line-protocol files go when no ``url`` is configured; empty: ``points/`` beside
    the daemon's state file."""
    file_max_mb: Annotated[float, msgspec.Meta(gt=0.0, le=1.0e5)] = 64.0
    """Size at which a line-protocol file is closed and a new one started."""
    file_keep: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 20
    """Files kept, the one being written included; older ones are deleted."""

    def __post_init__(self) -> None:
        if self.url is not None and not self.bucket:
            raise ValueError("bucket: an InfluxDB url needs a bucket")
        if self.url is not None and not self.org:
            raise ValueError("org: an InfluxDB url needs an org")
        if self.token_env is not None and not self.token_env:
            raise ValueError("token_env: name an environment variable, or leave the key out")

    @property
    def spool_max_bytes(self) -> int:
        return int(self.spool_max_mb * 1024 * 1024)

    @property
    def file_max_bytes(self) -> int:
        return int(self.file_max_mb * 1024 * 1024)


def with_overrides(
    settings: InfluxSettings,
    *,
    url: str | None = None,
    org: str | None = None,
    bucket: str | None = None,
    source: str = "command line",
) -> InfluxSettings:
    """``settings`` with the command line's ``--influx-url/--influx-org/--influx-bucket``
    (those not None), validated again.

    Raises:
        FileError: naming ``influx.<key>``, e.g. a URL that is not http(s).
    """
    raw = msgspec.to_builtins(settings)
    changes = {"url": url, "org": org, "bucket": bucket}
    raw.update({k: v for k, v in changes.items() if v is not None})
    try:
        return convert(raw, InfluxSettings, source)
    except FileError as exc:
        raise FileError(source, f"influx.{exc.key}", exc.value, exc.reason) from None


def resolve_token(settings: InfluxSettings, environ: Mapping[str, str] = os.environ) -> str | None:
    """The API token from where ``[influx]`` says it is, or None when there is none.

    A ``token_file`` must exist and hold the token; an unset or empty ``token_env`` variable
    means no token (InfluxDB will then answer 401, which the writer reports once).  Errors name
    the key and the place, never the token.

    Raises:
        FileError: the token file is missing, unreadable, not text or empty.
    """
    if settings.token_file:
        return read_secret_file(settings.token_file, "influx.token_file")
    if settings.token_env:
        return environ.get(settings.token_env) or None
    return None
