"""Markers of the trainer tests."""


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "pendulum: trains SAC/TD3/DDPG to solve Pendulum-v1 (about 1 min each)"
    )
