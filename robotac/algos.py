"""SAC, TD3 and DDPG: losses, optimizers and target networks (the networks are in ``policies``).

Each algorithm reads top to bottom: networks, exploration, critic loss, actor loss, target update.
:class:`OffPolicyAlgo` and :class:`SAC` are also the bases of CrossQ (:mod:`robotac.crossq`).
Which class an ``algo`` name builds, and its defaults, are in :mod:`robotac.registry`.
Conventions shared by all:

* Observations in a :class:`~robotac.buffer.Batch` are already normalized; actions are in env
  units. Critics see actions mapped to ``[-1, 1]`` per dimension (``actor.to_unit``).
* ``terminated`` stops bootstrapping, truncation does not (the buffer keeps them apart).
* Target networks follow Polyak averaging ``target <- (1 - tau) * target + tau * online``
  (Lillicrap et al. 2016, "Continuous control with deep reinforcement learning", sec. 3),
  done in one ``torch._foreach_lerp_`` call.
* :meth:`update` returns its scalars as 0-d tensors and never calls ``.item()``: there is no
  CPU-GPU synchronisation in the update path; the loop reads the scalars every ``log_every``
  steps.
* TD3/DDPG exploration noise and TD3's target-policy smoothing act on the squashed action in
  half-range units and are clipped there: ``a = from_unit(clip(tanh(u) + n, -1, 1))``, so
  ``n ~ N(0, sigma^2)`` moves the action by ``sigma`` half-ranges wherever the actor is, as in
  Fujimoto et al. 2018 (Algorithm 1, sec. 6.1) and its reference code. Noise added before the
  tanh would vanish as the actor saturates (std 0.001 half-ranges at ``u = 3`` for
  ``sigma = 0.1``). The actor's own action is squashed, never clipped.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import numpy as np
import torch
from torch import nn

from policies.networks import DeterministicActor, QEnsemble, SquashedGaussianActor
from robotac import registry
from robotac.buffer import Batch
from robotac.config import TrainConfig, resolved

__all__ = ["OffPolicyAlgo", "SAC", "TD3", "DDPG", "make_algo", "polyak_update"]


@torch.no_grad()
def polyak_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """``target <- (1 - tau) * target + tau * online`` for every parameter (buffers are copied).

    Source: Lillicrap et al. 2016, sec. 3 ("soft" target updates); Fujimoto et al. 2018, Alg. 1.
    """
    _polyak(list(target.parameters()), list(online.parameters()), tau)
    for tb, ob in zip(target.buffers(), online.buffers(), strict=True):
        tb.copy_(ob)


@torch.no_grad()
def _polyak(target: list[torch.Tensor], online: list[torch.Tensor], tau: float) -> None:
    """:func:`polyak_update` on cached parameter lists (the networks here have no buffers)."""
    torch._foreach_lerp_(target, online, tau)


def _euclidean(d: torch.Tensor) -> torch.Tensor:
    """Row norms ``||d_i||_2`` of ``(B, n)``, with a finite gradient at ``d_i = 0`` (a
    sub-gradient of 0 there, where ``torch.linalg.vector_norm``'s would be 0/0)."""
    sq = (d * d).sum(dim=-1)
    return torch.where(sq > 0, sq.clamp_min(1e-30).sqrt(), torch.zeros_like(sq))


def _step(opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """One gradient step of ``opt`` on ``loss`` (gradients set to ``None`` first)."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def _adam(params: list[nn.Parameter] | list[torch.Tensor], lr: float, fused: bool,
          betas: tuple[float, float] = (0.9, 0.999)):
    """Adam, fused into one kernel when asked (measured faster on CPU, docs/benchmarks.md)."""
    return torch.optim.Adam(params, lr=lr, betas=betas, fused=fused or None)


class OffPolicyAlgo:
    """Common parts: the actor, critics and their targets, optimizers, checkpoint state.

    Args:
        obs_dim: Observation size.
        action_low, action_high: ``(act_dim,)`` per-dimension bounds of the Box action space.
        cfg: Training config (learning rates, ``gamma``, ``tau``, noise, ``policy_delay``...);
            fields left at ``None`` take this algorithm's defaults (:func:`robotac.config.
            resolved` with ``algo`` = :attr:`name`, from :mod:`robotac.registry`).
        num_envs: Number of envs acting in parallel (size of per-env exploration state).

    Raises:
        ValueError: if ``policy_delay < 1``, or a switch the algorithm does not use is set
            (:attr:`robotac.registry.AlgoSpec.refused`: ``ou_noise`` but for DDPG).
    """

    #: The algorithm's name in :data:`robotac.registry.ALGORITHMS`.
    name = ""
    actor: DeterministicActor | SquashedGaussianActor

    def __init__(self, obs_dim, action_low, action_high, cfg: TrainConfig, num_envs: int = 1):
        self.spec = registry.get(self.name)
        cfg = resolved(dataclasses.replace(cfg, algo=self.name))
        self.cfg = cfg
        self.device = torch.device(cfg.device)
        self.obs_dim = int(obs_dim)
        self.gamma = float(cfg.gamma)
        self.tau = float(cfg.tau)
        delay = int(cfg.policy_delay)
        if delay < 1:
            raise ValueError(f"{self.name}: policy_delay must be >= 1, got {delay}")
        for name in self.spec.refused:
            if getattr(cfg, name):
                raise ValueError(f"{name}=True is not used by {self.spec.title}: "
                                 f"{self.spec.refusal(name, cli=False)}")
        self.policy_delay = delay
        self.num_envs = num_envs
        self.n_updates = 0
        self.noise_beta = float(cfg.action_noise_beta)
        # Colored exploration noise: one (seq_len, act_dim) sequence per env and the index of its
        # next sample; a sequence is drawn when an env's episode ends or its sequence runs out.
        self._colored: torch.Tensor | None = None
        self._colored_idx = torch.zeros(num_envs, dtype=torch.long)
        # L_T and L_S of the last actor update with CAPS on (empty when off).
        self._caps_metrics: dict[str, torch.Tensor] = {}
        # CAPS schedule (cfg.caps_ramp_steps): the weights' scale, set by set_training_step.
        self._caps_scale = torch.ones((), device=self.device)
        self._caps_active = cfg.caps_ramp_steps is None

    # -- exploration noise -----------------------------------------------------------------
    def _exploration_eps(self, like: torch.Tensor) -> torch.Tensor:
        """Unit-variance exploration noise shaped like ``like`` ``(batch, act_dim)``.

        ``action_noise_beta = 0``: i.i.d. ``N(0, 1)`` (``torch.randn_like``). ``beta > 0``:
        colored noise, each env's sequence over time a Gaussian process with power spectral
        density ``~ 1/f^beta`` (beta 1 "pink", 2 "red"; Eberhard et al., "Pink Noise Is All You
        Need: Colored Noise Exploration in Deep Reinforcement Learning", ICLR 2023, sec. 3-4),
        generated by ``colorednoise.powerlaw_psd_gaussian`` (Timmer & Koenig 1995). Sequences
        are ``action_noise_seq_len`` steps long (the paper: the episode length), one per env,
        drawn again when its episode ends (:meth:`reset_noise`) or it runs out; each draws its
        seed from torch's generator, which checkpoints save, so a resume continues bitwise. Row
        ``i`` of ``like`` is env ``i`` (``batch <= num_envs``).
        """
        if self.noise_beta == 0.0:
            return torch.randn_like(like)
        n, act_dim = like.shape
        if self._colored is None:
            self._colored = torch.zeros(self.num_envs, self.cfg.action_noise_seq_len, act_dim,
                                        dtype=torch.float32)
            self._colored_idx.fill_(self.cfg.action_noise_seq_len)
        out = torch.empty(n, act_dim, dtype=torch.float32)
        for i in range(n):
            if int(self._colored_idx[i]) >= self._colored.shape[1]:
                self._draw_colored(i)
            out[i] = self._colored[i, int(self._colored_idx[i])]
            self._colored_idx[i] += 1
        return out.to(device=like.device, dtype=like.dtype)

    def _draw_colored(self, i: int) -> None:
        import colorednoise

        seed = int(torch.randint(0, 2**62, ()).item())
        seq_len, act_dim = self._colored.shape[1:]
        x = colorednoise.powerlaw_psd_gaussian(self.noise_beta, (act_dim, seq_len),
                                               random_state=np.random.default_rng(seed))
        self._colored[i] = torch.as_tensor(x.T, dtype=torch.float32)
        self._colored_idx[i] = 0

    def _noise_state(self) -> dict[str, torch.Tensor]:
        if self._colored is None:
            return {}
        return {"colored": self._colored.clone(), "colored_idx": self._colored_idx.clone()}

    def _load_noise_state(self, extra: dict[str, torch.Tensor]) -> None:
        if "colored" in extra:
            self._colored = extra["colored"].clone()
            self._colored_idx = extra["colored_idx"].clone()

    def reset_noise(self, done: torch.Tensor) -> None:
        """Reset per-env exploration state of the envs whose episode ended (``(num_envs,)``):
        a fresh colored-noise sequence (``action_noise_beta > 0``), and the algorithm's own
        (:meth:`_reset_algo_noise`, DDPG's Ornstein-Uhlenbeck state)."""
        if self._colored is not None:
            self._colored_idx[done.cpu()] = self._colored.shape[1]  # redrawn at the next act
        self._reset_algo_noise(done)

    def _reset_algo_noise(self, done: torch.Tensor) -> None:  # noqa: B027 - optional hook
        """Reset the algorithm's own per-env exploration state (nothing by default)."""

    # -- helpers ---------------------------------------------------------------------------
    def _finish_init(self) -> None:
        """Cache parameter lists; with ``cfg.compile``, compile the two loss functions.

        ``torch.compile`` fuses the element-wise work around the matmuls; the optimizer steps
        and the ``requires_grad`` switches stay eager. Compilation takes about a minute on a
        2-core CPU (docs/benchmarks.md has the measured gain).
        """
        self._cache_params()
        if self.cfg.compile:
            self.critic_loss = torch.compile(self.critic_loss)
            self.actor_loss = torch.compile(self.actor_loss)

    def _adam(self, params: list[nn.Parameter] | list[torch.Tensor], lr: float):
        """Adam with the config's ``adam_betas`` and ``fused_adam`` (actor and critics)."""
        return _adam(params, lr, self.cfg.fused_adam, tuple(self.cfg.adam_betas))

    # -- CAPS (Mysore et al., ICRA 2021) ----------------------------------------------------
    @property
    def caps_enabled(self) -> bool:
        """Whether the actor loss has a CAPS term (either weight > 0)."""
        return self.cfg.caps_temporal_weight > 0 or self.cfg.caps_spatial_weight > 0

    def set_training_step(self, global_step: int) -> None:
        """Tell the algorithm how far training is (global env steps), before its updates: sets
        the CAPS weights' scale of ``caps_ramp_steps`` (0 before its start: CAPS not computed).
        Without a ramp it changes nothing."""
        ramp = self.cfg.caps_ramp_steps
        if ramp is None:
            return
        start, full = ramp
        scale = min(max((global_step - start) / (full - start), 0.0), 1.0)
        self._caps_active = scale > 0.0
        self._caps_scale.fill_(scale)

    @property
    def caps_scale(self) -> float:
        """The CAPS weights' current scale in [0, 1] (1 without ``caps_ramp_steps``)."""
        return float(self._caps_scale) if self._caps_active else 0.0

    def unit_policy(self, obs: torch.Tensor) -> torch.Tensor:
        """The deterministic action in the squashed ``[-1, 1]`` units, ``(B, obs_dim) -> (B,
        act_dim)``, with gradient (the ``pi`` of the CAPS terms)."""
        raise NotImplementedError

    def caps_loss(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """CAPS regularization (Mysore et al. 2021, sec. IV, ``L_T`` and ``L_S``), with gradient.

        ``L_T = mean_i ||pi(s_i) - pi(s'_i)||_2`` over the batch's transitions (``s'`` the next
        observation), ``L_S = mean_i ||pi(s_i) - pi(s~_i)||_2`` with ``s~ = s + caps_sigma * eps``,
        ``eps ~ N(0, I)`` (torch's generator), ``pi`` the deterministic action in ``[-1, 1]``
        units (:meth:`unit_policy`); the paper's distance ``D`` is the Euclidean one. All three
        observation sets go through the actor in one pass. ``sigma`` lives in the actor's input
        space, the normalized observation.

        Args:
            batch: Normalized observations ``(B, obs_dim)`` and next observations.

        Returns:
            ``(lambda_T * L_T + lambda_S * L_S, L_T, L_S)``, 0-d tensors (a term whose weight is 0
            is not computed: its value is 0 and it draws no noise).
        """
        cfg = self.cfg
        obs = [batch.obs]
        if cfg.caps_temporal_weight > 0:
            obs.append(batch.next_obs)
        if cfg.caps_spatial_weight > 0:
            obs.append(batch.obs + cfg.caps_sigma * torch.randn_like(batch.obs))
        pi = self.unit_policy(torch.cat(obs)).split(batch.obs.shape[0])
        zero = torch.zeros((), device=batch.obs.device)
        l_t = l_s = zero
        k = 1
        if cfg.caps_temporal_weight > 0:
            l_t = _euclidean(pi[0] - pi[k]).mean()
            k += 1
        if cfg.caps_spatial_weight > 0:
            l_s = _euclidean(pi[0] - pi[k]).mean()
        return cfg.caps_temporal_weight * l_t + cfg.caps_spatial_weight * l_s, l_t, l_s

    def _with_caps(self, loss: torch.Tensor, batch: Batch) -> torch.Tensor:
        """``loss`` plus the CAPS term, scaled by the ramp's :attr:`caps_scale`, when it is on
        (the loss itself, untouched, when off or before the ramp starts); keeps ``L_T`` and
        ``L_S`` for the metrics."""
        if not self.caps_enabled or not self._caps_active:
            return loss
        caps, l_t, l_s = self.caps_loss(batch)
        self._caps_metrics = {"losses/caps_temporal": l_t.detach(),
                              "losses/caps_spatial": l_s.detach()}
        if self.cfg.caps_ramp_steps is None:
            return loss + caps
        return loss + self._caps_scale * caps

    def _cache_params(self) -> None:
        """Parameter lists, built once (walking the modules every update costs Python time)."""
        self._critic_params = list(self.critic.parameters())
        if hasattr(self, "critic_target"):
            self._critic_target_params = list(self.critic_target.parameters())
        if hasattr(self, "actor_target"):
            self._actor_params = list(self.actor.parameters())
            self._actor_target_params = list(self.actor_target.parameters())

    def _set_critic_grad(self, flag: bool) -> None:
        for p in self._critic_params:
            p.requires_grad_(flag)

    def modules(self) -> dict[str, nn.Module]:
        """Named modules saved in checkpoints."""
        raise NotImplementedError

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Named optimizers saved in checkpoints."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """Networks, targets, optimizers, extra tensors (alpha, noise state), update counter."""
        return {
            "modules": {k: m.state_dict() for k, m in self.modules().items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers().items()},
            "extra": {**self._extra_state(), **self._noise_state()},
            "n_updates": self.n_updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved (resume continues bitwise on CPU).

        Raises:
            KeyError: if a module or optimizer of this algorithm is missing from ``state``.
            RuntimeError: (torch) if a network's parameter shapes differ.
        """
        for k, m in self.modules().items():
            m.load_state_dict(state["modules"][k])
        for k, o in self.optimizers().items():
            # Deep copy: Adam.load_state_dict keeps the given "step" tensors, which would
            # otherwise be shared with (and advanced by) the optimizer they came from.
            o.load_state_dict(copy.deepcopy(state["optimizers"][k]))
        self._load_extra_state(state["extra"])
        self._load_noise_state(state["extra"])
        self.n_updates = int(state["n_updates"])

    def _extra_state(self) -> dict[str, torch.Tensor]:
        return {}

    def _load_extra_state(self, extra: dict[str, torch.Tensor]) -> None:
        pass

    @torch.no_grad()
    def act(self, obs: torch.Tensor, explore: bool) -> torch.Tensor:
        """Action for normalized ``obs (num_envs, obs_dim)`` -> ``(num_envs, act_dim)``."""
        raise NotImplementedError

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One gradient update on ``batch`` (normalized observations, actions in env units).

        Returns:
            0-d tensors keyed by TensorBoard tag (``losses/qf_loss``, ``losses/actor_loss``...);
            read them only when logging (reading syncs a GPU).
        """
        raise NotImplementedError


class SAC(OffPolicyAlgo):
    """Soft Actor-Critic with twin critics and automatic entropy temperature.

    Sources: Haarnoja et al. 2018a, "Soft Actor-Critic: Off-Policy Maximum Entropy Deep RL with a
    Stochastic Actor" (ICML), and Haarnoja et al. 2018b, "Soft Actor-Critic Algorithms and
    Applications" (arXiv:1812.05905), whose equation numbers are cited below unless marked 2018a.

    * Critic (eq. 5-6; twin Q with the minimum in the target as in 2018a sec. 4.2):
      ``y = r + gamma * (1 - terminated) * (min_k Q'_k(s', a') - alpha * log pi(a'|s'))``,
      ``a' ~ pi(.|s')``; loss ``sum_k mean (Q_k(s, a) - y)^2``.
    * Actor (eq. 7, reparameterized as in eq. 8-9 / 2018a eq. 11-12):
      ``J_pi = mean(alpha * log pi(a~|s) - min_k Q_k(s, a~))``.
    * Temperature (eq. 18): ``J(alpha) = mean(-alpha * (log pi(a~|s) + H_target))`` with
      ``H_target = -target_entropy_scale * action_dim``, optimized in ``log(alpha)``. Log-probs
      (critic target, actor loss and temperature alike) are densities of the squashed action in
      ``[-1, 1]`` units, so the target means the same randomness whatever the action bounds
      (stable-baselines3's convention; ``SquashedGaussianActor.log_prob_from_pre_squash``).
    * Targets: Polyak after every critic update. With ``policy_delay = d > 1`` the actor and
      temperature are updated every ``d``-th critic update.
    """

    name = "sac"

    def __init__(self, obs_dim, action_low, action_high, cfg: TrainConfig, num_envs: int = 1):
        super().__init__(obs_dim, action_low, action_high, cfg, num_envs)
        dev = self.device
        cfg = self.cfg
        self.actor = SquashedGaussianActor(obs_dim, action_low, action_high, cfg.hidden).to(dev)
        act_dim = self.actor.action_dim
        self._make_critics(obs_dim, act_dim)
        self.actor_opt = self._adam(list(self.actor.parameters()), cfg.actor_lr)
        self.critic_opt = self._adam(list(self.critic.parameters()), cfg.critic_lr)
        self.autotune = bool(cfg.autotune_alpha)
        self.target_entropy = -float(cfg.target_entropy_scale) * act_dim
        self.log_alpha = torch.tensor(
            float(torch.log(torch.tensor(cfg.alpha))), device=dev, requires_grad=self.autotune
        )
        self.alpha_opt = _adam([self.log_alpha], cfg.alpha_lr, cfg.fused_adam)  # default betas
        self._last_actor_metrics: dict[str, torch.Tensor] = {}
        self._finish_init()

    def _make_critics(self, obs_dim: int, act_dim: int) -> None:
        """Twin critics ``self.critic`` and their target ``self.critic_target``."""
        self.critic = QEnsemble(obs_dim, act_dim, self.cfg.critic_hidden, n_critics=2,
                                layer_norm=self.cfg.critic_layer_norm).to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)

    def modules(self):
        return {"actor": self.actor, "critic": self.critic, "critic_target": self.critic_target}

    def optimizers(self):
        return {"actor": self.actor_opt, "critic": self.critic_opt, "alpha": self.alpha_opt}

    def _extra_state(self):
        return {"log_alpha": self.log_alpha.detach().clone()}

    def _load_extra_state(self, extra):
        with torch.no_grad():
            self.log_alpha.copy_(extra["log_alpha"])

    @property
    def alpha(self) -> torch.Tensor:
        """Current temperature, a detached 0-d tensor."""
        return self.log_alpha.detach().exp()

    @torch.no_grad()
    def act(self, obs, explore):
        """``squash(mean + std * eps)`` with ``eps`` from :meth:`_exploration_eps` (i.i.d.
        ``N(0, 1)`` by default, as the actor's own sample); without ``explore``,
        ``squash(mean)``."""
        if explore:
            mean, log_std = self.actor.distribution_params(obs)
            return self.actor.squash(mean + log_std.exp() * self._exploration_eps(mean))
        return self.actor.deterministic(obs)

    def critic_loss(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Soft TD loss (eq. 5-6) and the mean online Q. Returns ``(loss, q_mean)``, 0-d."""
        alpha = self.alpha
        with torch.no_grad():
            next_action, next_log_prob, _ = self.actor(batch.next_obs)
            q_next = self.critic_target(batch.next_obs, self.actor.to_unit(next_action))
            v_next = q_next.min(dim=0).values - alpha * next_log_prob
            y = batch.reward + self.gamma * (1.0 - batch.terminated) * v_next
        q = self.critic(batch.obs, self.actor.to_unit(batch.action))  # (2, B)
        loss = ((q - y) ** 2).mean(dim=1).sum()
        return loss, q.detach().mean()

    def actor_loss(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """``J_pi`` of eq. 7 (critics frozen by the caller) and the ``(B,)`` log-probs."""
        action, log_prob, _ = self.actor(batch.obs)
        q_pi = self.critic(batch.obs, self.actor.to_unit(action)).min(dim=0).values
        return self._with_caps((self.alpha * log_prob - q_pi).mean(), batch), log_prob

    def unit_policy(self, obs: torch.Tensor) -> torch.Tensor:
        """``tanh(mean(obs))``: the deterministic action in ``[-1, 1]`` units (CAPS' ``pi``)."""
        return torch.tanh(self.actor.distribution_params(obs)[0])

    def _update_targets(self) -> None:
        """Polyak-average the target critics towards the online ones (after every critic step)."""
        _polyak(self._critic_target_params, self._critic_params, self.tau)

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One gradient step of the critics, and of actor and alpha every ``policy_delay``."""
        qf_loss, q_mean = self.critic_loss(batch)
        _step(self.critic_opt, qf_loss)

        if self.n_updates % self.policy_delay == 0:
            self._set_critic_grad(False)
            actor_loss, log_prob = self.actor_loss(batch)
            _step(self.actor_opt, actor_loss)
            self._set_critic_grad(True)
            log_prob = log_prob.detach()
            if self.autotune:
                alpha_loss = (-self.log_alpha.exp() * (log_prob + self.target_entropy)).mean()
                _step(self.alpha_opt, alpha_loss)
            self._last_actor_metrics = {
                "losses/actor_loss": actor_loss.detach(),
                "charts/entropy": -log_prob.mean(),
                **self._caps_metrics,
            }
        self._update_targets()
        self.n_updates += 1
        return {
            "losses/qf_loss": qf_loss.detach(),
            "losses/q_mean": q_mean,
            "losses/alpha": self.alpha,
            **self._last_actor_metrics,
        }


class _DeterministicAlgo(OffPolicyAlgo):
    """Shared parts of TD3 and DDPG: deterministic actor, actor target, exploration noise."""

    n_critics = 2

    def __init__(self, obs_dim, action_low, action_high, cfg: TrainConfig, num_envs: int = 1):
        super().__init__(obs_dim, action_low, action_high, cfg, num_envs)
        dev = self.device
        cfg = self.cfg
        self.actor = DeterministicActor(obs_dim, action_low, action_high, cfg.hidden).to(dev)
        act_dim = self.actor.action_dim
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic = QEnsemble(obs_dim, act_dim, cfg.critic_hidden, n_critics=self.n_critics,
                                layer_norm=cfg.critic_layer_norm).to(dev)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_opt = self._adam(list(self.actor.parameters()), cfg.actor_lr)
        self.critic_opt = self._adam(list(self.critic.parameters()), cfg.critic_lr)
        self.exploration_noise = float(cfg.exploration_noise)
        self.ou = bool(cfg.ou_noise)
        self.ou_theta = float(cfg.ou_theta)
        self.noise_state = torch.zeros(num_envs, act_dim, device=dev)
        self._last_actor_metrics: dict[str, torch.Tensor] = {}
        self._finish_init()

    def modules(self):
        return {
            "actor": self.actor,
            "actor_target": self.actor_target,
            "critic": self.critic,
            "critic_target": self.critic_target,
        }

    def optimizers(self):
        return {"actor": self.actor_opt, "critic": self.critic_opt}

    def _extra_state(self):
        return {"noise_state": self.noise_state.clone()}

    def _load_extra_state(self, extra):
        self.noise_state.copy_(extra["noise_state"])

    def _reset_algo_noise(self, done: torch.Tensor) -> None:
        """Zero the Ornstein-Uhlenbeck state of envs whose episode ended."""
        if self.ou:
            self.noise_state.mul_(1.0 - done.to(self.noise_state).unsqueeze(-1))

    @torch.no_grad()
    def act(self, obs, explore):
        """Deterministic action; with ``explore``, ``from_unit(clip(tanh(u) + n, -1, 1))``.

        The behaviour policy ``mu(s) + N`` of Lillicrap et al. 2016 (sec. 3, eq. 7) and Fujimoto
        et al. 2018 (Algorithm 1), with the noise in units of each dimension's half-range and the
        sum clipped to the bounds as in the TD3 reference code (and CleanRL, SB3):
        ``n ~ N(0, exploration_noise^2)`` i.i.d. (TD3 paper sec. 6.1: ``N(0, 0.1 * max_action)``),
        or with ``ou_noise`` (DDPG only) the Ornstein-Uhlenbeck process
        ``n <- n - theta * n + exploration_noise * N(0, 1)`` (Lillicrap et al. 2016, sec. 3 and
        supplementary sec. 7; ``dt = 1`` step), added after the squash as well.

        Args:
            obs: ``(batch, obs_dim)`` float32 normalized observations; with OU noise
                ``batch <= num_envs`` (row ``i`` uses env ``i``'s noise state).
            explore: Add exploration noise.

        Returns:
            ``(batch, act_dim)`` actions in env units, within ``[action_low, action_high]``.
        """
        t = torch.tanh(self.actor.pre_squash(obs))
        if not explore:
            return self.actor.from_unit(t)
        eps = self._exploration_eps(t)
        if self.ou:
            self.noise_state.add_(-self.ou_theta * self.noise_state + self.exploration_noise * eps)
            noise = self.noise_state[: t.shape[0]]
        else:
            noise = self.exploration_noise * eps
        return self.actor.from_unit(torch.clamp(t + noise, -1.0, 1.0))

    def target_unit_action(self, next_obs: torch.Tensor) -> torch.Tensor:
        """The target actor's ``mu'(s') = tanh(u')`` in the critics' ``[-1, 1]`` units (DDPG).

        ``next_obs: (B, obs_dim)`` float32 normalized -> ``(B, act_dim)`` in ``[-1, 1]``.
        """
        return torch.tanh(self.actor_target.pre_squash(next_obs))

    def target_action(self, next_obs: torch.Tensor) -> torch.Tensor:
        """:meth:`target_unit_action` in env units, ``(B, act_dim)`` within the bounds."""
        return self.actor.from_unit(self.target_unit_action(next_obs))

    def critic_loss(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """TD loss with target ``y = r + gamma (1 - terminated) min_k Q'_k(s', a')``."""
        with torch.no_grad():
            next_unit_action = self.target_unit_action(batch.next_obs)
            q_next = self.critic_target(batch.next_obs, next_unit_action)
            y = batch.reward + self.gamma * (1.0 - batch.terminated) * q_next.min(dim=0).values
        q = self.critic(batch.obs, self.actor.to_unit(batch.action))  # (n_critics, B)
        loss = ((q - y) ** 2).mean(dim=1).sum()
        return loss, q.detach().mean()

    def actor_loss(self, batch: Batch) -> torch.Tensor:
        """Deterministic policy gradient (Silver et al. 2014, eq. 6): ``-mean Q_1(s, mu(s))``.

        Only ``Q_1`` is evaluated (:meth:`QEnsemble.q1`), as in TD3's Algorithm 1 (Fujimoto et
        al. 2018); running both critics cost about 10 % of a TD3 update (docs/benchmarks.md).
        Returns a 0-d tensor; the critics are frozen by the caller.
        """
        unit_action = torch.tanh(self.actor.pre_squash(batch.obs))
        return self._with_caps(-self.critic.q1(batch.obs, unit_action).mean(), batch)

    def unit_policy(self, obs: torch.Tensor) -> torch.Tensor:
        """``tanh(u(obs))``: the actor's action in ``[-1, 1]`` units (CAPS' ``pi``)."""
        return torch.tanh(self.actor.pre_squash(obs))

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Critic step; every ``policy_delay`` critic steps an actor step and target updates."""
        qf_loss, q_mean = self.critic_loss(batch)
        _step(self.critic_opt, qf_loss)
        if self.n_updates % self.policy_delay == 0:
            self._set_critic_grad(False)
            actor_loss = self.actor_loss(batch)
            _step(self.actor_opt, actor_loss)
            self._set_critic_grad(True)
            _polyak(self._critic_target_params, self._critic_params, self.tau)
            _polyak(self._actor_target_params, self._actor_params, self.tau)
            self._last_actor_metrics = {"losses/actor_loss": actor_loss.detach(),
                                        **self._caps_metrics}
        self.n_updates += 1
        return {"losses/qf_loss": qf_loss.detach(), "losses/q_mean": q_mean,
                **self._last_actor_metrics}


class TD3(_DeterministicAlgo):
    """Twin Delayed DDPG (Fujimoto, van Hoof & Meger 2018, "Addressing Function Approximation
    Error in Actor-Critic Methods", Algorithm 1).

    * Clipped double Q (eq. 10): ``y = r + gamma (1 - terminated) min_{k=1,2} Q'_k(s', a~)``.
    * Target-policy smoothing (eq. 14-15): ``a~ = clip(mu'(s') + clip(eps, -c, c), low, high)``,
      ``eps ~ N(0, sigma^2)``, computed after the tanh in half-range units (``sigma =
      target_policy_noise``, ``c = target_noise_clip``; paper: 0.2 and 0.5 of max_action).
    * Delayed updates (sec. 5.2): actor (ascending ``Q_1(s, mu(s))``, DPG of Silver et al. 2014)
      and all targets every ``policy_delay`` critic updates, 2 unless the config says otherwise
      (the paper's d = 2; robotac.registry).
    * Exploration: Gaussian only; a config with ``ou_noise`` is refused (ValueError).
    """

    name = "td3"
    n_critics = 2

    def __init__(self, obs_dim, action_low, action_high, cfg: TrainConfig, num_envs: int = 1):
        super().__init__(obs_dim, action_low, action_high, cfg, num_envs)
        self.target_policy_noise = float(cfg.target_policy_noise)
        self.target_noise_clip = float(cfg.target_noise_clip)

    def target_unit_action(self, next_obs: torch.Tensor) -> torch.Tensor:
        """Smoothed target action ``a~`` of eq. 14-15 in the critics' ``[-1, 1]`` units.

        ``a~ = clip(tanh(u') + clip(eps, -c, c), -1, 1)``, ``eps ~ N(0, target_policy_noise^2)``,
        ``c = target_noise_clip``: the noise is added after the squash, in half-range units, so it
        does not vanish where the target actor saturates; the clip to the action range is
        Algorithm 1's (Fujimoto et al. 2018). No gradient flows through the target.

        Args:
            next_obs: ``(B, obs_dim)`` float32 normalized observations.

        Returns:
            ``(B, act_dim)`` in ``[-1, 1]`` (:meth:`target_action` maps it to env units).
        """
        t = torch.tanh(self.actor_target.pre_squash(next_obs))
        eps = (torch.randn_like(t) * self.target_policy_noise).clamp(
            -self.target_noise_clip, self.target_noise_clip
        )
        return torch.clamp(t + eps, -1.0, 1.0)


class DDPG(_DeterministicAlgo):
    """Deep Deterministic Policy Gradient (Lillicrap et al. 2016, Algorithm 1) with one critic.

    * Critic: ``y = r + gamma (1 - terminated) Q'(s', mu'(s'))``, loss ``mean (Q(s, a) - y)^2``.
    * Actor: deterministic policy gradient ``grad_theta mean Q(s, mu_theta(s))`` (Silver et al.
      2014, "Deterministic Policy Gradient Algorithms", Theorem 1 / eq. 6).
    * Targets: Polyak with ``tau`` after every update. Exploration: Gaussian (CleanRL, TD3 paper)
      or, with ``ou_noise``, Ornstein-Uhlenbeck (the original paper, sec. 3 and supplementary
      sec. 7), either added to the squashed action in half-range units and clipped to the bounds.
    """

    name = "ddpg"
    n_critics = 1


def make_algo(cfg: TrainConfig, obs_dim: int, action_low, action_high,
              num_envs: int) -> OffPolicyAlgo:
    """Build the algorithm named by ``cfg.algo`` (the class :mod:`robotac.registry` names).

    Raises:
        ValueError: for an unknown algorithm name.
    """
    cls = registry.get(cfg.algo or registry.DEFAULT_ALGO).load()
    return cls(obs_dim, action_low, action_high, cfg, num_envs)
