"""Batch Renormalization and CrossQ's critic built with it.

Sources:

* Ioffe 2017, "Batch Renormalization: Towards Reducing Minibatch Dependence in Batch-Normalized
  Models" (NeurIPS), Algorithm 1 (training and inference outputs), sec. 3 (the corrections
  ``r`` and ``d``) and sec. 4 (``r_max = 3``, ``d_max = 5`` after a batch-norm warm-up).
* Bhatt et al. 2024, "CrossQ: Batch Normalization in Deep Reinforcement Learning for Greater
  Sample Efficiency and Simplicity" (ICLR), sec. 3: batch normalization in the critic, whose
  statistics see current and next state-actions in one joint pass (Fig. 3), and wider critics.
* sb3-contrib's ``BatchRenorm`` (``sb3_contrib/common/torch_layers.py``, after sbx): a plain
  batch-norm warm-up of ``warmup_steps`` training batches, then the full ``r_max``/``d_max``
  clip (Ioffe relaxes the clip gradually; this module, like sb3-contrib, switches at once), and
  running *variance* (not standard deviation) averages.

No robotac, MuJoCo or env code here (DESIGN.md): ``policies/`` holds the torch modules.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from policies.networks import EnsembleLinear

__all__ = ["BatchRenorm", "BatchRenormQEnsemble"]


class BatchRenorm(nn.Module):
    """Batch Renormalization of the features (last axis) over the batch (second-to-last axis).

    Training mode (Ioffe 2017, Algorithm 1), for a batch ``x: (..., B, F)``::

        mu_B    = mean_B(x)                          sigma_B = sqrt(var_B(x) + eps)   (biased)
        sigma   = sqrt(running_var + eps)
        r       = stop_grad(clip(sigma_B / sigma, 1 / r_max, r_max))
        d       = stop_grad(clip((mu_B - running_mean) / sigma, -d_max, d_max))
        y       = weight * ((x - mu_B) / sigma_B * r + d) + bias

    During the first ``warmup_steps`` training batches ``r = 1`` and ``d = 0``: plain batch
    normalization (Ioffe & Szegedy 2015), while the running statistics settle. Each training
    batch then moves the running statistics, ``running_mean += momentum * (mu_B -
    running_mean)``, ``running_var += momentum * (var_B_unbiased - running_var)`` (unbiased as
    ``torch.nn.BatchNorm1d`` and sb3-contrib), and counts one in ``steps``. Where neither clip
    binds, ``y`` equals the eval-mode output of the statistics before the batch; only the
    gradient differs (it flows through ``mu_B`` and ``sigma_B``).

    Eval mode: ``y = weight * (x - running_mean) / sigma + bias``, the statistics unchanged.

    ``running_mean``, ``running_var`` and ``steps`` are buffers: they are in the ``state_dict``,
    so a checkpoint resumes them exactly.

    Args:
        num_features: ``F``.
        members: ``None`` for one network (``x: (B, F)``, buffers ``(F,)``); ``n`` for an
            ensemble evaluated in one batched pass (``x: (n, B, F)``, statistics and affine
            parameters per member, shaped ``(n, 1, F)``).
        momentum: Rate of the running statistics (sb3-contrib 0.01).
        eps: Added to variances before the square root (sb3-contrib and sbx 1e-3).
        r_max, d_max: Clips of the corrections (Ioffe sec. 4: 3 and 5).
        warmup_steps: Training batches with ``r = 1, d = 0`` (sb3-contrib 100_000).

    Raises:
        ValueError: for ``num_features < 1``, ``momentum`` outside ``(0, 1]``, ``eps <= 0``,
            ``r_max < 1``, ``d_max < 0`` or ``warmup_steps < 0``.
    """

    def __init__(self, num_features: int, members: int | None = None, momentum: float = 0.01,
                 eps: float = 1e-3, r_max: float = 3.0, d_max: float = 5.0,
                 warmup_steps: int = 100_000):
        super().__init__()
        if (num_features < 1 or not 0.0 < momentum <= 1.0 or eps <= 0 or r_max < 1.0
                or d_max < 0.0 or warmup_steps < 0):
            raise ValueError(
                f"BatchRenorm needs num_features >= 1, momentum in (0, 1], eps > 0, r_max >= 1, "
                f"d_max >= 0, warmup_steps >= 0; got {num_features}, {momentum}, {eps}, "
                f"{r_max}, {d_max}, {warmup_steps}")
        shape = (num_features,) if members is None else (int(members), 1, num_features)
        self.num_features = int(num_features)
        self.momentum = float(momentum)
        self.eps = float(eps)
        self.r_max = float(r_max)
        self.d_max = float(d_max)
        self.warmup_steps = int(warmup_steps)
        self.weight = nn.Parameter(torch.ones(shape))
        self.bias = nn.Parameter(torch.zeros(shape))
        self.register_buffer("running_mean", torch.zeros(shape))
        self.register_buffer("running_var", torch.ones(shape))
        #: Training batches seen (a 0-d int64 tensor, so it travels with the state_dict).
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalize ``x``: ``(B, F)`` (or ``(members, B, F)``) -> same shape.

        Raises:
            ValueError: in training mode for a batch of fewer than 2 rows (no variance).
        """
        shape = self.running_mean.shape
        if not self.training:
            # clone: a later training pass updates the buffers in place, and this graph's
            # backward (the actor's loss) still needs the values it read.
            scale = self.weight * torch.rsqrt(self.running_var + self.eps)
            return torch.addcmul(self.bias - self.running_mean.clone() * scale, x, scale)
        if x.shape[-2] < 2:
            raise ValueError(f"BatchRenorm in training mode needs a batch of >= 2, got "
                             f"{tuple(x.shape)}")
        var_b, mean_b = torch.var_mean(x, dim=-2, keepdim=True, correction=0)
        std_b = torch.sqrt(var_b + self.eps)
        with torch.no_grad():
            std = torch.sqrt(self.running_var + self.eps).view_as(std_b)
            renorm = self.steps >= self.warmup_steps
            r = torch.where(renorm, (std_b / std).clamp(1 / self.r_max, self.r_max), 1.0)
            d = torch.where(renorm, ((mean_b - self.running_mean.view_as(mean_b)) / std).clamp(
                -self.d_max, self.d_max), 0.0)
            n = x.shape[-2]
            self.running_mean.lerp_(mean_b.reshape(shape), self.momentum)
            self.running_var.lerp_((var_b * (n / (n - 1))).reshape(shape), self.momentum)
            self.steps += 1
        # weight * ((x - mean_b) / std_b * r + d) + bias, as one multiply-add per element: the
        # per-feature scale and shift carry the gradient through mean_b and std_b.
        scale = self.weight * r / std_b
        return torch.addcmul(self.bias + self.weight * d - mean_b * scale, x, scale)

    def extra_repr(self) -> str:
        return (f"num_features={self.num_features}, shape={tuple(self.running_mean.shape)}, "
                f"momentum={self.momentum}, eps={self.eps}, r_max={self.r_max}, "
                f"d_max={self.d_max}, warmup_steps={self.warmup_steps}")


