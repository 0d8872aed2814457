"""Does a quadruped policy walk? Deterministic episodes at a fixed velocity command.

Runs ``--episodes`` deterministic episodes of ``robotac/Quadruped-v0`` at the command
``--command VX,VY,YAW`` (default 0.5 m/s forward) with either a training run's actor (torch,
``--run DIR``) or an exported ONNX file (onnxruntime, ``--onnx FILE``), and prints per episode and
over all: the mean body-frame forward velocity [m/s] (the quantity the command specifies),
the world-frame forward speed from the displacement [m/s], the episode length and whether the
robot fell (terminated). The issue-5 criterion is: mean forward velocity within 0.1 m/s of the
command and no falls. Exit status 0 when it is met, 1 when not.

Usage::

    python scripts/eval_gait.py --onnx policies/pretrained/quadruped_sac.onnx
    python scripts/eval_gait.py --run runs/quadruped-walk-sac --which best --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

# scripts/deploy.py would shadow the deploy package: put the repository root first.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def load_policy_fn(args: argparse.Namespace) -> tuple[Callable[[np.ndarray], np.ndarray], dict]:
    """Return ``obs (45,) float32 -> action (12,)`` and the env kwargs the policy was trained on."""
    if args.onnx:
        from deploy.policy import OnnxPolicy

        policy = OnnxPolicy(args.onnx)
        return policy, dict(policy.metadata.get("env_kwargs") or {})
    from robotac.checkpoint import load_policy

    bundle = load_policy(args.run, args.which)
    return bundle.act, dict(bundle.env_kwargs)


def evaluate_gait(
    policy: Callable[[np.ndarray], np.ndarray],
    env_kwargs: dict,
    command: tuple[float, float, float],
    episodes: int,
    seed: int,
) -> list[dict]:
    """Per-episode gait figures (see the module docstring) at a fixed ``command``."""
    from envs.registration import make_env

    kwargs = {k: v for k, v in env_kwargs.items() if k not in ("fixed_command", "command_ranges")}
    env = make_env("robotac/Quadruped-v0", fixed_command=tuple(command), **kwargs)
    dt = env.unwrapped.sim.control_period_s
    out = []
    for k in range(episodes):
        obs, _ = env.reset(seed=seed + k)
        x0 = env.unwrapped.sim.data.qpos[0]
        vx, steps, ret, fell = [], 0, 0.0, False
        while True:
            obs, reward, terminated, truncated, info = env.step(policy(obs))
            vx.append(float(info["base_lin_vel_m_s"][0]))
            ret += float(reward)
            steps += 1
            if terminated or truncated:
                fell = bool(terminated)
                break
        x1 = env.unwrapped.sim.data.qpos[0]
        out.append({
            "episode": k,
            "return": ret,
            "steps": steps,
            "fell": fell,
            "mean_vx_body_m_s": float(np.mean(vx)),
            "world_x_speed_m_s": float((x1 - x0) / (steps * dt)),
        })
    env.close()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", help="training run directory (torch actor)")
    src.add_argument("--onnx", help="exported .onnx policy (onnxruntime)")
    p.add_argument("--which", choices=("best", "latest"), default="best")
    p.add_argument("--command", default="0.5,0,0", help="VX,VY,YAW_RATE [m/s, m/s, rad/s]")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--seed", type=int, default=1000, help="seed of the first episode")
    p.add_argument("--tolerance", type=float, default=0.1, help="allowed |mean vx - VX| [m/s]")
    p.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = p.parse_args(argv)
    command = tuple(float(x) for x in args.command.split(","))
    if len(command) != 3:
        p.error("--command needs three numbers VX,VY,YAW_RATE")

    policy, env_kwargs = load_policy_fn(args)
    rows = evaluate_gait(policy, env_kwargs, command, args.episodes, args.seed)
    for r in rows:
        print(f"episode {r['episode']}: return {r['return']:8.1f}  steps {r['steps']:4d}  "
              f"fell {str(r['fell']):5s}  mean vx {r['mean_vx_body_m_s']:+.3f} m/s  "
              f"world speed {r['world_x_speed_m_s']:+.3f} m/s")
    mean_vx = float(np.mean([r["mean_vx_body_m_s"] for r in rows]))
    falls = sum(r["fell"] for r in rows)
    ok = abs(mean_vx - command[0]) <= args.tolerance and falls == 0
    summary = {
        "command": command,
        "episodes": args.episodes,
        "mean_vx_body_m_s": mean_vx,
        "mean_world_x_speed_m_s": float(np.mean([r["world_x_speed_m_s"] for r in rows])),
        "falls": falls,
        "mean_return": float(np.mean([r["return"] for r in rows])),
        "criterion_met": ok,
        "episodes_detail": rows,
    }
    print(f"mean forward velocity {mean_vx:+.3f} m/s (command {command[0]:+.2f}), falls "
          f"{falls}/{args.episodes}: {'criterion met' if ok else 'criterion NOT met'}")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
