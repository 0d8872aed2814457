"""Learning curves: SAC and TD3 on HalfCheetah-v5 and Hopper-v5, several seeds, CSV + plot.

Each (algo, env, seed) is one ``robotac train`` run with default hyperparameters (CleanRL's:
256x256, batch 256, lr 3e-4, learning_starts 5000, one update per step), evaluated every
``--eval-every`` steps with 10 deterministic episodes. Writes ``returns.csv`` (algo, env, seed,
global_step, mean_return, std_return) and ``returns.png`` (mean +- std over seeds) into --out,
and prints the final returns beside the Spinning Up reference figures at 300k steps.

    python scripts/bench_returns.py --steps 300000 --seeds 0 1 2         # the full benchmark
    python scripts/bench_returns.py --steps 20000 --seeds 0 --eval-every 5000   # a short run

Runs are sequential (one torch thread each); ``--jobs N`` runs N at once in subprocesses.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: Spinning Up PyTorch benchmark returns at 300k steps (v3 tasks), read from the published curves.
REFERENCE = {
    ("sac", "HalfCheetah-v5"): 9200,
    ("sac", "Hopper-v5"): 2900,
    ("td3", "HalfCheetah-v5"): 7600,
    ("td3", "Hopper-v5"): 2400,
}


def run_one(algo: str, env_id: str, seed: int, steps: int, eval_every: int, out: Path,
            extra: list[str]) -> subprocess.Popen:
    run_dir = out / f"{env_id.replace('/', '_')}__{algo}__s{seed}"
    cmd = [sys.executable, "-m", "robotac.cli", "train", "--env", env_id, "--algo", algo,
           "--seed", str(seed), "--total-steps", str(steps), "--eval-every", str(eval_every),
           "--run-dir", str(run_dir), "--no-progress", "--no-video", "--no-export",
           "--checkpoint-every", str(max(steps // 4, eval_every)), *extra]
    log = open(out / f"{run_dir.name}.log", "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


def collect(out: Path) -> list[dict]:
    rows = []
    for eval_csv in sorted(out.glob("*__*__s*/eval.csv")):
        env_part, algo, seed = eval_csv.parent.name.split("__")
        env_id = env_part.replace("_", "/", 1) if env_part.startswith("robotac_") else env_part
        with open(eval_csv) as f:
            for r in csv.DictReader(f):
                rows.append({"algo": algo, "env": env_id, "seed": int(seed[1:]),
                             "global_step": int(float(r["global_step"])),
                             "mean_return": float(r["mean_return"]),
                             "std_return": float(r["std_return"])})
    return rows


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    envs = sorted({r["env"] for r in rows})
    fig, axes = plt.subplots(1, len(envs), figsize=(6 * len(envs), 4), squeeze=False)
    for ax, env_id in zip(axes[0], envs, strict=True):
        for algo in sorted({r["algo"] for r in rows}):
            sub = [r for r in rows if r["env"] == env_id and r["algo"] == algo]
            if not sub:
                continue
            steps = sorted({r["global_step"] for r in sub})
            per = [[r["mean_return"] for r in sub if r["global_step"] == s] for s in steps]
            m = np.array([np.mean(p) for p in per])
            s = np.array([np.std(p) for p in per])
            n_seeds = len({r["seed"] for r in sub})
            ax.plot(steps, m, label=f"{algo.upper()} ({n_seeds} seeds)")
            ax.fill_between(steps, m - s, m + s, alpha=0.2)
            if (algo, env_id) in REFERENCE:
                ax.axhline(REFERENCE[(algo, env_id)], ls="--", lw=0.8,
                           color=ax.lines[-1].get_color())
        ax.set_title(f"{env_id} (dashed: Spinning Up at 300k)")
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
    p.add_argument("--algos", nargs="+", default=["sac", "td3"])
    p.add_argument("--envs", nargs="+", default=["HalfCheetah-v5", "Hopper-v5"])
    p.add_argument("--eval-every", type=int, default=10_000)
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel (one thread each)")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_returns")
    p.add_argument("extra", nargs="*", help="extra flags for robotac train (after --)")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    jobs = [(a, e, s) for e in args.envs for a in args.algos for s in args.seeds]
    running: list[tuple[tuple, subprocess.Popen]] = []
    t0 = time.time()
    failed = []
    while jobs or running:
        while jobs and len(running) < args.jobs:
            job = jobs.pop(0)
            running.append((job, run_one(*job, args.steps, args.eval_every, args.out,
                                         args.extra)))
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
