"""CrossQ (Bhatt et al. 2024): joint forward pass, no target networks, the paper's defaults,
exact state round trip, and an ONNX export of its actor like SAC's."""

import copy

import numpy as np
import pytest
import torch

from policies.batch_renorm import BatchRenorm, BatchRenormQEnsemble
from policies.export import onnx_actions, read_metadata
from policies.networks import SquashedGaussianActor, deterministic_action
from robotac.algos import make_algo
from robotac.buffer import Batch
from robotac.checkpoint import load_policy
from robotac.config import TrainConfig, resolved
from robotac.crossq import CrossQ

# Update math against hand-written references: every test here passes or fails on torch kernels.
pytestmark = pytest.mark.numeric

LOW = np.array([0.0, -1.0, -10.0], dtype=np.float32)
HIGH = np.array([2 * np.pi, 1.0, -9.0], dtype=np.float32)
OBS_DIM = 4


def _algo(**kw) -> CrossQ:
    torch.manual_seed(0)
    kw = {"hidden": (32, 32), "critic_hidden": (64, 64), "batch_renorm_warmup": 2, **kw}
    cfg = resolved(TrainConfig(env_id="x", algo="crossq", **kw))
    return make_algo(cfg, OBS_DIM, LOW, HIGH, num_envs=1)


def _batch(n=64, seed=0, terminated=None) -> Batch:
    g = torch.Generator().manual_seed(seed)
    action = torch.as_tensor(LOW) + torch.rand(n, 3, generator=g) * torch.as_tensor(HIGH - LOW)
    term = torch.zeros(n) if terminated is None else terminated
    return Batch(torch.randn(n, OBS_DIM, generator=g), action, torch.randn(n, generator=g),
                 torch.randn(n, OBS_DIM, generator=g) + 0.5, term)


def _steps(algo: CrossQ) -> list[int]:
    return [int(m.steps) for m in algo.critic.modules() if isinstance(m, BatchRenorm)]


def test_defaults_are_the_papers():
    """Bhatt et al. 2024 as sb3-contrib takes it: 2048-unit critics, policy delay 3, Adam betas
    (0.5, 0.999) for actor and critic, learning rate 1e-3; SAC's actor and temperature."""
    cfg = resolved(TrainConfig(env_id="x", algo="crossq"))
    assert (cfg.critic_hidden, cfg.policy_delay, cfg.adam_betas) == ((2048, 2048), 3, (0.5, 0.999))
    assert cfg.actor_lr == cfg.critic_lr == cfg.alpha_lr == 1e-3 and cfg.hidden == (256, 256)
    algo = _algo(critic_hidden=None, hidden=(8,))
    assert isinstance(algo.critic, BatchRenormQEnsemble) and algo.critic.n_critics == 2
    assert [layer.weight.shape[-1] for layer in algo.critic.layers] == [2048, 2048, 1]
    assert isinstance(algo.actor, SquashedGaussianActor) and algo.policy_delay == 3
    for opt in (algo.actor_opt, algo.critic_opt):
        assert opt.param_groups[0]["betas"] == (0.5, 0.999) and opt.param_groups[0]["lr"] == 1e-3
    assert algo.alpha_opt.param_groups[0]["betas"] == (0.9, 0.999)  # as sb3-contrib
    assert algo.target_entropy == -3.0


def test_no_target_networks_anywhere():
    algo = _algo()
    assert not hasattr(algo, "critic_target") and not hasattr(algo, "actor_target")
    assert set(algo.modules()) == {"actor", "critic"}
    assert set(algo.state_dict()["modules"]) == {"actor", "critic"}
    assert not algo.critic.training  # eval mode outside the joint pass


