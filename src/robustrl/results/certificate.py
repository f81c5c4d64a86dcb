"""``Certificate``: a Policy Smoothing certificate of one policy on one task, with the evidence it rests on.

Written by :func:`robustrl.certify.certify` (``"kind": "certificate"``). Schema version 2 renamed version
1's ``"version"`` key to ``"schema_version"`` and added the fields ``policy`` and ``seed`` (read from
``config`` for version-1 files); ``config`` now holds the resolved ``CertifyConfig``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal

import numpy as np

from robustrl.results.base import ArraySpec, Result, ResultRow, check_ci

__all__ = ["CERTIFIED_THREAT", "Certificate"]

Finite1D = Annotated[np.ndarray, ArraySpec("float64", ndim=1)]
Bounds = Annotated[np.ndarray, ArraySpec("float64", ndim=1, inf=True)]
Lengths = Annotated[np.ndarray, ArraySpec("int64", ndim=1)]

CERTIFIED_THREAT = "any:obs/episode_l2"
"""The ``threat`` of a certificate's rows: every observation attack of total ℓ2 budget B."""


@dataclass(frozen=True, eq=False)
class Certificate(Result):
    """A Policy Smoothing certificate of one policy on one task, with the evidence it rests on.

    With probability ≥ ``confidence`` over the sampled episodes, for every budget ``budgets[j]`` and
    every observation adversary of total ℓ2 budget ``sqrt(Σ_t ‖δ_t‖²) ≤ budgets[j]`` (adaptive), the
    smoothed policy's expected return is ≥ ``bounds[j]``.

    Rows (:meth:`to_rows`): ``return_mean`` of the clean smoothed run (threat ``clean``, budget 0, its
    bootstrap CI), then per budget ``certified_return`` (threat ``any:obs/episode_l2``, no CI: the bound
    holds at ``confidence``) and, with a quantile ``q``, ``certified_quantile_<q>``.
    """

    kind: ClassVar[str] = "certificate"
    schema_version: ClassVar[int] = 2

    env_id: str
    """Task the episodes ran on."""
    sigma: float
    """Smoothing noise std σ."""
    budgets: Finite1D
    """Total ℓ2 budgets B ``[K]``."""
    bounds: Bounds
    """Certified lower bounds on the expected attacked return ``[K]`` (``-inf``: nothing certified)."""
    confidence: float
    """``1 − alpha``."""
    method: Literal["dkw", "cp"]
    """``dkw`` or ``cp``."""
    n: int
    """Number of smoothed episodes."""
    floor: float
    """The task's least return ``v_0``."""
    clean_return: float
    """Mean return of the smoothed policy without attack."""
    clean_return_ci: tuple[float, float]
    """Percentile-bootstrap interval of ``clean_return`` at level ``confidence`` (descriptive, not certified)."""
    returns: Finite1D
    """The sampled smoothed episode returns ``[n]`` (float64)."""
    lengths: Lengths
    """Their lengths ``[n]`` (int64)."""
    quantile: float | None = None
    """Quantile level of ``quantile_bounds`` (None: no percentile certificate)."""
    quantile_bounds: Bounds | None = None
    """Certified lower bounds on the ``quantile``-quantile of the attacked return ``[K]``."""
    policy: str = ""
    """The policy file, or the policy's class name."""
    seed: int | None = None
    """Seed of the env resets, the noise and the bootstrap."""
    config: dict[str, Any] = field(default_factory=dict)
    """The resolved ``CertifyConfig``."""
    provenance: dict[str, Any] = field(default_factory=dict)
    """Versions, commit, device, time."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.sigma) and self.sigma > 0):
            raise ValueError(f"field 'sigma' must be a finite number > 0, got {self.sigma}")
        if (self.budgets < 0).any():
            raise ValueError(f"'budgets' must be >= 0, got {self.budgets.tolist()}")
        if self.bounds.shape != self.budgets.shape:
            raise ValueError(f"'bounds' has {self.bounds.size} values for {self.budgets.size} budgets")
        if not 0 < self.confidence < 1:
            raise ValueError(f"'confidence' must be in (0, 1), got {self.confidence}")
        if self.n < 1 or self.returns.shape != (self.n,):
            raise ValueError(f"'returns' has {self.returns.size} values for n = {self.n} episodes")
        if self.lengths.shape != self.returns.shape:
            raise ValueError(f"'lengths' has {self.lengths.size} values for {self.returns.size} returns")
        check_ci(self.clean_return_ci[0], self.clean_return_ci[1], "clean_return_ci")
        if self.quantile is not None and not 0 < self.quantile < 1:
            raise ValueError(f"'quantile' must be in (0, 1), got {self.quantile}")
        if self.quantile_bounds is not None:
            if self.quantile is None:
                raise ValueError("'quantile_bounds' needs 'quantile'")
            if self.quantile_bounds.shape != self.budgets.shape:
                raise ValueError(
                    f"'quantile_bounds' has {self.quantile_bounds.size} values for {self.budgets.size} budgets"
                )

    @classmethod
    def upgrade(cls, data: dict[str, Any], version: int) -> dict[str, Any]:
        """Version 1 wrote ``"version"`` and kept the policy and the seed only in ``config``."""
        data.pop("version", None)
        config = data.get("config")
        if isinstance(config, Mapping):
            if "policy" not in data and isinstance(config.get("policy"), str):
                data["policy"] = config["policy"]
            if "seed" not in data and "seed" in config:
                data["seed"] = config["seed"]
        return data

    @property
    def alpha(self) -> float:
        """Failure probability ``1 − confidence``."""
        return 1.0 - self.confidence

    def to_rows(self) -> list[ResultRow]:
        """The clean smoothed ``return_mean``, then ``certified_return`` (and quantile bounds) per budget."""
        lo, hi = self.clean_return_ci
        rows = [ResultRow(self.env_id, self.policy, "clean", 0.0, self.seed, "return_mean", self.clean_return, lo, hi)]
        for j, b in enumerate(self.budgets.tolist()):
            rows.append(ResultRow(self.env_id, self.policy, CERTIFIED_THREAT, b, self.seed, "certified_return",
                                  float(self.bounds[j]), None, None))  # fmt: skip
            if self.quantile_bounds is not None:
                rows.append(ResultRow(self.env_id, self.policy, CERTIFIED_THREAT, b, self.seed,
                                      f"certified_quantile_{self.quantile:g}", float(self.quantile_bounds[j]),
                                      None, None))  # fmt: skip
        return rows

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
