"""``certify(cfg)``: sample smoothed episodes, bound the attacked return, keep the evidence.

Policy Smoothing (Kumar, Levine & Feizi, ICLR 2022) end to end: n clean episodes of the smoothed policy on
the batched rollout engine → :func:`~robustrl.certify.smoothing.expected_return_bound` (and optionally
:func:`~robustrl.certify.smoothing.percentile_bound`) → a :class:`~robustrl.results.Certificate` that
saves to JSON atomically and loads back. :func:`certify_policy` is the keyword form.

The :class:`~robustrl.results.Certificate` class lives in :mod:`robustrl.results`; it is re-exported here.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from robustrl.certify.config import (
    CertifyConfig,
    budget_texts,
    check_thresholds_fit,
    integer_grid_size,
    plan_certify,
)
from robustrl.certify.sampler import check_same_device, default_num_envs, sample_smoothed_returns
from robustrl.certify.smoothing import (
    ArrayLike,
    Method,
    expected_return_bound,
    percentile_bound,
    resolve_budgets,
)
from robustrl.common.config import config_to_dict
from robustrl.common.provenance import provenance
from robustrl.common.seeding import derive_seed
from robustrl.envs.base import VecEnv
from robustrl.policies.base import Policy
from robustrl.results import Certificate, load_result
from robustrl.rollout.checks import check_policy_fits_env

__all__ = [
    "BOOTSTRAP_REPS",
    "CERTIFICATE_KIND",
    "CERTIFICATE_VERSION",
    "Certificate",
    "CertifyConfig",
    "certify",
    "certify_policy",
    "load_certificate",
]

logger = logging.getLogger(__name__)

CERTIFICATE_KIND = Certificate.kind
"""The ``"kind"`` field of a saved certificate (the report recognises files by it)."""
CERTIFICATE_VERSION = Certificate.schema_version
"""Schema version of the saved JSON."""
BOOTSTRAP_REPS = 2000
"""Bootstrap replicates of the clean-return interval (descriptive; the certificate does not use it)."""


def load_certificate(path: str | os.PathLike[str]) -> Certificate:
    """Read a certificate written by :meth:`Certificate.save` (any schema version this robustrl reads).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not JSON, not a certificate, or a missing or malformed field (the message names it).

    """
    result = load_result(path, kinds=("certificate",))
    assert isinstance(result, Certificate)
    return result


def certify(cfg: CertifyConfig, *, policy: Policy | None = None, env: VecEnv | None = None) -> Certificate:
    """Certify a policy's expected return under every ℓ2 observation attack of total budget B.

    Runs ``cfg.episodes`` clean episodes of the smoothed policy ``π(obs + N(0, σ²I))`` on a batched env
    (:func:`~robustrl.certify.sampler.sample_smoothed_returns`) and applies the Policy Smoothing bound
    (:func:`~robustrl.certify.smoothing.expected_return_bound`). The certificate is about the *smoothed*
    policy: deploy it with :class:`~robustrl.certify.sampler.SmoothedPolicy` at the same σ.

    Args:
        cfg: the certification (see :class:`~robustrl.certify.config.CertifyConfig`); with ``cfg.out``
            the certificate is also written there (atomically; a bad path fails before sampling).
        policy: an already loaded policy instead of loading ``cfg.policy`` (which then only names it); it
            must already be on ``cfg.device``.
        env: an already made batched env instead of making ``cfg.env`` (its ``env_id`` names it).

    Returns:
        A :class:`~robustrl.results.Certificate` whose ``config`` is the resolved config (the floor,
        horizon, env copies and device filled in); it loads back with ``config_from_dict``.

    Raises:
        ValueError: no floor (neither given nor known for the env), bad σ/budgets/α/seed/device, too few
            episodes, a request too large for memory, a policy that does not fit the env, policy and env on
            different devices, or a bad output path (every option is checked by
            :func:`~robustrl.certify.config.plan_certify` before the policy is loaded).

    """
    from robustrl.policies import load_policy, policy_device

    s, budgets, epsilon, thresholds, device = plan_certify(cfg)
    if policy is None:
        pol: Policy = load_policy(
            cfg.policy, env_id=cfg.env, trust_code=cfg.trust_code, vec_normalize=cfg.vec_normalize
        )
        if device is not None and callable(getattr(pol, "to", None)):
            pol = pol.to(device)  # type: ignore[attr-defined]  # our own copy
    else:
        pol = policy
    own_env = env is None
    if env is None:
        from robustrl.envs import make_env

        dev = device if device is not None else policy_device(pol)
        n_envs = cfg.num_envs or default_num_envs(cfg.episodes, dev)
        env = make_env(cfg.env, n_envs, device=dev, seed=cfg.seed, **dict(cfg.env_kwargs))
    try:
        check_policy_fits_env(pol, cfg.policy or type(pol).__name__, env)
        check_same_device(pol, env.device)
        v0 = cfg.floor if cfg.floor is not None else env.return_floor
        if v0 is None:
            raise ValueError(
                f"floor is required: {env.env_id} does not declare a return floor; pass floor= "
                "(the least return the task allows, known before any data)"
            )
        if cfg.method == "cp" and thresholds is None and cfg.max_return is not None:
            check_thresholds_fit(integer_grid_size(v0, cfg.max_return), f"--max-return {cfg.max_return:g}")
        horizon = cfg.horizon if cfg.horizon is not None or not cfg.per_step else env.max_episode_steps
        t0 = time.perf_counter()
        sampled = sample_smoothed_returns(
            pol, env, cfg.episodes, sigma=s, seed=cfg.seed, deterministic=cfg.deterministic, progress=cfg.progress
        )
        elapsed = time.perf_counter() - t0
    finally:
        if own_env:
            env.close()
    returns = sampled.returns.numpy().astype(np.float64)
    lengths = sampled.lengths.numpy().astype(np.int64)
    logger.info("cert: %d smoothed episodes in %.2f s (%.0f episodes/s)", cfg.episodes, elapsed, cfg.episodes / elapsed)

    bound = expected_return_bound(
        returns, sigma=s, budgets=budgets, floor=v0, alpha=cfg.alpha, method=cfg.method, thresholds=thresholds,
        max_return=cfg.max_return, epsilon=epsilon, horizon=horizon,
    )  # fmt: skip
    qb = None
    if cfg.quantile is not None:
        qb = percentile_bound(returns, q=cfg.quantile, sigma=s, budgets=bound.budgets, alpha=cfg.alpha, floor=v0)
    from robustrl.stats import bootstrap_ci

    iv = bootstrap_ci(returns, "mean", reps=BOOTSTRAP_REPS, confidence=1.0 - cfg.alpha, seed=derive_seed(cfg.seed, 7))
    policy_name = cfg.policy or type(pol).__name__
    resolved = dataclasses.replace(
        cfg, policy=policy_name, env=env.env_id, sigma=s, floor=float(v0), horizon=horizon, num_envs=env.num_envs,
        device=str(env.device), trust_code=False,  # a saved file never grants trust: a rerun asks again
    )  # fmt: skip
    cert = Certificate(
        env_id=env.env_id,
        sigma=s,
        budgets=bound.budgets,
        bounds=bound.bounds,
        confidence=1.0 - bound.alpha,
        method=cfg.method,
        n=bound.n,
        floor=bound.floor,
        clean_return=bound.empirical_mean,
        clean_return_ci=(float(iv.low), float(iv.high)),
        returns=returns,
        lengths=lengths,
        quantile=cfg.quantile,
        quantile_bounds=None if qb is None else qb.bounds,
        policy=policy_name,
        seed=cfg.seed,
        config=config_to_dict(resolved),
        provenance={**provenance(), "sampling_seconds": elapsed},
    )
    if cfg.out is not None:
        cert.save(cfg.out)
    return cert


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

    The keyword form of :func:`certify`: it builds the :class:`~robustrl.certify.config.CertifyConfig`
    and calls it.

    Args:
        policy: a policy object, or a path loaded with ``robustrl.load_policy``.
        env_id: a Gymnasium id (made with ``robustrl.make_env``) or an already made batched env.
        sigma: smoothing noise std σ > 0 (train with the same observation noise for useful bounds).
        budgets: total ℓ2 budgets B ≥ 0 (or ``epsilon`` per step with ``horizon``); sorted, repeats dropped.
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
        A :class:`~robustrl.results.Certificate`.

    Raises:
        ValueError: no floor (neither given nor known for the env), bad σ/budgets/α, too few episodes, or
            policy and env on different devices.

    """
    if budgets is not None and epsilon is not None:
        resolve_budgets(budgets, epsilon, horizon)  # raises: give one of them
    env = env_id if isinstance(env_id, VecEnv) else None
    loaded = None if isinstance(policy, str | os.PathLike) else policy
    cfg = CertifyConfig(
        policy=str(policy) if loaded is None else type(policy).__name__,
        env=env.env_id if env is not None else str(env_id),
        sigma=sigma,
        budgets=() if budgets is None and epsilon is None else budget_texts(epsilon if budgets is None else budgets),
        episodes=episodes,
        alpha=alpha,
        method=method,
        floor=floor,
        max_return=max_return,
        thresholds=() if thresholds is None else tuple(float(v) for v in thresholds),
        per_step=budgets is None and epsilon is not None,
        horizon=horizon,
        quantile=quantile,
        seed=seed,
        num_envs=num_envs,
        device=None if device is None else str(device),
        deterministic=deterministic,
        env_kwargs=dict(env_kwargs or {}),
        progress=progress,
    )
    return certify(cfg, policy=loaded, env=env)
