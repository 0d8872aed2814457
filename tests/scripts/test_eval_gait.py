"""scripts/eval_gait.py --schedule: the env follows a command schedule, step-aligned."""

from __future__ import annotations

import numpy as np

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
