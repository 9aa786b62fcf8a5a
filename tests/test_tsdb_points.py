"""Line-protocol encoding: escaping checked by parsing the lines back with a real parser.

The parser is ``line-protocol-parser`` (a C implementation of InfluxDB's line-protocol grammar).
It reads a backslash in a name literally rather than as an escape, where InfluxDB 2 and
VictoriaMetrics read ``\\\\`` as one backslash; names with backslashes are therefore checked
against VictoriaMetrics itself, in tests/test_tsdb_victoria.py.
"""

from __future__ import annotations

import math
import string

import line_protocol_parser
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.tsdb.points import Point, encode_line, encode_lines

# Everything line protocol must escape, plus non-ASCII; no control characters (they become
# spaces, tested apart) and, for this parser, no backslash in names (see the module docstring).
NASTY = " ,=\"'#{}[]:;/.-_" + "éü中文😀"
name_text = st.text(
    alphabet=st.sampled_from(list(string.ascii_letters + string.digits + NASTY)),
    min_size=1,
    max_size=20,
)
string_value = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs")), max_size=40
)  # backslashes and quotes included: string fields escape them unambiguously
field_value = st.one_of(
    # subnormals are exact in our text, but this parser's strtod reports them as out of range
    st.floats(allow_nan=False, allow_infinity=False, allow_subnormal=False),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),
    string_value,
)
measurement_text = name_text.filter(lambda s: not s.startswith("#"))
ts_ms = st.integers(min_value=0, max_value=4_000_000_000_000)


def parse(line: str) -> dict[str, object]:
    parsed: dict[str, object] = line_protocol_parser.parse_line(line)
    return parsed


@settings(max_examples=300, deadline=None)
@given(
    measurement=measurement_text,
    tags=st.dictionaries(name_text, name_text, max_size=4),
    fields=st.dictionaries(name_text, field_value, min_size=1, max_size=5),
    ts=ts_ms,
)
def test_every_point_round_trips_through_a_line_protocol_parser(
    measurement: str, tags: dict[str, str], fields: dict[str, object], ts: int
) -> None:
    line = encode_line(Point(measurement, tags, fields, ts / 1000.0))  # type: ignore[arg-type]
    assert line is not None
    assert "\n" not in line
    parsed = parse(line)
    assert parsed["measurement"] == measurement
    assert parsed["tags"] == tags
    assert parsed["time"] == ts
    got = parsed["fields"]
    assert isinstance(got, dict)
    assert got.keys() == fields.keys()
    for key, value in fields.items():
        # the parser has no unsigned/int distinction problem for these; floats must be exact
        assert got[key] == value, key
        assert type(got[key]) is type(value), key


@pytest.mark.parametrize(
    ("point", "line"),
    [
        (
            Point("telemetry", {"site": "a b", "asset": "x,y", "k=": "v"}, {"p mw": 1.5}, 1.0),
            r"telemetry,asset=x\,y,k\==v,site=a\ b p\ mw=1.5 1000",
        ),
        (
            Point("m,x y", {}, {"s": 'say "hi" \\o/', "n": 3, "b": False}, 0.0015),
            r'm\,x\ y s="say \"hi\" \\o/",n=3i,b=false 2',
        ),
        (Point("m", {"t": "a\\"}, {"f": 1.0}, 0.0), r"m,t=a\\ f=1.0 0"),
    ],
)
def test_escaping_examples(point: Point, line: str) -> None:
    assert encode_line(point) == line


def test_control_characters_become_spaces_so_a_point_stays_one_line() -> None:
    line = encode_line(Point("m\n", {"t": "a\nb\r"}, {"s": "x\ny\tz", "k\n": 1.0}, 1.0))
    assert line is not None
    assert "\n" not in line and "\r" not in line and "\t" not in line
    parsed = parse(line)
    assert parsed["measurement"] == "m "
    assert parsed["tags"] == {"t": "a b "}
    assert parsed["fields"] == {"s": "x y z", "k ": 1.0}


def test_empty_tag_values_are_left_out() -> None:
    assert encode_line(Point("m", {"a": "", "b": "1", "": "x"}, {"f": 1.0}, 0.0)) == "m,b=1 f=1.0 0"


def test_non_finite_and_unsupported_field_values_are_left_out() -> None:
    fields = {"nan": math.nan, "inf": math.inf, "obj": object(), "big": 2**70, "ok": 2.0, "": 1.0}
    assert encode_line(Point("m", {}, fields, 0.0)) == "m ok=2.0 0"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "point",
    [
        Point("m", {}, {}, 1.0),
        Point("m", {}, {"f": math.nan}, 1.0),
        Point("", {}, {"f": 1.0}, 1.0),
        Point("#comment", {}, {"f": 1.0}, 1.0),
        Point("m", {}, {"f": 1.0}, math.nan),
        Point("m", {}, {"f": 1.0}, -1.0),
        Point("m", {}, {"f": 1.0}, 1e12),
        Point("m", {"t": 5}, {"f": 1.0}, 1.0),  # type: ignore[dict-item]
        Point("m", {}, {"f": 1.0}, "now"),  # type: ignore[arg-type]
        "not a point",
        None,
    ],
)
def test_points_that_cannot_be_written_encode_to_none(point: Point) -> None:
    assert encode_line(point) is None


def test_encode_lines_counts_the_rejected() -> None:
    lines, rejected = encode_lines([Point("m", {}, {"f": 1.0}, 0.0), Point("m", {}, {}, 0.0)])
    assert lines == ["m f=1.0 0"]
    assert rejected == 1


def test_timestamps_are_rounded_to_the_millisecond() -> None:
    assert encode_line(Point("m", {}, {"f": 1.0}, 1_700_000_000.0004)) == "m f=1.0 1700000000000"
    assert encode_line(Point("m", {}, {"f": 1.0}, 1_700_000_000.0006)) == "m f=1.0 1700000000001"


def test_numpy_scalars_are_written_as_python_numbers() -> None:
    fields = {"f": np.float64(2.5), "i": np.int64(7), "n": np.float32("nan")}
    assert encode_line(Point("m", {}, fields, 0.0)) == "m f=2.5,i=7i 0"  # type: ignore[arg-type]
