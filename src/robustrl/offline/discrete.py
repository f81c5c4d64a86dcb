"""Offline learners for Discrete actions: behaviour cloning, discrete CQL, and discrete IQL / RIQL.

* BC (:class:`~robustrl.offline.bc.BC` itself): a categorical policy
  (:func:`~robustrl.offline.bc.categorical_policy`) fitted to the data actions by cross-entropy.
* :class:`DiscreteCQL` (Kumar et al., NeurIPS 2020, the discrete variant): a Q network
  (:class:`~robustrl.policies.networks.QNetworkPolicy`, the saved policy acts greedily on it) trained by the
  double-DQN TD loss plus ``α · E_s[T · log Σ_a exp(Q(s, a) / T) − Q(s, a_data)]``; the target network follows
  by Polyak averaging (``tau``).

* :class:`DiscreteIQL` (``--algo iql`` / ``riql``): IQL's three losses with the action one-hot encoded into the
  fused critic ensemble ``Q_k(s, onehot(a))``: V by expectile regression onto the min (IQL) or α-quantile
  (RIQL) of the target critics, Q by MSE (IQL) or RIQL's Huber loss onto ``r + γ(1 − d)V(s′)``, and a
  categorical policy by advantage-weighted cross-entropy ``exp(β·A)·(−log π(a|s))``.

``robustrl train-offline --algo bc|cql|iql|riql`` picks these when the dataset's actions are Discrete (TD3+BC
needs Box actions and is refused, naming the choice).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import gymnasium as gym
import torch
import torch.nn.functional as F

from robustrl.agents.common import make_adam, polyak_, seeded_init
from robustrl.agents.critics import CriticEnsemble
from robustrl.offline.base import OfflineBatch, OfflineLearnerConfig, set_obs_normalizer
from robustrl.offline.bc import BC, BCConfig, categorical_policy
from robustrl.offline.data import OfflineDataset
from robustrl.offline.iql import IQLConfig
from robustrl.offline.losses import awr_weights, ensemble_quantile, expectile_loss, huber_loss
from robustrl.policies.features import flat_dim
from robustrl.policies.networks import QNetworkPolicy

__all__ = ["DISCRETE_ALGORITHMS", "DiscreteCQL", "DiscreteCQLConfig", "DiscreteIQL"]


@dataclass(frozen=True)
class DiscreteCQLConfig(OfflineLearnerConfig):
    """Discrete CQL hyperparameters (α = 1 as d3rlpy's DiscreteCQL)."""

    cql_alpha: float = 1.0
    """Weight of the conservative penalty."""
    temperature: float = 1.0
    """Temperature of the log-sum-exp."""
    normalize_obs: bool = True
    """Normalise observations by the dataset's mean and std."""

    def validate(self) -> None:
        """Raise a ``ValueError`` naming the first bad field."""
        super().validate()
        if not (math.isfinite(self.cql_alpha) and self.cql_alpha >= 0):
            raise ValueError(f"DiscreteCQLConfig.cql_alpha must be ≥ 0, got {self.cql_alpha}")
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise ValueError(f"DiscreteCQLConfig.temperature must be > 0, got {self.temperature}")


class DiscreteCQL:
    """Discrete CQL on a fixed dataset (see :class:`robustrl.offline.iql.IQL` for the arguments)."""

    def __init__(
        self, observation_space: gym.Space, action_space: gym.spaces.Discrete, data: OfflineDataset,
        cfg: DiscreteCQLConfig, *, seed: int,
    ) -> None:  # fmt: skip
        cfg.validate()
        self.cfg = cfg
        with seeded_init(seed):
            self.policy = QNetworkPolicy(observation_space, action_space, hidden=cfg.hidden,
                                         normalize_obs=cfg.normalize_obs)  # fmt: skip
        set_obs_normalizer(self.policy, data)
        self.target = copy.deepcopy(self.policy).requires_grad_(False)
        self.optimizer = make_adam(self.policy.q_net.parameters(), cfg.learning_rate)
        self._online_params: list[torch.Tensor] = list(self.policy.q_net.parameters())
        self._target_params: list[torch.Tensor] = list(self.target.q_net.parameters())
        self.updates = 0

    def update(self, b: OfflineBatch) -> dict[str, torch.Tensor]:
        """One step of the TD loss plus the conservative penalty; then the target network's Polyak step."""
        cfg = self.cfg
        with torch.no_grad():
            best = self.policy.q_values(b.next_obs).argmax(-1, keepdim=True)  # double DQN: online argmax
            next_q = self.target.q_values(b.next_obs).gather(1, best).squeeze(1)
            target = b.rewards + cfg.gamma * (1.0 - b.terminated) * next_q
        q = self.policy.q_values(b.obs)
        q_data = q.gather(1, b.actions.view(-1, 1)).squeeze(1)
        td = F.mse_loss(q_data, target)
        penalty = (cfg.temperature * torch.logsumexp(q / cfg.temperature, dim=1) - q_data).mean()
        loss = td + cfg.cql_alpha * penalty
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        polyak_(self._target_params, self._online_params, cfg.tau)
        self.updates += 1
        return {"train/critic_loss": td.detach(), "train/cql_penalty": penalty.detach(),
                "train/q": q_data.mean().detach()}  # fmt: skip

    def sync_policy(self) -> None:
        """Nothing to copy (the Q network is the policy)."""


class DiscreteIQL:
    """IQL / RIQL on Discrete actions (see the module doc; :class:`robustrl.offline.iql.IQL` for the arguments)."""

    def __init__(
        self, observation_space: gym.Space, action_space: gym.spaces.Discrete, data: OfflineDataset, cfg: IQLConfig,
        *, seed: int,
    ) -> None:  # fmt: skip
        cfg.validate()
        self.cfg = cfg
        self.num_actions = int(action_space.n)
        obs_dim = flat_dim(observation_space)
        with seeded_init(seed):
            self.policy = categorical_policy(observation_space, action_space, cfg)
            self.critics = CriticEnsemble(obs_dim + self.num_actions, cfg.hidden, "relu", cfg.num_critics)
            self.value = CriticEnsemble(obs_dim, cfg.hidden, "relu", 1)
        set_obs_normalizer(self.policy, data)
        self.target_critics = copy.deepcopy(self.critics).requires_grad_(False)
        self._critic_params: list[torch.Tensor] = list(self.critics.parameters())
        self._target_params: list[torch.Tensor] = list(self.target_critics.parameters())
        trained = [*self.policy.parameters(), *self.critics.parameters(), *self.value.parameters()]
        self.optimizer = make_adam(trained, cfg.learning_rate)
        self.updates = 0

    def update(self, b: OfflineBatch) -> dict[str, torch.Tensor]:
        """One step of V, the critics and the policy (disjoint parameters: one backward pass)."""
        cfg, n = self.cfg, b.obs.shape[0]
        feats, next_feats = self.policy.features(torch.cat([b.obs, b.next_obs])).split(n)
        x = torch.cat([feats, F.one_hot(b.actions, self.num_actions).to(feats.dtype)], -1)
        with torch.no_grad():
            target_q = self.target_critics.q_values(x)
            q_t = ensemble_quantile(target_q, cfg.quantile) if cfg.v_target == "quantile" else target_q.min(0).values
            y = b.rewards + cfg.gamma * (1.0 - b.terminated) * self.value.q_values(next_feats)[0]
        adv = q_t - self.value.q_values(feats)[0]
        v_loss = expectile_loss(adv, cfg.expectile)
        diff = self.critics.q_values(x) - y
        q_loss = (huber_loss(diff, cfg.sigma) if cfg.q_loss == "huber" else 0.5 * diff.square()).mean(1).sum()
        weights = awr_weights(adv, cfg.beta, cfg.max_weight)
        actor_loss = (weights * F.cross_entropy(self.policy.logits(b.obs), b.actions, reduction="none")).mean()
        self.optimizer.zero_grad(set_to_none=True)
        (v_loss + q_loss + actor_loss).backward()
        self.optimizer.step()
        polyak_(self._target_params, self._critic_params, cfg.tau)
        self.updates += 1
        return {"train/value_loss": v_loss.detach(), "train/q_loss": q_loss.detach(),
                "train/actor_loss": actor_loss.detach(), "train/adv_weight": weights.mean()}  # fmt: skip

    def sync_policy(self) -> None:
        """Nothing to copy (the saved policy is the categorical actor; the critics stay with the learner)."""


DISCRETE_ALGORITHMS: dict[str, tuple[type, type]] = {
    "bc": (BC, BCConfig),
    "cql": (DiscreteCQL, DiscreteCQLConfig),
    "iql": (DiscreteIQL, IQLConfig),
    "riql": (DiscreteIQL, IQLConfig),
}
"""The learners and configs ``train-offline`` uses for a dataset of Discrete actions, by algorithm name."""
