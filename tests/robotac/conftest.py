"""Markers and rendering backend of the trainer tests."""

import envs  # noqa: F401  (chooses MUJOCO_GL before mujoco is imported)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "pendulum: trains SAC/TD3/DDPG to solve Pendulum-v1 (about 1.5 min each)"
    )
