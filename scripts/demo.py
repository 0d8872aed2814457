"""The main job end to end: train SAC on the quadruped, export it to ONNX, deploy it on the
virtual robot, and print where everything is.

Run by ``make demo`` (the README's first command). Every step is real; a step that cannot run
(e.g. the evaluation video without a GL backend) says so in the summary instead of being faked.

Usage::

    python scripts/demo.py [--recipe recipes/quadruped_demo.yaml] [--total-steps N]
                           [--deploy-s 20] [--out runs] [--seed 1]
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

from envs.gl import configure_gl

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RECIPE = ROOT / "recipes" / "quadruped_demo.yaml"


def _run(step: str, cmd: list[str]) -> float:
    """Run one CLI step, streaming its output; raise SystemExit naming the step on failure."""
    print(f"\n=== {step}: {' '.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"demo: step '{step}' failed with exit status {proc.returncode}")
    return time.perf_counter() - t0


def _last_row(path: Path) -> dict[str, str] | None:
    if not path.is_file():
        return None
    with path.open() as f:
        rows = list(csv.DictReader(f))
    return rows[-1] if rows else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--recipe", type=Path, default=DEFAULT_RECIPE, help="training recipe (YAML)")
    p.add_argument("--total-steps", type=int, default=None, help="override the recipe's budget")
    p.add_argument("--deploy-s", type=float, default=20.0, help="deploy policy phase [s]")
    p.add_argument("--command", default="0.5,0,0", help="deploy velocity command VX,VY,YAW")
    p.add_argument("--out", type=Path, default=ROOT / "runs", help="parent of the run directory")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)

    gl = configure_gl()  # chooses MUJOCO_GL for this machine; the steps inherit it
    run_dir = (args.out / f"demo-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    robotac = [sys.executable, "-m", "robotac.cli"]

    train_cmd = [*robotac, "train", "--config", str(args.recipe), "--run-dir", str(run_dir),
                 "--seed", str(args.seed)]
    if args.total_steps is not None:
        train_cmd += ["--total-steps", str(args.total_steps)]
    t_train = _run("train (SAC, robotac/Quadruped-v0)", train_cmd)

    onnx_path = run_dir / "policy.onnx"
    if not onnx_path.is_file():  # training exports at the end; export explicitly if it did not
        _run("export", [*robotac, "export", "--run", str(run_dir), "--out", str(onnx_path)])

    deploy_log = run_dir / "deploy" / "log.npz"
    deploy_summary = run_dir / "deploy" / "summary.json"
    deploy_log.parent.mkdir(parents=True, exist_ok=True)
    t_deploy = _run(
        "deploy (virtual robot behind a pty)",
        [*robotac, "deploy", "--virtual", "--policy", str(onnx_path), "--duration-s",
         str(args.deploy_s), "--command", args.command, "--log", str(deploy_log),
         "--summary", str(deploy_summary)],
    )

    videos = sorted((run_dir / "videos").glob("*.mp4")) if (run_dir / "videos").is_dir() else []
    ev = _last_row(run_dir / "eval.csv")
    summary = json.loads(deploy_summary.read_text()) if deploy_summary.is_file() else {}
    print("\n=== demo summary")
    print(f"run directory      {run_dir}  (train {t_train / 60:.1f} min, deploy {t_deploy:.0f} s)")
    print(f"config             {run_dir / 'config.json'}")
    print(f"TensorBoard logs   {run_dir / 'tb'}   (tensorboard --logdir {run_dir / 'tb'})")
    print(f"learning curve     {run_dir / 'learning_curve.png'}")
    if videos:
        print(f"evaluation video   {videos[-1]}")
    else:
        print(f"evaluation video   none: {gl.problem or 'see the train step output'}")
    print(f"checkpoints        {run_dir / 'checkpoints'}")
    print(f"ONNX policy        {onnx_path}")
    print(f"deploy log         {deploy_log}")
    print(f"deploy summary     {deploy_summary}")
    if ev:
        print(f"final evaluation   mean return {float(ev['mean_return']):.1f} over the eval "
              f"episodes at step {ev['global_step']}")
    for key in ("steps", "achieved_rate_hz", "period_ms_p99", "jitter_ms_p99", "inference_ms_p99",
                "rtt_ms_p99", "deadline_misses", "overruns", "drops", "error_replies",
                "stop_reason", "stopped_with"):
        if key in summary:
            v = summary[key]
            print(f"deploy {key:<22} {f'{v:.3f}' if isinstance(v, float) else v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
