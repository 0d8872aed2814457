"""``robotac export``: a training run's actor -> one ONNX file, with parity checks.

``export_run(run_dir)`` loads the run's best (or latest) actor and normalizer with
:func:`robotac.checkpoint.load_policy`, builds the metadata of DESIGN.md contract 3 and writes
``run_dir/policy.onnx`` through :func:`policies.export.export_onnx`. The trainer calls it at the
end of training; ``robotac export --run DIR [--out FILE] [--check]`` calls it from the shell.

Parity is measured, not assumed:

- :func:`check_parity`: onnxruntime vs the torch actor on random observations and on
  observations recorded from the env, max absolute difference in action units (target 1e-5);
- :func:`episode_parity`: one seeded evaluation episode driven by each, relative difference of
  the returns (target 1e-3), judged only when the episode is not chaotic: :func:`chaos_baseline`
  drives it with the torch actor twice, one copy moved by the ONNX file's own action difference,
  and when that pair diverges too the returns say nothing of the export.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from deploy.commands import COMMAND_KEYS, command_ranges
from policies.export import (
    export_onnx,
    make_metadata,
    onnx_actions,
    onnx_parity,
    onnx_session,
    random_observations,
)
from policies.networks import deterministic_action
from robotac.checkpoint import PolicyBundle, load_policy, which_arg

__all__ = [
    "export_run",
    "export_bundle",
    "record_observations",
    "check_parity",
    "run_episode",
    "episode_parity",
    "chaos_baseline",
    "main",
]


def _version() -> str:
    try:
        return importlib.metadata.version("robotac")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def robot_metadata(env_id: str, env_kwargs: dict[str, Any],
                   interface: dict[str, Any] | None) -> dict[str, Any]:
    """The ``robot`` metadata entry of a policy for ``robotac/Quadruped-v0``: the robot's name,
    the SHA-256 of its description (``robot.yaml`` + MJCF bytes, as they are at export) and its
    command ranges (the env's defaults for it, which deploy clips live commands to); ``{}`` for
    other envs.

    Raises:
        ValueError: if the description's joints are no longer the ones the policy was trained
            with (it changed since training).
    """
    if env_id != "robotac/Quadruped-v0":
        return {}
    from envs.robot_description import DEFAULT_ROBOT, load_description

    desc = load_description(env_kwargs.get("robot") or DEFAULT_ROBOT)
    if interface is not None and list(interface["joint_names"]) != list(desc.joint_names):
        raise ValueError(f"robot {desc.name!r} ({desc.folder}) now has joints "
                         f"{list(desc.joint_names)}, the policy was trained with "
                         f"{list(interface['joint_names'])}")
    return {"robot": {"name": desc.name, "description_sha256": desc.sha256,
                      "command_ranges": {k: list(v) for k, v in desc.command_ranges.items()}}}


def export_bundle(bundle: PolicyBundle, out: str | Path, source: str | None = None,
                  deploy_ranges: dict[str, Any] | None = None) -> Path:
    """Export a loaded policy to ``out``.

    Args:
        bundle: From :func:`robotac.checkpoint.load_policy`.
        out: ``.onnx`` file to write (atomically).
        source: Where the policy came from: a run name, recorded as ``source_run``. A path is
            reduced to its last component (the run directory's name), so the file carries
            nothing of the machine it was made on.
        deploy_ranges: ``{key: (low, high)}`` for some of ``vx`` [m/s], ``vy`` [m/s],
            ``yaw_rate`` [rad/s]: the command ranges deploy clips live commands to, each inside
            the trained range (:func:`deploy.commands.command_ranges`); recorded as the
            metadata's ``deploy_command_ranges``. ``None``: deploy clips to the trained ranges.

    Returns:
        ``out`` as a :class:`Path`.

    Raises:
        ValueError: for a deploy range outside the trained one or not ``low <= high``, before
            anything is written.
    """
    robot = robot_metadata(bundle.env_id, bundle.env_kwargs, bundle.interface)
    extra_ranges: dict[str, Any] = {}
    if deploy_ranges:
        ranges = {k: [float(v[0]), float(v[1])] for k, v in deploy_ranges.items()}
        command_ranges(bundle.env_kwargs, (robot.get("robot") or {}).get("command_ranges"),
                       ranges)  # raises, naming the trained range
        extra_ranges = {"deploy_command_ranges": ranges}
    meta = make_metadata(
        env_id=bundle.env_id,
        algo=bundle.algo,
        obs_dim=bundle.obs_dim,
        action_low=bundle.action_low,
        action_high=bundle.action_high,
        interface=bundle.interface,
        robotac_version=_version(),
        env_kwargs=bundle.env_kwargs,
        normalizer=bundle.obs_norm,
        extra={
            "source_run": None if source is None else Path(source).name,
            "global_step": int(bundle.global_step),
            "eval_return": bundle.eval_return,
            "hidden": list(bundle.config.get("hidden", [])),
            **robot,
            **extra_ranges,
        },
    )
    return export_onnx(bundle.actor, bundle.obs_norm, out, meta)


def export_run(run_dir: str | Path, out: str | Path | None = None, which: str = "best",
               deploy_ranges: dict[str, Any] | None = None) -> Path:
    """Export the actor of a training run to ONNX.

    Args:
        run_dir: Run directory written by ``robotac train`` (or a checkpoint ``.pt`` file).
        out: Output file; default ``run_dir/policy.onnx``.
        which: ``"best"``, ``"latest"`` or ``"step_N"`` checkpoint.
        deploy_ranges: As :func:`export_bundle`.

    Returns:
        Path of the written file.

    Raises:
        robotac.checkpoint.CheckpointError: if the checkpoint is missing or corrupt.
        ValueError: for a deploy range outside the trained one.
    """
    run_dir = Path(run_dir)
    bundle = load_policy(run_dir, which)
    if out is None:
        out = (run_dir.parent if run_dir.is_file() else run_dir) / "policy.onnx"
    run_name = (run_dir.parent.parent if run_dir.is_file() else run_dir).resolve().name
    return export_bundle(bundle, out, source=run_name, deploy_ranges=deploy_ranges)


def _make_env(env_id: str, env_kwargs: dict[str, Any]):
    from robotac.env_utils import make_env

    return make_env(env_id, **env_kwargs)


def record_observations(
    bundle: PolicyBundle, n: int, seed: int = 0, action_noise: float = 0.3
) -> np.ndarray:
    """Observations from the policy's env, driven by the torch actor plus Gaussian noise.

    The noise (a share ``action_noise`` of each half-range) spreads the states visited beyond one
    trajectory; episodes restart with consecutive seeds when they end.

    Returns:
        ``(n, obs_dim)`` float32 raw observations.
    """
    env = _make_env(bundle.env_id, bundle.env_kwargs)
    rng = np.random.default_rng(seed)
    low, high = bundle.action_low.astype(np.float64), bundle.action_high.astype(np.float64)
    half = (high - low) / 2
    out = np.empty((n, bundle.obs_dim), dtype=np.float32)
    try:
        obs, _ = env.reset(seed=seed)
        ep = 0
        for i in range(n):
            out[i] = obs
            a = bundle.act(obs)
            a = np.clip(a + action_noise * half * rng.standard_normal(a.shape), low, high)
            obs, _, terminated, truncated, _ = env.step(a.astype(np.float32))
            if terminated or truncated:
                ep += 1
                obs, _ = env.reset(seed=seed + ep)
    finally:
        env.close()
    return out


def check_parity(
    bundle: PolicyBundle, onnx_path: str | Path, n: int = 10_000, seed: int = 0
) -> dict[str, float]:
    """Max absolute action difference, onnxruntime vs torch, on random and recorded observations.

    Returns:
        ``{"random_max_abs": ..., "recorded_max_abs": ..., "n": n}`` [action units].
    """
    rng = np.random.default_rng(seed)
    rand = random_observations(n, bundle.obs_norm, rng)
    rec = record_observations(bundle, n, seed)
    return {
        "random_max_abs": onnx_parity(onnx_path, bundle.actor, bundle.obs_norm, rand),
        "recorded_max_abs": onnx_parity(onnx_path, bundle.actor, bundle.obs_norm, rec),
        "n": n,
    }


def run_episode(
    act: Callable[[np.ndarray], np.ndarray],
    env_id: str,
    env_kwargs: dict[str, Any],
    seed: int,
    max_steps: int | None = None,
) -> dict[str, float]:
    """One seeded episode with ``act(obs (obs_dim,)) -> action (act_dim,)``.

    Returns:
        ``{"return", "length", "forward_velocity_m_s"}``; the last is the mean of
        ``info["base_lin_vel_m_s"][0]`` (body-frame forward velocity) when the env reports it,
        else NaN.
    """
    env = _make_env(env_id, env_kwargs)
    total, steps, vx = 0.0, 0, []
    try:
        obs, _ = env.reset(seed=seed)
        while max_steps is None or steps < max_steps:
            obs, reward, terminated, truncated, info = env.step(act(obs))
            total += float(reward)
            steps += 1
            if "base_lin_vel_m_s" in info:
                vx.append(float(np.asarray(info["base_lin_vel_m_s"])[0]))
            if terminated or truncated:
                break
    finally:
        env.close()
    return {
        "return": total,
        "length": steps,
        "forward_velocity_m_s": float(np.mean(vx)) if vx else float("nan"),
    }


def _lockstep(
    bundle: PolicyBundle,
    acts: tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]],
    seed: int,
    max_steps: int | None,
) -> dict[str, Any]:
    """Two envs of ``bundle`` from the same seed, each driven by one of ``acts``, side by side.

    Returns ``returns``, ``lengths`` (one per env), ``rel_diff`` ``|R_1 - R_0| / max(|R_0|,
    1e-8)`` and ``divergence_step`` (first step whose observations differ by more than 1e-3)."""
    envs = [_make_env(bundle.env_id, bundle.env_kwargs) for _ in range(2)]
    returns, lengths, done = [0.0, 0.0], [0, 0], [False, False]
    divergence: int | None = None
    try:
        obs = [e.reset(seed=seed)[0] for e in envs]
        step = 0
        while not all(done) and (max_steps is None or step < max_steps):
            if divergence is None and not any(done) and np.abs(obs[0] - obs[1]).max() > 1e-3:
                divergence = step
            for i in (0, 1):
                if done[i]:
                    continue
                obs[i], reward, terminated, truncated, _ = envs[i].step(acts[i](obs[i]))
                returns[i] += float(reward)
                lengths[i] += 1
                done[i] = terminated or truncated
            step += 1
    finally:
        for e in envs:
            e.close()
    rel_diff = abs(returns[1] - returns[0]) / max(abs(returns[0]), 1e-8)
    return {"returns": returns, "lengths": lengths, "rel_diff": rel_diff,
            "divergence_step": divergence}


def _torch_policy(bundle: PolicyBundle) -> Callable[[np.ndarray], np.ndarray]:
    """The bundle's deterministic torch actor as ``obs -> action`` on numpy arrays."""
    return lambda obs: deterministic_action(bundle.actor, bundle.obs_norm, obs)


def episode_parity(
    bundle: PolicyBundle, onnx_path: str | Path, seed: int = 0, max_steps: int | None = None
) -> dict[str, float]:
    """Run the same seeded episode with the torch actor and with onnxruntime, in lockstep.

    The two envs are stepped side by side, so the step where their observations first differ by
    more than 1e-3 is reported too. Float32 rounding differences (~1e-6) between the two
    implementations are amplified by the closed loop of an unstable policy (an untrained actor
    that stumbles: about 10x per 10 steps) or of a gait whose contacts make it chaotic, so the
    returns match only for policies whose trajectories are stable; :func:`chaos_baseline` tells
    which case it is.

    Returns:
        ``{"torch_return", "onnx_return", "rel_diff", "torch_length", "onnx_length",
        "divergence_step"}``; ``rel_diff = |R_onnx - R_torch| / max(|R_torch|, 1e-8)`` (target
        < 1e-3); ``divergence_step`` is ``None`` when the observations never differ by > 1e-3.
    """
    sess = onnx_session(onnx_path)

    def act_onnx(obs: np.ndarray) -> np.ndarray:
        return onnx_actions(sess, obs[None])[0]

    r = _lockstep(bundle, (_torch_policy(bundle), act_onnx), seed, max_steps)
    (r_t, r_o), (n_t, n_o) = r["returns"], r["lengths"]
    return {
        "torch_return": r_t,
        "onnx_return": r_o,
        "rel_diff": r["rel_diff"],
        "torch_length": n_t,
        "onnx_length": n_o,
        "divergence_step": r["divergence_step"],
    }


def chaos_baseline(
    bundle: PolicyBundle, action_eps: float, seed: int = 0, max_steps: int | None = None
) -> dict[str, float]:
    """Is the seeded episode chaotic? The torch actor against itself, one copy perturbed.

    The same episode as :func:`episode_parity`, but both envs are driven by the torch actor, the
    second with every action moved by ``+-action_eps`` (a random sign per joint and step, seeded)
    [rad]: an actor that differs from torch by as much as the ONNX file does
    (:func:`check_parity`'s max difference), with nothing of the export in it. When this pair
    diverges too, the closed loop amplifies float-sized differences, and the returns of
    :func:`episode_parity` cannot be expected to agree; the export is then judged by its action
    parity alone.

    Returns:
        ``{"rel_diff", "divergence_step", "action_eps"}`` as in :func:`episode_parity`.
    """
    rng = np.random.default_rng(seed)
    act_torch = _torch_policy(bundle)

    def act_perturbed(obs: np.ndarray) -> np.ndarray:
        a = act_torch(obs)
        return a + action_eps * rng.choice((-1.0, 1.0), size=a.shape)

    r = _lockstep(bundle, (act_torch, act_perturbed), seed, max_steps)
    return {"rel_diff": r["rel_diff"], "divergence_step": r["divergence_step"],
            "action_eps": float(action_eps)}


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="robotac export",
        description="Export a training run's actor (normalizer + deterministic action) to ONNX.",
    )
    ap.add_argument("--run", required=True, help="run directory of `robotac train` (or a .pt)")
    ap.add_argument("--out", default=None, help="output .onnx file (default RUN/policy.onnx)")
    ap.add_argument("--which", type=which_arg, default="best",
                    help="checkpoint to export: best, latest or step_N (kept with keep_every)")
    ap.add_argument("--deploy-range", nargs=3, action="append", default=None,
                    metavar=("KEY", "LOW", "HIGH"),
                    help="clip deploy's live commands to [LOW, HIGH] for KEY (vx, vy [m/s], "
                         "yaw_rate [rad/s]), inside the trained range; repeat per key. E.g. "
                         "--deploy-range vx -0.3 0.4 for a gait trained to 0.5 m/s that tracks "
                         "0.4 (default: the trained ranges)")
    ap.add_argument("--check", action="store_true",
                    help="measure parity: 10,000 random and recorded observations, and one "
                         "seeded evaluation episode")
    return ap


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``robotac export``; returns the exit status."""
    ap = build_parser()
    args = ap.parse_args(argv)
    deploy_ranges: dict[str, tuple[float, float]] = {}
    for key, low, high in args.deploy_range or []:
        if key not in COMMAND_KEYS or key in deploy_ranges:
            ap.error(f"--deploy-range {key}: KEY must be one of {', '.join(COMMAND_KEYS)}, "
                     "each once")
        try:
            deploy_ranges[key] = (float(low), float(high))
        except ValueError:
            ap.error(f"--deploy-range {key} {low} {high}: LOW and HIGH must be numbers")
    t0 = time.perf_counter()
    try:
        path = export_run(args.run, args.out, args.which, deploy_ranges or None)
    except Exception as exc:  # noqa: BLE001 - one clear line for the shell
        print(f"robotac export: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"exported {path} in {time.perf_counter() - t0:.1f} s")
    if args.check:
        bundle = load_policy(args.run, args.which)
        par = check_parity(bundle, path)
        ep = episode_parity(bundle, path, seed=0)
        report: dict[str, Any] = {"action_parity": par, "episode_parity": ep}
        action_diff = max(par["random_max_abs"], par["recorded_max_abs"])
        actions_ok = action_diff <= 1e-5
        episode_ok = ep["rel_diff"] < 1e-3
        if not episode_ok:
            base = chaos_baseline(bundle, max(action_diff, 1e-7), seed=0)
            report["chaos_baseline"] = base
            # Torch against itself, moved by the ONNX file's own action difference: when that
            # diverges as well, the episode is chaotic and its returns say nothing of the export.
            episode_ok = base["divergence_step"] is not None
        print(json.dumps(report, indent=1))
        if not episode_ok:
            print(f"The episode's returns differ by {100 * ep['rel_diff']:.2f} %, while the torch "
                  f"actor against itself, moved by {report['chaos_baseline']['action_eps']:.1e} "
                  "rad, stays on the same trajectory: the ONNX file acts differently in closed "
                  "loop.", file=sys.stderr)
        elif ep["rel_diff"] >= 1e-3:
            print(f"The episode is chaotic: the torch actor against itself, moved by "
                  f"{report['chaos_baseline']['action_eps']:.1e} rad, diverges at step "
                  f"{report['chaos_baseline']['divergence_step']} (returns "
                  f"{100 * report['chaos_baseline']['rel_diff']:.2f} % apart); the ONNX "
                  f"episode's {100 * ep['rel_diff']:.2f} % is not judged, the action parity is.")
        if not (actions_ok and episode_ok):
            print("parity check FAILED (targets: max abs diff <= 1e-5; episode rel diff < 1e-3 "
                  "unless the episode is chaotic)", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
