"""CAPS (Mysore et al., ICRA 2021): the actor's temporal and spatial smoothness terms, off by
default (the update unchanged) and doing what the paper's L_T and L_S say when on."""

import dataclasses

import numpy as np
import pytest
import torch

from robotac.algos import make_algo
from robotac.buffer import Batch
from robotac.config import ConfigError, TrainConfig, resolved, validate

# Update math against hand-written references: every test here passes or fails on torch kernels.
pytestmark = pytest.mark.numeric

LOW = np.array([-1.0, 0.0, 2.0], dtype=np.float32)
HIGH = np.array([1.0, 0.5, 4.0], dtype=np.float32)
OBS_DIM = 4
ALGOS = ["sac", "td3", "ddpg", "crossq"]


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread, as training runs (``num_threads`` 1): on a busy 2-core machine two
    threads made these tiny updates about 15x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _cfg(name: str, **kw) -> TrainConfig:
    extra = {"critic_hidden": (32, 32), "batch_renorm_warmup": 0} if name == "crossq" else {}
    return resolved(TrainConfig(env_id="x", algo=name, hidden=(32, 32), **extra, **kw))


def _algo(name: str, **kw):
    torch.manual_seed(0)
    return make_algo(_cfg(name, **kw), OBS_DIM, LOW, HIGH, num_envs=1)


def _batch(n=64, seed=0, step=0.5):
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(n, OBS_DIM, generator=g)
    action = torch.as_tensor(LOW) + torch.rand(n, 3, generator=g) * torch.as_tensor(HIGH - LOW)
    next_obs = obs + step * torch.randn(n, OBS_DIM, generator=g)
    return Batch(obs, action, torch.randn(n, generator=g), next_obs, torch.zeros(n))


def _params(algo) -> list[torch.Tensor]:
    return [p.detach().clone() for m in algo.modules().values() for p in m.parameters()]


def _updated(algo, n: int) -> tuple[list[torch.Tensor], torch.Tensor, dict]:
    """``n`` updates on fixed batches from torch seed 5: the parameters after them, torch's next
    random number (which shows any extra draw) and the last update's metrics."""
    torch.manual_seed(5)
    for i in range(n):
        metrics = algo.update(_batch(seed=i))
    return _params(algo), torch.rand(()), metrics


@pytest.mark.parametrize("name", ALGOS)
def test_caps_is_off_by_default_and_the_update_is_unchanged(name):
    """Weights 0 (the defaults): no CAPS work at all, so the update and torch's random stream are
    those of the algorithm without the option; a sigma alone changes nothing. The same updates
    with CAPS on move the actor elsewhere (the comparison can fail)."""
    cfg = TrainConfig()
    assert (cfg.caps_temporal_weight, cfg.caps_spatial_weight) == (0.0, 0.0)
    runs = {}
    for label, kw in (("default", {}), ("sigma only", {"caps_sigma": 0.7}),
                      ("on", {"caps_temporal_weight": 1.0, "caps_spatial_weight": 1.0})):
        algo = _algo(name, **kw)
        assert algo.caps_enabled == (label == "on")
        runs[label] = _updated(algo, 6)
    for a, b in zip(runs["default"][0], runs["sigma only"][0], strict=True):
        assert torch.equal(a, b)
    assert torch.equal(runs["default"][1], runs["sigma only"][1])  # no extra random draws
    assert "losses/caps_temporal" not in runs["default"][2]
    assert "losses/caps_temporal" in runs["on"][2] and "losses/caps_spatial" in runs["on"][2]
    actor_default = _params(_algo(name))  # parameter order: the actor's come first
    n_actor = sum(1 for _ in _algo(name).actor.parameters())
    assert len(actor_default) > n_actor
    assert any(not torch.equal(a, b) for a, b in
               zip(runs["default"][0][:n_actor], runs["on"][0][:n_actor], strict=True))


