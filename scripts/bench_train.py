"""Training speed: robotac SAC vs stable-baselines3 SAC, same env, same hyperparameters, same run.

Both use 256x256 MLPs, batch 256, Adam lr 3e-4, gamma 0.99, tau 0.005, one gradient update per
env step, ``learning_starts`` random steps, one torch thread, CPU. The figure is env steps per
second *after* learning starts (random warm-up excluded, evaluation disabled), printed per env
with the ratio robotac / SB3. It also prints the machine's measured single-thread matmul
throughput and the FLOPs of one SAC update, so the distance to the hardware limit shows.

    python scripts/bench_train.py                          # Ant-v5 and robotac/Quadruped-v0
    python scripts/bench_train.py --envs Ant-v5 --steps 2000 --learning-starts 1000
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402


def matmul_gflops(n: int = 256, k: int = 256, m: int = 256, reps: int = 300) -> float:
    """Measured single-thread float32 matmul throughput [GFLOP/s] of ``(n,k) @ (k,m)``."""
    a, b = torch.randn(n, k), torch.randn(k, m)
    for _ in range(20):
        a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n * k * m * reps / (time.perf_counter() - t) / 1e9


def sac_update_flops(obs_dim: int, act_dim: int, hidden=(256, 256), batch: int = 256) -> float:
    """Matmul FLOPs of one SAC update (twin critics, actor, temperature; biases neglected).

    A linear layer ``in -> out`` costs ``2 B in out`` forward and ``4 B in out`` backward (input
    and weight gradients). Per update: actor forward at ``s'`` (target), 2 target critics forward,
    2 critics forward + backward, actor forward + backward at ``s`` through 2 frozen critics
    (forward, and input-gradient backward ``2 B in out``).
    """

    def fwd(dims):
        return sum(2 * batch * i * o for i, o in zip(dims[:-1], dims[1:], strict=True))

    a_f = fwd([obs_dim, *hidden, 2 * act_dim])
    c_f = fwd([obs_dim + act_dim, *hidden, 1])
    critic = 2 * c_f + 2 * c_f + 2 * (2 * c_f)  # targets fwd, online fwd, online bwd
    actor = a_f + a_f + 2 * a_f + 2 * c_f + 2 * c_f  # target a', fwd, bwd, critics fwd+bwd_in
    return float(critic + actor)


def bench_robotac(env_id: str, learning_starts: int, steps: int, seed: int) -> float:
    from robotac.config import TrainConfig
    from robotac.train import train

    with tempfile.TemporaryDirectory() as d:
        res = train(TrainConfig(
            env_id=env_id, algo="sac", seed=seed, total_steps=learning_starts + steps,
            learning_starts=learning_starts, buffer_size=learning_starts + steps,
            eval_every=0, eval_episodes=1, checkpoint_every=10**9, log_every=1000,
            run_dir=str(Path(d) / "run"), progress=False, video=False, export=False,
            num_threads=1,
        ))
    return float(res.learning_sps)


def bench_sb3(env_id: str, learning_starts: int, steps: int, seed: int) -> float:
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback

    from robotac.env_utils import make_env

    class Timer(BaseCallback):
        t0: float | None = None
        n0 = 0

        def _on_step(self) -> bool:
            if self.t0 is None and self.num_timesteps > learning_starts:
                self.t0, self.n0 = time.perf_counter(), self.num_timesteps
            return True

    env = make_env(env_id)
    model = SAC("MlpPolicy", env, learning_rate=3e-4, buffer_size=learning_starts + steps,
                learning_starts=learning_starts, batch_size=256, tau=0.005, gamma=0.99,
                train_freq=1, gradient_steps=1, policy_kwargs={"net_arch": [256, 256]},
                device="cpu", seed=seed, verbose=0)
    timer = Timer()
    model.learn(total_timesteps=learning_starts + steps, callback=timer)
    dt = time.perf_counter() - timer.t0
    env.close()
    return (model.num_timesteps - timer.n0) / dt


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--envs", nargs="+", default=["Ant-v5", "robotac/Quadruped-v0"])
    p.add_argument("--steps", type=int, default=2000, help="measured steps after learning starts")
    p.add_argument("--learning-starts", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=2,
                   help="alternate robotac and SB3 this many times and keep each one's best "
                        "(robust to other load on a shared machine)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    from robotac.env_utils import check_spaces, make_env

    g_sq = matmul_gflops()
    g_sq = max(g_sq, matmul_gflops())
    print(f"machine: {os.cpu_count()} cores, torch {torch.__version__}, 1 thread; "
          f"float32 matmul 256x256x256: {g_sq:.1f} GFLOP/s (best of 2)")
    rows = []
    for env_id in args.envs:
        env = make_env(env_id)
        obs_dim, low, _ = check_spaces(env, env_id)
        env.close()
        flops = sac_update_flops(obs_dim, len(low))
        ours_all, sb3_all = [], []
        for _ in range(args.repeats):
            ours_all.append(bench_robotac(env_id, args.learning_starts, args.steps, args.seed))
            sb3_all.append(bench_sb3(env_id, args.learning_starts, args.steps, args.seed))
            print(f"  {env_id}: robotac {ours_all[-1]:.1f} steps/s, SB3 {sb3_all[-1]:.1f} "
                  "steps/s", flush=True)
        ours, sb3 = max(ours_all), max(sb3_all)
        limit = g_sq * 1e9 / flops
        rows.append((env_id, obs_dim, len(low), flops, ours, sb3, limit))
        print(f"{env_id}: obs {obs_dim}, act {len(low)}; SAC update {flops / 1e6:.0f} MFLOP "
              f"-> matmul-bound limit {limit:.0f} updates/s; robotac {ours:.1f} steps/s, "
              f"SB3 {sb3:.1f} steps/s, ratio {ours / sb3:.2f}x "
              f"(robotac at {100 * ours / limit:.0f}% of the limit)")
    print("\n| env | obs/act | MFLOP/update | limit [upd/s] | robotac [steps/s] | SB3 [steps/s] "
          "| ratio |")
    print("|---|---|---|---|---|---|---|")
    for env_id, o, a, f, ours, sb3, limit in rows:
        print(f"| {env_id} | {o}/{a} | {f / 1e6:.0f} | {limit:.0f} | {ours:.1f} | {sb3:.1f} "
              f"| {ours / sb3:.2f}x |")
    return 0


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    sys.exit(main())
