#!/usr/bin/env python
"""Policies trained on different servo models, evaluated on one servo truth (issue 24).

    python scripts/policy_on_servo_truth.py --runs runs/walk_default runs/walk_identified \\
        --truth-robot runs/truth_pd_away/quadruped --episodes 5

Each run's actor (``--which``) walks ``--episodes`` deterministic episodes at ``--command``
(default 0.5 m/s forward, the walk recipe's) in ``robotac/Quadruped-v0`` built on the truth's
description (``--truth-robot``: the emulator's servo truth written as a description, e.g. the
``pd-away`` servo: kp 14.4, armature 0.025, friction loss 0.06, latency 0.02 s; the emulator runs
the same PD model and latency on the same MuJoCo model), and on the description it was trained
on, for reference. Printed per run: mean body-frame forward velocity, its error against the
command, falls, torque-saturated share (eval_gait's figures).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import numpy as np  # noqa: E402
from eval_gait import evaluate_gait  # noqa: E402

from robotac.checkpoint import load_policy, which_arg  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", nargs="+", required=True, type=Path)
    ap.add_argument("--truth-robot", required=True, type=Path)
    ap.add_argument("--which", type=which_arg, default="best",
                    help="checkpoint: best, latest or step_N (kept with keep_every)")
    ap.add_argument("--command", default="0.5,0,0")
    ap.add_argument("--episodes", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    cmd = tuple(float(x) for x in args.command.split(","))
    rows = []
    print(f"command {cmd}, {args.episodes} episodes each; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'run':32s} {'evaluated on':28s} {'mean vx':>8s} {'|vx-cmd|':>9s} {'falls':>6s} "
          f"{'tau sat':>8s}")
    for run in args.runs:
        bundle = load_policy(run, args.which)
        kw = dict(bundle.env_kwargs)
        own = kw.get("robot", "quadruped")
        for label, robot in (("its training robot", own), ("the servo truth", args.truth_robot)):
            kw2 = {**kw, "robot": str(robot)}
            eps = evaluate_gait(bundle.act, kw2, cmd, args.episodes, args.seed)
            vx = float(np.mean([e["mean_vx_body_m_s"] for e in eps]))
            row = {"run": str(run), "on": label, "robot": str(robot), "mean_vx_m_s": vx,
                   "abs_err_m_s": abs(vx - cmd[0]), "falls": sum(e["fell"] for e in eps),
                   "episodes": len(eps),
                   "torque_sat_share": float(np.mean([e["torque_sat_share"] for e in eps]))}
            rows.append(row)
            print(f"{str(run):32s} {label:28s} {vx:8.3f} {row['abs_err_m_s']:9.3f} "
                  f"{row['falls']:3d}/{len(eps):<2d} {row['torque_sat_share']:8.3f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
