"""Behaviour of the policy networks: bounds, SAC log-density, normalizer, batched critics."""

import math

import numpy as np
import pytest
import torch
from torch import distributions as D

from policies.networks import (
    DeterministicActor,
    EnsembleLinear,
    QEnsemble,
    RunningNorm,
    SquashedGaussianActor,
    mlp,
)

# Network math: every test here passes or fails on torch's float kernels.
pytestmark = pytest.mark.numeric

# Per-dimension bounds of very different ranges (a servo in [0, 2*pi], a symmetric one, an
# offset narrow one): a single low[0]/high[0] would break at least one of them.
LOW = np.array([0.0, -1.0, -10.0, 3.0], dtype=np.float32)
HIGH = np.array([2 * np.pi, 1.0, -9.0, 3.5], dtype=np.float32)


def _scale_weights(module: torch.nn.Module, factor: float) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.mul_(factor)


@pytest.mark.parametrize("cls", [DeterministicActor, SquashedGaussianActor])
@pytest.mark.parametrize("weight_scale", [1.0, 100.0])
@pytest.mark.parametrize("obs_scale", [1.0, 1e3, 1e6])
def test_actions_within_bounds_per_dimension(cls, weight_scale, obs_scale):
    torch.manual_seed(0)
    actor = cls(6, LOW, HIGH, hidden=(32, 32))
    _scale_weights(actor, weight_scale)
    obs = torch.randn(2000, 6) * obs_scale
    outs = [actor.deterministic(obs)]
    if cls is SquashedGaussianActor:
        outs += list(actor(obs)[::2])  # sampled and deterministic actions
    else:
        outs.append(actor(obs))
    low, high = torch.as_tensor(LOW), torch.as_tensor(HIGH)
    for a in outs:
        assert a.shape == (2000, 4)
        assert torch.isfinite(a).all()
        assert (a >= low).all() and (a <= high).all(), (a.min(0).values, a.max(0).values)
    if weight_scale * obs_scale >= 1e3:
        # Saturated actors reach (numerically) both ends of every dimension's own range.
        a = outs[0]
        assert torch.allclose(a.min(0).values, low, atol=1e-5)
        assert torch.allclose(a.max(0).values, high, atol=1e-5)


def test_squash_is_the_affine_map_of_tanh():
    actor = DeterministicActor(3, LOW, HIGH, hidden=(8,))
    u = torch.linspace(-3, 3, 7).unsqueeze(-1).expand(7, 4)
    expected = torch.as_tensor(LOW) + torch.as_tensor(HIGH - LOW) * (torch.tanh(u) + 1) / 2
    torch.testing.assert_close(actor.squash(u), expected)
    torch.testing.assert_close(actor.from_unit(actor.to_unit(expected)), expected)
    assert actor.to_unit(torch.as_tensor(HIGH)).tolist() == [1.0] * 4


