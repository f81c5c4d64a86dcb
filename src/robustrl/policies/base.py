"""The policy contract: what evaluation, attacks and certificates need from a policy.

Every policy acts on batches: ``act(obs [N, *obs_shape]) -> action [N, ...]`` (``int64 [N]`` for
Discrete spaces, ``float32 [N, *shape]`` for Box). Attacks use the differentiable pieces a policy has;
the ``runtime_checkable`` protocols below let them ask which ones.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import torch


@runtime_checkable
class Policy(Protocol):
    """Anything that maps a batch of observations to a batch of actions."""

    observation_space: gym.Space[Any]
    """One observation's space."""
    action_space: gym.Space[Any]
    """One action's space."""

    def act(
        self, obs: torch.Tensor, *, deterministic: bool = True, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Actions for ``obs [N, *obs_shape]``; stochastic sampling draws from ``generator``."""
        ...


@runtime_checkable
class DistributionPolicy(Policy, Protocol):
    """A stochastic policy exposing its action distribution (PPO, A2C, SAC actors)."""

    def dist(self, obs: torch.Tensor) -> torch.distributions.Distribution:
        """The action distribution at ``obs [N, *obs_shape]``; differentiable in ``obs``."""
        ...


@runtime_checkable
class QPolicy(Policy, Protocol):
    """A value-based policy with one Q value per discrete action (DQN)."""

    def q_values(self, obs: torch.Tensor) -> torch.Tensor:
        """Q values ``[N, num_actions]``; differentiable in ``obs``."""
        ...


@runtime_checkable
class ValuePolicy(Policy, Protocol):
    """A policy with a state-value critic (PPO, A2C)."""

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """State values ``[N]``; differentiable in ``obs``."""
        ...


@runtime_checkable
class CriticPolicy(Policy, Protocol):
    """A policy with an action-value critic for continuous actions (SAC, TD3)."""

    def critic(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Q(obs, action) ``[N]`` (the minimum over twin critics where there are two)."""
        ...


def policy_device(policy: Policy) -> torch.device:
    """The device of a policy's parameters (CPU for parameter-free policies)."""
    params = getattr(policy, "parameters", None)
    if callable(params):
        for p in params():
            return p.device
    return torch.device("cpu")
