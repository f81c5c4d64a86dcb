"""SA-PPO / SA-DQN: the state-adversarial regulariser κ·max_{ŝ∈B_ε(s)} D(π(·|s), π(·|ŝ)).

Zhang et al. (NeurIPS 2020, "Robust Deep Reinforcement Learning against Adversarial Perturbations on State
Observations") bound the loss of a policy under any bounded observation attack by how far its action
distribution moves inside the ε-ball, and add that distance to the training loss:

- **PPO** (SA-PPO): ``D = KL(π(·|s) ‖ π(·|ŝ))``, categorical for discrete actions, and for a diagonal
  Gaussian with state-independent σ ``½·Σ_j (μ_j(s) − μ_j(ŝ))² / σ_j²`` (σ held fixed, as the reference code
  does). The same KL serves SAC's state-dependent Gaussian.
- **DQN** (SA-DQN): the hinge on the greedy-action margin,
  ``max(max_{a≠a*} Q(ŝ, a) − Q(ŝ, a*), −c)`` with ``a* = argmax_a Q(s, a)``: it is ≤ −c (and gives no
  gradient) once the greedy action leads every other by c everywhere in the ball.

The inner maximisation is solved on the whole minibatch at once (no per-sample Python): projected sign
(ℓ∞) or normalised (ℓ2) gradient ascent on the perturbation, either PGD from a uniform random start or SGLD
(SA-PPO's solver: start one step from ``s`` in a random sign direction, noisy gradients with the noise
shrinking every step). Each sample keeps the best point evaluated. The ball is in the policy's normalised
units where it normalises observations (``sqrt(var + eps)`` of its ``obs_norm``), raw units otherwise; ε is
ramped linearly from 0 over the first part of training (:meth:`SARegConfig.eps_at`).

Usage: ``robustrl train --defense sa-reg --defense-set eps=0.05 --defense-set kappa=0.3``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from robustrl.common.limits import check_count
from robustrl.defenses.base import Minibatch, TrainingHooks

__all__ = ["SARegConfig", "divergence_fn", "maximise_divergence", "sa_reg_hooks", "sa_regularizer"]

Divergence = Callable[[torch.Tensor], torch.Tensor]
"""``obs' [B, *obs_shape] -> [B]``: how far the policy's output at ``obs'`` is from its output at the clean obs."""


@dataclass(frozen=True)
class SARegConfig:
    """SA-PPO/SA-DQN regulariser: κ·max over the ε-ball of the policy's divergence from its clean output."""

    eps: float = 0.05
    """Radius ε of the ball (the policy's normalised units where it normalises, raw units otherwise)."""
    kappa: float = 0.3
    """Weight κ of the regulariser in the loss."""
    eps_warmup: float = 0.0
    """Fraction of training before the regulariser starts (ε = 0 until then)."""
    eps_ramp: float = 0.5
    """Fraction of training (after the warm-up) over which ε grows linearly from 0 to eps (0: at once)."""
    solver: Literal["pgd", "sgld"] = "pgd"
    """Inner maximiser: PGD from a random start, or SA-PPO's SGLD (noisy sign steps)."""
    steps: int = 5
    """Gradient steps of the inner maximiser."""
    step_scale: float = 2.5
    """Step size as a multiple of ε / steps (2.5 as Madry et al.'s PGD; SA-PPO's SGLD uses 1)."""
    norm: Literal["linf", "l2"] = "linf"
    """Which ℓp ball ŝ stays in."""
    sgld_temperature: float = 1e-5
    """SGLD's inverse β: gradient noise std sqrt(2·step·T) / (i + 1) at step i (SA-PPO uses 1e-5)."""
    dqn_margin: float = 1.0
    """SA-DQN's hinge c: the margin beyond which the greedy action is not pushed further."""
    normalized: bool = True
    """Measure ε in the policy's normalised units where it has an observation normaliser."""

    def validate(self) -> None:
        """Raise a ``ValueError`` naming the first bad field."""
        for fld in ("eps", "kappa", "step_scale", "dqn_margin"):
            v = getattr(self, fld)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
                raise ValueError(f"SARegConfig.{fld} must be a finite number > 0, got {v!r}")
        for fld in ("eps_warmup", "eps_ramp"):
            v = getattr(self, fld)
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0.0 <= v <= 1.0:
                raise ValueError(f"SARegConfig.{fld} must lie in [0, 1], got {v!r}")
        if self.eps_warmup + self.eps_ramp > 1.0:
            raise ValueError(f"SARegConfig.eps_warmup + eps_ramp must be ≤ 1, got {self.eps_warmup + self.eps_ramp}")
        if self.solver not in ("pgd", "sgld"):
            raise ValueError(f"SARegConfig.solver must be 'pgd' or 'sgld', got {self.solver!r}")
        if self.norm not in ("linf", "l2"):
            raise ValueError(f"SARegConfig.norm must be 'linf' or 'l2', got {self.norm!r}")
        check_count(self.steps, "SARegConfig.steps")
        t = self.sgld_temperature
        if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t) or t < 0:
            raise ValueError(f"SARegConfig.sgld_temperature must be a finite number ≥ 0, got {t!r}")

    def eps_at(self, progress: float) -> float:
        """ε after a fraction ``progress`` of training: 0 during the warm-up, then a linear ramp to ``eps``.

        Example:
            >>> cfg = SARegConfig(eps=0.1, eps_warmup=0.2, eps_ramp=0.4)
            >>> cfg.eps_at(0.1), round(cfg.eps_at(0.4), 6), cfg.eps_at(0.9)
            (0.0, 0.05, 0.1)
        """
        p = float(progress) - float(self.eps_warmup)
        if p < 0:
            return 0.0
        if self.eps_ramp <= 0:
            return float(self.eps)
        return float(self.eps) * min(1.0, p / float(self.eps_ramp))


