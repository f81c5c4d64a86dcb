"""Advantage and return estimates over a rollout ``[T, N]``, with ``terminated`` and ``truncated`` apart.

Termination means the MDP ended: nothing follows, the bootstrap is 0. Truncation (a time limit) cuts an
episode that would have gone on: the bootstrap is ``V(final_obs)``, the value of the last observation of
the cut episode (``info["final_obs"]`` in the same-step autoreset contract of :mod:`robustrl.envs.base`).
Treating truncation as termination biases every value near the time limit (Pardo et al., ICML 2018,
"Time Limits in Reinforcement Learning").
"""

from __future__ import annotations

from typing import NamedTuple

import torch


class AdvantageEstimate(NamedTuple):
    """Advantages and the value targets they imply."""

    advantages: torch.Tensor
    """``[T, N]`` GAE(γ, λ) advantages."""
    returns: torch.Tensor
    """``[T, N]`` λ-returns ``advantages + values`` (the critic's regression targets)."""


def next_values_from_rollout(
    values: torch.Tensor, last_value: torch.Tensor, done: torch.Tensor, final_values: torch.Tensor
) -> torch.Tensor:
    """``V(s_{t+1})`` of each step's own successor, built from a rollout's values.

    Args:
        values: ``[T, N]`` values of the observations acted on at each step.
        last_value: ``[N]`` value of the observation after the last step.
        done: ``[T, N]`` bool, ``terminated | truncated`` (the next row is then another episode's start).
        final_values: ``[T, N]`` values of ``info["final_obs"]``; only read where ``done``.

    Returns:
        ``[T, N]``: ``values[t+1]`` (``last_value`` at ``t = T−1``) where not done, else ``final_values[t]``.
    """
    shifted = torch.cat([values[1:], last_value.unsqueeze(0)], dim=0)
    return torch.where(done, final_values, shifted)


def generalized_advantage_estimate(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    gamma: float,
    gae_lambda: float,
) -> AdvantageEstimate:
    """GAE(γ, λ) (Schulman et al., ICLR 2016, "High-Dimensional Continuous Control Using GAE").

    ``δ_t = r_t + γ·(1 − terminated_t)·V(s_{t+1}) − V(s_t)`` and
    ``A_t = δ_t + γλ·(1 − done_t)·A_{t+1}`` with ``done = terminated | truncated``: a truncated step
    bootstraps from ``next_values`` (which must then hold ``V(final_obs)``) but does not carry the
    advantage of the next episode back.

    Args:
        rewards: ``[T, N]`` rewards.
        values: ``[T, N]`` ``V(s_t)``.
        next_values: ``[T, N]`` ``V(s_{t+1})`` of each step's own successor (see
            :func:`next_values_from_rollout`); ignored where ``terminated``.
        terminated: ``[T, N]`` bool.
        truncated: ``[T, N]`` bool.
        gamma: discount in [0, 1].
        gae_lambda: λ in [0, 1] (1: Monte-Carlo returns with bootstrap, 0: one-step TD).

    Returns:
        :class:`AdvantageEstimate`, both fields ``[T, N]`` in ``values``' dtype.

    Example:
        >>> r = torch.ones(3, 1); v = torch.zeros(3, 1); f = torch.zeros(3, 1, dtype=torch.bool)
        >>> generalized_advantage_estimate(r, v, v, f, f, gamma=0.5, gae_lambda=1.0).returns.squeeze(1)
        tensor([1.7500, 1.5000, 1.0000])
    """
    if rewards.shape != values.shape or values.shape != next_values.shape:
        raise ValueError(
            f"rewards {tuple(rewards.shape)}, values {tuple(values.shape)} and next_values "
            f"{tuple(next_values.shape)} must have the same shape [T, N]"
        )
    if terminated.shape != rewards.shape or truncated.shape != rewards.shape:
        raise ValueError("terminated and truncated must have the shape [T, N] of rewards")
    not_term = (~terminated).to(values.dtype)
    not_done = (~(terminated | truncated)).to(values.dtype)
    deltas = rewards.to(values.dtype) + gamma * not_term * next_values - values
    carry = gamma * gae_lambda * not_done
    advantages = torch.empty_like(values)
    last = torch.zeros_like(values[0])
    for t in range(values.shape[0] - 1, -1, -1):
        last = deltas[t] + carry[t] * last
        advantages[t] = last
    return AdvantageEstimate(advantages=advantages, returns=advantages + values)


def discounted_returns(
    rewards: torch.Tensor, terminated: torch.Tensor, truncated: torch.Tensor, bootstrap: torch.Tensor, gamma: float
) -> torch.Tensor:
    """Discounted returns-to-go ``G_t = r_t + γ·G_{t+1}`` restarting at episode boundaries.

    Args:
        rewards: ``[T, N]``.
        terminated: ``[T, N]`` bool (the return after a terminal step is 0).
        truncated: ``[T, N]`` bool (the return after a truncated step is its ``bootstrap``).
        bootstrap: ``[T, N]`` value estimate of each step's successor, read where truncated and at ``t = T−1``.
        gamma: discount.

    Returns:
        ``[T, N]`` returns.
    """
    out = torch.empty_like(rewards, dtype=bootstrap.dtype)
    nxt = bootstrap[-1]
    for t in range(rewards.shape[0] - 1, -1, -1):
        nxt = torch.where(terminated[t], torch.zeros_like(nxt), torch.where(truncated[t], bootstrap[t], nxt))
        nxt = rewards[t] + gamma * nxt
        out[t] = nxt
    return out
