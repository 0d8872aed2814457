"""Helpers of the deploy tests (imported by conftest.py, the tests and scripts/bench_deploy.py)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def make_standing_policy(path: Path, *, interface_dict: dict | None = None, seed: int = 0,
                         env_kwargs: dict | None = None,
                         action_half_range_rad: float | None = None) -> Path:
    """Export a DeterministicActor that outputs (almost) the default pose: it stands still.

    The last layer's bias is ``atanh`` of the default pose in squashed units and its weights are
    small, so the action varies a little with the observation (the graph is not a constant).
    ``env_kwargs`` go into the metadata as the env's (``fixed_command``, ``command_ranges``,
    ``action_max_rate_rad_s``, ...); none = trained on sampled commands, no action filter. The
    observation size is the interface's layout's (47 with ``interface_dict`` of
    ``with_gait_clock(QUADRUPED_INTERFACE)``). ``action_half_range_rad``: the actor's bounds
    are the default pose +- this (as the shipped gait's +-0.3 rad), not the action space.
    """
    import torch

    from envs.interface import QUADRUPED_INTERFACE
    from policies.export import export_onnx, make_metadata
    from policies.networks import DeterministicActor, RunningNorm

    torch.manual_seed(seed)
    arr = QUADRUPED_INTERFACE.arrays()
    obs_dim = sum(b["size"] for b in (interface_dict or QUADRUPED_INTERFACE.to_dict())
                  ["obs_layout"]["blocks"])
    low, high = arr["action_low_rad"], arr["action_high_rad"]
    if action_half_range_rad is not None:
        low = np.maximum(low, arr["default_pose_rad"] - action_half_range_rad)
        high = np.minimum(high, arr["default_pose_rad"] + action_half_range_rad)
    actor = DeterministicActor(obs_dim, low, high, (64, 64))
    with torch.no_grad():
        last = actor.net[-1]
        last.weight.mul_(1e-3)
        center, half = actor.action_center.double(), actor.action_half_range.double()
        u = torch.atanh((torch.as_tensor(arr["default_pose_rad"]) - center) / half)
        last.bias.copy_(u.float())
    norm = RunningNorm(obs_dim)
    norm.update(torch.randn(500, obs_dim, dtype=torch.float64) * 0.3)
    meta = make_metadata(
        env_id="robotac/Quadruped-v0", algo="td3", obs_dim=obs_dim,
        action_low=low, action_high=high,
        interface=interface_dict or QUADRUPED_INTERFACE.to_dict(), robotac_version="test",
        normalizer=norm, env_kwargs=env_kwargs,
    )
    return export_onnx(actor, norm, path, meta)


def assert_targets_within_limits(record: dict) -> None:
    """Robot side: no COMMAND carried a target outside the joint limits or a NaN/inf.

    The virtual robot counts such targets on arrival, in either mode and armed or not, and
    refuses them in position mode with ERROR 6; so no refusal may appear either.
    """
    assert record["targets_out_of_range_received"] == 0
    assert record["non_finite_targets"] == 0
    assert record["errors_sent"].get("TARGET_OUT_OF_RANGE", 0) == 0
    if record["target_min_rad"] is not None:
        lo, hi = np.asarray(record["joint_low_rad"]), np.asarray(record["joint_high_rad"])
        assert (np.asarray(record["target_min_rad"]) >= lo).all()
        assert (np.asarray(record["target_max_rad"]) <= hi).all()


class VirtualTime:
    """Stands in for a module's ``time`` (``mock.patch.object(deploy.loop, "time",
    VirtualTime())``): seconds pass only when slept or spun (each ``perf_counter()`` or
    ``monotonic()`` call is 1 us), so a loop runs every period on its deadline, whatever the
    machine's load: its steps are the schedule's, not the machine's."""

    def __init__(self) -> None:
        self.now = 1000.0

    def perf_counter(self) -> float:
        self.now += 1e-6
        return self.now

    monotonic = perf_counter

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


def robot_report(path: Path) -> dict:
    """The virtual robot's record as it last wrote it (``--report PATH --report-every-s S``
    rewrites it atomically every S seconds); ``{}`` before the first write."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return {}


def wait_for_report(path: Path, until: Callable[[dict], bool],
                    proc: subprocess.Popen | None = None, give_up_s: float = 60.0) -> dict:
    """Poll the robot's report until ``until(record)`` holds; return that record.

    Paces a test by what the robot has received (counts), not by sleeps a busy machine can
    outrun. ``give_up_s`` only bounds a hang; ``proc`` (the deploy) must not exit meanwhile.
    """
    give_up = time.monotonic() + give_up_s
    while True:
        rec = robot_report(path)
        if rec and until(rec):
            return rec
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"deploy exited ({proc.returncode}) before the robot's record "
                                 f"got there: {rec}\n{out}{err}")
        assert time.monotonic() < give_up, f"the robot's record did not get there: {rec}"
        time.sleep(0.01)


def wait_for_run_phase(path: Path, proc: subprocess.Popen | None = None) -> dict:
    """Wait until the deploy loop is in its run phase, as the robot sees it; return its record.

    Ramp and hold send COMMANDs only; each run step READs the state at its deadline, after it
    polled its command source. So a READ after the first position COMMAND (the ramp's first)
    means the run phase began: keys written from then on reach the policy (before it, the hold
    drains them).
    """
    first = wait_for_report(path, lambda r: r["position_commands"] >= 1, proc)
    reads = first["frames_by_type"].get("READ", 0)
    return wait_for_report(path, lambda r: r["frames_by_type"].get("READ", 0) > reads, proc)
