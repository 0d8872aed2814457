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


def test_a_second_robot_from_its_description_alone(tmp_path):
    """issue 23: quadruped_xl (envs/robots/quadruped_xl: other joint names, servo IDs, leg
    lengths, knees, mass and servo) through the chain with no Python keyed on it: the steer
    recipe unchanged plus ``--robot`` trains a few hundred steps, the export names the robot,
    deploy drives the virtual robot the policy names, ``robotac calibrate`` finds the bus layout
    on the STS bus emulator, deploy drives that bus with the calibration it wrote, and the
    default robot's shipped policy is refused on it, naming both robots."""
    from envs.interface import interface_from_description
    from envs.robot_description import load_description
    from policies.export import read_metadata

    desc = load_description("quadruped_xl")
    itf = interface_from_description(desc)
    run_dir = tmp_path / "run"
    train = _run([sys.executable, "-m", "robotac.cli", "train", "--config",
                  str(ROOT / "recipes" / "quadruped_steer.yaml"), "--robot", "quadruped_xl",
                  "--run-dir", str(run_dir), "--total-steps", "300", "--learning-starts", "200",
                  "--batch-size", "32", "--hidden", "32", "32", "--eval-every", "0",
                  "--eval-episodes", "1", "--no-video", "--no-progress"])
    assert train.returncode == 0, train.stdout + train.stderr
    policy = run_dir / "policy.onnx"
    meta = read_metadata(policy)
    assert meta["robot"] == {"name": "quadruped_xl", "description_sha256": desc.sha256,
                             "command_ranges": {"vx": [-0.35, 0.7], "vy": [-0.2, 0.2],
                                                "yaw_rate": [-1.0, 1.0]}}
    assert meta["interface"]["joint_names"] == list(desc.joint_names)
    assert meta["env_kwargs"]["robot"] == "quadruped_xl"

    # Deploy on the virtual robot: it simulates the robot the policy's metadata names.
    log = tmp_path / "deploy.npz"
    deploy = _run([sys.executable, "-m", "deploy", "--virtual", "--virtual-mode", "stepped",
                   "--policy", str(policy), "--duration-s", "1", "--ramp-s", "0.5",
                   "--hold-s", "0.2", "--command", "0.3,0,0", "--log", str(log)], timeout=120)
    assert deploy.returncode in (0, 2), deploy.stdout + deploy.stderr  # 2: tipped, stopped
    targets = np.load(log)["target"]
    arr = itf.arrays()
    assert targets.shape == (len(targets), 12) and len(targets) > 0
    assert (targets >= arr["joint_low_rad"] - 1e-6).all()
    assert (targets <= arr["joint_high_rad"] + 1e-6).all()

    # Calibrate on the bus emulator: the description's IDs (11-43) and servo (STS3250, 2825).
    cal_path = tmp_path / "sts_xl.json"
    cal = _run([sys.executable, "-m", "deploy.calibrate", "--virtual", "--robot", "quadruped_xl",
                "--out", str(cal_path), "--settle-s", "0.2", "--scan-ids", "11-43",
                # the emulator is a thread of the same process: on a busy machine a 20 ms
                # ping can go unanswered
                "--ping-timeout-s", "0.3"], timeout=180)
    assert cal.returncode == 0, cal.stdout + cal.stderr
    doc = json.loads(cal_path.read_text())
    assert doc["robot"] == "quadruped_xl" and doc["servo_model"] == 2825
    assert {n: j["id"] for n, j in doc["joints"].items()} == {
        j.name: j.servo_id for j in desc.joints}
    assert doc["interface"]["joint_names"] == list(desc.joint_names)

    # Deploy over the emulated bus with that calibration.
    sts = _run([sys.executable, "-m", "deploy", "--virtual", "--link", "sts", "--virtual-mode",
                "stepped", "--calibration", str(cal_path), "--policy", str(policy),
                "--duration-s", "1", "--ramp-s", "0.5", "--hold-s", "0.2",
                "--command", "0.3,0,0"], timeout=120)
    assert sts.returncode in (0, 2), sts.stdout + sts.stderr
    assert "policy steps" in sts.stdout

    # The default robot's (shipped) policy on this robot's bus is refused, naming both.
    other = _run([sys.executable, "-m", "deploy", "--virtual", "--link", "sts",
                  "--virtual-args", "--robot quadruped_xl", "--calibration", str(cal_path),
                  "--duration-s", "1"], timeout=120)
    assert other.returncode == 1, other.stdout + other.stderr
    assert ("was trained for robot 'quadruped', but this is robot 'quadruped_xl'"
            in other.stderr), other.stderr
