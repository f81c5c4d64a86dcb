"""What evaluation under threats and over dynamics grids share: the policy, threats, transforms, statistics.

Also the checks that run before any work: sizing a request against memory, the device, and whether the
policy fits the env.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from robustrl.common.limits import check_count, check_fits
from robustrl.defenses.smoothing import smoothing_transform
from robustrl.policies.base import Policy
from robustrl.rollout import ActionTransform, ObsTransform
from robustrl.stats import bootstrap_ci
from robustrl.threats.registry import THREATS, ObsThreat, Threat, make_threat

__all__ = [
    "BOOTSTRAP_REP_BYTES",
    "EPISODE_BYTES",
    "build_threat",
    "check_bootstrap_reps",
    "check_episodes",
    "default_copies",
    "mean_ci",
    "resolve_policy",
    "transforms",
]

EPISODE_BYTES = 384
"""Peak memory one episode of one run costs an evaluation: the rollout's buffers (24 bytes), the stored
return and length (16), and, dominating, their Python lists and JSON text while the result is saved."""
BOOTSTRAP_REP_BYTES = 32
"""Memory one bootstrap resample costs: its statistic and the copies the percentile interval sorts."""


def mean_ci(samples: np.ndarray, confidence: float, reps: int, seed: int) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean and its percentile-bootstrap CI (:func:`robustrl.stats.bootstrap_ci`)."""
    ci = bootstrap_ci(np.asarray(samples, dtype=np.float64), "mean", reps=reps, confidence=confidence, seed=seed)
    return float(ci.point), float(ci.low), float(ci.high)


def resolve_policy(
    policy: Policy | str | os.PathLike[str],
    env_id: str,
    device: Any,
    *,
    trust_code: bool = False,
    vec_normalize: str | os.PathLike[str] | None = None,
) -> tuple[Policy, str]:
    """``(policy, description)``: a Policy as is (its class name), or a file loaded by ``load_policy``.

    Args:
        policy: a loaded policy, or a policy file.
        env_id: the env it will act in (checked against the file's metadata).
        device: where a loaded policy lives.
        trust_code: allow a TorchScript file, which is code (``load_policy(..., trust_code=True)``).
        vec_normalize: an SB3 ``vec_normalize.pkl`` applied inside an SB3 policy file.
    """
    if isinstance(policy, str | os.PathLike):
        from robustrl.policies import load_policy

        loaded = load_policy(policy, device=device, env_id=env_id, trust_code=trust_code, vec_normalize=vec_normalize)
        return loaded, str(policy)
    if vec_normalize is not None:
        raise ValueError("vec_normalize applies to a policy file, not to a policy object already loaded")
    if not callable(getattr(policy, "act", None)):
        raise ValueError(f"policy must be a Policy (with act) or a path, got {type(policy).__name__}")
    return policy, type(policy).__name__


def build_threat(
    name: str, budget: float, opts: dict[str, Any], normalized: bool, sigma: float, eot: bool, horizon: int | None
) -> Threat:
    """:func:`make_threat` with evaluation's shared options (action threats take none of them).

    ``sigma`` only configures EOT of gradient attacks; the smoothing noise itself is composed after the
    threat by :func:`transforms`.
    """
    if THREATS[name].kind == "action":
        return make_threat(name, budget, **opts)
    return make_threat(name, budget, normalized=normalized, smoothing_sigma=sigma, eot=eot, horizon=horizon, **opts)


def transforms(threat: Threat | None, sigma: float) -> tuple[ObsTransform | None, ActionTransform | None]:
    """``(obs_transform, action_transform)`` of a rollout: the threat, then the smoothing noise σ (if σ > 0).

    An observation threat perturbs the clean observation and the noise is added after it (the Policy
    Smoothing threat model); an action threat acts on the smoothed policy's action.
    """
    smooth = sigma > 0
    if threat is None:
        return (smoothing_transform(sigma) if smooth else None), None
    if isinstance(threat, ObsThreat):
        return (smoothing_transform(sigma, attack=threat) if smooth else threat), None
    return (smoothing_transform(sigma) if smooth else None), threat


def default_copies(env_id: str, episodes: int) -> int:
    """Env copies for ``episodes`` episodes: up to 4096 for native envs, 8 through the Gymnasium adapter."""
    from robustrl.envs import NATIVE_ENVS

    return min(episodes, 4096) if env_id in NATIVE_ENVS else min(episodes, 8)


def check_episodes(episodes: int, runs: int, what: str = "--episodes", *, extra_bytes: float = 0.0) -> int:
    """``episodes`` after checking it is a count whose ``runs`` rollouts fit in memory (:data:`EPISODE_BYTES`).

    Args:
        episodes: episodes per run.
        runs: how many runs of that many episodes the result holds.
        what: the option, as the message names it.
        extra_bytes: more memory per episode per run (e.g. a dynamics grid's parameter tensors).

    Raises:
        ValueError: not a whole number ≥ 1, over :data:`robustrl.common.limits.MAX_COUNT`, or more memory
            than is available (the message names ``what`` and the limit).
    """
    n = check_count(episodes, what)
    check_fits(
        float(n) * runs * (EPISODE_BYTES + extra_bytes),
        f"{what} {n}" + (f" (× {runs} runs)" if runs > 1 else ""),
        hint=f"use fewer episodes, or fewer threats and budgets ({EPISODE_BYTES} bytes per episode and run)",
    )
    return n


def check_bootstrap_reps(reps: int, what: str = "--bootstrap-reps") -> int:
    """``reps`` after checking it is a count whose resamples fit in memory (:data:`BOOTSTRAP_REP_BYTES`).

    Raises:
        ValueError: not a whole number ≥ 1, too large, or more memory than is available (naming ``what``).
    """
    n = check_count(reps, what)
    check_fits(float(n) * BOOTSTRAP_REP_BYTES, f"{what} {n}", hint="2000 resamples are plenty for a 95% interval")
    return n