def test_invalid_bounds_are_rejected():
    with pytest.raises(ValueError, match="finite"):
        DeterministicActor(3, [-np.inf, 0.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="high > low"):
        SquashedGaussianActor(3, [0.0, 1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="positive integers"):
        mlp(3, 0)


def _reference_distribution(mean, log_std, low, high):
    """tanh-squashed Gaussian mapped to [low, high], built from torch.distributions."""
    center = torch.as_tensor((high + low) / 2)
    half = torch.as_tensor((high - low) / 2)
    base = D.Normal(mean, log_std.exp())
    squashed = D.TransformedDistribution(
        base, [D.TanhTransform(cache_size=1), D.AffineTransform(center, half, cache_size=1)]
    )
    return D.Independent(squashed, 1)


def test_sac_log_prob_matches_transformed_distribution():
    torch.manual_seed(1)
    actor = SquashedGaussianActor(5, LOW, HIGH, hidden=(32, 32)).double()
    obs = torch.randn(512, 5, dtype=torch.float64)
    mean, log_std = actor.distribution_params(obs)
    u = mean + log_std.exp() * torch.randn_like(mean)
    ours = actor.log_prob_from_pre_squash(u, mean, log_std, env_units=True)
    ref_dist = _reference_distribution(mean, log_std, LOW.astype(np.float64),
                                       HIGH.astype(np.float64))
    ref = ref_dist.log_prob(actor.squash(u))
    # Maximum difference across 512 samples: float64 rounding of atanh near the edges only.
    assert (ours - ref).abs().max().item() < 1e-6
    # SAC's own log-prob is the density of tanh(u) in [-1, 1] units.
    unit = actor.log_prob_from_pre_squash(u, mean, log_std)
    ones = np.ones(LOW.shape, dtype=np.float64)
    unit_ref = _reference_distribution(mean, log_std, -ones, ones).log_prob(
        torch.tanh(u))
    assert (unit - unit_ref).abs().max().item() < 1e-6


def test_sac_log_prob_does_not_depend_on_the_bounds():
    """The temperature target -action_dim means the same at +-0.3 rad as at +-pi (issue 9)."""
    torch.manual_seed(3)
    narrow = SquashedGaussianActor(5, [-0.3] * 3, [0.3] * 3, hidden=(16,))
    wide = SquashedGaussianActor(5, [0.0] * 3, [2 * math.pi] * 3, hidden=(16,))
    wide.load_state_dict({**narrow.state_dict(), **{
        k: v for k, v in wide.state_dict().items() if k.startswith("action_")}})
    obs = torch.randn(256, 5)
    torch.manual_seed(4)
    _, lp_narrow, _ = narrow(obs)
    torch.manual_seed(4)
    _, lp_wide, _ = wide(obs)
    torch.testing.assert_close(lp_narrow, lp_wide)
    # In env units the two would differ by 3 * log(pi / 0.3) = 7.05 nats.
    mean, log_std = narrow.distribution_params(obs)
    u = mean + log_std.exp() * torch.randn_like(mean)
    diff = (narrow.log_prob_from_pre_squash(u, mean, log_std, env_units=True)
            - wide.log_prob_from_pre_squash(u, mean, log_std, env_units=True))
    torch.testing.assert_close(diff, torch.full_like(diff, 3 * math.log(math.pi / 0.3)))


def test_sac_density_integrates_to_one_in_one_dimension():
    """Numerical change of variables: the density of the action over [low, high] sums to 1."""
    actor = SquashedGaussianActor(1, [-2.0], [5.0], hidden=(4,)).double()
    mean = torch.tensor([[0.3]], dtype=torch.float64)
    log_std = torch.tensor([[math.log(0.8)]], dtype=torch.float64)
    a = torch.linspace(-2.0, 5.0, 200_001, dtype=torch.float64)[1:-1].unsqueeze(-1)
    u = torch.atanh(actor.to_unit(a))
    density = actor.log_prob_from_pre_squash(u, mean, log_std, env_units=True).exp()
    integral = torch.trapezoid(density, a.squeeze(-1)).item()
    assert abs(integral - 1.0) < 1e-4, integral


def test_sac_sample_is_reparameterized():
    torch.manual_seed(2)
    actor = SquashedGaussianActor(3, LOW, HIGH, hidden=(16,))
    action, log_prob, det = actor(torch.randn(64, 3))
    assert action.shape == (64, 4) and log_prob.shape == (64,) and det.shape == (64, 4)
    action.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in actor.parameters())


def test_log_std_is_bounded():
    actor = SquashedGaussianActor(3, LOW, HIGH, hidden=(16,))
    _scale_weights(actor, 1e3)
    _, log_std = actor.distribution_params(torch.randn(100, 3) * 100)
    assert log_std.min() >= -5.0 and log_std.max() <= 2.0


def test_running_norm_chan_merge_equals_batch_statistics():
    rng = np.random.default_rng(0)
    norm = RunningNorm(3)
    chunks = [rng.normal(5.0, 3.0, size=(n, 3)) * [1, 10, 0.01] for n in (1, 7, 1000, 2, 333)]
    for c in chunks:
        norm.update(torch.as_tensor(c))
    allx = np.concatenate(chunks)
    assert norm.count.item() == len(allx)
    np.testing.assert_allclose(norm.mean.numpy(), allx.mean(0), rtol=1e-12)
    np.testing.assert_allclose(norm.var.numpy(), allx.var(0), rtol=1e-10)
    assert norm.mean.dtype == torch.float64
    assert set(norm.state_dict()) == {"mean", "var", "count"}


def test_running_norm_normalizes_and_clips():
    norm = RunningNorm(2, clip=5.0)
    x = torch.tensor([[0.0, 100.0], [2.0, 300.0]], dtype=torch.float64)
    norm.update(x)  # mean (1, 200), var (1, 10000)
    y = norm(torch.tensor([[1.0, 400.0], [100.0, 0.0]]))
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, torch.tensor([[0.0, 2.0], [5.0, -2.0]]), atol=1e-6, rtol=0)
    before = norm.mean.clone()
    norm(torch.randn(10, 2))  # forward never changes the statistics (frozen outside update)
    assert torch.equal(before, norm.mean)


