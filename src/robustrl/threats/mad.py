"""Maximal action difference (MAD) attack (Zhang et al., NeurIPS 2020, SA-PPO/SA-DDPG).

Maximises KL(π(·|s) ‖ π(·|s + δ)) for stochastic policies (categorical or Gaussian; Q policies use the
softmax of their Q values), or the action distance ‖a(s + δ) − a(s)‖² for deterministic continuous
policies, by PGD inside the ε-ball. The KL has zero gradient at δ = 0, so the search starts from a random
point of the ball by default (SA-PPO uses SGLD for the same reason).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch

from robustrl.policies.base import Policy
from robustrl.threats import projection as P
from robustrl.threats.objectives import divergence_objective
from robustrl.threats.pgd import SearchConfig, gradient_attack


@dataclass(frozen=True)
class MADConfig(SearchConfig):
    """Maximal action difference: PGD on the KL between clean and perturbed action distributions."""

    random_start: bool = True
    """Start from a uniform point of the ball (the KL's gradient vanishes at the clean observation)."""
    smoothing_sigma: float = 0.0
    """σ of the victim's Gaussian smoothing: > 0 attacks the smoothed policy through its noise (EOT)."""
    eot_samples: int = 8
    """Noise draws the loss is averaged over when smoothing_sigma > 0."""


def mad(
    policy: Policy,
    obs: torch.Tensor,
    budget: P.Budget,
    generator: torch.Generator | None,
    config: MADConfig = MADConfig(),
    *,
    scale: torch.Tensor | None = None,
) -> torch.Tensor:
    """MAD attack: the observation in the ε-ball whose action distribution differs most from the clean one.

    Args:
        policy: the victim (``dist``, ``logits`` or ``q_values``; deterministic continuous: ``act``).
        obs: ``[N, *obs_shape]`` clean observations.
        budget: ε (float or ``[N]``) in attack units.
        generator: draws random starts and EOT noise.
        config: search settings and EOT.
        scale: ``[*obs_shape]`` per-dimension scale, or None for raw units.

    Returns:
        ``obs'`` with ``‖(obs' − obs)/scale‖_p ≤ ε`` per sample, inside the observation bounds.
    """
    objective = partial(
        divergence_objective,
        policy,
        smoothing_sigma=config.smoothing_sigma,
        eot_samples=config.eot_samples,
        generator=generator,
    )
    return gradient_attack(policy, obs, budget, generator, config, objective, scale=scale)
