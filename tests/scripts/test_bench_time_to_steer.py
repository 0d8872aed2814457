"""scripts/bench_time_to_steer.py: the grid criterion, the evaluator protocol, a tiny table."""

from __future__ import annotations

import json
import math

import pytest

import envs  # noqa: F401  (chooses MUJOCO_GL before mujoco is imported)
from scripts.bench_time_to_steer import SteerTargets, grid_commands, grid_met, main


def _summary(**kw) -> dict:
    base = {"max_err_xy_m_s": 0.08, "max_err_yaw_rad_s": 0.15, "falls": 0,
            "too_fast_share": 0.0, "torque_sat_share": 0.001,
            "smoothness": {"zero_command": None, "max_reversal_share": 0.12,
                           "max_filter_bind_share": 0.0, "max_hf_power_share": 0.3}}
    base.update(kw)
    return base


def test_grid_met_by_a_summary_within_every_target():
    assert grid_met(_summary()) == (True, [])


@pytest.mark.parametrize("change,miss", [
    ({"max_err_xy_m_s": 0.11}, "max_err_xy_m_s 0.110 > 0.1 m/s"),
    ({"max_err_yaw_rad_s": 0.25}, "max_err_yaw_rad_s 0.250 > 0.2 rad/s"),
    ({"falls": 1}, "falls 1 > 0"),
    ({"too_fast_share": 0.06}, "too_fast_share 0.060 > 0.05"),
    ({"torque_sat_share": 0.04}, "torque_sat_share 0.040 > 0.03"),
    # Every episode of a command fell before the settle time: no velocity, NaN error.
    ({"max_err_xy_m_s": math.nan}, "max_err_xy_m_s nan > 0.1 m/s"),
])
def test_grid_missed_names_the_target(change, miss):
    assert grid_met(_summary(**change)) == (False, [miss])


def test_smoothness_targets_join_the_criterion():
    targets = SteerTargets(smoothness={"max_reversal_share": 0.1})
    assert grid_met(_summary(), targets) == (False, ["max_reversal_share 0.120 > 0.1"])
    assert grid_met(_summary(), SteerTargets(smoothness={"max_reversal_share": 0.2}))[0]
    with pytest.raises(KeyError, match="max_reversals.*its keys"):
        grid_met(_summary(), SteerTargets(smoothness={"max_reversals": 0.1}))


def test_grid_commands_stay_inside_the_trained_ranges():
    """eval_gait's grid: each command clipped to the trained ranges, duplicates dropped."""
    full = grid_commands({})
    assert len(full) == 16 and (0.6, 0.0, 0.0) in full
    forward = grid_commands({"command_ranges": {"vx": [0.0, 0.4], "vy": [0.0, 0.0],
                                                "yaw_rate": [0.0, 0.0]}})
    assert forward == [(0.0, 0.0, 0.0), (0.2, 0.0, 0.0), (0.4, 0.0, 0.0), (0.3, 0.0, 0.0)]
    top = grid_commands({"command_ranges": {"vx": [-0.3, 0.5]}})
    assert (0.5, 0.0, 0.0) in top and (0.6, 0.0, 0.0) not in top and len(top) == 16
    assert (0.6, 0.0, 0.0) not in grid_commands({}, exclude=((0.6, 0.0, 0.0),))
    assert len(grid_commands({}, exclude=((0.6, 0.0, 0.0),))) == 15
    with pytest.raises(ValueError, match=r"--exclude \[\(0.5, 0.0, 0.0\)\]: not commands"):
        grid_commands({}, exclude=((0.5, 0.0, 0.0),))


def test_tiny_table_end_to_end(tmp_path, capsys):
    """A robotac row and an SB3 SAC row of 200 steps each, a grid check every 100 steps by the
    evaluator processes: every snapshot is evaluated once, in order, the grid is not met, the
    jobs end with their training, and the table and JSON say so."""
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text("env_id: robotac/Quadruped-v0\nalgo: sac\ntotal_steps: 200\n"
                      "learning_starts: 100\nbatch_size: 32\nhidden: [16, 16]\n"
                      "buffer_size: 1000\n")
    out = tmp_path / "t.json"
    rc = main(["--config", f"tiny={recipe}", "--sb3", f"sb3={recipe}", "--seeds", "1",
               "--check-every", "100", "--episodes", "1", "--episode-s", "1.2",
               "--budget-min", "5", "--parallel", "2", "--work", str(tmp_path / "w"),
               "--exclude", "0.6,0,0", "--json", str(out)])
    assert rc == 0
    result = json.loads(out.read_text())
    assert result["excluded_commands"] == [[0.6, 0.0, 0.0]]
    jobs = {j["name"]: j for j in result["jobs"]}
    for name in ("tiny", "sb3"):
        job = jobs[name]
        assert job["status"] == "trained", job
        steps = [c["env_steps"] for c in job["checks"]]
        assert steps[:2] == [100, 200] and set(steps) <= {100, 200}, steps
        assert all(not c["met"] and c["misses"] for c in job["checks"])
        walls = [c["wall_s"] for c in job["checks"]]
        assert walls == sorted(walls) and walls[0] > 0
        assert job["reached_s"] is None
    table = capsys.readouterr().out
    assert "| tiny | 1 | - (> 5) |" in table and "| sb3 | 1 | - (> 5) |" in table


def test_sb3_crossq_peer_snapshot_acts_in_the_recipe_range(tmp_path):
    """The --sb3-crossq worker trains sb3-contrib's CrossQ on the recipe's env (120 steps), writes
    a snapshot, and the evaluator's policy built from it acts inside the recipe's actor range."""
    import argparse
    import time

    import numpy as np

    from robotac.config import load_config_file
    from robotac.env_utils import actor_bounds, make_env
    from scripts.bench_time_to_steer import _sb3_snapshot_policy, sb3_worker

    recipe = tmp_path / "tiny.yaml"
    recipe.write_text("env_id: robotac/Quadruped-v0\nalgo: sac\ntotal_steps: 120\n"
                      "learning_starts: 100\nbatch_size: 16\nhidden: [16, 16]\n"
                      "buffer_size: 1000\nactor_bounds: default_pose\nactor_bound_radius: 0.3\n")
    snaps = tmp_path / "snaps"
    args = argparse.Namespace(sb3_worker=str(recipe), sb3_algo="crossq", seeds=[1],
                              snapshots=str(snaps), check_every=120, budget_min=5.0,
                              t0=time.time(), sb3_critic=[32, 32])
    assert sb3_worker(args) == 0
    (snap,) = snaps.glob("snap_*.zip")
    policy, env_kwargs, steps = _sb3_snapshot_policy(snap)
    assert steps == 120
    cfg = load_config_file(recipe)
    env = make_env(cfg.env_id)
    low, high = actor_bounds(env, cfg.env_id, "default_pose", env.action_space.low,
                             env.action_space.high, 0.3)
    obs, _ = env.reset(seed=0)
    for _ in range(5):
        a = policy(obs)
        assert a.shape == low.shape and np.all(a >= low - 1e-6) and np.all(a <= high + 1e-6)
        obs, *_ = env.step(a)
    env.close()
