"""Projected gradient descent on the observation (Madry et al. 2018; SA-PPO/SA-DQN, Zhang et al. 2020).

:func:`pgd_search` is the optimiser every gradient attack shares (FGSM, PGD, MAD, critic, the episode
attack): projected steepest ascent of a per-sample objective inside each sample's ℓ∞ or ℓ2 ball, with an
optional uniform random start and restarts, keeping for every sample the best iterate seen.
:class:`SearchConfig` holds its settings (the attacks' configs extend it) and :func:`gradient_attack` runs
one attack end to end (validate inputs, build the objective, search, apply). :func:`pgd` is the attack that
pushes the victim away from its clean action.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Literal

import torch

from robustrl.policies.base import Policy
from robustrl.threats import projection as P
from robustrl.threats.objectives import Objective, deviation_objective


@dataclass(frozen=True)
class SearchConfig:
    """The projected-gradient search every gradient attack runs (:func:`pgd_search`).

    The attacks' configs (:class:`PGDConfig`, ``MADConfig``, ``CriticConfig``) extend it with their
    objective's options; they may restate a field to document what it means for that attack.
    """

    steps: int = 10
    """Gradient steps per attack."""
    step_scale: float = 2.5
    """Step size as a multiple of budget / steps."""
    norm: Literal["linf", "l2"] = "linf"
    """Which ℓp ball the perturbation stays in."""
    random_start: bool = True
    """Start from a uniform point of the ball."""
    restarts: int = 1
    """Independent starts; every sample keeps the one whose final iterate has the highest loss."""

    def __post_init__(self) -> None:
        check_search(self.steps, self.step_scale, self.restarts, self.norm)


@dataclass(frozen=True)
class PGDConfig(SearchConfig):
    """Projected gradient descent on the observation."""

    step_scale: float = 2.5
    """Step size as a multiple of budget / steps (2.5 follows Madry et al.)."""
    random_start: bool = True
    """Start each restart from a uniform point of the ball (otherwise from the clean observation)."""
    loss: Literal["ce", "margin"] = "ce"
    """Discrete actions: cross-entropy of the clean action, or the Carlini–Wagner margin."""
    smoothing_sigma: float = 0.0
    """σ of the victim's Gaussian smoothing: > 0 attacks the smoothed policy through its noise (EOT)."""
    eot_samples: int = 8
    """Noise draws the loss is averaged over when smoothing_sigma > 0."""


def check_search(steps: int, step_scale: float, restarts: int, norm: str) -> None:
    """Validate the optimiser settings shared by the gradient attacks (raises ``ValueError``)."""
    if steps < 1:
        raise ValueError(f"steps must be ≥ 1, got {steps}")
    if not step_scale > 0:
        raise ValueError(f"step_scale must be > 0, got {step_scale}")
    if restarts < 1:
        raise ValueError(f"restarts must be ≥ 1, got {restarts}")
    P.check_norm(norm)


def pgd_search(
    objective: Objective,
    obs: torch.Tensor,
    radius: torch.Tensor,
    generator: torch.Generator | None,
    *,
    steps: int,
    step_size: torch.Tensor,
    norm: P.Norm,
    random_start: bool,
    restarts: int,
    box: P.Box,
    scale: torch.Tensor | None,
) -> torch.Tensor:
    """Maximise ``objective`` over perturbations ``u`` with ``‖u_i‖_p ≤ radius_i`` inside ``box``.

    Gradients are taken with respect to the perturbation only (``torch.autograd.grad``): no gradient is
    left on the policy's parameters. Each restart returns its last iterate (Madry et al.); with several
    restarts every sample keeps the one with the highest objective.

    Args:
        objective: ``obs' [N, ...] -> [N]`` to maximise.
        obs: ``[N, *obs_shape]`` clean observations (float).
        radius: ``[N]`` per-sample radii in attack units.
        generator: source of the random starts (and of the objective's EOT noise).
        steps: gradient steps per restart.
        step_size: ``[N]`` step length per sample, in attack units.
        norm: ``linf`` (signed gradient) or ``l2`` (normalised gradient).
        random_start: start from a uniform point of the ball.
        restarts: independent starts.
        box: limits from :func:`~robustrl.threats.projection.perturbation_box`.
        scale: attack-unit scale ``[*obs_shape]`` or None.

    Returns:
        ``u [N, *obs_shape]``: the best perturbation found, in attack units.
    """
    n = obs.shape[0]
    step = step_size.view(-1, *([1] * (obs.dim() - 1)))
    best_u = torch.zeros_like(obs)
    best_loss = torch.full((n,), float("-inf"), dtype=obs.dtype, device=obs.device)
    for _ in range(restarts):
        if random_start:
            u = P.project(P.random_in_ball(obs, radius, norm, generator), radius, norm, box)
        else:
            u = torch.zeros_like(obs)
        for _ in range(steps):
            with torch.enable_grad():
                u_var = u.detach().requires_grad_(True)
                grad = _gradient(objective(P.apply(obs, u_var, scale, box)), u_var)
            u = P.project(u.detach() + step * P.steepest_step(grad, norm), radius, norm, box)
        if restarts == 1:
            return u
        with torch.no_grad():
            loss = objective(P.apply(obs, u, scale, box))
        better = loss > best_loss
        best_loss = torch.where(better, loss, best_loss)
        best_u = torch.where(better.view(-1, *([1] * (obs.dim() - 1))), u, best_u)
    return best_u


