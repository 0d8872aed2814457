"""CrossQ: SAC without target networks, with Batch Renormalization in wide critics.

Source: Bhatt, Palenicek, Belousov, Argus, Amiranashvili, Brox & Peters 2024, "CrossQ: Batch
Normalization in Deep Reinforcement Learning for Greater Sample Efficiency and Simplicity"
(ICLR). Its three design choices (sec. 3), on top of SAC (:class:`robotac.algos.SAC`):

1. No target networks (sec. 3.1): the bootstrap uses the online critic itself, under a stop-
   gradient.
2. Batch normalization in the critic (sec. 3.2), here Batch Renormalization (Ioffe 2017) as in
   the paper's released code, sbx and sb3-contrib (:class:`policies.batch_renorm.BatchRenorm`),
   with the *joint forward pass* (Fig. 3): ``(s, a)`` and ``(s', a')`` are concatenated into
   one batch of ``2B`` rows, so the statistics are those of the mixture of both distributions
   (a separate pass over ``(s', a')`` would meet statistics it has never contributed to); the
   ``2B`` Q-values are split back into ``Q(s, a)`` and ``Q(s', a')``.
3. Wider critics (sec. 3.3): 2048 units per hidden layer (``critic_hidden``).

Defaults (:mod:`robotac.registry`, the paper's appendix as sbx and sb3-contrib take it): learning
rate 1e-3, Adam betas ``(0.5, 0.999)`` for actor and critic (the temperature keeps Adam's
defaults, as in sb3-contrib), policy delay 3, Batch Renormalization momentum 0.01 with a 100k-
update batch-norm warm-up, automatic temperature towards ``-action_dim`` as SAC.

The actor is SAC's squashed Gaussian (:class:`policies.networks.SquashedGaussianActor`), without
the batch renormalization sb3-contrib also puts in its actor: the actor then has no train/eval
dependent layers, is exported to ONNX like SAC's and runs the same in training and on the robot.
Only the actor ships; the critic and its statistics live in checkpoints.
"""

from __future__ import annotations

import torch

from policies.batch_renorm import BatchRenormQEnsemble
from robotac.algos import SAC
from robotac.buffer import Batch

__all__ = ["CrossQ"]


class CrossQ(SAC):
    """CrossQ (Bhatt et al. 2024): SAC's actor and temperature, a target-free BRN critic.

    * Critic (sec. 3.1-3.2, Fig. 3; SAC's soft TD target of Haarnoja et al. 2018b, eq. 5-6, with
      the online critic in place of the target network):
      ``[Q(s, a); Q(s', a')] = Q_theta([s; s'], [a; a'])`` in one training-mode pass,
      ``a' ~ pi(.|s')``; ``y = r + gamma * (1 - terminated) * sg(min_k Q_k(s', a') -
      alpha * log pi(a'|s'))``; loss ``sum_k mean (Q_k(s, a) - y)^2`` (sb3-contrib halves it;
      Adam does not see the factor).
    * Actor (SAC eq. 7, reparameterized): ``J_pi = mean(alpha * log pi(a~|s) - min_k Q_k(s,
      a~))`` with the critic in eval mode: its running statistics, not this batch's, and
      untouched by the actor's batch (sb3-contrib does the same).
    * Temperature: SAC's eq. 18, updated with the actor every ``policy_delay`` critic updates.
    * No target networks: nothing to Polyak-average; ``tau`` is unused.
    """

    name = "crossq"

    def _make_critics(self, obs_dim: int, act_dim: int) -> None:
        """The wide Batch Renormalization critic (sec. 3.2-3.3), left in eval mode; no target."""
        cfg = self.cfg
        self.critic = BatchRenormQEnsemble(
            obs_dim, act_dim, cfg.critic_hidden, n_critics=2,
            momentum=cfg.batch_renorm_momentum, warmup_steps=cfg.batch_renorm_warmup,
        ).to(self.device).eval()

    def modules(self):
        return {"actor": self.actor, "critic": self.critic}

    def critic_loss(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Target-free soft TD loss with the joint forward pass. Returns ``(loss, q_mean)``, 0-d.

        The one training-mode pass moves the Batch Renormalization statistics by one batch (and
        counts one step towards the warm-up); the critic is back in eval mode on return.
        """
        alpha = self.alpha
        n = batch.obs.shape[0]
        with torch.no_grad():
            next_action, next_log_prob, _ = self.actor(batch.next_obs)
        obs = torch.cat([batch.obs, batch.next_obs])
        unit_action = torch.cat([self.actor.to_unit(batch.action),
                                 self.actor.to_unit(next_action)])
        self.critic.train()
        q, q_next = self.critic(obs, unit_action).split(n, dim=1)  # (2, B) each
        self.critic.eval()
        with torch.no_grad():
            v_next = q_next.min(dim=0).values - alpha * next_log_prob
            y = batch.reward + self.gamma * (1.0 - batch.terminated) * v_next
        loss = ((q - y) ** 2).mean(dim=1).sum()
        return loss, q.detach().mean()

    def actor_loss(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """SAC's ``J_pi`` with the critic in eval mode (frozen by the caller); ``(loss, (B,))``."""
        self.critic.eval()
        return super().actor_loss(batch)

    def _update_targets(self) -> None:
        """No target networks (sec. 3.1): nothing to update."""
