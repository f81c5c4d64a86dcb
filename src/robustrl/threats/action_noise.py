"""Random action perturbations: Gaussian noise on continuous actions, random replacement of discrete ones.

``action_noise`` (Box actions): ``a' = clip(a + σ · half_range · z, low, high)`` with ``z ~ N(0, I)`` and
``σ`` the budget, so ``σ = 0.1`` is noise of 10 % of each dimension's half range (raw units where the
space is unbounded). ``action_replace`` (Discrete actions): with probability ``p`` (the budget) the action
is replaced by one drawn uniformly from the action space (it may equal the original).
"""

from __future__ import annotations

import math

import gymnasium as gym
import torch

from robustrl.policies.base import Policy


def check_probability(p: float, name: str = "budget") -> float:
    """Validate a probability in [0, 1] (raises ``ValueError`` naming it)."""
    if isinstance(p, bool) or not isinstance(p, int | float) or not 0 <= p <= 1:
        raise ValueError(f"{name} must be a probability in [0, 1], got {p!r}")
    return float(p)


def box_limits(space: gym.Space[object], like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(low, high)`` of a Box action space as tensors shaped like one action (±inf where unbounded)."""
    if not isinstance(space, gym.spaces.Box):
        raise ValueError(f"expected a Box action space, got {space!r}")
    low = torch.as_tensor(space.low, dtype=like.dtype, device=like.device)
    high = torch.as_tensor(space.high, dtype=like.dtype, device=like.device)
    return low, high


def action_noise(
    policy: Policy, action: torch.Tensor, budget: float, generator: torch.Generator | None
) -> torch.Tensor:
    """Gaussian noise of ``budget`` × half range on Box actions ``[N, *act_shape]``, clipped to the space.

    Raises:
        ValueError: a Discrete action space (use ``action_replace``) or a negative/non-finite budget.
    """
    if not isinstance(budget, int | float) or not math.isfinite(budget) or budget < 0:
        raise ValueError(f"budget must be finite and ≥ 0, got {budget!r}")
    if not isinstance(policy.action_space, gym.spaces.Box):
        raise ValueError("action_noise needs a Box action space; use action_replace for Discrete actions")
    low, high = box_limits(policy.action_space, action)
    half = (high - low) / 2
    half = torch.where(torch.isfinite(half), half, torch.ones_like(half))
    z = torch.randn(action.shape, generator=generator, dtype=action.dtype, device=action.device)
    return torch.maximum(torch.minimum(action + budget * half * z, high), low)


def action_replace(
    policy: Policy, action: torch.Tensor, budget: float, generator: torch.Generator | None
) -> torch.Tensor:
    """With probability ``budget``, replace each discrete action ``int64 [N]`` by a uniform random one.

    Raises:
        ValueError: a non-Discrete action space or a budget outside [0, 1].
    """
    p = check_probability(budget)
    space = policy.action_space
    if not isinstance(space, gym.spaces.Discrete):
        raise ValueError("action_replace needs a Discrete action space; use action_noise for Box actions")
    n = action.shape[0]
    replace = torch.rand((n,), generator=generator, device=action.device) < p
    random = torch.randint(0, int(space.n), (n,), generator=generator, device=action.device)
    return torch.where(replace, random.to(action.dtype), action)
