"""Wall time to a walking quadruped: robotac recipes against stable-baselines3's SAC, same run.

Each configuration trains on ``robotac/Quadruped-v0`` from scratch; every ``--check-every`` env
steps its current actor is evaluated with the deterministic policy on the forward-gait target:

    mean body-frame forward velocity within ``--tolerance`` (0.1) m/s of a 0.5 m/s command and
    no fall, over ``--episodes`` (5) episodes of 20 s (``scripts/eval_gait.py``'s criterion).

The table gives, per configuration and seed, the wall time [min] and env steps at which the target
was first met (``-`` = not within ``--budget-min``), and the ratio of the peer's median time to each
configuration's median. A configuration not reached within the budget counts as the budget, so a
ratio against it is a lower bound (printed with ``>``).

Configurations:

- ``--config "NAME=RECIPE [FLAGS]"``: ``robotac train --config RECIPE [FLAGS]`` in a subprocess
  (one torch thread unless FLAGS hold ``--num-threads N``); the bench evaluates
  each ``checkpoints/latest.pt`` as it lands (in this process, beside the training, on the
  checkpoint's own timestamp, so evaluation does not pause training).
- ``--sb3 NAME=RECIPE``: stable-baselines3's SAC on the same env, env kwargs, actor range (a
  ``default_pose`` recipe's range is the env's action space, rescaled from SB3's [-1, 1]),
  network, learning rates, batch, buffer, ``gamma``, ``tau``, warm-up, update-to-data ratio and
  observation normalisation (``VecNormalize``, rewards not normalised); ``ent_coef="auto"`` with
  SB3's target entropy ``-action_dim``. Its evaluation pauses its training and is not counted.

Jobs run ``--parallel`` at a time (default 2: one per core), one torch thread each unless a
configuration's flags ask for more (``--config "walk2t=recipes/quadruped_walk.yaml --num-threads
2" --parallel 1`` measures one run on both cores).

Usage::

    python scripts/bench_time_to_walk.py --config fast=recipes/quadruped_walk.yaml \\
        --config old=recipes/quadruped_walk_sac.yaml --sb3 sb3=recipes/quadruped_walk_sac.yaml \\
        --seeds 1 2 --budget-min 30 --json docs/time_to_walk.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "scripts"))

from job_pool import run_jobs  # noqa: E402  (scripts/, on the path above)

COMMAND = (0.5, 0.0, 0.0)


@dataclass
class Check:
    """One evaluation of a configuration's actor."""

    wall_s: float
    env_steps: int
    mean_vx_m_s: float
    falls: int
    met: bool


@dataclass
class Job:
    name: str
    kind: str  # "robotac" or "sb3"
    recipe: str
    seed: int
    flags: list[str] = field(default_factory=list)  # extra ``robotac train`` flags
    checks: list[Check] = field(default_factory=list)
    reached_s: float | None = None
    reached_steps: int | None = None
    status: str = "queued"


def job_threads(flags: list[str]) -> int:
    """The torch thread count that ``flags`` ask for (``--num-threads N``; 1 when absent).

    Raises:
        ValueError: ``--num-threads`` is not followed by a whole number.
    """
    if "--num-threads" in flags:
        i = flags.index("--num-threads")
        if i + 1 < len(flags) and flags[i + 1].isdigit():
            return int(flags[i + 1])
        raise ValueError(f"--num-threads needs a number in {' '.join(flags)!r}")
    return 1


def gait_check(policy, env_kwargs: dict, episodes: int, tolerance: float, seed: int):
    """``(mean_vx, falls, met)`` of ``policy`` over ``episodes`` deterministic episodes."""
    from eval_gait import evaluate_gait

    rows = evaluate_gait(policy, env_kwargs, COMMAND, episodes, seed)
    mean_vx = float(np.mean([r["mean_vx_body_m_s"] for r in rows]))
    falls = int(sum(r["fell"] for r in rows))
    return mean_vx, falls, bool(abs(mean_vx - COMMAND[0]) <= tolerance and falls == 0)


