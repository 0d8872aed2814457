#!/usr/bin/env python
"""Plot how a steerable-gait training run learns the command grid, from ``eval_gait.py --grid``
results saved along the run.

Each ``--run LABEL=GLOB`` names one run (a seed) and the grid JSON files of its checkpoints
(``python scripts/eval_gait.py --run DIR --which latest --grid --json DIR_<step>.json``); the env
step is the last number in each file name. For randomization off and on it draws, against env
steps, the number of grid commands that meet issue 10's targets (``|v_xy - cmd_xy| <= 0.1`` m/s,
``|w_z - cmd_yaw| <= 0.2`` rad/s, no fall) and the mean tracking errors over the grid, and prints
the same figures as a markdown table.

    python scripts/plot_grid_progress.py --run "seed 1=runs/snaps/s1_*.json" \\
        --run "seed 2=runs/snaps/s2_*.json" --out docs/steer_grid_progress.png
"""

from __future__ import annotations

import argparse
import glob
import json
import re
from pathlib import Path

import numpy as np

#: Issue 10's per-command targets.
MAX_ERR_XY_M_S = 0.1
MAX_ERR_YAW_RAD_S = 0.2


def grid_score(rows: list[dict]) -> dict:
    """Figures of one grid evaluation (the ``rows`` of one setting of ``eval_gait.py --json``).

    Returns:
        ``{"met": commands meeting every target, "n": commands, "mean_err_xy_m_s",
        "mean_err_yaw_rad_s", "falls"}``; a command with a fall counts as not met, and its NaN
        errors are left out of the means.
    """
    met = 0
    exy, eyaw, falls = [], [], 0
    for r in rows:
        falls += int(r["falls"])
        ok = (r["falls"] == 0 and r["err_xy_m_s"] <= MAX_ERR_XY_M_S
              and r["err_yaw_rad_s"] <= MAX_ERR_YAW_RAD_S)  # NaN compares False
        met += int(ok)
        if np.isfinite(r["err_xy_m_s"]):
            exy.append(r["err_xy_m_s"])
            eyaw.append(r["err_yaw_rad_s"])
    return {"met": met, "n": len(rows), "mean_err_xy_m_s": float(np.mean(exy)) if exy else np.nan,
            "mean_err_yaw_rad_s": float(np.mean(eyaw)) if eyaw else np.nan, "falls": falls}


def step_of(path: str) -> int:
    """The env step in a file name: its last number (``s1_76709.json`` -> 76709).

    Raises:
        ValueError: if the name has no number.
    """
    nums = re.findall(r"\d+", Path(path).stem)
    if not nums:
        raise ValueError(f"{path}: no env step in the file name (expected e.g. s1_76709.json)")
    return int(nums[-1])


def load_run(pattern: str) -> list[tuple[int, dict]]:
    """``[(step, {setting: grid_score})]`` sorted by step, for the files matching ``pattern``.

    Raises:
        FileNotFoundError: if nothing matches.
    """
    files = glob.glob(pattern)
    if not files:
        raise FileNotFoundError(f"no grid JSON files match {pattern!r}")
    out = []
    for f in files:
        settings = json.loads(Path(f).read_text())["settings"]
        out.append((step_of(f), {k: grid_score(v["rows"]) for k, v in settings.items()}))
    return sorted(out, key=lambda x: x[0])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", action="append", required=True, metavar="LABEL=GLOB",
                    help="a run's label and the glob of its grid JSON files (repeatable)")
    ap.add_argument("--out", type=Path, default=None, help="write the figure here (PNG)")
    ap.add_argument("--title", default="Steerable gait: command grid during training")
    args = ap.parse_args(argv)

    runs = {}
    for spec in args.run:
        label, sep, pattern = spec.partition("=")
        if not sep:
            ap.error(f"--run {spec!r}: expected LABEL=GLOB")
        runs[label] = load_run(pattern)

    print("| run | env steps | setting | commands met | mean err xy [m/s] | mean err yaw [rad/s] "
          "| falls |")
    print("|---|---|---|---|---|---|---|")
    for label, points in runs.items():
        for step, scores in points:
            for setting, s in scores.items():
                print(f"| {label} | {step} | randomization {setting} | {s['met']}/{s['n']} | "
                      f"{s['mean_err_xy_m_s']:.3f} | {s['mean_err_yaw_rad_s']:.3f} | "
                      f"{s['falls']} |")
    if args.out is None:
        return 0

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for label, points in runs.items():
        steps = np.array([p[0] for p in points])
        for setting, style in (("off", "o-"), ("on", "s--")):
            if setting not in points[0][1]:
                continue
            s = [p[1][setting] for p in points]
            kw = {"label": f"{label}, randomization {setting}"}
            axes[0].plot(steps, [x["met"] for x in s], style, **kw)
            axes[1].plot(steps, [x["mean_err_xy_m_s"] for x in s], style, **kw)
            axes[2].plot(steps, [x["mean_err_yaw_rad_s"] for x in s], style, **kw)
    n = next(iter(runs.values()))[0][1]["off"]["n"]
    axes[0].set_ylabel(f"commands meeting the targets (of {n})")
    axes[1].set_ylabel("mean |v_xy - cmd_xy| [m/s]")
    axes[1].axhline(MAX_ERR_XY_M_S, color="k", lw=0.8, ls=":")
    axes[2].set_ylabel("mean |w_z - cmd_yaw| [rad/s]")
    axes[2].axhline(MAX_ERR_YAW_RAD_S, color="k", lw=0.8, ls=":")
    for ax in axes:
        ax.set_xlabel("env steps")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(args.title)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=100)
    plt.close(fig)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
