"""Replay buffer: raw storage, normalization at sample time, terminated vs truncated, save/load."""

import numpy as np
import pytest
import torch

from policies.networks import RunningNorm
from robotac.buffer import ReplayBuffer


def _fill(buf: ReplayBuffer, steps: int, n_envs: int, start: int = 0) -> None:
    for t in range(start, start + steps):
        ids = np.arange(n_envs)
        obs = np.stack([np.full(3, 100 * t + i) for i in ids]).astype(np.float32)
        buf.add(obs, np.full((n_envs, 2), t), np.full(n_envs, t), obs + 1,
                terminated=ids % 2 == 0, truncated=ids % 2 == 1)


def test_stores_several_envs_per_step_and_wraps_around():
    buf = ReplayBuffer(10, obs_dim=3, action_dim=2, device="cpu")
    _fill(buf, steps=4, n_envs=3)  # 12 transitions into 10 slots
    assert len(buf) == 10 and buf.ptr == 2
    # slots 0, 1 were overwritten by the last step's envs 1 and 2
    assert buf.obs[0, 0].item() == 301 and buf.obs[1, 0].item() == 302
    assert buf.obs[2, 0].item() == 2  # oldest surviving: step 0, env 2
    assert buf.obs[9, 0].item() == 300
    assert buf.terminated[2].item() == 1 and buf.truncated[2].item() == 0  # env 2
    assert buf.terminated[4].item() == 0 and buf.truncated[4].item() == 1  # env 1
    np.testing.assert_array_equal(buf.next_obs[:10].numpy(), buf.obs[:10].numpy() + 1)


def test_observations_are_normalized_with_current_statistics():
    buf = ReplayBuffer(100, obs_dim=3, action_dim=2, device="cpu")
    _fill(buf, steps=5, n_envs=2)
    norm = RunningNorm(3, clip=1e9)
    norm.update(torch.full((4, 3), 50.0) + torch.arange(4.0).unsqueeze(-1))
    torch.manual_seed(0)
    b1 = buf.sample(64, norm)
    raw = norm.mean.float() + b1.obs * torch.sqrt(norm.var.float() + norm.eps)
    assert set(raw[:, 0].round().tolist()) <= set(buf.obs[:10, 0].tolist())
    # Same indices, new statistics -> different normalized values from the same raw data.
    norm.update(torch.full((100, 3), 1000.0))
    torch.manual_seed(0)
    b2 = buf.sample(64, norm)
    torch.testing.assert_close(b2.action, b1.action)
    assert not torch.allclose(b2.obs, b1.obs)
    torch.testing.assert_close(b2.obs, norm(buf.obs[torch.randint(0, 10, (64,),
                                                   generator=torch.Generator().manual_seed(0))]))


def test_batch_carries_terminated_not_truncated():
    buf = ReplayBuffer(8, obs_dim=3, action_dim=2, device="cpu")
    _fill(buf, steps=4, n_envs=2)
    torch.manual_seed(1)
    batch = buf.sample(256, None)
    even = (batch.obs[:, 0] % 2 == 0).float()  # env 0 terminated, env 1 truncated
    torch.testing.assert_close(batch.terminated, even)


def test_save_and_load_round_trip(tmp_path):
    buf = ReplayBuffer(10, obs_dim=3, action_dim=2, device="cpu")
    _fill(buf, steps=3, n_envs=2)
    torch.save(buf.state_dict(), tmp_path / "b.pt")
    other = ReplayBuffer(10, obs_dim=3, action_dim=2, device="cpu")
    other.load_state_dict(torch.load(tmp_path / "b.pt", weights_only=True))
    assert (other.ptr, other.size) == (buf.ptr, buf.size)
    for k in ("obs", "next_obs", "action", "reward", "terminated", "truncated"):
        assert torch.equal(getattr(other, k), getattr(buf, k))
    with pytest.raises(ValueError, match="capacity differs"):
        ReplayBuffer(11, 3, 2, "cpu").load_state_dict(buf.state_dict())


def test_empty_buffer_refuses_to_sample():
    with pytest.raises(RuntimeError, match="empty"):
        ReplayBuffer(4, 3, 2, "cpu").sample(2)


def test_a_mirrored_batch_is_mirrored_raw_then_normalized():
    from types import SimpleNamespace

    from robotac.buffer import BatchMirror

    # A 3-entry observation whose entries 0 and 1 swap and entry 2 flips; 2 actions that swap
    # about the center (1, 1).
    maps = SimpleNamespace(obs_index=[1, 0, 2], obs_sign=[1.0, 1.0, -1.0], action_index=[1, 0],
                           action_sign=[1.0, 1.0], action_center=[1.0, 1.0])
    mirror = BatchMirror(maps, "cpu")
    buf = ReplayBuffer(100, obs_dim=3, action_dim=2, device="cpu")
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(20, 3)).astype(np.float32) + [5.0, -3.0, 2.0]
    act = rng.normal(size=(20, 2)).astype(np.float32)
    buf.add(obs, act, np.arange(20.0), obs + 1, np.zeros(20, bool), np.zeros(20, bool))
    norm = RunningNorm(3, clip=1e9)
    norm.update(torch.as_tensor(obs, dtype=torch.float64))
    torch.manual_seed(0)
    b = buf.sample(8, norm, mirror)
    torch.manual_seed(0)
    idx = torch.randint(0, 20, (8,))
    raw = buf.obs[idx]
    want = norm(raw[:, [1, 0, 2]] * torch.tensor([1.0, 1.0, -1.0]))
    assert b.obs.shape == (16, 3)
    torch.testing.assert_close(b.obs[:8], norm(raw))
    torch.testing.assert_close(b.obs[8:], want)
    torch.testing.assert_close(b.action[8:], buf.action[idx][:, [1, 0]])
    torch.testing.assert_close(b.reward, buf.reward[idx].repeat(2))
