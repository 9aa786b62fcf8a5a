"""The safety layer: hard limits, ramp limits, refused NaN, fallback, payloads on the contract."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import wire as c
from controller.planner.types import Schedule, SolveStatus
from controller.safety import AssetLimits, SafetyEvent, SafetyLayer, limits_for
from controller.site import BessModel, CaptiveModel, LineModel, SiteModel
from forecasting.types import QuantileForecast

# L1: [280, 440] kA, 80 kA/h, nominal 400.  L2: [240, 315] kA, 30 kA/h, nominal 300.
# b1: ±50 MW, no ramp.  c1: [200, 600] MW, 600 MW/h (10 MW/min), holds on fallback.
SITE = SiteModel(
    name="test",
    lines=(
        LineModel("L1"),
        LineModel(
            "L2", nominal_current_ka=300.0, hard_min_frac=0.8, hard_max_frac=1.05,
            high_max_frac=1.05, ramp_frac_per_h=0.1,
        ),
    ),
    bess=(BessModel("b1", power_mw=50.0, energy_mwh=100.0),),
    captive=(CaptiveModel("c1", min_mw=200.0, max_mw=600.0, ramp_mw_per_h=600.0),),
    islanded=True,
)  # fmt: skip
L1, L2, B1, C1 = ("potline", "L1"), ("potline", "L2"), ("bess", "b1"), ("captive", "c1")
T = c.Topics()
T0 = 1.7e9


def layer(validity_s: float = 120.0, topics: c.Topics | None = None) -> SafetyLayer:
    return SafetyLayer(SITE, validity_s=validity_s, topics=topics)


def value(payload: c.PotlineSetpoint | c.PowerSetpoint) -> float:
    return payload.current_ka if isinstance(payload, c.PotlineSetpoint) else payload.power_mw


def sent(out: list[tuple[str, c.PotlineSetpoint | c.PowerSetpoint]]) -> dict[str, float]:
    return {topic: value(p) for topic, p in out}


def codes(sl: SafetyLayer) -> list[tuple[str, str]]:
    return [(e.asset, e.code) for e in sl.events]


def mpc(sl: SafetyLayer, targets: dict[tuple[str, str], float], now_s: float) -> dict[str, float]:
    return sent(sl.dispatch(targets, now_s, source=c.Source.MPC, plan_id="p1"))


# --- hand cases ----------------------------------------------------------------------------


def test_limits_come_from_the_site_model() -> None:
    lim = limits_for(SITE)
    assert set(lim) == {L1, L2, B1, C1}
    for key, expected in ((L1, (280.0, 440.0, 80.0, 400.0)), (L2, (240.0, 315.0, 30.0, 300.0))):
        a = lim[key]
        assert (a.kind, a.asset) == key
        assert (a.lower, a.upper, a.ramp_per_h, a.safe_value) == pytest.approx(expected)
    assert lim[B1] == AssetLimits("bess", "b1", -50.0, 50.0, None, 0.0)
    assert lim[C1] == AssetLimits("captive", "c1", 200.0, 600.0, 600.0, None)


def test_without_a_reference_targets_are_only_clamped() -> None:
    sl = layer()
    out = mpc(sl, {L1: 500.0, L2: 250.0, B1: -1e6, C1: 100.0}, T0)
    upper = sl.limits[L1].upper  # 1.1 · 400 kA, give or take a rounding
    assert out == {
        T.potline_setpoint("L1"): upper,
        T.potline_setpoint("L2"): 250.0,
        T.bess_setpoint("b1"): -50.0,
        T.captive_setpoint("c1"): 200.0,
    }
    assert sl.events == [
        SafetyEvent("potline", "L1", "clamped", 500.0, upper),
        SafetyEvent("bess", "b1", "clamped", -1e6, -50.0),
        SafetyEvent("captive", "c1", "clamped", 100.0, 200.0),
    ]
    assert sl.last_applied == {L1: upper, L2: 250.0, B1: -50.0, C1: 200.0}


def test_first_setpoint_ramps_from_the_observed_value() -> None:
    sl = layer()
    sl.observe("potline", "L1", 380.0, T0)
    sl.observe("captive", "c1", 300.0, T0)
    # 15 min at 80 kA/h → 20 kA; at 600 MW/h → 150 MW
    out = mpc(sl, {L1: 420.0, C1: 600.0, B1: 50.0}, T0 + 900.0)
    assert out[T.potline_setpoint("L1")] == pytest.approx(400.0)
    assert out[T.captive_setpoint("c1")] == pytest.approx(450.0)
    assert out[T.bess_setpoint("b1")] == 50.0  # no ramp limit on a battery
    assert codes(sl) == [("L1", "ramp_limited"), ("c1", "ramp_limited")]
    assert sl.events[0].requested == 420.0


def test_later_observations_do_not_move_the_ramp_reference() -> None:
    sl = layer()
    mpc(sl, {L1: 400.0}, T0)
    sl.observe("potline", "L1", 300.0, T0 + 899.0)
    out = mpc(sl, {L1: 440.0}, T0 + 900.0)
    assert out[T.potline_setpoint("L1")] == pytest.approx(420.0)


def test_nan_is_refused_and_the_last_value_resent() -> None:
    sl = layer()
    mpc(sl, {L1: 380.0, C1: 300.0, B1: 20.0}, T0)
    sl.events.clear()
    out = mpc(sl, {L1: math.nan, C1: math.inf, B1: -math.inf}, T0 + 60.0)
    assert out == {
        T.potline_setpoint("L1"): 380.0,
        T.captive_setpoint("c1"): 300.0,
        T.bess_setpoint("b1"): 20.0,
    }
    assert codes(sl) == [("L1", "refused_nan"), ("c1", "refused_nan"), ("b1", "refused_nan")]
    assert sl.events[0].applied == 380.0
    assert math.isnan(sl.events[0].requested)


def test_nan_with_nothing_known_goes_safe_or_is_skipped() -> None:
    sl = layer()
    out = mpc(sl, {L1: math.nan, B1: math.nan, C1: math.nan}, T0)
    # pot-line to nominal, battery idle; a coal unit has no safe value of its own to go to
    assert out == {T.potline_setpoint("L1"): 400.0, T.bess_setpoint("b1"): 0.0}
    assert codes(sl) == [("L1", "refused_nan"), ("b1", "refused_nan"), ("c1", "refused_nan")]
    assert math.isnan(sl.events[2].applied)
    assert C1 not in sl.last_applied


def test_nan_with_only_an_observation_holds_it() -> None:
    sl = layer()
    sl.observe("potline", "L1", 360.0, T0)
    sl.observe("captive", "c1", 250.0, T0)
    out = mpc(sl, {L1: math.nan, C1: math.nan}, T0 + 1.0)
    assert out == {T.potline_setpoint("L1"): 360.0, T.captive_setpoint("c1"): 250.0}


def test_unknown_asset_is_reported_and_skipped() -> None:
    sl = layer()
    out = mpc(sl, {("potline", "L9"): 400.0, ("grid", "pcc"): 1.0, L1: 400.0}, T0)
    assert out == {T.potline_setpoint("L1"): 400.0}
    assert codes(sl) == [("L9", "unknown_asset"), ("pcc", "unknown_asset")]


def test_safe_setpoints_ramp_towards_safe_values_and_captive_holds() -> None:
    sl = layer()
    mpc(sl, {L1: 300.0, B1: -40.0, C1: 500.0}, T0)
    out = sl.safe_setpoints(T0 + 900.0, plan_id="p1")
    assert sent(out) == {
        T.potline_setpoint("L1"): pytest.approx(320.0),  # 20 kA in 15 min towards 400
        T.potline_setpoint("L2"): 300.0,  # nothing known: straight to nominal
        T.bess_setpoint("b1"): 0.0,
        T.captive_setpoint("c1"): 500.0,
    }
    assert all(p.source is c.Source.FALLBACK and p.plan_id == "p1" for _, p in out)


def test_safe_setpoints_leave_out_a_captive_unit_with_nothing_to_hold() -> None:
    out = sent(layer().safe_setpoints(T0))
    assert T.captive_setpoint("c1") not in out
    assert out[T.potline_setpoint("L1")] == 400.0


def test_payload_fields_and_topics() -> None:
    sl = layer(validity_s=90.0, topics=c.Topics("plant7/ems"))
    out = dict(sl.dispatch({L1: 400.0, B1: 10.0, C1: 300.0}, T0, source=c.Source.RULE, plan_id="x"))
    assert set(out) == {
        "plant7/ems/command/potline/L1/setpoint",
        "plant7/ems/command/bess/b1/setpoint",
        "plant7/ems/command/captive/c1/setpoint",
    }
    line = out["plant7/ems/command/potline/L1/setpoint"]
    assert line == c.PotlineSetpoint(
        ts=T0, current_ka=400.0, valid_until=T0 + 90.0, plan_id="x", source=c.Source.RULE
    )
    assert out["plant7/ems/command/bess/b1/setpoint"] == c.PowerSetpoint(
        ts=T0, power_mw=10.0, valid_until=T0 + 90.0, plan_id="x", source=c.Source.RULE
    )


def test_heartbeat_resends_the_value_with_a_new_expiry() -> None:
    sl = layer(validity_s=60.0)
    sl.dispatch({L1: 400.0}, T0, source=c.Source.MPC, plan_id="p")
    [(_, again)] = sl.dispatch({L1: 400.0}, T0 + 30.0, source=c.Source.MPC, plan_id="p")
    assert value(again) == 400.0
    assert again.valid_until == T0 + 90.0
    assert sl.events == []


def test_result_is_within_limits_even_when_the_reference_is_not() -> None:
    sl = layer()
    sl.observe("potline", "L1", 200.0, T0)  # below the 280 kA hard minimum
    assert mpc(sl, {L1: 200.0}, T0 + 1.0)[T.potline_setpoint("L1")] == 280.0
    mpc(sl, {L1: 440.0}, T0 + 7200.0)  # two hours at 80 kA/h: up to the hard maximum
    sl.limits[L1] = replace(sl.limits[L1], upper=420.0)  # tightened while at 440
    sl.events.clear()
    assert mpc(sl, {L1: 440.0}, T0 + 7201.0)[T.potline_setpoint("L1")] == 420.0
    assert codes(sl) == [("L1", "clamped"), ("L1", "ramp_limited"), ("L1", "clamped")]


def test_time_running_backwards_holds_the_value() -> None:
    sl = layer()
    mpc(sl, {L1: 400.0}, T0)
    assert mpc(sl, {L1: 300.0}, T0 - 600.0)[T.potline_setpoint("L1")] == 400.0


def test_numpy_scalars_are_accepted() -> None:
    sl = layer()
    [(_, p)] = sl.dispatch({L1: np.float32(390.5)}, T0, source=c.Source.MPC, plan_id="")  # type: ignore[dict-item]
    assert c.decode("potline_setpoint", c.encode(p)) == p


def test_bad_construction_is_refused() -> None:
    with pytest.raises(ValueError, match="validity_s"):
        layer(validity_s=0.0)
    with pytest.raises(ValueError, match="asset name"):
        SafetyLayer(SiteModel("s", lines=(LineModel("bad name"),), islanded=True), validity_s=60.0)


def schedule(times_s: list[float], step_s: float = 900.0) -> Schedule:
    n = len(times_s)
    k = np.arange(n, dtype=np.float64)
    zeros = np.zeros(n)
    return Schedule(
        plan_id="p",
        status=SolveStatus.OPTIMAL,
        times_s=np.asarray(times_s, dtype=np.float64),
        step_s=step_s,
        line_current_ka={"L1": 380.0 + k, "L2": 290.0 + k},
        bess_power_mw={"b1": 10.0 * k},
        bess_soc_frac={"b1": zeros + 0.5},
        captive_mw={"c1": 300.0 + k},
        grid_mw=zeros,
        renewable_used_mw=zeros,
        curtailed_mw=zeros,
        heat_budget_mwh={"L1": zeros, "L2": zeros},
        production_t={"L1": zeros, "L2": zeros},
        forecast=QuantileForecast.point(np.asarray(times_s, dtype=np.float64), zeros),
    )


@pytest.mark.parametrize(
    ("now_s", "step"),
    [(-10.0, 0), (0.0, 0), (899.9, 0), (900.0, 1), (1799.0, 1), (1800.0, 2), (1e6, 2)],
)
def test_from_schedule_picks_the_step_containing_now(now_s: float, step: int) -> None:
    targets = layer().from_schedule(schedule([T0, T0 + 900.0, T0 + 1800.0]), T0 + now_s)
    assert targets == {L1: 380.0 + step, L2: 290.0 + step, B1: 10.0 * step, C1: 300.0 + step}
    assert all(type(v) is float for v in targets.values())


def test_from_an_empty_schedule_there_is_nothing_to_send() -> None:
    assert layer().from_schedule(schedule([]), T0) == {}


# --- properties ----------------------------------------------------------------------------

KEYS = (L1, L2, B1, C1)
WILD = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1e308, -5.0, 0.0]),
    st.floats(-1000.0, 1000.0),
)
STEP = st.tuples(
    st.floats(0.0, 7200.0),  # Δt to the previous call [s]
    st.booleans(),  # True: safe_setpoints instead of dispatch
    st.dictionaries(st.sampled_from(KEYS), WILD),
)


@settings(max_examples=300, deadline=None)
@given(
    observed=st.dictionaries(st.sampled_from(KEYS), st.floats(-1000.0, 1000.0)),
    steps=st.lists(STEP, max_size=25),
)
def test_setpoints_stay_within_limits_and_ramps(
    observed: dict[tuple[str, str], float],
    steps: list[tuple[float, bool, dict[tuple[str, str], float]]],
) -> None:
    sl = layer()
    lim = sl.limits
    now = T0
    # ramp reference per asset, as the plant would see it: (value, t)
    ref: dict[tuple[str, str], tuple[float, float]] = {}
    for key, v in observed.items():
        sl.observe(*key, v, now)
        ref[key] = (v, now)
    for dt, safe, targets in steps:
        now += dt
        out = (
            sl.safe_setpoints(now)
            if safe
            else sl.dispatch(targets, now, source=c.Source.MPC, plan_id="prop")
        )
        seen: set[tuple[str, str]] = set()
        for topic, payload in out:
            parsed = T.parse(topic)
            assert parsed is not None
            key = (parsed.kind.removesuffix("_setpoint"), parsed.asset)
            assert key not in seen
            seen.add(key)
            assert c.decode(parsed.kind, c.encode(payload)) == payload
            assert payload.ts == now
            assert payload.valid_until == now + 120.0
            v, a = value(payload), lim[key]
            assert math.isfinite(v)
            assert a.lower <= v <= a.upper
            if a.ramp_per_h is not None and key in ref:
                v0, t0 = ref[key]
                if a.lower <= v0 <= a.upper:  # a reference outside the limits is left in one step
                    allowed = a.ramp_per_h * (now - t0) / 3600.0
                    assert abs(v - v0) <= allowed + 1e-9 * max(1.0, abs(v0))
            ref[key] = (v, now)
            assert sl.last_applied[key] == v
        # every known asset asked for is answered, except a coal unit with nothing to hold
        asked = set(lim) if safe else set(targets)
        missing = asked - seen
        assert missing <= {C1}
        if missing:
            assert C1 not in ref
