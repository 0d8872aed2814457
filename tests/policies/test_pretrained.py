"""The shipped policy (policies/pretrained/quadruped_sac.onnx) loads, matches the robot, walks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from deploy.policy import OnnxPolicy
from envs.interface import QUADRUPED_INTERFACE
from envs.registration import make_env

PRETRAINED = Path(__file__).resolve().parents[2] / "policies" / "pretrained"


def test_shipped_policy_matches_the_quadruped_interface():
    policy = OnnxPolicy(PRETRAINED / "quadruped_sac.onnx")
    QUADRUPED_INTERFACE.check_matches(policy.interface)
    assert policy.metadata["env_id"] == "robotac/Quadruped-v0"
    assert policy.metadata["algo"] == "sac"
    # Trained with actor_bounds=default_pose: inside the joint limits, so nothing is clamped.
    arr = QUADRUPED_INTERFACE.arrays()
    assert np.all(policy.action_low >= arr["joint_low_rad"] - 1e-6)
    assert np.all(policy.action_high <= arr["joint_high_rad"] + 1e-6)
    config = json.loads((PRETRAINED / "quadruped_sac.config.json").read_text())
    assert config["env_kwargs"] == policy.metadata["env_kwargs"]


def test_shipped_policy_carries_nothing_of_the_machine_it_was_made_on():
    policy = OnnxPolicy(PRETRAINED / "quadruped_sac.onnx")
    assert policy.metadata["source_run"] == "quadruped-walk-sac"
    text = json.dumps(policy.metadata)
    for fragment in ('"/tmp', '"/home', '"/root', '"/work', '"/Users'):
        assert fragment not in text, fragment


def test_shipped_policy_walks_forward_in_the_env():
    """5 s at a commanded 0.5 m/s: no fall, mean forward velocity above 0.35 m/s (the full
    10-episode figure, 0.44 m/s, is in quadruped_sac.gait.json and docs/benchmarks.md)."""
    policy = OnnxPolicy(PRETRAINED / "quadruped_sac.onnx")
    kwargs = dict(policy.metadata["env_kwargs"])
    kwargs["fixed_command"] = (0.5, 0.0, 0.0)
    env = make_env("robotac/Quadruped-v0", **kwargs)
    obs, _ = env.reset(seed=123)
    vx = []
    for _ in range(250):
        obs, _, terminated, truncated, info = env.step(policy(obs))
        assert not terminated, "the shipped policy fell"
        vx.append(info["base_lin_vel_m_s"][0])
    env.close()
    assert np.mean(vx[50:]) > 0.35, np.mean(vx[50:])
