"""Evaluation under threats: returns per threat and budget, bootstrap CIs, the strongest-attack curve.

:func:`evaluate_policy` runs the victim once clean and once per (threat, budget > 0) in the batched
rollout engine, every rollout with the same seed (paired: the same initial states); budget 0 is the clean
run. The result saves to JSON (``"kind": "evaluation"``; schema in ``docs/evaluate.md``) and loads back
with :func:`load_evaluation` (which also reads :mod:`robustrl.evaluate.dynamics` results).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from robustrl.common.io import read_json, write_json
from robustrl.common.provenance import provenance
from robustrl.evaluate.rollout import rollout
from robustrl.policies.base import Policy
from robustrl.stats import bootstrap_ci
from robustrl.threats.registry import THREATS, Threat, make_threat

if TYPE_CHECKING:
    from robustrl.evaluate.dynamics import DynamicsResult

SCHEMA_VERSION = 1
"""Version of the JSON files written here."""

ThreatArg = str | tuple[str, Mapping[str, Any]]
"""A threat by name, or ``(name, options)`` with options for its config (``("pgd", {"steps": 20})``)."""


def mean_ci(samples: np.ndarray, confidence: float, reps: int, seed: int) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean and its percentile-bootstrap CI (:func:`robustrl.stats.bootstrap_ci`)."""
    ci = bootstrap_ci(np.asarray(samples, dtype=np.float64), "mean", reps=reps, confidence=confidence, seed=seed)
    return float(ci.point), float(ci.low), float(ci.high)


@dataclass(frozen=True)
class ThreatCurve:
    """Returns of one threat at each of its budgets."""

    label: str
    """Unique name within the result (the threat name, plus its options when a name repeats)."""
    name: str
    """Registry name."""
    kind: str
    """``obs`` or ``action``."""
    threat_model: str
    """Budgets are comparable within one threat model (``obs/linf``, ``obs/episode_l2``, ``action/pr``...)."""
    options: dict[str, Any]
    """The threat's resolved config, plus ``normalized`` and ``smoothing_sigma``."""
    budgets: tuple[float, ...]
    """Budgets, ascending (0 is the clean run)."""
    returns: np.ndarray
    """``float64 [len(budgets), episodes]`` episode returns, in the fixed episode order."""
    lengths: np.ndarray
    """``int64 [len(budgets), episodes]`` episode lengths."""
    mean: np.ndarray
    """``[len(budgets)]`` mean return."""
    ci_low: np.ndarray
    """``[len(budgets)]`` lower end of the bootstrap CI of the mean."""
    ci_high: np.ndarray
    """``[len(budgets)]`` upper end of the bootstrap CI of the mean."""


@dataclass(frozen=True)
class StrongestCurve:
    """The least mean return over the threats of one threat model, at each budget."""

    threat_model: str
    """The threat model the curve covers."""
    budgets: tuple[float, ...]
    """Every budget any threat of the model ran (ascending; 0 = clean)."""
    mean: np.ndarray
    """``[len(budgets)]`` least mean return."""
    ci_low: np.ndarray
    """``[len(budgets)]`` CI low of the threat achieving it."""
    ci_high: np.ndarray
    """``[len(budgets)]`` CI high of the threat achieving it."""
    threat: tuple[str, ...]
    """Label of the threat achieving it at each budget (``clean`` at 0)."""


def as_array(x: Any, dtype: Any) -> np.ndarray:
    """``np.asarray(x, dtype)`` (reading JSON lists back)."""
    return np.asarray(x, dtype=dtype)


