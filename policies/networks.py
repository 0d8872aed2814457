"""Torch modules of the off-policy actor-critic trainers: MLPs, actors, critics, normalizer.

No MuJoCo, no env code here (DESIGN.md): everything an actor needs about its env arrives as
numbers (observation size, per-dimension action bounds).

Action convention (DESIGN.md contract 1): an actor's raw output ``u`` is squashed with tanh and
mapped to the bounds per dimension,

    a = low + (high - low) * (tanh(u) + 1) / 2  =  center + half_range * tanh(u),

never clipped (a final clamp to ``[low, high]`` removes only the float32 rounding of this map at
``tanh(u) = +-1``, see :meth:`BoundedActionMixin.from_unit`). Bounds are registered buffers, so
they travel with the ``state_dict`` and into the exported ONNX graph.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "LOG_STD_MIN",
    "LOG_STD_MAX",
    "mlp",
    "RunningNorm",
    "BoundedActionMixin",
    "DeterministicActor",
    "SquashedGaussianActor",
    "EnsembleLinear",
    "QEnsemble",
    "deterministic_action",
]

#: Bounds of the SAC actor's log standard deviation (CleanRL / SpinningUp values).
LOG_STD_MIN = -5.0
LOG_STD_MAX = 2.0


def mlp(
    in_dim: int,
    out_dim: int,
    hidden: Sequence[int] = (256, 256),
    activation: type[nn.Module] = nn.ReLU,
) -> nn.Sequential:
    """Multi-layer perceptron ``in_dim -> hidden... -> out_dim`` with ``activation`` between.

    Args:
        in_dim: Input features.
        out_dim: Output features (no activation after the last layer).
        hidden: Widths of the hidden layers.
        activation: Activation class, instantiated once per hidden layer.

    Raises:
        ValueError: if a dimension is not a positive integer.
    """
    dims = [in_dim, *hidden, out_dim]
    if any(int(d) != d or d <= 0 for d in dims):
        raise ValueError(f"MLP dimensions must be positive integers, got {dims}")
    layers: list[nn.Module] = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(int(dims[i]), int(dims[i + 1])))
        if i < len(dims) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


class RunningNorm(nn.Module):
    """Running mean/variance observation normalizer with clipping.

    ``forward(x) = clip((x - mean) / sqrt(var + eps), -clip, clip)``. Statistics are float64
    buffers (they live in the ``state_dict`` and in the exported graph) and change only through
    :meth:`update`; the module is therefore frozen outside training by construction.

    The merge of a batch into the running statistics is the parallel algorithm of Chan, Golub &
    LeVeque (1979), "Updating formulae and a pairwise algorithm for computing sample variances",
    eq. 2.1b-c: with counts ``n_a, n_b`` and ``delta = mean_b - mean_a``,
    ``mean = mean_a + delta * n_b / n``, ``M2 = M2_a + M2_b + delta^2 * n_a * n_b / n``.

    Args:
        shape: Feature shape, e.g. ``(obs_dim,)``.
        eps: Added to the variance before the square root.
        clip: Normalized values are clipped to ``[-clip, clip]``.
        skip: Indices of 1-D features kept out of the statistics: their mean stays 0 and their
            variance 1, so they pass through (clipped). For inputs whose distribution changes
            during training on purpose, e.g. a curriculum's command ranges: running statistics
            gathered while a command was held at 0 would later blow any other value up to the
            clip.
        skip_std: Fixed standard deviations of the ``skip`` features, in the order of ``skip``
            (default: all 1). A skipped feature is divided by its value instead of passing
            unscaled, e.g. the full command range's spread, so that a small command such as
            0.15 m/s sideways reaches the network at unit scale (legged_gym's
            ``commands_scale`` does the same with hand-set factors).

    Raises:
        ValueError: for ``eps`` or ``clip`` not > 0, a ``skip`` index outside the features, or
            ``skip_std`` not one positive value per ``skip`` index.
    """

    def __init__(self, shape: int | Sequence[int], eps: float = 1e-8, clip: float = 10.0,
                 skip: Sequence[int] = (), skip_std: Sequence[float] | None = None):
        super().__init__()
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        if eps <= 0 or clip <= 0:
            raise ValueError(f"RunningNorm needs eps > 0 and clip > 0, got eps={eps}, clip={clip}")
        self.eps = float(eps)
        self.clip = float(clip)
        self.register_buffer("mean", torch.zeros(shape, dtype=torch.float64))
        self.register_buffer("var", torch.ones(shape, dtype=torch.float64))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        skip = [int(i) for i in skip]
        std = [1.0] * len(skip) if skip_std is None else [float(v) for v in skip_std]
        if len(std) != len(skip) or not all(v > 0 and math.isfinite(v) for v in std):
            raise ValueError(
                f"RunningNorm skip_std must be one finite value > 0 per skip index "
                f"({len(skip)}), got {list(std)}"
            )
        if len(set(skip)) != len(skip):
            raise ValueError(f"RunningNorm skip indices {skip} repeat an index")
        order = sorted(range(len(skip)), key=skip.__getitem__)
        skip, std = [skip[k] for k in order], [std[k] for k in order]
        if skip and (len(shape) != 1 or skip[0] < 0 or skip[-1] >= shape[0]):
            raise ValueError(f"RunningNorm skip indices {skip} are not features of shape {shape}")
        # Not in the state_dict: the skipped features' mean 0 / var std^2 are, and that is all
        # the exported graph and load_policy need.
        self.register_buffer("skip", torch.as_tensor(skip, dtype=torch.long), persistent=False)
        self.register_buffer("skip_var", torch.as_tensor(std, dtype=torch.float64) ** 2,
                             persistent=False)
        if skip:
            self.var[self.skip] = self.skip_var

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """Merge a batch into the statistics.

        Args:
            x: ``(batch, *shape)`` samples (any float dtype, any device of the buffers).
        """
        x = x.to(device=self.mean.device, dtype=torch.float64).reshape(-1, *self.mean.shape)
        n_b = x.shape[0]
        if n_b == 0:
            return
        mean_b = x.mean(dim=0)
        m2_b = ((x - mean_b) ** 2).sum(dim=0)
        n_a = self.count
        n = n_a + n_b
        delta = mean_b - self.mean
        m2_a = self.var * n_a
        self.mean.add_(delta * (n_b / n))
        self.var.copy_((m2_a + m2_b + delta**2 * (n_a * n_b / n)) / n)
        self.count.copy_(n)
        if self.skip.numel():
            self.mean[self.skip] = 0.0
            self.var[self.skip] = self.skip_var

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalize ``x``: ``(..., *shape)`` -> same shape and dtype as ``x``."""
        mean = self.mean.to(x.dtype)
        std = torch.sqrt(self.var + self.eps).to(x.dtype)
        return torch.clamp((x - mean) / std, -self.clip, self.clip)

    def extra_repr(self) -> str:
        return f"shape={tuple(self.mean.shape)}, eps={self.eps}, clip={self.clip}"


