"""The training loop shared by SAC, TD3 and DDPG.

``train(cfg)`` collects transitions from ``num_envs`` Gymnasium envs (same-step autoreset), stores
them raw in the replay buffer, runs ``utd_ratio`` gradient updates per env step after
``learning_starts`` random steps, evaluates the deterministic actor on a separate env, logs
TensorBoard scalars, and writes checkpoints that resume bitwise exactly on CPU.

Run directory::

    run_dir/
      config.json              resolved TrainConfig (+ robotac version)
      tb/                      TensorBoard event files (CleanRL tag names)
      episodes.csv             global_step, episodic_return, episodic_length
      eval.csv                 global_step, mean_return, std_return
      checkpoints/latest.pt    full state (resume)
      checkpoints/best.pt      actor + normalizer of the best evaluation (load_policy)
      checkpoints/step_N.pt    actor + normalizer kept at env step N (config keep_every)
      learning_curve.png       training and evaluation returns vs env steps
      videos/eval.mp4          one deterministic episode (when a GL backend exists)
      *.onnx                   exported actor (robotac.export, when available)
"""

from __future__ import annotations

import csv
import json
import math
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from policies.networks import RunningNorm, deterministic_action
from robotac import checkpoint as ckpt_mod
from robotac.algos import OffPolicyAlgo, make_algo
from robotac.buffer import BatchMirror, ReplayBuffer
from robotac.config import (
    SESSION_FIELDS,
    TRAJECTORY_NOTES,
    ConfigError,
    TrainConfig,
    resolved,
    to_dict,
    validate,
)
from robotac.env_utils import (
    actor_bounds,
    check_spaces,
    env_interface,
    episode_seed,
    make_env,
    make_vector_env,
)

__all__ = ["train", "evaluate", "transition_next_obs", "RunDirError", "TrainResult"]


class RunDirError(FileExistsError):
    """The run directory exists (runs are never overwritten) or is missing when resuming."""


@dataclass
class TrainResult:
    """What :func:`train` returns."""

    run_dir: Path
    global_step: int
    final_eval_return: float | None
    best_eval_return: float | None
    stopped_early: bool = False
    learning_sps: float | None = None
    """Env steps per second of this session after ``learning_starts`` (training only: the time
    spent in evaluations and checkpoints is excluded)."""


@dataclass
class LoopState:
    """Counters and histories that a checkpoint carries besides networks and buffer."""

    global_step: int = 0
    update_credit: float = 0.0
    n_evals: int = 0
    best_eval: float = -math.inf
    episode_returns: list[float] = field(default_factory=list)  # per env, running
    episode_lengths: list[int] = field(default_factory=list)
    train_history: list[list[float]] = field(default_factory=list)  # [step, return, length]
    eval_history: list[list[float]] = field(default_factory=list)  # [step, mean, std]
    last_return: float | None = None
    pending_updates: int = 0  # collector=process: updates owed for the last collected chunk


def _default_run_dir(cfg: TrainConfig) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{cfg.env_id.replace('/', '_')}__{cfg.algo}__s{cfg.seed}__{stamp}"


def evaluate(
    actor: torch.nn.Module,
    obs_norm: RunningNorm,
    env: gym.Env,
    episodes: int,
    seed: int,
    max_steps: int = 100_000,
) -> np.ndarray:
    """Deterministic returns of ``episodes`` episodes; episode ``k`` resets with ``seed + k``.

    Args:
        actor: Actor with ``.deterministic(obs_normalized)``, on the normalizer's device.
        obs_norm: Normalizer applied to the raw observation
            (:func:`policies.networks.deterministic_action`).
        env: Single (not vector) env.
        episodes: Number of episodes.
        seed: Seed of the first episode.
        max_steps: Safety cap on steps per episode (for envs without a time limit).

    Returns:
        ``(episodes,)`` float64 undiscounted returns. Uses no global RNG.
    """
    returns = np.zeros(episodes)
    for k in range(episodes):
        obs, _ = env.reset(seed=seed + k)
        for _ in range(max_steps):
            obs, reward, terminated, truncated, _ = env.step(
                deterministic_action(actor, obs_norm, obs))
            returns[k] += float(reward)
            if terminated or truncated:
                break
    return returns


