"""robotac.env_utils: seeded resets report the curriculum step, and restore it exactly."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from robotac.env_utils import SeededResets, make_vector_env


class _CurriculumEnv(gym.Env):
    """Episodes of 3 steps; records the curriculum step it was told before each reset."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self):
        self.told: list[int | None] = []
        self._step: int | None = None
        self._t = 0

    def set_curriculum_step(self, global_step):
        self._step = global_step

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.told.append(self._step)
        self._t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self._t += 1
        return np.zeros(1, np.float32), 0.0, False, self._t >= 3, {}


def test_each_reset_is_told_the_global_step_and_a_restore_continues_the_count():
    env = SeededResets(_CurriculumEnv(), seed=0, index=1, num_envs=4)
    env.reset()
    a = np.zeros(1, np.float32)
    for _ in range(2):
        for _ in range(3):
            env.step(a)
        env.reset()
    env.step(a)
    # Resets at per-env steps 0, 3 and 6 are global steps 0, 12 and 24.
    assert env.unwrapped.told == [0, 12, 24]
    state = env.robotac_state()
    assert state["steps"] == 7 and state["episode"] == 3 and len(state["actions"]) == 1

    fresh = SeededResets(_CurriculumEnv(), seed=0, index=1, num_envs=4)
    fresh.robotac_restore([None, state])
    assert fresh.unwrapped.told == [24] and fresh.steps == 7
    for _ in range(2):
        fresh.step(a)
        env.step(a)
    fresh.reset()
    env.reset()
    assert fresh.unwrapped.told[-1] == env.unwrapped.told[-1] == 36


def test_a_state_saved_before_step_counting_restores():
    fresh = SeededResets(_CurriculumEnv(), seed=0, index=0)
    fresh.robotac_restore([{"episode": 2, "actions": [[0.0], [0.0]]}])
    assert fresh.steps == 2 and fresh.episode == 2


def test_quadruped_vector_envs_start_at_the_first_stage():
    stage0 = {"at_step": 0, "command_ranges": {"vx": [0.3, 0.3], "vy": [0.0, 0.0],
                                               "yaw_rate": [0.0, 0.0]}, "randomization": 0.0}
    envs = make_vector_env("robotac/Quadruped-v0", {"curriculum": [stage0, {"at_step": 10}]},
                           num_envs=2, seed=0)
    envs.reset()
    for e in envs.envs:
        assert e.unwrapped.command.tolist() == [0.3, 0.0, 0.0]
        assert e.unwrapped.randomization_scale == 0.0
    envs.close()