class BoundedActionMixin(nn.Module):
    """Holds per-dimension action bounds as buffers and maps pre-squash ``u`` into them."""

    def _register_bounds(self, action_low: Sequence[float], action_high: Sequence[float]) -> None:
        low = torch.as_tensor(np.asarray(action_low, dtype=np.float32))
        high = torch.as_tensor(np.asarray(action_high, dtype=np.float32))
        if low.ndim != 1 or low.shape != high.shape:
            raise ValueError(
                f"action bounds must be 1-D of equal shape, got {tuple(low.shape)} and "
                f"{tuple(high.shape)}"
            )
        if not (torch.isfinite(low).all() and torch.isfinite(high).all()):
            raise ValueError(
                "action bounds must be finite: squashed actors need a bounded Box action space "
                f"(got low={low.tolist()}, high={high.tolist()})"
            )
        if not (high > low).all():
            bad = torch.nonzero(high <= low).flatten().tolist()
            raise ValueError(f"action bounds need high > low in every dimension; fails at {bad}")
        self.register_buffer("action_low", low)
        self.register_buffer("action_high", high)
        self.register_buffer("action_center", (high + low) / 2)
        self.register_buffer("action_half_range", (high - low) / 2)

    @property
    def action_dim(self) -> int:
        return int(self.action_low.shape[0])

    def squash(self, u: torch.Tensor) -> torch.Tensor:
        """``a = low + (high - low) * (tanh(u) + 1) / 2``, per dimension: :meth:`from_unit` of
        ``tanh(u)``. ``u: (..., act_dim)`` float32 -> ``(..., act_dim)`` in ``[low, high]``."""
        return self.from_unit(torch.tanh(u))

    def to_unit(self, action: torch.Tensor) -> torch.Tensor:
        """Map an action in env units to ``[-1, 1]`` per dimension: ``(a - center) / half_range``.

        The critics see actions in these units, so a joint with a ``[0, 2*pi]`` range and one
        with ``[-1, 1]`` enter the Q-network on the same scale. ``(..., act_dim)`` -> same.
        """
        return (action - self.action_center) / self.action_half_range

    def from_unit(self, unit_action: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`to_unit`: ``low + (high - low) * (x + 1) / 2``, per dimension.

        Computed as ``low + half_range * (x + 1)`` and clamped to ``[low, high]``: in float32 the
        affine map alone lands up to ~6e-8 outside a bound at ``x = +-1`` (``center +
        half_range * x`` does so on 4 of the quadruped's 12 joint ranges), and an action outside
        the bounds would be clamped again by the env or the deploy safety layer. The clamp moves
        no value by more than that rounding; it is not how the actor meets its bounds (tanh is).

        Args:
            unit_action: ``(..., act_dim)`` float32 in ``[-1, 1]``.

        Returns:
            ``(..., act_dim)`` in env units, within ``[action_low, action_high]``.
        """
        a = self.action_low + self.action_half_range * (unit_action + 1.0)
        return torch.clamp(a, self.action_low, self.action_high)


class DeterministicActor(BoundedActionMixin):
    """Deterministic policy ``mu(obs)`` for DDPG and TD3, squashed into the action bounds.

    Args:
        obs_dim: Observation size (the actor sees normalized observations).
        action_low, action_high: ``(act_dim,)`` per-dimension bounds of the Box action space.
        hidden: Hidden layer widths.
    """

    def __init__(
        self,
        obs_dim: int,
        action_low: Sequence[float],
        action_high: Sequence[float],
        hidden: Sequence[int] = (256, 256),
    ):
        super().__init__()
        self._register_bounds(action_low, action_high)
        self.net = mlp(obs_dim, self.action_dim, hidden)

    def pre_squash(self, obs: torch.Tensor) -> torch.Tensor:
        """Raw output ``u``: ``(batch, obs_dim) -> (batch, act_dim)``."""
        return self.net(obs)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Action in env units: ``(batch, obs_dim) float32 -> (batch, act_dim)`` within bounds."""
        return self.squash(self.net(obs))

    def deterministic(self, obs: torch.Tensor) -> torch.Tensor:
        """Same as ``forward``; the interface shared with :class:`SquashedGaussianActor`."""
        return self.forward(obs)


class SquashedGaussianActor(BoundedActionMixin):
    """SAC's stochastic policy: a tanh-squashed diagonal Gaussian mapped to the bounds.

    ``u = mean(obs) + std(obs) * eps`` with ``eps ~ N(0, I)`` (reparameterization trick, Haarnoja
    et al. 2018, "Soft Actor-Critic", eq. 11), ``a = center + half_range * tanh(u)``. The log
    standard deviation is squashed into ``[LOG_STD_MIN, LOG_STD_MAX]``.

    Args:
        obs_dim: Observation size (the actor sees normalized observations).
        action_low, action_high: ``(act_dim,)`` per-dimension bounds.
        hidden: Hidden layer widths.
    """

    def __init__(
        self,
        obs_dim: int,
        action_low: Sequence[float],
        action_high: Sequence[float],
        hidden: Sequence[int] = (256, 256),
    ):
        super().__init__()
        self._register_bounds(action_low, action_high)
        if len(hidden) == 0:
            raise ValueError("SquashedGaussianActor needs at least one hidden layer")
        self.trunk = mlp(obs_dim, hidden[-1], hidden[:-1])
        self.head = nn.Linear(hidden[-1], 2 * self.action_dim)

    def distribution_params(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-std of ``u``: each ``(batch, act_dim)``; log-std in the bounds."""
        h = F.relu(self.trunk(obs))
        mean, log_std = self.head(h).chunk(2, dim=-1)
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (torch.tanh(log_std) + 1.0)
        return mean, log_std

    def log_prob_from_pre_squash(
        self,
        u: torch.Tensor,
        mean: torch.Tensor,
        log_std: torch.Tensor,
        env_units: bool = False,
    ) -> torch.Tensor:
        """Log-density of the squashed action ``tanh(u)`` (or of ``a = squash(u)``) under pi.

        ``log pi(t|s) = sum_i [log N(u_i; mean_i, std_i) - log(1 - tanh(u_i)^2)]`` in the squashed
        ``[-1, 1]`` units (Haarnoja et al. 2018, appendix C, eq. 21), with ``log(1 - tanh(u)^2)``
        computed stably as ``2 * (log 2 - u - softplus(-2u))``. SAC uses this density: its
        entropy, and so the temperature target ``-action_dim``, then mean the same whatever the
        joint ranges, as in stable-baselines3 (a density in env units shifts by the constant
        ``-sum_i log(half_range_i)``, e.g. +6.1 nats for 12 joints at +-0.6 rad, and a target of
        ``-12`` nats in rad would ask for that much more randomness).

        Args:
            u: ``(batch, act_dim)`` pre-tanh sample.
            mean, log_std: ``(batch, act_dim)`` parameters of the Gaussian over ``u``.
            env_units: Return the density of ``a = low + half_range * (tanh(u) + 1)`` in env
                action units instead (adds the affine map's ``-sum_i log(half_range_i)``).

        Returns:
            ``(batch,)`` log-density.
        """
        normal_lp = -0.5 * ((u - mean) / log_std.exp()) ** 2 - log_std - 0.5 * math.log(2 * math.pi)
        log_det = 2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))
        log_prob = (normal_lp - log_det).sum(dim=-1)
        if env_units:
            log_prob = log_prob - torch.log(self.action_half_range).sum()
        return log_prob

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample with the reparameterization trick.

        Args:
            obs: ``(batch, obs_dim)`` float32 normalized observation.

        Returns:
            ``action`` ``(batch, act_dim)`` within bounds, ``log_prob`` ``(batch,)`` in squashed
            ``[-1, 1]`` units (:meth:`log_prob_from_pre_squash`), and the deterministic action
            ``squash(mean)`` ``(batch, act_dim)``.
        """
        mean, log_std = self.distribution_params(obs)
        u = mean + log_std.exp() * torch.randn_like(mean)
        return self.squash(u), self.log_prob_from_pre_squash(u, mean, log_std), self.squash(mean)

    def deterministic(self, obs: torch.Tensor) -> torch.Tensor:
        """Deterministic action ``squash(mean(obs))``: ``(batch, obs_dim) -> (batch, act_dim)``."""
        mean, _ = self.distribution_params(obs)
        return self.squash(mean)


class EnsembleLinear(nn.Module):
    """``n`` independent linear layers evaluated in one batched matmul.

    ``x: (n, batch, in) -> (n, batch, out)`` via ``torch.baddbmm``. Each member is initialised
    like ``nn.Linear`` (Kaiming-uniform weights, uniform bias in ``+-1/sqrt(in)``).
    """

    def __init__(self, n: int, in_features: int, out_features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(n, 1, out_features))
        bound = 1.0 / math.sqrt(in_features)
        nn.init.uniform_(self.weight, -bound, bound)  # = kaiming_uniform_(a=sqrt(5)) of nn.Linear
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: (n, batch, in_features) -> (n, batch, out_features)``, member ``k`` on ``x[k]``."""
        return torch.baddbmm(self.bias, x, self.weight)

    def forward_member(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """Member ``k`` alone: ``x: (batch, in_features) -> (batch, out_features)``.

        Uses the slices ``weight[k]``, ``bias[k]`` of the ensemble's parameters (no copy), in one
        ``torch.addmm``; gradients reach member ``k`` only.
        """
        return torch.addmm(self.bias[k], x, self.weight[k])

    def extra_repr(self) -> str:
        n, i, o = self.weight.shape
        return f"n={n}, in_features={i}, out_features={o}"


class EnsembleLayerNorm(nn.Module):
    """Layer normalisation of each member's features, with a per-member affine map.

    ``x: (n, batch, features)``: ``y = (x - mean) / sqrt(var + eps) * weight[k] + bias[k]`` over
    the last dimension (Ba et al. 2016), as ``nn.LayerNorm`` does for one network.
    """

    def __init__(self, n: int, features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(n, 1, features))
        self.bias = nn.Parameter(torch.zeros(n, 1, features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(n, batch, features) -> (n, batch, features)``."""
        return F.layer_norm(x, x.shape[-1:], eps=self.eps) * self.weight + self.bias

    def forward_member(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """Member ``k`` alone: ``(batch, features) -> (batch, features)``."""
        return F.layer_norm(x, x.shape[-1:], self.weight[k, 0], self.bias[k, 0], self.eps)


class QEnsemble(nn.Module):
    """``n_critics`` Q-networks ``Q_k(obs, action)`` computed in one batched pass.

    ``n_critics=2`` gives TD3's/SAC's twin critics (clipped double Q), ``n_critics=1`` DDPG's.

    Args:
        obs_dim: Observation size (normalized observations).
        action_dim: Action size. The trainers feed actions scaled to ``[-1, 1]`` per dimension
            (:meth:`BoundedActionMixin.to_unit`), never raw env units.
        hidden: Hidden layer widths.
        n_critics: Number of members.
        layer_norm: Normalise each hidden layer before its ReLU (``Linear -> LayerNorm -> ReLU``,
            :class:`EnsembleLayerNorm`). Layer-normalised critics keep Q estimates bounded and
            make high update-to-data ratios and small discounts stable (Ball et al. 2023,
            "Efficient Online RL with Offline Data" (RLPD), sec. 3.2; Hiraoka et al. 2022, DroQ;
            Smith et al. 2022, "A Walk in the Park").
    """

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        hidden: Sequence[int] = (256, 256),
        n_critics: int = 2,
        layer_norm: bool = False,
    ):
        super().__init__()
        if n_critics < 1:
            raise ValueError(f"n_critics must be >= 1, got {n_critics}")
        self.n_critics = n_critics
        dims = [obs_dim + action_dim, *hidden, 1]
        self.layers = nn.ModuleList(
            EnsembleLinear(n_critics, dims[i], dims[i + 1]) for i in range(len(dims) - 1)
        )
        self.norms = (
            nn.ModuleList(EnsembleLayerNorm(n_critics, int(h)) for h in hidden)
            if layer_norm else None
        )

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Q-values.

        Args:
            obs: ``(batch, obs_dim)``.
            action: ``(batch, action_dim)``.

        Returns:
            ``(n_critics, batch)`` Q estimates.
        """
        x = torch.cat([obs, action], dim=-1)
        x = x.unsqueeze(0).expand(self.n_critics, *x.shape)
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                if self.norms is not None:
                    x = self.norms[i](x)
                x = F.relu(x)
        return x.squeeze(-1)

    def q1(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """The first member's Q-value alone, ``forward(obs, action)[0]`` at a 1/n_critics of the
        cost: TD3's and DDPG's actor losses use only ``Q_1`` (Fujimoto et al. 2018, Algorithm 1;
        Lillicrap et al. 2016, Algorithm 1).

        Args:
            obs: ``(batch, obs_dim)``.
            action: ``(batch, action_dim)`` in ``[-1, 1]`` units.

        Returns:
            ``(batch,)`` Q_1 estimates (equal to ``forward(obs, action)[0]`` up to float32
            rounding: ``addmm`` on member 0's weight slices instead of the batched ``baddbmm``).
        """
        x = torch.cat([obs, action], dim=-1)
        for i, layer in enumerate(self.layers):
            x = layer.forward_member(x, 0)
            if i < len(self.layers) - 1:
                if self.norms is not None:
                    x = self.norms[i].forward_member(x, 0)
                x = F.relu(x)
        return x.squeeze(-1)


@torch.no_grad()
def deterministic_action(
    actor: DeterministicActor | SquashedGaussianActor, obs_norm: RunningNorm, obs: np.ndarray
) -> np.ndarray:
    """The one path from a raw observation to a numpy action: normalizer, deterministic action.

    ``actor.deterministic(obs_norm(obs))`` on the normalizer's device, returned as numpy. The
    trainer's evaluation and video, ``PolicyBundle.act``, the ONNX parity checks and the
    benchmarks all call this; the exported graph (``policies.export.ExportedPolicy``) computes
    the same numbers, which the parity tests measure.

    Args:
        actor: Trained actor (no train/eval-dependent layers), on the normalizer's device.
        obs_norm: Its observation normalizer.
        obs: ``(obs_dim,)`` or ``(batch, obs_dim)`` raw observations, any real dtype (cast to
            float32), anything ``np.asarray`` accepts.

    Returns:
        float32 ``(act_dim,)`` or ``(batch, act_dim)`` (as ``obs``) actions in env units, within
        the actor's bounds.

    Raises:
        RuntimeError: (torch) if the last axis of ``obs`` is not ``obs_dim``.
    """
    x = torch.as_tensor(np.asarray(obs, dtype=np.float32), device=obs_norm.mean.device)
    action = actor.deterministic(obs_norm(x.reshape(-1, *obs_norm.mean.shape))).cpu().numpy()
    return action[0] if x.ndim == 1 else action
