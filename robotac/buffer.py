"""Replay buffer of raw transitions in preallocated tensors (DESIGN.md contract 4).

Observations are stored raw and normalized when a batch is sampled, with the *current* running
statistics (as Stable-Baselines3's ``VecNormalize`` + buffer do), so old transitions are never
stuck with stale statistics. ``terminated`` and ``truncated`` are stored apart: the TD target
bootstraps through truncation (a time limit is not a property of the MDP; Pardo et al. 2018, "Time
Limits in Reinforcement Learning") and not through termination.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from policies.networks import RunningNorm

__all__ = ["Batch", "BatchMirror", "ReplayBuffer"]


class Batch(NamedTuple):
    """A sampled batch. Shapes: ``obs, next_obs (B, obs_dim)`` normalized float32,
    ``action (B, act_dim)`` env units, ``reward (B,)``, ``terminated (B,)`` float32 in {0, 1}."""

    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor


class BatchMirror:
    """Left-right mirror of raw observations and env-unit actions, on a device.

    The torch form of :class:`envs.interface.MirrorMaps` (its index and sign arrays), applied to
    sampled batches for symmetry data augmentation (``TrainConfig.symmetry_augmentation``).

    Args:
        maps: An object with ``obs_index``, ``obs_sign``, ``action_index``, ``action_sign`` and
            ``action_center`` arrays (:func:`envs.interface.mirror_maps`).
        device: Device of the batches.
    """

    def __init__(self, maps: object, device: str | torch.device):
        def t(name: str, dtype: torch.dtype) -> torch.Tensor:
            return torch.as_tensor(np.asarray(getattr(maps, name)), dtype=dtype, device=device)

        self.obs_index, self.obs_sign = t("obs_index", torch.long), t("obs_sign", torch.float32)
        self.action_index = t("action_index", torch.long)
        self.action_sign = t("action_sign", torch.float32)
        self.action_center = t("action_center", torch.float32)

    def obs(self, obs: torch.Tensor) -> torch.Tensor:
        """``(B, obs_dim)`` raw observations -> their mirror images."""
        return obs[:, self.obs_index] * self.obs_sign

    def action(self, action: torch.Tensor) -> torch.Tensor:
        """``(B, act_dim)`` actions in env units -> their mirror images."""
        c = self.action_center
        return c + self.action_sign * (action[:, self.action_index] - c[self.action_index])


class ReplayBuffer:
    """Ring buffer of ``capacity`` transitions held as float32 tensors on ``device``.

    Args:
        capacity: Maximum number of transitions; the oldest are overwritten first.
        obs_dim: Observation size.
        action_dim: Action size.
        device: Device of the storage and of sampled batches.

    Raises:
        ValueError: if a size is not positive.
    """

    def __init__(self, capacity: int, obs_dim: int, action_dim: int, device: str | torch.device):
        if capacity < 1 or obs_dim < 1 or action_dim < 1:
            raise ValueError(
                f"replay buffer sizes must be >= 1: capacity={capacity}, obs_dim={obs_dim}, "
                f"action_dim={action_dim}"
            )
        self.capacity = int(capacity)
        self.device = torch.device(device)
        f32 = {"dtype": torch.float32, "device": self.device}
        self.obs = torch.zeros(self.capacity, obs_dim, **f32)
        self.next_obs = torch.zeros(self.capacity, obs_dim, **f32)
        self.action = torch.zeros(self.capacity, action_dim, **f32)
        self.reward = torch.zeros(self.capacity, **f32)
        self.terminated = torch.zeros(self.capacity, **f32)
        self.truncated = torch.zeros(self.capacity, **f32)
        self.ptr = 0
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(
        self,
        obs: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        next_obs: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
    ) -> None:
        """Store one transition per env.

        Args:
            obs: ``(n_envs, obs_dim)`` raw observations.
            action: ``(n_envs, act_dim)`` actions in env units.
            reward: ``(n_envs,)``.
            next_obs: ``(n_envs, obs_dim)`` raw next observations (the *final* observation of an
                episode that ended, not the reset observation).
            terminated: ``(n_envs,)`` bool, episode reached a terminal state.
            truncated: ``(n_envs,)`` bool, episode was cut (time limit).
        """
        n = len(reward)
        if n > self.capacity:
            raise ValueError(f"cannot add {n} transitions to a buffer of capacity {self.capacity}")
        if self.ptr + n <= self.capacity:
            idx: slice | torch.Tensor = slice(self.ptr, self.ptr + n)
        else:
            idx = ((self.ptr + torch.arange(n)) % self.capacity).to(self.device)

        def t(x: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(np.asarray(x, dtype=np.float32)).to(self.device)

        self.obs[idx] = t(obs).reshape(n, -1)
        self.next_obs[idx] = t(next_obs).reshape(n, -1)
        self.action[idx] = t(action).reshape(n, -1)
        self.reward[idx] = t(reward).reshape(n)
        self.terminated[idx] = t(terminated).reshape(n)
        self.truncated[idx] = t(truncated).reshape(n)
        self.ptr = (self.ptr + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int, obs_norm: RunningNorm | None = None,
               mirror: BatchMirror | None = None) -> Batch:
        """Uniformly sample ``batch_size`` transitions (with replacement), normalized.

        Indices come from the global torch generator of the buffer's device, so a seeded run
        samples the same batches.

        Args:
            batch_size: Number of transitions.
            obs_norm: Normalizer applied to ``obs`` and ``next_obs`` with its current statistics;
                ``None`` returns raw observations.
            mirror: When given, the batch is followed by its mirror image (raw observations and
                actions mirrored, then normalized; same rewards and terminations): ``2 *
                batch_size`` transitions.

        Raises:
            RuntimeError: if the buffer is empty.
        """
        if self.size == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        idx = torch.randint(0, self.size, (batch_size,), device=self.device)
        obs, next_obs, action = self.obs[idx], self.next_obs[idx], self.action[idx]
        reward, terminated = self.reward[idx], self.terminated[idx]
        if mirror is not None:
            obs = torch.cat((obs, mirror.obs(obs)))
            next_obs = torch.cat((next_obs, mirror.obs(next_obs)))
            action = torch.cat((action, mirror.action(action)))
            reward, terminated = reward.repeat(2), terminated.repeat(2)
        if obs_norm is not None:
            obs, next_obs = obs_norm(obs), obs_norm(next_obs)
        return Batch(obs, action, reward, next_obs, terminated)

    def state_dict(self) -> dict:
        """Stored transitions (only the filled part) and the write position, on CPU."""
        n = self.size
        return {
            "capacity": self.capacity,
            "ptr": self.ptr,
            "size": n,
            **{
                k: getattr(self, k)[:n].cpu().clone()
                for k in ("obs", "next_obs", "action", "reward", "terminated", "truncated")
            },
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore from :meth:`state_dict`.

        Raises:
            ValueError: if capacity or shapes differ from this buffer's.
        """
        if state["capacity"] != self.capacity:
            raise ValueError(
                f"replay buffer capacity differs: checkpoint {state['capacity']}, "
                f"config {self.capacity}"
            )
        n = int(state["size"])
        for k in ("obs", "next_obs", "action", "reward", "terminated", "truncated"):
            dst = getattr(self, k)
            src = state[k]
            if tuple(src.shape[1:]) != tuple(dst.shape[1:]) or src.shape[0] != n:
                raise ValueError(
                    f"replay buffer field {k} has shape {tuple(src.shape)}, expected "
                    f"({n}, {', '.join(map(str, dst.shape[1:]))})"
                )
            dst[:n] = src.to(self.device)
        self.size = n
        self.ptr = int(state["ptr"])
