"""Learning curves: SAC, TD3 or CrossQ on Gymnasium tasks, several seeds, peers, CSV + plot.

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
replay buffer (not bitwise: SB3 does not save its random generators). ``--sb3-algo crossq``
makes the peer sb3-contrib's CrossQ instead (``sb3_crossq``): learning rate 1e-3, batch 256,
policy delay 3, Adam betas (0.5, 0.999), Batch Renormalization momentum 0.01 (its defaults, and
robotac's CrossQ's), with robotac's 2048-unit critics unless ``--critic-hidden`` says otherwise.

``--learning-starts``, ``--critic-hidden`` and ``--batch-renorm-warmup`` set robotac's runs and
the peer alike, so that a comparison is at equal settings. Every session's wall time is appended
to ``sessions.csv`` (run, first and last step, seconds); the table's env steps/s is the run's
steps over its sessions' wall time, evaluations and checkpoints included, on whatever else the
machine was running at the time, so compare only rows of the same call (``--jobs`` runs at once).

    # CrossQ against sb3-contrib's on Pendulum-v1 (docs/benchmarks.md)
    python scripts/bench_returns.py --envs Pendulum-v1 --algos crossq --seeds 0 1 --sb3 0 1 \
        --sb3-algo crossq --steps 10000 --eval-every 2000 --learning-starts 1000 \
        --critic-hidden 256 256 --batch-renorm-warmup 2000 --jobs 2 --out runs/bench_crossq
"""

from __future__ import annotations

import argparse
import csv
import json
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


SB3_ALGO = "sb3_sac"  # the peer's name with --sb3-algo sac (the default)


def peer_settings(args: argparse.Namespace) -> dict:
    """What the peer needs to run at the settings of robotac's runs (``--sb3-algo``,
    ``--learning-starts``, ``--critic-hidden``, ``--batch-renorm-warmup``)."""
    return {"algo": args.sb3_algo, "learning_starts": args.learning_starts,
            "critic_hidden": args.critic_hidden, "batch_renorm_warmup": args.batch_renorm_warmup}


def shared_flags(algo: str, settings: dict) -> list[str]:
    """``robotac train`` flags of the settings shared with the peer (those given)."""
    flags = []
    if settings["learning_starts"] is not None:
        flags += ["--learning-starts", str(settings["learning_starts"])]
    if settings["critic_hidden"]:
        flags += ["--critic-hidden", *map(str, settings["critic_hidden"])]
    if settings["batch_renorm_warmup"] is not None and algo == "crossq":
        flags += ["--batch-renorm-warmup", str(settings["batch_renorm_warmup"])]
    return flags


def last_eval_step(run_dir: Path) -> int:
    """The largest ``global_step`` in ``run_dir/eval.csv`` (0 when there is none)."""
    path = run_dir / "eval.csv"
    if not path.is_file():
        return 0
    with open(path) as f:
        return max((int(float(r["global_step"])) for r in csv.DictReader(f)), default=0)


def run_one(algo: str, env_id: str, seed: int, steps: int, eval_every: int, out: Path,
            extra: list[str], checkpoint_every: int,
            settings: dict | None = None) -> subprocess.Popen | None:
    """Start (or continue) one run; ``None`` when it already reached ``steps``. ``settings``:
    :func:`peer_settings` (default: the SAC peer, each side's own defaults)."""
    settings = settings or {"algo": "sac", "learning_starts": None, "critic_hidden": None,
                            "batch_renorm_warmup": None}
    run_dir = out / f"{env_id.replace('/', '_')}__{algo}__s{seed}"
    if last_eval_step(run_dir) >= steps:
        return None
    if algo.startswith("sb3_"):
        cmd = [sys.executable, __file__, "--sb3-worker", env_id, str(seed), str(steps),
               str(eval_every), str(checkpoint_every), str(run_dir), json.dumps(settings)]
    elif (run_dir / "checkpoints" / "latest.pt").is_file():
        cmd = [sys.executable, "-m", "robotac.cli", "train", "--resume", str(run_dir),
               "--total-steps", str(steps)]
    else:
        cmd = [sys.executable, "-m", "robotac.cli", "train", "--env", env_id, "--algo", algo,
               "--seed", str(seed), "--total-steps", str(steps), "--eval-every", str(eval_every),
               "--run-dir", str(run_dir), "--no-progress", "--no-video", "--no-export",
               "--checkpoint-every", str(checkpoint_every), *shared_flags(algo, settings),
               *extra]
    log = open(out / f"{run_dir.name}.log", "a")  # noqa: SIM115 - closed with the process
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)


