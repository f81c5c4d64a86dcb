"""Behaviour cloning: the deterministic actor regressed onto the data actions (squared error)."""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import torch

from robustrl.agents.common import make_adam, seeded_init
from robustrl.offline.base import OfflineBatch, OfflineLearnerConfig, set_obs_normalizer
from robustrl.offline.data import OfflineDataset
from robustrl.policies.actors import DeterministicActorPolicy

__all__ = ["BC", "BCConfig"]


@dataclass(frozen=True)
class BCConfig(OfflineLearnerConfig):
    """Behaviour-cloning hyperparameters."""

    normalize_obs: bool = True
    """Normalise observations by the dataset's mean and std."""


class BC:
    """A behaviour-cloning learner (see :class:`robustrl.offline.iql.IQL` for the arguments)."""

    def __init__(
        self, observation_space: gym.Space, action_space: gym.spaces.Box, data: OfflineDataset, cfg: BCConfig,
        *, seed: int,
    ) -> None:  # fmt: skip
        cfg.validate()
        self.cfg = cfg
        with seeded_init(seed):
            self.policy = DeterministicActorPolicy(observation_space, action_space, hidden=cfg.hidden,
                                                   normalize_obs=cfg.normalize_obs, with_critic=False)  # fmt: skip
        set_obs_normalizer(self.policy, data)
        self.optimizer = make_adam(self.policy.mu.parameters(), cfg.learning_rate)
        self.updates = 0

    def update(self, b: OfflineBatch) -> dict[str, torch.Tensor]:
        """One squared-error step of the actor towards the data actions."""
        loss = (self.policy.mu(self.policy.features(b.obs)) - b.actions).square().sum(-1).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.updates += 1
        return {"train/actor_loss": loss.detach()}

    def sync_policy(self) -> None:
        """Nothing to copy (BC has no critics)."""
