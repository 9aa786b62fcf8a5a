"""Time-series logging: every telemetry value, plan, setpoint, event and KPI, as InfluxDB points.

Public API::

    Point(measurement, tags, fields, ts_s)          one row (controller.tsdb.points)
    InfluxSettings                                   the [influx] config table
    resolve_token(settings, environ) -> str | None   the API token, from token_file or token_env
    open_sink(settings, token=...) -> PointSink      InfluxDB writer, or files when no url
    PointSink: write(points) (never blocks, never raises), await close(timeout_s), stats()
    SinkStats                                        counters for the daemon's metrics
    controller.tsdb.schema                           contract payloads, plans, events, KPIs → Points

``docs/influx-schema.md`` describes the measurements, tags and fields.
"""

from __future__ import annotations

import logging

from controller.tsdb.files import FileSink
from controller.tsdb.points import FieldValue, Point, encode_line
from controller.tsdb.settings import InfluxSettings, resolve_token
from controller.tsdb.sink import PointSink, SinkStats
from controller.tsdb.spool import Spool
from controller.tsdb.transport import InfluxTransport
from controller.tsdb.writer import InfluxWriter

log = logging.getLogger(__name__)

__all__ = [
    "FieldValue",
    "FileSink",
    "InfluxSettings",
    "InfluxWriter",
    "Point",
    "PointSink",
    "SinkStats",
    "encode_line",
    "open_sink",
    "resolve_token",
]


def open_sink(settings: InfluxSettings, *, token: str | None) -> PointSink:
    """The sink ``settings`` ask for: an InfluxDB writer with its spool when ``url`` is set,
    rotating line-protocol files otherwise.

    Call it from a coroutine: the sink starts its background task on the running loop.  It
    makes the spool or files directory; an unusable directory raises ``OSError`` here, at
    start-up, rather than losing points later.  ``token`` comes from :func:`resolve_token`.
    """
    if settings.url is None:
        return FileSink(
            settings.files_dir,
            max_bytes=settings.file_max_bytes,
            keep=settings.file_keep,
            batch_size=settings.batch_size,
            flush_interval_s=settings.flush_interval_s,
            max_queued_points=settings.max_queued_points,
        )
    if token is None:
        log.warning(
            "no InfluxDB token (none in $%s%s): writing without authentication",
            settings.token_env,
            f" or {settings.token_file}" if settings.token_file else "",
        )
    transport = InfluxTransport(
        settings.url,
        org=settings.org,
        bucket=settings.bucket,
        token=token,
        timeout_s=settings.timeout_s,
    )
    return InfluxWriter(
        transport,
        Spool(settings.spool_dir, settings.spool_max_bytes),
        where=f"bucket '{settings.bucket}' of org '{settings.org}' at {settings.url}",
        batch_size=settings.batch_size,
        flush_interval_s=settings.flush_interval_s,
        retry_max_s=settings.retry_max_s,
        max_queued_points=settings.max_queued_points,
    )
