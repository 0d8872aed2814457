"""The quadruped's training curriculum (``curriculum`` keyword of :class:`QuadrupedEnv`)."""

from __future__ import annotations

import numpy as np
import pytest

from envs.interface import QUADRUPED_INTERFACE, quadruped_obs
from envs.quadruped import QuadrupedEnv

DEFAULT = np.asarray(QUADRUPED_INTERFACE.default_pose_rad, dtype=np.float32)

DR = dict(
    friction_range=(0.5, 1.25),
    added_mass_range_kg=(-0.1, 0.3),
    motor_strength_range=(0.8, 1.2),
    action_latency_steps=(1, 2),
    obs_noise={"gyro": 0.05, "joint_pos": 0.01},
    push_interval_s=0.02,
    push_max_vel_m_s=0.3,
)
EASY = {"at_step": 0, "command_ranges": {"vx": [0.2, 0.6], "vy": [0.0, 0.0],
                                         "yaw_rate": [0.0, 0.0]},
        "standing_share": 0.0, "randomization": 0.0}


def test_values_are_linear_between_stages_and_hold_after_the_last() -> None:
    env = QuadrupedEnv(standing_share=0.2, curriculum=[EASY, {**EASY, "at_step": 100},
                                                       {"at_step": 300}])
    v = env.curriculum_values(0)
    assert v == env.curriculum_values(100)
    assert v["command_ranges"] == {"vx": (0.2, 0.6), "vy": (0.0, 0.0), "yaw_rate": (0.0, 0.0)}
    assert v["standing_share"] == 0.0 and v["randomization"] == 0.0
    mid = env.curriculum_values(200)
    np.testing.assert_allclose(mid["command_ranges"]["vx"], (-0.05, 0.6))
    np.testing.assert_allclose(mid["command_ranges"]["yaw_rate"], (-0.5, 0.5))
    assert mid["standing_share"] == pytest.approx(0.1) and mid["randomization"] == 0.5
    full = {"command_ranges": {"vx": (-0.3, 0.6), "vy": (-0.2, 0.2), "yaw_rate": (-1.0, 1.0)},
            "standing_share": 0.2, "command_zero_prob": 0.0, "randomization": 1.0,
            "reward_scales": env.reward_scales, "tracking_sigma": 0.1}
    assert env.curriculum_values(300) == env.curriculum_values(10**9) == full
    # An env never told a step (evaluation, deploy) runs the full task.
    assert env.curriculum_values(None) == full
    env.reset(seed=0)
    assert env.command_ranges == full["command_ranges"] and env.randomization_scale == 1.0


def test_first_stage_draws_easy_commands_on_the_nominal_robot() -> None:
    env = QuadrupedEnv(**DR, standing_share=0.5, command_resample_s=0.04,
                       curriculum=[EASY, {"at_step": 1000}])
    m = env.sim.model
    nominal = (m.geom_friction.copy(), m.body_mass.copy(), m.actuator_gainprm.copy())
    for seed in range(4):
        env.set_curriculum_step(0)
        obs, _ = env.reset(seed=seed)
        assert env.action_latency_steps and env._latency == 1  # the low end of (1, 2)
        cmds = [env.command.copy()]
        for _ in range(10):
            obs, *_ = env.step(DEFAULT)
            cmds.append(env.command.copy())
        cmds = np.array(cmds)
        assert (cmds[:, 0] >= 0.2).all() and (cmds[:, 0] <= 0.6).all()  # never standing
        assert (cmds[:, 1:] == 0.0).all()
        for before, now in zip(nominal, (m.geom_friction, m.body_mass, m.actuator_gainprm),
                               strict=True):
            np.testing.assert_array_equal(before, now)
    # No observation noise and no pushes (one every step at full randomization).
    s = env.sim.sensors()
    expected = quadruped_obs(s.quat_wxyz, s.gyro_rad_s, s.q_servo_rad, s.dq_rad_s, DEFAULT,
                             env.command)
    np.testing.assert_array_equal(obs, expected)
    assert np.abs(env.sim.base_lin_vel_body_m_s[:2]).max() < 0.05
    env.set_curriculum_step(1000)
    env.reset(seed=0)
    env.step(DEFAULT)
    s = env.sim.sensors()
    noisy = quadruped_obs(s.quat_wxyz, s.gyro_rad_s, s.q_servo_rad, s.dq_rad_s, DEFAULT,
                          env.command)
    assert not np.array_equal(env._observe(), noisy)


