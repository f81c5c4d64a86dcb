"""The robust-Sarsa attack at test time (Zhang et al., NeurIPS 2020, SA-PPO appendix): PGD on a learned Q^π.

Given ``Q(s, a) ≈ Q^π(s, a)`` of the frozen victim π (learned by Sarsa with a robustness regulariser in
:mod:`robustrl.adversarial.sarsa`), the attack looks for the observation ``ŝ`` in the ε-ball whose action
is worst at the true state: ``min_ŝ Q(s, π(ŝ))``. For a discrete victim ``π(ŝ)`` is replaced by its action
probabilities, ``Σ_a softmax(scores(ŝ))_a Q(s, a)`` (differentiable); for a continuous one it is the mean
action. The search is :func:`~robustrl.threats.pgd.run_search` (random start, signed or ℓ2 steps).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from robustrl.policies.base import Policy
from robustrl.rollout.context import StepContext
from robustrl.threats import projection as P
from robustrl.threats.learned import policy_features
from robustrl.threats.objectives import is_discrete
from robustrl.threats.pgd import SearchConfig, prepare, run_search

__all__ = ["SarsaAttack", "SarsaQ", "sarsa_attack"]


class SarsaQ(nn.Module):
    """``Q(s, a)``: an MLP over ``[flat obs, action]`` (one-hot for discrete actions) → ``[N]``.

    Args:
        obs_dim: flattened observation size.
        act_dim: number of actions (discrete) or action size (continuous).
        discrete: one-hot encode integer actions.
        hidden: hidden widths.
    """

    def __init__(self, obs_dim: int, act_dim: int, discrete: bool, hidden: tuple[int, ...] = (64, 64)) -> None:
        super().__init__()
        self.obs_dim, self.act_dim, self.discrete, self.hidden = obs_dim, act_dim, discrete, tuple(hidden)
        layers: list[nn.Module] = []
        width = obs_dim + act_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.Tanh()]
            width = h
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def encode(self, action: torch.Tensor) -> torch.Tensor:
        """Actions as ``[N, act_dim]`` floats (one-hot for integer actions; probabilities pass as they are)."""
        if self.discrete and not action.is_floating_point():
            return nn.functional.one_hot(action.long().flatten(), self.act_dim).float()
        return action.flatten(1).float()

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """``Q(obs, action)`` as ``[N]``."""
        return self.net(torch.cat([obs.flatten(1).float(), self.encode(action)], 1)).squeeze(1)

    def all_actions(self, obs: torch.Tensor) -> torch.Tensor:
        """Discrete: ``[N, A]`` Q values of every action."""
        n = obs.shape[0]
        eye = torch.eye(self.act_dim, dtype=torch.float32, device=obs.device)
        x = torch.cat([obs.flatten(1).float().repeat_interleave(self.act_dim, 0), eye.repeat(n, 1)], 1)
        return self.net(x).view(n, self.act_dim)


def sarsa_attack(
    victim: Policy,
    q: SarsaQ,
    obs: torch.Tensor,
    budget: float,
    generator: torch.Generator | None,
    search: SearchConfig,
    *,
    scale: torch.Tensor | None = None,
) -> torch.Tensor:
    """``argmin_ŝ Q(s, π(ŝ))`` over the ε-ball by PGD (the objective maximised is ``−Q``).

    Args:
        victim: the attacked policy.
        q: its learned ``Q^π``.
        obs: ``[N, *obs_shape]`` clean observations.
        budget: ε in attack units.
        generator: random starts.
        search: PGD settings.
        scale: attack-unit scale or None.

    Returns:
        ``obs' [N, *obs_shape]`` with ``‖(obs' − obs)/scale‖_p ≤ ε``.
    """
    obs, radius, scale, box = prepare(victim, obs, budget, scale)
    discrete = is_discrete(victim)
    with torch.no_grad():
        q_all = q.all_actions(obs) if discrete else None

    def objective(x: torch.Tensor) -> torch.Tensor:
        feats = policy_features(victim, x)
        if q_all is not None:
            return -(feats * q_all).sum(-1)
        return -q(obs, feats)

    u = run_search(objective, obs, radius, generator, search, box=box, scale=scale)
    return P.apply(obs, u, scale, box)


@dataclass
class SarsaAttack:
    """The robust-Sarsa attack as a rollout ``obs_transform`` against ``ctx.policy``."""

    q: SarsaQ
    """The victim's learned ``Q^π``."""
    budget: float
    """ε per step, in attack units."""
    search: SearchConfig
    """The PGD settings."""
    normalized: bool = False
    """Attack units are the victim's normalised units."""

    def __call__(self, obs: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        """The observation ``ctx.policy`` sees instead of ``obs``."""
        if self.budget == 0:
            return obs
        scale = P.observation_scale(ctx.policy) if self.normalized else None
        return sarsa_attack(ctx.policy, self.q, obs, self.budget, ctx.generator, self.search, scale=scale).detach()

    def describe(self) -> dict[str, Any]:
        """JSON-ready description (without the Q network's weights)."""
        return {"name": "robust_sarsa", "kind": "obs", "threat_model": f"obs/{self.search.norm}",
                "budget": self.budget, "normalized": self.normalized}
