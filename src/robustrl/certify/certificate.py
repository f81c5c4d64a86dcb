"""``certify_policy``: sample smoothed episodes, bound the attacked return, keep the evidence.

Policy Smoothing (Kumar, Levine & Feizi, ICLR 2022) end to end: n clean episodes of the smoothed policy on
the batched rollout engine → :func:`~robustrl.certify.smoothing.expected_return_bound` (and optionally
:func:`~robustrl.certify.smoothing.percentile_bound`) → a :class:`Certificate` that saves to JSON
atomically and loads back.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robustrl.certify.sampler import check_same_device, default_num_envs, sample_smoothed_returns
from robustrl.certify.smoothing import (
    ArrayLike,
    Method,
    dkw_margin,
    expected_return_bound,
    percentile_bound,
    resolve_budgets,
)
from robustrl.common.io import read_json, write_json
from robustrl.common.provenance import provenance
from robustrl.common.seeding import derive_seed
from robustrl.envs.base import VecEnv
from robustrl.policies.base import Policy

logger = logging.getLogger(__name__)

CERTIFICATE_KIND = "certificate"
"""The ``"kind"`` field of a saved certificate (the report recognises files by it)."""
CERTIFICATE_VERSION = 1
"""Format version of the saved JSON."""
BOOTSTRAP_REPS = 2000
"""Bootstrap replicates of the clean-return interval (descriptive; the certificate does not use it)."""


@dataclass(frozen=True)
class Certificate:
    """A Policy Smoothing certificate of one policy on one task, with the evidence it rests on.

    With probability ≥ ``confidence`` over the sampled episodes, for every budget ``budgets[j]`` and
    every observation adversary of total ℓ2 budget ``sqrt(Σ_t ‖δ_t‖²) ≤ budgets[j]`` (adaptive), the
    smoothed policy's expected return is ≥ ``bounds[j]``.
    """

    env_id: str
    """Task the episodes ran on."""
    sigma: float
    """Smoothing noise std σ."""
    budgets: np.ndarray
    """Total ℓ2 budgets B ``[K]``."""
    bounds: np.ndarray
    """Certified lower bounds on the expected attacked return ``[K]``."""
    confidence: float
    """``1 − alpha``."""
    method: str
    """``dkw`` or ``cp``."""
    n: int
    """Number of smoothed episodes."""
    floor: float
    """The task's least return ``v_0``."""
    clean_return: float
    """Mean return of the smoothed policy without attack."""
    clean_return_ci: tuple[float, float]
    """Percentile-bootstrap interval of ``clean_return`` at level ``confidence`` (descriptive, not certified)."""
    returns: np.ndarray
    """The sampled smoothed episode returns ``[n]`` (float64)."""
    lengths: np.ndarray
    """Their lengths ``[n]`` (int64)."""
    quantile: float | None = None
    """Quantile level of ``quantile_bounds`` (None: no percentile certificate)."""
    quantile_bounds: np.ndarray | None = None
    """Certified lower bounds on the ``quantile``-quantile of the attacked return ``[K]``."""
    config: dict[str, Any] = field(default_factory=dict)
    """The resolved settings that produced it."""
    provenance: dict[str, Any] = field(default_factory=dict)
    """Versions, commit, device, time."""

    @property
    def alpha(self) -> float:
        """Failure probability ``1 − confidence``."""
        return 1.0 - self.confidence

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``"kind": "certificate"``)."""
        return {
            "kind": CERTIFICATE_KIND,
            "version": CERTIFICATE_VERSION,
            "env_id": self.env_id,
            "sigma": self.sigma,
            "budgets": self.budgets.tolist(),
            "bounds": self.bounds.tolist(),
            "confidence": self.confidence,
            "method": self.method,
            "n": self.n,
            "floor": self.floor,
            "clean_return": self.clean_return,
            "clean_return_ci": list(self.clean_return_ci),
            "quantile": self.quantile,
            "quantile_bounds": None if self.quantile_bounds is None else self.quantile_bounds.tolist(),
            "config": self.config,
            "provenance": self.provenance,
            "returns": self.returns.tolist(),
            "lengths": self.lengths.tolist(),
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the certificate as JSON atomically (complete or absent, never half-written)."""
        return write_json(path, self.to_dict())

    def summary(self) -> str:
        """A short table: budget → certified expected return."""
        lines = [
            f"{self.env_id}: smoothed (σ={self.sigma:g}) clean return {self.clean_return:.2f} "
            f"[{self.clean_return_ci[0]:.2f}, {self.clean_return_ci[1]:.2f}], n={self.n}, "
            f"{self.method} at confidence {self.confidence:.3g}, floor {self.floor:g}",
            "   budget B   certified E[R]" + ("   certified q-quantile" if self.quantile_bounds is not None else ""),
        ]
        for j, (b, v) in enumerate(zip(self.budgets, self.bounds)):
            row = f"{b:11.4g}   {v:14.3f}"
            if self.quantile_bounds is not None:
                row += f"   {self.quantile_bounds[j]:22.3f}"
            lines.append(row)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def load_certificate(path: str | os.PathLike[str]) -> Certificate:
    """Read a certificate written by :meth:`Certificate.save`.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not JSON, not a certificate, or a field missing.

    """
    data = read_json(path, what="certificate")
    if not isinstance(data, dict) or data.get("kind") != CERTIFICATE_KIND:
        raise ValueError(f"{str(path)!r} is not a robustrl certificate (no \"kind\": \"certificate\")")
    try:
        qb = data.get("quantile_bounds")
        return Certificate(
            env_id=str(data["env_id"]),
            sigma=float(data["sigma"]),
            budgets=np.asarray(data["budgets"], dtype=np.float64),
            bounds=np.asarray([float(x) for x in data["bounds"]], dtype=np.float64),
            confidence=float(data["confidence"]),
            method=str(data["method"]),
            n=int(data["n"]),
            floor=float(data["floor"]),
            clean_return=float(data["clean_return"]),
            clean_return_ci=(float(data["clean_return_ci"][0]), float(data["clean_return_ci"][1])),
            returns=np.asarray(data["returns"], dtype=np.float64),
            lengths=np.asarray(data["lengths"], dtype=np.int64),
            quantile=None if data.get("quantile") is None else float(data["quantile"]),
            quantile_bounds=None if qb is None else np.asarray([float(x) for x in qb], dtype=np.float64),
            config=dict(data.get("config", {})),
            provenance=dict(data.get("provenance", {})),
        )
    except (KeyError, TypeError, IndexError) as err:
        raise ValueError(f"certificate {str(path)!r} is missing or has a malformed field: {err}") from err