@dataclass(frozen=True)
class EvaluationResult:
    """What :func:`evaluate_policy` measured (see ``docs/evaluate.md`` for the JSON schema)."""

    env_id: str
    """The environment."""
    policy: str
    """The policy file, or the policy's class name."""
    episodes: int
    """Episodes per (threat, budget)."""
    seed: int
    """Seed of every rollout (same seed ⇒ same result)."""
    clean: np.ndarray
    """``float64 [episodes]`` returns without attack (with smoothing noise if the policy is smoothed)."""
    threats: tuple[ThreatCurve, ...]
    """One curve per threat."""
    strongest: tuple[StrongestCurve, ...]
    """One curve per threat model: the min over the suite at each budget."""
    config: dict[str, Any] = field(default_factory=dict)
    """The evaluation options (smoothing, normalisation, deterministic, confidence...)."""
    provenance: dict[str, Any] = field(default_factory=dict)
    """Versions, commit and time of the run."""

    def curve(self, label: str) -> ThreatCurve:
        """The curve of the threat called ``label``."""
        for c in self.threats:
            if c.label == label:
                return c
        raise KeyError(f"no threat {label!r} in this result (threats: {[c.label for c in self.threats]})")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with ``"kind": "evaluation"``."""
        conf = float(self.config.get("confidence", 0.95))
        reps = int(self.config.get("bootstrap_reps", 2000))
        clean_mean, lo, hi = mean_ci(self.clean, conf, reps, self.seed)
        return {
            "kind": "evaluation",
            "schema_version": SCHEMA_VERSION,
            "env_id": self.env_id,
            "policy": self.policy,
            "episodes": self.episodes,
            "seed": self.seed,
            "config": self.config,
            "clean": {"returns": self.clean.tolist(), "mean": clean_mean, "ci": [lo, hi]},
            "threats": [
                {
                    "label": c.label,
                    "name": c.name,
                    "kind": c.kind,
                    "threat_model": c.threat_model,
                    "options": c.options,
                    "budgets": list(c.budgets),
                    "mean": c.mean.tolist(),
                    "ci_low": c.ci_low.tolist(),
                    "ci_high": c.ci_high.tolist(),
                    "returns": c.returns.tolist(),
                    "lengths": c.lengths.tolist(),
                }
                for c in self.threats
            ],
            "strongest": [
                {
                    "threat_model": s.threat_model,
                    "budgets": list(s.budgets),
                    "mean": s.mean.tolist(),
                    "ci_low": s.ci_low.tolist(),
                    "ci_high": s.ci_high.tolist(),
                    "threat": list(s.threat),
                }
                for s in self.strongest
            ],
            "provenance": self.provenance,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvaluationResult:
        """Rebuild from :meth:`to_dict` output."""
        try:
            return cls(
                env_id=str(data["env_id"]),
                policy=str(data["policy"]),
                episodes=int(data["episodes"]),
                seed=int(data["seed"]),
                clean=as_array(data["clean"]["returns"], np.float64),
                threats=tuple(
                    ThreatCurve(
                        label=t["label"],
                        name=t["name"],
                        kind=t["kind"],
                        threat_model=t["threat_model"],
                        options=dict(t["options"]),
                        budgets=tuple(float(b) for b in t["budgets"]),
                        returns=as_array(t["returns"], np.float64),
                        lengths=as_array(t["lengths"], np.int64),
                        mean=as_array(t["mean"], np.float64),
                        ci_low=as_array(t["ci_low"], np.float64),
                        ci_high=as_array(t["ci_high"], np.float64),
                    )
                    for t in data["threats"]
                ),
                strongest=tuple(
                    StrongestCurve(
                        threat_model=s["threat_model"],
                        budgets=tuple(float(b) for b in s["budgets"]),
                        mean=as_array(s["mean"], np.float64),
                        ci_low=as_array(s["ci_low"], np.float64),
                        ci_high=as_array(s["ci_high"], np.float64),
                        threat=tuple(s["threat"]),
                    )
                    for s in data["strongest"]
                ),
                config=dict(data.get("config", {})),
                provenance=dict(data.get("provenance", {})),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"not a valid evaluation result: {err!r}") from err

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the result as JSON atomically; returns the path."""
        return write_json(path, self.to_dict())

    def __str__(self) -> str:
        lines = [f"{self.env_id}  policy={self.policy}  episodes={self.episodes}  seed={self.seed}"]
        lines.append(f"  clean: {self.clean.mean():.2f}")
        for c in self.threats:
            cells = "  ".join(
                f"{b:g}: {m:.2f} [{lo:.2f}, {hi:.2f}]" for b, m, lo, hi in zip(c.budgets, c.mean, c.ci_low, c.ci_high)
            )
            lines.append(f"  {c.label} ({c.threat_model}): {cells}")
        for s in self.strongest:
            cells = "  ".join(f"{b:g}: {m:.2f} ({t})" for b, m, t in zip(s.budgets, s.mean, s.threat))
            lines.append(f"  strongest {s.threat_model}: {cells}")
        return "\n".join(lines)


def resolve_policy(policy: Policy | str | os.PathLike[str], env_id: str, device: Any) -> tuple[Policy, str]:
    """``(policy, description)``: a Policy as is (its class name), or a file loaded by ``load_policy``."""
    if isinstance(policy, str | os.PathLike):
        from robustrl.policies import load_policy

        return load_policy(policy, device=device, env_id=env_id), str(policy)
    if not callable(getattr(policy, "act", None)):
        raise ValueError(f"policy must be a Policy (with act) or a path, got {type(policy).__name__}")
    return policy, type(policy).__name__


def _check_budgets(budgets: Sequence[float], what: str) -> tuple[float, ...]:
    out = []
    for b in budgets:
        if isinstance(b, bool) or not isinstance(b, int | float) or not math.isfinite(b) or b < 0:
            raise ValueError(f"{what} must be finite numbers ≥ 0, got {b!r}")
        out.append(float(b))
    if not out:
        raise ValueError(f"{what} must not be empty")
    return tuple(sorted(set(out)))


def _labels(entries: list[tuple[str, dict[str, Any]]]) -> list[str]:
    names = [n for n, _ in entries]
    labels = []
    for n, opts in entries:
        label = (
            n
            if names.count(n) == 1 or not opts
            else n + "[" + ",".join(f"{k}={v}" for k, v in sorted(opts.items())) + "]"
        )
        labels.append(label)
    if len(set(labels)) != len(labels):
        raise ValueError(f"threats repeat with the same options: {labels}")
    return labels


