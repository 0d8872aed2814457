"""ONNX export: one checked graph, metadata of contract 3, parity with the torch actor."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from deploy import protocol as P
from deploy.policy import METADATA_KEY as DEPLOY_KEY
from deploy.policy import OnnxPolicy, PolicyMismatchError
from envs.interface import QUADRUPED_INTERFACE
from policies.export import (
    METADATA_KEY,
    export_onnx,
    make_metadata,
    onnx_actions,
    onnx_parity,
    onnx_session,
    random_observations,
    read_metadata,
)
from policies.networks import (
    DeterministicActor,
    RunningNorm,
    SquashedGaussianActor,
    deterministic_action,
)
from robotac.checkpoint import FORMAT, PolicyBundle, load_policy, save_checkpoint
from robotac.export import check_parity, episode_parity, export_run, main

ARR = QUADRUPED_INTERFACE.arrays()
ENV_ID = "robotac/Quadruped-v0"
ENV_KWARGS = {"fixed_command": (0.3, 0.0, 0.0)}


def _bundle(algo: str, seed: int = 0) -> PolicyBundle:
    """A SAC or TD3 actor with spread-out weights and a normalizer fed with realistic data."""
    torch.manual_seed(seed)
    cls = SquashedGaussianActor if algo == "sac" else DeterministicActor
    actor = cls(45, ARR["action_low_rad"], ARR["action_high_rad"], (256, 256)).eval()
    norm = RunningNorm(45)
    x = torch.randn(4096, 45, dtype=torch.float64) * torch.linspace(0.05, 2.0, 45) + 0.3
    norm.update(x)
    return PolicyBundle(
        actor=actor, obs_norm=norm, algo=algo, env_id=ENV_ID, env_kwargs=dict(ENV_KWARGS),
        obs_dim=45, action_low=ARR["action_low_rad"].astype(np.float32),
        action_high=ARR["action_high_rad"].astype(np.float32),
        interface=QUADRUPED_INTERFACE.to_dict(),
        config={"hidden": [256, 256], "obs_clip": 10.0}, global_step=123,
    )


@pytest.fixture(scope="module", params=["sac", "td3"])
def exported(request, tmp_path_factory) -> tuple[PolicyBundle, Path]:
    from robotac.export import export_bundle

    bundle = _bundle(request.param)
    path = export_bundle(bundle, tmp_path_factory.mktemp(request.param) / "policy.onnx",
                         source="unit-test")
    return bundle, path


def test_graph_is_checked_with_named_float32_io_and_dynamic_batch(exported):
    bundle, path = exported
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    (inp,), (out,) = model.graph.input, model.graph.output
    assert (inp.name, out.name) == ("obs", "action")
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert out.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert inp.type.tensor_type.shape.dim[0].dim_param  # symbolic batch axis
    assert inp.type.tensor_type.shape.dim[1].dim_value == 45
    for batch in (1, 7, 256):
        obs = np.zeros((batch, 45), dtype=np.float32)
        assert onnx_actions(path, obs).shape == (batch, 12)
    assert [p.key for p in model.metadata_props] == [METADATA_KEY]
    assert METADATA_KEY == DEPLOY_KEY


def test_metadata_of_contract_3(exported):
    bundle, path = exported
    meta = read_metadata(path)
    assert meta["env_id"] == ENV_ID and meta["algo"] == bundle.algo
    assert meta["env_kwargs"] == json.loads(json.dumps(ENV_KWARGS))
    assert meta["obs_dim"] == 45 and meta["action_dim"] == 12
    assert meta["joint_names"] == list(QUADRUPED_INTERFACE.joint_names)
    np.testing.assert_allclose(meta["action_low"], 0.0)
    np.testing.assert_allclose(meta["action_high"], 2 * np.pi, rtol=1e-6)
    np.testing.assert_allclose(meta["default_pose_rad"], ARR["default_pose_rad"])
    assert meta["control_period_s"] == 0.02
    assert meta["obs_layout"]["version"] == "quadruped-obs-v1"
    assert meta["interface"] == QUADRUPED_INTERFACE.to_dict()
    assert meta["robotac_version"] and meta["exporter"] in ("dynamo", "torchscript")
    assert meta["normalizer"]["count"] == 4096 and meta["source_run"] == "unit-test"
    # the robot and a hash of its description (robot.yaml + MJCF bytes), issue 23
    from envs.robot_description import load_description

    assert meta["robot"] == {"name": "quadruped",
                             "description_sha256": load_description("quadruped").sha256,
                             "command_ranges": {"vx": [-0.3, 0.6], "vy": [-0.2, 0.2],
                                                "yaw_rate": [-1.0, 1.0]}}
    assert OnnxPolicy(path).robot_name == "quadruped"


@pytest.mark.numeric
def test_parity_on_10000_random_observations(exported):
    bundle, path = exported
    obs = random_observations(10_000, bundle.obs_norm, np.random.default_rng(1))
    # The random set reaches the normalizer's clip and saturates some actions.
    z = (obs - bundle.obs_norm.mean.numpy()) / np.sqrt(bundle.obs_norm.var.numpy())
    assert (np.abs(z) > 10).any()
    assert onnx_parity(path, bundle.actor, bundle.obs_norm, obs) <= 1e-5


@pytest.mark.numeric
@pytest.mark.parametrize("algo", ["sac"])
def test_parity_on_10000_recorded_observations_and_an_episode(algo, tmp_path):
    from robotac.export import export_bundle

    bundle = _bundle(algo, seed=3)
    path = export_bundle(bundle, tmp_path / "p.onnx")
    par = check_parity(bundle, path, n=10_000, seed=0)
    assert par["random_max_abs"] <= 1e-5 and par["recorded_max_abs"] <= 1e-5
    ep = episode_parity(bundle, path, seed=4, max_steps=300)
    assert ep["torch_length"] == ep["onnx_length"] > 0
    assert ep["rel_diff"] < 1e-3 and ep["divergence_step"] is None


def _run_with_checkpoint(tmp_path: Path) -> tuple[PolicyBundle, Path]:
    """A run directory holding only a best checkpoint of a TD3 actor (global step 77)."""
    bundle = _bundle("td3", seed=5)
    run = tmp_path / "run"
    meta = {
        "algo": "td3", "env_id": ENV_ID, "env_kwargs": dict(ENV_KWARGS), "obs_dim": 45,
        "action_low": bundle.action_low.tolist(), "action_high": bundle.action_high.tolist(),
        "interface": bundle.interface, "config": bundle.config, "global_step": 77,
        "eval_return": 1.5,
    }
    save_checkpoint(run / "checkpoints" / "best.pt", {
        "format": FORMAT, "kind": "best", "meta": meta,
        "algo": {"modules": {"actor": bundle.actor.state_dict()}},
        "obs_norm": bundle.obs_norm.state_dict(),
    })
    return bundle, run


@pytest.mark.numeric
def test_export_run_and_cli_from_a_checkpoint(tmp_path):
    bundle, run = _run_with_checkpoint(tmp_path)
    path = export_run(run)
    assert path == run / "policy.onnx" and path.is_file()
    loaded = load_policy(run)
    obs = random_observations(2000, loaded.obs_norm, np.random.default_rng(0))
    np.testing.assert_allclose(onnx_actions(path, obs),
                               deterministic_action(bundle.actor, bundle.obs_norm, obs),
                               atol=1e-5)
    assert read_metadata(path)["global_step"] == 77
    # A run name, not an absolute path of the machine it was made on; the usual file mode.
    assert read_metadata(path)["source_run"] == "run"
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    out = tmp_path / "elsewhere" / "x.onnx"
    assert main(["--run", str(run), "--out", str(out)]) == 0 and out.is_file()
    assert main(["--run", str(tmp_path / "nope")]) == 1
    assert not list(run.glob("*.tmp")) and not list(run.glob(".export-*"))


@pytest.mark.numeric
def test_export_records_deploy_ranges_inside_the_trained_ranges(tmp_path):
    """``robotac export --deploy-range vx -0.3 0.4`` writes the metadata's
    ``deploy_command_ranges`` (what deploy then clips to); a range outside the trained one, an
    unknown key or a key twice is refused before anything is written."""
    from deploy.commands import policy_command_ranges

    _, run = _run_with_checkpoint(tmp_path)  # trained on the default ranges: vx -0.3 to 0.6
    out = tmp_path / "clip.onnx"
    assert main(["--run", str(run), "--out", str(out), "--deploy-range", "vx", "-0.3", "0.4",
                 "--deploy-range", "yaw_rate", "-0.5", "0.5"]) == 0
    md = read_metadata(out)
    assert md["deploy_command_ranges"] == {"vx": [-0.3, 0.4], "yaw_rate": [-0.5, 0.5]}
    low, high = policy_command_ranges(OnnxPolicy(out).metadata)
    np.testing.assert_array_equal(high, [0.4, 0.2, 0.5])
    assert "deploy_command_ranges" not in read_metadata(export_run(run))
    wide = tmp_path / "wide.onnx"
    assert main(["--run", str(run), "--out", str(wide), "--deploy-range", "vx", "-0.3", "0.7"]) == 1
    assert not wide.exists()
    for argv in (["--deploy-range", "vz", "0", "1"],
                 ["--deploy-range", "vx", "0", "0.4", "--deploy-range", "vx", "0", "0.3"],
                 ["--deploy-range", "vx", "0", "fast"]):
        with pytest.raises(SystemExit):
            main(["--run", str(run), "--out", str(wide), *argv])
    assert not wide.exists()


def _info(n=12, low=None, high=None) -> P.Info:
    low = ARR["joint_low_rad"][:n] if low is None else low
    high = ARR["joint_high_rad"][:n] if high is None else high
    return P.Info(1, 1, 1, 100, low, high)


def test_deploy_accepts_the_right_robot_and_refuses_others(exported, tmp_path):
    bundle, path = exported
    pol = OnnxPolicy(path)
    pol.check_robot(_info(), QUADRUPED_INTERFACE)
    low, high = pol.safe_bounds(_info())
    assert (low >= ARR["joint_low_rad"]).all() and (high <= ARR["joint_high_rad"]).all()
    with pytest.raises(PolicyMismatchError, match=r"robot reports 8 joints.*policy.*12 joints"):
        pol.check_robot(_info(8), QUADRUPED_INTERFACE)
    narrow = ARR["joint_high_rad"].copy()
    narrow[2] -= 0.3
    with pytest.raises(PolicyMismatchError, match=r"fr_knee.*outside the robot's INFO limits"):
        pol.check_robot(_info(high=narrow), QUADRUPED_INTERFACE)
    # A policy exported for a robot with another observation layout.
    other = QUADRUPED_INTERFACE.to_dict()
    other["obs_layout"]["version"] = "quadruped-obs-v9"
    meta = make_metadata(env_id=ENV_ID, algo="sac", obs_dim=45, action_low=ARR["action_low_rad"],
                         action_high=ARR["action_high_rad"], interface=other,
                         robotac_version="test")
    p2 = export_onnx(bundle.actor, bundle.obs_norm, tmp_path / "other.onnx", meta)
    with pytest.raises(PolicyMismatchError, match=r"robot .*quadruped-obs-v1.*policy.*v9"):
        OnnxPolicy(p2).check_robot(_info(), QUADRUPED_INTERFACE)


def test_export_refuses_inconsistent_metadata():
    with pytest.raises(ValueError, match="12 joints but the action has 3"):
        make_metadata(env_id="x", algo="sac", obs_dim=45, action_low=[0] * 3,
                      action_high=[1] * 3, interface=QUADRUPED_INTERFACE.to_dict(),
                      robotac_version="t")


@pytest.mark.numeric
@pytest.mark.parametrize("algo", ["sac", "td3"])
def test_exported_saturated_actor_stays_exactly_within_joint_limits(algo, tmp_path):
    """|u| = 50 on the quadruped's joint_limits bounds: onnxruntime's actions lie in [low, high]
    (float32 ``center + half * tanh(u)`` alone misses ``low`` by ~6e-8 on 4 of 12 joints)."""
    low = np.maximum(ARR["joint_low_rad"], ARR["action_low_rad"]).astype(np.float32)
    high = np.minimum(ARR["joint_high_rad"], ARR["action_high_rad"]).astype(np.float32)
    cls = SquashedGaussianActor if algo == "sac" else DeterministicActor
    actor = cls(45, low, high, (32,)).eval()
    last = actor.head if algo == "sac" else actor.net[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias[:12] = torch.tensor([-50.0, 50.0] * 6)
    norm = RunningNorm(45)
    meta = make_metadata(env_id=ENV_ID, algo=algo, obs_dim=45, action_low=low, action_high=high,
                         interface=QUADRUPED_INTERFACE.to_dict(), robotac_version="test")
    path = export_onnx(actor, norm, tmp_path / "saturated.onnx", meta)
    a = onnx_actions(path, np.random.default_rng(0).standard_normal((16, 45)).astype(np.float32))
    assert a.dtype == np.float32 and a.shape == (16, 12)
    assert (a >= low).all() and (a <= high).all(), (a - low).min()
    np.testing.assert_array_equal(a[:, 0::2], np.broadcast_to(low[0::2], (16, 6)))
    assert (high[1::2] - a[:, 1::2]).max() <= 5e-7


@pytest.mark.numeric
def test_onnx_actions_reuses_one_session_per_file(exported, tmp_path, monkeypatch):
    """onnx_parity over 3 chunks and repeated onnx_actions build one InferenceSession, not one
    per call; a file rewritten by a new export gets a new one."""
    import onnxruntime as ort

    bundle, path = exported
    built = []
    real = ort.InferenceSession

    def counting(*args, **kwargs):
        built.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", counting)
    copy = tmp_path / "copy.onnx"
    copy.write_bytes(path.read_bytes())
    obs = random_observations(3000, bundle.obs_norm, np.random.default_rng(2))
    assert onnx_parity(copy, bundle.actor, bundle.obs_norm, obs, batch=1000) <= 1e-5
    for _ in range(3):
        onnx_actions(copy, obs[:5])
    assert len(built) == 1
    sess = onnx_session(copy)
    np.testing.assert_array_equal(onnx_actions(sess, obs[:5]), onnx_actions(copy, obs[:5]))
    assert len(built) == 1
    # A new export to the same path (another size and mtime) is a new session.
    meta = read_metadata(path)
    other = _bundle(bundle.algo, seed=9)
    export_onnx(other.actor, other.obs_norm, copy, meta)
    a = onnx_actions(copy, obs[:5])
    assert len(built) == 2
    np.testing.assert_allclose(a, deterministic_action(other.actor, other.obs_norm, obs[:5]),
                               atol=1e-5)


@pytest.mark.numeric
def test_chaos_baseline_diverges_only_when_the_actions_are_moved():
    from robotac.export import chaos_baseline

    bundle = _bundle("sac", seed=3)
    same = chaos_baseline(bundle, 0.0, seed=4, max_steps=60)
    assert same["divergence_step"] is None and same["rel_diff"] == 0.0
    moved = chaos_baseline(bundle, 0.05, seed=4, max_steps=60)  # 0.05 rad per joint and step
    assert moved["divergence_step"] is not None and moved["action_eps"] == 0.05


@pytest.mark.numeric
@pytest.mark.parametrize("baseline_diverges", [True, False])
def test_check_judges_an_episode_that_disagrees_by_the_chaos_baseline(
        baseline_diverges, tmp_path, monkeypatch, capsys):
    """Returns 1 % apart: a chaotic episode (the torch actor diverges from itself, moved by the
    ONNX file's action difference) passes on action parity; a stable one fails the check."""
    import robotac.export as ex

    _, run = _run_with_checkpoint(tmp_path)
    monkeypatch.setattr(ex, "episode_parity", lambda *a, **k: {
        "torch_return": 100.0, "onnx_return": 101.0, "rel_diff": 0.01, "torch_length": 50,
        "onnx_length": 50, "divergence_step": 20})
    seen = {}

    def baseline(bundle, action_eps, seed=0, max_steps=None):
        seen["eps"] = action_eps
        return {"rel_diff": 0.005, "divergence_step": 19 if baseline_diverges else None,
                "action_eps": action_eps}

    monkeypatch.setattr(ex, "chaos_baseline", baseline)
    status = main(["--run", str(run), "--check"])
    out, err = capsys.readouterr()
    report, _ = json.JSONDecoder().raw_decode(out[out.index("{"):])
    assert report["chaos_baseline"]["divergence_step"] == (
        19 if baseline_diverges else None)
    assert 0 < seen["eps"] <= 1e-5  # the measured action parity (or its 1e-7 floor)
    if baseline_diverges:
        assert status == 0 and "chaotic" in err + out and "FAILED" not in err
    else:
        assert status == 2 and "acts differently in closed loop" in err and "FAILED" in err
