"""Wrote the fixtures of tests/envs/test_robot_description.py with the code before issue 23.

Run from the repository root: ``python tests/envs/data/make_reference_before_issue23.py``.
"""

import json

import gymnasium as gym
import numpy as np

import robotac  # noqa: F401  (registers robotac/Quadruped-v0)
from envs.interface import QUADRUPED_COMMAND_RANGES, QUADRUPED_INTERFACE, mirror_maps

DATA = "tests/envs/data/"
m = mirror_maps(QUADRUPED_INTERFACE)
ref = {
    "interface": QUADRUPED_INTERFACE.to_dict(),
    "command_ranges": {k: list(v) for k, v in QUADRUPED_COMMAND_RANGES.items()},
    "mirror": {"action_index": m.action_index.tolist(), "action_sign": m.action_sign.tolist(),
               "obs_index": m.obs_index.tolist(), "obs_sign": m.obs_sign.tolist()},
}
with open(DATA + "quadruped_interface_before_issue23.json", "w") as f:
    f.write(json.dumps(ref, indent=1, sort_keys=True) + "\n")

env = gym.make("robotac/Quadruped-v0", friction_range=(0.6, 1.2),
               added_mass_range_kg=(-0.1, 0.3), motor_strength_range=(0.8, 1.1))
obs, _ = env.reset(seed=123)
rng = np.random.default_rng(7)
default = np.asarray(QUADRUPED_INTERFACE.default_pose_rad)
observations, rewards, terminated, actions = [obs], [], [], []
for _ in range(60):
    a = rng.uniform(env.action_space.low, env.action_space.high).astype(np.float32)
    a = (0.85 * default + 0.15 * a).astype(np.float32)
    obs, r, term, trunc, _info = env.step(a)
    observations.append(obs)
    rewards.append(r)
    terminated.append(term)
    actions.append(a)
    if term or trunc:
        break
np.savez_compressed(DATA + "quadruped_trajectory_before_issue23.npz",
                    obs=np.array(observations), reward=np.array(rewards),
                    terminated=np.array(terminated), action=np.array(actions))
print(len(rewards), np.array(rewards)[:5], terminated[-1])
