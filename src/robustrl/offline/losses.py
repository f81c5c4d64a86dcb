"""The losses of the offline learners as pure functions over tensors.

IQL (Kostrikov et al., ICLR 2022): expectile regression of ``V`` onto the target ``Q``, TD regression of ``Q``
onto ``r + γ(1 − terminated)V(s′)``, advantage-weighted regression of the actor. RIQL (Yang et al., ICLR 2024)
changes two pieces: the ``V`` target is the ``α``-quantile over a ``K``-critic ensemble instead of the minimum,
and the ``Q`` loss is a Huber loss. TD3+BC (Fujimoto & Gu, NeurIPS 2021): ``−λ·Q(s, π(s)) + (π(s) − a)²`` with
``λ = α / mean|Q|``. CQL (Kumar et al., NeurIPS 2020): the ``log Σ exp Q`` over sampled actions minus the data
action's ``Q``. RO2O (Wen et al., *Towards Robust Offline-to-Online Reinforcement Learning via Uncertainty and
Smoothness*, JAIR 2024), for the online phase: the ``β·std`` penalty over the ensemble on the TD target, and
the smoothness of ``Q`` and of the policy between a state and perturbed states in an ``ε``-ball.

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
    "ball_noise",
    "cql_penalty",
    "ensemble_quantile",
    "expectile_loss",
    "huber_loss",
    "policy_smoothness",
    "q_smoothness",
    "td3bc_actor_loss",
    "uncertainty_penalty",
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


def uncertainty_penalty(q: torch.Tensor, beta: float) -> torch.Tensor:
    """RO2O's uncertainty penalty ``β·std_k Q_k`` over the ensemble axis of ``q [K, B]`` (sample std), ``[B]``.

    Subtracted from a TD target, it lowers the value of state-actions the ``K ≥ 2`` critics disagree on.

    Example:
        >>> uncertainty_penalty(torch.tensor([[1.0, 0.0], [3.0, 0.0]]), beta=2.0)
        tensor([2.8284, 0.0000])
    """
    if q.shape[0] < 2:
        raise ValueError(f"the uncertainty penalty needs an ensemble of K ≥ 2 critics, got K = {q.shape[0]}")
    return beta * q.std(dim=0, correction=1)


def ball_noise(
    samples: int, batch: int, dim: int, eps: float, generator: torch.Generator, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """``samples`` offsets ``u ~ U[−ε, ε]^dim`` per state, ``[n, B, dim]``: the perturbed states ``ŝ = s + u``.

    RORL/RO2O look for the worst state of the ``ε``-ball among ``n`` uniform draws (the ``max`` in
    :func:`q_smoothness` and :func:`policy_smoothness`).
    """
    u = torch.rand((samples, batch, dim), generator=generator, device=device)
    return (2.0 * u - 1.0) * eps


def q_smoothness(q_clean: torch.Tensor, q_perturbed: torch.Tensor) -> torch.Tensor:
    """``E_B[max_j mean_k (Q_k(ŝ_j, a) − Q_k(s, a))²]`` for ``q_clean [K, B]`` and ``q_perturbed [K, n, B]``.

    The worst of the ``n`` perturbed states per sample (RORL/RO2O's value smoothness); ``Q(s, a)`` is not
    differentiated, so the term pulls the perturbed values towards the clean one. Zero for a critic that
    ignores the state.
    """
    gap = (q_perturbed - q_clean.detach().unsqueeze(1)).square().mean(0)  # [n, B]
    return gap.max(0).values.mean()


def policy_smoothness(a_clean: torch.Tensor, a_perturbed: torch.Tensor) -> torch.Tensor:
    """``E_B[max_j ‖π(ŝ_j) − π(s)‖²]`` for deterministic actions ``a_clean [B, A]``, ``a_perturbed [n, B, A]``.

    RO2O's policy smoothness for a deterministic actor (the squared distance replaces the KL of a Gaussian
    one); ``π(s)`` is not differentiated.
    """
    gap = (a_perturbed - a_clean.detach().unsqueeze(0)).square().sum(-1)  # [n, B]
    return gap.max(0).values.mean()
