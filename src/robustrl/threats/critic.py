"""Critic attack: minimise the victim's own value estimate (Pattanaik et al. 2018; SA-PPO/SA-DQN).

* DQN (``q_values``): minimise Q(s + δ, a*), ``a*`` the clean greedy action — its own Q of the action it
  would have taken, which pushes the greedy choice elsewhere.
* SAC/TD3 (``critic``): minimise Q(s, π(s + δ)) — the true state's critic of the action the perturbed
  observation makes the actor take (Pattanaik et al.; SA-DDPG's critic attack).
* PPO/A2C (``value``): minimise V(s + δ), as SA-PPO's critic attack does.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch

from robustrl.policies.base import Policy
from robustrl.threats import projection as P
from robustrl.threats.objectives import critic_objective
from robustrl.threats.pgd import SearchConfig, gradient_attack


@dataclass(frozen=True)
class CriticConfig(SearchConfig):
    """PGD that lowers the victim's own Q or V."""

    smoothing_sigma: float = 0.0
    """σ of the victim's Gaussian smoothing: > 0 attacks the smoothed policy through its noise (EOT)."""
    eot_samples: int = 8
    """Noise draws the loss is averaged over when smoothing_sigma > 0."""


def critic(
    policy: Policy,
    obs: torch.Tensor,
    budget: P.Budget,
    generator: torch.Generator | None,
    config: CriticConfig = CriticConfig(),
    *,
    scale: torch.Tensor | None = None,
) -> torch.Tensor:
    """Critic attack: the observation in the ε-ball that the victim's own critic values least.

    Args:
        policy: the victim, with ``q_values``, ``critic(obs, action)`` or ``value`` (first found).
        obs: ``[N, *obs_shape]`` clean observations.
        budget: ε (float or ``[N]``) in attack units.
        generator: draws random starts and EOT noise.
        config: search settings and EOT.
        scale: ``[*obs_shape]`` per-dimension scale, or None for raw units.

    Returns:
        ``obs'`` with ``‖(obs' − obs)/scale‖_p ≤ ε`` per sample, inside the observation bounds.

    Raises:
        ValueError: the policy has no value estimate.
    """
    objective = partial(
        critic_objective,
        policy,
        smoothing_sigma=config.smoothing_sigma,
        eot_samples=config.eot_samples,
        generator=generator,
    )
    return gradient_attack(policy, obs, budget, generator, config, objective, scale=scale)
