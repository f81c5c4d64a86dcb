"""The losses of the offline learners as pure functions over tensors.

IQL (Kostrikov et al., ICLR 2022): expectile regression of ``V`` onto the target ``Q``, TD regression of ``Q``
onto ``r + γ(1 − terminated)V(s′)``, advantage-weighted regression of the actor. RIQL (Yang et al., ICLR 2024)
changes two pieces: the ``V`` target is the ``α``-quantile over a ``K``-critic ensemble instead of the minimum,
and the ``Q`` loss is a Huber loss. TD3+BC (Fujimoto & Gu, NeurIPS 2021): ``−λ·Q(s, π(s)) + (π(s) − a)²`` with
``λ = α / mean|Q|``. CQL (Kumar et al., NeurIPS 2020): the ``log Σ exp Q`` over sampled actions minus the data
action's ``Q``.

Example:
    >>> expectile_loss(torch.tensor([1.0, -1.0]), 0.7)
    tensor(0.5000)
    >>> huber_loss(torch.tensor([0.5, 3.0]), sigma=1.0)
    tensor([0.1250, 2.5000])
"""

from __future__ import annotations

import torch

__all__ = [
    "awr_weights",
    "cql_penalty",
    "ensemble_quantile",
    "expectile_loss",
    "huber_loss",
    "td3bc_actor_loss",
]


def expectile_loss(u: torch.Tensor, tau: float) -> torch.Tensor:
    """``E[|τ − 1(u < 0)|·u²]`` for residuals ``u = Q − V`` ``[B]`` (IQL's asymmetric L2)."""
    weight = torch.where(u < 0, 1.0 - tau, tau)
    return (weight * u.square()).mean()


def huber_loss(diff: torch.Tensor, sigma: float) -> torch.Tensor:
    """RIQL's elementwise Huber loss with threshold ``δ = 1/σ²``: ``½d²/δ`` for ``|d| < δ``, else ``|d| − ½δ``.

    (The parametrisation of the RIQL reference code: a larger ``σ`` is a smaller quadratic region, closer to
    ``ℓ1``.)
    """
    delta = 1.0 / (sigma * sigma)
    a = diff.abs()
    return torch.where(a < delta, 0.5 * a.square() / delta, a - 0.5 * delta)


def ensemble_quantile(q: torch.Tensor, alpha: float) -> torch.Tensor:
    """The ``α``-quantile over the ensemble axis of ``q [K, B]`` (linear interpolation), ``[B]``."""
    return torch.quantile(q, alpha, dim=0)


def awr_weights(adv: torch.Tensor, beta: float, max_weight: float = 100.0) -> torch.Tensor:
    """``min(exp(β·A), max_weight)`` (IQL's advantage-weighted regression), not differentiated."""
    return torch.exp(beta * adv.detach()).clamp(max=max_weight)


def td3bc_actor_loss(q: torch.Tensor, pi: torch.Tensor, actions: torch.Tensor, alpha: float) -> torch.Tensor:
    """``−λ·E[Q(s, π(s))] + E[Σ(π(s) − a)²/A]`` with ``λ = α / E|Q|`` (λ not differentiated)."""
    lam = alpha / q.abs().mean().detach().clamp_min(1e-6)
    return -lam * q.mean() + (pi - actions).square().mean()


def cql_penalty(q_sampled: torch.Tensor, q_data: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``Σ_k E_B[T·log Σ_j exp(Q_k(s, a_j)/T) − Q_k(s, a)]`` for ``q_sampled [K, B, M]``, ``q_data [K, B]``.

    ``q_sampled`` already holds the importance-corrected values (``Q − log μ(a_j)`` for sampled actions).
    """
    lse = temperature * torch.logsumexp(q_sampled / temperature, dim=-1)
    return (lse - q_data).mean(1).sum()
