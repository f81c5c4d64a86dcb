"""WocaR-PPO: a learned worst-attack value in the advantage, and an importance-weighted smoothness term.

Liang, Sun, Zheng & Huang (NeurIPS 2022, "Efficient Adversarial Training without Attacking: Worst-Case-Aware
Robust Reinforcement Learning") train no attacker. Besides PPO's critic they learn the *worst-attack* action
value ``Q_w`` with the worst-attack Bellman operator

    (T_w Q)(s, a) = r(s, a) + γ·(1 − terminated)·min_{a' ∈ A_B(s')} Q(s', a'),

where ``A_B(s')`` holds the actions the policy could take if its observation of ``s'`` were moved anywhere in
the ε-ball ``B(s')``. The actor then ascends ``A + κ_w·A_w`` (``A_w`` the worst-case advantage under ``Q_w``)
and, as SA-PPO, pays ``κ_s·E[w(s)·max_{ŝ∈B(s)} KL(π(·|s) ‖ π(·|ŝ))]``, with ``w(s)`` the importance of the
state (how much the choice of action matters there). No attack runs while collecting.

What this module computes, batched over whole rollouts and minibatches (no per-sample Python):

- :func:`actor_bounds`: interval bound propagation (IBP) of the actor's output over the ℓ∞ box holding the
  ball (an ℓ2 ball is bounded by the same box), through the observation normaliser (monotone per
  coordinate), the Linear layers (centre ± |W|·radius) and the monotone activations. The bounds are sound:
  every ŝ in the ball gives logits / means inside them.
- :func:`reachable_actions`: ``A_B(s)``. Discrete: every action whose upper logit bound reaches the largest
  lower bound (any other action can never be the arg-max); continuous: the IBP box of the Gaussian mean,
  clipped to the action space (the env clips the action, a monotone map).
- :func:`worst_value`: ``min_{a∈A_B(s)} Q(s, a)``. Discrete: exact (a masked min); continuous: sign-gradient
  descent on ``Q`` inside the box from the clean action (the reference's step, box width / steps), keeping
  each sample's lowest value, so it is never above the value of the clean action.
- :func:`worst_case_target` and :func:`fit_worst_case_q`: the worst-attack Bellman target from a Polyak
  target network, regressed on every rollout.
- :func:`worst_case_advantage`, :func:`importance_weights`, :func:`wocar_regularizer`: the policy-side terms.

Usage: ``robustrl train --algo ppo --defense wocar --defense-set eps=0.05`` (the trainer is
:func:`robustrl.adversarial.wocar.train_wocar`; PPO only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from robustrl.common.limits import check_count
from robustrl.defenses.base import Minibatch
from robustrl.defenses.sa_reg import SARegConfig, divergence_fn, maximise_divergence
from robustrl.policies.features import Activation, mlp

__all__ = [
    "Reachable",
    "WocaRConfig",
    "WorstCaseCritic",
    "WorstCaseQ",
    "actor_bounds",
    "ball_scale",
    "box_minimise",
    "check_wocar_policy",
    "fit_worst_case_q",
    "importance_weights",
    "interval_forward",
    "nominal_value",
    "reachable_actions",
    "wocar_regularizer",
    "worst_case_advantage",
    "worst_case_bonus",
    "worst_case_target",
    "worst_value",
]


@dataclass(frozen=True)
class WocaRConfig:
    """WocaR-PPO: worst-attack critic ``Q_w`` in the advantage, importance-weighted SA-PPO smoothness."""

    eps: float = 0.05
    """Radius ε of the ball B(s) (the policy's normalised units where it normalises, raw units otherwise)."""
    kappa_w: float = 0.8
    """Weight κ_w of the worst-case advantage added to PPO's (standardised) advantage (the reference's
    q_weight)."""
    kappa_ramp: float = 1.0
    """Fraction of training over which κ_w grows linearly from 0 (the reference's 'linear' schedule: 1; 0: at
    once)."""
    kappa_s: float = 0.1
    """Weight κ_s of the smoothness regulariser w(s)·max_{ŝ∈B(s)} KL(π(s) ‖ π(ŝ)) (0: none)."""
    importance: bool = True
    """Weight the smoothness regulariser per state by w(s), the spread of Q_w over the action space (mean 1 over
    each minibatch); false: uniform weights, SA-PPO's regulariser."""
    eps_warmup: float = 0.0
    """Fraction of training with ε = 0 (both the worst-case target and the regulariser)."""
    eps_ramp: float = 0.5
    """Fraction of training (after the warm-up) over which ε grows linearly from 0 to eps (0: at once)."""
    norm: Literal["linf", "l2"] = "linf"
    """Which ℓp ball (IBP bounds an ℓ2 ball by the ℓ∞ box of the same radius)."""
    solver: Literal["pgd", "sgld"] = "sgld"
    """Inner maximiser of the smoothness regulariser (SA-PPO's SGLD, as the reference, or PGD)."""
    steps: int = 10
    """Gradient steps of that inner maximiser."""
    step_scale: float = 1.0
    """Its step size as a multiple of ε / steps."""
    action_steps: int = 10
    """Box actions: sign-gradient steps of the search for the worst action of the IBP box (and for the range of
    Q_w in the importance weight); the reference takes 50."""
    q_epochs: int = 10
    """Passes of Q_w's regression over each rollout (the target is recomputed at each pass)."""
    q_lr: float = 1e-3
    """Adam step size of Q_w (annealed with PPO's anneal_lr)."""
    tau: float = 0.02
    """Polyak rate of Q_w's target network per gradient step."""
    normalized: bool = True
    """Measure ε in the policy's normalised units where it has an observation normaliser."""

    def validate(self) -> None:
        """Raise a ``ValueError`` naming the first bad field."""
        for fld in ("eps", "step_scale", "q_lr"):
            v = getattr(self, fld)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
                raise ValueError(f"WocaRConfig.{fld} must be a finite number > 0, got {v!r}")
        for fld in ("kappa_w", "kappa_s"):
            v = getattr(self, fld)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
                raise ValueError(f"WocaRConfig.{fld} must be a finite number ≥ 0, got {v!r}")
        for fld in ("kappa_ramp", "eps_warmup", "eps_ramp"):
            v = getattr(self, fld)
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0.0 <= v <= 1.0:
                raise ValueError(f"WocaRConfig.{fld} must lie in [0, 1], got {v!r}")
        if self.eps_warmup + self.eps_ramp > 1.0:
            raise ValueError(f"WocaRConfig.eps_warmup + eps_ramp must be ≤ 1, got {self.eps_warmup + self.eps_ramp}")
        t = self.tau
        if isinstance(t, bool) or not isinstance(t, int | float) or not 0.0 < t <= 1.0:
            raise ValueError(f"WocaRConfig.tau must lie in (0, 1], got {t!r}")
        if self.norm not in ("linf", "l2"):
            raise ValueError(f"WocaRConfig.norm must be 'linf' or 'l2', got {self.norm!r}")
        if self.solver not in ("pgd", "sgld"):
            raise ValueError(f"WocaRConfig.solver must be 'pgd' or 'sgld', got {self.solver!r}")
        if not isinstance(self.importance, bool) or not isinstance(self.normalized, bool):
            raise ValueError("WocaRConfig.importance and normalized must be true or false")
        for fld in ("steps", "action_steps", "q_epochs"):
            check_count(getattr(self, fld), f"WocaRConfig.{fld}")

    def smoothness(self) -> SARegConfig:
        """The SA-PPO settings of the smoothness regulariser's inner maximisation (and of the ε schedule)."""
        return SARegConfig(eps=self.eps, kappa=max(self.kappa_s, 1e-12), eps_warmup=self.eps_warmup,
                           eps_ramp=self.eps_ramp, solver=self.solver, steps=self.steps,
                           step_scale=self.step_scale, norm=self.norm, normalized=self.normalized)

    def eps_at(self, progress: float) -> float:
        """ε after a fraction ``progress`` of training (warm-up at 0, then a linear ramp, as sa-reg).

        Example:
            >>> WocaRConfig(eps=0.1, eps_ramp=0.5).eps_at(0.25)
            0.05
        """
        return self.smoothness().eps_at(progress)

    def kappa_w_at(self, progress: float) -> float:
        """κ_w after a fraction ``progress`` of training: a linear ramp from 0 over ``kappa_ramp``.

        Example:
            >>> WocaRConfig(kappa_w=0.8, kappa_ramp=0.5).kappa_w_at(0.25)
            0.4
        """
        if self.kappa_ramp <= 0:
            return float(self.kappa_w)
        return float(self.kappa_w) * min(1.0, max(float(progress), 0.0) / float(self.kappa_ramp))


# ---------------------------------------------------------------------------------------- the networks
class WorstCaseQ(nn.Module):
    """One worst-attack action-value network on the policy's flat features."""

    def __init__(self, in_dim: int, action_space: gym.Space[Any], hidden: tuple[int, ...], activation: Activation):
        super().__init__()
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        self.act_dim = 0 if self.discrete else int(np.prod(action_space.shape or ()))
        out_dim = int(action_space.n) if self.discrete else 1  # type: ignore[attr-defined]
        width = hidden[-1] if hidden else in_dim + self.act_dim
        self.body = mlp(in_dim + self.act_dim, hidden, activation)
        self.head = nn.Linear(width, out_dim)
        for m in self.body.modules():
            if isinstance(m, nn.Linear):
                nn.init.orthogonal_(m.weight, math.sqrt(2))
                nn.init.zeros_(m.bias)
        nn.init.orthogonal_(self.head.weight, 1.0)
        nn.init.zeros_(self.head.bias)

    def all_actions(self, x: torch.Tensor) -> torch.Tensor:
        """Discrete: ``[B, A]`` values of every action at features ``x [B, F]``."""
        return self.head(self.body(x))

    def forward(self, x: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """``[B]`` values of ``action`` (discrete: ``int [B]``; Box: env actions ``[B, act_dim]``) at ``x``."""
        if self.discrete:
            return self.all_actions(x).gather(1, action.long().view(-1, 1)).squeeze(1)
        return self.head(self.body(torch.cat([x, action.reshape(x.shape[0], -1).to(x.dtype)], 1))).squeeze(1)


class WorstCaseCritic(nn.Module):
    """The worst-attack value ``Q_w`` and its Polyak target, on the policy's flat (normalised) features.

    Discrete actions: one output per action; Box actions: ``Q(x, a)`` of the features concatenated with the
    env action (clipped to the space).

    Args:
        in_dim: features of one observation (the policy's ``features.out_dim``).
        action_space: ``Discrete`` or ``Box``.
        hidden: hidden widths.
        activation: hidden activation.
    """

    def __init__(
        self, in_dim: int, action_space: gym.Space[Any], hidden: tuple[int, ...] = (64, 64),
        activation: Activation = "tanh",
    ) -> None:
        super().__init__()
        if not isinstance(action_space, gym.spaces.Discrete | gym.spaces.Box):
            raise ValueError(f"wocar needs a Discrete or Box action space, got {action_space!r}")
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        self.q = WorstCaseQ(in_dim, action_space, tuple(hidden), activation)
        self.target = WorstCaseQ(in_dim, action_space, tuple(hidden), activation)
        self.target.load_state_dict(self.q.state_dict())
        self.target.requires_grad_(False)

    @torch.no_grad()
    def update_target(self, tau: float) -> None:
        """``θ' ← (1 − τ)·θ' + τ·θ``."""
        torch._foreach_lerp_(list(self.target.parameters()), list(self.q.parameters()), float(tau))


# ---------------------------------------------------------------------------------------- bounds
def ball_scale(policy: Any, normalized: bool) -> torch.Tensor | None:
    """Size of one unit of the ball in raw observation units: the normaliser's ``sqrt(var + eps)`` (None: raw)."""
    norm = getattr(policy, "obs_norm", None) if normalized else None
    if norm is None or not hasattr(norm, "var"):
        return None
    return torch.sqrt(norm.var.detach().float() + float(getattr(norm, "eps", 1e-8)))


def check_wocar_policy(policy: Any) -> None:
    """Raise a ``ValueError`` unless ``policy`` is an actor-critic MLP on flat Box observations (what IBP bounds)."""
    feats = getattr(policy, "features", None)
    if not (hasattr(policy, "action_params") and hasattr(policy, "mlp_extractor") and feats is not None):
        raise ValueError(f"wocar needs an actor-critic MLP policy (PPO's), got {type(policy).__name__}")
    if getattr(feats, "discrete", False) or getattr(feats, "extractor", None) is not None:
        raise ValueError("wocar bounds flat Box observations only (no Discrete observations, no Nature CNN)")


def interval_forward(layers: nn.Module, low: torch.Tensor, high: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Interval bound propagation of ``[low, high]`` through a Linear / Tanh / ReLU / Sequential stack.

    Linear layers map the box's centre and radius (``W·c + b ± |W|·r``); the activations are monotone, so they
    map the two ends. The result holds the layer's output at every input of the box.

    Raises:
        ValueError: a layer other than these.
    """
    mods = list(layers) if isinstance(layers, nn.Sequential) else [layers]
    for layer in mods:
        if isinstance(layer, nn.Sequential):
            low, high = interval_forward(layer, low, high)
        elif isinstance(layer, nn.Linear):
            centre, radius = (high + low) / 2, (high - low) / 2
            centre = layer(centre)
            radius = nn.functional.linear(radius, layer.weight.abs())
            low, high = centre - radius, centre + radius
        elif isinstance(layer, nn.Tanh | nn.ReLU | nn.Sigmoid | nn.Identity):
            low, high = layer(low), layer(high)
        else:
            raise ValueError(f"interval bounds do not cover {type(layer).__name__} layers")
    return low, high


def actor_bounds(
    policy: Any, obs: torch.Tensor, eps: float, *, scale: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """IBP bounds ``(low, high)`` of ``policy.action_params(ŝ)`` over every ŝ with ``|ŝ − s| ≤ eps·scale``.

    Args:
        policy: an :class:`~robustrl.policies.networks.ActorCriticPolicy` on flat Box observations.
        obs: ``[B, *obs_shape]`` raw observations ``s``.
        eps: radius of the ℓ∞ box (it holds the ℓ2 ball of the same radius).
        scale: ``[*obs_shape]`` raw size of one unit (None: raw units).

    Returns:
        Two ``[B, A]`` tensors (logits or Gaussian means), without gradients.
    """
    check_wocar_policy(policy)
    obs = obs.detach().float()
    radius = torch.full_like(obs, float(eps)) if scale is None else float(eps) * scale.expand_as(obs)
    with torch.no_grad():
        # the features (normaliser, clip, flatten) are monotone per coordinate: the box maps end to end
        low, high = policy.features(obs - radius), policy.features(obs + radius)
        low, high = interval_forward(policy.mlp_extractor.policy_net, low, high)
        return interval_forward(policy.action_net, low, high)


class Reachable(NamedTuple):
    """The actions ``A_B(s)`` a policy may take when its observation of ``s`` moves inside the ball."""

    features: torch.Tensor
    """``[B, F]`` the Q-network's inputs at the clean ``s`` (the policy's flat, normalised features)."""
    nominal: torch.Tensor
    """The clean action: discrete ``int64 [B]`` arg-max; Box ``[B, act_dim]`` clipped mean."""
    mask: torch.Tensor | None
    """Discrete: ``bool [B, A]`` reachable actions (the arg-max always among them); Box: None."""
    low: torch.Tensor | None
    """Box: ``[B, act_dim]`` lower corner of the reachable env actions; discrete: None."""
    high: torch.Tensor | None
    """Box: ``[B, act_dim]`` upper corner; discrete: None."""


def _clip_action(policy: Any, action: torch.Tensor) -> torch.Tensor:
    return torch.max(torch.min(action, policy.action_high.flatten()), policy.action_low.flatten())


def reachable_actions(
    policy: Any, obs: torch.Tensor, eps: float, *, scale: torch.Tensor | None = None
) -> Reachable:
    """``A_B(s)`` for every row of ``obs [B, ...]`` from :func:`actor_bounds` (no gradients).

    Discrete: action ``i`` is reachable unless some action's lower logit bound exceeds ``i``'s upper bound
    (then ``i`` is never the arg-max in the ball); at ε = 0 only the arg-max(es). Box: the IBP box of the mean,
    clipped to the action space, as the env clips.
    """
    with torch.no_grad():
        x = policy.features(obs.float())
        clean = policy.action_params(obs.float())
        low, high = actor_bounds(policy, obs, eps, scale=scale)
        if getattr(policy, "discrete", True):
            mask = high >= low.amax(-1, keepdim=True)
            return Reachable(x, clean.argmax(-1), mask, None, None)
        return Reachable(x, _clip_action(policy, clean), None, _clip_action(policy, low), _clip_action(policy, high))


def box_minimise(
    fn: Any, low: torch.Tensor, high: torch.Tensor, start: torch.Tensor, steps: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sign-gradient descent of ``fn(a) -> [B]`` inside the box ``[low, high]`` (``[B, d]``), batched.

    ``steps`` steps of size ``(high − low) / steps`` from ``start`` (projected into the box), each sample
    keeping the lowest point evaluated (the start included). Gradients are taken with respect to ``a`` only.

    Returns:
        ``(a [B, d], fn(a) [B])``, detached.
    """
    a = torch.max(torch.min(start.detach(), high), low)
    step = (high - low) / int(steps)
    best_a, best = a, torch.full(a.shape[:1], float("inf"), dtype=a.dtype, device=a.device)
    for i in range(int(steps) + 1):
        with torch.enable_grad():
            var = a.detach().requires_grad_(True)
            value = fn(var)
            grad = torch.autograd.grad(value.sum(), var)[0] if i < steps and value.requires_grad else None
        better = value.detach() < best
        best = torch.where(better, value.detach(), best)
        best_a = torch.where(better.unsqueeze(1), a.detach(), best_a)
        if grad is None:
            break
        a = torch.max(torch.min(a.detach() - step * grad.sign(), high), low)
    return best_a.detach(), best.detach()


def worst_value(q: WorstCaseQ, reach: Reachable, steps: int = 10) -> torch.Tensor:
    """``min_{a ∈ A_B(s)} Q(s, a)``, ``[B]`` (discrete: exact; Box: :func:`box_minimise` from the clean action)."""
    if reach.mask is not None:
        with torch.no_grad():
            values = q.all_actions(reach.features)
            return values.masked_fill(~reach.mask, float("inf")).amin(-1)
    assert reach.low is not None and reach.high is not None
    x = reach.features
    return box_minimise(lambda a: q(x, a), reach.low, reach.high, reach.nominal, steps)[1]


def nominal_value(q: WorstCaseQ, reach: Reachable) -> torch.Tensor:
    """``Q(s, a_clean)``, ``[B]``: the value of the action the unattacked policy takes."""
    with torch.no_grad():
        return q(reach.features, reach.nominal)


def worst_case_target(
    rewards: torch.Tensor, terminated: torch.Tensor, next_worst: torch.Tensor, gamma: float
) -> torch.Tensor:
    """The worst-attack Bellman target ``r + γ·(1 − terminated)·min_{a'∈A_B(s')} Q(s', a')``, ``[B]``.

    Example:
        >>> worst_case_target(torch.tensor([1.0, 1.0]), torch.tensor([False, True]), torch.tensor([2.0, 5.0]), 0.5)
        tensor([2., 1.])
    """
    return rewards.float() + float(gamma) * (~terminated.bool()).float() * next_worst


# ---------------------------------------------------------------------------------------- fitting
def fit_worst_case_q(
    critic: WorstCaseCritic,
    optimizer: torch.optim.Optimizer,
    policy: Any,
    obs: torch.Tensor,
    actions: torch.Tensor,
    rewards: torch.Tensor,
    next_obs: torch.Tensor,
    terminated: torch.Tensor,
    *,
    gamma: float,
    eps: float,
    cfg: WocaRConfig,
    num_minibatches: int,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """Regress ``critic.q`` on the worst-attack Bellman target over one batch of transitions.

    ``cfg.q_epochs`` passes; each recomputes the target ``r + γ·(1 − term)·min_{a'∈A_B(s')} Q_target(s', a')``
    with the current target network (the reachable sets come from the frozen ``policy``, once), then takes
    ``num_minibatches`` Adam steps on ``½(Q(s, a) − y)²``, each followed by a Polyak step of the target.

    Args:
        critic: the worst-attack critic (trained in place).
        optimizer: the optimiser of ``critic.q``'s parameters.
        policy: the current actor (its IBP bounds give ``A_B(s')``; not changed).
        obs: ``[B, *obs_shape]`` observations.
        actions: ``[B, ...]`` the actions taken (discrete indices, or env actions for Box spaces).
        rewards: ``[B]`` rewards (as the learner sees them, e.g. scaled).
        next_obs: ``[B, *obs_shape]`` successors (an episode's final observation at its end).
        terminated: ``bool [B]`` (no bootstrap after a terminal step; truncation bootstraps).
        gamma: discount.
        eps: this update's radius ε.
        cfg: ``q_epochs``, ``tau``, ``action_steps``, ``norm`` and ``normalized``.
        num_minibatches: gradient steps per pass.
        generator: minibatch order.

    Returns:
        Scalar tensors ``loss`` (mean over steps), ``target`` (mean target of the last pass) and ``gap`` (mean
        ``Q_target(s', a_clean) − min_{A_B(s')} Q_target(s', ·)`` ≥ 0 of the last pass).
    """
    scale = ball_scale(policy, cfg.normalized)
    with torch.no_grad():
        x = policy.features(obs.float())
    nxt = reachable_actions(policy, next_obs, eps, scale=scale)
    batch = obs.shape[0]
    mb = max(batch // int(num_minibatches), 1)
    losses: list[torch.Tensor] = []
    y = gap = rewards.new_zeros(rewards.shape)
    for epoch in range(cfg.q_epochs):
        worst = worst_value(critic.target, nxt, cfg.action_steps)
        y = worst_case_target(rewards, terminated, worst, gamma)
        if epoch == cfg.q_epochs - 1:
            gap = nominal_value(critic.target, nxt) - worst
        perm = torch.randperm(batch, generator=generator, device=obs.device)
        for start in range(0, batch - mb + 1, mb):
            idx = perm[start : start + mb]
            loss = 0.5 * (critic.q(x[idx], actions[idx]) - y[idx]).square().mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            critic.update_target(cfg.tau)
            losses.append(loss.detach())
    return {"loss": torch.stack(losses).mean(), "target": y.mean(), "gap": gap.mean()}


# ---------------------------------------------------------------------------------------- policy side
def worst_case_advantage(
    q: WorstCaseQ, policy: Any, obs: torch.Tensor, actions: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(Q_w(s, a) − b(s), Q_w(s, a))``, each ``[B]``: the worst-case advantage of the action taken, and its value.

    The baseline is the policy's value under ``Q_w``: ``Σ_a π(a|s)·Q_w(s, a)`` (discrete) or ``Q_w(s, clip(μ(s)))``
    (Box). ``actions`` are discrete indices or env actions.
    """
    with torch.no_grad():
        x = policy.features(obs.float())
        params = policy.action_params(obs.float())
        if getattr(policy, "discrete", True):
            values = q.all_actions(x)
            taken = values.gather(1, actions.long().view(-1, 1)).squeeze(1)
            return taken - (torch.softmax(params, -1) * values).sum(-1), taken
        taken = q(x, actions)
        return taken - q(x, _clip_action(policy, params)), taken


def worst_case_bonus(
    worst_adv: torch.Tensor, worst_q: torch.Tensor, advantages: torch.Tensor, kappa: float
) -> torch.Tensor:
    """``κ_w·std(A)·A_w / std(Q_w(s, a))``: the term added to PPO's advantages ``A`` (any shape, stats over all).

    The reference adds ``κ_w·z(Q_w(s, a))`` to the standardised advantage ``z(A)``; subtracting the state baseline
    ``b(s)`` (which leaves the policy gradient's expectation unchanged) keeps its scale and drops its state-only
    part, and multiplying by ``std(A)`` puts it in the units of the raw advantages (PPO standardises each minibatch).

    Example:
        >>> worst_case_bonus(torch.tensor([1.0, -1.0]), torch.tensor([3.0, 1.0]), torch.tensor([2.0, -2.0]), 0.5)
        tensor([ 1., -1.])
    """
    return float(kappa) * advantages.std() * worst_adv / (worst_q.std() + 1e-8)


def importance_weights(q: WorstCaseQ, policy: Any, obs: torch.Tensor, steps: int = 10) -> torch.Tensor:
    """The state importance ``w(s) = max_a Q_w(s, a) − min_a Q_w(s, a)`` over the action space, ``[B]`` ≥ 0.

    Discrete: exact. Box: the max and the min are searched by :func:`box_minimise` (ascent and descent, batched
    together) over the action space from the clean action, so ``w`` is a lower estimate of the range.
    """
    with torch.no_grad():
        x = policy.features(obs.float())
        if getattr(policy, "discrete", True):
            values = q.all_actions(x)
            return values.amax(-1) - values.amin(-1)
        start = _clip_action(policy, policy.action_params(obs.float()))
    b = x.shape[0]
    sign = torch.cat([x.new_ones(b), -x.new_ones(b)])
    xx = torch.cat([x, x])
    low = policy.action_low.flatten().expand(2 * b, -1)
    high = policy.action_high.flatten().expand(2 * b, -1)
    _, found = box_minimise(lambda a: sign * q(xx, a), low, high, torch.cat([start, start]), steps)
    return (-found[b:] - found[:b]).clamp_min(0.0)


def wocar_regularizer(
    cfg: WocaRConfig, critic: WorstCaseCritic, generator: torch.Generator | None = None, *, seed: int = 0
) -> Any:
    """The importance-weighted smoothness :class:`~robustrl.defenses.base.Regularizer` of WocaR-PPO.

    ``κ_s·mean_B[w(s)·max_{ŝ∈B(s)} KL(π(·|s) ‖ π(·|ŝ))]``, the inner max as sa-reg's (PGD or SGLD,
    batched), ``w`` from :func:`importance_weights` under ``critic``'s target network, divided by its minibatch
    mean (so κ_s keeps SA-PPO's scale; uniform when the weights are all 0 or ``cfg.importance`` is false). A
    zero while ε is 0.
    """
    cfg.validate()
    sa = cfg.smoothness()
    gens: dict[torch.device, torch.Generator] = {}

    def regularize(policy: Any, batch: Minibatch, progress: float) -> torch.Tensor:
        eps = cfg.eps_at(progress)
        obs = batch.obs.float()
        if eps <= 0 or cfg.kappa_s <= 0:
            return obs.new_zeros(())
        gen = generator
        if gen is None:
            gen = gens.setdefault(obs.device, torch.Generator(device=obs.device).manual_seed(seed))
        adv = maximise_divergence(divergence_fn(policy, obs), obs, eps, sa, scale=ball_scale(policy, cfg.normalized),
                                  generator=gen)
        value = divergence_fn(policy, obs, detach_clean=False)(adv)
        if cfg.importance:
            w = importance_weights(critic.target, policy, obs, cfg.action_steps)
            mean = w.mean()
            w = torch.where(mean > 1e-12, w / mean.clamp_min(1e-12), torch.ones_like(w))
            value = value * w.detach()
        return float(cfg.kappa_s) * value.mean()

    return regularize