def sb3_class(algo: str) -> type:
    """The peer's class: SB3's SAC or sb3-contrib's CrossQ.

    Raises:
        ValueError: for another ``algo``.
    """
    if algo == "sac":
        from stable_baselines3 import SAC

        return SAC
    if algo == "crossq":
        from sb3_contrib import CrossQ

        return CrossQ
    raise ValueError(f"no peer for {algo!r}: use sac or crossq")


def sb3_model(settings: dict, env, seed: int):
    """A fresh peer (:func:`sb3_class`) at the settings of robotac's runs."""
    cls = sb3_class(settings["algo"])
    learning_starts = settings["learning_starts"] or 5000
    if settings["algo"] == "sac":
        arch = ({"pi": [256, 256], "qf": list(settings["critic_hidden"])}
                if settings["critic_hidden"] else [256, 256])
        return cls("MlpPolicy", env, learning_starts=learning_starts, batch_size=256,
                   learning_rate=3e-4, buffer_size=1_000_000, policy_kwargs={"net_arch": arch},
                   seed=seed, device="cpu", verbose=0)
    policy_kwargs: dict = {"net_arch": {"pi": [256, 256],
                                        "qf": list(settings["critic_hidden"] or [2048, 2048])}}
    if settings["batch_renorm_warmup"] is not None:
        policy_kwargs["renorm_warmup_steps"] = int(settings["batch_renorm_warmup"])
    return cls("MlpPolicy", env, learning_starts=learning_starts, batch_size=256,
               learning_rate=1e-3, buffer_size=1_000_000, policy_delay=3,
               policy_kwargs=policy_kwargs, seed=seed, device="cpu", verbose=0)


def sb3_worker(env_id: str, seed: int, steps: int, eval_every: int, checkpoint_every: int,
               run_dir: Path, settings: dict) -> int:
    """Train the peer (:func:`sb3_model`), appending ``global_step,mean_return,std_return`` to
    ``run_dir/eval.csv`` every ``eval_every`` steps (10 deterministic episodes); save model and
    replay buffer every ``checkpoint_every`` steps and continue from them when they exist."""
    import gymnasium as gym
    import numpy as np
    import torch
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.evaluation import evaluate_policy

    torch.set_num_threads(1)
    run_dir.mkdir(parents=True, exist_ok=True)
    env, eval_env = gym.make(env_id), gym.make(env_id)
    model_path, buffer_path = run_dir / "sb3_model.zip", run_dir / "sb3_buffer.pkl"
    if model_path.is_file() and buffer_path.is_file():
        model = sb3_class(settings["algo"]).load(model_path, env=env, device="cpu")
        model.load_replay_buffer(buffer_path)
        print(f"resumed {run_dir.name} at step {model.num_timesteps}", flush=True)
    else:
        model = sb3_model(settings, env, seed)
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


