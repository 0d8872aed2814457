"""envs.interface: projected gravity (single-reading fast path and batches) and the obs builder."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envs.interface import QUADRUPED_INTERFACE, projected_gravity, quadruped_obs

quats = st.lists(st.floats(-1, 1, allow_nan=False), min_size=4, max_size=4).filter(
    lambda q: np.linalg.norm(q) > 0.1
)


@settings(max_examples=200, deadline=None)
@given(quats)
def test_single_reading_equals_batch(q: list[float]) -> None:
    single = projected_gravity(np.array(q))
    batch = projected_gravity(np.array([q, q]))
    np.testing.assert_allclose(single, batch[0], atol=1e-12)
    assert abs(np.linalg.norm(single) - 1.0) < 1e-9


def test_known_orientations() -> None:
    np.testing.assert_allclose(projected_gravity(np.array([1.0, 0, 0, 0])), [0, 0, -1])
    h = np.sqrt(0.5)
    # Rolled +90 deg about x (left side up): gravity points along the body's -y.
    np.testing.assert_allclose(projected_gravity(np.array([h, h, 0, 0])), [0, -1, 0], atol=1e-12)
    # Pitched +90 deg about y (nose down): gravity points along the body's +x.
    np.testing.assert_allclose(projected_gravity(np.array([h, 0, h, 0])), [1, 0, 0], atol=1e-12)


def test_obs_at_default_pose_is_gravity_and_command_only() -> None:
    d = np.asarray(QUADRUPED_INTERFACE.default_pose_rad)
    obs = quadruped_obs(np.array([1.0, 0, 0, 0]), np.zeros(3), d, np.zeros(12), d, [0.5, 0, 0])
    want = np.zeros(45, np.float32)
    want[2] = -1.0
    want[42] = 0.5
    np.testing.assert_array_equal(obs, want)


def test_action_filter_is_identity_by_default_and_reads_the_env_kwargs() -> None:
    from envs.interface import ActionFilter

    prev, a = np.zeros(12), np.linspace(-1.0, 1.0, 12)
    ident = ActionFilter.from_env_kwargs({"fixed_command": [0.5, 0, 0]})
    assert ident.is_identity
    np.testing.assert_array_equal(ident.apply(a, prev, 0.02), a)
    f = ActionFilter.from_env_kwargs({"action_filter_alpha": 0.5, "action_max_rate_rad_s": 5.0})
    assert f == ActionFilter(0.5, 5.0) and f.to_dict() == {"alpha": 0.5, "max_rate_rad_s": 5.0}
    out = f.apply(a, prev, 0.02)
    # 0.5 * a, then limited to 5 rad/s * 0.02 s = 0.1 rad per step.
    np.testing.assert_allclose(out, np.clip(0.5 * a, -0.1, 0.1))
    assert np.all(np.abs(np.diff(np.stack([prev, out]), axis=0)) <= 0.1 + 1e-12)


# ------------------------------------------------------------------------------- gait clock
def test_gait_phase_is_a_function_of_the_step_count():
    from envs.interface import gait_phase

    assert gait_phase(0, 3.0, 0.02) == 0.0
    assert gait_phase(10, 3.0, 0.02) == pytest.approx(0.6)
    assert gait_phase(17, 3.0, 0.02) == pytest.approx(0.02)  # 1.02 cycles
    # Computed from the count, not accumulated: no drift after a long run.
    assert gait_phase(1_000_000, 2.5, 0.02) == pytest.approx(0.0, abs=1e-9)


def test_gait_clock_and_trot_reference():
    from envs.interface import TROT_PHASE_OFFSETS, desired_foot_contacts, gait_clock

    np.testing.assert_allclose(gait_clock(0.0), [0.0, 1.0])
    np.testing.assert_allclose(gait_clock(0.25), [1.0, 0.0], atol=1e-12)
    # Legs fr, fl, rr, rl: the diagonals fr + rl and fl + rr alternate, half a cycle apart.
    assert TROT_PHASE_OFFSETS == (0.0, 0.5, 0.5, 0.0)
    np.testing.assert_array_equal(desired_foot_contacts(0.1), [True, False, False, True])
    np.testing.assert_array_equal(desired_foot_contacts(0.6), [False, True, True, False])
    # A longer stance: all four feet down around the hand-over.
    np.testing.assert_array_equal(desired_foot_contacts(0.55, duty=0.6), [True, True, True, True])


def test_with_gait_clock_adds_one_block_and_is_refused_for_unknown_layouts():
    from dataclasses import replace

    from envs.interface import (
        QUADRUPED_OBS_LAYOUT,
        QUADRUPED_OBS_LAYOUT_CLOCK,
        ObsLayout,
        with_gait_clock,
    )

    itf = with_gait_clock(QUADRUPED_INTERFACE)
    assert itf.obs_layout == QUADRUPED_OBS_LAYOUT_CLOCK
    assert itf.obs_layout.blocks[:-1] == QUADRUPED_OBS_LAYOUT.blocks
    assert itf.obs_layout.slices()["gait_clock"] == slice(45, 47)
    assert with_gait_clock(itf) is itf
    assert itf.joint_names == QUADRUPED_INTERFACE.joint_names
    other = replace(QUADRUPED_INTERFACE, obs_layout=ObsLayout("other-v1", ()))
    with pytest.raises(ValueError, match="'other-v1' has no gait-clock variant"):
        with_gait_clock(other)


def test_quadruped_obs_appends_the_clock_and_insists_on_the_phase():
    from envs.interface import gait_clock, quadruped_obs, with_gait_clock

    itf = with_gait_clock(QUADRUPED_INTERFACE)
    args = (np.array([1.0, 0, 0, 0]), np.zeros(3), np.asarray(QUADRUPED_INTERFACE.default_pose_rad),
            np.zeros(12), np.asarray(QUADRUPED_INTERFACE.default_pose_rad), np.array([0.3, 0, 0]))
    plain = quadruped_obs(*args)
    obs = quadruped_obs(*args, itf, 0.3)
    assert obs.shape == (47,)
    np.testing.assert_array_equal(obs[:45], plain)
    np.testing.assert_allclose(obs[45:], gait_clock(0.3), atol=1e-7)
    with pytest.raises(ValueError, match="has a gait_clock block: pass the gait phase"):
        quadruped_obs(*args, itf)
    with pytest.raises(ValueError, match="no gait_clock block"):
        quadruped_obs(*args, QUADRUPED_INTERFACE, 0.3)


def test_a_standing_clock_reads_zero_inside_the_standing_band_only():
    """``clock_stands``: (0, 0) for a command inside the band, the phase outside it and
    whenever the option is off (the default); the rest of the observation is untouched."""
    from envs.interface import (
        STANDING_LIN_VEL_M_S,
        STANDING_YAW_RATE_RAD_S,
        gait_clock,
        is_standing_command,
        quadruped_obs,
        with_gait_clock,
    )

    itf = with_gait_clock(QUADRUPED_INTERFACE)
    pose = np.asarray(QUADRUPED_INTERFACE.default_pose_rad)
    for command, standing in (((0.0, 0.0, 0.0), True), ((0.0, 0.05, 0.0), True),
                              ((0.0, 0.0, -0.099), True), ((0.1, 0.0, 0.0), False),
                              ((0.0, 0.0, 0.5), False), ((0.3, 0.0, 0.0), False)):
        assert is_standing_command(command) == standing
        args = (np.array([1.0, 0, 0, 0]), np.zeros(3), pose, np.zeros(12), pose,
                np.array(command), itf, 0.3)
        on = quadruped_obs(*args, clock_stands=True)
        off = quadruped_obs(*args)
        np.testing.assert_allclose(off[45:], gait_clock(0.3), atol=1e-7)
        np.testing.assert_array_equal(on[45:], [0.0, 0.0] if standing else off[45:])
        np.testing.assert_array_equal(on[:45], off[:45])
    assert (STANDING_LIN_VEL_M_S, STANDING_YAW_RATE_RAD_S) == (0.1, 0.1)
    # The env module's names are the interface's (one standing band).
    import envs.quadruped as q

    assert q.is_standing_command is is_standing_command
    assert q.STANDING_LIN_VEL_M_S is STANDING_LIN_VEL_M_S


def test_mirror_maps_are_involutions_and_swap_left_and_right():
    from envs.interface import mirror_maps, with_gait_clock

    m = mirror_maps(with_gait_clock(QUADRUPED_INTERFACE))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 47))
    a = rng.uniform(0.0, 2 * np.pi, size=(7, 12))
    np.testing.assert_allclose(m.obs(m.obs(x)), x)
    np.testing.assert_allclose(m.action(m.action(a)), a)
    names = QUADRUPED_INTERFACE.joint_names
    assert [names[i] for i in m.action_index[:3]] == ["fl_hip_abduction", "fl_hip_flexion",
                                                     "fl_knee"]
    default = np.asarray(QUADRUPED_INTERFACE.default_pose_rad)
    np.testing.assert_allclose(m.action(default), default)  # the standing pose is its own image
    # fr abduction +0.2 rad about the default -> fl abduction -0.2; flexion keeps its sign.
    b = default.copy()
    b[0] += 0.2
    b[1] += 0.1
    mb = m.action(b)
    np.testing.assert_allclose(mb[3:5] - default[3:5], [-0.2, 0.1], atol=1e-12)
    # Command (vx, vy, yaw) -> (vx, -vy, -yaw); the clock moves half a period.
    obs = quadruped_obs([1, 0, 0, 0], [0.1, 0.2, 0.3], default, np.zeros(12), default,
                        [0.3, 0.1, 0.5], with_gait_clock(QUADRUPED_INTERFACE), phase=0.1)
    mo = m.obs(obs)
    np.testing.assert_allclose(mo[42:45], [0.3, -0.1, -0.5], atol=1e-7)
    np.testing.assert_allclose(mo[3:6], 0.25 * np.array([-0.1, 0.2, -0.3]), atol=1e-7)
    np.testing.assert_allclose(mo[45:47], [np.sin(2 * np.pi * 0.6), np.cos(2 * np.pi * 0.6)],
                               atol=1e-6)


def test_the_trot_reference_is_mirrored_by_half_a_period():
    from envs.interface import desired_foot_contacts

    swap = [1, 0, 3, 2]  # fr <-> fl, rr <-> rl
    for phase in np.linspace(0, 1, 37, endpoint=False):
        a = np.asarray(desired_foot_contacts(phase, 0.5))
        b = np.asarray(desired_foot_contacts((phase + 0.5) % 1.0, 0.5))
        np.testing.assert_array_equal(a[swap], b)


def test_mirror_maps_refuse_a_robot_they_cannot_mirror():
    from dataclasses import replace

    from envs.interface import ObsBlock, ObsLayout, mirror_maps

    odd = replace(QUADRUPED_INTERFACE, obs_layout=ObsLayout(
        "x", QUADRUPED_INTERFACE.obs_layout.blocks + (ObsBlock("lidar", 4, "m", 1.0),)))
    with pytest.raises(ValueError, match="'lidar'.*no mirror rule"):
        mirror_maps(odd)
    pose = list(QUADRUPED_INTERFACE.default_pose_rad)
    pose[0] += 0.1  # fr abduction not mirrored by fl's
    with pytest.raises(ValueError, match="not left-right symmetric"):
        mirror_maps(replace(QUADRUPED_INTERFACE, default_pose_rad=tuple(pose)))
