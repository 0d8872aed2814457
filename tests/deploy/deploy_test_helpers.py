"""Helpers of the deploy tests (imported by conftest.py, the tests and scripts/bench_deploy.py)."""

from __future__ import annotations

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
