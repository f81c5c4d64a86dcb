"""``EvaluationResult``: returns of a policy clean and under every threat of a suite at every budget.

Written by :func:`robustrl.evaluate.evaluate` (``"kind": "evaluation"``). Schema version 2 has the layout of
version 1; only ``config`` changed (it now holds the resolved ``EvaluateConfig``) and ``confidence`` and
``smoothing_sigma`` became fields (read from ``config`` for version-1 files).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal

import numpy as np

from robustrl.results.base import ArraySpec, Result, ResultRow, check_ci, check_curve, same_encoding

__all__ = ["CleanRun", "EvaluationResult", "StrongestCurve", "ThreatCurve", "threat_label"]

Returns1D = Annotated[np.ndarray, ArraySpec("float64", ndim=1)]
Returns2D = Annotated[np.ndarray, ArraySpec("float64", ndim=2)]
Lengths2D = Annotated[np.ndarray, ArraySpec("int64", ndim=2)]
Curve1D = Annotated[np.ndarray, ArraySpec("float64", ndim=1)]


def threat_label(name: str, options: Mapping[str, Any]) -> str:
    """``name`` or ``name[k=v,...]`` (options sorted by key): how a result names a threat with options.

    Example:
        >>> threat_label("pgd", {"steps": 2, "norm": "l2"})
        'pgd[norm=l2,steps=2]'
    """
    if not options:
        return name
    return name + "[" + ",".join(f"{k}={v}" for k, v in sorted(options.items())) + "]"


@dataclass(frozen=True, eq=False)
class CleanRun:
    """The clean run (budget 0; with smoothing noise when the policy is smoothed)."""

    __eq__ = same_encoding

    returns: Returns1D
    """``float64 [episodes]`` episode returns, in the fixed episode order."""
    mean: float
    """Mean return."""
    ci: tuple[float, float]
    """Percentile-bootstrap confidence interval of the mean, computed once by the evaluation."""

    def __post_init__(self) -> None:
        check_ci(self.ci[0], self.ci[1], "ci")


@dataclass(frozen=True, eq=False)
class ThreatCurve:
    """Returns of one threat at each of its budgets."""

    __eq__ = same_encoding

    label: str
    """Unique name within the result (the threat name, plus its options when a name repeats)."""
    name: str
    """Registry name."""
    kind: Literal["obs", "action"]
    """``obs`` or ``action``."""
    threat_model: str
    """Budgets are comparable within one threat model (``obs/linf``, ``obs/episode_l2``, ``action/pr``...)."""
    options: dict[str, Any]
    """The threat's resolved config, plus ``normalized`` (observation threats) or ``adversary``."""
    budgets: tuple[float, ...]
    """Budgets, ascending (0 is the clean run)."""
    returns: Returns2D
    """``float64 [len(budgets), episodes]`` episode returns, in the fixed episode order."""
    lengths: Lengths2D
    """``int64 [len(budgets), episodes]`` episode lengths."""
    mean: Curve1D
    """``[len(budgets)]`` mean return."""
    ci_low: Curve1D
    """``[len(budgets)]`` lower end of the bootstrap CI of the mean."""
    ci_high: Curve1D
    """``[len(budgets)]`` upper end of the bootstrap CI of the mean."""

    def __post_init__(self) -> None:
        check_curve(f"threat {self.label!r}", self.budgets, self.mean, self.ci_low, self.ci_high)
        if self.returns.shape[0] != len(self.budgets):
            raise ValueError(
                f"threat {self.label!r}: 'returns' has {self.returns.shape[0]} rows for {len(self.budgets)} budgets"
            )
        if self.lengths.shape != self.returns.shape:
            raise ValueError(
                f"threat {self.label!r}: 'lengths' has shape {self.lengths.shape}, 'returns' {self.returns.shape}"
            )


@dataclass(frozen=True, eq=False)
class StrongestCurve:
    """The least mean return over the threats of one threat model, at each budget."""

    __eq__ = same_encoding

    threat_model: str
    """The threat model the curve covers."""
    budgets: tuple[float, ...]
    """Every budget any threat of the model ran (ascending; 0 = clean)."""
    mean: Curve1D
    """``[len(budgets)]`` least mean return."""
    ci_low: Curve1D
    """``[len(budgets)]`` CI low of the threat achieving it."""
    ci_high: Curve1D
    """``[len(budgets)]`` CI high of the threat achieving it."""
    threat: tuple[str, ...]
    """Label of the threat achieving it at each budget (``clean`` at 0)."""

    def __post_init__(self) -> None:
        check_curve(f"strongest curve {self.threat_model!r}", self.budgets, self.mean, self.ci_low, self.ci_high)
        if len(self.threat) != len(self.budgets):
            raise ValueError(
                f"field 'threat' must list one threat per budget ({len(self.budgets)}), got {len(self.threat)}"
            )


