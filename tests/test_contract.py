"""The wire contract: topics round-trip, the codec rejects bad input with the right kind."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

import wire as c
from wire.link import MqttSettings
from wire.tomlfile import FileError, convert

T = c.Topics()


@pytest.mark.parametrize(
    ("topic", "kind", "asset"),
    [
        (T.potline("L1"), "potline", "L1"),
        (T.pots("L1"), "pots", "L1"),
        (T.grid("pcc"), "grid", "pcc"),
        (T.renewable("pv1"), "renewable", "pv1"),
        (T.bess("b1"), "bess", "b1"),
        (T.captive("c1"), "captive", "c1"),
        (T.weather("site"), "weather", "site"),
        (T.alarm(), "alarm", ""),
        (T.potline_setpoint("L1"), "potline_setpoint", "L1"),
        (T.bess_setpoint("b1"), "bess_setpoint", "b1"),
        (T.captive_setpoint("c1"), "captive_setpoint", "c1"),
        (T.status(), "status", ""),
        (T.instance_status("ems-a"), "instance_status", "ems-a"),
        (T.lease(), "lease", ""),
        (T.plan(), "plan", ""),
        (T.mode(), "mode", ""),
    ],
)
def test_topics_round_trip(topic: str, kind: str, asset: str) -> None:
    assert T.parse(topic) == c.Topic(kind, asset)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "topic",
    [
        "other/telemetry/potline/L1",
        "smelter/telemetry/x/y",
        "smelter/telemetry/potline/a b",
        "smelter/command/potline/L1",
    ],
)
def test_unknown_topics_parse_to_none(topic: str) -> None:
    assert T.parse(topic) is None


def test_prefix_is_configurable() -> None:
    t = c.Topics("plant7/ems")
    assert t.potline("L1") == "plant7/ems/telemetry/potline/L1"
    assert t.parse("plant7/ems/telemetry/potline/L1") == c.Topic("potline", "L1")
    with pytest.raises(ValueError, match="prefix"):
        c.Topics("smelter/#")


def test_encode_decode_round_trip() -> None:
    sp = c.PotlineSetpoint(
        ts=1.0, current_ka=380.0, valid_until=900.0, plan_id="p1", source=c.Source.MPC
    )
    assert c.decode("potline_setpoint", c.encode(sp)) == sp


def test_the_instance_field_is_optional_and_says_whose_setpoint_it_is() -> None:
    """Setpoints and statuses from a sender that does not name itself still decode."""
    old = c.decode("potline_setpoint", b'{"ts": 1, "current_ka": 380, "valid_until": 900}')
    assert old.instance == ""  # type: ignore[attr-defined]
    sp = c.PowerSetpoint(ts=1.0, power_mw=-20.0, valid_until=900.0, instance="ems-b")
    assert c.decode("bess_setpoint", c.encode(sp)) == sp
    with pytest.raises(c.PayloadError):
        c.decode("status", b'{"ts": 1, "state": "running", "instance": "a b"}')
    lease = c.ControllerLease(ts=1.0, instance="ems-a", seq=7, ttl_s=10.0)
    assert c.decode("lease", c.encode(lease)) == lease
    with pytest.raises(c.PayloadError, match="out_of_range"):
        c.decode("lease", b'{"ts": 1, "instance": "ems-a", "seq": 0, "ttl_s": 10}')


GOOD = {"ts": 1.0, "current_ka": 380.0, "valid_until": 900.0}


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"{not json", "malformed_json"),
        (b'{"ts": 1, "current_ka": NaN, "valid_until": 2}', "malformed_json"),
        (b'{"ts": 1, "current_ka": Infinity, "valid_until": 2}', "malformed_json"),
        (json.dumps({**GOOD, "current_ka": "380"}).encode(), "schema"),
        (json.dumps({**GOOD, "extra": 1}).encode(), "schema"),
        (json.dumps({"ts": 1.0}).encode(), "schema"),
        (b"[1, 2]", "schema"),
        (json.dumps({**GOOD, "current_ka": -5.0}).encode(), "out_of_range"),
        (json.dumps({**GOOD, "current_ka": 1e300}).encode(), "out_of_range"),
        (b'{"ts": 1, "current_ka": 1e999, "valid_until": 2}', "out_of_range"),
        (b" " * (c.MAX_PAYLOAD_BYTES + 1), "oversized"),
        (b"x" * 1_000_000, "oversized"),
    ],
)
def test_bad_payloads_are_rejected_by_kind(data: bytes, kind: str) -> None:
    with pytest.raises(c.PayloadError) as info:
        c.decode("potline_setpoint", data)
    assert info.value.kind == kind
    assert info.value.kind in c.REJECT_KINDS


def test_encode_refuses_non_finite() -> None:
    with pytest.raises(ValueError, match="finite"):
        c.encode(c.PotlineSetpoint(ts=1.0, current_ka=math.nan, valid_until=2.0))


@given(st.binary(max_size=300))
def test_decode_never_raises_anything_but_payload_error(data: bytes) -> None:
    for kind in ("potline", "potline_setpoint", "bess_setpoint", "grid", "pots", "mode"):
        try:
            c.decode(kind, data)
        except c.PayloadError as exc:
            assert exc.kind in c.REJECT_KINDS


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_any_float_either_decodes_within_bounds_or_is_rejected(x: float) -> None:
    text = json.dumps({"ts": 1.0, "power_mw": x, "valid_until": 5.0})
    try:
        sp = c.decode("bess_setpoint", text)
    except c.PayloadError:
        return
    assert math.isfinite(sp.power_mw) and abs(sp.power_mw) <= 1e5


def test_file_error_names_key_value_reason() -> None:
    with pytest.raises(FileError) as info:
        convert({"url": "mqtt://h:1", "keepalive_s": 2}, MqttSettings, "x.toml")
    e = info.value
    assert (e.key, e.value) == ("keepalive_s", 2)
    assert ">= 5" in e.reason
    assert "x.toml" in str(e) and "keepalive_s" in str(e)


def test_mqtt_settings_parse_host_and_port() -> None:
    s = convert({"url": "mqtt://broker.plant:1884"}, MqttSettings)
    assert (s.host, s.port) == ("broker.plant", 1884)
    assert convert({"url": "mqtts://b", "tls": {}}, MqttSettings).port == 8883
