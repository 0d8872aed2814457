"""Wall time and env steps until the steer grid is met: robotac recipes against sb3-contrib's
CrossQ and SB3's SAC on the same env, command ranges and curriculum, in one run (issue 25).

The grid (:func:`grid_met`, :class:`SteerTargets`): the commands of ``scripts/eval_gait.py
--grid`` (:func:`eval_gait.grid_commands`: :data:`eval_gait.GRID` clipped to the trained command
ranges, the recipe's ``env_kwargs.command_ranges`` over the robot's), domain randomization off,
``--episodes`` deterministic episodes of ``--episode-s`` s each; met when every command is tracked
within 0.1 m/s (``|v_xy - cmd_xy|``) and 0.2 rad/s (``|w_z - cmd_yaw|``) after the 1 s settle
time, no episode falls, and the servo targets of eval_gait hold (too-fast targets <= 5 %, torque
saturation <= 3 %). Smoothness targets (issue 26) join through ``SteerTargets.smoothness``, a
mapping of a key of the grid's smoothness summary (``max_reversal_share``,
``max_filter_bind_share``, ``max_hf_power_share``; eval_gait's ``_grid_smoothness``) to its
largest allowed value: ``--smoothness max_reversal_share=0.05``. ``--exclude VX,VY,YAW`` leaves a
grid command out and says so in the JSON: no policy so far reaches 0.6 m/s with servo-safe targets
(the shipped version 5 tops out at 0.41, recipes/quadruped_steer.yaml), so with (0.6, 0, 0) in the
grid no row can meet it; ``--exclude 0.6,0,0`` measures the other 15.

Each configuration trains in its own process; a second process per job, the evaluator
(this script with ``--eval-worker``), evaluates every snapshot the training writes every
``--check-every`` env steps, so evaluations never pause the training: a robotac run's
``checkpoints/latest.pt`` (copied as it lands, by a thread of the evaluator) or the SB3 worker's
``snap_*.zip`` (model, observation normalizer and action map). The time of a snapshot is when the
training wrote it, whenever its evaluation ran; when one meets the grid both processes of the
job stop. On a 2-core machine the evaluator's CPU time is taken from the training processes,
which makes every row's wall time a little pessimistic, the same way for each.

Configurations (each for every ``--seeds``):

- ``--config "NAME=RECIPE [TRAIN FLAGS]"``: ``robotac train --config RECIPE [FLAGS]``;
- ``--sb3 NAME=RECIPE``: stable-baselines3's SAC with the recipe's env kwargs (curriculum
  included: the env is told the global step before each reset, as robotac's trainer does),
  actor range, network, learning rates, batch, buffer, gamma, tau, warm-up and observation
  normalization (:func:`sb3_model`; no symmetry augmentation, which SB3 lacks);
- ``--sb3-crossq NAME=RECIPE``: sb3-contrib's CrossQ the same way (lr 1e-3, policy delay 3,
  Adam betas (0.5, 0.999), its 2048-unit critics with Batch Renormalization, actor as the
  recipe's ``hidden``).

The full table of issue 25::

    python scripts/bench_time_to_steer.py \\
        --config steer=recipes/quadruped_steer.yaml \\
        --config fast=recipes/quadruped_steer_fast.yaml \\
        --sb3-crossq sb3_crossq=recipes/quadruped_steer.yaml \\
        --sb3 sb3_sac=recipes/quadruped_steer.yaml \\
        --seeds 1 2 --parallel 1 --budget-min 90 --json docs/data/time_to_steer.json

``--parallel 1`` gives each job both cores (the fast recipe's collector uses two); each job is
stopped at the grid or after ``--budget-min``.
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
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "scripts"))

from eval_gait import TOL_XY_M_S, TOL_YAW_RAD_S  # noqa: E402  (scripts/, on the path above)
from job_pool import run_jobs  # noqa: E402


# --------------------------------------------------------------------------------------------
# The criterion
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SteerTargets:
    """The steer grid's targets (eval_gait's issue-10 targets; smoothness ones are optional)."""

    err_xy_m_s: float = TOL_XY_M_S
    """Largest ``|v_xy - cmd_xy|`` over the grid [m/s]."""
    err_yaw_rad_s: float = TOL_YAW_RAD_S
    """Largest ``|w_z - cmd_yaw|`` over the grid [rad/s]."""
    falls: int = 0
    """Episodes that may end in a fall, over the grid."""
    too_fast_share: float = 0.05
    """Share of steps with a servo target faster than the servo's no-load speed."""
    torque_sat_share: float = 0.03
    """Share of servo-steps at the torque limit."""
    smoothness: dict[str, float] = field(default_factory=dict)
    """Largest allowed value of keys of the grid's smoothness summary (issue 26)."""


