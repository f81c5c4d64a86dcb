"""Offline learners for Discrete actions: behaviour cloning and discrete CQL.

* :class:`DiscreteBC`: a categorical policy (:class:`~robustrl.policies.ActorCriticPolicy`) fitted to the data
  actions by cross-entropy; its value head is left untrained.
* :class:`DiscreteCQL` (Kumar et al., NeurIPS 2020, the discrete variant): a Q network
  (:class:`~robustrl.policies.networks.QNetworkPolicy`, the saved policy acts greedily on it) trained by the
  double-DQN TD loss plus ``α · E_s[T · log Σ_a exp(Q(s, a) / T) − Q(s, a_data)]``; the target network follows
  by Polyak averaging (``tau``).

``robustrl train-offline --algo bc|cql`` picks these when the dataset's actions are Discrete (IQL, RIQL and
TD3+BC need Box actions and are refused, naming the choice).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import gymnasium as gym
import torch
import torch.nn.functional as F

from robustrl.agents.common import make_adam, polyak_, seeded_init
from robustrl.offline.base import OfflineBatch, OfflineLearnerConfig, set_obs_normalizer
from robustrl.offline.bc import BCConfig
from robustrl.offline.data import OfflineDataset
from robustrl.policies.networks import ActorCriticPolicy, QNetworkPolicy

__all__ = ["DISCRETE_ALGORITHMS", "DiscreteBC", "DiscreteCQL", "DiscreteCQLConfig"]


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


class DiscreteBC:
    """Behaviour cloning of Discrete actions (see :class:`robustrl.offline.iql.IQL` for the arguments)."""

    def __init__(
        self, observation_space: gym.Space, action_space: gym.spaces.Discrete, data: OfflineDataset, cfg: BCConfig,
        *, seed: int,
    ) -> None:  # fmt: skip
        cfg.validate()
        self.cfg = cfg
        with seeded_init(seed):
            self.policy = ActorCriticPolicy(observation_space, action_space, pi_hidden=cfg.hidden,
                                            vf_hidden=cfg.hidden, activation="relu", normalize_obs=cfg.normalize_obs)
        set_obs_normalizer(self.policy, data)
        self.optimizer = make_adam(self.policy.parameters(), cfg.learning_rate)
        self.updates = 0

    def update(self, b: OfflineBatch) -> dict[str, torch.Tensor]:
        """One cross-entropy step of the policy's logits towards the data actions."""
        loss = F.cross_entropy(self.policy.logits(b.obs), b.actions)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.updates += 1
        return {"train/actor_loss": loss.detach()}

    def sync_policy(self) -> None:
        """Nothing to copy (the policy is what is trained)."""


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


DISCRETE_ALGORITHMS: dict[str, tuple[type, type]] = {
    "bc": (DiscreteBC, BCConfig),
    "cql": (DiscreteCQL, DiscreteCQLConfig),
}
"""The learners and configs ``train-offline`` uses for a dataset of Discrete actions, by algorithm name."""
