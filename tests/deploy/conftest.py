"""Shared fixtures for the deploy tests: exported test policies and a virtual robot on a pty."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from deploy_test_helpers import ROOT, make_standing_policy


@pytest.fixture(scope="session")
def standing_policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_standing_policy(tmp_path_factory.mktemp("policy") / "standing.onnx")


@pytest.fixture(scope="session")
def fixed_command_policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A standing policy whose metadata says it was trained on one command, 0.5,0,0."""
    return make_standing_policy(tmp_path_factory.mktemp("policy") / "fixed.onnx",
                                env_kwargs={"fixed_command": [0.5, 0.0, 0.0]})


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
    """A running ``python -m deploy.sim.virtual_robot``."""

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
            [sys.executable, "-m", "deploy.sim.virtual_robot", "--report", str(report), *extra],
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