def grid_summary(rows: list[dict]) -> dict:
    """eval_gait's :func:`eval_gait.grid_summary` of the grid's rows, plus ``worst``: the command
    farthest from its targets (errors over their tolerances)."""
    from eval_gait import grid_summary as eval_gait_summary

    return {**eval_gait_summary(rows), "worst": max(
        rows, key=lambda r: r["err_xy_m_s"] / TOL_XY_M_S
        + r["err_yaw_rad_s"] / TOL_YAW_RAD_S)["command"]}


def grid_met(summary: dict, targets: SteerTargets = SteerTargets()) -> tuple[bool, list[str]]:
    """Whether ``summary`` (:func:`grid_summary`) meets ``targets``; the misses, in words.

    A NaN error (every episode of a command fell before the settle time) is a miss.

    Raises:
        KeyError: a smoothness target names a key the summary does not have (with the keys).
    """
    misses = []
    for key, limit, unit in (("max_err_xy_m_s", targets.err_xy_m_s, "m/s"),
                             ("max_err_yaw_rad_s", targets.err_yaw_rad_s, "rad/s"),
                             ("too_fast_share", targets.too_fast_share, ""),
                             ("torque_sat_share", targets.torque_sat_share, "")):
        v = summary[key]
        if not (v <= limit):  # NaN misses
            misses.append(f"{key} {v:.3f} > {limit:g} {unit}".rstrip())
    if summary["falls"] > targets.falls:
        misses.append(f"falls {summary['falls']} > {targets.falls}")
    sm = summary["smoothness"]
    for key, limit in targets.smoothness.items():
        if key not in sm:
            raise KeyError(f"smoothness target {key!r} is not a key of the grid's smoothness "
                           f"summary; its keys: {sorted(sm)}")
        if not (sm[key] <= limit):
            misses.append(f"{key} {sm[key]:.3f} > {limit:g}")
    return not misses, misses


def grid_commands(env_kwargs: dict, exclude: tuple[tuple[float, float, float], ...] = ()
                  ) -> list[tuple[float, float, float]]:
    """The commands of ``eval_gait.py --grid`` (:func:`eval_gait.grid_commands`: :data:`GRID`
    clipped to the trained ranges, duplicates dropped), less the ``exclude`` commands
    (``--exclude``).

    Raises:
        ValueError: an ``exclude`` command is not a command of that grid (with the grid).
    """
    from eval_gait import grid_commands as eval_gait_commands

    grid = eval_gait_commands(env_kwargs)
    unknown = [c for c in exclude if tuple(c) not in grid]
    if unknown:
        raise ValueError(f"--exclude {unknown}: not commands of eval_gait's grid {grid}")
    return [c for c in grid if c not in exclude]


def evaluate_steer_grid(policy: Callable[[np.ndarray], np.ndarray], env_kwargs: dict,
                        episodes: int, episode_s: float, seed: int = 1000,
                        exclude: tuple[tuple[float, float, float], ...] = ()) -> dict:
    """:func:`grid_summary` of ``policy`` on :func:`grid_commands`, randomization off."""
    from eval_gait import RANDOMIZATION_KWARGS, evaluate_command

    off = {k: v for k, v in env_kwargs.items() if k not in RANDOMIZATION_KWARGS}
    rows = [evaluate_command(policy, off, c, episodes, seed, episode_s)
            for c in grid_commands(env_kwargs, exclude)]
    return grid_summary(rows)


# --------------------------------------------------------------------------------------------
# The evaluator process: snapshots in, one JSON line per evaluation out
# --------------------------------------------------------------------------------------------
@dataclass
class Check:
    """One evaluation of a snapshot."""

    wall_s: float
    env_steps: int
    met: bool
    misses: list[str]
    max_err_xy_m_s: float
    max_err_yaw_rad_s: float
    falls: int
    eval_s: float


def _robotac_snapshot_policy(path: Path):
    """``(policy, env_kwargs, env_steps)`` of a copied robotac checkpoint."""
    from robotac.checkpoint import load_policy

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "checkpoints").mkdir()
        shutil.copy2(path, Path(tmp) / "checkpoints" / "latest.pt")
        bundle = load_policy(Path(tmp), "latest")
    return bundle.act, bundle.env_kwargs, int(bundle.global_step)


