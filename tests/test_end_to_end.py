"""The main job end to end at a tiny budget, through the same entry points as ``make demo``.

Train SAC on ``robotac/Quadruped-v0`` for a few hundred steps, export the actor to ONNX, and run
the deploy loop against the virtual robot (through its pseudo-terminal) for a second; then check
what each step left behind and what the robot saw.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _run(args: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def demo_recipe() -> dict:
    recipe = yaml.safe_load((ROOT / "recipes" / "quadruped_demo.yaml").read_text())
    assert recipe["env_id"] == "robotac/Quadruped-v0" and recipe["algo"] == "sac"
    return recipe


def test_train_export_deploy_chain(tmp_path, demo_recipe):
    run_dir = tmp_path / "run"
    # The demo's recipe, shrunk to a smoke-test budget (flags override the recipe file).
    train = _run([sys.executable, "-m", "robotac.cli", "train", "--config",
                  str(ROOT / "recipes" / "quadruped_demo.yaml"), "--run-dir", str(run_dir),
                  "--total-steps", "400", "--learning-starts", "300", "--batch-size", "64",
                  "--eval-every", "0", "--eval-episodes", "1", "--no-video", "--no-progress"])
    assert train.returncode == 0, train.stdout + train.stderr
    for name in ("config.json", "eval.csv", "learning_curve.png", "checkpoints/latest.pt",
                 "checkpoints/best.pt", "policy.onnx"):
        assert (run_dir / name).is_file(), f"training left no {name}: {train.stdout}"
    assert any((run_dir / "tb").iterdir())

    # Export again through the CLI, to another file, with the parity check.
    onnx_path = tmp_path / "exported.onnx"
    export = _run([sys.executable, "-m", "robotac.cli", "export", "--run", str(run_dir),
                   "--out", str(onnx_path), "--check"])
    assert export.returncode == 0, export.stdout + export.stderr
    from policies.export import read_metadata

    meta = read_metadata(onnx_path)
    assert meta["env_id"] == "robotac/Quadruped-v0" and meta["algo"] == "sac"
    assert meta["obs_dim"] == 45 and len(meta["action_low"]) == 12

    # Deploy on the virtual robot for one second of policy phase.
    log, summary = tmp_path / "deploy.npz", tmp_path / "summary.json"
    deploy = _run([sys.executable, "-m", "robotac.cli", "deploy", "--virtual", "--policy",
                   str(onnx_path), "--duration-s", "1", "--ramp-s", "0.5", "--hold-s", "0.2",
                   "--command", "0.5,0,0", "--log", str(log), "--summary", str(summary)],
                  timeout=120)
    # 0: completed; 2: the (untrained) policy tipped the robot past the tilt limit and the safety
    # layer stopped it, which is a correct outcome of this chain too.
    assert deploy.returncode in (0, 2), deploy.stdout + deploy.stderr
    s = json.loads(summary.read_text())
    assert s["steps"] > 0 and s["stopped_with"] in ("passive", "estop"), s
    data = np.load(log)
    targets = data["target"]
    assert targets.shape[1] == 12 and np.isfinite(targets).all()
    low = np.asarray(meta["interface"]["joint_low_rad"])
    high = np.asarray(meta["interface"]["joint_high_rad"])
    assert (targets >= low - 1e-6).all() and (targets <= high + 1e-6).all()
