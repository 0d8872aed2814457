"""Env steps per second (random actions, one process) for robotac's envs and Gymnasium's Ant-v5.

Usage::

    .venv/bin/python scripts/bench_envs.py [--steps 2000] [--rounds 5] [--seed 0]

Each env takes uniformly random actions and is reset whenever an episode ends (resets are inside
the timing). The envs are timed in interleaved rounds (``--rounds`` rounds of ``--steps`` steps
each, env after env), so that load from other processes on a shared machine hits all of them
alike; the figure per env is its median over the rounds, and the ratio is to ``Ant-v5`` measured
in the same run. The target (issue 2) is ``Quadruped-v0`` at least as fast per step as ``Ant-v5``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import gymnasium as gym
import numpy as np

from envs.registration import make_env

ENVS = ("robotac/Quadruped-v0", "robotac/Reach7-v0", "Ant-v5")


def time_steps(env: gym.Env, n_steps: int) -> float:
    """Run ``n_steps`` random-action steps of a reset ``env``; return steps/s."""
    start = time.perf_counter()
    for _ in range(n_steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    return n_steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="timed steps per env and round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import mujoco

    print(
        f"# {time.strftime('%Y-%m-%d %H:%M %Z')}, {platform.machine()}, "
        f"python {platform.python_version()}, mujoco {mujoco.__version__}, "
        f"gymnasium {gym.__version__}, numpy {np.__version__}, "
        f"{args.rounds} rounds x {args.steps} steps per env"
    )
    envs = {}
    for env_id in ENVS:
        env = make_env(env_id)
        env.action_space.seed(args.seed)
        env.reset(seed=args.seed)
        time_steps(env, 100)  # warm-up
        envs[env_id] = env
    rates: dict[str, list[float]] = {env_id: [] for env_id in ENVS}
    for _ in range(args.rounds):
        for env_id, env in envs.items():
            rates[env_id].append(time_steps(env, args.steps))
    ant = statistics.median(rates["Ant-v5"])
    print(f"{'env':<24}{'steps/s (median)':>18}{'min':>8}{'max':>8}{'ratio to Ant-v5':>18}")
    for env_id, r in rates.items():
        med = statistics.median(r)
        print(f"{env_id:<24}{med:>18.0f}{min(r):>8.0f}{max(r):>8.0f}{med / ant:>18.2f}")
    for env in envs.values():
        env.close()


if __name__ == "__main__":
    main()