@pytest.mark.parametrize("name", ALGOS)
def test_caps_loss_is_the_papers_l_t_and_l_s_on_the_unit_action(name):
    """``L_T = mean ||pi(s) - pi(s')||_2``, ``L_S = mean ||pi(s) - pi(s + sigma eps)||_2`` with
    ``pi`` the deterministic action in [-1, 1] units, weighted and summed."""
    algo = _algo(name, caps_temporal_weight=0.3, caps_spatial_weight=2.0, caps_sigma=0.2)
    batch = _batch()
    torch.manual_seed(11)
    total, l_t, l_s = algo.caps_loss(batch)
    torch.manual_seed(11)
    eps = torch.randn_like(batch.obs)
    with torch.no_grad():
        det = algo.actor.deterministic(batch.obs)
        unit = algo.actor.to_unit(det)
        nxt = algo.actor.to_unit(algo.actor.deterministic(batch.next_obs))
        pert = algo.actor.to_unit(algo.actor.deterministic(batch.obs + 0.2 * eps))
    assert bool((unit.abs() <= 1).all())
    # to_unit(squash(u)) is tanh(u) up to float rounding of the affine maps.
    torch.testing.assert_close(algo.unit_policy(batch.obs).detach(), unit, atol=1e-5, rtol=0)
    ref_t = (unit - nxt).norm(dim=1).mean()
    ref_s = (unit - pert).norm(dim=1).mean()
    torch.testing.assert_close(l_t.detach(), ref_t, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(l_s.detach(), ref_s, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(total.detach(), 0.3 * ref_t + 2.0 * ref_s, atol=1e-5, rtol=1e-5)
    assert ref_t > 0 and ref_s > 0


def test_one_weight_alone_computes_only_its_term():
    algo = _algo("sac", caps_temporal_weight=1.0)
    total, l_t, l_s = algo.caps_loss(_batch())
    assert l_s.item() == 0.0 and l_t.item() > 0 and total.item() == pytest.approx(l_t.item())
    algo = _algo("td3", caps_spatial_weight=1.0)
    total, l_t, l_s = algo.caps_loss(_batch())
    assert l_t.item() == 0.0 and l_s.item() > 0 and total.item() == pytest.approx(l_s.item())


def test_the_distance_has_a_finite_gradient_where_two_actions_coincide():
    """Identical observations give identical actions: ||0|| has no derivative; the term must
    not turn the actor's gradient into NaN."""
    algo = _algo("sac", caps_temporal_weight=1.0)
    b = _batch()
    same = Batch(b.obs, b.action, b.reward, b.obs.clone(), b.terminated)
    total, l_t, _ = algo.caps_loss(same)
    # pi(s) and pi(s') are rows of one batched forward pass; under some matmul kernels (MKL's
    # AVX2 path) a row's result depends on its position in the batch by float32 ulps (~1e-7 per
    # action entry), so the distance of two identical observations is ~1e-9, not exactly 0.
    assert l_t.item() == pytest.approx(0.0, abs=1e-6)
    total.backward()
    assert all(torch.isfinite(p.grad).all() for p in algo.actor.parameters() if p.grad is not None)


@pytest.mark.parametrize("name", ALGOS)
def test_caps_makes_the_actor_smoother_on_a_toy_batch(name):
    """The same actor updates on the same batches, with and without CAPS: with it, the actor's
    outputs at consecutive and at nearby states move closer together."""

    def distances(algo, batch):
        with torch.no_grad():
            p = algo.unit_policy(batch.obs)
            d_t = (p - algo.unit_policy(batch.next_obs)).norm(dim=1).mean().item()
            d_s = (p - algo.unit_policy(batch.obs + 0.3 * torch.randn_like(batch.obs))).norm(
                dim=1).mean().item()
        return d_t, d_s

    probe = _batch(n=256, seed=99)
    out = {}
    for label, w in (("off", 0.0), ("on", 5.0)):
        algo = _algo(name, caps_temporal_weight=w, caps_spatial_weight=w, caps_sigma=0.3,
                     policy_delay=1, actor_lr=3e-3)
        torch.manual_seed(2)
        for i in range(40):
            algo.update(_batch(seed=i))
        torch.manual_seed(3)
        out[label] = distances(algo, probe)
    assert out["on"][0] < 0.5 * out["off"][0]
    assert out["on"][1] < 0.5 * out["off"][1]


@pytest.mark.parametrize("field,value,match", [
    ("caps_temporal_weight", -0.1, "caps_temporal_weight=-0.1 is invalid: must be a finite"),
    ("caps_spatial_weight", float("nan"), "caps_spatial_weight=nan is invalid"),
    ("caps_sigma", -1.0, "caps_sigma=-1.0 is invalid: .*normalized observation"),
])
def test_caps_settings_are_checked(field, value, match):
    with pytest.raises(ConfigError, match=match):
        validate(resolved(TrainConfig(env_id="Pendulum-v1", **{field: value})))


def test_a_spatial_term_without_noise_is_refused():
    cfg = resolved(TrainConfig(env_id="Pendulum-v1", caps_spatial_weight=0.5, caps_sigma=0.0))
    with pytest.raises(ConfigError, match="caps_sigma=0.0 is invalid: is 0 with "
                                          "caps_spatial_weight > 0"):
        validate(cfg)
    # The temporal term alone needs no noise; the defaults validate.
    validate(dataclasses.replace(cfg, caps_spatial_weight=0.0, caps_temporal_weight=0.5))
    validate(resolved(TrainConfig(env_id="Pendulum-v1")))


@pytest.mark.parametrize("name", ["sac", "td3"])
def test_caps_ramp_is_off_before_its_start_and_scales_the_weights_up_to_full(name):
    """``caps_ramp_steps``: before the start the actor's update and torch's random stream are
    those without CAPS; between start and full the term is the weights scaled linearly; at and
    after full it is the unramped term."""
    on = {"caps_temporal_weight": 0.6, "caps_spatial_weight": 0.4, "caps_sigma": 0.2}
    ramp = {**on, "caps_ramp_steps": (100, 300)}

    # Before the start: the update without CAPS (the same code: nothing computed, no draws).
    runs = {}
    for label, kw in (("off", {}), ("ramp", ramp)):
        algo = _algo(name, **kw)
        algo.set_training_step(50)
        assert algo.caps_scale == (0.0 if label == "ramp" else 1.0)
        runs[label] = _updated(algo, 4)
    for a, b in zip(runs["off"][0], runs["ramp"][0], strict=True):
        assert torch.equal(a, b)
    assert torch.equal(runs["off"][1], runs["ramp"][1])
    assert "losses/caps_temporal" not in runs["ramp"][2]

    # The term at a step: the ramp's algo against unramped weights times the expected scale.
    def term(algo, batch):
        torch.manual_seed(9)  # the same spatial noise for both
        return float(algo._with_caps(torch.zeros(()), batch).detach())

    batch = _batch(seed=7)
    ramped = _algo(name, **ramp)
    for step, scale in ((100, 0.0), (150, 0.25), (200, 0.5), (300, 1.0), (10**6, 1.0)):
        ramped.set_training_step(step)
        assert ramped.caps_scale == pytest.approx(scale)
        plain = _algo(name, caps_temporal_weight=0.6 * scale, caps_spatial_weight=0.4 * scale,
                      caps_sigma=0.2)
        expected = term(plain, batch) if scale > 0 else 0.0
        assert term(ramped, batch) == pytest.approx(expected, rel=1e-5, abs=1e-7)
    assert term(ramped, batch) > 0.0  # the comparison is not of two zeros


@pytest.mark.parametrize("ramp,match", [
    ((300, 100), "caps_ramp_steps=.* is invalid: must be two integers 0 <= start < full"),
    ((100,), "caps_ramp_steps=.* is invalid: must be two integers"),
    ((0.5, 100), "caps_ramp_steps=.* is invalid: must be two integers"),
    ((-1, 100), "caps_ramp_steps=.* is invalid: must be two integers"),
])
def test_caps_ramp_settings_are_checked(ramp, match):
    cfg = TrainConfig(env_id="Pendulum-v1", caps_temporal_weight=0.5, caps_ramp_steps=ramp)
    with pytest.raises(ConfigError, match=match):
        validate(resolved(cfg))


def test_a_caps_ramp_without_caps_weights_is_refused():
    with pytest.raises(ConfigError, match="caps_ramp_steps=.* is invalid: is set but both CAPS "
                                          "weights are 0"):
        validate(resolved(TrainConfig(env_id="Pendulum-v1", caps_ramp_steps=(0, 10))))
