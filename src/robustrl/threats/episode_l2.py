"""The episode-total ℓ2 attack of Policy Smoothing's threat model (Kumar, Levine & Feizi, ICLR 2022).

The adversary may perturb every observation of an episode, adaptively (it sees the whole history), as long
as ``sqrt(Σ_t ‖δ_t‖₂²) ≤ B`` over the episode; budget left unused at one step carries over to later ones.
The state is the squared budget left per env copy, reset to ``B²`` wherever ``ctx.episode_start`` is True.

Per step, the attack picks a radius ``r_t`` from the budget left, searches an ℓ2 perturbation of norm
``≤ r_t`` with PGD (deviation or MAD objective, EOT over the smoothing noise for a smoothed victim), then:

* ``allocation="flip"`` (discrete actions): spends budget only where the perturbation changes the
  (smoothed, majority-vote) action, and then only the least fraction of it that still does (bisection on
  the perturbation's scale) — cheap flips at near-ambiguous states, nothing spent elsewhere;
* ``objective="targeted"`` (with ``flip``): one PGD per alternative action toward it, on the noise-averaged
  (EOT) margin of that action (Q values or logits), keeping the cheapest perturbation that flips
  — the stronger episode-budget attack of Kumar et al. (2022);
* ``allocation="even"``: ``r_t = sqrt(left / (H − t))`` spreads what is left evenly over the remaining
  ``H − t`` steps of the horizon, so budget not used (clipped by observation bounds) carries over.

Whatever the allocation, the spent amount is measured on the final observation (``obs' − obs``) and a
step that would overdraw the budget (floating-point rounding) is cancelled: an episode never spends more
than ``B`` in total.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch

from robustrl.policies.base import Policy
from robustrl.threats import projection as P
from robustrl.threats.objectives import (
    action_scores,
    clean_action_kept,
    deviation_objective,
    divergence_objective,
    is_discrete,
    targeted_objective,
)
from robustrl.threats.pgd import SearchConfig, check_search, prepare, run_search

if TYPE_CHECKING:
    from robustrl.rollout import StepContext

_SAFETY = 1.0 - 1e-6
"""Radii are shrunk by this factor so that rounding in ``obs + δ`` rarely reaches the cancel guard."""


@dataclass(frozen=True)
class EpisodeL2Config:
    """Adaptive attack under an episode-total ℓ2 budget (Policy Smoothing's threat model)."""

    allocation: Literal["flip", "even"] = "flip"
    """``flip``: spend only the least budget that flips the action (discrete); ``even``: spread it evenly."""
    horizon: int = 0
    """Steps the ``even`` allocation spreads the budget over (0: the env's time limit, set by evaluation)."""
    max_step_fraction: float = 1.0
    """The most one step may spend, as a fraction of the total budget B (ℓ2 radius)."""
    objective: Literal["pgd", "mad", "targeted"] = "pgd"
    """Per-step search: deviation from the clean action (pgd), KL (mad), or ``targeted`` (discrete, ``flip``):
    one PGD toward each alternative action on its noise-averaged margin, keeping the cheapest flip."""
    steps: int = 10
    """PGD steps per observation."""
    step_scale: float = 2.5
    """PGD step size as a multiple of radius / steps."""
    target_action: int = -1
    """``targeted`` only: always pull toward this action (a fixed drift); -1 tries every alternative."""
    search_steps: int = 8
    """Bisection steps for the least perturbation scale that still flips the action (``flip``)."""
    smoothing_sigma: float = 0.0
    """σ of the victim's Gaussian smoothing: > 0 attacks the smoothed policy through its noise (EOT)."""
    eot_samples: int = 8
    """Noise draws for EOT losses and for the majority vote of a smoothed policy."""

    def __post_init__(self) -> None:
        check_search(self.steps, self.step_scale, 1, "l2")
        if self.horizon < 0:
            raise ValueError(f"horizon must be ≥ 0, got {self.horizon}")
        if not 0 < self.max_step_fraction <= 1:
            raise ValueError(f"max_step_fraction must lie in (0, 1], got {self.max_step_fraction}")
        if self.search_steps < 0:
            raise ValueError(f"search_steps must be ≥ 0, got {self.search_steps}")
        if self.target_action < -1:
            raise ValueError(
                f"target_action must be ≥ 0 (an action) or -1 (every alternative), got {self.target_action}"
            )
        if self.objective == "targeted" and self.allocation != "flip":
            raise ValueError("objective='targeted' spends budget only where the action flips: use allocation='flip'")

    @property
    def search(self) -> SearchConfig:
        """The per-step PGD: ℓ2, one start, random only for the ``mad`` objective (its gradient is 0 at δ = 0)."""
        return SearchConfig(
            steps=self.steps, step_scale=self.step_scale, norm="l2", random_start=self.objective == "mad", restarts=1
        )


def step_radius(left_sq: torch.Tensor, step: torch.Tensor, total: float, config: EpisodeL2Config) -> torch.Tensor:
    """ℓ2 radius ``[N]`` allowed at this step from the squared budget left ``[N]`` and the step index ``[N]``."""
    left = left_sq.clamp_min(0)
    if config.allocation == "even":
        if config.horizon < 1:
            raise ValueError("allocation='even' needs horizon ≥ 1 (the env's max_episode_steps)")
        steps_left = (config.horizon - step).clamp_min(1).to(left.dtype)
        left = left / steps_left
    return torch.minimum(left.sqrt(), torch.full_like(left, config.max_step_fraction * total)) * _SAFETY


def episode_l2_step(
    policy: Policy,
    obs: torch.Tensor,
    left_sq: torch.Tensor,
    step: torch.Tensor,
    total: float,
    generator: torch.Generator | None,
    config: EpisodeL2Config = EpisodeL2Config(),
    *,
    scale: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of the episode attack: the perturbed observations and the squared budget they spend.

    Args:
        policy: the victim.
        obs: ``[N, *obs_shape]`` clean observations.
        left_sq: ``float64 [N]`` squared budget left in each copy's episode (attack units).
        step: ``int64 [N]`` steps already taken in each copy's episode.
        total: the episode budget B.
        generator: draws random starts and EOT noise.
        config: allocation and search settings.
        scale: ``[*obs_shape]`` per-dimension scale, or None for raw units.

    Returns:
        ``(obs' [N, *obs_shape], spent_sq float64 [N])`` with ``spent_sq ≤ left_sq`` (where ``left_sq ≥ 0``).
    """
    if config.allocation == "flip" and not is_discrete(policy):
        raise ValueError("allocation='flip' needs a Discrete action space; use allocation='even'")
    radius = step_radius(left_sq, step.to(obs.device), total, config).to(torch.float32)
    obs, radius, scale, box = prepare(policy, obs, radius, scale)
    eot = {"smoothing_sigma": config.smoothing_sigma, "eot_samples": config.eot_samples, "generator": generator}
    if config.objective == "targeted":
        u = _cheapest_targeted_flip(policy, obs, radius, box, scale, config, generator)
    else:
        if config.objective == "mad":
            objective = divergence_objective(policy, obs, **eot)  # type: ignore[arg-type]
        else:
            objective = deviation_objective(policy, obs, **eot)  # type: ignore[arg-type]
        u = run_search(objective, obs, radius, generator, config.search, box=box, scale=scale)
        if config.allocation == "flip":
            u = _least_flipping(policy, obs, u, box, scale, config, generator)
    adv = P.apply(obs, u, scale, box)
    spent = P.flat_norm(_units(adv, obs, scale), "l2").square()
    ok = spent <= left_sq.clamp_min(0)
    adv = torch.where(ok.view(-1, *([1] * (obs.dim() - 1))), adv, obs)
    return adv, torch.where(ok, spent, torch.zeros_like(spent))


def _units(adv: torch.Tensor, obs: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
    """The perturbation actually applied, in attack units, in float64 (exact for float32 inputs)."""
    d = adv.to(torch.float64) - obs.to(torch.float64)
    return d if scale is None else d / scale.to(torch.float64)


def _least_flipping(
    policy: Policy,
    obs: torch.Tensor,
    u: torch.Tensor,
    box: P.Box,
    scale: torch.Tensor | None,
    config: EpisodeL2Config,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Shrink ``u`` to the least scale in ``(0, 1]`` that still changes the action; 0 where none does."""
    vote = {"smoothing_sigma": config.smoothing_sigma, "eot_samples": config.eot_samples, "generator": generator}

    def flips(s: torch.Tensor) -> torch.Tensor:
        scaled = u * s.view(-1, *([1] * (u.dim() - 1)))
        return ~clean_action_kept(policy, obs, P.apply(obs, scaled, scale, box), **vote)  # type: ignore[arg-type]

    ones = torch.ones(u.shape[0], dtype=u.dtype, device=u.device)
    flipped = flips(ones)
    lo, hi = torch.zeros_like(ones), ones
    for _ in range(config.search_steps):
        mid = (lo + hi) / 2
        f = flips(mid)
        hi = torch.where(f, mid, hi)
        lo = torch.where(f, lo, mid)
    s = torch.where(flipped, hi, torch.zeros_like(hi))
    return u * s.view(-1, *([1] * (u.dim() - 1)))


def _cheapest_targeted_flip(
    policy: Policy,
    obs: torch.Tensor,
    radius: torch.Tensor,
    box: P.Box,
    scale: torch.Tensor | None,
    config: EpisodeL2Config,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Per row, the least perturbation (within ``radius``) that flips the action, over targeted searches.

    For each alternative action ``a'`` (a loop over actions, batched over rows) PGD maximises the
    noise-averaged margin of ``a'`` (capped at 0: :func:`~robustrl.threats.objectives.targeted_objective`);
    the result is shrunk to the least scale that still changes the
    (majority-vote) action. Each row keeps the cheapest of its flips, and 0 where none flips.
    """
    eot = {"smoothing_sigma": config.smoothing_sigma, "eot_samples": config.eot_samples, "generator": generator}
    with torch.no_grad():
        clean = action_scores(policy, obs).argmax(-1)
    best = torch.zeros_like(obs)
    best_cost = torch.full((obs.shape[0],), math.inf, dtype=torch.float64, device=obs.device)
    n_actions = int(policy.action_space.n)  # type: ignore[attr-defined]
    if config.target_action >= n_actions:
        raise ValueError(f"target_action={config.target_action} is not an action of Discrete({n_actions})")
    for a in range(n_actions) if config.target_action < 0 else (config.target_action,):
        target = torch.full_like(clean, a)
        objective = targeted_objective(policy, obs, target, **eot)  # type: ignore[arg-type]
        u = run_search(objective, obs, radius, generator, config.search, box=box, scale=scale)
        u = _least_flipping(policy, obs, u, box, scale, config, generator)
        cost = P.flat_norm(u.to(torch.float64), "l2")
        cheaper = (clean != a) & (cost > 0) & (cost < best_cost)
        best = torch.where(cheaper.view(-1, *([1] * (obs.dim() - 1))), u, best)
        best_cost = torch.where(cheaper, cost, best_cost)
    return best


class EpisodeL2Attack:
    """The episode attack as a rollout ``obs_transform``: keeps the squared budget left per env copy.

    Args:
        budget: the episode-total ℓ2 budget B (attack units) — sqrt(Σ_t ‖δ_t‖²) ≤ B per episode.
        config: allocation and search settings.
        scale: ``[*obs_shape]`` per-dimension scale, or None for raw units.

    Example:
        >>> import gymnasium as gym
        >>> from robustrl.policies.networks import ActorCriticPolicy
        >>> from robustrl.rollout import rollout
        >>> from robustrl.envs import make_env
        >>> env = make_env("CartPole-v1", 4, seed=0)
        >>> pi = ActorCriticPolicy(env.observation_space, env.action_space)
        >>> attack = EpisodeL2Attack(0.5)
        >>> rollout(pi, env, episodes=4, seed=0, obs_transform=attack).returns.shape
        torch.Size([4])
    """

    def __init__(
        self, budget: float, config: EpisodeL2Config = EpisodeL2Config(), *, scale: torch.Tensor | None = None
    ) -> None:
        if isinstance(budget, bool) or not isinstance(budget, int | float) or not math.isfinite(budget):
            raise ValueError(f"budget must be a finite number, got {budget!r}")
        if budget < 0:
            raise ValueError(f"budget must be ≥ 0, got {budget}")
        self.budget = float(budget)
        self.config = config
        self.scale = scale
        self.left_sq: torch.Tensor | None = None
        """``float64 [N]`` squared budget left in each copy's current episode (None before the first call)."""

    def __call__(self, obs: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        """Perturb ``obs [N, ...]`` and charge each copy's episode budget."""
        n = obs.shape[0]
        full = torch.full((n,), self.budget**2, dtype=torch.float64, device=obs.device)
        if self.left_sq is None or self.left_sq.shape != (n,) or self.left_sq.device != obs.device:
            self.left_sq = full
        left = torch.where(ctx.episode_start.to(obs.device), full, self.left_sq)
        adv, spent = episode_l2_step(
            ctx.policy, obs, left, ctx.step, self.budget, ctx.generator, self.config, scale=self.scale
        )
        self.left_sq = left - spent
        return adv
