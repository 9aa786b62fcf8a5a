"""Parse a measured plant series from CSV text (the caller reads the file).

Columns (header row, any order): ``timestamp`` — ISO 8601 with a zone
(``2026-06-01T08:00:00+08:00``, ``...Z``) or UNIX seconds; ``power_mw``; optionally the
plant's weather measurement (``ghi_wm2``, ``wind_speed_ms`` or ``flow_m3s``).  A row that
cannot be used — too few fields, an unparseable or zone-less timestamp, a time not after the
previous row's, a missing, non-finite or negative value — is skipped and reported with its
line number; gaps (intervals over twice the typical spacing) are listed too.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from forecasting.types import WEATHER_FIELD, Array, Kind


@dataclass(frozen=True)
class BadRow:
    line: int
    reason: str


@dataclass(frozen=True)
class Gap:
    line: int
    """Line of the first row after the gap."""
    hours: float


@dataclass(frozen=True)
class CsvSeries:
    times_s: Array
    power_mw: Array
    measurement: Array
    """NaN where the file has no measurement column or an empty cell."""
    rows: int
    bad_rows: list[BadRow]
    gaps: list[Gap]


def parse_timestamp(text: str) -> float:
    """UNIX seconds from UNIX seconds or ISO 8601 with a zone; ValueError otherwise."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        when = datetime.fromisoformat(text)
        if when.tzinfo is None:
            raise ValueError(f"timestamp {text!r} has no time zone") from None
        return when.timestamp()
    if not math.isfinite(value):
        raise ValueError(f"timestamp {text!r} is not finite")
    return value


def _number(text: str, name: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0.0:
        raise ValueError(f"{name} {text.strip()!r} is not a finite non-negative number")
    return value


def read_csv_series(lines: Iterable[str], kind: Kind) -> CsvSeries:
    """Parse CSV lines; raises ValueError only when the header lacks a required column."""
    reader = csv.reader(lines)
    header = [h.strip().lower() for h in next(reader, [])]
    for required in ("timestamp", "power_mw"):
        if required not in header:
            raise ValueError(f"CSV header needs a {required!r} column, got {header}")
    i_time, i_power = header.index("timestamp"), header.index("power_mw")
    measured = WEATHER_FIELD[kind]
    i_meas = header.index(measured) if measured in header else None
    times: list[float] = []
    power: list[float] = []
    meas: list[float] = []
    lines_kept: list[int] = []
    bad: list[BadRow] = []
    rows = 0
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        rows += 1
        try:
            if len(row) <= max(i_time, i_power, -1 if i_meas is None else i_meas):
                raise ValueError(f"expected {len(header)} fields, got {len(row)}")
            t = parse_timestamp(row[i_time])
            p = _number(row[i_power], "power_mw")
            m = math.nan
            if i_meas is not None and row[i_meas].strip():
                m = _number(row[i_meas], measured)
            if times and t <= times[-1]:
                raise ValueError("timestamp not after the previous row's")
        except ValueError as exc:
            bad.append(BadRow(line, str(exc)))
            continue
        times.append(t)
        power.append(p)
        meas.append(m)
        lines_kept.append(line)
    t_arr = np.array(times, dtype=np.float64)
    gaps: list[Gap] = []
    if t_arr.size > 2:
        dt = np.diff(t_arr)
        typical = float(np.median(dt))
        for j in np.flatnonzero(dt > 2.0 * typical).tolist():
            gaps.append(Gap(lines_kept[j + 1], float(dt[j]) / 3600.0))
    return CsvSeries(
        t_arr,
        np.array(power, dtype=np.float64),
        np.array(meas, dtype=np.float64),
        rows,
        bad,
        gaps,
    )