class BatchRenormQEnsemble(nn.Module):
    """CrossQ's critics: ``n_critics`` Q-networks with Batch Renormalization, one batched pass.

    Each member is ``BRN -> Linear -> ReLU -> BRN -> Linear -> ReLU -> ... -> BRN -> Linear``:
    a :class:`BatchRenorm` before every linear layer, the input's included (Bhatt et al. 2024,
    sec. 3; the layout of sb3-contrib's and sbx's CrossQ critics), 2048-unit hidden layers by
    default (sec. 3, "wider critic networks"). The caller chooses the mode: training mode for the
    joint pass of current and next state-actions that moves the statistics, eval mode for every
    other evaluation (the actor's loss).

    Args:
        obs_dim: Observation size (normalized observations).
        action_dim: Action size; actions enter in ``[-1, 1]`` units, as the other critics'.
        hidden: Hidden layer widths.
        n_critics: Number of members (2: clipped double Q).
        momentum, eps, r_max, d_max, warmup_steps: Of every :class:`BatchRenorm`.
    """

    def __init__(self, obs_dim: int, action_dim: int, hidden: Sequence[int] = (2048, 2048),
                 n_critics: int = 2, momentum: float = 0.01, eps: float = 1e-3,
                 r_max: float = 3.0, d_max: float = 5.0, warmup_steps: int = 100_000):
        super().__init__()
        if n_critics < 1 or not hidden or any(h < 1 for h in hidden):
            raise ValueError(f"BatchRenormQEnsemble needs n_critics >= 1 and hidden widths "
                             f">= 1, got {n_critics}, {list(hidden)}")
        self.n_critics = n_critics
        dims = [obs_dim + action_dim, *(int(h) for h in hidden), 1]
        self.norms = nn.ModuleList(
            BatchRenorm(dims[i], n_critics, momentum, eps, r_max, d_max, warmup_steps)
            for i in range(len(dims) - 1))
        self.layers = nn.ModuleList(
            EnsembleLinear(n_critics, dims[i], dims[i + 1]) for i in range(len(dims) - 1))

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Q-values.

        Args:
            obs: ``(batch, obs_dim)``.
            action: ``(batch, action_dim)`` in ``[-1, 1]`` units.

        Returns:
            ``(n_critics, batch)`` Q estimates. In training mode the batch statistics are those
            of all ``batch`` rows together (the joint pass puts ``(s, a)`` and ``(s', a')`` in
            one batch).
        """
        x = torch.cat([obs, action], dim=-1)
        x = x.unsqueeze(0).expand(self.n_critics, *x.shape)
        for i, (norm, layer) in enumerate(zip(self.norms, self.layers, strict=True)):
            x = layer(norm(x))
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x.squeeze(-1)
