"""The geometry every observation attack shares: budgets, ℓp balls, observation bounds, scaling.

A perturbation is kept in *attack units* ``u``: the observation the policy sees is
``obs' = clip(obs + u ⊙ scale)`` and the threat model bounds ``‖u‖_p ≤ ε`` per sample. With
``scale = None`` attack units are raw observation units; with ``scale = std`` (the policy's observation
normaliser) they are normalised units, as in SA-PPO (Zhang et al., NeurIPS 2020).

Clipping to the observation space uses the interval ``[min(low, obs), max(high, obs)]`` per coordinate,
so every coordinate of the perturbation only ever shrinks towards 0: clipping can never make ``‖u‖_p``
larger, for any ``p``, even where an observation already lies outside its declared bounds.
"""

from __future__ import annotations

import math
from typing import Any, Literal, NamedTuple

import gymnasium as gym
import numpy as np
import torch

Norm = Literal["linf", "l2"]
"""Which ℓp ball a perturbation stays in: ``linf`` (ℓ∞) or ``l2`` (ℓ2)."""

Budget = float | torch.Tensor
"""An attack radius: one float for every sample, or a tensor ``[N]`` with one radius per sample."""


class Box(NamedTuple):
    """Per-sample limits of the perturbation in attack units, and the raw-unit limits of ``obs'``."""

    u_low: torch.Tensor
    """``[N, *obs_shape]`` lowest allowed perturbation (attack units; ``-inf`` where unbounded)."""
    u_high: torch.Tensor
    """``[N, *obs_shape]`` highest allowed perturbation (attack units; ``+inf`` where unbounded)."""
    low: torch.Tensor
    """``[N, *obs_shape]`` lowest allowed ``obs'`` (raw units)."""
    high: torch.Tensor
    """``[N, *obs_shape]`` highest allowed ``obs'`` (raw units)."""


def check_norm(norm: str) -> Norm:
    """Return ``norm`` if it is ``linf`` or ``l2``; raise a ``ValueError`` naming it otherwise."""
    if norm not in ("linf", "l2"):
        raise ValueError(f"norm must be 'linf' or 'l2', got {norm!r}")
    return norm  # type: ignore[return-value]


def as_float_obs(obs: torch.Tensor, name: str = "obs") -> torch.Tensor:
    """Validate a batch of observations and return it as a floating tensor.

    Args:
        obs: ``[N, *obs_shape]``; integer observations (images) become float32.
        name: how errors call the input.

    Raises:
        ValueError: not a tensor, no batch dimension, or NaN/inf values (on CUDA the check is
            asynchronous and surfaces as a device-side assertion).
    """
    if not isinstance(obs, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(obs).__name__}")
    if obs.dim() < 2:
        raise ValueError(f"{name} must be a batch [N, *obs_shape], got shape {tuple(obs.shape)}")
    if not obs.is_floating_point():
        obs = obs.to(torch.float32)
    finite = torch.isfinite(obs).all()
    if obs.device.type == "cpu":
        if not bool(finite):
            raise ValueError(f"{name} contains NaN or inf")
    else:  # pragma: no cover - needs a GPU
        torch._assert_async(finite, f"{name} contains NaN or inf")
    return obs


def check_budget(budget: Budget, obs: torch.Tensor, name: str = "budget") -> torch.Tensor:
    """Validate an attack radius and return it as ``[N]`` in ``obs``'s dtype and device.

    Raises:
        ValueError: negative, NaN/inf, or a tensor of the wrong shape.
    """
    n = obs.shape[0]
    if isinstance(budget, torch.Tensor):
        b = budget.detach().to(device=obs.device, dtype=obs.dtype)
        if b.dim() == 0:
            b = b.expand(n)
        if b.shape != (n,):
            raise ValueError(f"{name} must be a float or a tensor [{n}], got shape {tuple(b.shape)}")
        if b.device.type == "cpu" and not bool((torch.isfinite(b) & (b >= 0)).all()):
            raise ValueError(f"{name} must be finite and ≥ 0, got min {float(b.min())}")
        return b.clone()
    if isinstance(budget, bool) or not isinstance(budget, int | float):
        raise ValueError(f"{name} must be a number, got {type(budget).__name__}")
    if not math.isfinite(float(budget)) or budget < 0:
        raise ValueError(f"{name} must be finite and ≥ 0, got {budget!r}")
    return torch.full((n,), float(budget), dtype=obs.dtype, device=obs.device)


def check_scale(scale: torch.Tensor | None, obs: torch.Tensor) -> torch.Tensor | None:
    """Validate a per-dimension scale ``[*obs_shape]`` (positive, finite); None means raw units."""
    if scale is None:
        return None
    s = torch.as_tensor(scale).detach().to(device=obs.device, dtype=obs.dtype)
    if tuple(s.shape) != tuple(obs.shape[1:]):
        raise ValueError(f"scale must have shape {tuple(obs.shape[1:])}, got {tuple(s.shape)}")
    if not bool((torch.isfinite(s) & (s > 0)).all()):
        raise ValueError("scale must be finite and > 0 in every dimension")
    return s