def _gradient(loss: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """``∂ Σ loss / ∂ u``; a ``ValueError`` when the objective does not depend on ``u`` differentiably."""
    grad = torch.autograd.grad(loss.sum(), u, allow_unused=True)[0] if loss.requires_grad else None
    if grad is None:
        raise ValueError(
            "the policy is not differentiable in the observation: gradient attacks need a torch policy "
            "exposing logits/dist/q_values (or a differentiable act/critic/value)"
        )
    return grad


def prepare(
    policy: Policy, obs: torch.Tensor, budget: P.Budget, scale: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, P.Box]:
    """Validate inputs and build ``(obs, radius [N], scale, box)`` for an observation attack."""
    obs = P.as_float_obs(obs)
    radius = P.check_budget(budget, obs)
    scale = P.check_scale(scale, obs)
    low, high = P.space_bounds(getattr(policy, "observation_space", None), obs)
    return obs, radius, scale, P.perturbation_box(obs, low, high, scale)


def run_search(
    objective: Objective,
    obs: torch.Tensor,
    radius: torch.Tensor,
    generator: torch.Generator | None,
    config: SearchConfig,
    *,
    box: P.Box,
    scale: torch.Tensor | None,
) -> torch.Tensor:
    """:func:`pgd_search` with the settings of ``config``; the step size is ``radius · step_scale / steps``.

    Args:
        objective: ``obs' [N, ...] -> [N]`` to maximise.
        obs: ``[N, *obs_shape]`` clean float observations (from :func:`prepare`).
        radius: ``[N]`` per-sample radii in attack units.
        generator: source of the random starts (and of the objective's EOT noise).
        config: steps, step scale, norm, random start, restarts.
        box: limits from :func:`prepare`.
        scale: attack-unit scale ``[*obs_shape]`` or None.

    Returns:
        ``u [N, *obs_shape]``: the best perturbation found, in attack units.
    """
    return pgd_search(
        objective,
        obs,
        radius,
        generator,
        steps=config.steps,
        step_size=radius * (config.step_scale / config.steps),
        norm=config.norm,
        random_start=config.random_start,
        restarts=config.restarts,
        box=box,
        scale=scale,
    )


def gradient_attack(
    policy: Policy,
    obs: torch.Tensor,
    budget: P.Budget,
    generator: torch.Generator | None,
    config: SearchConfig,
    objective: Callable[[torch.Tensor], Objective],
    *,
    scale: torch.Tensor | None = None,
) -> torch.Tensor:
    """A gradient attack end to end: :func:`prepare`, build the objective, :func:`run_search`, apply.

    Args:
        policy: the victim.
        obs: ``[N, *obs_shape]`` clean observations.
        budget: ε (float or ``[N]``) in attack units.
        generator: draws random starts and EOT noise.
        config: the search settings.
        objective: builds the objective to maximise from the prepared clean observations ``[N, ...]``
            (e.g. ``functools.partial(deviation_objective, policy, loss="ce")``).
        scale: ``[*obs_shape]`` per-dimension scale, or None for raw units.

    Returns:
        ``obs'`` with ``‖(obs' − obs)/scale‖_p ≤ ε`` per sample, inside the observation bounds.
    """
    obs, radius, scale, box = prepare(policy, obs, budget, scale)
    u = run_search(objective(obs), obs, radius, generator, config, box=box, scale=scale)
    return P.apply(obs, u, scale, box)


def pgd(
    policy: Policy,
    obs: torch.Tensor,
    budget: P.Budget,
    generator: torch.Generator | None,
    config: PGDConfig = PGDConfig(),
    *,
    scale: torch.Tensor | None = None,
) -> torch.Tensor:
    """PGD attack: move each observation within its ε-ball so the policy abandons its clean action.

    Args:
        policy: the victim (discrete: logits/dist/q_values; continuous: differentiable ``act``).
        obs: ``[N, *obs_shape]`` clean observations.
        budget: ε (a float, or ``[N]`` per sample), in attack units (see ``scale``).
        generator: draws the random starts and EOT noise.
        config: steps, step size, norm, random start, restarts, loss, EOT.
        scale: ``[*obs_shape]`` per-dimension scale (e.g. an observation std): ``‖δ / scale‖_p ≤ ε``.

    Returns:
        ``obs' [N, *obs_shape]`` with ``‖(obs' − obs)/scale‖_p ≤ ε`` per sample, inside the
        observation space's bounds.

    Example:
        >>> import gymnasium as gym
        >>> from robustrl.policies.networks import ActorCriticPolicy
        >>> space = gym.spaces.Box(-1.0, 1.0, (3,))
        >>> pi = ActorCriticPolicy(space, gym.spaces.Discrete(2))
        >>> obs = torch.zeros(5, 3)
        >>> adv = pgd(pi, obs, 0.1, torch.Generator().manual_seed(0))
        >>> bool(((adv - obs).abs() <= 0.1 + 1e-6).all())
        True
    """
    objective = partial(
        deviation_objective,
        policy,
        loss=config.loss,
        smoothing_sigma=config.smoothing_sigma,
        eot_samples=config.eot_samples,
        generator=generator,
    )
    return gradient_attack(policy, obs, budget, generator, config, objective, scale=scale)
