"""Evaluation under threats: returns per threat and budget, bootstrap CIs, the strongest-attack curve.

:func:`evaluate` (config first) runs the victim once clean and once per (threat, budget > 0) in the batched
rollout engine, every rollout with the same seed (paired: the same initial states); budget 0 is the clean
run. It returns an :class:`~robustrl.results.EvaluationResult` (``"kind": "evaluation"``; schema in
``docs/evaluate.md``) holding the resolved config; :func:`evaluate_policy` is the keyword form, and
:func:`load_evaluation` reads evaluation and dynamics files back.

The result classes live in :mod:`robustrl.results`; they are re-exported here for older imports.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from robustrl.common.config import config_to_dict
from robustrl.common.provenance import provenance
from robustrl.evaluate.common import (
    build_threat,
    default_copies,
    mean_ci,
    resolve_policy,
    transforms,
)
from robustrl.evaluate.config import EvaluateConfig, check_budgets, format_threat, plan_evaluation
from robustrl.policies.base import Policy
from robustrl.results import (
    CleanRun,
    DynamicsResult,
    EvaluationResult,
    StrongestCurve,
    ThreatCurve,
    load_result,
)
from robustrl.rollout import rollout
from robustrl.rollout.checks import check_policy_fits_env

__all__ = [
    "SCHEMA_VERSION",
    "CleanRun",
    "EvaluateConfig",
    "EvaluationResult",
    "StrongestCurve",
    "ThreatArg",
    "ThreatCurve",
    "build_threat",
    "evaluate",
    "evaluate_policy",
    "load_evaluation",
    "mean_ci",
    "resolve_policy",
]

SCHEMA_VERSION = EvaluationResult.schema_version
"""Version of the evaluation files written here (see :mod:`robustrl.results`)."""

ThreatArg = str | tuple[str, Mapping[str, Any]]
"""A threat by name, or ``(name, options)`` with options for its config (``("pgd", {"steps": 20})``)."""


def _strongest(curves: Sequence[ThreatCurve], clean: tuple[float, float, float]) -> tuple[StrongestCurve, ...]:
    out = []
    for model in dict.fromkeys(c.threat_model for c in curves if c.threat_model != "obs/none"):
        members = [c for c in curves if c.threat_model == model]
        budgets = sorted({0.0} | {b for c in members for b in c.budgets})
        mean, low, high, who = [], [], [], []
        for b in budgets:
            if b == 0:
                best = (clean[0], clean[1], clean[2], "clean")
            else:
                cands = [
                    (float(c.mean[i]), float(c.ci_low[i]), float(c.ci_high[i]), c.label)
                    for c in members
                    for i, cb in enumerate(c.budgets)
                    if cb == b
                ]
                best = min(cands, key=lambda t: t[0])
            mean.append(best[0])
            low.append(best[1])
            high.append(best[2])
            who.append(best[3])
        out.append(StrongestCurve(model, tuple(budgets), np.array(mean), np.array(low), np.array(high), tuple(who)))
    return tuple(out)


def evaluate(cfg: EvaluateConfig, *, policy: Policy | None = None) -> EvaluationResult:
    """Evaluate a policy clean and under every threat of ``cfg`` at every budget.

    Args:
        cfg: what to run (see :class:`~robustrl.evaluate.config.EvaluateConfig`); with ``cfg.out`` the
            result is also written there (atomically; a bad path fails before any rollout).
        policy: an already loaded policy to evaluate instead of loading ``cfg.policy`` (which then only
            names it in the result).

    Returns:
        :class:`~robustrl.results.EvaluationResult`; its ``config`` is the resolved config (threat options
        merged into the threats, the number of env copies filled in), which loads back with
        ``config_from_dict(EvaluateConfig, result.config)`` and reruns the same evaluation.

    Raises:
        ValueError: unknown threat/option, negative budget, bad σ, seed, device, policy, env or output path,
            a policy that does not fit the env, or a request too large for memory (every option is checked
            by :func:`~robustrl.evaluate.config.plan_evaluation` before the policy is loaded).

    Example:
        >>> from robustrl.evaluate import EvaluateConfig, evaluate
        >>> class Left:
        ...     def act(self, obs, *, deterministic=True, generator=None):
        ...         return torch.zeros(obs.shape[0], dtype=torch.int64)
        >>> res = evaluate(EvaluateConfig("Left", "CartPole-v1", ("uniform",), (0.0, 0.1), episodes=4,
        ...                               bootstrap_reps=50), policy=Left())
        >>> res.curve("uniform").returns.shape
        (2, 4)
    """
    entries, labels, per, sigma = plan_evaluation(cfg)
    pol, pol_name = resolve_policy(
        cfg.policy if policy is None else policy, cfg.env, cfg.device, trust_code=cfg.trust_code,
        vec_normalize=cfg.vec_normalize if policy is None else None,
    )
    if policy is not None and cfg.policy:
        pol_name = cfg.policy
    if sigma > 0 and cfg.eot and entries and getattr(pol, "start_episodes", None) is not None:
        raise ValueError(
            f"{pol_name} is recurrent: attacks on its smoothed version average over many noise draws of one "
            "observation, which one carried state cannot serve; pass --eot false (attack the noisy observation "
            "once) or evaluate without --smoothing-sigma"
        )
    from robustrl.envs import make_env

    n_env = cfg.num_envs or default_copies(cfg.env, cfg.episodes)
    env = make_env(cfg.env, n_env, device=cfg.device, seed=cfg.seed, **dict(cfg.env_kwargs))
    try:
        check_policy_fits_env(pol, pol_name, env)
    except ValueError:
        env.close()
        raise
    horizon = env.max_episode_steps

    def run(threat: Any = None) -> tuple[np.ndarray, np.ndarray]:
        obs_t, act_t = transforms(threat, sigma)
        res = rollout(
            pol, env, cfg.episodes, seed=cfg.seed, obs_transform=obs_t, action_transform=act_t,
            deterministic=cfg.deterministic, progress=cfg.progress,
        )  # fmt: skip
        return res.returns.numpy(), res.lengths.numpy()

    try:
        clean_r, clean_l = run()
        clean_stats = mean_ci(clean_r, cfg.confidence, cfg.bootstrap_reps, cfg.seed)
        curves = []
        for (name, opts), label in zip(entries, labels):
            rs, ls, stats = [], [], []
            described: dict[str, Any] = {}
            for b in per[name]:
                threat = build_threat(name, b, opts, cfg.normalized, sigma, cfg.eot, horizon)
                described = threat.describe()
                r, ln = (clean_r, clean_l) if b == 0 else run(threat)
                rs.append(r)
                ls.append(ln)
                stats.append(mean_ci(r, cfg.confidence, cfg.bootstrap_reps, cfg.seed))
            options = dict(described["options"])
            options.update({k: described[k] for k in ("normalized", "adversary") if k in described})
            st = np.array(stats)
            curve = ThreatCurve(
                label=label, name=name, kind=described["kind"], threat_model=described["threat_model"],
                options=options, budgets=per[name], returns=np.stack(rs), lengths=np.stack(ls),
                mean=st[:, 0], ci_low=st[:, 1], ci_high=st[:, 2],
            )  # fmt: skip
            curves.append(curve)
    finally:
        env.close()
    resolved = dataclasses.replace(
        cfg,
        policy=pol_name,
        threat=tuple(format_threat(n, o) for n, o in entries),
        option=(),
        num_envs=n_env,
        smoothing_sigma=sigma,
        trust_code=False,  # a saved file never grants trust: a rerun of a TorchScript policy asks again
    )
    result = EvaluationResult(
        env_id=cfg.env,
        policy=pol_name,
        episodes=cfg.episodes,
        seed=cfg.seed,
        clean=CleanRun(clean_r, clean_stats[0], (clean_stats[1], clean_stats[2])),
        threats=tuple(curves),
        strongest=_strongest(curves, clean_stats),
        confidence=cfg.confidence,
        smoothing_sigma=sigma,
        config=config_to_dict(resolved),
        provenance=provenance(),
    )
    if cfg.out is not None:
        result.save(cfg.out)
    return result


def _budget_text(name: str, budgets: Sequence[float]) -> str:
    return f"{name}=" + ",".join(repr(b) for b in check_budgets(budgets, f"budgets of {name}"))


def evaluate_policy(
    policy: Policy | str | os.PathLike[str],
    env_id: str,
    threats: Sequence[ThreatArg] = ("pgd",),
    budgets: Sequence[float] | Mapping[str, Sequence[float]] = (0.0, 0.05, 0.1),
    episodes: int = 100,
    seed: int = 0,
    *,
    normalized: bool = False,
    smoothing_sigma: float = 0.0,
    eot: bool = True,
    deterministic: bool = True,
    num_envs: int | None = None,
    device: str | torch.device = "cpu",
    env_kwargs: Mapping[str, Any] | None = None,
    confidence: float = 0.95,
    bootstrap_reps: int = 2000,
    progress: bool = False,
) -> EvaluationResult:
    """Evaluate a policy clean and under every threat at every budget (the keyword form of :func:`evaluate`).

    Args:
        policy: a :class:`~robustrl.policies.base.Policy`, or a policy file for :func:`robustrl.load_policy`.
        env_id: any id :func:`robustrl.make_env` accepts.
        threats: threat names from :data:`robustrl.threats.THREATS`, or ``(name, options)`` pairs.
        budgets: budgets shared by all threats, or a mapping ``name -> budgets`` (missing names use
            ``budgets["default"]`` if given). Budget 0 is the clean run.
        episodes: episodes per (threat, budget).
        seed: seed of every rollout: each (threat, budget) starts from the same initial states.
        normalized: attack observations in the policy's normalised units (``policy.obs_norm``).
        smoothing_sigma: evaluate the Gaussian-smoothed policy (Policy Smoothing): noise σ on every
            observation, after the attack; gradient attacks use EOT through it unless ``eot=False``.
        eot: attack a smoothed policy through its noise (expectation over noise).
        deterministic: greedy actions (True) or sampled ones.
        num_envs: env copies stepping together (default: up to 4096 native, 8 through the adapter).
        device: where the env runs (the policy must already live there).
        env_kwargs: extra keyword arguments for :func:`robustrl.make_env`.
        confidence: level of the bootstrap intervals of the mean.
        bootstrap_reps: bootstrap resamples.
        progress: show progress bars.

    Returns:
        :class:`~robustrl.results.EvaluationResult`.

    Raises:
        ValueError: unknown threat/option, negative budget, bad policy or env.
    """
    loaded = policy if not isinstance(policy, str | os.PathLike) else None
    if isinstance(budgets, Mapping):
        shared = tuple(budgets.get("default", ()))
        own = tuple(_budget_text(n, b) for n, b in budgets.items() if n != "default")
    else:
        shared, own = tuple(budgets), ()
    cfg = EvaluateConfig(
        policy=str(policy) if loaded is None else type(policy).__name__,
        env=env_id,
        threat=tuple(t if isinstance(t, str) else format_threat(t[0], t[1]) for t in threats),
        budgets=shared,
        threat_budgets=own,
        episodes=episodes,
        seed=seed,
        normalized=normalized,
        smoothing_sigma=smoothing_sigma,
        eot=eot,
        deterministic=deterministic,
        num_envs=num_envs or 0,
        device=str(device),
        env_kwargs=dict(env_kwargs or {}),
        confidence=confidence,
        bootstrap_reps=bootstrap_reps,
        progress=progress,
    )
    return evaluate(cfg, policy=loaded)


def load_evaluation(path: str | os.PathLike[str]) -> EvaluationResult | DynamicsResult:
    """Load a result written by :meth:`EvaluationResult.save` or :meth:`DynamicsResult.save`.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not JSON, or not a valid evaluation/dynamics result (the message names the file).
    """
    result = load_result(path, kinds=("evaluation", "dynamics"))
    assert isinstance(result, EvaluationResult | DynamicsResult)
    return result
