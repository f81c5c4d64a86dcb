"""The fast gradient sign method (Goodfellow et al. 2015; Huang et al. 2017 on RL policies).

One step of length ε along the signed gradient (ℓ∞) or the normalised gradient (ℓ2) of the deviation
objective from the clean observation; equal to :func:`~robustrl.threats.pgd.pgd` with one step, step size
ε and no random start.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Literal

import torch

from robustrl.policies.base import Policy
from robustrl.threats import projection as P
from robustrl.threats.objectives import deviation_objective
from robustrl.threats.pgd import SearchConfig, gradient_attack


@dataclass(frozen=True)
class FGSMConfig:
    """One signed-gradient step on the observation."""

    norm: Literal["linf", "l2"] = "linf"
    """Which ℓp ball the perturbation stays in."""
    loss: Literal["ce", "margin"] = "ce"
    """Discrete actions: cross-entropy of the clean action, or the Carlini–Wagner margin."""
    smoothing_sigma: float = 0.0
    """σ of the victim's Gaussian smoothing: > 0 attacks the smoothed policy through its noise (EOT)."""
    eot_samples: int = 8
    """Noise draws the loss is averaged over when smoothing_sigma > 0."""

    def __post_init__(self) -> None:
        P.check_norm(self.norm)

    @property
    def search(self) -> SearchConfig:
        """The search FGSM is: one step of length ε from the clean observation."""
        return SearchConfig(steps=1, step_scale=1.0, norm=self.norm, random_start=False, restarts=1)


def fgsm(
    policy: Policy,
    obs: torch.Tensor,
    budget: P.Budget,
    generator: torch.Generator | None,
    config: FGSMConfig = FGSMConfig(),
    *,
    scale: torch.Tensor | None = None,
) -> torch.Tensor:
    """FGSM attack: ``obs' = clip(obs + ε · sign(∇ loss) ⊙ scale)`` (ℓ∞) or the ℓ2 analogue.

    Args:
        policy: the victim.
        obs: ``[N, *obs_shape]`` clean observations.
        budget: ε (float or ``[N]``) in attack units.
        generator: draws EOT noise (unused without smoothing).
        config: norm, loss, EOT.
        scale: ``[*obs_shape]`` per-dimension scale, or None for raw units.

    Returns:
        ``obs'`` with ``‖(obs' − obs)/scale‖_p ≤ ε`` per sample, inside the observation bounds.
    """
    objective = partial(
        deviation_objective,
        policy,
        loss=config.loss,
        smoothing_sigma=config.smoothing_sigma,
        eot_samples=config.eot_samples,
        generator=generator,
    )
    return gradient_attack(policy, obs, budget, generator, config.search, objective, scale=scale)