def _sb3_snapshot_policy(path: Path):
    """``(policy, env_kwargs, env_steps)`` of an SB3 worker's ``snap_*.zip`` (+ ``.json``)."""
    meta = json.loads(path.with_suffix(".json").read_text())
    model = sb3_class(meta["algo"]).load(path, device="cpu")
    mean, var = np.asarray(meta["obs_mean"]), np.asarray(meta["obs_var"])
    low, high = np.asarray(meta["low"]), np.asarray(meta["high"])
    clip, eps = meta["clip_obs"], meta["epsilon"]

    def policy(obs: np.ndarray) -> np.ndarray:
        norm = np.clip((obs - mean) / np.sqrt(var + eps), -clip, clip) if meta["norm"] else obs
        unit, _ = model.predict(norm.astype(np.float32)[None], deterministic=True)
        u = np.clip(unit[0].astype(np.float64), -1.0, 1.0)
        return (low + (high - low) * (u + 1.0) / 2.0).astype(np.float32)

    return policy, meta["env_kwargs"], int(meta["env_steps"])


def eval_worker(args: argparse.Namespace) -> int:
    """Evaluate the snapshots of ``--watch`` as they land (robotac: ``checkpoints/latest.pt``,
    copied by a thread into a queue; SB3: ``snap_*.zip`` with its ``.json``); append a
    :class:`Check` line to ``--report`` per snapshot, in order; exit once one meets the grid,
    once ``--watch``/``TRAINED`` exists (the training ended) and every snapshot is evaluated, when
    ``--watch``/``STOP`` appears, or when the parent is gone."""
    import torch

    torch.set_num_threads(1)
    watch, queue = Path(args.eval_worker), Path(args.report).with_suffix(".queue")
    queue.mkdir(parents=True, exist_ok=True)
    targets = SteerTargets(smoothness=dict(args.smoothness or {}))
    parent = os.getppid()
    stop, lock = threading.Event(), threading.Lock()
    ckpt, copied = watch / "checkpoints" / "latest.pt", {"mtime": 0.0, "k": 0}

    def copy_new() -> None:  # robotac: latest.pt is rewritten in place every check_every steps
        with lock:
            try:
                mtime = ckpt.stat().st_mtime
                if mtime > copied["mtime"]:
                    k = copied["k"]
                    shutil.copy2(ckpt, queue / f"c{k:06d}.tmp")
                    (queue / f"c{k:06d}.tmp").rename(queue / f"c{k:06d}_{mtime:.3f}.pt")
                    copied.update(mtime=mtime, k=k + 1)
            except FileNotFoundError:
                pass

    def copier() -> None:
        while not stop.is_set():
            copy_new()
            stop.wait(0.2)

    if args.source == "robotac":
        threading.Thread(target=copier, daemon=True).start()
    done: set[str] = set()
    try:
        while True:
            if (watch / "STOP").exists() or os.getppid() != parent:
                return 0
            trained = (watch / "TRAINED").exists()
            if trained and args.source == "robotac":
                copy_new()
            if args.source == "robotac":
                snaps = sorted(p for p in queue.glob("c*.pt") if p.name not in done)
            else:
                snaps = sorted(p for p in watch.glob("snap_*.zip") if p.name not in done
                               and p.with_suffix(".json").is_file())
            if not snaps:
                if trained:
                    return 0
                time.sleep(0.5)
                continue
            snap = snaps[0]
            done.add(snap.name)
            t = time.time()
            if args.source == "robotac":
                policy, env_kwargs, steps = _robotac_snapshot_policy(snap)
                wall = float(snap.stem.split("_")[1]) - args.t0
            else:
                policy, env_kwargs, steps = _sb3_snapshot_policy(snap)
                wall = json.loads(snap.with_suffix(".json").read_text())["wall_s"]
            summary = evaluate_steer_grid(policy, env_kwargs, args.episodes, args.episode_s,
                                          exclude=tuple(args.exclude or ()))
            met, misses = grid_met(summary, targets)
            check = Check(wall, steps, met, misses, summary["max_err_xy_m_s"],
                          summary["max_err_yaw_rad_s"], summary["falls"], time.time() - t)
            with open(args.report, "a") as f:
                f.write(json.dumps(asdict(check)) + "\n")
            snap.unlink()  # a CrossQ snapshot with its 2048-unit critics is ~35 MB
            if args.source != "robotac":
                snap.with_suffix(".json").unlink()
            if met:
                return 0
    finally:
        stop.set()