def test_running_norm_skip_passes_features_through_and_saves_nothing_new():
    rng = np.random.default_rng(1)
    norm = RunningNorm(4, skip=[1, 3])
    plain = RunningNorm(4)
    for n in (5, 300):
        x = torch.as_tensor(rng.normal(3.0, 2.0, size=(n, 4)))
        norm.update(x)
        plain.update(x)
    np.testing.assert_array_equal(norm.mean.numpy()[[1, 3]], [0.0, 0.0])
    np.testing.assert_array_equal(norm.var.numpy()[[1, 3]], [1.0, 1.0])
    np.testing.assert_array_equal(norm.mean.numpy()[[0, 2]], plain.mean.numpy()[[0, 2]])
    np.testing.assert_array_equal(norm.var.numpy()[[0, 2]], plain.var.numpy()[[0, 2]])
    y = norm(torch.tensor([[0.0, 0.7, 0.0, -20.0]]))
    assert y[0, 1].item() == pytest.approx(0.7) and y[0, 3].item() == -10.0  # clipped only
    assert set(norm.state_dict()) == {"mean", "var", "count"}
    with pytest.raises(ValueError, match=r"skip indices \[4\] are not features"):
        RunningNorm(4, skip=[4])


def test_running_norm_skip_std_divides_skipped_features_by_fixed_spreads():
    """``skip_std`` follows the order of ``skip`` (given unsorted here) and survives updates."""
    norm = RunningNorm(4, skip=[3, 1], skip_std=[0.5, 0.1])
    norm.update(torch.as_tensor(np.random.default_rng(2).normal(3.0, 2.0, size=(50, 4))))
    np.testing.assert_array_equal(norm.mean.numpy()[[1, 3]], [0.0, 0.0])
    np.testing.assert_allclose(norm.var.numpy()[[1, 3]], [0.01, 0.25], rtol=1e-12)
    y = norm(torch.tensor([[0.0, 0.05, 0.0, -1.0]], dtype=torch.float64))
    np.testing.assert_allclose(y[0, [1, 3]].numpy(), [0.5, -2.0], rtol=1e-6)
    loaded = RunningNorm(4)  # as load_policy rebuilds it: the spreads travel in the state_dict
    loaded.load_state_dict(norm.state_dict())
    assert torch.equal(loaded(y), norm(y))
    with pytest.raises(ValueError, match="one finite value > 0 per skip index"):
        RunningNorm(4, skip=[1, 3], skip_std=[0.5])
    with pytest.raises(ValueError, match="one finite value > 0 per skip index"):
        RunningNorm(4, skip=[1], skip_std=[0.0])
    with pytest.raises(ValueError, match="repeat an index"):
        RunningNorm(4, skip=[1, 1])


def test_q_ensemble_members_are_independent_mlps():
    torch.manual_seed(3)
    q = QEnsemble(5, 2, hidden=(16, 16), n_critics=2)
    obs, act = torch.randn(32, 5), torch.randn(32, 2)
    out = q(obs, act)
    assert out.shape == (2, 32)
    x = torch.cat([obs, act], -1)
    for k in range(2):
        h = x
        for i, layer in enumerate(q.layers):
            h = h @ layer.weight[k] + layer.bias[k]
            if i < len(q.layers) - 1:
                h = torch.relu(h)
        torch.testing.assert_close(out[k], h.squeeze(-1))
    # A loss on member 0 gives no gradient to member 1.
    out[0].sum().backward()
    assert all(layer.weight.grad[1].abs().sum() == 0 for layer in q.layers)
    assert all(layer.weight.grad[0].abs().sum() > 0 for layer in q.layers)


def test_ensemble_linear_init_matches_nn_linear_range():
    torch.manual_seed(0)
    layer = EnsembleLinear(2, 64, 32)
    bound = 1 / math.sqrt(64)
    assert layer.weight.abs().max() <= bound and layer.weight.abs().max() > 0.9 * bound
    assert not torch.equal(layer.weight[0], layer.weight[1])


def _quadruped_joint_limits() -> tuple[np.ndarray, np.ndarray]:
    """The quadruped actor's bounds with ``actor_bounds=joint_limits`` (float32, as trained)."""
    from envs.interface import QUADRUPED_INTERFACE

    arr = QUADRUPED_INTERFACE.arrays()
    low = np.maximum(arr["joint_low_rad"], arr["action_low_rad"]).astype(np.float32)
    high = np.minimum(arr["joint_high_rad"], arr["action_high_rad"]).astype(np.float32)
    return low, high


@pytest.mark.parametrize("cls", [DeterministicActor, SquashedGaussianActor])
def test_saturated_actions_never_leave_the_bounds_by_a_rounding(cls):
    """At |u| = 50, tanh(u) = +-1 and float32 ``center + half * tanh(u)`` misses ``low`` by
    ~6e-8 rad on 4 of the quadruped's 12 joints; the squash must land exactly in the bounds."""
    low, high = _quadruped_joint_limits()
    actor = cls(45, low, high, hidden=(16,))
    u = torch.tensor([[-50.0] * 12, [50.0] * 12, [-1e4] * 12])
    a = actor.squash(u)
    lo, hi = torch.as_tensor(low), torch.as_tensor(high)
    assert (a >= lo).all() and (a <= hi).all(), (a[0] - lo, a[1] - hi)
    # Saturation reaches the bounds: low exactly, high to within one float32 rounding.
    assert torch.equal(a[0], lo) and torch.equal(a[2], lo)
    assert (hi - a[1]).max() <= 5e-7
    # The same through the actors' outputs: a saturating last layer.
    last = actor.net[-1] if cls is DeterministicActor else actor.head
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(-50.0)
    obs = torch.randn(8, 45)
    outs = [actor.deterministic(obs)] + ([] if cls is DeterministicActor else [actor(obs)[0]])
    for out in outs:
        assert torch.equal(out, lo.expand(8, 12)), out[0] - lo


