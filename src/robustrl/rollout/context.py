"""What a threat or defense sees at one step, and the transform types the rollout functions take."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from robustrl.policies.base import Policy


@dataclass(frozen=True)
class StepContext:
    """What a threat sees at one step of a rollout, besides the observation."""

    policy: Policy
    """The victim policy (attacks differentiate through it)."""
    step: torch.Tensor
    """``int64 [N]``: steps already taken in each copy's current episode (0 at an episode's first obs)."""
    episode_start: torch.Tensor
    """``bool [N]``: True where the observation is the first of an episode (reset per-episode state)."""
    generator: torch.Generator
    """The rollout's generator, on the env's device; threats draw all their randomness from it."""
    active: torch.Tensor | None = None
    """``bool [N]``: False where the copy's current episode is not in the sample (threats may skip it)."""


ObsTransform = Callable[[torch.Tensor, StepContext], torch.Tensor]
"""``(obs [N, *obs_shape], ctx) -> obs' [N, *obs_shape]``: what the policy sees instead of ``obs``."""

ActionTransform = Callable[[torch.Tensor, torch.Tensor, StepContext], torch.Tensor]
"""``(action [N, ...], obs [N, *obs_shape], ctx) -> action'``: what the env receives instead of ``action``."""