def test_joint_forward_pass_equals_separate_passes_in_eval_mode_and_not_in_training():
    algo = _algo(batch_renorm_warmup=0)
    for s in range(3):  # statistics away from their initial values
        algo.update(_batch(seed=s))
    b = _batch(seed=9)
    critic = algo.critic.eval()
    a, a_next = algo.actor.to_unit(b.action), torch.tanh(torch.randn(64, 3))
    joint = critic(torch.cat([b.obs, b.next_obs]), torch.cat([a, a_next]))
    q, q_next = joint.split(64, dim=1)
    torch.testing.assert_close(q, critic(b.obs, a), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(q_next, critic(b.next_obs, a_next), atol=1e-5, rtol=1e-5)
    # In training mode the statistics are the mixture's: separate passes give other values.
    train_copy = copy.deepcopy(critic).train()
    q_joint_train = train_copy(torch.cat([b.obs, b.next_obs]), torch.cat([a, a_next]))[:, :64]
    q_alone_train = copy.deepcopy(critic).train()(b.obs, a)
    assert not torch.allclose(q_joint_train, q_alone_train, atol=1e-3)


def test_critic_loss_is_the_target_free_soft_td_error_of_the_joint_pass():
    algo = _algo(batch_renorm_warmup=0)
    algo.update(_batch(seed=1))
    b = _batch(seed=2, terminated=(torch.arange(64) % 5 == 0).float())
    ref_critic = copy.deepcopy(algo.critic)
    torch.manual_seed(7)
    loss, q_mean = algo.critic_loss(b)
    torch.manual_seed(7)  # the same next actions
    with torch.no_grad():
        a_next, logp_next, _ = algo.actor(b.next_obs)
    unit = torch.cat([algo.actor.to_unit(b.action), algo.actor.to_unit(a_next)])
    q_all = ref_critic.train()(torch.cat([b.obs, b.next_obs]), unit)
    q, q_next = q_all[:, :64], q_all[:, 64:].detach()
    y = b.reward + algo.gamma * (1 - b.terminated) * (q_next.min(0).values
                                                      - algo.alpha * logp_next)
    torch.testing.assert_close(loss, ((q - y) ** 2).mean(1).sum(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(q_mean, q.detach().mean())
    # One training-mode pass: statistics moved once, the critic back in eval mode.
    for got, ref in zip(algo.critic.state_dict().values(), ref_critic.state_dict().values(),
                        strict=True):
        torch.testing.assert_close(got, ref)
    assert not algo.critic.training


def test_update_changes_critic_and_actor_every_policy_delay_and_counts_brn_steps():
    algo = _algo()
    critic0 = [p.detach().clone() for p in algo.critic.parameters()]
    actor0 = [p.detach().clone() for p in algo.actor.parameters()]
    metrics = algo.update(_batch(seed=0))  # n_updates 0: critic, actor and temperature
    assert all(isinstance(v, torch.Tensor) and v.ndim == 0 for v in metrics.values())
    assert {"losses/qf_loss", "losses/actor_loss", "losses/alpha"} <= set(metrics)
    assert all(not torch.equal(a, b) for a, b in zip(critic0, algo.critic.parameters(),
                                                      strict=True))
    assert all(not torch.equal(a, b) for a, b in zip(actor0, algo.actor.parameters(),
                                                     strict=True))
    assert float(algo.alpha) != 1.0
    # The actor's pass runs the critic in eval mode: one statistics step per critic update.
    assert _steps(algo) == [1, 1, 1]
    actor1 = [p.detach().clone() for p in algo.actor.parameters()]
    algo.update(_batch(seed=1))
    algo.update(_batch(seed=2))
    assert all(torch.equal(a, b) for a, b in zip(actor1, algo.actor.parameters(), strict=True))
    algo.update(_batch(seed=3))  # the third critic update since: the actor again
    assert not torch.equal(actor1[0], next(algo.actor.parameters()))
    assert _steps(algo) == [4, 4, 4] and algo.n_updates == 4 and not algo.critic.training


def test_actor_loss_reads_the_critic_in_eval_mode_and_leaves_its_statistics():
    algo = _algo(batch_renorm_warmup=0)
    algo.update(_batch(seed=0))
    before = copy.deepcopy(algo.critic.state_dict())
    algo.critic.train()  # whatever mode it was left in
    b = _batch(seed=4)
    torch.manual_seed(3)
    loss, log_prob = algo.actor_loss(b)
    torch.manual_seed(3)
    action, ref_logp, _ = algo.actor(b.obs)
    ref_critic = copy.deepcopy(algo.critic).eval()
    q_pi = ref_critic(b.obs, algo.actor.to_unit(action)).min(0).values
    torch.testing.assert_close(loss, (algo.alpha * ref_logp - q_pi).mean())
    assert all(torch.equal(before[k], v) for k, v in algo.critic.state_dict().items())


def test_state_dict_round_trip_restores_the_batch_renorm_statistics_exactly():
    a = _algo()
    for s in range(6):  # past the 2-update warm-up; the next update moves the actor too
        a.update(_batch(seed=s))
    b = _algo()
    b.load_state_dict(copy.deepcopy(a.state_dict()))
    assert _steps(b) == _steps(a) == [6, 6, 6]
    torch.manual_seed(9)
    ma = a.update(_batch(seed=7))
    torch.manual_seed(9)
    mb = b.update(_batch(seed=7))
    assert all(torch.equal(ma[k], mb[k]) for k in ma)
    for (ka, va), (kb, vb) in zip(a.critic.state_dict().items(), b.critic.state_dict().items(),
                                  strict=True):
        assert ka == kb and torch.equal(va, vb)


def test_a_crossq_run_exports_its_actor_with_onnx_parity(tmp_path):
    """``robotac export`` on a CrossQ run: only the actor ships, SAC's squashed Gaussian.

    Bound 1e-5 in action units (Pendulum's half-range is 2): the same float32 graph run by
    torch's and onnxruntime's kernels differs only in summation order, a few float32 ulps in
    the pre-squash output, as for the other algorithms' exports (tests/policies/test_export)."""
    from robotac.export import check_parity, main
    from robotac.train import train

    run = tmp_path / "run"
    train(TrainConfig(env_id="Pendulum-v1", algo="crossq", seed=1, total_steps=400,
                      learning_starts=200, batch_size=32, hidden=(32, 32), critic_hidden=(64, 64),
                      batch_renorm_warmup=50, eval_every=400, eval_episodes=1,
                      run_dir=str(run), progress=False, video=False, export=False))
    out = tmp_path / "crossq.onnx"
    assert main(["--run", str(run), "--out", str(out)]) == 0
    meta = read_metadata(out)
    assert meta["algo"] == "crossq" and meta["hidden"] == [32, 32]
    bundle = load_policy(run)
    assert isinstance(bundle.actor, SquashedGaussianActor) and bundle.algo == "crossq"
    par = check_parity(bundle, out, n=2000, seed=0)
    assert par["random_max_abs"] <= 1e-5 and par["recorded_max_abs"] <= 1e-5
    obs = np.random.default_rng(0).normal(size=(100, 3)).astype(np.float32)
    np.testing.assert_allclose(onnx_actions(out, obs),
                               deterministic_action(bundle.actor, bundle.obs_norm, obs),
                               atol=1e-5)
