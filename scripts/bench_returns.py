"""Learning curves: SAC and TD3 on HalfCheetah-v5 and Hopper-v5, several seeds, CSV + plot.

Each (algo, env, seed) is one ``robotac train`` run with default hyperparameters (CleanRL's:
256x256, batch 256, lr 3e-4, learning_starts 5000, one update per step), evaluated every
``--eval-every`` steps with 10 deterministic episodes. Writes ``returns.csv`` (algo, env, seed,
global_step, mean_return, std_return) and ``returns.png`` (mean +- std over seeds) into --out,
and prints the final returns beside the Spinning Up reference figures at 300k steps.

    python scripts/bench_returns.py --steps 300000 --seeds 0 1 2         # the full benchmark
    python scripts/bench_returns.py --steps 20000 --seeds 0 --eval-every 5000   # a short run

Runs are sequential (one torch thread each); ``--jobs N`` runs N at once in subprocesses.

The full benchmark takes longer than one session on a 2-core machine, so it is resumable: run the
same command again and every run already in ``--out`` continues from its last checkpoint
(``robotac train --resume``, bitwise; checkpoints every ``--checkpoint-every`` steps), and a
finished run (its ``eval.csv`` reached ``--steps``) is skipped.

``--sb3`` adds stable-baselines3's SAC as a same-machine peer (algo name ``sb3_sac``): SB3's
defaults (256x256, batch 256, lr 3e-4, automatic temperature with target entropy ``-act_dim``)
with ``learning_starts`` 5000 as ours, evaluated the same way; it resumes from its saved model and
replay buffer (not bitwise: SB3 does not save its random generators).
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: Spinning Up PyTorch benchmark returns at 300k steps (v3 tasks), read from the published curves.
REFERENCE = {
    ("sac", "HalfCheetah-v5"): 9200,
    ("sac", "Hopper-v5"): 2900,
    ("td3", "HalfCheetah-v5"): 7600,
    ("td3", "Hopper-v5"): 2400,
}


SB3_ALGO = "sb3_sac"


def last_eval_step(run_dir: Path) -> int:
    """The largest ``global_step`` in ``run_dir/eval.csv`` (0 when there is none)."""
    path = run_dir / "eval.csv"
    if not path.is_file():
        return 0
    with open(path) as f:
        return max((int(float(r["global_step"])) for r in csv.DictReader(f)), default=0)


def run_one(algo: str, env_id: str, seed: int, steps: int, eval_every: int, out: Path,
            extra: list[str], checkpoint_every: int) -> subprocess.Popen | None:
    """Start (or continue) one run; ``None`` when it already reached ``steps``."""
    run_dir = out / f"{env_id.replace('/', '_')}__{algo}__s{seed}"
    if last_eval_step(run_dir) >= steps:
        return None
    if algo == SB3_ALGO:
        cmd = [sys.executable, __file__, "--sb3-worker", env_id, str(seed), str(steps),
               str(eval_every), str(checkpoint_every), str(run_dir)]
    elif (run_dir / "checkpoints" / "latest.pt").is_file():
        cmd = [sys.executable, "-m", "robotac.cli", "train", "--resume", str(run_dir),
               "--total-steps", str(steps)]
    else:
        cmd = [sys.executable, "-m", "robotac.cli", "train", "--env", env_id, "--algo", algo,
               "--seed", str(seed), "--total-steps", str(steps), "--eval-every", str(eval_every),
               "--run-dir", str(run_dir), "--no-progress", "--no-video", "--no-export",
               "--checkpoint-every", str(checkpoint_every), *extra]
    log = open(out / f"{run_dir.name}.log", "a")  # noqa: SIM115 - closed with the process
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)


def sb3_worker(env_id: str, seed: int, steps: int, eval_every: int, checkpoint_every: int,
               run_dir: Path) -> int:
    """Train SB3's SAC, appending ``global_step,mean_return,std_return`` to ``run_dir/eval.csv``
    every ``eval_every`` steps (10 deterministic episodes); save model and replay buffer every
    ``checkpoint_every`` steps and continue from them when they exist."""
    import gymnasium as gym
    import numpy as np
    import torch
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.evaluation import evaluate_policy

    torch.set_num_threads(1)
    run_dir.mkdir(parents=True, exist_ok=True)
    env, eval_env = gym.make(env_id), gym.make(env_id)
    model_path, buffer_path = run_dir / "sb3_model.zip", run_dir / "sb3_buffer.pkl"
    if model_path.is_file() and buffer_path.is_file():
        model = SAC.load(model_path, env=env, device="cpu")
        model.load_replay_buffer(buffer_path)
        print(f"resumed {run_dir.name} at step {model.num_timesteps}", flush=True)
    else:
        model = SAC("MlpPolicy", env, learning_starts=5000, batch_size=256, learning_rate=3e-4,
                    buffer_size=1_000_000, policy_kwargs={"net_arch": [256, 256]}, seed=seed,
                    device="cpu", verbose=0)
    eval_csv = run_dir / "eval.csv"
    if not eval_csv.is_file():
        eval_csv.write_text("global_step,mean_return,std_return,wall_s\n")
    t0 = time.time()

    class Every(BaseCallback):
        def _on_step(self) -> bool:
            n = self.model.num_timesteps
            if n % eval_every == 0:
                rets, _ = evaluate_policy(self.model, eval_env, n_eval_episodes=10,
                                          deterministic=True, return_episode_rewards=True)
                with open(eval_csv, "a") as f:
                    f.write(f"{n},{np.mean(rets)},{np.std(rets)},{time.time() - t0:.1f}\n")
                print(f"{run_dir.name} step {n}: {np.mean(rets):.1f}", flush=True)
            if n % checkpoint_every == 0 or n == steps:
                self.model.save(model_path)
                self.model.save_replay_buffer(buffer_path)
            return True

    model.learn(total_timesteps=steps - model.num_timesteps, callback=Every(),
                reset_num_timesteps=False)
    return 0


def collect(out: Path) -> list[dict]:
    """Every evaluation of every run in ``out``; a step evaluated twice (a run interrupted after
    an evaluation and resumed from an earlier checkpoint) keeps its last row."""
    rows = []
    for eval_csv in sorted(out.glob("*__*__s*/eval.csv")):
        env_part, algo, seed = eval_csv.parent.name.split("__")
        env_id = env_part.replace("_", "/", 1) if env_part.startswith("robotac_") else env_part
        by_step: dict[int, dict] = {}
        with open(eval_csv) as f:
            for r in csv.DictReader(f):
                step = int(float(r["global_step"]))
                by_step[step] = {"algo": algo, "env": env_id, "seed": int(seed[1:]),
                                 "global_step": step, "mean_return": float(r["mean_return"]),
                                 "std_return": float(r["std_return"])}
        rows += [by_step[k] for k in sorted(by_step)]
    return rows


def mean_over_seeds(rows: list[dict]) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Mean and (population) std over seeds of one (algo, env)'s ``rows`` (from :func:`collect`),
    at the steps where every seed in ``rows`` has been evaluated: a seed still running does not
    turn the tail of the curve into a one-seed "mean".

    Returns:
        ``(steps, mean, std)``: ascending env steps, and float64 arrays of the same length.
    """
    seeds = {r["seed"] for r in rows}
    steps = sorted(st for st in {r["global_step"] for r in rows}
                   if {r["seed"] for r in rows if r["global_step"] == st} == seeds)
    per = [[r["mean_return"] for r in rows if r["global_step"] == st] for st in steps]
    return (steps, np.array([np.mean(p) for p in per], dtype=np.float64),
            np.array([np.std(p) for p in per], dtype=np.float64))


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = sorted({r["env"] for r in rows})
    fig, axes = plt.subplots(1, len(envs), figsize=(6 * len(envs), 4), squeeze=False)
    for ax, env_id in zip(axes[0], envs, strict=True):
        for k, algo in enumerate(sorted({r["algo"] for r in rows})):
            sub = [r for r in rows if r["env"] == env_id and r["algo"] == algo]
            if not sub:
                continue
            seeds = sorted({r["seed"] for r in sub})
            color = f"C{k}"
            for seed in seeds:  # each seed thin, as far as it has run
                mine = sorted((r["global_step"], r["mean_return"]) for r in sub
                              if r["seed"] == seed)
                ax.plot(*zip(*mine, strict=True), color=color, lw=0.6, alpha=0.5)
            steps, m, s = mean_over_seeds(sub)
            n = len(seeds)
            ax.plot(steps, m, color=color, label=f"{algo.upper()} ({n} seed{'s' * (n > 1)})")
            ax.fill_between(steps, m - s, m + s, color=color, alpha=0.2)
            if (algo, env_id) in REFERENCE:
                ax.axhline(REFERENCE[(algo, env_id)], ls="--", lw=0.8, color=color)
        ax.set_title(f"{env_id} (thin: each seed; dashed: Spinning Up at 300k)")
        ax.set_xlabel("env steps")
        ax.set_ylabel("deterministic eval return")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=300_000)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--algos", nargs="*", default=["sac", "td3"],
                   help="robotac algorithms (none: only the --sb3 peer)")
    p.add_argument("--envs", nargs="+", default=["HalfCheetah-v5", "Hopper-v5"])
    p.add_argument("--eval-every", type=int, default=10_000)
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel (one thread each)")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_returns")
    p.add_argument("--checkpoint-every", type=int, default=20_000,
                   help="env steps between checkpoints (what a later session resumes from)")
    p.add_argument("--sb3", type=int, nargs="*", default=None, metavar="SEED",
                   help="also run stable-baselines3's SAC with these seeds (default: the first "
                        "of --seeds)")
    p.add_argument("--sb3-worker", nargs=6, default=None, help=argparse.SUPPRESS)
    p.add_argument("extra", nargs="*", help="extra flags for robotac train (after --)")
    args = p.parse_args(argv)
    if args.sb3_worker:
        env_id, seed, steps, every, ckpt, run_dir = args.sb3_worker
        return sb3_worker(env_id, int(seed), int(steps), int(every), int(ckpt), Path(run_dir))
    if args.checkpoint_every % args.eval_every:
        p.error("--checkpoint-every must be a multiple of --eval-every")
    args.out.mkdir(parents=True, exist_ok=True)

    jobs = [(a, e, s) for e in args.envs for a in args.algos for s in args.seeds]
    if args.sb3 is not None:
        jobs += [(SB3_ALGO, e, s) for e in args.envs for s in (args.sb3 or args.seeds[:1])]
    running: list[tuple[tuple, subprocess.Popen]] = []
    t0 = time.time()
    failed = []
    while jobs or running:
        while jobs and len(running) < args.jobs:
            job = jobs.pop(0)
            proc = run_one(*job, args.steps, args.eval_every, args.out, args.extra,
                           args.checkpoint_every)
            if proc is None:
                print(f"{job[0]} {job[1]} seed {job[2]}: already finished", flush=True)
                continue
            running.append((job, proc))
        for job, proc in list(running):
            if proc.poll() is not None:
                running.remove((job, proc))
                status = "ok" if proc.returncode == 0 else f"FAILED ({proc.returncode})"
                if proc.returncode != 0:
                    failed.append(job)
                print(f"[{time.time() - t0:7.0f} s] {job[0]} {job[1]} seed {job[2]}: {status}",
                      flush=True)
        time.sleep(1.0)

    rows = collect(args.out)
    with open(args.out / "returns.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["algo", "env", "seed", "global_step", "mean_return",
                                          "std_return"])
        w.writeheader()
        w.writerows(rows)
    plot(rows, args.out / "returns.png")
    print(f"\nwrote {args.out / 'returns.csv'} and {args.out / 'returns.png'} "
          f"({time.time() - t0:.0f} s)")
    print("\n| algo | env | steps | seeds | final return (mean +- std over seeds) | "
          "Spinning Up @300k |")
    print("|---|---|---|---|---|---|")
    import numpy as np

    for (algo, env_id) in sorted({(r["algo"], r["env"]) for r in rows}):
        sub = [r for r in rows if r["algo"] == algo and r["env"] == env_id]
        last = max(r["global_step"] for r in sub)
        finals = [r["mean_return"] for r in sub if r["global_step"] == last]
        print(f"| {algo} | {env_id} | {last} | {len(finals)} | {np.mean(finals):.0f} +- "
              f"{np.std(finals):.0f} | {REFERENCE.get((algo, env_id), '-')} |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
