"""What every offline learner shares: the config base, the dataset on tensors, minibatches, the actor and critics.

A learner trains the actor of a robustrl policy (:class:`~robustrl.policies.DeterministicActorPolicy`, or
:class:`~robustrl.policies.SquashedGaussianActorPolicy` for CQL) whose observation normaliser is set once from
the dataset (``normalize_obs``), and a :class:`~robustrl.agents.critics.CriticEnsemble` of ``K`` critics (one
batched matmul per layer, no per-critic loop) on ``[normalised obs, action in [−1, 1]]``; after each round of
updates the ensemble's weights are copied into the policy's own critics, so the saved ``policy.zip`` has
``critic(obs, action)`` (adversarial corruption and the critic attack use it).

In the online phase (:mod:`robustrl.offline.online`) an update also gets :class:`RO2OTerms`: the learners that
support it (IQL/RIQL, TD3+BC) add RO2O's uncertainty penalty and smoothness terms to their losses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch

from robustrl.agents.critics import CriticEnsemble
from robustrl.offline.data import OfflineDataset
from robustrl.policies.actors import scale_action

__all__ = [
    "OfflineBatch",
    "OfflineBuffer",
    "OfflineLearnerConfig",
    "RO2OTerms",
    "critic_ensemble",
    "set_obs_normalizer",
]


@dataclass(frozen=True)
class OfflineLearnerConfig:
    """Hyperparameters every offline learner has (CORL's defaults for D4RL locomotion)."""

    hidden: tuple[int, ...] = (256, 256)
    """Hidden widths of the actor, the critics and the value network."""
    batch_size: int = 256
    """Transitions per gradient update."""
    learning_rate: float = 3e-4
    """Adam learning rate of every network."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak rate of the target critics."""
    normalize_obs: bool = False
    """Normalise observations by the dataset's mean and std (kept inside the saved policy)."""
    num_critics: int = 2
    """K: critics in the ensemble."""

    def validate(self) -> None:
        """Raise a ``ValueError`` naming the first bad field."""
        name = type(self).__name__
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ValueError(f"{name}.hidden must be positive widths, got {self.hidden}")
        if self.batch_size < 1:
            raise ValueError(f"{name}.batch_size must be ≥ 1, got {self.batch_size}")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(f"{name}.learning_rate must be > 0, got {self.learning_rate}")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"{name}.gamma must be in [0, 1], got {self.gamma}")
        if not 0.0 < self.tau <= 1.0:
            raise ValueError(f"{name}.tau must be in (0, 1], got {self.tau}")
        if not 1 <= self.num_critics <= 64:
            raise ValueError(f"{name}.num_critics must be in [1, 64], got {self.num_critics}")


class OfflineBatch(NamedTuple):
    """A minibatch of transitions (Box actions rescaled to ``[−1, 1]``; Discrete ones as indices)."""

    obs: torch.Tensor
    """``[B, obs_dim]`` raw observations."""
    actions: torch.Tensor
    """``[B, act_dim]`` in ``[−1, 1]`` (the box rescaled; corrupted actions may lie outside), or ``int64 [B]``."""
    rewards: torch.Tensor
    """``[B]``."""
    next_obs: torch.Tensor
    """``[B, obs_dim]``."""
    terminated: torch.Tensor
    """``float [B]``: 1 where the transition ended in a terminal state (no bootstrap)."""


class RO2OTerms(NamedTuple):
    """What an online-phase update adds to a learner's losses (RO2O: uncertainty and smoothness)."""

    beta: float
    """β of the uncertainty penalty ``β·std_k Q'_k`` subtracted from the TD target (0: none)."""
    noise: torch.Tensor | None
    """``[n, B, F]`` offsets ``u`` of the perturbed states ``ŝ = features(s) + u`` (None: no smoothness terms)."""
    q_weight: float
    """Weight of the Q smoothness term ``max_j (Q(ŝ_j, a) − Q(s, a))²``."""
    policy_weight: float
    """Weight of the policy smoothness term ``max_j ‖π(ŝ_j) − π(s)‖²``."""


class OfflineBuffer:
    """The whole dataset as tensors, sampled uniformly or by per-transition weights.

    Args:
        data: the transitions.
        action_space: the env's action box (for the rescaling to ``[−1, 1]``), or its Discrete space.
        weights: optional ``[N]`` sampling weights (trajectory reweighting); None: uniform.
        device: where the tensors live.
    """

    def __init__(
        self,
        data: OfflineDataset,
        action_space: gym.spaces.Box | gym.spaces.Discrete,
        weights: np.ndarray | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        if isinstance(action_space, gym.spaces.Discrete):
            if not data.discrete:
                raise ValueError(f"the env's actions are {action_space}, the dataset's are Box actions")
            n = int(action_space.n)
            first, last = int(data.actions.min()), int(data.actions.max())
            if first < 0 or last >= n:
                raise ValueError(f"dataset actions lie in [{first}, {last}], not in {action_space}")
            self.actions = torch.as_tensor(data.actions, dtype=torch.int64, device=device)
        else:
            if data.discrete:
                raise ValueError(f"the env's actions are {action_space}, the dataset's are Discrete")
            if data.actions.shape[1] != int(np.prod(action_space.shape)):
                raise ValueError(f"dataset actions have {data.actions.shape[1]} dims, the env {action_space.shape}")
            low = torch.as_tensor(action_space.low, dtype=torch.float32).flatten()
            high = torch.as_tensor(action_space.high, dtype=torch.float32).flatten()
            self.actions = scale_action(torch.as_tensor(data.actions), low, high).to(device)
        self.obs = torch.as_tensor(data.observations, device=device)
        self.rewards = torch.as_tensor(data.rewards, device=device)
        self.next_obs = torch.as_tensor(data.next_observations, device=device)
        self.terminated = torch.as_tensor(data.terminations, dtype=torch.float32, device=device)
        self.size = data.num_transitions
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.float64, device=device)
        if self.weights is not None and (self.weights.shape != (self.size,) or not bool((self.weights >= 0).all())):
            raise ValueError(f"sampling weights must be [N] and ≥ 0, N = {self.size}")

    def sample(self, batch_size: int, generator: torch.Generator) -> OfflineBatch:
        """``batch_size`` transitions drawn with replacement."""
        if self.weights is None:
            idx = torch.randint(self.size, (batch_size,), generator=generator, device=self.obs.device)
        else:
            idx = torch.multinomial(self.weights, batch_size, replacement=True, generator=generator)
        return OfflineBatch(self.obs[idx], self.actions[idx], self.rewards[idx], self.next_obs[idx],
                            self.terminated[idx])  # fmt: skip


def set_obs_normalizer(policy: Any, data: OfflineDataset) -> None:
    """Set the policy's observation normaliser (if it has one) to the dataset's mean and variance."""
    norm = policy.obs_norm
    if norm is None:
        return
    obs = torch.as_tensor(data.observations, dtype=torch.float64)
    with torch.no_grad():
        norm.mean.copy_(obs.mean(0).to(norm.mean.dtype))
        norm.var.copy_(obs.var(0, unbiased=False).to(norm.var.dtype))
        norm.count.fill_(float(len(obs)))


def critic_ensemble(policy: Any, obs_dim: int, act_dim: int, cfg: OfflineLearnerConfig) -> tuple[CriticEnsemble, Any]:
    """A ``K``-critic ensemble started from ``policy.critics`` and the function copying it back into them."""
    ens = CriticEnsemble(obs_dim + act_dim, cfg.hidden, "relu", cfg.num_critics)
    ens.load_from(policy.critics)
    return ens, ens.exporter(policy.critics)
