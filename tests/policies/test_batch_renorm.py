"""Batch Renormalization (Ioffe 2017, Algorithm 1) against its definition on synthetic data."""

import pytest
import torch

from policies.batch_renorm import BatchRenorm, BatchRenormQEnsemble

# Float comparisons against a float64 reference written from the paper.
pytestmark = pytest.mark.numeric

EPS = 1e-3


def _data(b=64, f=5, seed=0) -> torch.Tensor:
    """``(b, f)`` float32 with per-feature offsets and scales far from zero mean, unit std."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, f, generator=g) * torch.linspace(0.5, 4.0, f)
            + torch.linspace(-3.0, 3.0, f))


def _reference(x, mean, var, weight, bias, renorm, r_max=3.0, d_max=5.0):
    """Algorithm 1 of Ioffe 2017 in float64, written out: output and the clipped r, d."""
    x = x.double()
    mu_b = x.mean(0)
    sigma_b = torch.sqrt(x.var(0, correction=0) + EPS)
    sigma = torch.sqrt(var.double() + EPS)
    if renorm:
        r = (sigma_b / sigma).clamp(1 / r_max, r_max).detach()
        d = ((mu_b - mean.double()) / sigma).clamp(-d_max, d_max).detach()
    else:
        r, d = torch.ones_like(mu_b), torch.zeros_like(mu_b)
    y = weight.double() * ((x - mu_b) / sigma_b * r + d) + bias.double()
    return y, r, d


def _set(brn: BatchRenorm, mean, var, weight=None, bias=None):
    with torch.no_grad():
        brn.running_mean.copy_(mean)
        brn.running_var.copy_(var)
        if weight is not None:
            brn.weight.copy_(weight)
            brn.bias.copy_(bias)


def test_warmup_is_batch_norm_and_moves_the_running_statistics():
    brn = BatchRenorm(5, momentum=0.1, warmup_steps=3).train()
    _set(brn, torch.full((5,), 7.0), torch.full((5,), 50.0),  # statistics far off: r, d clip
         torch.linspace(0.5, 2.0, 5), torch.linspace(-1.0, 1.0, 5))
    mean, var = brn.running_mean.clone(), brn.running_var.clone()
    for step in range(3):
        x = _data(seed=step)
        y = brn(x)
        ref, _, _ = _reference(x, mean, var, brn.weight, brn.bias, renorm=False)
        torch.testing.assert_close(y.double(), ref, atol=1e-5, rtol=1e-5)
        # running <- running + momentum (batch - running), the variance unbiased
        mean = mean + 0.1 * (x.mean(0) - mean)
        var = var + 0.1 * (x.var(0) - var)
        torch.testing.assert_close(brn.running_mean, mean)
        torch.testing.assert_close(brn.running_var, var)
        assert int(brn.steps) == step + 1
    # Step 4: past the warm-up, the same off statistics now correct the output.
    x = _data(seed=3)
    ref, r, d = _reference(x, mean, var, brn.weight, brn.bias, renorm=True)
    assert (r != 1).any() and (d != 0).any()
    torch.testing.assert_close(brn(x).double(), ref, atol=1e-5, rtol=1e-5)


def test_r_and_d_are_clipped_to_r_max_and_d_max_per_feature():
    """Feature 0: sigma_B/sigma = 10 -> r = 3; feature 1: 1/10 -> 1/3; feature 2: d = +40 -> 5;
    feature 3: d = -40 -> -5; feature 4: within both clips."""
    x = _data(b=256, f=5, seed=1)
    mu_b, var_b = x.mean(0), x.var(0, correction=0)
    sd_b = torch.sqrt(var_b + EPS)
    run_sd = sd_b.clone()
    run_sd[0], run_sd[1] = sd_b[0] / 10, sd_b[1] * 10
    run_mean = mu_b.clone()
    run_mean[2], run_mean[3] = mu_b[2] - 40 * sd_b[2], mu_b[3] + 40 * sd_b[3]
    run_mean[4] = mu_b[4] - 0.5 * sd_b[4]
    brn = BatchRenorm(5, warmup_steps=0).train()
    _set(brn, run_mean, run_sd**2 - EPS)
    ref, r, d = _reference(x, brn.running_mean, brn.running_var, brn.weight, brn.bias, True)
    torch.testing.assert_close(r[:2].float(), torch.tensor([3.0, 1 / 3]))
    torch.testing.assert_close(d[2:4].float(), torch.tensor([5.0, -5.0]))
    assert abs(float(r[4]) - 1) < 1e-4 and abs(float(d[4]) - 0.5) < 1e-4
    torch.testing.assert_close(brn(x).double(), ref, atol=1e-5, rtol=1e-5)


def test_without_clipping_training_output_equals_eval_output_but_gradients_differ():
    """Where no clip binds, r and d make the training output that of the running statistics
    (Ioffe sec. 3); the gradient still flows through the batch statistics (r, d constants)."""
    x = _data(seed=2)
    brn = BatchRenorm(5, warmup_steps=0)
    _set(brn, x.mean(0) + 0.2, x.var(0) * 1.3, torch.linspace(0.5, 2.0, 5),
         torch.linspace(-1.0, 1.0, 5))
    before = {k: v.clone() for k, v in brn.state_dict().items()}
    xe = x.clone().requires_grad_(True)
    y_eval = brn.eval()(xe)
    assert all(torch.equal(before[k], v) for k, v in brn.state_dict().items())  # eval: frozen
    xt = x.clone().requires_grad_(True)
    y_train = brn.train()(xt)
    torch.testing.assert_close(y_train, y_eval, atol=1e-5, rtol=1e-5)
    # Gradient of sum(w_k * y_k) against the reference with r, d detached (float64 autograd).
    w = torch.randn(5)
    (y_train * w).sum().backward()
    xr = x.double().requires_grad_(True)
    ref, _, _ = _reference(xr, before["running_mean"], before["running_var"], brn.weight.detach(),
                           brn.bias.detach(), renorm=True)
    (ref * w.double()).sum().backward()
    torch.testing.assert_close(xt.grad.double(), xr.grad, atol=1e-5, rtol=1e-4)
    (y_eval * w).sum().backward()
    assert not torch.allclose(xt.grad, xe.grad, atol=1e-3)


def test_ensemble_members_normalize_with_their_own_statistics():
    brn = BatchRenorm(5, members=2, warmup_steps=1)
    single = [BatchRenorm(5, warmup_steps=1) for _ in range(2)]
    with torch.no_grad():
        brn.weight.copy_(torch.randn(2, 1, 5))
        brn.bias.copy_(torch.randn(2, 1, 5))
        for k, s in enumerate(single):
            s.weight.copy_(brn.weight[k, 0])
            s.bias.copy_(brn.bias[k, 0])
    for step in range(3):  # warm-up, then renormalized
        x = torch.stack([_data(seed=10 + step), 2 * _data(seed=20 + step) + 1])
        y = brn(x)
        for k, s in enumerate(single):
            torch.testing.assert_close(y[k], s(x[k]))
            torch.testing.assert_close(brn.running_var[k, 0], s.running_var)
    assert set(brn.state_dict()) == {"weight", "bias", "running_mean", "running_var", "steps"}


def test_training_needs_a_batch_and_bad_settings_are_refused():
    with pytest.raises(ValueError, match="batch of >= 2"):
        BatchRenorm(3).train()(torch.zeros(1, 3))
    BatchRenorm(3).eval()(torch.zeros(1, 3))  # one row is fine in eval mode
    with pytest.raises(ValueError, match="r_max >= 1"):
        BatchRenorm(3, r_max=0.5)


def test_critic_has_a_batch_renorm_before_every_linear_layer():
    q = BatchRenormQEnsemble(4, 2, hidden=(16, 8), n_critics=2, warmup_steps=0)
    assert [n.num_features for n in q.norms] == [6, 16, 8]
    assert [tuple(layer.weight.shape) for layer in q.layers] == [(2, 6, 16), (2, 16, 8),
                                                                 (2, 8, 1)]
    obs, act = torch.randn(32, 4), torch.rand(32, 2) * 2 - 1
    assert q.train()(obs, act).shape == (2, 32)
    assert all(int(n.steps) == 1 for n in q.norms)
    assert q.eval()(obs[:1], act[:1]).shape == (2, 1)
    assert all(int(n.steps) == 1 for n in q.norms)