def test_command_zero_prob_zeroes_each_component_independently_and_follows_the_stages() -> None:
    """At 0.5 each component is 0 in about half the draws, independently (a pure sideways
    command about 1 in 8); a stage's value is interpolated like the others."""
    env = QuadrupedEnv(command_zero_prob=0.5,
                       curriculum=[{**EASY, "command_zero_prob": 0.0}, {"at_step": 100}])
    env.reset(seed=0)  # never told a step: the full task
    cmds = np.array([env._sample_command() for _ in range(4000)])
    zero = cmds == 0.0
    np.testing.assert_allclose(zero.mean(axis=0), 0.5, atol=0.03)
    pure_sideways = zero[:, 0] & ~zero[:, 1] & zero[:, 2]
    assert pure_sideways.mean() == pytest.approx(0.125, abs=0.02)
    for i, k in enumerate(("vx", "vy", "yaw_rate")):
        lo, hi = env.command_ranges[k]
        assert lo <= cmds[:, i].min() and cmds[:, i].max() <= hi
    assert env.curriculum_values(50)["command_zero_prob"] == pytest.approx(0.25)
    env.set_curriculum_step(0)
    env.reset(seed=1)
    assert env.command_zero_prob == 0.0
    assert all(env._sample_command()[0] >= 0.2 for _ in range(200))  # vx never zeroed
    with pytest.raises(ValueError, match=r"command_zero_prob must be in \[0, 1\]"):
        QuadrupedEnv(command_zero_prob=1.5)
    with pytest.raises(ValueError, match=r"curriculum\[0\].command_zero_prob must be in"):
        QuadrupedEnv(curriculum=[{"at_step": 0, "command_zero_prob": -0.1}])


def test_randomization_scale_moves_each_draw_towards_the_nominal_robot() -> None:
    half = [EASY, {"at_step": 100, "randomization": 1.0}]
    full_env = QuadrupedEnv(**DR, curriculum=half)
    half_env = QuadrupedEnv(**DR, curriculum=half)
    for seed in range(3):
        full_env.set_curriculum_step(100)
        half_env.set_curriculum_step(50)
        full_env.reset(seed=seed)
        half_env.reset(seed=seed)
        assert half_env.randomization_scale == 0.5
        f_full, f_half = full_env.sim.floor_friction, half_env.sim.floor_friction
        assert f_half - 1.0 == pytest.approx(0.5 * (f_full - 1.0))
        assert half_env.sim.body_mass_kg - full_env.sim.nominal_body_mass_kg == pytest.approx(
            0.5 * (full_env.sim.body_mass_kg - full_env.sim.nominal_body_mass_kg))
        np.testing.assert_allclose(half_env.sim.motor_strength - 1.0,
                                   0.5 * (full_env.sim.motor_strength - 1.0))
        assert full_env.sim.motor_strength.std() > 0


@pytest.mark.parametrize("curriculum,message", [
    ([], "non-empty list of stages"),
    ([{"at_step": 5}], r"curriculum\[0\].at_step must be 0"),
    ([EASY, {"at_step": 0}], r"curriculum\[1\].at_step must be an integer greater"),
    ([{**EASY, "pushes": 1}], r"curriculum\[0\] has unknown keys \['pushes'\]"),
    ([{"command_ranges": {"vx": [0, 0.1]}}], r"curriculum\[0\] needs at_step"),
    ([{"at_step": 0, "command_ranges": {"vx": [0.0, 0.9]}}], r"outside the env's command range"),
    ([{"at_step": 0, "command_ranges": {"v": [0.0, 0.1]}}], r"unknown key 'v'"),
    ([{"at_step": 0, "randomization": 1.5}], r"curriculum\[0\].randomization must be in"),
])
def test_bad_curricula_name_the_stage_and_the_key(curriculum, message) -> None:
    with pytest.raises(ValueError, match=message):
        QuadrupedEnv(curriculum=curriculum)


