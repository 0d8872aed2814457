import json, numpy as np, gymnasium as gym
import robotac  # registers
from envs.interface import QUADRUPED_INTERFACE, QUADRUPED_COMMAND_RANGES, mirror_maps
d = {"interface": QUADRUPED_INTERFACE.to_dict(),
     "command_ranges": {k: list(v) for k, v in QUADRUPED_COMMAND_RANGES.items()}}
m = mirror_maps(QUADRUPED_INTERFACE)
d["mirror"] = {"action_index": m.action_index.tolist(), "action_sign": m.action_sign.tolist(),
               "obs_index": m.obs_index.tolist(), "obs_sign": m.obs_sign.tolist()}
open("tests/envs/data/quadruped_interface_before_issue23.json", "w").write(json.dumps(d, indent=1, sort_keys=True) + "\n")
env = gym.make("robotac/Quadruped-v0", friction_range=(0.6, 1.2), added_mass_range_kg=(-0.1, 0.3), motor_strength_range=(0.8, 1.1))
obs, _ = env.reset(seed=123)
rng = np.random.default_rng(7)
O, R, T, A = [obs], [], [], []
for t in range(60):
    a = env.action_space.sample() if False else rng.uniform(env.action_space.low, env.action_space.high).astype(np.float32)
    a = (0.85 * np.asarray(QUADRUPED_INTERFACE.default_pose_rad) + 0.15 * a).astype(np.float32)
    obs, r, term, trunc, info = env.step(a)
    O.append(obs); R.append(r); T.append(term); A.append(a)
    if term or trunc:
        break
np.savez_compressed("tests/envs/data/quadruped_trajectory_before_issue23.npz", obs=np.array(O), reward=np.array(R), terminated=np.array(T), action=np.array(A))
print(len(R), np.array(R)[:5], T[-1])