def log_session(out: Path, run: str, first_step: int, last_step: int, wall_s: float) -> None:
    """Append one session of a run to ``out/sessions.csv``."""
    path = out / "sessions.csv"
    new = not path.is_file()
    with open(path, "a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(["run", "first_step", "last_step", "wall_s"])
        w.writerow([run, first_step, last_step, f"{wall_s:.1f}"])


def steps_per_second(out: Path) -> dict[str, float]:
    """Env steps per wall second of each run in ``out/sessions.csv``: its steps over the wall
    time of its sessions (evaluations and checkpoints included)."""
    path = out / "sessions.csv"
    if not path.is_file():
        return {}
    steps: dict[str, float] = {}
    wall: dict[str, float] = {}
    with open(path) as f:
        for r in csv.DictReader(f):
            steps[r["run"]] = steps.get(r["run"], 0) + int(r["last_step"]) - int(r["first_step"])
            wall[r["run"]] = wall.get(r["run"], 0.0) + float(r["wall_s"])
    return {k: steps[k] / wall[k] for k in steps if wall[k] > 0 and steps[k] > 0}


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
    p.add_argument("--sb3-algo", choices=("sac", "crossq"), default="sac",
                   help="the peer: SB3's SAC (sb3_sac) or sb3-contrib's CrossQ (sb3_crossq)")
    p.add_argument("--learning-starts", type=int, default=None,
                   help="random steps before learning, robotac's runs and the peer's (default: "
                        "robotac's config, 5000 for the peer)")
    p.add_argument("--critic-hidden", type=int, nargs="+", default=None,
                   help="critic widths of robotac's runs and the peer's (default: each "
                        "algorithm's; the CrossQ peer takes robotac's 2048 2048)")
    p.add_argument("--batch-renorm-warmup", type=int, default=None,
                   help="CrossQ, robotac's and the peer's: critic updates of plain batch norm "
                        "before Batch Renormalization (default 100000 for both)")
    p.add_argument("--sb3-worker", nargs=7, default=None, help=argparse.SUPPRESS)
    p.add_argument("extra", nargs="*", help="extra flags for robotac train (after --)")
    args = p.parse_args(argv)
    if args.sb3_worker:
        env_id, seed, steps, every, ckpt, run_dir, settings = args.sb3_worker
        return sb3_worker(env_id, int(seed), int(steps), int(every), int(ckpt), Path(run_dir),
                          json.loads(settings))
    if args.checkpoint_every % args.eval_every:
        p.error("--checkpoint-every must be a multiple of --eval-every")
    args.out.mkdir(parents=True, exist_ok=True)

    settings = peer_settings(args)
    peer = f"sb3_{args.sb3_algo}"
    # Seed by seed, robotac's runs beside the peer's, so that with --jobs the runs that share
    # the machine at a time are those compared.
    peer_seeds = [] if args.sb3 is None else (args.sb3 or args.seeds[:1])
    jobs = []
    for e in args.envs:
        for s in args.seeds:
            jobs += [(a, e, s) for a in args.algos] + [(peer, e, s)] * (s in peer_seeds)
        jobs += [(peer, e, s) for s in peer_seeds if s not in args.seeds]
    running: list[tuple[tuple, subprocess.Popen, float, int]] = []
    t0 = time.time()
    failed = []
    while jobs or running:
        while jobs and len(running) < args.jobs:
            job = jobs.pop(0)
            name = f"{job[1].replace('/', '_')}__{job[0]}__s{job[2]}"
            first = last_eval_step(args.out / name)
            proc = run_one(*job, args.steps, args.eval_every, args.out, args.extra,
                           args.checkpoint_every, settings)
            if proc is None:
                print(f"{job[0]} {job[1]} seed {job[2]}: already finished", flush=True)
                continue
            running.append((job, proc, time.time(), first))
        for job, proc, started, first in list(running):
            if proc.poll() is not None:
                running.remove((job, proc, started, first))
                name = f"{job[1].replace('/', '_')}__{job[0]}__s{job[2]}"
                log_session(args.out, name, first, last_eval_step(args.out / name),
                            time.time() - started)
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
    speed = steps_per_second(args.out)
    print("\n| algo | env | steps | seeds | final return (mean +- std over seeds) | per seed | "
          "env steps/s (per seed) | Spinning Up @300k |")
    print("|---|---|---|---|---|---|---|---|")
    for (algo, env_id) in sorted({(r["algo"], r["env"]) for r in rows}):
        sub = [r for r in rows if r["algo"] == algo and r["env"] == env_id]
        last = max(r["global_step"] for r in sub)
        finals = {r["seed"]: r["mean_return"] for r in sub if r["global_step"] == last}
        sps = [speed.get(f"{env_id.replace('/', '_')}__{algo}__s{s}") for s in sorted(finals)]
        print(f"| {algo} | {env_id} | {last} | {len(finals)} | {np.mean(list(finals.values())):.0f}"
              f" +- {np.std(list(finals.values())):.0f} | "
              f"{' / '.join(f'{finals[s]:.0f}' for s in sorted(finals))} | "
              f"{' / '.join('-' if v is None else f'{v:.0f}' for v in sps)} | "
              f"{REFERENCE.get((algo, env_id), '-')} |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
