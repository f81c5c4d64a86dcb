"""Action-robust MDP adversaries (Tessler, Efroni & Mannor, ICML 2019): PR-MDP and NR-MDP mixing.

PR-MDP (probabilistic): with probability α (the budget) the adversary's action replaces the agent's.
NR-MDP (noisy, continuous actions): the env receives ``(1 − α) a + α a_adv``.

The adversary is a :class:`~robustrl.policies.base.Policy` acting on the true observation, or the
``worst`` heuristic built from the victim itself: discrete → the action with the lowest Q value (Q
policies) or the lowest score (logits); continuous → the action minimising the victim's own critic by
projected gradient descent from its action (SAC/TD3), else the corner of the action box farthest from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import gymnasium as gym
import torch

from robustrl.policies.base import Policy
from robustrl.threats.action_noise import box_limits, check_probability
from robustrl.threats.objectives import action_scores


@dataclass(frozen=True)
class PRMDPConfig:
    """An adversary that takes over (PR-MDP) or blends into (NR-MDP) the agent's actions."""

    mix: Literal["pr", "nr"] = "pr"
    """``pr``: replace with probability α; ``nr``: blend (1 − α)·a + α·a_adv (continuous only)."""
    critic_steps: int = 10
    """Gradient steps of the worst-case heuristic on the victim's critic (SAC/TD3)."""

    def __post_init__(self) -> None:
        if self.critic_steps < 0:
            raise ValueError(f"critic_steps must be ≥ 0, got {self.critic_steps}")


def worst_action(policy: Policy, action: torch.Tensor, obs: torch.Tensor, critic_steps: int = 10) -> torch.Tensor:
    """The worst-case heuristic adversary's action for each sample (see the module docstring)."""
    space = policy.action_space
    with torch.no_grad():
        if isinstance(space, gym.spaces.Discrete):
            return action_scores(policy, obs).argmin(-1).to(action.dtype)
        low, high = box_limits(space, action)
        bounded = torch.isfinite(low) & torch.isfinite(high)
        corner = torch.where(action >= (low + high) / 2, low, high)
        far = torch.where(bounded, corner, -action)
    critic = getattr(policy, "critic", None)
    if not callable(critic) or critic_steps == 0:
        return far
    a = action.detach().clone()
    span = torch.where(bounded, high - low, torch.ones_like(low))
    for _ in range(critic_steps):
        with torch.enable_grad():
            a_var = a.requires_grad_(True)
            (grad,) = torch.autograd.grad(critic(obs, a_var).sum(), a_var)
        a = torch.maximum(torch.minimum(a.detach() - 0.1 * span * grad.sign(), high), low)
    return a


def pr_mdp(
    policy: Policy,
    action: torch.Tensor,
    obs: torch.Tensor,
    budget: float,
    generator: torch.Generator | None,
    config: PRMDPConfig = PRMDPConfig(),
    *,
    adversary: Policy | None = None,
) -> torch.Tensor:
    """Mix the agent's actions with an adversary's.

    Args:
        policy: the victim (used by the ``worst`` heuristic and for its action space).
        action: the agent's actions (``int64 [N]`` or ``float [N, *act_shape]``).
        obs: ``[N, *obs_shape]`` the true observations (what the adversary sees).
        budget: α ∈ [0, 1].
        generator: draws the takeover coin flips.
        config: PR or NR mixing.
        adversary: a policy acting for the adversary; None uses :func:`worst_action`.

    Returns:
        The actions the env receives.
    """
    alpha = check_probability(budget)
    if adversary is not None:
        with torch.no_grad():
            adv = adversary.act(obs, deterministic=True, generator=generator).to(action.dtype)
    else:
        adv = worst_action(policy, action, obs, config.critic_steps)
    if config.mix == "nr":
        if isinstance(policy.action_space, gym.spaces.Discrete):
            raise ValueError("mix='nr' needs a Box action space; use mix='pr' for Discrete actions")
        return (1 - alpha) * action + alpha * adv
    take = torch.rand((action.shape[0],), generator=generator, device=action.device) < alpha
    return torch.where(take.view(-1, *([1] * (action.dim() - 1))), adv.reshape(action.shape), action)
