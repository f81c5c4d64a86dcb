"""What the gradient attacks maximise, per kind of policy, and expectation over smoothing noise (EOT).

An *objective* maps perturbed observations ``obs' [N, *obs_shape]`` to a per-sample loss ``[N]`` that the
attack **maximises**; it closes over targets computed once from the clean observations (no gradient).

Loss choice per policy type (the victim's *clean action* is its greedy action on the clean observation):

======================  =========================================  ======================================
policy                  ``deviation`` (FGSM, PGD)                   ``divergence`` (MAD)
======================  =========================================  ======================================
discrete, logits/dist   cross-entropy of the clean action (or the   KL(π(·|s) ‖ π(·|s')) (SA-PPO's MAD)
                        Carlini–Wagner margin)
Q policy (DQN)          same, with Q values as logits (SA-DQN)      KL of the softmax of Q values
continuous              ‖(a(s') − a(s)) / half-range‖²              KL(π(·|s) ‖ π(·|s')) when the policy has
                                                                    ``dist``, else the action distance
======================  =========================================  ======================================

``critic`` objectives (Pattanaik et al. 2018; SA-PPO/SA-DQN): DQN → −Q(s', a*) with ``a*`` the clean
greedy action; SAC/TD3 → −Q(s, π(s')) (the true state's critic of the action taken under attack);
PPO/A2C → −V(s') (SA-PPO's critic attack).

EOT (Athalye et al. 2018) for a Gaussian-smoothed victim (Policy Smoothing, Kumar et al. 2022): the loss at
``obs'`` is the mean of the loss at ``obs' + σ z_j`` over ``k`` fresh noise draws ``z_j``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import gymnasium as gym
import torch
import torch.nn.functional as F

from robustrl.policies.base import Policy

Objective = Callable[[torch.Tensor], torch.Tensor]
"""``obs' [N, *obs_shape] -> loss [N]`` to maximise (differentiable in ``obs'``)."""

DeviationLoss = Literal["ce", "margin"]
"""Discrete-action deviation loss: cross-entropy of the clean action, or the Carlini–Wagner margin."""


def is_discrete(policy: Policy) -> bool:
    """True for a Discrete action space."""
    return isinstance(policy.action_space, gym.spaces.Discrete)


def action_scores(policy: Policy, obs: torch.Tensor) -> torch.Tensor:
    """Differentiable per-action scores ``[N, A]`` of a discrete policy: Q values, else logits.

    Raises:
        ValueError: the policy exposes none of ``q_values``, ``logits``, a categorical ``dist``.
    """
    q_values = getattr(policy, "q_values", None)
    if callable(q_values):
        return q_values(obs)  # type: ignore[no-any-return]
    logits = getattr(policy, "logits", None)
    if callable(logits):
        return logits(obs)  # type: ignore[no-any-return]
    dist = getattr(policy, "dist", None)
    if callable(dist):
        d = dist(obs)
        if isinstance(d, torch.distributions.Categorical):
            return d.logits  # type: ignore[no-any-return]
    raise ValueError(
        f"{type(policy).__name__} exposes no q_values, logits or categorical dist: cannot attack it with gradients"
    )


def _half_range(policy: Policy, like: torch.Tensor) -> torch.Tensor:
    space = policy.action_space
    if isinstance(space, gym.spaces.Box):
        low = torch.as_tensor(space.low, dtype=like.dtype, device=like.device).flatten()
        high = torch.as_tensor(space.high, dtype=like.dtype, device=like.device).flatten()
        half = (high - low) / 2
        return torch.where(torch.isfinite(half) & (half > 0), half, torch.ones_like(half))
    return torch.ones(like.shape[-1], dtype=like.dtype, device=like.device)


def continuous_action(policy: Policy, obs: torch.Tensor) -> torch.Tensor:
    """The deterministic action ``[N, act_dim]`` (flattened), differentiable in ``obs``.

    A recurrent policy's ``peek_action`` is used where it has one, so the attack leaves its carried state alone.
    """
    peek = getattr(policy, "peek_action", None)
    action = peek(obs) if callable(peek) else policy.act(obs, deterministic=True)
    return action.flatten(1).to(obs.dtype)


def _policy_dist(policy: Policy) -> Callable[[torch.Tensor], torch.distributions.Distribution] | None:
    dist = getattr(policy, "dist", None)
    return dist if callable(dist) else None


def _repeat(x: torch.Tensor, k: int) -> torch.Tensor:
    return x.repeat(k, *([1] * (x.dim() - 1))) if k > 1 else x


def expectation_over_noise(
    per_sample: Callable[[torch.Tensor], torch.Tensor],
    obs_adv: torch.Tensor,
    sigma: float,
    samples: int,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """EOT: ``mean_j per_sample(obs' + σ z_j)`` over ``samples`` Gaussian draws (``[N]``).

    ``per_sample`` receives the ``samples`` noisy copies stacked along the batch (copy ``j`` in rows
    ``j·N … (j+1)·N − 1``) and returns ``[samples · N]``. With ``sigma == 0`` it is called once on ``obs'``.
    """
    if sigma <= 0:
        return per_sample(obs_adv)
    k = max(int(samples), 1)
    noise = torch.randn((k, *obs_adv.shape), generator=generator, dtype=obs_adv.dtype, device=obs_adv.device)
    noisy = (obs_adv.unsqueeze(0) + sigma * noise).reshape(k * obs_adv.shape[0], *obs_adv.shape[1:])
    return per_sample(noisy).view(k, obs_adv.shape[0]).mean(0)


def _eot_samples(sigma: float, samples: int) -> int:
    if sigma < 0:
        raise ValueError(f"smoothing_sigma must be ≥ 0, got {sigma}")
    if samples < 1:
        raise ValueError(f"eot_samples must be ≥ 1, got {samples}")
    return samples if sigma > 0 else 1


def deviation_objective(
    policy: Policy,
    clean_obs: torch.Tensor,
    *,
    loss: DeviationLoss = "ce",
    smoothing_sigma: float = 0.0,
    eot_samples: int = 1,
    generator: torch.Generator | None = None,
) -> Objective:
    """Push the policy away from its clean action (the FGSM/PGD objective; see the module table)."""
    k = _eot_samples(smoothing_sigma, eot_samples)
    with torch.no_grad():
        if is_discrete(policy):
            target = _repeat(action_scores(policy, clean_obs).argmax(-1), k)

            def per_sample(x: torch.Tensor) -> torch.Tensor:
                scores = action_scores(policy, x)
                if loss == "ce":
                    return F.cross_entropy(scores, target, reduction="none")
                own = scores.gather(1, target[:, None]).squeeze(1)
                other = scores.scatter(1, target[:, None], float("-inf")).amax(1)
                return other - own

        else:
            clean = continuous_action(policy, clean_obs)
            half = _half_range(policy, clean)
            target_a = _repeat(clean, k)

            def per_sample(x: torch.Tensor) -> torch.Tensor:
                a = continuous_action(policy, x)
                return ((a - target_a) / half).square().sum(1)

    return lambda obs_adv: expectation_over_noise(per_sample, obs_adv, smoothing_sigma, k, generator)


def targeted_objective(
    policy: Policy,
    clean_obs: torch.Tensor,
    target: torch.Tensor,
    *,
    smoothing_sigma: float = 0.0,
    eot_samples: int = 1,
    generator: torch.Generator | None = None,
) -> Objective:
    """Pull a discrete policy toward the action ``target [N]``: its noise-averaged margin, capped at 0.

    The scores are Q values (DQN) or logits (the module table); the loss is
    ``min(score[target] − max_{b ≠ target} score[b], 0)`` (Carlini–Wagner with κ = 0), averaged over
    ``eot_samples`` noise draws for a smoothed victim (EOT). The cap stops the search from pushing further
    once a draw has flipped, so the perturbation stays near the least one; the average counts the noisy
    votes still to win. ``clean_obs`` fixes the batch shape.
    """
    if not is_discrete(policy):
        raise ValueError("the targeted objective needs a Discrete action space")
    k = _eot_samples(smoothing_sigma, eot_samples)
    if target.shape != clean_obs.shape[:1]:
        raise ValueError(f"target must be [N] = {tuple(clean_obs.shape[:1])}, got {tuple(target.shape)}")
    rep = _repeat(target.long(), k)

    def per_sample(x: torch.Tensor) -> torch.Tensor:
        scores = action_scores(policy, x)
        own = scores.gather(1, rep[:, None]).squeeze(1)
        other = scores.scatter(1, rep[:, None], float("-inf")).amax(1)
        return (own - other).clamp(max=0.0)

    return lambda obs_adv: expectation_over_noise(per_sample, obs_adv, smoothing_sigma, k, generator)


def divergence_objective(
    policy: Policy,
    clean_obs: torch.Tensor,
    *,
    smoothing_sigma: float = 0.0,
    eot_samples: int = 1,
    generator: torch.Generator | None = None,
) -> Objective:
    """KL(π(·|s) ‖ π(·|s')) (MAD, SA-PPO), or the action distance for deterministic continuous policies."""
    k = _eot_samples(smoothing_sigma, eot_samples)
    dist = _policy_dist(policy)
    with torch.no_grad():
        if is_discrete(policy):
            clean_logp = _repeat(torch.log_softmax(action_scores(policy, clean_obs), -1), k)

            def per_sample(x: torch.Tensor) -> torch.Tensor:
                logp = torch.log_softmax(action_scores(policy, x), -1)
                return (clean_logp.exp() * (clean_logp - logp)).sum(1)

        elif dist is not None:
            clean_dist = dist(_repeat(clean_obs, k))
            dist_fn = dist

            def per_sample(x: torch.Tensor) -> torch.Tensor:
                kl = torch.distributions.kl_divergence(clean_dist, dist_fn(x))
                return kl.reshape(x.shape[0], -1).sum(1)

        else:
            return deviation_objective(
                policy, clean_obs, smoothing_sigma=smoothing_sigma, eot_samples=eot_samples, generator=generator
            )
    return lambda obs_adv: expectation_over_noise(per_sample, obs_adv, smoothing_sigma, k, generator)


def critic_kind(policy: Policy) -> Literal["q_values", "critic", "value"]:
    """Which of the victim's own value estimates the critic attack uses (first available).

    Raises:
        ValueError: the policy has neither ``q_values``, ``critic`` nor ``value``.
    """
    for name in ("q_values", "critic", "value"):
        if callable(getattr(policy, name, None)):
            return name  # type: ignore[return-value]
    raise ValueError(f"{type(policy).__name__} has no q_values, critic or value: the critic attack needs one of them")


def critic_objective(
    policy: Policy,
    clean_obs: torch.Tensor,
    *,
    smoothing_sigma: float = 0.0,
    eot_samples: int = 1,
    generator: torch.Generator | None = None,
) -> Objective:
    """Minimise the victim's own value of what it does (returned negated, to be maximised)."""
    k = _eot_samples(smoothing_sigma, eot_samples)
    kind = critic_kind(policy)
    fn: Any = getattr(policy, kind)
    with torch.no_grad():
        if kind == "q_values":
            target = _repeat(fn(clean_obs).argmax(-1), k)

            def per_sample(x: torch.Tensor) -> torch.Tensor:
                q = fn(x)
                return -q.gather(1, target[:, None]).squeeze(1)

        elif kind == "critic":
            true_obs = _repeat(clean_obs, k)

            def per_sample(x: torch.Tensor) -> torch.Tensor:
                action = policy.act(x, deterministic=True)
                return -fn(true_obs, action).reshape(x.shape[0])

        else:

            def per_sample(x: torch.Tensor) -> torch.Tensor:
                return -fn(x).reshape(x.shape[0])

    return lambda obs_adv: expectation_over_noise(per_sample, obs_adv, smoothing_sigma, k, generator)


def clean_action_kept(
    policy: Policy,
    clean_obs: torch.Tensor,
    obs_adv: torch.Tensor,
    *,
    smoothing_sigma: float = 0.0,
    eot_samples: int = 1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``bool [N]``: the (smoothed) policy still takes its clean action at ``obs'``.

    For a smoothed policy (``σ > 0``) the clean action is kept when it wins at least half of
    ``eot_samples`` noisy votes. Discrete actions only.
    """
    k = _eot_samples(smoothing_sigma, eot_samples)
    with torch.no_grad():
        target = action_scores(policy, clean_obs).argmax(-1)
        rep = _repeat(target, k).to(obs_adv.dtype)

        def votes(x: torch.Tensor) -> torch.Tensor:
            return (action_scores(policy, x).argmax(-1).to(x.dtype) == rep).to(x.dtype)

        share = expectation_over_noise(votes, obs_adv, smoothing_sigma, k, generator)
    return share >= 0.5