def transition_next_obs(next_obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
    """The next observation of each env's transition under same-step autoreset.

    With ``AutoresetMode.SAME_STEP`` a vector env that ends an episode returns the *reset*
    observation of the next episode in ``next_obs`` and the episode's last observation in
    ``info["final_obs"][i]`` (flagged by ``info["_final_obs"][i]``). The replay buffer needs the
    latter: a truncated transition bootstraps from it.

    Args:
        next_obs: ``(num_envs, obs_dim)`` observations returned by ``envs.step``.
        info: The info dict returned by the same ``envs.step``.

    Returns:
        ``next_obs`` itself when no episode ended, else a copy with the final observations of
        the envs that ended put in their rows.
    """
    ended = info.get("_final_obs")
    if ended is None or not np.any(ended):
        return next_obs
    real_next = next_obs.copy()
    for i in np.flatnonzero(ended):
        real_next[i] = info["final_obs"][i]
    return real_next


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": _py_state(random.getstate())}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _py_state(s: tuple) -> list:
    return [s[0], list(s[1]), s[2]]


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    s = state["python"]
    random.setstate((s[0], tuple(s[1]), s[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class _Logger:
    """TensorBoard writer plus CSV files; created lazily so a failed start leaves no files."""

    def __init__(self, run_dir: Path):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(run_dir / "tb"))
        self.run_dir = run_dir

    def scalar(self, tag: str, value: float, step: int) -> None:
        self.writer.add_scalar(tag, value, step)

    def rewrite_csvs(self, st: LoopState) -> None:
        with open(self.run_dir / "episodes.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["global_step", "episodic_return", "episodic_length"])
            w.writerows(st.train_history)
        with open(self.run_dir / "eval.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["global_step", "mean_return", "std_return"])
            w.writerows(st.eval_history)

    def close(self) -> None:
        self.writer.close()


def _count_episode_step(st: LoopState, reward: np.ndarray, done: np.ndarray,
                        logger: _Logger) -> None:
    """Add one vector step's ``(n,)`` rewards to the running episodes; record, log and restart
    each episode that ``done`` (``(n,)`` bool: terminated or truncated) ends. ``st.global_step``
    is already the step count after this step."""
    for i in range(len(done)):
        st.episode_returns[i] += float(reward[i])
        st.episode_lengths[i] += 1
        if done[i]:
            ret, length = st.episode_returns[i], st.episode_lengths[i]
            st.train_history.append([st.global_step, ret, length])
            st.last_return = ret
            logger.scalar("charts/episodic_return", ret, st.global_step)
            logger.scalar("charts/episodic_length", length, st.global_step)
            st.episode_returns[i], st.episode_lengths[i] = 0.0, 0


def train(cfg: TrainConfig, on_eval: Callable[[int, float], bool] | None = None) -> TrainResult:
    """Train per ``cfg``; see the module docstring for the run directory.

    Args:
        cfg: The configuration.
        on_eval: Called after each periodic evaluation (every ``eval_every`` env steps, not the
            final one) with ``(global_step, mean_return)``; returning True stops the run there as
            ``stop_after_steps`` does: ``latest.pt`` and the CSVs are written, no final
            evaluation, ``TrainResult.stopped_early`` is True (``robotac sweep`` prunes with it).

    Raises:
        ConfigError: for an out-of-range or inconsistent config value.
        EnvError: for an unknown env id or an unsuitable action/observation space.
        RunDirError: if the run directory exists (and this is not a resume).
        CheckpointError: when resuming from a missing, corrupt or mismatching checkpoint.
    """
    resume_ckpt = None
    if cfg.resume is not None:
        run_dir = Path(cfg.resume)
        latest = ckpt_mod.checkpoint_path(run_dir, "latest")
        if not run_dir.is_dir():
            raise RunDirError(f"cannot resume: run directory {run_dir} does not exist")
        # CPU first: the torch RNG state must stay a CPU tensor; modules, optimizers and the
        # buffer copy their tensors to the configured device when loaded.
        resume_ckpt = ckpt_mod.load_checkpoint(latest, map_location="cpu")
        saved = resume_ckpt["meta"]["config"]
        ckpt_mod.check_matches(resume_ckpt, latest, cfg.env_id, cfg.algo)
        # The trajectory-defining fields come from the checkpoint; session fields from cfg. A
        # field set to a non-default value that contradicts the checkpoint is an error.
        defaults = TrainConfig()

        def same(a, b) -> bool:
            return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)

        conflicts = [
            f"{k}={getattr(cfg, k)!r} (run has {v!r})"
            for k, v in saved.items()
            if k not in SESSION_FIELDS and k in defaults.__dataclass_fields__
            and not same(getattr(cfg, k), getattr(defaults, k)) and not same(getattr(cfg, k), v)
        ]
        if conflicts:
            why = "".join(f"; {k} changes the trajectory: {note}"
                          for k, note in TRAJECTORY_NOTES.items()
                          if any(c.startswith(f"{k}=") for c in conflicts))
            raise ConfigError(
                f"cannot resume {run_dir} with changed settings: {', '.join(conflicts)}{why}; "
                f"only {sorted(SESSION_FIELDS)} may change on resume"
            )
        # A session field the run's saved config predates takes the new session's value too.
        merged = {**{k: getattr(cfg, k) for k in SESSION_FIELDS},
                  **{k: (getattr(cfg, k) if k in SESSION_FIELDS else v) for k, v in saved.items()}}
        merged["hidden"] = tuple(merged["hidden"])
        merged["run_dir"] = str(run_dir)
        cfg = TrainConfig(**merged)
    cfg = resolved(cfg)
    validate(cfg)
    torch.set_num_threads(cfg.num_threads)
    device = torch.device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        if resume_ckpt is not None:
            raise ConfigError(
                f"run {run_dir} was trained on device={cfg.device} and torch finds no CUDA GPU "
                f"here; it resumes only on {cfg.device} ({TRAJECTORY_NOTES['device']})"
            )
        raise ConfigError(
            f"device={cfg.device} was requested but torch finds no CUDA GPU: use --device cpu"
        )

    if resume_ckpt is None:
        run_dir = Path(cfg.run_dir) if cfg.run_dir else _default_run_dir(cfg)
        if run_dir.exists() and any(run_dir.iterdir()):
            raise RunDirError(
                f"run directory {run_dir} already exists and is not empty; runs are never "
                f"overwritten: choose another --run-dir, or continue it with --resume {run_dir}"
            )
        cfg.run_dir = str(run_dir)

    # Seeding (same seed -> same run on CPU). Env resets are seeded by SeededResets.
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    np_rng = np.random.default_rng(cfg.seed)

    # Envs first: an unknown id or unsuitable space fails before anything is written.
    check_robot_description(cfg)
    probe = make_env(cfg.env_id, **cfg.env_kwargs)
    obs_dim, action_low, action_high = check_spaces(probe, cfg.env_id)
    action_low, action_high = actor_bounds(probe, cfg.env_id, cfg.actor_bounds, action_low,
                                           action_high, cfg.actor_bound_radius)
    interface = env_interface(probe)
    probe.close()
    # collector=process: the training envs live in the worker process (robotac.collector).
    envs = None if cfg.collector == "process" else make_vector_env(
        cfg.env_id, cfg.env_kwargs, cfg.num_envs, cfg.seed, cfg.vector_mode)
    eval_env = make_env(cfg.env_id, **cfg.env_kwargs)
    n = cfg.num_envs

    algo: OffPolicyAlgo = make_algo(cfg, obs_dim, action_low, action_high, n)
    skip, skip_std = obs_norm_skip_scales(interface, cfg)
    obs_norm = RunningNorm(obs_dim, clip=ckpt_mod.obs_clip_of(to_dict(cfg)), skip=skip,
                           skip_std=skip_std).to(device)
    buffer = ReplayBuffer(cfg.buffer_size, obs_dim, len(action_low), device)
    mirror = batch_mirror(interface, cfg, action_low, action_high, device)
    st = LoopState(episode_returns=[0.0] * n, episode_lengths=[0] * n)
    meta = {
        "algo": cfg.algo,
        "env_id": cfg.env_id,
        "env_kwargs": dict(cfg.env_kwargs),
        "obs_dim": obs_dim,
        "action_low": action_low.tolist(),
        "action_high": action_high.tolist(),
        "interface": interface,
        "config": to_dict(cfg),
    }

    collector = None
    saved_behaviour = None  # collector=process: the weights the next chunk is collected with
    if cfg.collector == "process":
        from robotac.collector import ProcessCollector, behaviour_snapshot, to_checkpoint

        collector = ProcessCollector(cfg, obs_dim, action_low, action_high,
                                     ckpt_mod.obs_clip_of(to_dict(cfg)), skip, skip_std)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "checkpoints").mkdir(exist_ok=True)
        if resume_ckpt is None:
            from robotac import __version__

            (run_dir / "config.json").write_text(
                json.dumps({**to_dict(cfg), "robotac_version": __version__}, indent=2) + "\n"
            )
            obs = envs.reset()[0] if collector is None else collector.reset()
        else:
            obs = _restore(resume_ckpt, algo, obs_norm, buffer, st, envs, np_rng, cfg)
            if collector is not None:
                obs = _restore_collector(collector, resume_ckpt, cfg)
                saved_behaviour = resume_ckpt["loop"]["collector"]["behaviour"]
            print(f"resumed {run_dir} at step {st.global_step}")
    except BaseException:
        if collector is not None:
            collector.close()
        raise
    if cfg.normalize_obs and resume_ckpt is None:
        obs_norm.update(torch.as_tensor(obs))

    logger = _Logger(run_dir)
    logger.rewrite_csvs(st)
    bar = None
    if cfg.progress:
        from robotac.progress import progress_bar

        bar = progress_bar(cfg.total_steps, st.global_step, desc=f"{cfg.algo} {cfg.env_id}")

    def make_payload(kind: str, eval_return: float | None) -> dict[str, Any]:
        payload = {
            "format": ckpt_mod.FORMAT,
            "kind": kind,
            "meta": {**meta, "global_step": st.global_step, "eval_return": eval_return},
            "algo": algo.state_dict(),
            "obs_norm": obs_norm.state_dict(),
        }
        if kind == "latest":
            payload["loop"] = {
                "state": {k: getattr(st, k) for k in LoopState.__dataclass_fields__},
                "obs": torch.as_tensor(obs).clone(),
                "rng": _rng_state(),
                "np_rng": np_rng.bit_generator.state,
            }
            if collector is None:
                payload["loop"]["envs"] = list(envs.call("robotac_state"))
            else:
                worker = collector.state()
                payload["loop"]["envs"] = worker["envs"]
                payload["loop"]["collector"] = {
                    **worker, "behaviour": to_checkpoint(
                        final_behaviour or behaviour_snapshot(algo.actor, obs_norm))}
            if cfg.save_buffer:
                payload["buffer"] = buffer.state_dict()
        return payload

    def run_eval() -> float:
        returns = evaluate(algo.actor, obs_norm, eval_env, cfg.eval_episodes,
                           seed=episode_seed(cfg.seed, 10_000 + st.n_evals, 0) % 2**31)
        st.n_evals += 1
        mean = float(returns.mean())
        st.eval_history.append([st.global_step, mean, float(returns.std())])
        logger.scalar("eval/mean_return", mean, st.global_step)
        logger.scalar("eval/std_return", float(returns.std()), st.global_step)
        if mean > st.best_eval:
            st.best_eval = mean
            ckpt_mod.save_checkpoint(ckpt_mod.checkpoint_path(run_dir, "best"),
                                     make_payload("best", mean))
        return mean

    metrics: dict[str, torch.Tensor] = {}
    session_steps = 0
    t_log, step_log = time.perf_counter(), st.global_step
    stopped = False
    last_eval: float | None = st.eval_history[-1][1] if st.eval_history else None
    obs_t = torch.as_tensor(obs, dtype=torch.float32).to(device)
    learn_time, learn_steps = 0.0, 0
    final_behaviour = None  # collector=process: the next chunk's weights, kept at the final flush
    update_norm = obs_norm if cfg.normalize_obs else None

    def run_updates(count: int) -> None:
        """``count`` gradient updates at the current step (the algorithm told the step first:
        the CAPS ramp reads it); ``metrics`` keeps the last one's."""
        nonlocal metrics
        algo.set_training_step(st.global_step)
        for _ in range(count):
            metrics = algo.update(buffer.sample(cfg.batch_size, update_norm, mirror))

    def after_steps(prev: int) -> bool:
        """Log, advance the progress bar, evaluate and checkpoint for the env steps from ``prev``
        to ``st.global_step`` (both loops, each at its own stride: ``n`` or a chunk's ``k * n``);
        returns whether the run stops here (``on_eval`` said so or ``stop_after_steps`` is
        reached)."""
        nonlocal t_log, step_log, last_eval, stopped

        def crossed(every: int) -> bool:
            return st.global_step // every != prev // every

        if crossed(cfg.log_every):
            now = time.perf_counter()
            sps = (st.global_step - step_log) / max(now - t_log, 1e-9)
            t_log, step_log = now, st.global_step
            logger.scalar("charts/SPS", sps, st.global_step)
            for tag, v in metrics.items():
                logger.scalar(tag, float(v), st.global_step)  # one sync per log_every
            if bar is not None:
                bar.set_postfix(SPS=f"{sps:.0f}", ret=(
                    "-" if st.last_return is None else f"{st.last_return:.1f}"),
                    refresh=False)
        if bar is not None:
            bar.update(st.global_step - prev)
        if cfg.eval_every and crossed(cfg.eval_every):
            last_eval = run_eval()
            stopped = on_eval is not None and bool(on_eval(st.global_step, last_eval))
        if cfg.keep_every and crossed(cfg.keep_every):
            ckpt_mod.save_checkpoint(
                ckpt_mod.checkpoint_path(run_dir, f"step_{st.global_step}"),
                make_payload("step", last_eval))
        if stopped or crossed(cfg.checkpoint_every):
            ckpt_mod.save_checkpoint(ckpt_mod.checkpoint_path(run_dir, "latest"),
                                     make_payload("latest", last_eval))
            logger.rewrite_csvs(st)
        if stopped or (cfg.stop_after_steps is not None
                       and session_steps >= cfg.stop_after_steps):
            stopped = True
        return stopped

    def process_loop() -> None:
        """The rounds of collector=process (robotac.collector's schedule); returns at
        ``total_steps`` (after the owed updates), a stop, or ``stop_after_steps``."""
        nonlocal obs, learn_time, learn_steps, session_steps, final_behaviour
        nonlocal saved_behaviour
        while st.global_step < cfg.total_steps:
            t_round = time.perf_counter()
            k = min(cfg.collector_chunk, -(-(cfg.total_steps - st.global_step) // n))
            collector.start_collect(k, saved_behaviour or behaviour_snapshot(algo.actor, obs_norm))
            saved_behaviour = None
            run_updates(st.pending_updates)  # owed for the previous chunk, while it collects
            st.pending_updates = 0
            chunk = collector.finish_collect()
            prev = st.global_step
            for j in range(k):
                buffer.add(chunk.obs[j], chunk.action[j], chunk.reward[j],
                           chunk.real_next_obs[j], chunk.terminated[j], chunk.truncated[j])
                st.global_step += n
                session_steps += n
                done = np.logical_or(chunk.terminated[j], chunk.truncated[j])
                _count_episode_step(st, chunk.reward[j], done, logger)
                if cfg.normalize_obs:
                    obs_norm.update(torch.as_tensor(chunk.next_obs[j], dtype=torch.float32
                                                    ).to(device))
                if st.global_step >= cfg.learning_starts:
                    st.update_credit += n * cfg.utd_ratio
                    owed = int(st.update_credit)
                    st.update_credit -= owed
                    st.pending_updates += owed
            obs = chunk.next_obs[-1]
            if prev >= cfg.learning_starts:
                learn_time += time.perf_counter() - t_round
                learn_steps += k * n
            if after_steps(prev):
                return
        if st.pending_updates:  # the last chunk's updates, before the final evaluation
            final_behaviour = behaviour_snapshot(algo.actor, obs_norm)
            run_updates(st.pending_updates)
            st.pending_updates = 0

    try:
        if collector is not None:
            process_loop()
        while collector is None and st.global_step < cfg.total_steps:
            t_step = time.perf_counter()
            learning = st.global_step >= cfg.learning_starts
            # --- act ---------------------------------------------------------------------
            if st.global_step < cfg.learning_starts:
                action = action_low + (action_high - action_low) * np_rng.random(
                    (n, len(action_low)), dtype=np.float32)
            else:
                action = algo.act(obs_norm(obs_t), explore=True).cpu().numpy()
            next_obs, reward, terminated, truncated, info = envs.step(action)
            buffer.add(obs, action, reward, transition_next_obs(next_obs, info), terminated,
                       truncated)

            # --- bookkeeping -------------------------------------------------------------
            st.global_step += n
            session_steps += n
            done = np.logical_or(terminated, truncated)
            _count_episode_step(st, reward, done, logger)
            if done.any():
                algo.reset_noise(torch.as_tensor(done, device=device))
            obs = next_obs
            obs_t = torch.as_tensor(obs, dtype=torch.float32).to(device)
            if cfg.normalize_obs:
                obs_norm.update(obs_t)

            # --- learn -------------------------------------------------------------------
            if st.global_step >= cfg.learning_starts:
                st.update_credit += n * cfg.utd_ratio
                k = int(st.update_credit)
                st.update_credit -= k
                run_updates(k)
            if learning:
                learn_time += time.perf_counter() - t_step
                learn_steps += n

            # --- log / eval / checkpoint -------------------------------------------------
            if after_steps(st.global_step - n):
                break
        if not stopped:
            if not st.eval_history or st.eval_history[-1][0] != st.global_step:
                last_eval = run_eval()
            ckpt_mod.save_checkpoint(ckpt_mod.checkpoint_path(run_dir, "latest"),
                                     make_payload("latest", last_eval))
    finally:
        if bar is not None:
            bar.close()
        if envs is not None:
            envs.close()
        if collector is not None:
            collector.close()

    if not stopped:
        logger.rewrite_csvs(st)
        _plot_curve(run_dir, st, cfg)
        if cfg.video:
            _record_video(run_dir, algo.actor, obs_norm, cfg)
        if cfg.export:
            _export(run_dir)
    logger.close()
    eval_env.close()
    return TrainResult(run_dir, st.global_step, last_eval,
                       None if st.best_eval == -math.inf else st.best_eval, stopped,
                       learn_steps / learn_time if learn_time > 0 else None)


def check_robot_description(cfg: TrainConfig) -> None:
    """Refuse a ``robot=`` description (env kwarg of ``robotac/Quadruped-v0``) that fails
    ``robotac robot check``, with the check's message (:func:`envs.robot_check.check_robot`).

    Raises:
        ConfigError: one line per problem, each naming the ``robot.yaml`` field.
    """
    robot = cfg.env_kwargs.get("robot")
    if cfg.env_id != "robotac/Quadruped-v0" or robot is None:
        return
    from envs.robot_check import check_robot

    report = check_robot(robot)
    if not report.ok:
        raise ConfigError(report.message())


def batch_mirror(interface: dict | None, cfg: TrainConfig, action_low: np.ndarray,
                 action_high: np.ndarray, device: torch.device) -> BatchMirror | None:
    """The :class:`BatchMirror` of ``symmetry_augmentation`` (``None`` when it is off).

    Raises:
        ConfigError: naming ``symmetry_augmentation`` when the env publishes no robot interface,
            the interface cannot be mirrored, or the actor's bounds are not mirror images of
            each other (a mirrored action would leave them).
    """
    if not cfg.symmetry_augmentation:
        return None
    if interface is None:
        raise ConfigError(f"symmetry_augmentation=true: {cfg.env_id} publishes no robot interface "
                          f"(env.unwrapped.interface) to mirror; leave it false")
    from envs.interface import RobotInterface, mirror_maps
    from envs.robot_description import load_description

    try:
        robot = cfg.env_kwargs.get("robot")
        maps = mirror_maps(RobotInterface.from_dict(interface),
                           None if robot is None else load_description(robot))
    except ValueError as exc:
        raise ConfigError(f"symmetry_augmentation=true: {exc}; leave it false") from exc
    low, high = maps.action(action_low), maps.action(action_high)
    if not np.allclose(np.minimum(low, high), action_low, atol=1e-5) or not np.allclose(
            np.maximum(low, high), action_high, atol=1e-5):
        raise ConfigError(f"symmetry_augmentation=true: the actor bounds ({cfg.actor_bounds}) "
                          "are not left-right mirror images, so mirrored actions would leave "
                          "them; use actor_bounds=default_pose")
    return BatchMirror(maps, device)


def obs_block_indices(interface: dict | None, blocks: Sequence[str], env_id: str) -> list[int]:
    """Observation indices of the named blocks of the env's ``interface["obs_layout"]``.

    Raises:
        ConfigError: naming ``obs_norm_skip`` when a block is unknown (listing the env's) or
            the env publishes no observation layout.
    """
    slices = _obs_block_slices(interface, blocks, env_id)
    return sorted({i for b in blocks for i in range(slices[b].start, slices[b].stop)})


def _obs_block_slices(interface: dict | None, blocks: Sequence[str], env_id: str
                      ) -> dict[str, slice]:
    """The env's observation block slices, after checking that every one of ``blocks`` exists
    (``{}`` when ``blocks`` is empty). Raises as :func:`obs_block_indices`."""
    if not blocks:
        return {}
    layout = (interface or {}).get("obs_layout")
    if not layout:
        raise ConfigError(
            f"obs_norm_skip={list(blocks)}: {env_id} publishes no observation layout "
            f"(env.unwrapped.interface.obs_layout), so its blocks cannot be named; leave "
            f"obs_norm_skip empty"
        )
    from envs.interface import ObsLayout

    slices = ObsLayout.from_dict(layout).slices()
    unknown = [b for b in blocks if b not in slices]
    if unknown:
        raise ConfigError(
            f"obs_norm_skip has unknown blocks {unknown}; {env_id}'s observation blocks are "
            f"{list(slices)}"
        )
    return slices


def obs_norm_skip_scales(interface: dict | None, cfg: TrainConfig) -> tuple[list[int],
                                                                           list[float]]:
    """Indices of the ``obs_norm_skip`` blocks and the fixed std of each (``obs_norm_skip_std``).

    Raises:
        ConfigError: as :func:`obs_block_indices`, or naming ``obs_norm_skip_std`` when a
            block's list of stds does not have one value per entry of the block.
    """
    slices = _obs_block_slices(interface, cfg.obs_norm_skip, cfg.env_id)
    std = {i: 1.0 for b in cfg.obs_norm_skip for i in range(slices[b].start, slices[b].stop)}
    for block, values in cfg.obs_norm_skip_std.items():
        sl = slices[block]
        if len(values) != sl.stop - sl.start:
            raise ConfigError(
                f"obs_norm_skip_std[{block!r}] has {len(values)} values; {cfg.env_id}'s "
                f"block {block!r} has {sl.stop - sl.start} entries: give one std per entry"
            )
        std.update(zip(range(sl.start, sl.stop), map(float, values), strict=True))
    skip = sorted(std)
    return skip, [std[i] for i in skip]


def _restore(ckpt, algo, obs_norm, buffer, st, envs, np_rng, cfg) -> np.ndarray:
    """Load everything from a ``latest`` checkpoint; rebuild env states; return the current obs.

    Raises:
        CheckpointError: if the checkpoint lacks the replay buffer or the rebuilt env
            observations differ from the saved ones (an env that is not deterministic).
    """
    if "loop" not in ckpt or "buffer" not in ckpt:
        raise ckpt_mod.CheckpointError(
            "checkpoint has no replay buffer or loop state (saved with --no-save-buffer, or a "
            "'best' checkpoint): it cannot resume training"
        )
    algo.load_state_dict(ckpt["algo"])
    obs_norm.load_state_dict(ckpt["obs_norm"])
    buffer.load_state_dict(ckpt["buffer"])
    for k, v in ckpt["loop"]["state"].items():
        setattr(st, k, v)
    np_rng.bit_generator.state = ckpt["loop"]["np_rng"]
    _set_rng_state(ckpt["loop"]["rng"])
    if envs is None:  # collector=process: the worker rebuilds its envs (_restore_collector)
        return ckpt["loop"]["obs"].numpy()
    obs = np.stack(envs.call("robotac_restore", ckpt["loop"]["envs"]))
    saved_obs = ckpt["loop"]["obs"].numpy()
    if not np.array_equal(obs.astype(saved_obs.dtype), saved_obs):
        raise ckpt_mod.CheckpointError(
            f"env {cfg.env_id!r} did not reproduce its saved state on replay (max obs difference "
            f"{np.abs(obs - saved_obs).max():.3g}); it is not deterministic given seed and "
            "actions, so this run cannot resume exactly"
        )
    return saved_obs


def _restore_collector(collector, ckpt, cfg) -> np.ndarray:
    """Rebuild the collector worker's state from a ``latest`` checkpoint; return the obs.

    Raises:
        CheckpointError: if the checkpoint has no worker state, or the worker's rebuilt env
            observations differ from the saved ones.
    """
    if "collector" not in ckpt["loop"]:
        raise ckpt_mod.CheckpointError(
            "checkpoint has no collector worker state (saved by collector=inline); resume it "
            "with collector=inline")
    obs = collector.restore(ckpt["loop"]["collector"])
    saved_obs = ckpt["loop"]["obs"].numpy()
    if not np.array_equal(obs.astype(saved_obs.dtype), saved_obs):
        raise ckpt_mod.CheckpointError(
            f"env {cfg.env_id!r} did not reproduce its saved state on replay in the collector "
            f"worker (max obs difference {np.abs(obs - saved_obs).max():.3g}); it is not "
            "deterministic given seed and actions, so this run cannot resume exactly")
    return saved_obs


def _plot_curve(run_dir: Path, st: LoopState, cfg: TrainConfig) -> None:
    """``learning_curve.png``: training episode returns (and their moving mean) and evals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    if st.train_history:
        h = np.asarray(st.train_history)
        ax.plot(h[:, 0], h[:, 1], ".", alpha=0.25, ms=3, label="training episodes")
        w = deque(maxlen=10)
        ax.plot(h[:, 0], [(w.append(r), np.mean(w))[1] for r in h[:, 1]], label="mean of 10")
    if st.eval_history:
        e = np.asarray(st.eval_history)
        ax.errorbar(e[:, 0], e[:, 1], yerr=e[:, 2], fmt="o-", capsize=3,
                    label="deterministic eval")
    ax.set_xlabel("env steps")
    ax.set_ylabel("episode return")
    ax.set_title(f"{cfg.algo.upper()} on {cfg.env_id} (seed {cfg.seed})")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(run_dir / "learning_curve.png", dpi=100)
    plt.close(fig)


def _record_video(run_dir, actor, obs_norm, cfg: TrainConfig) -> None:
    """``videos/eval.mp4`` of one deterministic episode; prints why when it cannot render.

    At most ``cfg.video_frames`` frames: an episode of ``T`` steps is rendered every
    ``k = ceil(T / video_frames)`` steps and written at ``render_fps / k`` (real-time playback).
    Where no OpenGL backend exists (:func:`envs.gl.gl_problem`), prints one line with the reason
    and the fix instead.
    """
    from envs.gl import gl_problem

    problem = gl_problem()
    if problem is not None:
        print(f"no evaluation video: {problem}")
        return
    try:
        env = make_env(cfg.env_id, render_mode="rgb_array", **cfg.env_kwargs)
    except Exception as e:  # noqa: BLE001 - any failure only costs the video, and is reported
        print(f"no evaluation video: env {cfg.env_id!r} cannot render rgb_array ({e})")
        return
    try:
        import imageio.v2 as imageio

        frames = []
        horizon = (env.spec.max_episode_steps if env.spec else None) or 1000
        every = max(1, math.ceil(horizon / cfg.video_frames))
        obs, _ = env.reset(seed=cfg.seed)
        for t in range(horizon):
            if t % every == 0:
                frames.append(env.render())
            obs, _, term, trunc, _ = env.step(deterministic_action(actor, obs_norm, obs))
            if term or trunc:
                break
        fps = max(1, round((env.metadata.get("render_fps") or 30) / every))
        (run_dir / "videos").mkdir(exist_ok=True)
        imageio.mimsave(run_dir / "videos" / "eval.mp4", frames, fps=fps)
        print(f"evaluation video: {run_dir / 'videos' / 'eval.mp4'} ({len(frames)} frames)")
    except Exception as e:  # noqa: BLE001
        print(f"no evaluation video: rendering failed ({type(e).__name__}: {e})")
    finally:
        env.close()


def _export(run_dir: Path) -> None:
    """Export the best actor to ONNX with ``robotac.export`` (skipped while it does not exist)."""
    try:
        from robotac.export import export_run
    except ModuleNotFoundError as e:
        if e.name != "robotac.export":
            raise
        print("ONNX export skipped: robotac.export is not available in this checkout")
        return
    try:
        path = export_run(run_dir)
        print(f"exported ONNX policy: {path}")
    except Exception as e:  # noqa: BLE001 - training succeeded; report the export failure
        print(f"ONNX export FAILED ({type(e).__name__}: {e}); retry with: robotac export --run "
              f"{run_dir}")