# --------------------------------------------------------------------------------------------
# SB3 peers
# --------------------------------------------------------------------------------------------
def sb3_class(algo: str) -> type:
    """SB3's SAC or sb3-contrib's CrossQ (scripts/bench_returns.py's peers)."""
    from bench_returns import sb3_class as cls

    return cls(algo)


def sb3_model(algo: str, cfg, env, seed: int, crossq_critic: tuple[int, ...] = (2048, 2048)):
    """The peer at the recipe's settings (see the module docstring); ``crossq_critic``: the
    CrossQ peer's critic widths (``--sb3-critic``)."""
    common = dict(buffer_size=cfg.buffer_size, learning_starts=cfg.learning_starts,
                  batch_size=cfg.batch_size, gamma=cfg.gamma, train_freq=1, gradient_steps=1,
                  ent_coef="auto", seed=seed, device="cpu", verbose=0)
    if algo == "sac":
        return sb3_class("sac")("MlpPolicy", env, learning_rate=cfg.critic_lr, tau=cfg.tau,
                                policy_kwargs={"net_arch": list(cfg.hidden)}, **common)
    return sb3_class("crossq")(
        "MlpPolicy", env, learning_rate=1e-3, policy_delay=3,
        policy_kwargs={"net_arch": {"pi": list(cfg.hidden), "qf": list(crossq_critic)}},
        **common)


def sb3_worker(args: argparse.Namespace) -> int:
    """Train the SB3 peer ``--sb3-algo`` on ``--sb3-worker RECIPE``; every ``--check-every``
    steps write ``snap_<steps>.zip`` and its ``.json`` (wall time, normalizer, action map) into
    ``--snapshots``; stop at the recipe's ``total_steps``, at ``--budget-min`` or when ``STOP``
    appears there."""
    import torch
    from bench_time_to_walk import UnitActions
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from robotac.config import load_config_file, resolved, to_dict
    from robotac.env_utils import SeededResets, actor_bounds, make_env

    torch.set_num_threads(1)
    cfg = resolved(load_config_file(args.sb3_worker))
    seed, out = args.seeds[0], Path(args.snapshots)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.utd_ratio != 1.0 or cfg.num_envs != 1:
        raise SystemExit("the SB3 peers support recipes with utd_ratio 1 and num_envs 1")
    box = {}

    def make():
        env = make_env(cfg.env_id, **cfg.env_kwargs)
        low, high = actor_bounds(env, cfg.env_id, cfg.actor_bounds, env.action_space.low,
                                 env.action_space.high, cfg.actor_bound_radius)
        box.update(low=low.tolist(), high=high.tolist())
        # SeededResets tells the env the global step before each reset (the curriculum).
        return UnitActions(SeededResets(env, seed, 0, 1), low, high)

    venv = VecNormalize(DummyVecEnv([make]), norm_obs=cfg.normalize_obs, norm_reward=False,
                        clip_obs=cfg.obs_clip, gamma=cfg.gamma)
    model = sb3_model(args.sb3_algo, cfg, venv, seed, tuple(args.sb3_critic or (2048, 2048)))
    env_kwargs = to_dict(cfg)["env_kwargs"]
    t0, steps = args.t0, 0
    while (steps < cfg.total_steps and time.time() - t0 < args.budget_min * 60
           and not (out / "STOP").exists()):
        model.learn(args.check_every, reset_num_timesteps=False)
        steps += args.check_every
        wall = time.time() - t0
        name = out / f"snap_{steps:09d}"
        model.save(name.with_suffix(".zip"))
        rms = venv.obs_rms
        meta = {"algo": args.sb3_algo, "env_steps": steps, "wall_s": wall,
                "env_kwargs": env_kwargs, "norm": bool(cfg.normalize_obs),
                "obs_mean": rms.mean.tolist(), "obs_var": rms.var.tolist(),
                "clip_obs": venv.clip_obs, "epsilon": venv.epsilon, **box}
        name.with_suffix(".json.tmp").write_text(json.dumps(meta))
        name.with_suffix(".json.tmp").rename(name.with_suffix(".json"))
    return 0


# --------------------------------------------------------------------------------------------
# Jobs
# --------------------------------------------------------------------------------------------
@dataclass
class Job:
    name: str
    kind: str  # "robotac", "sb3_sac" or "sb3_crossq"
    recipe: str
    seed: int
    flags: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    reached_s: float | None = None
    reached_steps: int | None = None
    status: str = "queued"


