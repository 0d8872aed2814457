"""The safety layer (DESIGN.md contract 7): clamp, rate limit, NaN guard, wire guard, states."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from deploy import protocol as P
from deploy.policy import OnnxPolicy
from deploy.safety import Fault, SafetyConfig, SafetyFault, SafetyLayer, SafetyViolation, tilt_rad
from envs.interface import QUADRUPED_INTERFACE

ARR = QUADRUPED_INTERFACE.arrays()
# Safe bounds are float32 values (OnnxPolicy.safe_bounds rounds them inward to float32).
LOW = ARR["joint_low_rad"].astype(np.float32).astype(np.float64)
HIGH = ARR["joint_high_rad"].astype(np.float32).astype(np.float64)
DEFAULT = ARR["default_pose_rad"]
PERIOD_S = 0.02


def _layer(**cfg) -> SafetyLayer:
    return SafetyLayer(LOW, HIGH, DEFAULT, PERIOD_S, SafetyConfig(**cfg))


def _state(status=0, quat=(1.0, 0.0, 0.0, 0.0), q=None) -> P.State:
    q = DEFAULT if q is None else q
    return P.State(1, 0, status, q, np.zeros(12), quat, [0, 0, 0], [0, 0, 9.81])


def test_filter_clamps_per_joint_then_rate_limits():
    s = _layer(max_rate_rad_s=10.0)  # 0.2 rad per 20 ms step
    wild = np.where(np.arange(12) % 2 == 0, 100.0, -100.0)
    target = DEFAULT.copy()
    for _ in range(100):
        new = s.filter(wild, target)
        assert (np.abs(new - target) <= 0.2 + 1e-12).all()
        assert (new >= LOW).all() and (new <= HIGH).all()
        target = new
    # It settles on each joint's own limit, the high one or the low one.
    np.testing.assert_array_equal(target, np.where(np.arange(12) % 2 == 0, HIGH, LOW))
    assert s.n_clamped == 100 and s.n_rate_limited > 0


def test_rate_limit_reaches_a_near_target_in_one_step():
    s = _layer(max_rate_rad_s=10.0)
    near = np.clip(DEFAULT + 0.05, LOW, HIGH)
    np.testing.assert_array_equal(s.filter(near, DEFAULT), near)
    assert s.n_rate_limited == 0 and s.n_clamped == 0


def test_non_finite_action_is_a_fault_naming_the_joints():
    s = _layer()
    a = DEFAULT.copy()
    a[[3, 7]] = [np.nan, np.inf]
    with pytest.raises(SafetyFault, match=r"joints \[3, 7\]") as info:
        s.filter(a, DEFAULT)
    assert info.value.fault is Fault.NON_FINITE_ACTION and s.n_non_finite == 1
    with pytest.raises(ValueError, match="shape"):
        s.filter(DEFAULT[:11], DEFAULT)


def test_wire_guard_refuses_what_must_not_be_sent():
    s = _layer()
    # The bounds themselves survive the float32 encoding of the wire.
    np.testing.assert_array_equal(s.guard(HIGH), HIGH.astype(np.float32))
    np.testing.assert_array_equal(s.guard(LOW), LOW.astype(np.float32))
    for bad in (HIGH + 1e-3, LOW - 1e-3, np.where(np.arange(12) == 5, np.nan, DEFAULT)):
        with pytest.raises(SafetyViolation, match="not sent"):
            s.guard(bad)
    with pytest.raises(SafetyViolation, match="shape"):
        s.guard(DEFAULT[:11])


def test_ramp_goes_linearly_from_the_measured_pose_to_the_default_pose():
    s = _layer(ramp_s=2.0)
    start = np.clip(DEFAULT + 0.3, LOW, HIGH)
    np.testing.assert_allclose(s.ramp_target(start, 0.0), start)
    np.testing.assert_allclose(s.ramp_target(start, 1.0), (start + DEFAULT) / 2)
    np.testing.assert_allclose(s.ramp_target(start, 5.0), DEFAULT)
    # A measured pose outside the limits starts from its clamp, never outside.
    outside = s.ramp_target(HIGH + 1.0, 0.0)
    np.testing.assert_array_equal(outside, HIGH)


@pytest.mark.parametrize(
    ("status", "fault"),
    [(P.Status.SERVO_FAULT | P.Status.ARMED, Fault.SERVO_FAULT),
     (P.Status.ESTOPPED, Fault.ROBOT_ESTOPPED),
     (P.Status.WATCHDOG_TRIPPED, Fault.WATCHDOG)],
)
def test_status_bits_stop_the_run(status, fault):
    with pytest.raises(SafetyFault) as info:
        _layer().check_state(_state(int(status)))
    assert info.value.fault is fault


def test_non_finite_or_zero_readings_and_tilt():
    s = _layer(tilt_limit_rad=math.radians(30))
    s.check_state(_state(int(P.Status.ARMED)))  # upright, armed: fine
    q = DEFAULT.copy()
    q[0] = np.nan
    for st in (_state(q=q), _state(quat=(0.0, 0.0, 0.0, 0.0))):
        with pytest.raises(SafetyFault) as info:
            s.check_state(st)
        assert info.value.fault is Fault.NON_FINITE_STATE
    for deg, tilted in ((25, False), (35, True)):
        half = math.radians(deg) / 2
        quat = (math.cos(half), math.sin(half), 0.0, 0.0)  # roll about the body x axis
        assert tilt_rad(quat) == pytest.approx(math.radians(deg))
        if tilted:
            with pytest.raises(SafetyFault, match="35.0 deg > 30.0 deg") as info:
                s.check_state(_state(quat=quat))
            assert info.value.fault is Fault.TILT
        else:
            s.check_state(_state(quat=quat))


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="max_rate_rad_s"):
        SafetyConfig(max_rate_rad_s=0)
    with pytest.raises(ValueError, match="tilt_limit_rad"):
        SafetyConfig(tilt_limit_rad=4.0)
    with pytest.raises(ValueError, match="default pose .* outside the safe bounds"):
        SafetyLayer(LOW, HIGH, HIGH + 0.1, PERIOD_S)
    with pytest.raises(ValueError, match="empty safe bounds at joints"):
        SafetyLayer(HIGH, LOW, DEFAULT, PERIOD_S)
    with pytest.raises(ValueError, match="control_period_s"):
        SafetyLayer(LOW, HIGH, DEFAULT, 0.0)


def test_safe_bounds_are_the_intersection_of_policy_bounds_and_robot_limits():
    # A policy squashed into default pose +- 0.2 rad (narrower than the limits at most joints,
    # wider at none), on a robot whose INFO reports the interface's limits.
    policy = SimpleNamespace(action_low=DEFAULT - 0.2, action_high=np.minimum(DEFAULT + 0.2,
                                                                               2 * np.pi))
    info = P.Info(1, 1, 1, 100, ARR["joint_low_rad"], ARR["joint_high_rad"])
    low, high = OnnxPolicy.safe_bounds(policy, info)
    want_low = np.maximum(policy.action_low, info.joint_min_rad.astype(np.float64))
    want_high = np.minimum(policy.action_high, info.joint_max_rad.astype(np.float64))
    assert (low >= want_low).all() and (high <= want_high).all()  # never outside either side
    np.testing.assert_allclose(low, want_low, atol=1e-6)  # and only float32 rounding inside
    np.testing.assert_allclose(high, want_high, atol=1e-6)
    assert (low.astype(np.float32).astype(np.float64) == low).all()  # survive the wire
    assert (high.astype(np.float32).astype(np.float64) == high).all()
    assert (want_low > info.joint_min_rad).any()  # the policy side does bind somewhere


# The shipped gait's actor range: the default pose +- 0.3 rad, inside the joint limits.
NARROW_LOW = np.maximum(LOW, DEFAULT - 0.3)
NARROW_HIGH = np.minimum(HIGH, DEFAULT + 0.3)


def _phases(q0: np.ndarray, actions: np.ndarray, max_rate_rad_s: float = 2.0):
    """The loop's target sequence (ramp 0.2 s, hold 0.1 s, then ``actions``) from the measured
    pose ``q0``, with the policy's bounds narrower than the joint limits."""
    s = SafetyLayer(NARROW_LOW, NARROW_HIGH, DEFAULT, PERIOD_S,
                    SafetyConfig(max_rate_rad_s=max_rate_rad_s, ramp_s=0.2, hold_s=0.1), LOW, HIGH)
    last = s.clamp_to_limits(q0)
    targets = []
    for k in range(15):  # 10 ramp steps, 5 hold steps
        goal = s.ramp_target(q0, k * PERIOD_S) if k < 10 else DEFAULT
        last = s.rate_limit(goal, last)
        targets.append(s.guard(last).astype(np.float64))
    for a in actions:
        last = s.filter(a, last)
        targets.append(s.guard(last).astype(np.float64))
    return s, np.array(targets)


