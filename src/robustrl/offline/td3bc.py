"""TD3+BC (Fujimoto & Gu, *A Minimalist Approach to Offline Reinforcement Learning*, NeurIPS 2021).

TD3's twin critics with target-policy smoothing and delayed actor updates; the actor maximises
``λ·Q(s, π(s))`` with ``λ = α / mean|Q|`` minus the squared distance to the data action. The twin critics are one
fused :class:`~robustrl.agents.critics.CriticEnsemble`.

In the online phase (:class:`~robustrl.offline.base.RO2OTerms`) the TD target subtracts RO2O's
``β·std_k Q'_k(s′, ã′)``, the critic loss adds the Q smoothness and the actor loss the policy smoothness on
perturbed states.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import gymnasium as gym
import torch

from robustrl.agents.common import make_adam, polyak_, seeded_init
from robustrl.agents.td3 import smoothed_target_action, td3_target
from robustrl.offline.base import OfflineBatch, OfflineLearnerConfig, RO2OTerms, critic_ensemble, set_obs_normalizer
from robustrl.offline.data import OfflineDataset
from robustrl.offline.losses import policy_smoothness, q_smoothness, td3bc_actor_loss, uncertainty_penalty
from robustrl.policies.actors import DeterministicActorPolicy
from robustrl.policies.features import flat_dim

__all__ = ["TD3BC", "TD3BCConfig"]


@dataclass(frozen=True)
class TD3BCConfig(OfflineLearnerConfig):
    """TD3+BC hyperparameters (the paper's: α = 2.5, policy noise 0.2 clipped at 0.5, actor every 2 updates)."""

    normalize_obs: bool = True
    """Normalise observations by the dataset's mean and std (the paper does)."""
    alpha: float = 2.5
    """α of λ = α / mean|Q|: the weight of the Q term against behaviour cloning."""
    policy_noise: float = 0.2
    """Std of the target-policy smoothing noise (actions in [−1, 1])."""
    noise_clip: float = 0.5
    """Clip of that noise."""
    policy_delay: int = 2
    """Critic updates per actor update."""

    def validate(self) -> None:
        """Raise a ``ValueError`` naming the first bad field."""
        super().validate()
        if not self.alpha >= 0 or self.policy_noise < 0 or self.noise_clip < 0 or self.policy_delay < 1:
            raise ValueError("TD3BCConfig: alpha, policy_noise, noise_clip must be ≥ 0 and policy_delay ≥ 1")


class TD3BC:
    """A TD3+BC learner on a fixed dataset (see :class:`robustrl.offline.iql.IQL` for the arguments)."""

    def __init__(
        self, observation_space: gym.Space, action_space: gym.spaces.Box, data: OfflineDataset, cfg: TD3BCConfig,
        *, seed: int,
    ) -> None:  # fmt: skip
        cfg.validate()
        self.cfg = cfg
        obs_dim, act_dim = flat_dim(observation_space), flat_dim(action_space)
        with seeded_init(seed):
            self.policy = DeterministicActorPolicy(
                observation_space, action_space, hidden=cfg.hidden, normalize_obs=cfg.normalize_obs,
                n_critics=cfg.num_critics, critic_scaled_actions=True,
            )  # fmt: skip
            self.critics, self._export = critic_ensemble(self.policy, obs_dim, act_dim, cfg)
        set_obs_normalizer(self.policy, data)
        self.target_critics = copy.deepcopy(self.critics).requires_grad_(False)
        self.target_mu = copy.deepcopy(self.policy.mu).requires_grad_(False)
        targets: list[torch.Tensor] = [*self.target_critics.parameters(), *self.target_mu.parameters()]
        sources: list[torch.Tensor] = [*self.critics.parameters(), *self.policy.mu.parameters()]
        self._pairs = (targets, sources)
        self.critic_optimizer = make_adam(self.critics.parameters(), cfg.learning_rate)
        self.actor_optimizer = make_adam(self.policy.mu.parameters(), cfg.learning_rate)
        self.noise_generator = torch.Generator().manual_seed(seed)
        self.updates = 0

    def update(self, b: OfflineBatch, ro2o: RO2OTerms | None = None) -> dict[str, torch.Tensor]:
        """One critic update, and an actor update every ``policy_delay`` calls (RO2O's terms when given)."""
        cfg = self.cfg
        n_b = b.obs.shape[0]
        feats, next_feats = self.policy.features(torch.cat([b.obs, b.next_obs])).split(n_b)
        with torch.no_grad():
            mu = self.target_mu(next_feats)
            eps = torch.randn(mu.shape, generator=self.noise_generator, device=mu.device)
            next_a = smoothed_target_action(mu, eps, cfg.policy_noise, cfg.noise_clip)
            next_q = self.target_critics.q_values(torch.cat([next_feats, next_a], -1))
            y = td3_target(b.rewards, next_q, b.terminated, cfg.gamma)
            if ro2o is not None and ro2o.beta > 0:
                y = y - cfg.gamma * (1.0 - b.terminated) * uncertainty_penalty(next_q, ro2o.beta)
        q_out = self.critics(torch.cat([feats, b.actions], -1))
        critic_loss = self.critics.loss(q_out, y)
        out = {"train/critic_loss": critic_loss.detach()}
        noise = ro2o.noise if ro2o is not None else None
        pert = None
        if ro2o is not None and noise is not None:
            n = noise.shape[0]
            pert = (feats.detach().unsqueeze(0) + noise).flatten(0, 1)  # [n·B, F]
            q_pert = self.critics.q_values(torch.cat([pert, b.actions.repeat(n, 1)], -1)).unflatten(1, (n, n_b))
            smooth_q = q_smoothness(self.critics.expectation(q_out), q_pert)
            critic_loss = critic_loss + ro2o.q_weight * smooth_q
            out["train/q_smoothness"] = smooth_q.detach()
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_optimizer.step()
        self.updates += 1
        if self.updates % cfg.policy_delay == 0:
            pi = self.policy.mu(feats)
            q = self.critics.q_values(torch.cat([feats, pi], -1), detach=True)[0]
            actor_loss = td3bc_actor_loss(q, pi, b.actions, cfg.alpha)
            if ro2o is not None and pert is not None:
                smooth_pi = policy_smoothness(pi, self.policy.mu(pert).unflatten(0, (n, n_b)))
                actor_loss = actor_loss + ro2o.policy_weight * smooth_pi
                out["train/policy_smoothness"] = smooth_pi.detach()
            self.actor_optimizer.zero_grad(set_to_none=True)
            actor_loss.backward()
            self.actor_optimizer.step()
            polyak_(*self._pairs, cfg.tau)
            out["train/actor_loss"] = actor_loss.detach()
        return out

    def sync_policy(self) -> None:
        """Copy the trained critic ensemble into the policy's critics."""
        self._export()
