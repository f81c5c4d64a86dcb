"""Learned observation attacks at test time: a trained adversary network turned into a perturbation.

Two adversaries of the state-adversarial MDP (SA-MDP, Zhang et al., NeurIPS 2020) act here; both are
trained by RL against a frozen victim in :mod:`robustrl.adversarial` (this module needs no learner):

- ``sa-rl``: the adversary's action ``a ∈ [-1, 1]^d`` (``d`` = observation size) *is* the perturbation,
  ``u = ε·a`` for ℓ∞ (the unit box is the ℓ∞ ball) or ``u = ε·a / max(1, ‖a‖₂)`` for ℓ2.
- ``pa-ad`` (Sun et al., ICLR 2022, "Who Is the Strongest Enemy?"): the adversary (the *director*) chooses a
  direction ``d̂`` in the victim's policy space (action probabilities for discrete actions, the action
  mean for continuous ones); an *actor* finds the perturbation in the ε-ball that moves the victim's policy
  furthest along ``d̂``: ``max_u ⟨d̂, f(s + u) − f(s)⟩`` by PGD (:func:`~robustrl.threats.pgd.pgd_search`).

Perturbations are in attack units (``scale``: the victim's observation std where it normalises, as SA-PPO).
:class:`LearnedAttack` is the rollout ``obs_transform`` of a trained adversary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch

from robustrl.policies.base import Policy
from robustrl.rollout.context import StepContext
from robustrl.threats import projection as P
from robustrl.threats.objectives import action_scores, continuous_action, is_discrete
from robustrl.threats.pgd import SearchConfig, prepare, run_search

__all__ = ["LearnedAttack", "LearnedKind", "adversary_action_dim", "director_perturbation", "learned_perturbation",
           "policy_features", "sa_rl_perturbation"]

LearnedKind = Literal["sa-rl", "pa-ad"]
"""Which learned adversary: the perturbation itself (``sa-rl``) or a policy-space direction (``pa-ad``)."""


def adversary_action_dim(kind: LearnedKind, victim: Policy, obs_dim: int) -> int:
    """Size of the adversary's action: the observation's (``sa-rl``) or the victim's policy space (``pa-ad``)."""
    if kind == "sa-rl":
        return obs_dim
    space = victim.action_space
    return int(space.n) if is_discrete(victim) else int(torch.Size(space.shape or (1,)).numel())  # type: ignore[attr-defined]


def sa_rl_perturbation(action: torch.Tensor, budget: float, norm: P.Norm, obs_shape: torch.Size) -> torch.Tensor:
    """The SA-RL perturbation ``u [N, *obs_shape]`` in attack units from adversary actions ``[N, d]``.

    Example:
        >>> u = sa_rl_perturbation(torch.tensor([[2.0, -0.5], [3.0, 4.0]]), 0.1, "l2", torch.Size([2]))
        >>> [round(float(v), 4) for v in u.norm(dim=1)]
        [0.1, 0.1]
    """
    a = action.flatten(1).clamp(-1.0, 1.0) if norm == "linf" else action.flatten(1)
    if norm == "l2":
        a = a / a.norm(dim=1, keepdim=True).clamp_min(1.0)
    return (budget * a).reshape(-1, *obs_shape)


def policy_features(victim: Policy, obs: torch.Tensor) -> torch.Tensor:
    """The victim's policy as a vector ``[N, k]``: action probabilities (discrete) or the action mean."""
    if is_discrete(victim):
        return torch.softmax(action_scores(victim, obs), -1)
    return continuous_action(victim, obs)