class Running:
    """A job's training process and its evaluator process."""

    def __init__(self, job: Job, work: Path, args: argparse.Namespace):
        self.job, self.args = job, args
        tag = f"{job.name}-s{job.seed}"
        self.dir = work / tag
        self.report = work / f"{tag}.jsonl"
        self.t0 = time.time()
        self.log = (work / f"{tag}.log").open("w")
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        if job.kind == "robotac":
            cmd = [sys.executable, "-m", "robotac.cli", "train", "--config", job.recipe,
                   "--seed", str(job.seed), "--run-dir", str(self.dir), "--checkpoint-every",
                   str(args.check_every), "--eval-every", "0", "--no-save-buffer", "--no-video",
                   "--no-export", "--no-progress", *job.flags]
        else:
            cmd = [sys.executable, __file__, "--sb3-worker", job.recipe, "--sb3-algo",
                   job.kind.removeprefix("sb3_"), "--seeds", str(job.seed), "--check-every",
                   str(args.check_every), "--budget-min", str(args.budget_min), "--snapshots",
                   str(self.dir), "--t0", str(self.t0)]
            if args.sb3_critic:
                cmd += ["--sb3-critic", *map(str, args.sb3_critic)]
        self.train = subprocess.Popen(cmd, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                                      env=env, start_new_session=True)
        self.dir.mkdir(parents=True, exist_ok=True)
        ecmd = [sys.executable, __file__, "--eval-worker", str(self.dir), "--source",
                "robotac" if job.kind == "robotac" else "sb3", "--report", str(self.report),
                "--t0", str(self.t0), "--episodes", str(args.episodes), "--episode-s",
                str(args.episode_s)]
        for k, v in (args.smoothness or {}).items():
            ecmd += ["--smoothness", f"{k}={v}"]
        for c in args.exclude or ():
            ecmd += ["--exclude", ",".join(map(str, c))]
        self.eval = subprocess.Popen(ecmd, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=env, start_new_session=True)
        self.n_read = 0

    def poll(self) -> bool:
        """Read new checks; ``True`` while the job goes on."""
        lines = self.report.read_text().splitlines() if self.report.is_file() else []
        for line in lines[self.n_read:]:
            c = Check(**json.loads(line))
            self.job.checks.append(c)
            print(f"  {self.job.name} seed {self.job.seed}: {c.wall_s / 60:5.1f} min "
                  f"{c.env_steps:7d} steps  err xy {c.max_err_xy_m_s:.3f} yaw "
                  f"{c.max_err_yaw_rad_s:.3f} falls {c.falls}"
                  f"{'  GRID MET' if c.met else ''} (eval {c.eval_s:.0f} s)", flush=True)
            if c.met and self.job.reached_s is None:
                self.job.reached_s, self.job.reached_steps = c.wall_s, c.env_steps
        self.n_read = len(lines)
        if self.job.reached_s is not None:
            self.stop("reached")
            return False
        if time.time() - self.t0 > self.args.budget_min * 60:
            self.stop("budget")
            return False
        if self.train.poll() is not None:
            (self.dir / "TRAINED").touch()  # the evaluator finishes the snapshots, then exits
            if self.eval.poll() is not None:
                self.stop("trained" if self.train.returncode == 0
                          else f"training exited {self.train.returncode}")
                return False
        if self.eval.poll() is not None and self.eval.returncode != 0:
            self.stop(f"evaluator exited {self.eval.returncode}")
            return False
        return True

    def stop(self, status: str) -> None:
        self.job.status = status
        (self.dir / "STOP").touch()
        for proc in (self.train, self.eval):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        self.log.close()


def print_table(jobs: list[Job], budget_min: float) -> None:
    names = list(dict.fromkeys(j.name for j in jobs))
    print("\n| configuration | seed | time to grid [min] | env steps | last check |")
    print("|---|---|---|---|---|")
    med = {}
    for name in names:
        times = []
        for j in (j for j in jobs if j.name == name):
            last = j.checks[-1] if j.checks else None
            last_s = (f"err xy {last.max_err_xy_m_s:.3f} m/s, yaw {last.max_err_yaw_rad_s:.3f} "
                      f"rad/s, {last.falls} falls at {last.env_steps} steps" if last else "-")
            t = f"{j.reached_s / 60:.1f}" if j.reached_s is not None else f"- (> {budget_min:g})"
            print(f"| {name} | {j.seed} | {t} | {j.reached_steps or '-'} | {last_s} |")
            times.append(j.reached_s / 60 if j.reached_s is not None else budget_min)
        med[name] = (float(np.median(times)),
                     all(j.reached_s is not None for j in jobs if j.name == name))
    peer = next((j.name for j in jobs if j.kind == "sb3_sac"), None)
    print("\n| configuration | median time to grid [min] | SB3 SAC median / this |")
    print("|---|---|---|")
    for name in names:
        m, ok = med[name]
        ratio = "-"
        if peer:
            pm, pok = med[peer]
            bound = ">" if (not pok and ok) else ("<" if (pok and not ok) else "")
            ratio = f"{bound}{pm / m:.2f}x" if (pok or ok) else "- (neither reached)"
        print(f"| {name} | {m:.1f}{'' if ok else ' (budget)'} | {ratio} |")