def _default_copies(env_id: str, episodes: int) -> int:
    from robustrl.envs import NATIVE_ENVS

    return min(episodes, 4096) if env_id in NATIVE_ENVS else min(episodes, 8)


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
    """Evaluate a policy clean and under every threat at every budget.

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
        :class:`EvaluationResult`.

    Raises:
        ValueError: unknown threat/option, negative budget, bad policy or env.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be ≥ 1, got {episodes}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    entries = [(t, {}) if isinstance(t, str) else (t[0], dict(t[1])) for t in threats]
    if not entries:
        raise ValueError("threats must not be empty")
    for name, _ in entries:
        if name not in THREATS:
            make_threat(name, 0.0)  # raises with close names
    labels = _labels(entries)
    if isinstance(budgets, Mapping):
        per = {
            n: _check_budgets(budgets[n] if n in budgets else budgets["default"], f"budgets of {n}")
            for n, _ in entries
            if n in budgets or "default" in budgets
        }
        missing = [n for n, _ in entries if n not in per]
        if missing:
            raise ValueError(f"no budgets for threats {missing} (give them, or a 'default' entry)")
    else:
        shared = _check_budgets(budgets, "budgets")
        per = {n: shared for n, _ in entries}

    pol, pol_name = resolve_policy(policy, env_id, device)
    from robustrl.envs import make_env

    n_env = num_envs or _default_copies(env_id, episodes)
    env = make_env(env_id, n_env, device=device, seed=seed, **dict(env_kwargs or {}))
    horizon = env.max_episode_steps
    smooth = make_threat("none", 0.0, smoothing_sigma=smoothing_sigma) if smoothing_sigma > 0 else None

    def run(obs_t: Any = None, act_t: Any = None) -> tuple[np.ndarray, np.ndarray]:
        res = rollout(
            pol, env, episodes, seed=seed, obs_transform=obs_t, action_transform=act_t,
            deterministic=deterministic, progress=progress,
        )  # fmt: skip
        return res.returns.numpy(), res.lengths.numpy()

    try:
        clean_r, clean_l = run(smooth)
        clean_stats = mean_ci(clean_r, confidence, bootstrap_reps, seed)
        curves = []
        for (name, opts), label in zip(entries, labels):
            rs, ls, means, lows, highs = [], [], [], [], []
            described: dict[str, Any] = {}
            for b in per[name]:
                threat = build_threat(name, b, opts, normalized, smoothing_sigma, eot, horizon)
                described = threat.describe()
                if b == 0:
                    r, ln = clean_r, clean_l
                elif threat.kind == "obs":
                    r, ln = run(threat)
                else:
                    r, ln = run(smooth, threat)
                m, lo, hi = mean_ci(r, confidence, bootstrap_reps, seed)
                rs.append(r)
                ls.append(ln)
                means.append(m)
                lows.append(lo)
                highs.append(hi)
            options = dict(described["options"])
            options.update({k: described[k] for k in ("normalized", "smoothing_sigma", "adversary") if k in described})
            curves.append(
                ThreatCurve(
                    label=label,
                    name=name,
                    kind=described["kind"],
                    threat_model=described["threat_model"],
                    options=options,
                    budgets=per[name],
                    returns=np.stack(rs),
                    lengths=np.stack(ls),
                    mean=np.array(means),
                    ci_low=np.array(lows),
                    ci_high=np.array(highs),
                )
            )
    finally:
        env.close()
    config = {
        "threats": [[n, o] for n, o in entries],
        "normalized": normalized,
        "smoothing_sigma": smoothing_sigma,
        "eot": eot,
        "deterministic": deterministic,
        "num_envs": n_env,
        "device": str(device),
        "env_kwargs": dict(env_kwargs or {}),
        "confidence": confidence,
        "bootstrap_reps": bootstrap_reps,
    }
    return EvaluationResult(
        env_id=env_id,
        policy=pol_name,
        episodes=episodes,
        seed=seed,
        clean=clean_r,
        threats=tuple(curves),
        strongest=_strongest(curves, clean_stats),
        config=config,
        provenance=provenance(),
    )


def build_threat(
    name: str, budget: float, opts: dict[str, Any], normalized: bool, sigma: float, eot: bool, horizon: int | None
) -> Threat:
    """:func:`make_threat` with evaluation's shared options (action threats take none of them)."""
    spec = THREATS[name]
    if spec.kind == "action":
        return make_threat(name, budget, **opts)
    opts = dict(opts)
    if name == "episode_l2" and "horizon" not in opts and horizon is not None:
        opts["horizon"] = horizon
    return make_threat(name, budget, normalized=normalized, smoothing_sigma=sigma, eot=eot, **opts)


def load_evaluation(path: str | os.PathLike[str]) -> EvaluationResult | DynamicsResult:
    """Load a result written by :meth:`EvaluationResult.save` or :meth:`DynamicsResult.save`.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not JSON, or not an evaluation/dynamics result.
    """
    data = read_json(path, what="evaluation file")
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind == "evaluation":
        return EvaluationResult.from_dict(data)
    if kind == "dynamics":
        from robustrl.evaluate.dynamics import DynamicsResult

        return DynamicsResult.from_dict(data)
    raise ValueError(f"evaluation file {str(path)!r} has kind {kind!r}; expected 'evaluation' or 'dynamics'")