# --------------------------------------------------------------------------------------------
# robotac jobs: a training subprocess, checkpoints evaluated here as they land
# --------------------------------------------------------------------------------------------
class RobotacRun:
    def __init__(self, job: Job, work: Path, args: argparse.Namespace):
        self.job, self.args = job, args
        self.run_dir = work / f"{job.name}-s{job.seed}"
        self._start(work, [sys.executable, "-m", "robotac.cli", "train", "--config", job.recipe,
                           "--seed", str(job.seed), "--run-dir", str(self.run_dir),
                           "--checkpoint-every", str(args.check_every), "--eval-every", "0",
                           "--no-save-buffer", "--no-video", "--no-export", "--no-progress",
                           *job.flags], job_threads(job.flags))
        self.seen_mtime = 0.0

    def _start(self, work: Path, cmd: list[str], threads: int = 1) -> None:
        """Start the job's process (``threads`` threads, its own session so it can be killed
        whole)."""
        self.log = (work / f"{self.job.name}-s{self.job.seed}.log").open("w")
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=env, start_new_session=True)
        self.t0 = time.time()

    def poll(self) -> bool:
        """Evaluate a new checkpoint if one landed; ``True`` while the job goes on."""
        ckpt = self.run_dir / "checkpoints" / "latest.pt"
        if ckpt.is_file() and ckpt.stat().st_mtime > self.seen_mtime:
            self.seen_mtime = ckpt.stat().st_mtime
            with tempfile.TemporaryDirectory() as tmp:  # a private copy: the run may rewrite it
                copy = Path(tmp) / "checkpoints" / "latest.pt"
                copy.parent.mkdir()
                shutil.copy2(ckpt, copy)
                from robotac.checkpoint import load_policy

                bundle = load_policy(Path(tmp), "latest")
            mean_vx, falls, met = gait_check(bundle.act, bundle.env_kwargs, self.args.episodes,
                                             self.args.tolerance, 1000)
            self.record(Check(self.seen_mtime - self.t0, int(bundle.global_step), mean_vx,
                              falls, met))
            if met:
                self.stop("reached")
                return False
        if time.time() - self.t0 > self.args.budget_min * 60:
            self.stop("budget")
            return False
        if self.proc.poll() is not None and not (
            ckpt.is_file() and ckpt.stat().st_mtime > self.seen_mtime
        ):
            self.job.status = f"exited {self.proc.returncode}"
            return False
        return True

    def record(self, c: Check) -> None:
        self.job.checks.append(c)
        print(f"  {self.job.name} seed {self.job.seed}: {c.wall_s / 60:5.1f} min "
              f"{c.env_steps:7d} steps  vx {c.mean_vx_m_s:+.3f} m/s  falls {c.falls}"
              f"{'  TARGET MET' if c.met else ''}", flush=True)
        if c.met and self.job.reached_s is None:
            self.job.reached_s, self.job.reached_steps = c.wall_s, c.env_steps

    def stop(self, status: str) -> None:
        self.job.status = status
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


# --------------------------------------------------------------------------------------------
# stable-baselines3 jobs: a worker subprocess (this script with --sb3-worker) reports checks
# --------------------------------------------------------------------------------------------
class Sb3Run(RobotacRun):
    def __init__(self, job: Job, work: Path, args: argparse.Namespace):
        self.job, self.args = job, args
        self.report = work / f"{job.name}-s{job.seed}.jsonl"
        self._start(work, [sys.executable, __file__, "--sb3-worker", job.recipe, "--seeds",
                           str(job.seed), "--check-every", str(args.check_every), "--episodes",
                           str(args.episodes), "--tolerance", str(args.tolerance),
                           "--budget-min", str(args.budget_min), "--report", str(self.report)])
        self.n_read = 0

    def poll(self) -> bool:
        lines = self.report.read_text().splitlines() if self.report.is_file() else []
        for line in lines[self.n_read:]:
            self.record(Check(**json.loads(line)))
        self.n_read = len(lines)
        if self.job.reached_s is not None:
            self.stop("reached")
            return False
        if self.proc.poll() is not None:
            rc = self.proc.returncode
            self.job.status = "budget" if rc == 0 else f"exited {rc}"
            self.log.close()
            return False
        if time.time() - self.t0 > self.args.budget_min * 60 + 120:
            self.stop("budget")
            return False
        return True


