"""robotac/Quadruped-v0: API checks, spec tables, rewards, termination, randomization, errors."""

from __future__ import annotations

import inspect
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from envs.interface import QUADRUPED_INTERFACE, QUADRUPED_OBS_LAYOUT, quadruped_obs
from envs.quadruped import (
    DEFAULT_REWARD_SCALES,
    QuadrupedEnv,
    action_table,
    observation_table,
    reward_table,
)
from envs.registration import make_env

DEFAULT = np.asarray(QUADRUPED_INTERFACE.default_pose_rad, dtype=np.float32)


def _rollout(env: gym.Env, seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    all_obs, rewards = [obs], []
    for _ in range(n):
        a = (DEFAULT + rng.uniform(-0.3, 0.3, 12)).astype(np.float32)
        obs, r, term, trunc, _ = env.step(a)
        all_obs.append(obs)
        rewards.append(r)
        if term or trunc:
            obs, _ = env.reset()
    return np.array(all_obs), np.array(rewards)


def test_gymnasium_check_env() -> None:
    env = QuadrupedEnv()
    check_env(env, skip_render_check=True)
    env_r = QuadrupedEnv(render_mode="rgb_array")
    try:
        env_r.reset(seed=0)
        env_r.render()
    except RuntimeError as e:
        assert "MUJOCO_GL" in str(e)
        return
    check_env(env_r)


def test_sb3_check_env() -> None:
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore"
        )  # SB3 advises symmetric [-1, 1] actions; ours are servo angles
        sb3_check_env(QuadrupedEnv(), warn=True)


def test_spaces_come_from_the_model() -> None:
    env = make_env("robotac/Quadruped-v0")
    assert env.action_space.shape == (12,)
    assert env.action_space.dtype == np.float32
    np.testing.assert_array_equal(env.action_space.low, np.zeros(12, np.float32))
    np.testing.assert_array_equal(env.action_space.high, np.full(12, 2 * np.pi, np.float32))
    assert env.observation_space.shape == (45,)
    assert env.observation_space.dtype == np.float32
    assert env.unwrapped.interface is QUADRUPED_INTERFACE
    assert env.spec.max_episode_steps == 1000


