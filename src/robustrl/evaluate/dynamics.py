"""Evaluation under static dynamics shifts: a grid of 1–3 physical parameters, one setting per episode.

RRLS-style (Zouitine et al. 2024) static shifts: :func:`evaluate_dynamics` covers the grid with one env
whose copies carry per-copy parameter tensors, so grid points × episodes run batched. It returns a
:class:`~robustrl.results.DynamicsResult` (``"kind": "dynamics"``; schema in ``docs/evaluate.md``) holding
the resolved :class:`~robustrl.evaluate.config.DynamicsConfig`. It takes either that config or the keyword
arguments of the older API.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any, overload

import numpy as np
import torch

from robustrl.common.config import config_to_dict
from robustrl.common.provenance import provenance
from robustrl.common.seeding import derive_seed
from robustrl.evaluate.common import build_threat, mean_ci, resolve_policy, transforms
from robustrl.evaluate.config import DynamicsConfig, format_threat, plan_dynamics
from robustrl.policies.base import Policy
from robustrl.results import DynamicsResult, GridAxis
from robustrl.rollout import rollout
from robustrl.rollout.checks import check_policy_fits_env
from robustrl.threats.dynamics import ParamAxis, grid_param_tensors

__all__ = ["DynamicsConfig", "DynamicsResult", "evaluate_dynamics"]

GridArg = Sequence[ParamAxis | str] | Mapping[str, Sequence[float]]
"""A grid: :class:`~robustrl.threats.ParamAxis` axes, ``"NAME=LOW:HIGH:COUNT"`` strings or ``name -> values``."""


def _evaluate_dynamics(cfg: DynamicsConfig, policy: Policy | None) -> DynamicsResult:
    """The entry point behind both forms of :func:`evaluate_dynamics`."""
    axes, shape, threat_entry, sigma = plan_dynamics(cfg)  # every option checked, the grid sized
    points = int(np.prod(shape))
    pol, pol_name = resolve_policy(
        cfg.policy if policy is None else policy, cfg.env, cfg.device, trust_code=cfg.trust_code,
        vec_normalize=cfg.vec_normalize if policy is None else None,
    )
    if policy is not None and cfg.policy:
        pol_name = cfg.policy
    from robustrl.envs import NATIVE_ENVS, make_env

    cap = cfg.max_copies or (16384 if cfg.env in NATIVE_ENVS else 8)
    threat = None
    if threat_entry is not None:
        name, opts = threat_entry
        threat = build_threat(name, cfg.budget, opts, cfg.normalized, sigma, cfg.eot, None)
    obs_t, act_t = transforms(threat, sigma)
    # slot s = point · episodes + e is one copy running one episode (grid points in C order)
    all_params = grid_param_tensors(axes, cfg.episodes, device=cfg.device)
    total = points * cfg.episodes
    flat_r = np.zeros(total)
    flat_l = np.zeros(total, dtype=np.int64)
    for ci, start in enumerate(range(0, total, cap)):
        stop = min(start + cap, total)
        params = {k: v[start:stop] for k, v in all_params.items()}
        env = make_env(cfg.env, stop - start, device=cfg.device, seed=cfg.seed, params=params, **dict(cfg.env_kwargs))
        try:
            if ci == 0:
                check_policy_fits_env(pol, pol_name, env)
            res = rollout(
                pol, env, stop - start, seed=derive_seed(cfg.seed, ci), obs_transform=obs_t, action_transform=act_t,
                deterministic=cfg.deterministic, progress=cfg.progress,
            )  # fmt: skip
        finally:
            env.close()
        flat_r[start:stop] = res.returns.numpy()
        flat_l[start:stop] = res.lengths.numpy()
    returns = flat_r.reshape(points, cfg.episodes)
    lengths = flat_l.reshape(points, cfg.episodes)
    stats = np.array([mean_ci(returns[i], cfg.confidence, cfg.bootstrap_reps, cfg.seed) for i in range(points)])
    threat_text = None if threat_entry is None else format_threat(*threat_entry)
    resolved = dataclasses.replace(
        cfg, policy=pol_name, threat=threat_text, max_copies=cap, smoothing_sigma=sigma, trust_code=False
    )  # a saved file never grants trust: a rerun of a TorchScript policy asks again
    result = DynamicsResult(
        env_id=cfg.env,
        policy=pol_name,
        params=tuple(GridAxis(a.name, tuple(a.values)) for a in axes),
        episodes=cfg.episodes,
        seed=cfg.seed,
        returns=returns.reshape(*shape, cfg.episodes),
        lengths=lengths.reshape(*shape, cfg.episodes),
        mean=stats[:, 0].reshape(shape),
        ci_low=stats[:, 1].reshape(shape),
        ci_high=stats[:, 2].reshape(shape),
        threat=threat_text,
        budget=float(cfg.budget),
        smoothing_sigma=sigma,
        confidence=cfg.confidence,
        config=config_to_dict(resolved),
        provenance=provenance(),
    )
    if cfg.out is not None:
        result.save(cfg.out)
    return result


def _axis_text(axis: ParamAxis | str) -> str:
    if isinstance(axis, str):
        return axis
    return f"{axis.name}=" + ",".join(repr(float(v)) for v in axis.values)


@overload
def evaluate_dynamics(cfg: DynamicsConfig, /, *, policy: Policy | None = None) -> DynamicsResult: ...


@overload
def evaluate_dynamics(
    policy: Policy | str | os.PathLike[str],
    env_id: str,
    grid: GridArg,
    episodes: int = 20,
    seed: int = 0,
    *,
    threat: str | tuple[str, Mapping[str, Any]] | None = None,
    budget: float = 0.0,
    smoothing_sigma: float = 0.0,
    deterministic: bool = True,
    max_copies: int | None = None,
    device: str | torch.device = "cpu",
    env_kwargs: Mapping[str, Any] | None = None,
    confidence: float = 0.95,
    bootstrap_reps: int = 2000,
    progress: bool = False,
) -> DynamicsResult: ...


def evaluate_dynamics(*args: Any, **kwargs: Any) -> DynamicsResult:
    """Evaluate a policy over a grid of static physical-parameter shifts (one setting per episode).

    Called as ``evaluate_dynamics(cfg, policy=None)`` with a
    :class:`~robustrl.evaluate.config.DynamicsConfig` (the config-first entry point; ``policy``: an
    already loaded policy instead of loading ``cfg.policy``; with ``cfg.out`` the result is also written
    there), or with the keyword arguments below, which build that config.

    One env covers the grid: every (grid point, episode) pair is one env copy holding that point's
    parameters (per-copy tensors) and running exactly one episode — the rollout engine's first ``N``
    episodes are the copies' first ones, in copy order — so the whole grid × episodes runs batched. More
    pairs than ``max_copies`` run in chunks of ``max_copies`` copies.

    Args:
        *args: ``(cfg,)``, or ``(policy, env_id, grid[, episodes[, seed]])`` where ``policy`` is a
            Policy or a policy file, ``env_id`` an id whose env has the grid's parameters (see
            ``robustrl envs``), and ``grid`` 1–3 axes: :class:`~robustrl.threats.ParamAxis`,
            ``"NAME=LOW:HIGH:COUNT"`` strings or a mapping ``name -> values``.
        **kwargs: ``policy`` with a config; otherwise ``episodes`` (per grid point, default 20),
            ``seed`` (same seed ⇒ same result), ``threat`` (also apply this observation or action threat,
            a name or ``(name, options)``), ``budget`` (its budget), ``smoothing_sigma`` (evaluate the
            Gaussian-smoothed policy), ``deterministic``, ``max_copies`` (default 16384 native, 8 through
            the adapter), ``device``, ``env_kwargs`` (for :func:`robustrl.make_env`), ``confidence`` and
            ``bootstrap_reps`` (bootstrap intervals), ``progress``.

    Returns:
        :class:`~robustrl.results.DynamicsResult` with ``returns`` shaped ``[*grid_shape, episodes]``.

    Raises:
        ValueError: unknown parameter or threat, bad values, seed, device, policy, env or output path, a
            policy that does not fit the env, or a grid too large for memory (checked by
            :func:`~robustrl.evaluate.config.plan_dynamics` before the policy is loaded).
    """
    if args and isinstance(args[0], DynamicsConfig):
        if len(args) > 1 or set(kwargs) - {"policy"}:
            raise TypeError("evaluate_dynamics(cfg) takes only the config and policy=")
        return _evaluate_dynamics(args[0], kwargs.get("policy"))
    return _keyword_form(*args, **kwargs)


def _keyword_form(
    policy: Policy | str | os.PathLike[str],
    env_id: str,
    grid: GridArg,
    episodes: int = 20,
    seed: int = 0,
    *,
    threat: str | tuple[str, Mapping[str, Any]] | None = None,
    budget: float = 0.0,
    smoothing_sigma: float = 0.0,
    deterministic: bool = True,
    max_copies: int | None = None,
    device: str | torch.device = "cpu",
    env_kwargs: Mapping[str, Any] | None = None,
    confidence: float = 0.95,
    bootstrap_reps: int = 2000,
    progress: bool = False,
) -> DynamicsResult:
    """The keyword form of :func:`evaluate_dynamics`: build the config, call the entry point."""
    loaded = policy if not isinstance(policy, str | os.PathLike) else None
    if isinstance(grid, Mapping):
        param = tuple(f"{k}=" + ",".join(repr(float(v)) for v in vals) for k, vals in grid.items())
    else:
        param = tuple(_axis_text(a) for a in grid)
    cfg = DynamicsConfig(
        policy=str(policy) if loaded is None else type(policy).__name__,
        env=env_id,
        param=param,
        episodes=episodes,
        seed=seed,
        threat=None if threat is None else threat if isinstance(threat, str) else format_threat(*threat),
        budget=budget,
        smoothing_sigma=smoothing_sigma,
        deterministic=deterministic,
        max_copies=max_copies or 0,
        device=str(device),
        env_kwargs=dict(env_kwargs or {}),
        confidence=confidence,
        bootstrap_reps=bootstrap_reps,
        progress=progress,
    )
    return _evaluate_dynamics(cfg, loaded)
