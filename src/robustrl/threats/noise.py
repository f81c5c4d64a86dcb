"""Random observation noise inside the ε-ball: the non-adversarial baseline of every attack table.

``uniform``: a point drawn uniformly from the ball (ℓ∞: each coordinate from U[−ε, ε], SA-PPO's random
attack; ℓ2: uniformly from the ℓ2 ball). ``gaussian``: N(0, σ²I) with σ = ``std_ratio``·ε (ℓ∞) or
``std_ratio``·ε/√d (ℓ2, so the typical norm is ``std_ratio``·ε), projected onto the ball so the threat
model's bound holds exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from robustrl.policies.base import Policy
from robustrl.threats import projection as P
from robustrl.threats.pgd import prepare


@dataclass(frozen=True)
class UniformConfig:
    """Uniform noise in the ε-ball."""

    norm: Literal["linf", "l2"] = "linf"
    """Which ℓp ball the noise is drawn from."""

    def __post_init__(self) -> None:
        P.check_norm(self.norm)


@dataclass(frozen=True)
class GaussianConfig:
    """Gaussian noise, projected onto the ε-ball."""

    norm: Literal["linf", "l2"] = "linf"
    """Which ℓp ball the noise is projected onto."""
    std_ratio: float = 0.5
    """σ as a fraction of ε (ℓ∞) or of ε/√d (ℓ2)."""

    def __post_init__(self) -> None:
        P.check_norm(self.norm)
        if not (self.std_ratio > 0 and math.isfinite(self.std_ratio)):
            raise ValueError(f"std_ratio must be > 0, got {self.std_ratio}")


def uniform(
    policy: Policy,
    obs: torch.Tensor,
    budget: P.Budget,
    generator: torch.Generator | None,
    config: UniformConfig = UniformConfig(),
    *,
    scale: torch.Tensor | None = None,
) -> torch.Tensor:
    """Uniform noise in each sample's ε-ball (attack units), clipped to the observation bounds.

    Args:
        policy: the victim (only its observation space is used, for the bounds).
        obs: ``[N, *obs_shape]`` clean observations.
        budget: ε (float or ``[N]``).
        generator: draws the noise.
        config: the norm.
        scale: ``[*obs_shape]`` per-dimension scale, or None for raw units.
    """
    obs, radius, scale, box = prepare(policy, obs, budget, scale)
    u = P.project(P.random_in_ball(obs, radius, config.norm, generator), radius, config.norm, box)
    return P.apply(obs, u, scale, box)


def gaussian(
    policy: Policy,
    obs: torch.Tensor,
    budget: P.Budget,
    generator: torch.Generator | None,
    config: GaussianConfig = GaussianConfig(),
    *,
    scale: torch.Tensor | None = None,
) -> torch.Tensor:
    """Gaussian noise projected onto each sample's ε-ball, clipped to the observation bounds.

    Args:
        policy: the victim (only its observation space is used, for the bounds).
        obs: ``[N, *obs_shape]`` clean observations.
        budget: ε (float or ``[N]``).
        generator: draws the noise.
        config: norm and σ/ε.
        scale: ``[*obs_shape]`` per-dimension scale, or None for raw units.
    """
    obs, radius, scale, box = prepare(policy, obs, budget, scale)
    d = obs[0].numel()
    sigma = radius * config.std_ratio / (math.sqrt(d) if config.norm == "l2" else 1.0)
    z = torch.randn(obs.shape, generator=generator, dtype=obs.dtype, device=obs.device)
    u = P.project(z * sigma.view(-1, *([1] * (obs.dim() - 1))), radius, config.norm, box)
    return P.apply(obs, u, scale, box)