def director_perturbation(
    victim: Policy,
    obs: torch.Tensor,
    direction: torch.Tensor,
    budget: float,
    generator: torch.Generator | None,
    search: SearchConfig,
    *,
    scale: torch.Tensor | None = None,
) -> torch.Tensor:
    """PA-AD's actor: the observation in the ε-ball moving the victim's policy furthest along ``direction``.

    Args:
        victim: the attacked policy (differentiable ``logits``/``q_values`` or ``act``).
        obs: ``[N, *obs_shape]`` clean observations.
        direction: ``[N, k]`` the director's target directions in policy space (normalised here).
        budget: ε in attack units.
        generator: random starts of the search.
        search: the PGD settings.
        scale: attack-unit scale ``[*obs_shape]`` or None.

    Returns:
        ``obs' [N, *obs_shape]`` with ``‖(obs' − obs)/scale‖_p ≤ ε``.
    """
    obs, radius, scale, box = prepare(victim, obs, budget, scale)
    d = direction.flatten(1).to(obs.dtype)
    d = d / d.norm(dim=1, keepdim=True).clamp_min(1e-8)
    with torch.no_grad():
        base = policy_features(victim, obs)

    def objective(x: torch.Tensor) -> torch.Tensor:
        return ((policy_features(victim, x) - base) * d).sum(-1)

    u = run_search(objective, obs, radius, generator, search, box=box, scale=scale)
    return P.apply(obs, u, scale, box)


def learned_perturbation(
    kind: LearnedKind,
    victim: Policy,
    obs: torch.Tensor,
    adversary_action: torch.Tensor,
    budget: float,
    generator: torch.Generator | None,
    *,
    norm: P.Norm = "linf",
    search: SearchConfig | None = None,
    scale: torch.Tensor | None = None,
) -> torch.Tensor:
    """What the victim sees when a learned adversary takes ``adversary_action [N, d]`` at ``obs [N, ...]``.

    ``sa-rl``: ``clip(obs + u ⊙ scale)`` with :func:`sa_rl_perturbation`; ``pa-ad``: :func:`director_perturbation`
    (``search`` defaults to 10 PGD steps in the ``norm`` ball).
    """
    if kind == "pa-ad":
        cfg = search if search is not None else SearchConfig(norm=norm)
        return director_perturbation(victim, obs, adversary_action, budget, generator, cfg, scale=scale)
    obs, _, scale, box = prepare(victim, obs, budget, scale)
    u = P.project(sa_rl_perturbation(adversary_action.to(obs.dtype), budget, norm, obs.shape[1:]),
                  torch.full((obs.shape[0],), float(budget), dtype=obs.dtype, device=obs.device), norm, box)
    return P.apply(obs, u, scale, box)


@dataclass
class LearnedAttack:
    """A trained adversary as a rollout ``obs_transform`` ``(obs, ctx) -> obs'`` against ``ctx.policy``.

    The adversary acts on the clean observation (sampling its action unless ``deterministic``; the draws
    come from the rollout's generator); the perturbation follows :func:`learned_perturbation`.
    """

    kind: LearnedKind
    """``sa-rl`` or ``pa-ad``."""
    adversary: Policy | None
    """The trained adversary (a Box-action policy with actions in ``[-1, 1]^d``; None: no attack yet)."""
    budget: float
    """ε, per step, in attack units."""
    norm: P.Norm = "linf"
    """Which ℓp ball."""
    normalized: bool = False
    """Attack units are the victim's normalised units (its ``obs_norm`` std)."""
    search: SearchConfig | None = None
    """PA-AD's actor search (None: 10 PGD steps)."""
    deterministic: bool = False
    """Play the adversary's mean action; False samples it (the stochastic policy its training optimised)."""

    def __call__(self, obs: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        """The observation ``ctx.policy`` sees instead of ``obs``."""
        if self.budget == 0 or self.adversary is None:
            return obs
        scale = P.observation_scale(ctx.policy) if self.normalized else None
        with torch.no_grad():
            action = self.adversary.act(obs.float(), deterministic=self.deterministic, generator=ctx.generator)
        adv = learned_perturbation(self.kind, ctx.policy, obs, action, self.budget, ctx.generator,
                                   norm=self.norm, search=self.search, scale=scale)
        return adv.detach()

    def describe(self) -> dict[str, Any]:
        """JSON-ready description of the attack (without the adversary's weights)."""
        return {"name": self.kind, "kind": "obs", "threat_model": f"obs/{self.norm}", "budget": self.budget,
                "normalized": self.normalized, "deterministic": self.deterministic}