def sb3_worker(args: argparse.Namespace) -> int:
    """Train SB3's SAC with the recipe's settings; append a :class:`Check` line per check."""
    import torch
    from stable_baselines3 import SAC
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from envs.registration import make_env
    from robotac.config import load_config_file, resolved
    from robotac.env_utils import actor_bounds

    torch.set_num_threads(1)
    cfg = resolved(load_config_file(args.sb3_worker))
    seed = args.seeds[0]
    if cfg.utd_ratio != 1.0 or cfg.num_envs != 1:
        raise SystemExit("the SB3 peer supports recipes with utd_ratio 1 and num_envs 1")

    def make():
        env = make_env(cfg.env_id, **cfg.env_kwargs)
        space = env.action_space
        low, high = actor_bounds(env, cfg.env_id, cfg.actor_bounds, space.low, space.high,
                                 cfg.actor_bound_radius)
        # SB3 squashes into [-1, 1]; map that box onto the recipe's actor range per dimension.
        return UnitActions(env, low, high)

    venv = VecNormalize(DummyVecEnv([make]), norm_obs=cfg.normalize_obs, norm_reward=False,
                        clip_obs=cfg.obs_clip, gamma=cfg.gamma)
    model = SAC(
        "MlpPolicy", venv, learning_rate=cfg.critic_lr, buffer_size=cfg.buffer_size,
        learning_starts=cfg.learning_starts, batch_size=cfg.batch_size, tau=cfg.tau,
        gamma=cfg.gamma, train_freq=1, gradient_steps=1, ent_coef="auto",
        policy_kwargs={"net_arch": list(cfg.hidden)}, seed=seed, device="cpu", verbose=0,
    )
    to_env = make()  # only its action map is used: the gait check builds its own env

    def policy(obs: np.ndarray) -> np.ndarray:
        norm = venv.normalize_obs(obs[None])
        unit, _ = model.predict(norm, deterministic=True)
        return to_env.action(unit[0])  # [-1, 1] -> the recipe's actor range, env units

    t0, paused, steps = time.time(), 0.0, 0
    budget_s = args.budget_min * 60
    while time.time() - t0 - paused < budget_s:
        model.learn(args.check_every, reset_num_timesteps=False)
        steps += args.check_every
        t_check = time.time()
        wall = t_check - t0 - paused
        mean_vx, falls, met = gait_check(policy, cfg.env_kwargs, args.episodes, args.tolerance,
                                         1000)
        paused += time.time() - t_check
        with open(args.report, "a") as f:
            f.write(json.dumps(asdict(Check(wall, steps, mean_vx, falls, met))) + "\n")
        if met:
            break
    return 0


class UnitActions(gym.ActionWrapper):
    """Expose ``Box(-1, 1)`` (SB3's squashed range) and map it affinely onto ``[low, high]``.

    ``a = low + (high - low) * (u + 1) / 2`` per dimension: the same map robotac's actor applies
    after its tanh (DESIGN.md contract 1), so both peers act in the same sub-box of the env.
    """

    def __init__(self, env: gym.Env, low: np.ndarray, high: np.ndarray):
        super().__init__(env)
        self._low = np.asarray(low, dtype=np.float64)
        self._high = np.asarray(high, dtype=np.float64)
        self.action_space = gym.spaces.Box(-1.0, 1.0, env.action_space.shape, np.float32)

    def action(self, action: np.ndarray) -> np.ndarray:
        u = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        return (self._low + (self._high - self._low) * (u + 1.0) / 2.0).astype(np.float32)


# --------------------------------------------------------------------------------------------
def _median(xs: list[float]) -> float:
    return float(np.median(xs))