def space_bounds(space: gym.Space[Any] | None, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Declared bounds of a Box observation space as tensors ``[*obs_shape]`` (±inf where unbounded)."""
    shape = tuple(obs.shape[1:])
    if isinstance(space, gym.spaces.Box) and tuple(space.shape) == shape:
        low = torch.as_tensor(np.asarray(space.low, dtype=np.float64), device=obs.device).to(obs.dtype)
        high = torch.as_tensor(np.asarray(space.high, dtype=np.float64), device=obs.device).to(obs.dtype)
        return low, high
    if space is not None and not isinstance(space, gym.spaces.Box):
        raise ValueError(f"observation attacks need a Box observation space, got {space!r}")
    inf = torch.full(shape, math.inf, dtype=obs.dtype, device=obs.device)
    return -inf, inf


def perturbation_box(obs: torch.Tensor, low: torch.Tensor, high: torch.Tensor, scale: torch.Tensor | None) -> Box:
    """The limits a perturbation must respect so that ``obs + u ⊙ scale`` stays within the space.

    Args:
        obs: ``[N, *obs_shape]`` clean observations.
        low: ``[*obs_shape]`` declared lower bounds (-inf where unbounded).
        high: ``[*obs_shape]`` declared upper bounds (+inf where unbounded).
        scale: ``[*obs_shape]`` attack-unit scale or None.
    """
    lo = torch.minimum(low.expand_as(obs), obs)
    hi = torch.maximum(high.expand_as(obs), obs)
    s = 1.0 if scale is None else scale
    return Box(u_low=(lo - obs) / s, u_high=(hi - obs) / s, low=lo, high=hi)


def flat_norm(u: torch.Tensor, norm: Norm) -> torch.Tensor:
    """``‖u_i‖_p`` per sample: ``[N, ...] -> [N]``."""
    flat = u.flatten(1)
    if norm == "linf":
        return flat.abs().amax(1) if flat.shape[1] else flat.new_zeros(flat.shape[0])
    return flat.norm(dim=1)


def _rows(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape a per-sample ``[N]`` tensor to broadcast over ``like [N, ...]``."""
    return x.view(-1, *([1] * (like.dim() - 1)))


def project(u: torch.Tensor, radius: torch.Tensor, norm: Norm, box: Box | None = None) -> torch.Tensor:
    """Project ``u [N, ...]`` onto the ball ``‖u_i‖_p ≤ radius_i``, then into ``box``.

    ℓ∞: coordinate clamp (ball ∩ box exactly). ℓ2: radial rescale, then clamp into the box; the clamp
    only shrinks coordinates, so the result stays inside the ball.
    """
    r = _rows(radius, u)
    if norm == "linf":
        u = torch.maximum(torch.minimum(u, r), -r)
    else:
        n = _rows(flat_norm(u, "l2"), u)
        u = u * torch.where(n > r, r / n.clamp_min(torch.finfo(u.dtype).tiny), torch.ones_like(n))
    if box is not None:
        u = torch.maximum(torch.minimum(u, box.u_high), box.u_low)
    return u


def apply(obs: torch.Tensor, u: torch.Tensor, scale: torch.Tensor | None, box: Box) -> torch.Tensor:
    """``obs' = clip(obs + u ⊙ scale)`` into the box's raw-unit limits."""
    moved = obs + (u if scale is None else u * scale)
    return torch.maximum(torch.minimum(moved, box.high), box.low)


def random_in_ball(
    like: torch.Tensor, radius: torch.Tensor, norm: Norm, generator: torch.Generator | None
) -> torch.Tensor:
    """A point drawn uniformly from each sample's ball (ℓ∞ cube or ℓ2 ball), shaped like ``like``."""
    if norm == "linf":
        u = torch.rand(like.shape, generator=generator, dtype=like.dtype, device=like.device)
        return (2 * u - 1) * _rows(radius, like)
    d = like[0].numel()
    z = torch.randn(like.shape, generator=generator, dtype=like.dtype, device=like.device)
    direction = z / _rows(flat_norm(z, "l2").clamp_min(torch.finfo(like.dtype).tiny), z)
    r = torch.rand((like.shape[0],), generator=generator, dtype=like.dtype, device=like.device)
    return direction * _rows(radius * r.pow(1.0 / max(d, 1)), like)


def steepest_step(grad: torch.Tensor, norm: Norm) -> torch.Tensor:
    """The unit-norm ascent direction of ``grad [N, ...]``: ``sign`` (ℓ∞) or ``grad / ‖grad‖₂`` (ℓ2)."""
    if norm == "linf":
        return grad.sign()
    n = _rows(flat_norm(grad, "l2"), grad)
    return torch.where(n > 0, grad / n.clamp_min(torch.finfo(grad.dtype).tiny), torch.zeros_like(grad))


def observation_scale(policy: Any) -> torch.Tensor:
    """The standard deviation ``sqrt(var + eps)`` of ``policy.obs_norm`` (SA-PPO's normalised units).

    Raises:
        ValueError: the policy has no observation normaliser.
    """
    norm = getattr(policy, "obs_norm", None)
    if norm is None or not hasattr(norm, "var"):
        raise ValueError(
            f"{type(policy).__name__} has no observation normaliser (obs_norm): pass scale= explicitly "
            "or attack in raw units (normalized=False)"
        )
    eps = float(getattr(norm, "eps", 1e-8))
    return torch.sqrt(norm.var.detach() + eps)