def _rows(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return x.view(-1, *([1] * (like.dim() - 1)))


def _unit_step(grad: torch.Tensor, norm: str) -> torch.Tensor:
    if norm == "linf":
        return grad.sign()
    n = _rows(grad.flatten(1).norm(dim=1), grad)
    return torch.where(n > 0, grad / n.clamp_min(torch.finfo(grad.dtype).tiny), torch.zeros_like(grad))


def _project(u: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    if norm == "linf":
        return u.clamp(-eps, eps)
    n = _rows(u.flatten(1).norm(dim=1), u)
    return u * torch.where(n > eps, eps / n.clamp_min(torch.finfo(u.dtype).tiny), torch.ones_like(n))


def _random_start(like: torch.Tensor, eps: float, norm: str, generator: torch.Generator | None) -> torch.Tensor:
    if norm == "linf":
        return (2 * torch.rand(like.shape, generator=generator, dtype=like.dtype, device=like.device) - 1) * eps
    z = torch.randn(like.shape, generator=generator, dtype=like.dtype, device=like.device)
    direction = z / _rows(z.flatten(1).norm(dim=1).clamp_min(torch.finfo(like.dtype).tiny), z)
    r = torch.rand((like.shape[0],), generator=generator, dtype=like.dtype, device=like.device)
    return direction * _rows(eps * r.pow(1.0 / max(like[0].numel(), 1)), like)


def maximise_divergence(
    divergence: Divergence,
    obs: torch.Tensor,
    eps: float,
    cfg: SARegConfig,
    *,
    scale: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The point ``ŝ`` of each sample's ball that the solver found with the largest divergence.

    Gradients are taken with respect to the perturbation only; the policy's parameters get none.

    Args:
        divergence: ``obs' [B, ...] -> [B]`` to maximise (e.g. :func:`divergence_fn`).
        obs: ``[B, *obs_shape]`` clean observations (float).
        eps: radius of the ball, in units of ``scale``.
        cfg: solver settings (``solver``, ``steps``, ``step_scale``, ``norm``, ``sgld_temperature``).
        scale: ``[*obs_shape]`` size of one unit in raw observation units (None: raw units).
        generator: source of the random start and of SGLD's noise.

    Returns:
        ``ŝ [B, *obs_shape]`` (detached) with ``‖(ŝ − s) / scale‖_p ≤ eps``.
    """
    obs = obs.detach().float()
    step = float(cfg.step_scale) * eps / cfg.steps

    def moved(u: torch.Tensor) -> torch.Tensor:
        return obs + (u if scale is None else u * scale)

    if cfg.solver == "pgd":
        u = _random_start(obs, eps, cfg.norm, generator)
    else:
        noise = torch.randn(obs.shape, generator=generator, dtype=obs.dtype, device=obs.device)
        u = _project(step * _unit_step(noise, cfg.norm), eps, cfg.norm)
    best_u = u
    best = torch.full((obs.shape[0],), float("-inf"), dtype=obs.dtype, device=obs.device)
    for i in range(cfg.steps + 1):
        with torch.enable_grad():
            u_var = u.detach().requires_grad_(True)
            value = divergence(moved(u_var))
            grad = torch.autograd.grad(value.sum(), u_var, allow_unused=True)[0] if value.requires_grad else None
        better = value.detach() > best
        best = torch.where(better, value.detach(), best)
        best_u = torch.where(_rows(better, obs), u.detach(), best_u)
        if i == cfg.steps:
            break
        if grad is None:
            raise ValueError("sa-reg needs a policy whose output is differentiable in the observation")
        if cfg.solver == "sgld" and cfg.sgld_temperature > 0:
            std = math.sqrt(2 * step * float(cfg.sgld_temperature)) / (i + 1)
            grad = grad + std * torch.randn(grad.shape, generator=generator, dtype=grad.dtype, device=grad.device)
        u = _project(u.detach() + step * _unit_step(grad, cfg.norm), eps, cfg.norm)
    return moved(best_u).detach()


def _categorical_kl(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    logp, logq = torch.log_softmax(p_logits, -1), torch.log_softmax(q_logits, -1)
    return (logp.exp() * (logp - logq)).sum(-1)


def _gaussian_kl(
    mu_p: torch.Tensor, logstd_p: torch.Tensor, mu_q: torch.Tensor, logstd_q: torch.Tensor
) -> torch.Tensor:
    var_p, var_q = (2 * logstd_p).exp(), (2 * logstd_q).exp()
    return (logstd_q - logstd_p + (var_p + (mu_p - mu_q).square()) / (2 * var_q) - 0.5).sum(-1)


def _greedy_margin(q_clean: torch.Tensor, q_adv: torch.Tensor) -> torch.Tensor:
    greedy = q_clean.argmax(-1, keepdim=True)
    others = q_adv.scatter(-1, greedy, float("-inf"))
    return others.amax(-1) - q_adv.gather(-1, greedy).squeeze(-1)


def divergence_fn(policy: Any, obs: torch.Tensor, *, detach_clean: bool = True) -> Divergence:
    """``obs' -> [B]`` divergence of ``policy`` at ``obs'`` from its output at the clean ``obs [B, ...]``.

    Actor-critic policies (``action_params``): categorical KL, or the fixed-σ Gaussian KL for Box actions;
    SAC-style actors (``mean_log_std``): the Gaussian KL; Q-network policies (``q_values``): SA-DQN's
    greedy-action margin ``max_{a≠a*} Q(ŝ, a) − Q(ŝ, a*)`` (the hinge is applied by the regulariser).

    Raises:
        ValueError: the policy exposes none of these.
    """
    ctx = torch.no_grad() if detach_clean else torch.enable_grad()
    if hasattr(policy, "action_params"):
        with ctx:
            clean = policy.action_params(obs)
        if getattr(policy, "discrete", True):
            return lambda x: _categorical_kl(clean, policy.action_params(x))
        log_std = policy.log_std.detach()
        return lambda x: 0.5 * ((policy.action_params(x) - clean) * torch.exp(-log_std)).square().sum(-1)
    if hasattr(policy, "mean_log_std"):
        with ctx:
            mu, ls = policy.mean_log_std(obs)
        return lambda x: _gaussian_kl(mu, ls, *policy.mean_log_std(x))
    if hasattr(policy, "q_values"):
        with ctx:
            q = policy.q_values(obs)
        return lambda x: _greedy_margin(q, policy.q_values(x))
    raise ValueError(
        f"sa-reg does not know how to measure {type(policy).__name__}'s change: it needs action_params "
        "(PPO), mean_log_std (SAC) or q_values (DQN)"
    )


def _scale(policy: nn.Module, normalized: bool) -> torch.Tensor | None:
    norm = getattr(policy, "obs_norm", None) if normalized else None
    if norm is None or not hasattr(norm, "var"):
        return None
    return torch.sqrt(norm.var.detach().float() + float(getattr(norm, "eps", 1e-8)))


def sa_regularizer(cfg: SARegConfig, generator: torch.Generator | None = None, *, seed: int = 0) -> Any:
    """The :class:`~robustrl.defenses.base.Regularizer` of ``cfg``.

    The solver's random starts and noise come from ``generator``, or else from a private generator seeded
    with ``seed`` on the minibatch's device (never the global RNG).

    Returns ``κ·mean_B max_{ŝ} KL(π(·|s) ‖ π(·|ŝ))`` (DQN: ``κ·mean_B max(margin(ŝ), −c)``), differentiable in
    the policy's parameters through both ``π(·|s)`` and ``π(·|ŝ)``; a zero while ε is 0.
    """
    cfg.validate()
    gens: dict[torch.device, torch.Generator] = {}

    def regularize(policy: nn.Module, batch: Minibatch, progress: float) -> torch.Tensor:
        eps = cfg.eps_at(progress)
        obs = batch.obs.float()
        if eps <= 0:
            return obs.new_zeros(())
        gen = generator
        if gen is None:  # a private stream: the same run draws the same starts and noise
            gen = gens.setdefault(obs.device, torch.Generator(device=obs.device).manual_seed(seed))
        adv = maximise_divergence(
            divergence_fn(policy, obs), obs, eps, cfg, scale=_scale(policy, cfg.normalized), generator=gen
        )
        value = divergence_fn(policy, obs, detach_clean=False)(adv)
        if not hasattr(policy, "action_params") and not hasattr(policy, "mean_log_std"):
            value = value.clamp_min(-float(cfg.dqn_margin))
        return float(cfg.kappa) * value.mean()

    return regularize


def sa_reg_hooks(cfg: SARegConfig) -> TrainingHooks:
    """The hooks of ``sa-reg``: clean collection, one regulariser on every minibatch."""
    return TrainingHooks(regularizers=(sa_regularizer(cfg),))
