"""CROP per-state action certificate (LoAct) from noise samples of Q values.

Wu, Li, Huang, Vorobeychik, Zhao, Li, "CROP: Certifying Robust Policies for Reinforcement Learning
through Functional Smoothing", ICLR 2022 (per-state action certification, "LoAct").

The smoothed Q network ``Q̃(s, a) = E_δ~N(0,σ²I)[ (clip(Q(s + δ, a)) − v_min) / (v_max − v_min) ]`` takes
values in [0, 1], so ``s ↦ Φ⁻¹(Q̃(s, a))`` is ``1/σ``-Lipschitz (Salman et al., 2019). The greedy action
of the smoothed network at ``s`` therefore stays the same for every ``‖δ‖₂ < r`` with::

    r = σ/2 · [Φ⁻¹(Q̃₁ − Δ) − Φ⁻¹(Q̃₂ + Δ)]

where Q̃₁, Q̃₂ are the top-2 Monte-Carlo means of ``m`` samples and ``Δ = sqrt(ln(1/α)/(2m))`` is the
Hoeffding margin (one-sided, each bound at level α, as in the paper and its reference code).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import special


@dataclass(frozen=True)
class ActionCertificate:
    """Per-state certified radii of the smoothed Q network's greedy action.

    Array fields have the input's batch shape ``[...]`` (``()`` for one state given as ``[m, A]``).
    """

    action: np.ndarray
    """Greedy action of the smoothed Q values, int64 ``[...]``."""
    radius: np.ndarray
    """Certified ℓ2 radius, float64 ``[...]``; 0 where the certificate abstains."""
    certified: np.ndarray
    """Whether the radius is positive (the certificate does not abstain), bool ``[...]``."""
    q_smoothed: np.ndarray
    """Noise-averaged Q values rescaled to [0, 1], float64 ``[..., A]``."""
    margin: float
    """Hoeffding margin Δ on the [0, 1] scale."""
    alpha: float
    """Level of each one-sided Hoeffding bound."""
    m: int
    """Noise samples per state."""
    sigma: float
    """Std of the Gaussian noise the samples were drawn with."""


def hoeffding_margin(m: int, alpha: float) -> float:
    """``Δ = sqrt(ln(1/α)/(2m))``: a mean of m values in [0, 1] exceeds its expectation by ≥ Δ w.p. ≤ α."""
    return math.sqrt(math.log(1.0 / alpha) / (2.0 * m))


def action_certificate(
    q_samples: np.ndarray | torch.Tensor | Any,
    *,
    sigma: float,
    alpha: float = 0.05,
    v_min: float,
    v_max: float,
    joint: bool = False,
) -> ActionCertificate:
    """Certify the greedy action of a Gaussian-smoothed Q network at each state (CROP LoAct).

    Each sample is clipped to ``[v_min, v_max]`` and rescaled to [0, 1] (the smoothed function must be
    bounded for Hoeffding and the Lipschitz argument), then averaged over the ``m`` noise samples. The
    radius ``σ/2 · [Φ⁻¹(Q̃₁ − Δ) − Φ⁻¹(Q̃₂ + Δ)]`` is reported where positive; elsewhere the certificate
    abstains (radius 0, ``certified`` False), including when ``Q̃₁ − Δ ≤ 0`` or ``Q̃₂ + Δ ≥ 1``.

    Confidence: as in the paper, the lower bound on Q̃₁ and the upper bound on Q̃₂ each hold w.p. ≥ 1 − α.
    With ``joint=True`` the margin uses ``α/A`` (Bonferroni over the A one-sided bounds: one lower bound
    for the top action, one upper bound for every other action), so the radius holds w.p. ≥ 1 − α.

    Input may be NumPy or torch (any device). With torch, clipping and the mean over ``m`` run on the
    tensor's device; only the ``[..., A]`` means come to the CPU. Results are NumPy float64/int64.

    Args:
        q_samples: Q values of the noisy observations, ``[m, A]`` for one state or ``[..., m, A]``.
        sigma: std of the Gaussian observation noise the samples were drawn with, > 0.
        alpha: level of each Hoeffding bound, in (0, 0.5).
        v_min: lower bound of the Q values (known before the data; samples below are clipped).
        v_max: upper bound of the Q values, > v_min.
        joint: Bonferroni-correct over the A actions for a joint 1 − α guarantee.

    Returns:
        An :class:`ActionCertificate` with the input's batch shape.

    Raises:
        ValueError: σ ≤ 0, α outside (0, 0.5), v_max ≤ v_min, fewer than 2 actions, NaN samples, or a
            wrong shape.

    Example:
        >>> q = np.array([[0.9, 0.1]] * 1000)
        >>> c = action_certificate(q, sigma=1.0, v_min=0.0, v_max=1.0)
        >>> int(c.action), round(float(c.radius), 4)
        (0, 1.0862)

    """
    s = float(sigma)
    if not math.isfinite(s) or s <= 0:
        raise ValueError(f"sigma must be a finite number > 0, got {sigma!r}")
    a = float(alpha)
    if not 0 < a < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha!r}")
    lo, hi = float(v_min), float(v_max)
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        raise ValueError(f"need finite v_min < v_max, got v_min={v_min!r}, v_max={v_max!r}")

    if isinstance(q_samples, torch.Tensor):
        x = q_samples.detach()
        if x.ndim < 2:
            raise ValueError(f"q_samples must be [m, A] or [..., m, A], got shape {tuple(x.shape)}")
        if torch.isnan(x).any():
            raise ValueError("q_samples contains NaN")
        m, num_actions = int(x.shape[-2]), int(x.shape[-1])
        mean = ((x.double().clamp(lo, hi) - lo) / (hi - lo)).mean(dim=-2).cpu().numpy()
    else:
        arr = np.asarray(q_samples, dtype=np.float64)
        if arr.ndim < 2:
            raise ValueError(f"q_samples must be [m, A] or [..., m, A], got shape {tuple(arr.shape)}")
        if np.isnan(arr).any():
            raise ValueError("q_samples contains NaN")
        m, num_actions = int(arr.shape[-2]), int(arr.shape[-1])
        mean = ((np.clip(arr, lo, hi) - lo) / (hi - lo)).mean(axis=-2)
    if m < 1:
        raise ValueError("q_samples has no noise samples (m = 0)")
    if num_actions < 2:
        raise ValueError(f"need at least 2 actions to certify the greedy one, got A={num_actions}")

    delta = hoeffding_margin(m, a / num_actions if joint else a)
    order = np.argsort(-mean, axis=-1, kind="stable")
    action = order[..., 0].astype(np.int64)
    top1 = np.take_along_axis(mean, order[..., :1], axis=-1)[..., 0]
    top2 = np.take_along_axis(mean, order[..., 1:2], axis=-1)[..., 0]
    with np.errstate(invalid="ignore"):
        z1 = special.ndtri(np.clip(top1 - delta, 0, 1))
        z2 = special.ndtri(np.clip(top2 + delta, 0, 1))
        raw = s / 2 * (z1 - z2)
    raw = np.nan_to_num(raw, nan=-np.inf)  # (−inf) − (−inf) or inf − inf: nothing certified
    certified = raw > 0
    radius = np.where(certified, raw, 0.0).astype(np.float64)
    return ActionCertificate(
        action=np.asarray(action),
        radius=np.asarray(radius),
        certified=np.asarray(certified),
        q_smoothed=np.asarray(mean, dtype=np.float64),
        margin=delta,
        alpha=a,
        m=m,
        sigma=s,
    )
