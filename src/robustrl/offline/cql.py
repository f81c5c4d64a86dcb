"""CQL (Kumar et al., *Conservative Q-Learning for Offline Reinforcement Learning*, NeurIPS 2020), CQL(H).

SAC with automatic temperature, plus the conservative penalty on each critic:
``α_cql · E_s[log Σ_j exp Q(s, a_j) − Q(s, a)]`` over ``n`` uniform actions (importance weight ``1/2^A``) and
``n`` actions of the current policy at ``s`` and at ``s′``, all valued at ``s`` (weight ``1/π(a|·)``), as in the
reference implementation; the critics are one fused :class:`~robustrl.agents.critics.CriticEnsemble` and all
``3n + 1`` action sets go through it in one batched pass.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import gymnasium as gym
import torch

from robustrl.agents.common import make_adam, polyak_, seeded_init
from robustrl.agents.sac import sac_actor_loss, sac_temperature_loss, soft_td_target, squashed_log_prob
from robustrl.offline.base import OfflineBatch, OfflineLearnerConfig, critic_ensemble, set_obs_normalizer
from robustrl.offline.data import OfflineDataset
from robustrl.offline.losses import cql_penalty
from robustrl.policies.actors import SquashedGaussianActorPolicy
from robustrl.policies.features import flat_dim

__all__ = ["CQL", "CQLConfig"]


@dataclass(frozen=True)
class CQLConfig(OfflineLearnerConfig):
    """CQL hyperparameters (the reference's locomotion setting: α_cql = 5, 10 sampled actions)."""

    cql_alpha: float = 5.0
    """Weight of the conservative penalty."""
    num_actions: int = 10
    """n: sampled actions of each kind per state."""
    temperature: float = 1.0
    """Temperature of the log-sum-exp."""
    actor_learning_rate: float = 1e-4
    """Adam learning rate of the actor and the SAC temperature."""

    def validate(self) -> None:
        """Raise a ``ValueError`` naming the first bad field."""
        super().validate()
        if not self.cql_alpha >= 0 or self.num_actions < 1 or not self.temperature > 0:
            raise ValueError("CQLConfig: cql_alpha must be ≥ 0, num_actions ≥ 1, temperature > 0")
        if not self.actor_learning_rate > 0:
            raise ValueError(f"CQLConfig.actor_learning_rate must be > 0, got {self.actor_learning_rate}")


class CQL:
    """A CQL learner on a fixed dataset (see :class:`robustrl.offline.iql.IQL` for the arguments)."""

    def __init__(
        self, observation_space: gym.Space, action_space: gym.spaces.Box, data: OfflineDataset, cfg: CQLConfig,
        *, seed: int,
    ) -> None:  # fmt: skip
        cfg.validate()
        self.cfg = cfg
        obs_dim, self.act_dim = flat_dim(observation_space), flat_dim(action_space)
        with seeded_init(seed):
            self.policy = SquashedGaussianActorPolicy(
                observation_space, action_space, hidden=cfg.hidden, normalize_obs=cfg.normalize_obs,
                n_critics=cfg.num_critics, critic_scaled_actions=True,
            )  # fmt: skip
            self.critics, self._export = critic_ensemble(self.policy, obs_dim, self.act_dim, cfg)
        set_obs_normalizer(self.policy, data)
        self.target_critics = copy.deepcopy(self.critics).requires_grad_(False)
        targets: list[torch.Tensor] = list(self.target_critics.parameters())
        self._pairs = (targets, list[torch.Tensor](self.critics.parameters()))
        self.log_alpha = torch.zeros((), requires_grad=True)
        actor = [*self.policy.latent_pi.parameters(), *self.policy.mu.parameters(), *self.policy.log_std.parameters()]
        self.critic_optimizer = make_adam(self.critics.parameters(), cfg.learning_rate)
        self.actor_optimizer = make_adam([*actor, self.log_alpha], cfg.actor_learning_rate)
        self.sample_generator = torch.Generator().manual_seed(seed)
        self.updates = 0

    def _sample(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised squashed actions in ``[−1, 1]^A`` at features ``feats [M, F]``, and their log-densities."""
        h = self.policy.latent_pi(feats)
        pi = self.policy
        mean, log_std = pi.mu(h), pi.log_std(h).clamp(pi.LOG_STD_MIN, pi.LOG_STD_MAX)
        u = mean + log_std.exp() * torch.randn(mean.shape, generator=self.sample_generator)
        return torch.tanh(u), squashed_log_prob(u, mean, log_std)

    def update(self, b: OfflineBatch) -> dict[str, torch.Tensor]:
        """One update of the critics (TD + conservative penalty), the actor and the temperature."""
        cfg, n_b, n = self.cfg, b.obs.shape[0], self.cfg.num_actions
        feats, next_feats = self.policy.features(torch.cat([b.obs, b.next_obs])).split(n_b)
        alpha = self.log_alpha.detach().exp()
        # policy actions: one per state for the actor loss (differentiated); without gradients, one at s′ for the
        # TD target and n at s and n at s′ for the penalty
        a_new, logp = self._sample(feats)
        with torch.no_grad():
            a_all, logp_all = self._sample(torch.cat([next_feats, feats.repeat(n, 1), next_feats.repeat(n, 1)]))
            next_a, a_pen = a_all[:n_b], a_all[n_b:]
            next_logp, logp_pen = logp_all[:n_b], logp_all[n_b:]
            next_q = self.target_critics.q_values(torch.cat([next_feats, next_a], -1)).min(0).values
            y = soft_td_target(b.rewards, next_q, next_q, next_logp, b.terminated, alpha, cfg.gamma)
        rand = torch.rand((n * n_b, self.act_dim), generator=self.sample_generator) * 2 - 1
        feats_n = feats.repeat(n, 1)
        # Q(s, ·) of the data action, n uniform actions, n actions of π(s) and n of π(s′) (all valued at s)
        x = torch.cat([torch.cat([feats, b.actions], -1), torch.cat([feats_n, rand], -1),
                       torch.cat([feats.repeat(2 * n, 1), a_pen], -1)])  # fmt: skip
        q_all = self.critics.q_values(x)  # [K, B + 3nB]
        k = q_all.shape[0]
        q_data = q_all[:, :n_b]
        q_rand = q_all[:, n_b:n_b + n * n_b] - self.act_dim * math.log(0.5)
        q_pi = q_all[:, n_b + n * n_b:] - logp_pen
        sampled = torch.cat([q_rand.reshape(k, n, n_b), q_pi.reshape(k, 2 * n, n_b)], 1).transpose(1, 2)
        td = 0.5 * (q_data - y).square().mean(1).sum()
        penalty = cql_penalty(sampled, q_data, cfg.temperature)
        critic_loss = td + cfg.cql_alpha * penalty
        q_new = self.critics.q_values(torch.cat([feats, a_new], -1), detach=True).min(0).values
        actor_loss = sac_actor_loss(q_new, logp, alpha)
        alpha_loss = sac_temperature_loss(self.log_alpha, logp, -float(self.act_dim))
        self.critic_optimizer.zero_grad(set_to_none=True)
        self.actor_optimizer.zero_grad(set_to_none=True)
        (critic_loss + actor_loss + alpha_loss).backward()
        self.critic_optimizer.step()
        self.actor_optimizer.step()
        polyak_(*self._pairs, cfg.tau)
        self.updates += 1
        return {"train/critic_loss": td.detach(), "train/cql_penalty": penalty.detach(),
                "train/actor_loss": actor_loss.detach(), "train/alpha": alpha}  # fmt: skip

    def sync_policy(self) -> None:
        """Copy the trained critic ensemble into the policy's critics."""
        self._export()