def _command(text: str) -> tuple[float, float, float]:
    try:
        vx, vy, yaw = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected VX,VY,YAW, got {text!r}") from None
    return vx, vy, yaw


def _key_value(text: str) -> tuple[str, float]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, float(value)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", action="append", default=[], metavar="NAME=RECIPE [FLAGS]")
    p.add_argument("--sb3", action="append", default=[], metavar="NAME=RECIPE")
    p.add_argument("--sb3-crossq", action="append", default=[], metavar="NAME=RECIPE")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    p.add_argument("--budget-min", type=float, default=90.0, help="per job [min]")
    p.add_argument("--check-every", type=int, default=20_000, help="env steps between checks")
    p.add_argument("--episodes", type=int, default=2, help="episodes per grid command")
    p.add_argument("--episode-s", type=float, default=10.0, help="grid episode length [s]")
    p.add_argument("--smoothness", type=_key_value, action="append", default=None,
                   metavar="KEY=MAX", help="a smoothness target (see above)")
    p.add_argument("--exclude", type=_command, action="append", default=None,
                   metavar="VX,VY,YAW", help="leave this grid command out (see above)")
    p.add_argument("--sb3-critic", type=int, nargs="+", default=None,
                   help="critic widths of the --sb3-crossq peer (default 2048 2048)")
    p.add_argument("--parallel", type=int, default=1, help="jobs at a time")
    p.add_argument("--work", type=Path, default=None, help="keep run dirs and logs here")
    p.add_argument("--json", type=Path, default=None, help="write every check here")
    for hidden in ("--sb3-worker", "--sb3-algo", "--snapshots", "--eval-worker", "--source",
                   "--report"):
        p.add_argument(hidden, default=None, help=argparse.SUPPRESS)
    p.add_argument("--t0", type=float, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.smoothness is not None:
        args.smoothness = dict(args.smoothness)
    if args.eval_worker:
        return eval_worker(args)
    if args.sb3_worker:
        return sb3_worker(args)
    if not (args.config or args.sb3 or args.sb3_crossq):
        p.error("give at least one --config, --sb3 or --sb3-crossq")
    jobs = []
    for kind, specs in (("robotac", args.config), ("sb3_sac", args.sb3),
                        ("sb3_crossq", args.sb3_crossq)):
        for spec in specs:
            name, _, rest = spec.partition("=")
            recipe, *flags = rest.split() or [""]
            if not recipe or not Path(recipe).is_file():
                p.error(f"{spec!r}: expected NAME=RECIPE [train flags] with an existing recipe")
            if flags and kind != "robotac":
                p.error(f"{spec!r}: train flags apply to --config (robotac) jobs only")
            jobs += [Job(name, kind, recipe, s, flags) for s in args.seeds]
    jobs.sort(key=lambda j: j.seed)
    work = args.work or Path(tempfile.mkdtemp(prefix="time_to_steer_"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"{len(jobs)} jobs, {args.parallel} at a time, budget {args.budget_min:g} min each, "
          f"a grid check every {args.check_every} steps; load average {os.getloadavg()}; "
          f"logs in {work}", flush=True)
    run_jobs(jobs, args.parallel, lambda job: Running(job, work, args), poll_s=1.0)
    print(f"load average at the end {os.getloadavg()}")
    print_table(jobs, args.budget_min)
    if args.json:
        args.json.write_text(json.dumps({
            "targets": asdict(SteerTargets(smoothness=args.smoothness or {})),
            "excluded_commands": [list(c) for c in args.exclude or ()],
            "episodes": args.episodes, "episode_s": args.episode_s,
            "budget_min": args.budget_min, "check_every": args.check_every,
            "jobs": [asdict(j) for j in jobs],
        }, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
