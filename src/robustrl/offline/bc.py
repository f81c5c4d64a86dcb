"""Behaviour cloning: the actor regressed onto the data actions.

Box actions: the deterministic actor, squared error; Discrete actions: a categorical policy, cross-entropy.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import torch
import torch.nn.functional as F

from robustrl.agents.common import make_adam, seeded_init
from robustrl.offline.base import OfflineBatch, OfflineLearnerConfig, set_obs_normalizer
from robustrl.offline.data import OfflineDataset
from robustrl.policies.actors import DeterministicActorPolicy
from robustrl.policies.networks import ActorCriticPolicy

__all__ = ["BC", "BCConfig", "categorical_policy"]


@dataclass(frozen=True)
class BCConfig(OfflineLearnerConfig):
    """Behaviour-cloning hyperparameters."""

    normalize_obs: bool = True
    """Normalise observations by the dataset's mean and std."""


def categorical_policy(
    observation_space: gym.Space, action_space: gym.spaces.Discrete, cfg: OfflineLearnerConfig
) -> ActorCriticPolicy:
    """The categorical policy of the Discrete-action learners (ReLU MLPs of ``cfg.hidden``; value head unused)."""
    return ActorCriticPolicy(observation_space, action_space, pi_hidden=cfg.hidden, vf_hidden=cfg.hidden,
                             activation="relu", normalize_obs=cfg.normalize_obs)  # fmt: skip


class BC:
    """A behaviour-cloning learner (see :class:`robustrl.offline.iql.IQL` for the arguments).

    Box actions: a deterministic actor, squared error to the data action. Discrete actions: a categorical
    policy (:func:`categorical_policy`), cross-entropy of the data action.
    """

    def __init__(
        self, observation_space: gym.Space, action_space: gym.spaces.Box | gym.spaces.Discrete, data: OfflineDataset,
        cfg: BCConfig, *, seed: int,
    ) -> None:  # fmt: skip
        cfg.validate()
        self.cfg = cfg
        with seeded_init(seed):
            self.policy: DeterministicActorPolicy | ActorCriticPolicy
            if isinstance(action_space, gym.spaces.Discrete):
                self.policy = categorical_policy(observation_space, action_space, cfg)
            else:
                self.policy = DeterministicActorPolicy(observation_space, action_space, hidden=cfg.hidden,
                                                       normalize_obs=cfg.normalize_obs, with_critic=False)  # fmt: skip
        set_obs_normalizer(self.policy, data)
        pi = self.policy
        trained = pi.parameters() if isinstance(pi, ActorCriticPolicy) else pi.mu.parameters()
        self.optimizer = make_adam(trained, cfg.learning_rate)
        self.updates = 0

    def update(self, b: OfflineBatch) -> dict[str, torch.Tensor]:
        """One step of the policy towards the data actions (squared error, or cross-entropy for Discrete)."""
        pi = self.policy
        if isinstance(pi, ActorCriticPolicy):
            loss = F.cross_entropy(pi.logits(b.obs), b.actions)
        else:
            loss = (pi.mu(pi.features(b.obs)) - b.actions).square().sum(-1).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.updates += 1
        return {"train/actor_loss": loss.detach()}

    def sync_policy(self) -> None:
        """Nothing to copy (BC has no critics)."""