def _validate_before_sampling(
    episodes: int,
    alpha: float,
    method: str,
    budgets: float | ArrayLike | None,
    thresholds: Sequence[float] | None,
    max_return: float | None,
    quantile: float | None,
) -> None:
    """Refuse settings that cannot give a certificate before spending time on sampling."""
    if not 0 < float(alpha) < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5) (the certificate holds with probability 1 − alpha), got {alpha!r}")
    if method not in ("dkw", "cp"):
        raise ValueError(f"method must be 'dkw' or 'cp', got {method!r}")
    if method == "cp" and thresholds is None and max_return is None:
        raise ValueError(
            "method='cp' needs a threshold grid fixed before the data: pass thresholds=[...] or max_return="
        )
    if method == "dkw" and dkw_margin(episodes, float(alpha)) >= 1:
        raise ValueError(
            f"episodes={episodes} is too few for alpha={alpha}: the DKW half-width is >= 1, nothing can be "
            "certified; use thousands of episodes"
        )
    if budgets is not None:
        resolve_budgets(budgets, None, None)
    if quantile is not None:
        q = float(quantile)
        if not 0 < q < 1:
            raise ValueError(f"quantile must be in (0, 1), got {quantile!r}")
        if (1 - q) ** episodes > float(alpha):
            raise ValueError(f"episodes={episodes} is too few to certify the {q}-quantile at alpha={alpha}")