def print_table(jobs: list[Job], budget_min: float, peer: str | None) -> None:
    names = list(dict.fromkeys(j.name for j in jobs))
    med: dict[str, tuple[float, bool]] = {}
    print("\n| configuration | seed | time to walk [min] | env steps | last check |")
    print("|---|---|---|---|---|")
    for name in names:
        times = []
        for j in (j for j in jobs if j.name == name):
            last = j.checks[-1] if j.checks else None
            last_s = (f"{last.mean_vx_m_s:+.3f} m/s, {last.falls} falls at "
                      f"{last.env_steps} steps" if last else "-")
            t = f"{j.reached_s / 60:.1f}" if j.reached_s is not None else f"- (> {budget_min:g})"
            print(f"| {name} | {j.seed} | {t} | {j.reached_steps or '-'} | {last_s} |")
            times.append((j.reached_s / 60) if j.reached_s is not None else budget_min)
        reached_all = all(j.reached_s is not None for j in jobs if j.name == name)
        med[name] = (_median(times), reached_all)
    print("\n| configuration | median time to walk [min] | peer median / this |")
    print("|---|---|---|")
    for name in names:
        m, ok = med[name]
        ratio = "-"
        if peer and peer in med:
            pm, pok = med[peer]
            r = pm / m
            bound = ">" if (not pok and ok) else ("<" if (pok and not ok) else "")
            ratio = f"{bound}{r:.2f}x" if (pok or ok) else "- (neither reached)"
        print(f"| {name} | {m:.1f}{'' if ok else ' (budget)'} | {ratio} |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", action="append", default=[], metavar="NAME=RECIPE")
    p.add_argument("--sb3", action="append", default=[], metavar="NAME=RECIPE")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    p.add_argument("--budget-min", type=float, default=30.0, help="per job [min]")
    p.add_argument("--check-every", type=int, default=10_000, help="env steps between checks")
    p.add_argument("--episodes", type=int, default=5)
    p.add_argument("--tolerance", type=float, default=0.1, help="|mean vx - 0.5| [m/s]")
    p.add_argument("--parallel", type=int, default=2)
    p.add_argument("--work", type=Path, default=None, help="keep run dirs and logs here")
    p.add_argument("--json", type=Path, default=None, help="write every check here")
    p.add_argument("--sb3-worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--report", type=Path, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.sb3_worker:
        return sb3_worker(args)
    if not args.config and not args.sb3:
        p.error("give at least one --config or --sb3")
    import torch

    torch.set_num_threads(1)  # the checkpoint evaluations here: one core, like each job

    jobs = []
    for kind, specs in (("robotac", args.config), ("sb3", args.sb3)):
        for spec in specs:
            name, _, rest = spec.partition("=")
            recipe, *flags = rest.split()
            if not recipe or not Path(recipe).is_file():
                p.error(f"{spec!r}: expected NAME=RECIPE [train flags] with an existing recipe "
                        "file")
            if flags and kind == "sb3":
                p.error(f"{spec!r}: extra train flags apply to --config (robotac) jobs only")
            if kind == "robotac" and "--num-threads" not in flags:
                flags += ["--num-threads", "1"]
            try:
                job_threads(flags)
            except ValueError as exc:
                p.error(f"{spec!r}: {exc}")
            jobs += [Job(name, kind, recipe, s, flags) for s in args.seeds]
    # Interleave seeds so each pair of parallel slots compares configurations in the same period.
    jobs.sort(key=lambda j: (j.seed, 0 if j.kind == "robotac" else 1))
    work = args.work or Path(tempfile.mkdtemp(prefix="time_to_walk_"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"{len(jobs)} jobs, {args.parallel} at a time, budget {args.budget_min:g} min each; "
          f"logs in {work}", flush=True)
    run_jobs(jobs, args.parallel,
             lambda job: (RobotacRun if job.kind == "robotac" else Sb3Run)(job, work, args),
             poll_s=2.0)
    peer = next((j.name for j in jobs if j.kind == "sb3"), None)
    print_table(jobs, args.budget_min, peer)
    if args.json:
        args.json.write_text(json.dumps({
            "command": COMMAND, "tolerance_m_s": args.tolerance, "episodes": args.episodes,
            "budget_min": args.budget_min, "check_every": args.check_every,
            "jobs": [asdict(j) for j in jobs],
        }, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