def test_docstring_tables_match_model_and_layout() -> None:
    env = QuadrupedEnv()
    doc = inspect.cleandoc(QuadrupedEnv.__doc__)
    assert action_table(env.sim) in doc
    assert observation_table(QUADRUPED_OBS_LAYOUT) in doc
    assert reward_table(DEFAULT_REWARD_SCALES) in doc
    # And the table really lists the ctrlrange of the model (not just its own generator).
    row = next(line for line in doc.splitlines() if line.startswith("| 11 | rl_knee"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert float(cells[2]) == 0.0 and float(cells[3]) == pytest.approx(2 * np.pi, abs=1e-4)
    assert (float(cells[4]), float(cells[5]), float(cells[6])) == (-2.6, -0.6, -1.5)


def test_same_seed_same_trajectory() -> None:
    kwargs = dict(friction_range=(0.5, 1.0), obs_noise={"gyro": 0.1}, action_latency_steps=(0, 2))
    o1, r1 = _rollout(QuadrupedEnv(**kwargs), seed=3, n=60)
    o2, r2 = _rollout(QuadrupedEnv(**kwargs), seed=3, n=60)
    np.testing.assert_array_equal(o1, o2)
    np.testing.assert_array_equal(r1, r2)
    o3, _ = _rollout(QuadrupedEnv(**kwargs), seed=4, n=60)
    assert not np.array_equal(o1, o3)


def test_reward_terms_sum_to_reward() -> None:
    # feet_air_time and gait_contacts have weight 0 by default: switch them on (and a moving
    # command, and the gait clock) to exercise them.
    # action_acc too (the standing-only terms need a standing command: the test after this).
    env = QuadrupedEnv(reward_scales={"feet_air_time": 1.0, "gait_contacts": 0.5,
                                      "action_acc": -0.01},
                       fixed_command=(0.5, 0.0, 0.0), gait_frequency_hz=3.0)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(200):
        _, r, term, _, info = env.step(rng.uniform(0, 2 * np.pi, 12).astype(np.float32))
        terms = info["reward_terms"]
        assert set(terms) == set(DEFAULT_REWARD_SCALES)
        assert sum(terms.values()) == pytest.approx(r, abs=1e-12)
        seen |= {k for k, v in terms.items() if v != 0.0}
        if term:
            assert terms["termination"] == DEFAULT_REWARD_SCALES["termination"]
            env.reset()
    assert env.reward_scales["feet_air_time"] == 1.0
    # Random servo targets exercise every term (the standing terms need a zero command, and
    # action_rate_limit a slew limit: below).
    assert seen == set(DEFAULT_REWARD_SCALES) - {"stand_still", "stand_joint_vel", "stand_power",
                                                 "action_rate_limit"}


def test_action_rate_limit_charges_the_rate_the_filter_cut() -> None:
    """``action_rate_limit`` is ``sum max(|a_t - target_{t-1}| / dt - max_rate, 0)``: zero for
    steps the slew limit passes, the cut rate [rad/s] for those it binds; it needs a slew limit."""
    with pytest.raises(ValueError, match="action_max_rate_rad_s"):
        QuadrupedEnv(reward_scales={"action_rate_limit": -0.1})
    env = QuadrupedEnv(reward_scales={"action_rate_limit": -0.1}, action_max_rate_rad_s=4.5,
                       fixed_command=(0.3, 0.0, 0.0))
    env.reset(seed=0)
    dt = env.sim.control_period_s
    default = np.asarray(QUADRUPED_INTERFACE.default_pose_rad)
    # Inside the limit (0.05 rad in 0.02 s = 2.5 rad/s): the filter passes it, no cost.
    _, _, _, _, info = env.step((default + 0.05).astype(np.float32))
    assert info["reward_terms"]["action_rate_limit"] == 0.0
    np.testing.assert_allclose(info["servo_target_rad"], default + 0.05, atol=1e-6)
    # 0.3 rad further on three joints: asked 0.3 / dt = 15 rad/s, cut to 4.5 rad/s.
    prev = info["servo_target_rad"].copy()
    a = prev.copy()
    a[:3] += 0.3
    _, r, _, _, info = env.step(a.astype(np.float32))
    asked = np.abs(a.astype(np.float32).astype(np.float64) - prev) / dt
    expected = float(np.sum(np.maximum(asked - 4.5, 0.0)))
    assert expected == pytest.approx(3 * (0.3 / dt - 4.5), rel=1e-5)
    assert info["reward_terms"]["action_rate_limit"] == pytest.approx(-0.1 * expected, rel=1e-9)
    np.testing.assert_allclose(info["servo_target_rad"][:3], prev[:3] + 4.5 * dt, atol=1e-9)
    assert sum(info["reward_terms"].values()) == pytest.approx(r, abs=1e-12)


def test_smoothness_terms_are_the_second_difference_and_the_standing_motion() -> None:
    """Issue 26's terms: ``action_acc`` is ``sum (a_t - 2 a_{t-1} + a_{t-2})^2`` of the policy's
    actions (the default pose before the first), ``stand_joint_vel`` ``sum q_dot^2`` and
    ``stand_power`` ``sum |tau q_dot|`` at a standing command only; the terms still sum to the
    reward. All three are 0-weighted by default."""
    from envs.interface import is_standing_command

    assert all(DEFAULT_REWARD_SCALES[k] == 0.0
               for k in ("action_acc", "stand_joint_vel", "stand_power"))
    scales = {"action_acc": -0.5, "stand_joint_vel": -0.05, "stand_power": -0.1}
    env = QuadrupedEnv(reward_scales=scales, command_resample_s=0.1, command_ranges={
        "vx": (-0.3, 0.3)}, standing_share=0.5)
    env.reset(seed=3)
    default = np.asarray(QUADRUPED_INTERFACE.default_pose_rad)
    rng = np.random.default_rng(3)
    actions = [default, default]
    seen = {True: 0, False: 0}
    for _ in range(60):
        a = (default + rng.uniform(-0.3, 0.3, 12)).astype(np.float32)
        _, r, term, _, info = env.step(a)
        assert not term
        actions.append(a.astype(np.float64))
        terms = info["reward_terms"]
        acc = actions[-1] - 2 * actions[-2] + actions[-3]
        assert terms["action_acc"] == pytest.approx(-0.5 * float(acc @ acc), rel=1e-12)
        standing = is_standing_command(info["reward_command"])
        seen[standing] += 1
        dq = env.sim.sensors().dq_rad_s
        if standing:
            assert terms["stand_joint_vel"] == pytest.approx(-0.05 * float(dq @ dq), rel=1e-12)
            power = float(np.sum(np.abs(info["joint_torques_nm"] * dq)))
            assert terms["stand_power"] == pytest.approx(-0.1 * power, rel=1e-12)
            assert terms["stand_joint_vel"] < 0 and terms["stand_power"] < 0
        else:
            assert terms["stand_joint_vel"] == 0.0 and terms["stand_power"] == 0.0
        assert sum(terms.values()) == pytest.approx(r, abs=1e-12)
    assert seen[True] >= 5 and seen[False] >= 5  # both kinds of command were met
    # A steady ramp has no second difference; action_rate still charges it.
    env = QuadrupedEnv(reward_scales={"action_acc": -1.0}, fixed_command=(0.3, 0.0, 0.0))
    env.reset(seed=0)
    for k in range(1, 4):
        _, _, _, _, info = env.step((default + 0.01 * k).astype(np.float32))
    assert info["reward_terms"]["action_acc"] == pytest.approx(0.0, abs=1e-12)
    assert info["reward_terms"]["action_rate"] < 0


def test_stand_still_term_counts_the_pose_error_only_when_told_to_stand() -> None:
    env = QuadrupedEnv(reward_scales={"stand_still": -0.5}, fixed_command=(0.0, 0.0, 0.0))
    env.reset(seed=1)
    default = env.interface.arrays()["default_pose_rad"]
    _, r, _, _, info = env.step((default + 0.2).astype(np.float32))
    q = env.sim.data.qpos[env.sim.joint_qpos_adr]
    expected = -0.5 * np.sum(np.abs(q - (default - np.pi)))
    assert info["reward_terms"]["stand_still"] == pytest.approx(expected)
    assert expected < -0.1  # the legs moved away from the default pose
    env = QuadrupedEnv(reward_scales={"stand_still": -0.5}, fixed_command=(0.3, 0.0, 0.0))
    env.reset(seed=1)
    _, _, _, _, info = env.step((default + 0.2).astype(np.float32))
    assert info["reward_terms"]["stand_still"] == 0.0


def test_commands_resample_within_an_episode_with_a_share_of_standing() -> None:
    env = QuadrupedEnv(command_resample_s=0.2, standing_share=0.3)  # every 10 steps
    env.reset(seed=3)
    default = env.interface.arrays()["default_pose_rad"].astype(np.float32)
    commands = []
    for t in range(1, 2001):
        _, _, term, _, info = env.step(default)
        if t % 10 == 0:
            commands.append(info["command"])
        else:
            np.testing.assert_array_equal(info["command"], commands[-1] if commands else
                                          info["command"])
        if term:
            break
    commands = np.array(commands)
    zero = np.all(commands == 0.0, axis=1)
    assert len(commands) == 200
    assert 0.2 < zero.mean() < 0.4  # share 0.3 of 200 draws
    moving = commands[~zero]
    for i, k in enumerate(("vx", "vy", "yaw_rate")):
        lo, hi = env.command_ranges[k]
        assert lo <= moving[:, i].min() and moving[:, i].max() <= hi
        assert moving[:, i].max() - moving[:, i].min() > 0.8 * (hi - lo)  # covers the range
    # A fixed command or a per-episode command in options is never redrawn.
    env = QuadrupedEnv(command_resample_s=0.1, fixed_command=(0.5, 0.0, 0.0))
    env.reset(seed=0)
    for _ in range(20):
        _, _, _, _, info = env.step(default)
    np.testing.assert_array_equal(info["command"], [0.5, 0.0, 0.0])
    env = QuadrupedEnv(command_resample_s=0.1)
    env.reset(seed=0, options={"command": (0.1, 0.2, 0.3)})
    for _ in range(20):
        _, _, _, _, info = env.step(default)
    np.testing.assert_array_equal(info["command"], [0.1, 0.2, 0.3])


def test_a_redrawn_command_is_for_the_next_action_the_reward_tracks_the_old_one() -> None:
    """legged_gym resamples after the reward: on a redraw step the reward tracks the command the
    action was chosen with (the previous observation's), and the returned observation and
    ``info["command"]`` already carry the new one, which the next reward tracks."""
    env = QuadrupedEnv(command_resample_s=0.1, reset_noise_rad=0.0)  # a redraw every 5 steps
    obs, info = env.reset(seed=2)
    sl = env.layout.slices()["command"]
    np.testing.assert_allclose(obs[sl], info["command"], atol=1e-6)
    sig = env.tracking_sigma

    def tracking(cmd, info):
        v, wz = info["base_lin_vel_m_s"], info["base_ang_vel_rad_s"][2]
        return (np.exp(-np.sum((cmd[:2] - v[:2]) ** 2) / sig),
                0.5 * np.exp(-((cmd[2] - wz) ** 2) / sig))

    redraws = 0
    for t in range(1, 31):
        chosen_with = obs[sl].astype(np.float64)
        obs, _, term, _, info = env.step(DEFAULT)
        assert not term
        lin, ang = tracking(chosen_with, info)
        assert info["reward_terms"]["tracking_lin_vel"] == pytest.approx(lin, abs=1e-5)
        assert info["reward_terms"]["tracking_ang_vel"] == pytest.approx(ang, abs=1e-5)
        np.testing.assert_allclose(info["reward_command"], chosen_with, atol=1e-6)
        np.testing.assert_allclose(obs[sl], info["command"], atol=1e-6)
        if t % 5 == 0:  # redrawn: the new command is in the observation, not in the reward
            assert np.abs(info["command"] - chosen_with).max() > 0.05
            lin_new, ang_new = tracking(info["command"], info)
            assert abs(lin_new - lin) + abs(ang_new - ang) > 0.01  # the two rewards differ
            redraws += 1
        else:
            np.testing.assert_allclose(info["command"], chosen_with, atol=1e-6)
    assert redraws == 6
    # set_command between steps likewise: the next step's reward tracks what its action was
    # chosen with, the observation it returns carries the new command.
    env = QuadrupedEnv(fixed_command=(0.0, 0.0, 0.0), reset_noise_rad=0.0)
    env.reset(seed=0)
    for _ in range(20):
        obs, *_ = env.step(DEFAULT)
    env.set_command((0.5, 0.0, 0.0))
    obs, _, _, _, info = env.step(DEFAULT)
    np.testing.assert_array_equal(info["reward_command"], [0.0, 0.0, 0.0])
    assert info["reward_terms"]["tracking_lin_vel"] > 0.95  # standing, as asked before
    np.testing.assert_allclose(obs[sl], [0.5, 0.0, 0.0])
    _, _, _, _, info = env.step(DEFAULT)
    np.testing.assert_array_equal(info["reward_command"], [0.5, 0.0, 0.0])
    assert info["reward_terms"]["tracking_lin_vel"] < 0.15  # exp(-0.25 / 0.1) = 0.08


def test_set_command_holds_mid_episode_until_reset() -> None:
    env = QuadrupedEnv(command_resample_s=0.1)  # would redraw every 5 steps
    env.reset(seed=0)
    for _ in range(3):
        env.step(DEFAULT)
    env.unwrapped.set_command((0.4, -0.1, 0.8))
    for _ in range(20):  # four redraw times pass
        obs, _, _, _, info = env.step(DEFAULT)
        np.testing.assert_array_equal(info["command"], [0.4, -0.1, 0.8])
    np.testing.assert_array_equal(obs[42:45], np.float32([0.4, -0.1, 0.8]))  # the policy sees it
    env.set_command([0.0, 0.0, 0.0])
    _, _, _, _, info = env.step(DEFAULT)
    np.testing.assert_array_equal(info["command"], [0.0, 0.0, 0.0])
    env.reset(seed=1)  # a new episode draws again, and redraws again
    first = env.command.copy()
    for _ in range(5):
        _, _, _, _, info = env.step(DEFAULT)
    assert not np.array_equal(info["command"], first)
    for bad in ((0.1, 0.2), (0.1, np.nan, 0.0), "fast"):
        with pytest.raises(ValueError, match=r"finite \(vx, vy, yaw_rate\)"):
            env.set_command(bad)


def test_action_filter_limits_how_fast_the_servo_targets_move() -> None:
    env = QuadrupedEnv(action_max_rate_rad_s=4.0, action_filter_alpha=0.5,
                       fixed_command=(0.0, 0.0, 0.0))
    obs, _ = env.reset(seed=0)
    default = env.interface.arrays()["default_pose_rad"]
    step_rad = 4.0 * env.dt  # 0.08 rad per 0.02 s
    jump = default + 0.5
    _, _, _, _, info = env.step(jump.astype(np.float32))
    np.testing.assert_allclose(info["servo_target_rad"], default + step_rad)  # slew-limited
    small = default + step_rad + 0.02
    _, _, _, _, info = env.step(small.astype(np.float32))
    np.testing.assert_allclose(info["servo_target_rad"], default + step_rad + 0.01)  # low-pass
    # The observation's previous action is the policy's action, as on the robot.
    obs, *_ = env.step(small.astype(np.float32))
    sl = env.layout.slices()["prev_action"]
    np.testing.assert_allclose(obs[sl], small - default, atol=1e-6)
    with pytest.raises(ValueError, match="alpha"):
        QuadrupedEnv(action_filter_alpha=0.0)
    with pytest.raises(ValueError, match="max_rate_rad_s"):
        QuadrupedEnv(action_max_rate_rad_s=-1.0)


def test_tracking_reward_at_rest_with_zero_command() -> None:
    env = QuadrupedEnv(fixed_command=(0.0, 0.0, 0.0), reset_noise_rad=0.0)
    env.reset(seed=0)
    for _ in range(50):
        _, r, term, _, info = env.step(DEFAULT)
    assert not term
    assert info["reward_terms"]["tracking_lin_vel"] > 0.99
    assert info["reward_terms"]["tracking_ang_vel"] > 0.49
    env2 = QuadrupedEnv(fixed_command=(0.5, 0.0, 0.0), reset_noise_rad=0.0)
    env2.reset(seed=0)
    for _ in range(50):
        _, r2, _, _, info2 = env2.step(DEFAULT)
    # Standing still against a 0.5 m/s command: exp(-0.25 / 0.1) = 0.082.
    assert info2["reward_terms"]["tracking_lin_vel"] == pytest.approx(np.exp(-2.5), abs=0.01)
    np.testing.assert_array_equal(info2["command"], [0.5, 0.0, 0.0])


def test_observation_is_quadruped_obs_of_the_sensors() -> None:
    env = QuadrupedEnv()
    obs, _ = env.reset(seed=1)
    rng = np.random.default_rng(1)
    for _ in range(20):
        a = (DEFAULT + rng.uniform(-0.4, 0.4, 12)).astype(np.float32)
        obs, _, _, _, info = env.step(a)
    s = env.sim.sensors()
    expected = quadruped_obs(
        s.quat_wxyz, s.gyro_rad_s, s.q_servo_rad, s.dq_rad_s, a, info["command"]
    )
    np.testing.assert_array_equal(obs, expected)
    assert obs.dtype == np.float32
    sl = QUADRUPED_OBS_LAYOUT.slices()
    np.testing.assert_allclose(obs[sl["prev_action"]], a - DEFAULT, atol=1e-6)
    # Privileged state is in info only.
    assert info["privileged_obs"].shape == (8,)
    np.testing.assert_allclose(info["base_lin_vel_m_s"], env.sim.base_lin_vel_body_m_s)


def test_commands_sampled_from_ranges() -> None:
    env = QuadrupedEnv(command_ranges={"vx": (0.2, 0.4), "yaw_rate": (0.0, 0.0)})
    cmds = np.array([env.reset(seed=s)[1]["command"] for s in range(30)])
    assert cmds[:, 0].min() >= 0.2 and cmds[:, 0].max() <= 0.4
    assert cmds[:, 0].std() > 0.03
    assert (cmds[:, 1] >= -0.2).all() and (cmds[:, 1] <= 0.2).all()
    np.testing.assert_array_equal(cmds[:, 2], 0.0)
    obs, info = env.reset(seed=0, options={"command": (0.5, 0.0, 0.0)})
    np.testing.assert_array_equal(obs[42:45], np.float32([0.5, 0.0, 0.0]))


def test_terminates_on_forced_fall() -> None:
    env = QuadrupedEnv(reset_noise_rad=0.0)
    env.reset(seed=0)
    _, _, term, _, _ = env.step(DEFAULT)
    assert not term
    # Roll the body 1.2 rad (beyond the 1.0 rad tilt threshold).
    d = env.sim.data
    d.qpos[3:7] = (np.cos(0.6), np.sin(0.6), 0.0, 0.0)
    _, r, term, trunc, info = env.step(DEFAULT)
    assert term and not trunc
    assert info["tilt_rad"] > 1.0
    assert info["reward_terms"]["termination"] == -2.0
    # Height threshold above the standing height terminates at once.
    env_h = QuadrupedEnv(termination_height_m=0.2)
    env_h.reset(seed=0)
    assert env_h.step(DEFAULT)[2]


def test_passive_robot_falls_and_episode_ends() -> None:
    env = make_env("robotac/Quadruped-v0", termination_height_m=0.1)
    env.reset(seed=0)
    env.unwrapped.sim.set_passive(True)
    n_steps = 0
    term = False
    while not term and n_steps < 200:
        _, _, term, _, info = env.step(DEFAULT)
        n_steps += 1
    # The legs fold against the back-EMF damping; the body is below 0.1 m after about 1.1 s.
    assert term and 30 < n_steps < 80
    assert info["base_height_m"] < 0.1


def test_stands_two_seconds_in_the_env() -> None:
    env = make_env("robotac/Quadruped-v0", fixed_command=(0.0, 0.0, 0.0))
    for seed in range(3):
        env.reset(seed=seed)
        for _ in range(100):
            _, _, term, trunc, info = env.step(DEFAULT)
            assert not term and not trunc
        assert info["base_height_m"] > 0.14
        assert info["tilt_rad"] < 0.06
        assert info["foot_contacts"].all()


def test_randomization_off_changes_nothing() -> None:
    env = QuadrupedEnv()
    m = env.sim.model
    before = (
        m.geom_friction.copy(),
        m.body_mass.copy(),
        m.actuator_gainprm.copy(),
        m.actuator_forcerange.copy(),
    )
    for seed in range(3):
        env.reset(seed=seed)
        env.step(DEFAULT)
    after = (m.geom_friction, m.body_mass, m.actuator_gainprm, m.actuator_forcerange)
    for b, a in zip(before, after, strict=True):
        np.testing.assert_array_equal(b, a)
    # Explicit None is the default; and a zero-noise dict changes no observation.
    o1, r1 = _rollout(QuadrupedEnv(), 5, 30)
    o2, r2 = _rollout(QuadrupedEnv(friction_range=None, obs_noise={"gyro": 0.0}), 5, 30)
    np.testing.assert_array_equal(o1, o2)
    np.testing.assert_array_equal(r1, r2)


def test_randomization_on_changes_what_it_should() -> None:
    env = QuadrupedEnv(
        friction_range=(0.3, 0.6),
        added_mass_range_kg=(0.2, 0.4),
        motor_strength_range=(0.7, 0.9),
    )
    frictions, masses = [], []
    for seed in range(5):
        env.reset(seed=seed)
        frictions.append(env.sim.floor_friction)
        masses.append(env.sim.body_mass_kg)
        s = env.sim.motor_strength
        assert ((s >= 0.7) & (s <= 0.9)).all() and s.std() > 0
        kp = env.sim.model.actuator_gainprm[env.sim.actuator_ids, 0]
        np.testing.assert_allclose(kp, 8.0 * s)
        np.testing.assert_allclose(
            env.sim.model.actuator_forcerange[env.sim.actuator_ids, 1], 2.9 * s
        )
    assert min(frictions) >= 0.3 and max(frictions) <= 0.6 and np.std(frictions) > 0.01
    assert min(masses) >= 1.3 and max(masses) <= 1.5 and np.std(masses) > 0.01


def test_action_latency_delays_the_servo_targets() -> None:
    env = QuadrupedEnv(action_latency_steps=(2, 2))
    env.reset(seed=0)
    assert env._latency == 2
    a = [DEFAULT + np.float32(0.1 * (k + 1)) for k in range(3)]
    for k in range(3):
        env.step(a[k])
        applied = env.sim.ctrl_servo_rad
        want = DEFAULT if k < 2 else a[0]
        np.testing.assert_allclose(applied, want, atol=1e-6)
    lat = {
        QuadrupedEnv(action_latency_steps=(0, 2)).reset(seed=s)[1]["action_latency_steps"]
        for s in range(20)
    }
    assert lat == {0, 1, 2}


def test_observation_noise_per_block() -> None:
    clean = QuadrupedEnv(reset_noise_rad=0.0)
    noisy = QuadrupedEnv(reset_noise_rad=0.0, obs_noise={"gyro": 0.2, "joint_pos": 0.01})
    oc, _ = clean.reset(seed=0)
    on, _ = noisy.reset(seed=0)
    diffs = [on - oc]
    for _ in range(200):
        oc = clean.step(DEFAULT)[0]
        on = noisy.step(DEFAULT)[0]
        diffs.append(on - oc)
    diff = np.array(diffs)
    sl = QUADRUPED_OBS_LAYOUT.slices()
    # The observation holds scale * raw: gyro std 0.25 * 0.2 = 0.05, joint_pos std 0.01.
    assert diff[:, sl["gyro"]].std() == pytest.approx(0.05, rel=0.15)
    assert diff[:, sl["joint_pos"]].std() == pytest.approx(0.01, rel=0.15)
    for other in ("projected_gravity", "joint_vel", "prev_action", "command"):
        assert np.abs(diff[:, sl[other]]).max() < 1e-6, other


def test_random_pushes_move_the_body() -> None:
    calm = QuadrupedEnv(reset_noise_rad=0.0)
    pushed = QuadrupedEnv(reset_noise_rad=0.0, push_interval_s=0.2, push_max_vel_m_s=0.5)
    calm.reset(seed=0)
    pushed.reset(seed=0)
    for _ in range(10):
        ic = calm.step(DEFAULT)[4]
        ip = pushed.step(DEFAULT)[4]
    assert np.linalg.norm(ic["base_lin_vel_m_s"][:2]) < 0.01
    assert np.linalg.norm(ip["base_lin_vel_m_s"][:2]) > 0.02


def test_bad_actions_raise_with_the_fix() -> None:
    env = QuadrupedEnv()
    env.reset(seed=0)
    a = DEFAULT.copy()
    a[[3, 7]] = [np.nan, np.inf]
    with pytest.raises(ValueError, match=r"indices \[3, 7\]"):
        env.step(a)
    with pytest.raises(ValueError, match=r"expected \(12,\)"):
        env.step(np.zeros(11, np.float32))
    # Finite out-of-range actions are clipped to the ctrlrange.
    env.step(np.full(12, 10.0, np.float32))
    np.testing.assert_allclose(env.sim.ctrl_servo_rad, 2 * np.pi)


def test_bad_kwargs_raise_listing_the_valid_ones() -> None:
    with pytest.raises(TypeError, match=r"\['frobnicate'\].*command_ranges.*obs_noise"):
        make_env("robotac/Quadruped-v0", frobnicate=1)
    with pytest.raises(ValueError, match="unknown block 'gyr'.*gyro"):
        QuadrupedEnv(obs_noise={"gyr": 0.1})
    with pytest.raises(ValueError, match="unknown key 'speed'"):
        QuadrupedEnv(command_ranges={"speed": (0, 1)})
    with pytest.raises(ValueError, match="within 0-2"):
        QuadrupedEnv(action_latency_steps=(0, 3))
    with pytest.raises(ValueError, match="low <= high"):
        QuadrupedEnv(friction_range=(1.0, 0.5))


def _swing_one_foot_air_time_rewards(command, target, max_s=None) -> list[float]:
    """Lift the front-right foot for 0.3 s and put it down; return the nonzero air-time terms.

    Every step's term is checked against the docstring's definition, recomputed from the
    reported foot contacts (contacts OR-ed with the previous step's, air time counted in control
    periods, ``min(air, max) - target`` on a touch-down, 0 at a standing command).
    """
    dt = 0.02
    env = QuadrupedEnv(reward_scales={"feet_air_time": 1.0}, fixed_command=command,
                       feet_air_time_target_s=target, feet_air_time_max_s=max_s,
                       reset_noise_rad=0.0)
    env.reset(seed=0)
    default = np.asarray(env.interface.default_pose_rad, dtype=np.float32)
    lift = default.copy()
    lift[1] += 0.9  # front-right hip flexion: swing the foot back and up
    lift[2] -= 0.9  # front-right knee: fold
    actions = [default] * 25 + [lift] * 15 + [default] * 25
    air, last = np.zeros(4), np.zeros(4, dtype=bool)
    rewarded = []
    for k, a in enumerate(actions):
        _, _, term, _, info = env.step(a)
        assert not term
        c = np.asarray(info["foot_contacts"], dtype=bool)
        filt = c | last
        last = c
        first = (air > 0) & filt
        air += dt
        capped = air if max_s is None else np.minimum(air, max_s)
        standing = np.hypot(command[0], command[1]) < 0.1 and abs(command[2]) < 0.1  # the band
        expected = 0.0 if standing else float(np.sum((capped - target) * first))
        air[filt] = 0.0
        got = info["reward_terms"]["feet_air_time"]
        assert got == pytest.approx(expected, abs=1e-9)
        if k < 25:
            assert got == 0.0  # feet down: no touch-down, no reward
        if got:
            rewarded.append(got)
    env.close()
    return rewarded


def test_feet_air_time_rewards_a_touch_down_after_a_swing() -> None:
    """legged_gym's term: on touch-down, (air time - target); nothing while the feet stay down."""
    rewarded = _swing_one_foot_air_time_rewards((0.5, 0.0, 0.0), target=0.1)
    # The front-right foot was lifted for 15 steps (0.3 s) and put down: at least one positive
    # touch-down reward of about 0.3 - 0.1 s.
    assert rewarded and max(rewarded) > 0.15


def test_feet_air_time_pays_a_turn_on_the_spot_not_a_standing_command() -> None:
    """A yaw-only command pays for stepping (legged_gym pays nothing below |cmd_xy| 0.1); zero
    does not."""
    turning = _swing_one_foot_air_time_rewards((0.0, 0.0, 0.5), target=0.1)
    assert turning and max(turning) > 0.15
    assert _swing_one_foot_air_time_rewards((0.0, 0.0, 0.0), target=0.1) == []


def test_feet_air_time_max_caps_the_reward_of_a_long_swing() -> None:
    """With ``feet_air_time_max_s`` 0.2 s a 0.3 s swing earns 0.2 - 0.1 s, not 0.2 s."""
    rewarded = _swing_one_foot_air_time_rewards((0.5, 0.0, 0.0), target=0.1, max_s=0.2)
    assert rewarded and max(rewarded) == pytest.approx(0.1, abs=1e-9)
    with pytest.raises(ValueError, match="feet_air_time_max_s must be > feet_air_time_target_s"):
        QuadrupedEnv(feet_air_time_target_s=0.25, feet_air_time_max_s=0.2)


# ------------------------------------------------------------------------------- gait clock
def test_gait_clock_observation_and_contact_reward():
    """The clock block holds (sin, cos) of the phase after k steps; gait_contacts pays +1 per foot
    on the trot reference and -0.3 per foot off it, averaged over the feet."""
    from envs.interface import desired_foot_contacts, gait_clock, gait_phase

    env = QuadrupedEnv(gait_frequency_hz=3.0, reward_scales={"gait_contacts": 0.5},
                       fixed_command=(0.3, 0.0, 0.0))
    assert env.observation_space.shape == (47,)
    assert env.interface.obs_layout.version == "quadruped-obs-v2-clock"
    obs, _ = env.reset(seed=0)
    np.testing.assert_allclose(obs[45:], gait_clock(0.0), atol=1e-7)
    rng = np.random.default_rng(1)
    default = np.asarray(QUADRUPED_INTERFACE.default_pose_rad)
    seen = set()
    for k in range(1, 41):
        obs, _, term, _, info = env.step((default + rng.uniform(-0.3, 0.3, 12)).astype(np.float32))
        phase = gait_phase(k, 3.0, 0.02)
        assert info["gait_phase"] == phase
        np.testing.assert_allclose(obs[45:], gait_clock(phase), atol=1e-6)
        match = info["foot_contacts"] == desired_foot_contacts(phase)
        expected = 0.5 * np.mean(np.where(match, 1.0, -0.3))
        assert info["reward_terms"]["gait_contacts"] == pytest.approx(expected, abs=1e-12)
        seen.add(round(expected, 6))
        assert not term
    assert len(seen) >= 3  # matched, mismatched and mixed feet all occurred


def test_gait_clock_stands_reads_zero_at_a_standing_command_only():
    """``gait_clock_stands``: the clock block is (0, 0) while the observation's command is a
    standing command and the running phase otherwise (the phase keeps counting); off by default,
    where a zero command still sees the phase (as policies exported before 2026-12-07)."""
    from envs.interface import gait_clock, gait_phase

    default = np.asarray(QUADRUPED_INTERFACE.default_pose_rad, dtype=np.float32)
    env = QuadrupedEnv(gait_frequency_hz=3.0, gait_clock_stands=True)
    obs, _ = env.reset(seed=0, options={"command": (0.0, 0.05, 0.0)})  # inside the band
    np.testing.assert_array_equal(obs[45:], [0.0, 0.0])
    for _ in range(5):
        obs, *_ = env.step(default)
        np.testing.assert_array_equal(obs[45:], [0.0, 0.0])
    env.set_command((0.3, 0.0, 0.0))  # the next observation carries it: the clock runs
    for k in range(6, 10):
        obs, _, _, _, info = env.step(default)
        assert info["gait_phase"] == gait_phase(k, 3.0, 0.02)
        np.testing.assert_allclose(obs[45:], gait_clock(gait_phase(k, 3.0, 0.02)), atol=1e-6)
    env.set_command((0.0, 0.0, 0.0))
    obs, *_ = env.step(default)
    np.testing.assert_array_equal(obs[45:], [0.0, 0.0])
    # Off (the default): the clock reads its phase at a zero command too.
    env = QuadrupedEnv(gait_frequency_hz=3.0, fixed_command=(0.0, 0.0, 0.0))
    assert env.gait_clock_stands is False
    env.reset(seed=0)
    obs, *_ = env.step(default)
    np.testing.assert_allclose(obs[45:], gait_clock(gait_phase(1, 3.0, 0.02)), atol=1e-6)
    with pytest.raises(ValueError, match="gait_clock_stands=True needs a gait clock: set "
                                         "gait_frequency_hz"):
        QuadrupedEnv(gait_clock_stands=True)


def test_gait_contacts_reference_is_all_feet_down_at_a_zero_command():
    env = QuadrupedEnv(gait_frequency_hz=3.0, reward_scales={"gait_contacts": 1.0},
                       fixed_command=(0.0, 0.0, 0.0), reset_noise_rad=0.0)
    env.reset(seed=0)
    default = np.asarray(QUADRUPED_INTERFACE.default_pose_rad, dtype=np.float32)
    for _ in range(30):  # standing still at the default pose: every foot down, every step
        _, _, _, _, info = env.step(default)
    assert info["foot_contacts"].all()
    assert info["reward_terms"]["gait_contacts"] == 1.0


@pytest.mark.parametrize("command, standing", [
    ((0.0, 0.0, 0.0), True),
    ((0.0, 0.05, 0.0), True),  # one sideways key press at deploy
    ((-0.07, 0.07, 0.09), True),  # |cmd_xy| 0.099 m/s
    ((0.0, 0.0, -0.099), True),
    ((0.0, 0.1, 0.0), False),
    ((0.0, 0.0, 0.1), False),
    ((0.3, 0.0, 0.0), False),
    ((0.0, 0.0, 0.5), False),  # a turn on the spot
])
def test_the_three_standing_terms_share_one_standing_band(command, standing):
    """``stand_still``, ``feet_air_time`` and ``gait_contacts`` all ask to stand inside the band
    (|cmd_xy| < 0.1 m/s and |cmd_yaw| < 0.1 rad/s) and all ask to step outside it: standing at
    the default pose with every foot down, gait_contacts pays 1 (all four feet down is the
    reference) and stand_still penalises the pose error inside the band; outside it
    gait_contacts pays (2 x 1 + 2 x -0.3) / 4 = 0.35 (the trot wants two feet up) and
    stand_still is 0."""
    from envs.quadruped import (
        STANDING_LIN_VEL_M_S,
        STANDING_YAW_RATE_RAD_S,
        is_standing_command,
    )

    assert (STANDING_LIN_VEL_M_S, STANDING_YAW_RATE_RAD_S) == (0.1, 0.1)
    assert is_standing_command(command) is standing
    env = QuadrupedEnv(gait_frequency_hz=3.0, fixed_command=command, reset_noise_rad=0.0,
                       reward_scales={"gait_contacts": 1.0, "stand_still": -0.5,
                                      "feet_air_time": 1.0})
    env.reset(seed=0)
    pose = DEFAULT.copy()
    pose[[1, 4, 7, 10]] += 0.05  # every hip a little off the default: a pose error to penalise
    for _ in range(30):
        _, _, term, _, info = env.step(pose)
        assert not term
    terms = info["reward_terms"]
    assert info["foot_contacts"].all()
    if standing:
        assert terms["gait_contacts"] == pytest.approx(1.0)
        assert terms["stand_still"] < -0.05
    else:
        assert terms["gait_contacts"] == pytest.approx(0.35)
        assert terms["stand_still"] == 0.0
    # feet_air_time pays a swing's touch-down outside the band only.
    rewarded = _swing_one_foot_air_time_rewards(command, target=0.1)
    assert (rewarded == []) if standing else (max(rewarded) > 0.15)


@pytest.mark.parametrize("kw, match", [
    ({"reward_scales": {"gait_contacts": 0.5}}, "no gait clock: set gait_frequency_hz"),
    ({"gait_frequency_hz": 0.0}, "gait_frequency_hz must be > 0"),
    ({"gait_frequency_hz": float("nan")}, "gait_frequency_hz must be > 0"),
    ({"gait_frequency_hz": 3.0, "gait_duty": 1.0}, r"gait_duty must be in \(0, 1\)"),
])
def test_gait_clock_settings_are_checked(kw, match):
    with pytest.raises(ValueError, match=match):
        QuadrupedEnv(**kw)


def test_the_mirror_image_of_a_trajectory_is_a_trajectory() -> None:
    """Symmetry augmentation's premise: mirrored actions from the (symmetric) standing start at
    the mirrored command give the mirrored observations and the same rewards."""
    from envs.interface import mirror_maps

    kwargs = dict(reset_noise_rad=0.0, reward_scales={"feet_air_time": 1.0, "stand_still": -0.5})
    env_a = QuadrupedEnv(fixed_command=(0.3, 0.1, 0.5), **kwargs)
    env_b = QuadrupedEnv(fixed_command=(0.3, -0.1, -0.5), **kwargs)
    m = mirror_maps(env_a.interface)
    obs_a, _ = env_a.reset(seed=0)
    obs_b, _ = env_b.reset(seed=0)
    np.testing.assert_allclose(obs_b, m.obs(obs_a), atol=1e-6)
    rng = np.random.default_rng(1)
    default = np.asarray(env_a.interface.default_pose_rad)
    for _ in range(25):
        a = default + rng.uniform(-0.3, 0.3, size=12)
        obs_a, r_a, term_a, _, _ = env_a.step(a)
        obs_b, r_b, term_b, _, _ = env_b.step(m.action(a))
        np.testing.assert_allclose(obs_b, m.obs(obs_a), atol=1e-4)
        assert r_b == pytest.approx(r_a, rel=1e-4, abs=1e-6) and term_a == term_b
    env_a.close()
    env_b.close()