def certify_policy(
    policy: Policy | str | os.PathLike[str],
    env_id: str | VecEnv,
    *,
    sigma: float,
    budgets: float | ArrayLike | None = None,
    episodes: int = 10_000,
    alpha: float = 0.05,
    method: Method = "dkw",
    floor: float | None = None,
    seed: int | None = 0,
    thresholds: Sequence[float] | None = None,
    max_return: float | None = None,
    epsilon: float | ArrayLike | None = None,
    horizon: int | None = None,
    quantile: float | None = None,
    num_envs: int | None = None,
    device: str | torch.device | None = None,
    deterministic: bool = True,
    progress: bool = False,
    env_kwargs: dict[str, Any] | None = None,
) -> Certificate:
    """Certify a policy's expected return under every ℓ2 observation attack of total budget B.

    Runs ``episodes`` clean episodes of the smoothed policy ``π(obs + N(0, σ²I))`` on a batched env
    (:func:`~robustrl.certify.sampler.sample_smoothed_returns`) and applies the Policy Smoothing bound
    (:func:`~robustrl.certify.smoothing.expected_return_bound`). The certificate is about the *smoothed*
    policy: deploy it with :class:`~robustrl.certify.sampler.SmoothedPolicy` at the same σ.

    Args:
        policy: a policy object, or a path loaded with ``robustrl.load_policy``.
        env_id: a Gymnasium id (made with ``robustrl.make_env``) or an already made batched env.
        sigma: smoothing noise std σ > 0 (train with the same observation noise for useful bounds).
        budgets: total ℓ2 budgets B ≥ 0 (or ``epsilon`` per step with ``horizon``).
        episodes: n, the number of smoothed episodes.
        alpha: failure probability of the certificate, in (0, 0.5).
        method: ``"dkw"`` (data-chosen thresholds) or ``"cp"`` (fixed grid: ``thresholds`` or ``max_return``).
        floor: least return of the task; default ``env.return_floor``. Required where the env has none.
        seed: seeds the env resets, the noise and the bootstrap; same seed ⇒ same certificate.
        thresholds: fixed threshold grid (see ``expected_return_bound``).
        max_return: largest return the task allows (e.g. 500 for CartPole-v1); ``cp`` grid.
        epsilon: per-step ℓ2 budget(s), ``B = ε·sqrt(H)``.
        horizon: H for ``epsilon``; default the env's ``max_episode_steps``.
        quantile: also certify this quantile of the attacked return (e.g. 0.5).
        num_envs: env copies stepped together; default 1024 on CPU, up to 2²⁰ on GPU.
        device: where the envs run; default the policy's device. A policy loaded here from a path is
            moved there; a policy object must already be on it.
        deterministic: greedy base actions.
        progress: show a progress bar.
        env_kwargs: extra keyword arguments for ``make_env``.

    Returns:
        A :class:`Certificate`.

    Raises:
        ValueError: no floor (neither given nor known for the env), bad σ/budgets/α, too few episodes, or
            policy and env on different devices.

    """
    from robustrl.policies import load_policy, policy_device

    policy_source: str
    if isinstance(policy, str | os.PathLike):
        policy_source = str(policy)
        policy = load_policy(policy)
        if device is not None and callable(getattr(policy, "to", None)):
            policy = policy.to(torch.device(device))  # type: ignore[attr-defined]  # our own copy
    else:
        policy_source = type(policy).__name__
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    s = float(sigma)
    if not math.isfinite(s) or s <= 0:
        raise ValueError(f"sigma must be a finite number > 0 (the smoothing noise std), got {sigma!r}")
    if budgets is None and epsilon is None:
        raise ValueError("budgets is required (total ℓ2 budgets B >= 0), or epsilon with horizon")
    _validate_before_sampling(episodes, alpha, method, budgets, thresholds, max_return, quantile)

    own_env = not isinstance(env_id, VecEnv)
    if own_env:
        from robustrl.envs import make_env

        dev = torch.device(device) if device is not None else policy_device(policy)  # type: ignore[arg-type]
        n_envs = num_envs or default_num_envs(episodes, dev)
        env = make_env(str(env_id), n_envs, device=dev, seed=seed, **(env_kwargs or {}))
    else:
        env = env_id  # type: ignore[assignment]
    try:
        check_same_device(policy, env.device)  # type: ignore[arg-type]
        v0 = floor if floor is not None else env.return_floor
        if v0 is None:
            raise ValueError(
                f"floor is required: {env.env_id} does not declare a return floor; pass floor= "
                "(the least return the task allows, known before any data)"
            )
        if epsilon is not None and horizon is None:
            horizon = env.max_episode_steps
        t0 = time.perf_counter()
        result = sample_smoothed_returns(
            policy,  # type: ignore[arg-type]
            env,
            episodes,
            sigma=s,
            seed=seed,
            deterministic=deterministic,
            progress=progress,
        )
        elapsed = time.perf_counter() - t0
    finally:
        if own_env:
            env.close()
    returns = result.returns.numpy().astype(np.float64)
    lengths = result.lengths.numpy().astype(np.int64)
    logger.info("cert: %d smoothed episodes in %.2f s (%.0f episodes/s)", episodes, elapsed, episodes / elapsed)

    bound = expected_return_bound(
        returns,
        sigma=s,
        budgets=budgets,
        floor=v0,
        alpha=alpha,
        method=method,
        thresholds=thresholds,
        max_return=max_return,
        epsilon=epsilon,
        horizon=horizon,
    )
    qb = None
    if quantile is not None:
        qb = percentile_bound(returns, q=quantile, sigma=s, budgets=bound.budgets, alpha=alpha, floor=v0).bounds
    from robustrl.stats import bootstrap_ci

    iv = bootstrap_ci(returns, "mean", reps=BOOTSTRAP_REPS, confidence=1.0 - alpha, seed=derive_seed(seed, 7))
    ci = (iv.low, iv.high)
    config = {
        "policy": policy_source,
        "env_id": env.env_id,
        "sigma": s,
        "budgets": bound.budgets.tolist(),
        "epsilon": None if epsilon is None else np.atleast_1d(np.asarray(epsilon, dtype=float)).tolist(),
        "horizon": horizon,
        "episodes": episodes,
        "alpha": bound.alpha,
        "method": method,
        "floor": v0,
        "seed": seed,
        "thresholds": None if thresholds is None else [float(v) for v in thresholds],
        "max_return": max_return,
        "quantile": quantile,
        "num_envs": env.num_envs,
        "device": str(env.device),
        "deterministic": deterministic,
        "sampling_seconds": elapsed,
    }
    return Certificate(
        env_id=env.env_id,
        sigma=s,
        budgets=bound.budgets,
        bounds=bound.bounds,
        confidence=1.0 - bound.alpha,
        method=method,
        n=bound.n,
        floor=bound.floor,
        clean_return=bound.empirical_mean,
        clean_return_ci=ci,
        returns=returns,
        lengths=lengths,
        quantile=quantile,
        quantile_bounds=qb,
        config=config,
        provenance=provenance(),
    )