def test_reward_scales_follow_the_stages_and_the_step_pays_the_stage_weights() -> None:
    # A smoothness cost that starts at 0 and reaches the env's weight at step 100 (issue 26's
    # late smoothness terms); terms a stage does not name keep the env's weight.
    env = QuadrupedEnv(reward_scales={"action_rate": -0.1, "action_acc": -0.5},
                       curriculum=[{"at_step": 0, "reward_scales": {"action_rate": 0.0,
                                                                    "action_acc": 0.0}},
                                   {"at_step": 100}])
    assert env.curriculum_values(0)["reward_scales"]["action_rate"] == 0.0
    mid = env.curriculum_values(50)["reward_scales"]
    assert mid["action_rate"] == pytest.approx(-0.05) and mid["action_acc"] == pytest.approx(-0.25)
    assert mid["tracking_lin_vel"] == env.reward_scales["tracking_lin_vel"]
    assert env.curriculum_values(None)["reward_scales"]["action_rate"] == -0.1

    far = np.full(12, np.pi, dtype=np.float32)
    paid = {}
    for step in (0, 50, 100):
        env.set_curriculum_step(step)
        env.reset(seed=3)
        assert env.reward_scales["action_rate"] == pytest.approx(
            env.curriculum_values(step)["reward_scales"]["action_rate"])
        _, reward, _, _, info = env.step(far)  # a jump away from the default pose
        terms = info["reward_terms"]
        assert reward == pytest.approx(sum(terms.values()))
        paid[step] = terms["action_rate"]
    assert paid[0] == 0.0  # the term is there, at weight 0: nothing paid
    assert paid[100] < 0.0
    np.testing.assert_allclose(paid[50], 0.5 * paid[100], rtol=1e-6)


def test_tracking_sigma_follows_the_stages_and_the_step_pays_the_stage_kernel() -> None:
    # A kernel that sharpens from the env's 0.1 to 0.025 over steps 100-200.
    env = QuadrupedEnv(fixed_command=(0.3, 0.0, 0.0),
                       curriculum=[{"at_step": 0}, {"at_step": 100},
                                   {"at_step": 200, "tracking_sigma": 0.025}])
    assert env.curriculum_values(0)["tracking_sigma"] == env.curriculum_values(100)[
        "tracking_sigma"] == 0.1
    assert env.curriculum_values(150)["tracking_sigma"] == pytest.approx(0.0625)
    assert env.curriculum_values(10**6)["tracking_sigma"] == 0.025
    assert env.curriculum_values(None)["tracking_sigma"] == 0.1  # evaluation: the env's own
    paid = {}
    for step in (0, 150, 200):
        env.set_curriculum_step(step)
        env.reset(seed=3)
        _, _, _, _, info = env.step(DEFAULT)  # standing at a 0.3 m/s command: 0.3 m/s off
        v = info["base_lin_vel_m_s"][:2]
        err2 = (0.3 - v[0]) ** 2 + v[1] ** 2
        sigma = env.curriculum_values(step)["tracking_sigma"]
        paid[step] = info["reward_terms"]["tracking_lin_vel"]
        np.testing.assert_allclose(paid[step], env.reward_scales["tracking_lin_vel"]
                                   * np.exp(-err2 / sigma), rtol=1e-6)
    assert paid[0] > paid[150] > paid[200]


@pytest.mark.parametrize("sigma", [0.0, -0.1, float("nan"), "wide"])
def test_bad_stage_tracking_sigma_names_the_stage(sigma) -> None:
    with pytest.raises(ValueError, match=r"curriculum\[1\].tracking_sigma must be a finite "
                                         r"number > 0"):
        QuadrupedEnv(curriculum=[{"at_step": 0}, {"at_step": 10, "tracking_sigma": sigma}])


@pytest.mark.parametrize("sigma", [0.0, float("inf"), float("nan")])
def test_bad_env_tracking_sigma_is_refused_before_a_curriculum_inherits_it(sigma) -> None:
    # A stage without its own sigma takes the env's: the env refuses a bad one itself.
    with pytest.raises(ValueError, match="tracking_sigma must be a finite number > 0"):
        QuadrupedEnv(tracking_sigma=sigma, curriculum=[{"at_step": 0}, {"at_step": 10}])


@pytest.mark.parametrize("stage_scales,message", [
    ({"smoothness": -1.0}, r"curriculum\[0\].reward_scales has unknown key 'smoothness'"),
    ({"action_rate": float("nan")}, r"curriculum\[0\].reward_scales\['action_rate'\] must be "
                                    r"a finite number"),
    ({"action_rate_limit": -0.1}, r"curriculum\[0\].reward_scales\['action_rate_limit'\] is "
                                  r"non-zero but the env has no slew limit"),
    ([-0.1], r"curriculum\[0\].reward_scales must be a mapping"),
])
def test_bad_stage_reward_scales_name_the_stage_and_the_term(stage_scales, message) -> None:
    with pytest.raises(ValueError, match=message):
        QuadrupedEnv(curriculum=[{"at_step": 0, "reward_scales": stage_scales}])
