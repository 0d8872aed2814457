"""A killed-and-resumed run gives bitwise the same parameters as an uninterrupted one (CPU)."""

import dataclasses

import pytest
import torch

from robotac.checkpoint import load_checkpoint
from robotac.config import ConfigError, TrainConfig
from robotac.train import train


def _cfg(run_dir, algo, **kw) -> TrainConfig:
    base = dict(
        env_id="Pendulum-v1", algo=algo, seed=3, total_steps=900, learning_starts=300,
        batch_size=64, hidden=(32, 32), eval_every=400, eval_episodes=2, checkpoint_every=500,
        log_every=100, run_dir=str(run_dir), progress=False, video=False, export=False,
    )
    base.update(kw)
    return TrainConfig(**base)


def _all_tensors(ckpt) -> dict[str, torch.Tensor]:
    out = {}
    for group in ("modules", "optimizers"):
        for name, sd in ckpt["algo"][group].items():
            flat = sd if group == "modules" else {
                f"{i}.{k}": v for i, st in sd["state"].items() for k, v in st.items()}
            for k, v in flat.items():
                out[f"{group}.{name}.{k}"] = v
    for k, v in ckpt["algo"]["extra"].items():
        out[f"extra.{k}"] = v
    for k, v in ckpt["obs_norm"].items():
        out[f"obs_norm.{k}"] = v
    for k in ("obs", "next_obs", "action", "reward", "terminated", "truncated"):
        out[f"buffer.{k}"] = ckpt["buffer"][k]
    return out


@pytest.mark.numeric
@pytest.mark.parametrize("algo,num_envs,noise", [
    ("sac", 1, {}), ("td3", 2, {}), ("ddpg", 1, {}),
    # Colored exploration noise: its per-env sequences are saved state too; 150-step sequences
    # run out within Pendulum's 200-step episodes, 1000-step ones are redrawn at episode ends.
    ("sac", 2, {"action_noise_beta": 1.0, "action_noise_seq_len": 150}),
    ("td3", 1, {"action_noise_beta": 2.0}),
    # CrossQ: no targets; the Batch Renormalization statistics and step counters are critic
    # buffers, past the 100-update warm-up before the kill at step 500.
    ("crossq", 1, {"critic_hidden": (64, 64), "batch_renorm_warmup": 100}),
])
def test_killed_and_resumed_run_is_bitwise_identical(tmp_path, algo, num_envs, noise):
    kw = {"num_envs": num_envs, **noise}
    if algo == "ddpg":
        kw["ou_noise"] = True  # also exercises the saved exploration-noise state
    straight = train(_cfg(tmp_path / "a", algo, **kw))
    killed = train(_cfg(tmp_path / "b", algo, stop_after_steps=500, **kw))
    assert killed.stopped_early and killed.global_step == 500
    assert not (tmp_path / "b" / "learning_curve.png").exists()  # really stopped
    resumed = train(dataclasses.replace(_cfg(tmp_path / "b", algo, **kw), resume=str(
        tmp_path / "b"), run_dir=None))
    assert resumed.global_step == straight.global_step == 900

    a = load_checkpoint(tmp_path / "a" / "checkpoints" / "latest.pt")
    b = load_checkpoint(tmp_path / "b" / "checkpoints" / "latest.pt")
    ta, tb = _all_tensors(a), _all_tensors(b)
    assert ta.keys() == tb.keys() and len(ta) > 20
    differing = [k for k in ta if not torch.equal(ta[k], tb[k])]
    assert differing == []
    assert a["algo"]["n_updates"] == b["algo"]["n_updates"] == 900 - 300 + num_envs
    if algo == "crossq":  # one statistics step per critic update, in every layer
        assert {int(v) for k, v in ta.items() if k.endswith(".steps")} == {900 - 300 + 1}
        assert not any("target" in k for k in ta)
    assert a["loop"]["state"]["train_history"] == b["loop"]["state"]["train_history"]
    assert straight.final_eval_return == resumed.final_eval_return


@pytest.mark.numeric
def test_async_envs_resume_to_the_same_parameters_as_sync(tmp_path):
    """Subprocess envs (AsyncVectorEnv) are rebuilt the same way, and give the sync result."""
    straight = train(_cfg(tmp_path / "sync", "sac", num_envs=2, total_steps=600))
    train(_cfg(tmp_path / "async", "sac", num_envs=2, total_steps=600, vector_mode="async",
               stop_after_steps=500))
    train(dataclasses.replace(_cfg(tmp_path / "async", "sac", num_envs=2, total_steps=600,
                                   vector_mode="async"), resume=str(tmp_path / "async"),
                              run_dir=None))
    a = _all_tensors(load_checkpoint(tmp_path / "sync" / "checkpoints" / "latest.pt"))
    b = _all_tensors(load_checkpoint(tmp_path / "async" / "checkpoints" / "latest.pt"))
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    assert straight.global_step == 600


@pytest.mark.parametrize("change,match", [
    ({"compile": True}, r"compile=True \(run has False\); compile changes the trajectory"),
    ({"device": "cuda"}, r"device='cuda' \(run has 'cpu'\); device changes the trajectory"),
])
def test_resume_refuses_a_changed_compile_or_device(tmp_path, change, match):
    """compile and device change the trajectory (inductor's RNG; other kernels), so they are not
    session settings: a resume that changes them is refused, naming the setting."""
    train(_cfg(tmp_path / "b", "td3", stop_after_steps=500))
    before = (tmp_path / "b" / "checkpoints" / "latest.pt").read_bytes()
    resume = dataclasses.replace(_cfg(tmp_path / "b", "td3", total_steps=500, **change),
                                 resume=str(tmp_path / "b"), run_dir=None)
    with pytest.raises(ConfigError, match=match):
        train(resume)
    assert (tmp_path / "b" / "checkpoints" / "latest.pt").read_bytes() == before