@pytest.mark.parametrize("seed", range(20))
def test_the_ramp_starts_at_the_measured_pose_from_anywhere_within_the_joint_limits(seed):
    """Issue 22 hole 1: the first target is within one rate-limit step of the measured pose,
    even where that pose lies outside the policy's bounds (legs hanging on a stand), and no
    later step is larger; the policy's bounds are reached at the rate limit in the run phase."""
    rng = np.random.default_rng(seed)
    q0 = LOW + rng.uniform(0.0, 1.0, 12) * (HIGH - LOW)
    if seed == 0:  # the hardware checklist's stand: every joint hangs 0.6 rad off the pose
        q0 = np.clip(DEFAULT - 0.6, LOW, HIGH)
    actions = rng.uniform(0.0, 2 * np.pi, (400, 12))  # clamped to the narrow bounds
    s, targets = _phases(q0, actions)
    step = s.max_step_rad + 1e-6  # float32 wire rounding of values O(1..6) rad: < 1e-6
    assert np.abs(targets[0] - q0).max() <= step
    assert np.abs(np.diff(targets, axis=0)).max() <= step
    # After 400 run steps (8 s at 2 rad/s: any joint crosses its range) the targets are inside
    # the policy's bounds.
    assert (targets[-1] >= NARROW_LOW - 1e-6).all() and (targets[-1] <= NARROW_HIGH + 1e-6).all()


def test_the_wire_guard_checks_the_joint_limits_and_the_layer_refuses_wider_safe_bounds():
    s = SafetyLayer(NARROW_LOW, NARROW_HIGH, DEFAULT, PERIOD_S, SafetyConfig(), LOW, HIGH)
    s.guard(LOW)  # inside the joint limits: a ramp target from a hanging leg may be there
    with pytest.raises(SafetyViolation, match="joint limits"):
        s.guard(LOW - 0.01)
    with pytest.raises(ValueError, match="exceed the robot's joint limits"):
        SafetyLayer(LOW - 0.1, HIGH, DEFAULT, PERIOD_S, SafetyConfig(), LOW, HIGH)
