"""Markers and rendering backend of the trainer tests."""

import os

# Headless MuJoCo rendering (the GL backend is fixed when mujoco is first imported).
os.environ.setdefault("MUJOCO_GL", "osmesa")
os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "pendulum: trains SAC/TD3/DDPG to solve Pendulum-v1 (about 1.5 min each)"
    )
