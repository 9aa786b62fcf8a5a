"""A point of the time-series store and its InfluxDB line-protocol encoding.

Precision is the millisecond (``precision=ms`` on the write API; ``influx write --precision ms``
for the files): VictoriaMetrics stores milliseconds anyway, and plant telemetry comes at most a
few times a second.  Two points of one series within the same millisecond overwrite each other
in InfluxDB.

Escaping follows the InfluxDB 2 line-protocol reference: in the measurement ``,`` and space; in
tag keys, tag values and field keys ``,``, ``=`` and space; in string field values ``"``; and a
backslash everywhere as ``\\\\`` (two contiguous backslashes read as one, which InfluxDB and
VictoriaMetrics both do).  Line protocol cannot carry a line break in any part of a line, so
control characters (U+0000–U+001F, U+007F) become spaces.

A point that cannot be written is not an error the caller sees: :func:`encode_line` returns None
for it (no measurement or one starting with ``#``, which would make a comment line; no field with
a finite value; a time that is not a finite number in [0, :data:`MAX_TS_S`]) and skips single
fields whose value is NaN, ±inf, an int beyond 64 bits or of an unsupported type; the sinks count
such points as rejected.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

FieldValue = float | int | bool | str
"""A field's value: float, int (written with the ``i`` suffix), bool, or str."""

MAX_TS_S: Final = 1.0e11
"""Times beyond this (year 5138) are rejected: they would be garbage or a unit mistake."""

_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NAME_SPECIAL = re.compile(r"[\x00-\x1f\x7f\\, =]")
_MEASUREMENT_SPECIAL = re.compile(r"[\x00-\x1f\x7f\\, ]")
_STRING_SPECIAL = re.compile(r'[\x00-\x1f\x7f\\"]')

_ESCAPE_NAME: Final = str.maketrans({"\\": "\\\\", ",": "\\,", "=": "\\=", " ": "\\ "})
_ESCAPE_MEASUREMENT: Final = str.maketrans({"\\": "\\\\", ",": "\\,", " ": "\\ "})
_ESCAPE_STRING: Final = str.maketrans({"\\": "\\\\", '"': '\\"'})


@dataclass(frozen=True, slots=True)
class Point:
    """One row: a measurement, its tags (indexed), its fields (values) and a time.

    ``ts_s`` is plant time, UNIX seconds (UTC).  Tags with an empty value are left out, as line
    protocol has no empty tag value.
    """

    measurement: str
    tags: Mapping[str, str]
    fields: Mapping[str, FieldValue]
    ts_s: float


def _clean(text: str) -> str:
    return _CONTROL.sub(" ", text)


def escape_name(text: str) -> str:
    """A tag key, tag value or field key, escaped."""
    if not _NAME_SPECIAL.search(text):
        return text
    return _clean(text).translate(_ESCAPE_NAME)


def escape_measurement(text: str) -> str:
    if not _MEASUREMENT_SPECIAL.search(text):
        return text
    return _clean(text).translate(_ESCAPE_MEASUREMENT)


def escape_string(text: str) -> str:
    """A string field value, quoted and escaped."""
    if not _STRING_SPECIAL.search(text):
        return f'"{text}"'
    return '"' + _clean(text).translate(_ESCAPE_STRING) + '"'


def _field(value: object) -> str | None:
    # bool before int: bool is an int subclass.  Exact types first (the common, fast path);
    # numpy scalars, enums and other subclasses fall through to the isinstance checks.
    kind = type(value)
    if kind is float:
        return repr(value) if math.isfinite(value) else None  # type: ignore[arg-type]
    if kind is int:
        return f"{value}i" if _INT64_MIN <= value <= _INT64_MAX else None  # type: ignore[operator]
    if kind is str:
        return escape_string(value)  # type: ignore[arg-type]
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):  # IntEnum, numpy integers
        number = int(value)
        return f"{number}i" if _INT64_MIN <= number <= _INT64_MAX else None
    if isinstance(value, numbers.Real):  # numpy floats
        real = float(value)
        return repr(real) if math.isfinite(real) else None
    if isinstance(value, str):
        return escape_string(str(value))
    return None


# Escaped heads ("measurement,tag=value,...") and field keys ("key="): a few dozen distinct ones
# in practice, encoded once.  Bounded, because plan_id tags make heads grow without end.
_CACHE_MAX: Final = 10_000
_heads: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}
_keys: dict[str, str] = {}


def _head(measurement: str, tags: Mapping[str, str]) -> str | None:
    key = (measurement, tuple(tags.items()))
    head = _heads.get(key)
    if head is None:
        if not measurement or measurement.startswith("#"):
            return None  # "#" starts a comment line
        head = escape_measurement(measurement) + "".join(
            f",{escape_name(k)}={escape_name(v)}" for k, v in sorted(tags.items()) if k and v
        )
        if len(_heads) >= _CACHE_MAX:
            _heads.clear()
        _heads[key] = head
    return head


def _key(name: str) -> str:
    """The escaped field key with its "=" ("" for an empty name, which cannot be written)."""
    key = _keys.get(name)
    if key is None:
        key = escape_name(name) + "=" if name else ""
        if len(_keys) >= _CACHE_MAX:
            _keys.clear()
        _keys[name] = key
    return key


def encode_line(point: Point) -> str | None:
    """One line of line protocol (without the newline), or None when the point cannot be written.

    Fields whose value is not finite or not a supported type are left out; tags are sorted by
    key (InfluxDB's recommendation, and a stable text for tests and files).
    """
    try:
        ts_s = point.ts_s
        if not 0.0 <= ts_s <= MAX_TS_S:  # also false for NaN
            return None
        head = _head(point.measurement, point.tags)
        if head is None:
            return None
        fields = []
        keys = _keys
        for name, value in point.fields.items():
            key = keys.get(name) or _key(name)
            if type(value) is float:
                if math.isfinite(value) and key:
                    fields.append(key + repr(value))
            elif (text := _field(value)) is not None and key:
                fields.append(key + text)
        if not fields:
            return None
        return f"{head} {','.join(fields)} {round(ts_s * 1000.0)}"
    except (AttributeError, TypeError, ValueError):
        # Not a Point at all, tags that are not strings, a time that is not a number...:
        # a bad point never stops the writer.
        return None


def encode_lines(points: Iterable[Point]) -> tuple[list[str], int]:
    """Encode ``points``; returns the lines and how many points could not be written."""
    lines = []
    rejected = 0
    for point in points:
        line = encode_line(point)
        if line is None:
            rejected += 1
        else:
            lines.append(line)
    return lines, rejected
