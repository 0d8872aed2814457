"""scripts/eval_gait.py --schedule: the env follows a command schedule, step-aligned."""

from __future__ import annotations

import numpy as np
import pytest

import envs  # noqa: F401  (chooses MUJOCO_GL before mujoco is imported)
from deploy.commands import ScheduleCommand
from envs.interface import QUADRUPED_INTERFACE
from scripts.eval_gait import run_schedule

DEFAULT = np.asarray(QUADRUPED_INTERFACE.default_pose_rad, dtype=np.float32)


def test_policy_sees_the_schedule_command_of_each_step(tmp_path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("t_s,vx,vy,yaw_rate\n0.1,0.4,0,0\n0.3,0,0.15,0\n0.5,0.4,0,0.8\n")
    schedule = ScheduleCommand(path)
    seen = []

    def policy(obs: np.ndarray) -> np.ndarray:
        seen.append(obs[42:45].copy())  # the command block
        return DEFAULT

    # command_resample_s would redraw every 5 steps without set_command holding the schedule.
    res = run_schedule(policy, {"command_resample_s": 0.1}, schedule.t_s, schedule.commands,
                       0.8, seed=0)
    assert len(seen) == 40 and not res["fell"]
    want = np.array([schedule.poll(k * 0.02) for k in range(40)])  # the deploy loop's polling
    np.testing.assert_allclose(np.array(seen), want, atol=1e-7)
    np.testing.assert_allclose(res["commands"], want)
    assert (want[:5] == 0).all() and (want[25:, 2] == 0.8).all()
    assert res["vel"].shape == (40, 3) and np.isfinite(res["vel"]).all()
    np.testing.assert_allclose(res["t_s"], np.arange(40) * 0.02)


def test_latency_steps_is_refused_outside_0_to_2_and_without_a_schedule(capsys) -> None:
    import pytest

    from scripts.eval_gait import main

    for argv, match in ((["--onnx", "p.onnx", "--latency-steps", "1"], "needs --schedule"),
                        (["--onnx", "p.onnx", "--schedule", "s.csv", "--latency-steps", "3"],
                         "must be 0, 1 or 2")):
        with pytest.raises(SystemExit):
            main(argv)
        assert match in capsys.readouterr().err


def test_single_command_mode_reports_servo_figures() -> None:
    from scripts.eval_gait import evaluate_gait

    hip = QUADRUPED_INTERFACE.joint_names.index("fl_hip_flexion")
    k = [0]

    def jumping(obs: np.ndarray) -> np.ndarray:
        a = DEFAULT.copy()
        a[hip] += 0.3 * (k[0] % 2)  # 0.3 rad in 0.02 s: 15 rad/s, over the 4.7 rad/s servo
        k[0] += 1
        return a

    kw = {"max_episode_steps": 40}
    still = evaluate_gait(lambda obs: DEFAULT, kw, (0.0, 0.0, 0.0), 1, seed=0)[0]
    jump = evaluate_gait(jumping, kw, (0.0, 0.0, 0.0), 1, seed=0)[0]
    assert still["too_fast_share"] == 0.0 and jump["steps"] == 40
    # Every step but the first moves the hip target by 0.3 rad; the first moves it by 0.
    assert jump["too_fast_share"] == 39 / 40
    # The same actions with the env's 4.5 rad/s action filter never outrun the servo.
    filt = evaluate_gait(jumping, {**kw, "action_max_rate_rad_s": 4.5}, (0.0, 0.0, 0.0), 1, 0)[0]
    assert filt["too_fast_share"] == 0.0
    # A 1 rad step of the hip target drives its servo at the torque limit while it catches up;
    # standing at the default pose never does.
    step = DEFAULT.copy()
    step[hip] += 1.0
    held = evaluate_gait(lambda obs: step, kw, (0.0, 0.0, 0.0), 1, seed=0)[0]
    assert still["torque_sat_share"] == 0.0 and held["torque_sat_share"] > 0.0


# Smoothness and stillness metrics (issue 26), on synthetic data with known answers. 50 Hz
# control rate, 9 s (an episode after its first second).
DT = 0.02
T = np.arange(451) * DT


def _square_25hz(amplitude_rad: float = 0.045) -> np.ndarray:
    """``(451, 12)``: joint 0 alternates +-amplitude every step (25 Hz), the others hold."""
    target = np.full((len(T), 12), np.pi)
    target[:, 0] += amplitude_rad * (-1.0) ** np.arange(len(T))
    return target


def test_square_wave_at_25_hz_reverses_every_step_and_is_all_high_frequency() -> None:
    from scripts.eval_gait import high_freq_power_share, mean_abs_dtarget_rad, reversal_share

    target = _square_25hz()
    one = target[:, :1]
    assert reversal_share(one) == 1.0
    assert high_freq_power_share(one, DT) > 0.999
    assert mean_abs_dtarget_rad(one) == pytest.approx(0.09)
    # Over all 12 joints the held ones count as joint-steps without a reversal; the spectral
    # share averages only the joints whose target moves.
    assert reversal_share(target) == pytest.approx(1 / 12)
    assert high_freq_power_share(target, DT) > 0.999
    # Steps of 0.005 rad or less are not counted: a +-0.002 rad square wave has no reversal.
    assert reversal_share(_square_25hz(0.002)) == 0.0


def test_slow_sine_and_held_target_are_smooth() -> None:
    from scripts.eval_gait import high_freq_power_share, mean_abs_dtarget_rad, reversal_share

    sine = np.pi + 0.3 * np.sin(2 * np.pi * 1.0 * T)[:, None] * np.ones(12)
    assert reversal_share(sine) == 0.0  # it turns only at its peaks, where its steps are small
    assert high_freq_power_share(sine, DT) < 1e-3
    # A 1 Hz sine of 0.3 rad moves 4 * 0.3 rad a second: 0.024 rad per 0.02 s step on average.
    assert mean_abs_dtarget_rad(sine) == pytest.approx(4 * 0.3 * DT, rel=0.01)
    held = np.full((len(T), 12), np.pi)
    assert reversal_share(held) == 0.0
    assert high_freq_power_share(held, DT) == 0.0
    assert mean_abs_dtarget_rad(held) == 0.0
    # A ramp (drift) is detrended away; a 10 Hz sine on it is all above 8 Hz.
    ramp = np.pi + 0.05 * T[:, None] * np.ones(12)
    assert high_freq_power_share(ramp, DT) == 0.0
    assert high_freq_power_share(ramp + 0.01 * np.sin(2 * np.pi * 10.0 * T)[:, None], DT) > 0.99
    # Half the power at 1 Hz, half at 12.5 Hz: a share of 1/2.
    mix = np.sin(2 * np.pi * 1.0 * T) + np.sin(2 * np.pi * 12.5 * T)
    assert high_freq_power_share(mix[:, None], DT) == pytest.approx(0.5, abs=0.01)


def test_feet_down_joint_speed_and_power() -> None:
    from scripts.eval_gait import all_feet_down_share, mean_abs_joint_vel_rad_s, mechanical_power_w

    contacts = np.ones((4, 4), dtype=bool)
    contacts[1, 2] = False  # one foot up in one step of four
    assert all_feet_down_share(contacts) == 0.75
    dq = np.zeros((10, 12))
    dq[:, 0] = 1.5 * (-1.0) ** np.arange(10)
    dq[:, 1] = -1.0
    assert mean_abs_joint_vel_rad_s(dq) == pytest.approx(2.5 / 12)
    torque = np.zeros((10, 12))
    torque[:, 0] = 2.0
    torque[:, 1] = 1.0  # joint 1 absorbs power (tau * q dot < 0): it counts, it does not cancel
    assert mechanical_power_w(torque, dq) == pytest.approx(2.0 * 1.5 + 1.0 * 1.0)


def test_filter_binds_where_the_target_differs_from_the_action() -> None:
    from envs.interface import ActionFilter
    from scripts.eval_gait import filter_bind_share, too_fast_share

    action = np.full((10, 12), np.pi)
    target = action.copy()
    target[3, 5] += 0.01
    target[7, 0] -= 1e-3
    target[8, 1] += 1e-9  # rounding, not the filter
    assert filter_bind_share(action, target) == 0.2
    # The env's 4.5 rad/s slew filter on a policy that alternates its hip by 0.3 rad: the filter
    # binds on every step up (0.09 of the 0.3 rad), the step back down is within its 0.09 rad.
    filt = ActionFilter(max_rate_rad_s=4.5)
    raw = np.full((11, 12), np.pi)
    raw[1::2, 0] += 0.3
    filtered = [raw[0]]
    for a in raw[1:]:
        filtered.append(filt.apply(a, filtered[-1], DT))
    filtered = np.array(filtered)
    assert filter_bind_share(raw[1:], filtered[1:]) == 0.5
    # What the policy asks for is too fast in every step (15 rad/s), the servo target in none.
    assert too_fast_share(raw, DT, 4.7) == 1.0
    assert too_fast_share(filtered, DT, 4.7) == 0.0


def test_single_command_mode_reports_smoothness_and_the_raw_too_fast_share() -> None:
    from scripts.eval_gait import evaluate_gait

    hip = QUADRUPED_INTERFACE.joint_names.index("fl_hip_flexion")
    k = [0]

    def jumping(obs: np.ndarray) -> np.ndarray:
        a = DEFAULT.copy()
        a[hip] += 0.3 * (k[0] % 2)
        k[0] += 1
        return a

    kw = {"max_episode_steps": 60, "action_max_rate_rad_s": 4.5}
    still = evaluate_gait(lambda obs: DEFAULT, kw, (0.0, 0.0, 0.0), 1, seed=0, settle_s=0.2)[0]
    jump = evaluate_gait(jumping, kw, (0.0, 0.0, 0.0), 1, seed=0, settle_s=0.2)[0]
    # Holding the default pose: the body still settles a little after 0.2 s (0.011 rad/s).
    s = still["smoothness"]
    assert s["steps"] == 50 and s["feet_down_share"] == 1.0 and s["mean_abs_dq_rad_s"] < 0.02
    assert s["reversal_share"] == 0.0 and s["filter_bind_share"] == 0.0
    assert s["hf_power_share"] == 0.0 and s["mean_abs_dtarget_rad"] == 0.0
    assert s["mech_power_w"] < 0.03
    assert still["too_fast_share_raw"] == still["too_fast_share"] == 0.0
    # The filter makes the hip's target a 25 Hz square wave of 0.09 rad: it reverses in every
    # step (1 joint of 12), all its power is above 8 Hz, the filter binds on every step up.
    j = jump["smoothness"]
    assert j["reversal_share"] == pytest.approx(1 / 12)
    assert j["hf_power_share"] > 0.99 and j["filter_bind_share"] == 0.5
    assert j["mean_abs_dtarget_rad"] == pytest.approx(0.09 / 12)
    assert j["mean_abs_dq_rad_s"] > 2 * s["mean_abs_dq_rad_s"]
    assert j["mech_power_w"] > 2 * s["mech_power_w"]
    # The raw actions outrun the servo in every step but the first; the filtered targets never.
    assert jump["too_fast_share_raw"] == 59 / 60 and jump["too_fast_share"] == 0.0


def test_grid_commands_are_clipped_to_the_trained_ranges() -> None:
    """A policy trained up to vx 0.5 m/s is judged at 0.5 where the grid says 0.6; the grid is
    unchanged for the default ranges, and a clip that makes a duplicate drops it."""
    from scripts.eval_gait import GRID, grid_commands

    assert grid_commands({}) == list(GRID)
    clipped = grid_commands({"command_ranges": {"vx": [-0.3, 0.5]}})
    assert (0.5, 0.0, 0.0) in clipped and (0.6, 0.0, 0.0) not in clipped
    assert len(clipped) == len(GRID)
    narrow = grid_commands({"command_ranges": {"vx": [-0.2, 0.4], "yaw_rate": [-0.5, 0.5]}})
    assert max(c[0] for c in narrow) == 0.4 and min(c[0] for c in narrow) == -0.2
    assert max(abs(c[2]) for c in narrow) == 0.5
    assert len(narrow) == len(set(narrow)) < len(GRID)
    # an ONNX file's deploy ranges (robotac export --deploy-range) clip the grid further
    advertised = grid_commands({"command_ranges": {"vx": [-0.3, 0.5]}}, {"vx": [-0.3, 0.4]})
    expected: list = []
    for c in clipped:
        c = (min(c[0], 0.4), c[1], c[2])
        if c not in expected:
            expected.append(c)
    assert advertised == expected and (0.5, 0.0, 0.0) not in advertised
    assert len(advertised) == len(GRID) - 1  # 0.5 and 0.4 m/s forward merge


def _episode(t: int, pushed_at: tuple[int, ...]) -> dict:
    """A synthetic run_episode record: feet down and still, except the 10 steps after each push,
    where the feet lift and the joints move."""
    rng = np.random.default_rng(0)
    contacts = np.ones((t, 4), dtype=bool)
    dq = np.zeros((t, 12))
    target = np.tile(DEFAULT.astype(np.float64), (t + 1, 1))
    pushed = np.zeros(t, dtype=bool)
    for k in pushed_at:
        pushed[k] = True
        contacts[k:k + 10, :2] = False
        dq[k:k + 10] = 1.0
        target[k + 1:k + 10] += rng.choice([-0.05, 0.05], (9, 12))  # back on step k + 9
    return {"reward": np.zeros(t), "contacts": contacts, "dq_rad_s": dq, "target_rad": target,
            "action_rad": target.copy(), "torque_nm": np.ones((t, 12)), "pushed": pushed}


def test_the_second_after_each_push_is_left_out_of_the_stillness_figures() -> None:
    """Issue 26: with randomization on, a pushed robot may step; the second after each push is
    not judged. Without pushes the figures are those of every step after the settle time."""
    from scripts.eval_gait import judged_steps, smoothness_figures

    ep = _episode(200, pushed_at=(100, 150))
    keep = judged_steps(ep, 0.02, settle_s=0.4, push_skip_s=0.2)  # 20 settle, 10 skip steps
    assert keep.sum() == 200 - 20 - 2 * 10 and not keep[100:110].any() and keep[110]
    still = smoothness_figures(ep, 0.02, settle_s=0.4, push_skip_s=0.2)
    assert still["steps"] == 160
    assert still["feet_down_share"] == 1.0 and still["mean_abs_dq_rad_s"] == 0.0
    assert still["mean_abs_dtarget_rad"] == 0.0 and still["reversal_share"] == 0.0
    # Judged with no skip, the pushes' steps count: the same episode is no longer still.
    moved = smoothness_figures(ep, 0.02, settle_s=0.4, push_skip_s=0.0)
    assert moved["steps"] == 180 and moved["feet_down_share"] == pytest.approx(160 / 180)
    assert moved["mean_abs_dq_rad_s"] > 0.05 and moved["mean_abs_dtarget_rad"] > 0.005


def test_smooth_targets_summary() -> None:
    from scripts.eval_gait import smooth_targets_met

    zero = {"feet_down_share": 0.99, "mean_abs_dq_rad_s": 0.01, "mean_abs_dtarget_rad": 0.001}
    good = {"zero_command": zero, "max_reversal_share": 0.1, "max_filter_bind_share": 0.02,
            "max_hf_power_share": 0.05}
    assert smooth_targets_met(good)
    assert not smooth_targets_met({**good, "zero_command": None})
    assert not smooth_targets_met({**good, "max_filter_bind_share": 0.06})
    assert not smooth_targets_met({**good, "zero_command": {**zero, "feet_down_share": 0.97}})
