"""Shared fixtures for the deploy tests: exported test policies and a virtual robot on a pty."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def make_standing_policy(path: Path, *, interface_dict: dict | None = None, seed: int = 0) -> Path:
    """Export a DeterministicActor that outputs (almost) the default pose: it stands still.

    The last layer's bias is ``atanh`` of the default pose in squashed units and its weights are
    small, so the action varies a little with the observation (the graph is not a constant).
    """
    import torch

    from envs.interface import QUADRUPED_INTERFACE
    from policies.export import export_onnx, make_metadata
    from policies.networks import DeterministicActor, RunningNorm

    torch.manual_seed(seed)
    arr = QUADRUPED_INTERFACE.arrays()
    actor = DeterministicActor(45, arr["action_low_rad"], arr["action_high_rad"], (64, 64))
    with torch.no_grad():
        last = actor.net[-1]
        last.weight.mul_(1e-3)
        center, half = actor.action_center.double(), actor.action_half_range.double()
        u = torch.atanh((torch.as_tensor(arr["default_pose_rad"]) - center) / half)
        last.bias.copy_(u.float())
    norm = RunningNorm(45)
    norm.update(torch.randn(500, 45, dtype=torch.float64) * 0.3)
    meta = make_metadata(
        env_id="robotac/Quadruped-v0", algo="td3", obs_dim=45,
        action_low=arr["action_low_rad"], action_high=arr["action_high_rad"],
        interface=interface_dict or QUADRUPED_INTERFACE.to_dict(), robotac_version="test",
        normalizer=norm,
    )
    return export_onnx(actor, norm, path, meta)


@pytest.fixture(scope="session")
def standing_policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_standing_policy(tmp_path_factory.mktemp("policy") / "standing.onnx")


@pytest.fixture(scope="session")
def other_robot_policy(tmp_path_factory: pytest.TempPathFactory, standing_policy: Path) -> Path:
    """The standing policy with metadata of another robot: joint order swapped, layout v2."""
    import onnx

    model = onnx.load(str(standing_policy))
    for p in model.metadata_props:
        if p.key == "robotac":
            meta = json.loads(p.value)
            names = meta["interface"]["joint_names"]
            names[0], names[1] = names[1], names[0]
            meta["interface"]["obs_layout"]["version"] = "quadruped-obs-v2"
            p.value = json.dumps(meta)
    path = tmp_path_factory.mktemp("other") / "other_robot.onnx"
    onnx.save(model, str(path))
    return path


@dataclass
class RobotProcess:
    """A running ``python -m deploy.virtual_robot``."""

    proc: subprocess.Popen
    port: str
    report_path: Path

    def stop(self) -> dict:
        """Terminate it and return its robot-side record."""
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        return json.loads(self.report_path.read_text())

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)


@pytest.fixture
def virtual_robot(tmp_path: Path) -> Iterator:
    """Factory: ``virtual_robot(*extra_args) -> RobotProcess``; all are stopped at teardown."""
    started: list[RobotProcess] = []

    def start(*extra: str) -> RobotProcess:
        report = tmp_path / f"robot{len(started)}.json"
        proc = subprocess.Popen(
            [sys.executable, "-m", "deploy.virtual_robot", "--report", str(report), *extra],
            stdout=subprocess.PIPE, text=True, cwd=ROOT,
        )
        line = proc.stdout.readline()
        assert line.startswith("PORT "), f"virtual robot did not start: {line!r}"
        rp = RobotProcess(proc, line.split()[1], report)
        started.append(rp)
        return rp

    yield start
    for rp in started:
        if rp.proc.poll() is None:
            rp.proc.kill()
            rp.proc.wait(timeout=10)


def assert_targets_within_limits(record: dict) -> None:
    """Robot side: every applied position target lay inside the joint limits."""
    assert record["targets_outside_limits_applied"] == 0
    assert record["non_finite_targets"] == 0
    if record["target_min_rad"] is not None:
        lo, hi = np.asarray(record["joint_low_rad"]), np.asarray(record["joint_high_rad"])
        assert (np.asarray(record["target_min_rad"]) >= lo).all()
        assert (np.asarray(record["target_max_rad"]) <= hi).all()