@dataclass(frozen=True, eq=False)
class EvaluationResult(Result):
    """What :func:`robustrl.evaluate.evaluate` measured (JSON schema in ``docs/evaluate.md``).

    Rows (:meth:`to_rows`), metric ``return_mean`` with the bootstrap CI: threat ``clean`` at budget 0,
    each threat's label at each of its budgets, and ``strongest:<threat model>`` at each budget.
    """

    kind: ClassVar[str] = "evaluation"
    schema_version: ClassVar[int] = 2

    env_id: str
    """The environment."""
    policy: str
    """The policy file, or the policy's class name."""
    episodes: int
    """Episodes per (threat, budget)."""
    seed: int
    """Seed of every rollout (same seed ⇒ same result)."""
    clean: CleanRun
    """The clean run: returns, mean and its CI."""
    threats: tuple[ThreatCurve, ...]
    """One curve per threat."""
    strongest: tuple[StrongestCurve, ...]
    """One curve per threat model: the min over the suite at each budget."""
    confidence: float = 0.95
    """Level of every confidence interval."""
    smoothing_sigma: float = 0.0
    """σ of the Gaussian-smoothed policy that was evaluated (0: not smoothed)."""
    config: dict[str, Any] = field(default_factory=dict)
    """The resolved ``EvaluateConfig`` (``robustrl.common.config.config_to_dict``)."""
    provenance: dict[str, Any] = field(default_factory=dict)
    """Versions, commit and time of the run."""

    def __post_init__(self) -> None:
        if self.episodes < 1:
            raise ValueError(f"field 'episodes' must be >= 1, got {self.episodes}")
        if not 0 < self.confidence < 1:
            raise ValueError(f"field 'confidence' must be in (0, 1), got {self.confidence}")
        if not (math.isfinite(self.smoothing_sigma) and self.smoothing_sigma >= 0):
            raise ValueError(f"field 'smoothing_sigma' must be finite and >= 0, got {self.smoothing_sigma}")
        if self.clean.returns.shape != (self.episodes,):
            raise ValueError(f"clean: 'returns' has {self.clean.returns.size} values for {self.episodes} episodes")
        labels = [c.label for c in self.threats]
        if len(set(labels)) != len(labels):
            raise ValueError(f"threat labels repeat: {labels}")
        for c in self.threats:
            if c.returns.shape[1] != self.episodes:
                raise ValueError(f"threat {c.label!r}: {c.returns.shape[1]} episodes per budget, not {self.episodes}")

    @classmethod
    def upgrade(cls, data: dict[str, Any], version: int) -> dict[str, Any]:
        """Version 1 kept confidence and smoothing σ only in ``config``."""
        config = data.get("config")
        if isinstance(config, Mapping):
            for key in ("confidence", "smoothing_sigma"):
                if key in config and key not in data:
                    data[key] = config[key]
        return data

    def curve(self, label: str) -> ThreatCurve:
        """The curve of the threat called ``label``."""
        for c in self.threats:
            if c.label == label:
                return c
        raise KeyError(f"no threat {label!r} in this result (threats: {[c.label for c in self.threats]})")

    def to_rows(self) -> list[ResultRow]:
        """``return_mean`` rows: ``clean``, every threat × budget, ``strongest:<threat model>`` × budget."""
        rows = [ResultRow(self.env_id, self.policy, "clean", 0.0, self.seed, "return_mean",
                          self.clean.mean, self.clean.ci[0], self.clean.ci[1])]  # fmt: skip
        for c in self.threats:
            rows += _curve_rows(self, c.label, c.budgets, c.mean, c.ci_low, c.ci_high)
        for s in self.strongest:
            rows += _curve_rows(self, f"strongest:{s.threat_model}", s.budgets, s.mean, s.ci_low, s.ci_high)
        return rows

    def __str__(self) -> str:
        lines = [f"{self.env_id}  policy={self.policy}  episodes={self.episodes}  seed={self.seed}"]
        lines.append(f"  clean: {self.clean.mean:.2f} [{self.clean.ci[0]:.2f}, {self.clean.ci[1]:.2f}]")
        for c in self.threats:
            cells = "  ".join(
                f"{b:g}: {m:.2f} [{lo:.2f}, {hi:.2f}]" for b, m, lo, hi in zip(c.budgets, c.mean, c.ci_low, c.ci_high)
            )
            lines.append(f"  {c.label} ({c.threat_model}): {cells}")
        for s in self.strongest:
            cells = "  ".join(f"{b:g}: {m:.2f} ({t})" for b, m, t in zip(s.budgets, s.mean, s.threat))
            lines.append(f"  strongest {s.threat_model}: {cells}")
        return "\n".join(lines)


def _curve_rows(
    res: EvaluationResult,
    threat: str,
    budgets: tuple[float, ...],
    mean: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
) -> list[ResultRow]:
    return [
        ResultRow(res.env_id, res.policy, threat, float(b), res.seed, "return_mean", float(m), float(lo), float(hi))
        for b, m, lo, hi in zip(budgets, mean, low, high)
    ]