@pytest.mark.parametrize("n_critics", [1, 2])
def test_q1_is_the_first_member_alone(n_critics):
    torch.manual_seed(4)
    q = QEnsemble(5, 3, hidden=(16, 16), n_critics=n_critics)
    obs, act = torch.randn(64, 5), torch.rand(64, 3) * 2 - 1
    q1 = q.q1(obs, act)
    assert q1.shape == (64,)
    torch.testing.assert_close(q1, q(obs, act)[0])
    q1.sum().backward()  # gradients reach member 0 only
    assert all(layer.weight.grad[0].abs().sum() > 0 for layer in q.layers)
    assert all(layer.weight.grad[1:].abs().sum() == 0 for layer in q.layers)


def test_one_path_from_raw_obs_to_a_numpy_action():
    """deterministic_action is actor.deterministic(obs_norm(obs)) as float32 numpy, for one
    observation or a batch, and the only copy of that path in the code base."""
    import re
    from pathlib import Path

    from policies.networks import deterministic_action

    torch.manual_seed(5)
    actor = SquashedGaussianActor(6, LOW, HIGH, hidden=(16,))
    norm = RunningNorm(6)
    norm.update(torch.randn(100, 6, dtype=torch.float64) * 3 + 1)
    obs = np.random.default_rng(0).normal(1.0, 3.0, (5, 6))  # float64, raw
    batch = deterministic_action(actor, norm, obs)
    single = deterministic_action(actor, norm, obs[2])
    with torch.no_grad():
        ref = actor.deterministic(norm(torch.as_tensor(obs, dtype=torch.float32))).numpy()
    assert batch.dtype == np.float32 and batch.shape == (5, 4) and single.shape == (4,)
    np.testing.assert_array_equal(batch, ref)  # the same ops on the same (5, 6) input
    # One row is another matmul kernel than five (1 ulp apart on an Intel Xeon, 4.8e-7): a few
    # float32 ulp of actions up to |10| (1 ulp = 9.5e-7 there); a wrong path is off by >1e-3.
    np.testing.assert_allclose(single, ref[2], rtol=1e-6, atol=1e-6)
    # No other module writes the path again: actor.deterministic(<normalizer>(...)).
    root = Path(__file__).resolve().parents[2]
    copy = re.compile(r"\.deterministic\(\s*[\w.]*norm[\w.]*\(")
    copies = [str(p.relative_to(root)) for d in ("policies", "robotac", "scripts", "deploy")
              for p in sorted((root / d).rglob("*.py"))
              if p.name != "networks.py" and copy.search(p.read_text())]
    assert copies == []


@pytest.mark.parametrize("n_critics", [1, 2])
def test_layer_norm_critic_normalises_each_hidden_layer_of_each_member(n_critics):
    torch.manual_seed(5)
    q = QEnsemble(5, 3, hidden=(16, 8), n_critics=n_critics, layer_norm=True)
    with torch.no_grad():
        for norm in q.norms:  # non-trivial affine parameters, different per member
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.5, 0.5)
    obs, action = torch.randn(32, 5), torch.rand(32, 3) * 2 - 1
    out = q(obs, action)
    assert out.shape == (n_critics, 32)
    for k in range(n_critics):  # reference: member k as a plain Linear/LayerNorm/ReLU stack
        x = torch.cat([obs, action], dim=-1)
        for i, layer in enumerate(q.layers):
            x = x @ layer.weight[k] + layer.bias[k]
            if i < len(q.layers) - 1:
                ln = torch.nn.LayerNorm(x.shape[-1])
                ln.weight.data, ln.bias.data = q.norms[i].weight[k, 0], q.norms[i].bias[k, 0]
                x = torch.relu(ln(x))
        torch.testing.assert_close(out[k], x.squeeze(-1), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(q.q1(obs, action), out[0], rtol=1e-5, atol=1e-5)
    # Scaling the input of a normalised layer by 100 leaves the member's features bounded.
    big = q(obs * 100, action)
    assert big.abs().max() < 50 * (out.abs().max() + 1)
    assert len(list(QEnsemble(5, 3, hidden=(16, 8)).parameters())) + 2 * 2 == len(
        list(q.parameters()))
