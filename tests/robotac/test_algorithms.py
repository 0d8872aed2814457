"""SAC / TD3 / DDPG updates do what the papers say: targets, smoothing, temperature, bounds."""

import copy
import dataclasses

import numpy as np
import pytest
import torch

from robotac.algos import DDPG, SAC, TD3, make_algo, polyak_update
from robotac.buffer import Batch
from robotac.config import ConfigError, TrainConfig, resolved, validate

# Update math against hand-written references: every test here passes or fails on torch kernels.
pytestmark = pytest.mark.numeric

LOW = np.array([0.0, -1.0, -10.0], dtype=np.float32)
HIGH = np.array([2 * np.pi, 1.0, -9.0], dtype=np.float32)
OBS_DIM = 4


def _algo(name: str, **kw):
    torch.manual_seed(0)
    cfg = resolved(TrainConfig(env_id="x", algo=name, hidden=(32, 32), **kw))
    return make_algo(cfg, OBS_DIM, LOW, HIGH, num_envs=3)


def _batch(n=64, terminated=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    action = torch.as_tensor(LOW) + torch.rand(n, 3, generator=g) * torch.as_tensor(HIGH - LOW)
    term = torch.zeros(n) if terminated is None else terminated
    return Batch(torch.randn(n, OBS_DIM, generator=g), action, torch.randn(n, generator=g),
                 torch.randn(n, OBS_DIM, generator=g), term)


def test_polyak_update_is_the_convex_combination():
    torch.manual_seed(0)
    online = torch.nn.Linear(3, 2)
    target = copy.deepcopy(online)
    with torch.no_grad():
        for p in online.parameters():
            p.add_(1.0)
    before = [p.clone() for p in target.parameters()]
    polyak_update(target, online, tau=0.005)
    for t, b, o in zip(target.parameters(), before, online.parameters(), strict=True):
        torch.testing.assert_close(t, 0.995 * b + 0.005 * o)


@pytest.mark.parametrize("name,n_critics", [("sac", 2), ("td3", 2), ("ddpg", 1)])
def test_exploration_stays_within_bounds(name, n_critics):
    algo = _algo(name, exploration_noise=0.5)
    assert algo.critic.n_critics == n_critics
    low, high = torch.as_tensor(LOW), torch.as_tensor(HIGH)
    for scale in (1.0, 1e4):
        obs = torch.randn(3, OBS_DIM) * scale
        for _ in range(200):
            a = algo.act(obs, explore=True)
            assert a.shape == (3, 3) and (a >= low).all() and (a <= high).all()
    a = torch.stack([algo.act(torch.zeros(3, OBS_DIM), explore=True) for _ in range(300)])
    assert (a.std(dim=(0, 1)) > 0).all()
    if name == "sac":  # squashed samples: strictly inside, no pile-up at the bounds
        assert ((a > low) & (a < high)).all()


def _saturate(actor: torch.nn.Module, u: list[float]) -> None:
    """Make the deterministic actor output the pre-squash ``u`` whatever the observation."""
    with torch.no_grad():
        actor.net[-1].weight.zero_()
        actor.net[-1].bias.copy_(torch.tensor(u))


@pytest.mark.parametrize("name", ["td3", "ddpg"])
@pytest.mark.parametrize("u", [0.0, 1.5, 3.0, -3.0])
def test_exploration_noise_does_not_vanish_when_the_actor_saturates(name, u):
    """Gaussian exploration is ``clip(tanh(u) + N(0, sigma^2), -1, 1)`` in half-ranges (TD3
    paper and reference code): at u = 3 its std is that of a normal clipped 0.005 from its mean,
    0.060 half-ranges for sigma 0.1 (noise before the tanh gave 0.001)."""
    sigma = 0.1
    algo = _algo(name, exploration_noise=sigma)
    _saturate(algo.actor, [u, -u, u])
    torch.manual_seed(1)
    a = algo.act(torch.zeros(20_000, OBS_DIM), explore=True)
    half = torch.as_tensor((HIGH - LOW) / 2)
    unit_std = (a.std(dim=0) / half).numpy()
    rng = np.random.default_rng(0)
    t = np.tanh(np.float32([u, -u, u]))
    ref = np.clip(t + sigma * rng.standard_normal((200_000, 3)), -1, 1).std(axis=0)
    np.testing.assert_allclose(unit_std, ref, rtol=0.05)
    assert (unit_std > 0.5 * sigma).all()
    # Clipped, not spread beyond the bounds; the mean moves inward only by the clipped mass.
    low, high = torch.as_tensor(LOW), torch.as_tensor(HIGH)
    assert (a >= low).all() and (a <= high).all()


def test_ddpg_ou_noise_is_added_after_the_squash():
    algo = _algo("ddpg", ou_noise=True, exploration_noise=0.2)
    _saturate(algo.actor, [3.0, -3.0, 0.0])
    obs = torch.zeros(3, OBS_DIM)
    for _ in range(50):
        a = algo.act(obs, explore=True)
        expected = torch.clamp(torch.tanh(torch.tensor([3.0, -3.0, 0.0])) + algo.noise_state,
                               -1, 1)
        torch.testing.assert_close(algo.actor.to_unit(a), expected, atol=1e-5, rtol=0)
    assert algo.noise_state.abs().max() > 0.1  # the OU state did move the action


def test_ddpg_ou_noise_is_correlated_and_reset_per_env():
    algo = _algo("ddpg", ou_noise=True, exploration_noise=0.2)
    obs = torch.zeros(3, OBS_DIM)
    states = []
    for _ in range(400):
        algo.act(obs, explore=True)
        states.append(algo.noise_state[0].clone())
    x = torch.stack(states)[:, 0]
    lag1 = torch.corrcoef(torch.stack([x[:-1], x[1:]]))[0, 1].item()
    assert lag1 > 0.7  # OU with theta 0.15 has autocorrelation 0.85 per step
    algo.reset_noise(torch.tensor([True, False, False]))
    assert algo.noise_state[0].abs().sum() == 0 and algo.noise_state[1].abs().sum() > 0


def test_td3_target_policy_smoothing_noise_is_clipped_per_dimension():
    algo = _algo("td3", target_policy_noise=0.2, target_noise_clip=0.5)
    assert isinstance(algo, TD3) and algo.policy_delay == 2
    next_obs = torch.randn(20000, OBS_DIM) * 0.1
    clean = algo.actor_target(next_obs)
    smoothed = algo.target_action(next_obs)
    half = torch.as_tensor((HIGH - LOW) / 2)
    noise_units = (smoothed - clean) / half
    low, high = torch.as_tensor(LOW), torch.as_tensor(HIGH)
    assert (smoothed >= low).all() and (smoothed <= high).all()
    assert noise_units.abs().max() <= 0.5 + 1e-5
    # Where the bounds do not bite, the noise is N(0, 0.2^2) clipped at 2.5 sigma: its std is
    # 0.2 * 0.9657 (truncated-normal factor at +-2.5 sigma, plus the clipped mass).
    inside = (clean - low > 0.5 * half) & (high - clean > 0.5 * half)
    std = noise_units[inside].std().item()
    assert 0.185 < std < 0.2, std


def test_td3_smoothing_is_in_squashed_units_after_the_tanh_and_clipped():
    """y = r + gamma * min_k Q'_k(s', clip(tanh(u') + clip(eps, -c, c), -1, 1)) (Fujimoto et al.
    2018, eq. 14-15, Algorithm 1), with the smoothing intact where the target actor saturates."""
    algo = _algo("td3", target_policy_noise=0.2, target_noise_clip=0.5)
    _saturate(algo.actor_target, [3.0, -3.0, 0.5])
    batch = _batch(n=4096)
    torch.manual_seed(5)
    loss, _ = algo.critic_loss(batch)
    torch.manual_seed(5)
    with torch.no_grad():
        t = torch.tanh(algo.actor_target.pre_squash(batch.next_obs))
        eps = (torch.randn_like(t) * 0.2).clamp(-0.5, 0.5)
        smoothed = torch.clamp(t + eps, -1, 1)
        qn = algo.critic_target(batch.next_obs, smoothed).min(0).values
        y = batch.reward + 0.99 * qn
        q = algo.critic(batch.obs, algo.actor.to_unit(batch.action))
        expected = ((q - y) ** 2).mean(1).sum()
    torch.testing.assert_close(loss, expected)
    assert smoothed.abs().max() <= 1 and (smoothed.std(0) > 0.1).all()


def test_sac_critic_loss_is_the_soft_td_error_with_min_of_twin_targets():
    algo = _algo("sac")
    term = torch.tensor([1.0, 0.0] * 32)
    batch = _batch(terminated=term)
    torch.manual_seed(5)
    loss, _ = algo.critic_loss(batch)
    torch.manual_seed(5)
    with torch.no_grad():
        a2, lp2, _ = algo.actor(batch.next_obs)
        qn = algo.critic_target(batch.next_obs, algo.actor.to_unit(a2)).min(0).values
        y = batch.reward + 0.99 * (1 - term) * (qn - algo.alpha * lp2)
        q = algo.critic(batch.obs, algo.actor.to_unit(batch.action))
        expected = ((q - y) ** 2).mean(1).sum()
    torch.testing.assert_close(loss, expected)


@pytest.mark.parametrize("name", ["sac", "td3", "ddpg"])
def test_terminal_transitions_do_not_bootstrap_and_others_do(name):
    # All rows terminal: the TD target is the reward alone, so the loss is
    # sum_k mean (Q_k(s, a) - r)^2 whatever the next observation and the target networks hold.
    algo = _algo(name)
    batch = _batch(terminated=torch.ones(64))
    with torch.no_grad():
        q = algo.critic(batch.obs, algo.actor.to_unit(batch.action))
    expected = ((q - batch.reward) ** 2).mean(1).sum()
    loss, _ = algo.critic_loss(batch)
    torch.testing.assert_close(loss, expected)
    moved = batch._replace(next_obs=batch.next_obs * 100 + 3)
    with torch.no_grad():
        for p in algo.critic_target.parameters():
            p.add_(1.0)
    torch.testing.assert_close(algo.critic_loss(moved)[0], expected)
    # Non-terminal rows (truncated ones included: the buffer never passes truncation) do
    # bootstrap: the same change of next observation and target critics changes the loss.
    live = batch._replace(terminated=torch.zeros(64))
    live_moved = moved._replace(terminated=torch.zeros(64))
    torch.manual_seed(1)
    l1 = algo.critic_loss(live)[0]
    torch.manual_seed(1)
    l2 = algo.critic_loss(live_moved)[0]
    assert not torch.allclose(l1, l2)


def test_sac_actor_loss_uses_alpha_log_prob_minus_min_of_twin_critics():
    algo = _algo("sac", alpha=0.3, autotune_alpha=False)
    batch = _batch()
    torch.manual_seed(3)
    loss, log_prob = algo.actor_loss(batch)
    torch.manual_seed(3)
    with torch.no_grad():
        a, lp, _ = algo.actor(batch.obs)
        q = algo.critic(batch.obs, algo.actor.to_unit(a))
    torch.testing.assert_close(log_prob.detach(), lp)
    torch.testing.assert_close(loss.detach(), (0.3 * lp - q.min(0).values).mean())
    # The twin critics disagree, so the min differs from either one alone or their mean.
    for other in (q[0], q[1], q.mean(0)):
        assert not torch.allclose(loss.detach(), (0.3 * lp - other).mean())


def test_sac_temperature_moves_towards_target_entropy():
    # Target entropy -1 * act_dim = -3 nats. Freshly initialised actors have high entropy
    # (> -3), so alpha must go down; with a target far above the entropy, alpha must go up.
    for scale, direction in ((1.0, -1), (-5.0, +1)):
        algo = _algo("sac", target_entropy_scale=scale)
        assert isinstance(algo, SAC)
        assert algo.target_entropy == pytest.approx(-scale * 3)
        a0 = algo.alpha.item()
        for _ in range(20):
            algo.update(_batch())
        a1 = algo.alpha.item()
        # Adam moves log(alpha) by about lr per step: 20 steps * 3e-4.
        assert np.sign(np.log(a1 / a0)) == direction
        assert abs(np.log(a1 / a0)) == pytest.approx(20 * 3e-4, rel=0.05)


def test_sac_targets_follow_polyak_every_update_and_td3_only_when_actor_updates():
    sac = _algo("sac")
    t0 = [p.clone() for p in sac.critic_target.parameters()]
    sac.update(_batch())
    for t, b, o in zip(sac.critic_target.parameters(), t0, sac.critic.parameters(), strict=True):
        torch.testing.assert_close(t, 0.995 * b + 0.005 * o)

    td3 = _algo("td3")
    td3.update(_batch())  # update 0: critic, actor, targets
    actor_after_first = [p.clone() for p in td3.actor.parameters()]
    target_after_first = [p.clone() for p in td3.critic_target.parameters()]
    td3.update(_batch(seed=1))  # update 1: critic only (policy_delay 2)
    assert all(torch.equal(a, b) for a, b in zip(actor_after_first, td3.actor.parameters(),
                                                  strict=True))
    assert all(torch.equal(a, b) for a, b in zip(target_after_first,
                                                  td3.critic_target.parameters(), strict=True))
    td3.update(_batch(seed=2))  # update 2: actor and targets again
    assert not torch.equal(actor_after_first[0], next(td3.actor.parameters()))


def test_updates_return_tensors_not_python_numbers():
    for name in ("sac", "td3", "ddpg"):
        metrics = _algo(name).update(_batch())
        assert "losses/qf_loss" in metrics and "losses/actor_loss" in metrics
        assert all(isinstance(v, torch.Tensor) and v.ndim == 0 for v in metrics.values())


def test_ddpg_uses_one_critic_and_updates_everything_each_step():
    algo = _algo("ddpg")
    assert isinstance(algo, DDPG) and algo.policy_delay == 1
    t0 = next(algo.actor_target.parameters()).clone()
    algo.update(_batch())
    assert not torch.equal(t0, next(algo.actor_target.parameters()))


def test_state_dict_round_trip_restores_everything():
    a = _algo("sac")
    for s in range(3):
        a.update(_batch(seed=s))
    b = _algo("sac")
    b.load_state_dict(a.state_dict())
    torch.manual_seed(9)
    ma = a.update(_batch(seed=7))
    torch.manual_seed(9)
    mb = b.update(_batch(seed=7))
    assert all(torch.equal(ma[k], mb[k]) for k in ma)
    assert b.n_updates == a.n_updates == 4


@pytest.mark.parametrize("name", ["td3", "ddpg"])
def test_deterministic_actor_loss_runs_q1_only(name):
    """The DPG loss is -mean Q_1(s, mu(s)); the other critic is not evaluated (TD3 Alg. 1)."""
    algo = _algo(name)
    batch = _batch()
    algo._set_critic_grad(False)
    reference = -algo.critic(batch.obs, algo.actor.to_unit(algo.actor(batch.obs)))[0].mean()
    reference.backward()
    ref_grads = [p.grad.clone() for p in algo.actor.parameters()]
    algo.actor.zero_grad(set_to_none=True)

    def every_critic(*args, **kwargs):
        raise AssertionError("the actor loss evaluated every critic, it needs Q_1 only")

    algo.critic.forward = every_critic
    loss = algo.actor_loss(batch)
    loss.backward()
    torch.testing.assert_close(loss, reference)
    for g, r in zip((p.grad for p in algo.actor.parameters()), ref_grads, strict=True):
        torch.testing.assert_close(g, r)


def test_policy_delay_default_lives_in_the_algorithm():
    """A TD3 built from an unresolved config (policy_delay None) delays its actor by 2."""
    cfg = TrainConfig(env_id="x", algo="td3", hidden=(32, 32))
    assert cfg.policy_delay is None
    assert TD3(OBS_DIM, LOW, HIGH, cfg).policy_delay == 2
    for cls in (SAC, DDPG):
        assert cls(OBS_DIM, LOW, HIGH, dataclasses.replace(cfg, algo=cls.name)).policy_delay == 1
    assert TD3(OBS_DIM, LOW, HIGH, dataclasses.replace(cfg, policy_delay=3)).policy_delay == 3
    assert resolved(cfg).policy_delay == 2  # the recorded config says what ran
    assert resolved(dataclasses.replace(cfg, algo="ddpg")).policy_delay == 1
    with pytest.raises(ValueError, match="policy_delay must be >= 1"):
        TD3(OBS_DIM, LOW, HIGH, dataclasses.replace(cfg, policy_delay=0))


@pytest.mark.parametrize("cls", [TD3, SAC])
def test_ou_noise_is_refused_where_it_would_be_ignored(cls):
    cfg = TrainConfig(env_id="x", algo=cls.name, hidden=(32, 32), ou_noise=True)
    with pytest.raises(ValueError, match=r"ou_noise=True is not used by .*use algo='ddpg'"):
        cls(OBS_DIM, LOW, HIGH, cfg)
    assert DDPG(OBS_DIM, LOW, HIGH, dataclasses.replace(cfg, algo="ddpg")).ou


@pytest.mark.parametrize("algo_name", ["sac", "td3", "ddpg"])
def test_critic_layer_norm_option_reaches_the_critics_and_their_targets(algo_name):
    cfg = resolved(TrainConfig(env_id="Pendulum-v1", algo=algo_name, hidden=(16, 16),
                               critic_layer_norm=True))
    algo = make_algo(cfg, 3, np.array([-2.0], np.float32), np.array([2.0], np.float32), 1)
    for net in (algo.critic, algo.critic_target):
        assert net.norms is not None and len(net.norms) == 2
    assert any(k.startswith("norms.") for k in algo.state_dict()["modules"]["critic"])


def _lag1_autocorrelation(x: np.ndarray) -> float:
    """Mean over columns of the lag-1 autocorrelation of ``x (T, d)``."""
    x = x - x.mean(axis=0)
    return float(np.mean((x[1:] * x[:-1]).sum(axis=0) / (x * x).sum(axis=0)))


@pytest.mark.parametrize("algo", ["sac", "td3"])
def test_colored_exploration_noise_is_correlated_over_time_and_redrawn_per_episode(algo):
    """beta 0 gives i.i.d. noise; beta 1 (pink) unit-variance noise correlated from one step to
    the next (Eberhard et al. 2023), one sequence per env, redrawn when an env's episode ends."""
    torch.manual_seed(0)
    act_dim, steps = 6, 1000
    low, high = -np.ones(act_dim, np.float32), np.ones(act_dim, np.float32)
    like = torch.zeros(2, act_dim)
    seqs = {}
    for beta in (0.0, 1.0):
        cfg = resolved(TrainConfig(env_id="x", algo=algo, hidden=(8,), action_noise_beta=beta))
        a = make_algo(cfg, 3, low, high, num_envs=2)
        seqs[beta] = np.stack([a._exploration_eps(like).numpy() for _ in range(steps)])
    white, pink = seqs[0.0], seqs[1.0]  # (steps, 2 envs, act_dim)
    assert abs(_lag1_autocorrelation(white[:, 0])) < 0.1
    assert _lag1_autocorrelation(pink[:, 0]) > 0.4
    assert 0.5 < pink.std() < 1.5
    assert not np.allclose(pink[:, 0], pink[:, 1])  # one sequence per env
    # A done env starts a new sequence at its next step; the other env continues its own.
    cfg = resolved(TrainConfig(env_id="x", algo=algo, hidden=(8,), action_noise_beta=1.0))
    torch.manual_seed(1)
    a = make_algo(cfg, 3, low, high, num_envs=2)
    first = a._exploration_eps(like).clone()
    a.reset_noise(torch.tensor([True, False]))
    second = a._exploration_eps(like)
    assert int(a._colored_idx[0]) == 1 and int(a._colored_idx[1]) == 2
    assert torch.equal(second[1], a._colored[1, 1]) and not torch.equal(first[0], second[0])
    # The behaviour policy stays within the bounds.
    obs = torch.randn(2, 3)
    act = a.act(obs, explore=True)
    assert act.shape == (2, act_dim) and bool(((act >= -1) & (act <= 1)).all())


@pytest.mark.parametrize("field,value,match", [
    ("action_noise_beta", -1.0, "action_noise_beta=-1.0 is invalid"),
    ("action_noise_seq_len", 1, "action_noise_seq_len=1 is invalid"),
])
def test_colored_noise_settings_are_checked(field, value, match):
    with pytest.raises(ConfigError, match=match):
        validate(resolved(TrainConfig(env_id="Pendulum-v1", **{field: value})))
    with pytest.raises(ConfigError, match="Ornstein-Uhlenbeck noise"):
        validate(resolved(TrainConfig(env_id="Pendulum-v1", algo="ddpg", ou_noise=True,
                                      action_noise_beta=1.0)))
