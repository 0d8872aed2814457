"""Grade a run's kept checkpoints on the steer grid and pick the best.

A run trained with ``keep_every: N`` keeps its policy every ``N`` env steps as
``checkpoints/step_<step>.pt``. The evaluation return that chooses ``best.pt`` weighs every reward
term at once, and a gait's grid can swing between checkpoints the return ranks alike (variant X5
of the late smoothness recipe, seed 1, met 16, 11 and 10 of 16 commands at 380k, 390k and 420k;
docs/benchmarks.md).
This script grades each kept checkpoint on :mod:`eval_gait`'s grid (its commands inside the
trained ranges, randomization off by default) and ranks them by:

1. the number of grid commands tracked (within 0.1 m/s and 0.2 rad/s, no fall);
2. then the number of issue 26's six smoothness targets met (:data:`eval_gait.SMOOTH_TARGETS`);
3. then the smallest worst tracking error, each command's ``max(err_xy / 0.1, err_yaw / 0.2)``.

    python scripts/pick_checkpoint.py --run runs/quadruped-steer-smooth --from-step 330000 \\
        --episodes 2 --jobs 2 --json picked.json
    robotac export --run runs/quadruped-steer-smooth --which step_<picked>

Choosing among checkpoints by a held-out task metric is model selection, not training: the
figures to publish for the picked one come from a fresh ``eval_gait.py --grid`` with its own
episode seeds (``--seed`` here defaults to another range than eval_gait's 1000).
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eval_gait import (  # noqa: E402
    RANDOMIZATION_KWARGS,
    TOL_XY_M_S,
    TOL_YAW_RAD_S,
    evaluate_command,
    grid_commands,
    grid_summary,
    smooth_target_checks,
)


def smooth_targets_count(smoothness: dict) -> int:
    """How many of the six :data:`eval_gait.SMOOTH_TARGETS` a grid's smoothness summary meets
    (:func:`eval_gait.smooth_target_checks`)."""
    return sum(smooth_target_checks(smoothness).values())


def command_score(row: dict) -> float:
    """A grid row's worst tracking error in tolerances: ``max(err_xy / 0.1, err_yaw / 0.2)``
    (<= 1 is tracked); ``inf`` for a NaN error (every episode fell before the settle time)."""
    s = max(row["err_xy_m_s"] / TOL_XY_M_S, row["err_yaw_rad_s"] / TOL_YAW_RAD_S)
    return float("inf") if not np.isfinite(s) else float(s)


def tracked(row: dict) -> bool:
    """Whether a grid row is tracked: :func:`command_score` <= 1 and no fall."""
    return command_score(row) <= 1.0 and row["falls"] == 0


def commands_tracked(rows: list[dict]) -> int:
    """Grid rows :func:`tracked`."""
    return sum(tracked(r) for r in rows)


def rank_key(graded: dict) -> tuple[int, int, float]:
    """The sort key of a graded checkpoint (higher is better): commands tracked, smoothness
    targets met, minus the worst :func:`command_score`."""
    return (graded["commands_tracked"], graded["smooth_targets"], -graded["worst_score"])


def grade(run: str, step: int, episodes: int, seed: int, episode_s: float,
          randomization: bool) -> dict:
    """Grade ``run``'s checkpoint kept at ``step`` on the grid.

    Returns:
        ``step``, ``commands`` (the grid's size), ``commands_tracked``, ``smooth_targets``
        (0-6), ``worst_score`` (:func:`command_score`'s largest), ``targets_met`` and
        ``smooth_targets_met`` (:func:`eval_gait.grid_summary`'s), the grid summary's errors and
        smoothness, and one row per command (command, achieved velocity, errors, falls).
    """
    from robotac.checkpoint import load_policy

    bundle = load_policy(run, f"step_{step}")
    kwargs = dict(bundle.env_kwargs)
    if not randomization:
        kwargs = {k: v for k, v in kwargs.items() if k not in RANDOMIZATION_KWARGS}
    rows = [evaluate_command(bundle.act, kwargs, c, episodes, seed, episode_s)
            for c in grid_commands(bundle.env_kwargs)]
    summary = grid_summary(rows)
    return {
        "step": step, "commands": len(rows), "commands_tracked": commands_tracked(rows),
        "smooth_targets": smooth_targets_count(summary["smoothness"]),
        "worst_score": max(command_score(r) for r in rows),
        **{k: summary[k] for k in ("targets_met", "smooth_targets_met", "max_err_xy_m_s",
                                   "max_err_yaw_rad_s", "falls", "smoothness")},
        "rows": [{k: r[k] for k in ("command", "v_xy_m_s", "yaw_rate_rad_s", "err_xy_m_s",
                                    "err_yaw_rad_s", "falls")} for r in rows],
    }


def _misses(rows: list[dict]) -> str:
    """The untracked commands of a grade, ``cmd -> achieved`` each."""
    out = [f"({', '.join(f'{c:g}' for c in r['command'])}) -> ({r['v_xy_m_s'][0]:.2f}, "
           f"{r['v_xy_m_s'][1]:.2f}, {r['yaw_rate_rad_s']:.2f})"
           + (f" {r['falls']} falls" if r["falls"] else "")
           for r in rows if not tracked(r)]
    return "; ".join(out) or "-"


def main(argv: list[str] | None = None) -> int:
    from robotac.checkpoint import kept_steps

    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="run directory trained with keep_every")
    p.add_argument("--from-step", type=int, default=0, help="grade checkpoints from this step on")
    p.add_argument("--to-step", type=int, default=None, help="... up to this step")
    p.add_argument("--episodes", type=int, default=2, help="episodes per grid command")
    p.add_argument("--episode-s", type=float, default=10.0, help="episode length [s]")
    p.add_argument("--seed", type=int, default=5000, help="seed of the first episode")
    p.add_argument("--randomization", action="store_true",
                   help="grade with the run's domain randomization on (default off)")
    p.add_argument("--jobs", type=int, default=1, help="checkpoints graded at once (processes)")
    p.add_argument("--json", type=Path, default=None, help="write every grade and the pick here")
    args = p.parse_args(argv)
    if args.episodes < 1 or args.jobs < 1 or args.episode_s <= 0:
        p.error("--episodes and --jobs must be >= 1 and --episode-s > 0")
    steps = [s for s in kept_steps(args.run) if s >= args.from_step
             and (args.to_step is None or s <= args.to_step)]
    if not steps:
        p.error(f"{args.run} kept no checkpoint in the steps asked (kept: "
                f"{kept_steps(args.run) or 'none'}): train with keep_every > 0")
    work = [(args.run, s, args.episodes, args.seed, args.episode_s, args.randomization)
            for s in steps]
    if args.jobs == 1:
        graded = [grade(*w) for w in work]
    else:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            graded = list(pool.map(grade, *zip(*work, strict=True)))
    best = max(graded, key=rank_key)
    print(f"{args.run}: {len(graded)} checkpoints, {args.episodes} x {args.episode_s:g} s per "
          f"command, randomization {'on' if args.randomization else 'off'}")
    print("| step | commands tracked | smoothness targets | worst err / tolerance | zero cmd feet "
          "down | max reversals | max binds | max > 8 Hz | misses (achieved vx, vy, yaw) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for g in graded:
        sm, z = g["smoothness"], g["smoothness"]["zero_command"]
        feet = "-" if z is None else f"{100 * z['feet_down_share']:.1f} %"
        print(f"| {g['step']}{' (picked)' if g is best else ''} | {g['commands_tracked']}/"
              f"{g['commands']} | {g['smooth_targets']}/6 | {g['worst_score']:.2f} | {feet} | "
              f"{100 * sm['max_reversal_share']:.1f} % | {100 * sm['max_filter_bind_share']:.1f} %"
              f" | {100 * sm['max_hf_power_share']:.1f} % | {_misses(g['rows'])} |")
    print(f"picked step {best['step']}: robotac export --run {args.run} --which "
          f"step_{best['step']}")
    if args.json is not None:
        args.json.write_text(json.dumps({"run": str(args.run), "episodes": args.episodes,
                                         "randomization": args.randomization,
                                         "picked_step": best["step"], "graded": graded},
                                        indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
