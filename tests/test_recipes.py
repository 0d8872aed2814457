"""The recipes in recipes/: each is a valid config whose env builds, and the smooth steer recipe
is the steer recipe plus exactly the issue-26 tools its header names."""

from pathlib import Path

import pytest
import yaml

from robotac.config import load_config_file, resolved, validate

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "recipes").glob("quadruped_*.yaml"))  # training recipes (not sweeps)


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_every_recipe_validates(path):
    validate(resolved(load_config_file(path)))


def test_the_smooth_steer_recipe_is_the_steer_recipe_plus_the_smoothness_tools():
    steer = yaml.safe_load((ROOT / "recipes" / "quadruped_steer.yaml").read_text())
    smooth = yaml.safe_load((ROOT / "recipes" / "quadruped_steer_smooth.yaml").read_text())
    added = {"caps_temporal_weight": 0.5, "caps_spatial_weight": 0.5, "caps_sigma": 0.05}
    assert {k: v for k, v in smooth.items() if k not in added} == {
        k: v for k, v in steer.items() if k != "env_kwargs"} | {"env_kwargs": smooth["env_kwargs"]}
    assert {k: smooth[k] for k in added} == added
    env_s, env_m = steer["env_kwargs"], dict(smooth["env_kwargs"])
    assert env_m.pop("gait_clock_stands") is True
    scales = env_m.pop("reward_scales")
    assert scales == {**env_s["reward_scales"], "action_rate": -0.1, "action_acc": -0.5,
                      "stand_joint_vel": -0.05}
    assert env_m == {k: v for k, v in env_s.items() if k != "reward_scales"}


def test_the_smooth_recipes_env_builds_with_its_terms():
    import numpy as np

    from envs.quadruped import QuadrupedEnv

    kw = dict(load_config_file(ROOT / "recipes" / "quadruped_steer_smooth.yaml").env_kwargs)
    env = QuadrupedEnv(**kw)
    obs, _ = env.reset(seed=0, options={"command": (0.0, 0.0, 0.0)})
    assert env.gait_clock_stands and np.array_equal(obs[45:], [0.0, 0.0])
    _, r, _, _, info = env.step(np.asarray(env.interface.default_pose_rad, dtype=np.float32))
    assert {"action_acc", "stand_joint_vel"} <= {k for k, v in info["reward_terms"].items()
                                                 if v != 0.0}
    assert sum(info["reward_terms"].values()) == pytest.approx(r, abs=1e-12)
