"""Env steps per second (random actions, one process) for robotac's envs and Gymnasium's Ant-v5.

Usage::

    .venv/bin/python scripts/bench_envs.py [--steps 5000] [--seed 0]

Prints, per env, steps/s over ``--steps`` steps of uniformly random actions (resetting whenever an
episode ends, resets included in the time) and the ratio to ``Ant-v5`` measured in the same run.
The target (issue 2) is ``Quadruped-v0`` at least as fast per step as ``Ant-v5``.
"""

from __future__ import annotations

import argparse
import platform
import time

import gymnasium as gym
import numpy as np

from envs.registration import make_env

ENVS = ("robotac/Quadruped-v0", "robotac/Reach7-v0", "Ant-v5")


def steps_per_second(env_id: str, n_steps: int, seed: int) -> float:
    """Time ``n_steps`` random-action steps of ``env_id`` and return steps/s."""
    env = make_env(env_id)
    env.action_space.seed(seed)
    env.reset(seed=seed)
    for _ in range(100):  # warm-up (first-step allocations)
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    start = time.perf_counter()
    for _ in range(n_steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    elapsed = time.perf_counter() - start
    env.close()
    return n_steps / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000, help="timed steps per env")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import mujoco

    print(
        f"# {time.strftime('%Y-%m-%d %H:%M %Z')}, {platform.processor() or platform.machine()}, "
        f"python {platform.python_version()}, mujoco {mujoco.__version__}, "
        f"gymnasium {gym.__version__}, numpy {np.__version__}, {args.steps} steps each"
    )
    results = {env_id: steps_per_second(env_id, args.steps, args.seed) for env_id in ENVS}
    ant = results["Ant-v5"]
    print(f"{'env':<24}{'steps/s':>10}{'ratio to Ant-v5':>18}")
    for env_id, sps in results.items():
        print(f"{env_id:<24}{sps:>10.0f}{sps / ant:>18.2f}")


if __name__ == "__main__":
    main()
