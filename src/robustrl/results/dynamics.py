"""``DynamicsResult``: returns over a grid of 1–3 physical parameters (static dynamics shifts).

Written by :func:`robustrl.evaluate.evaluate_dynamics` (``"kind": "dynamics"``). Schema version 2 has the
layout of version 1 plus the fields ``threat``, ``budget``, ``smoothing_sigma`` and ``confidence`` (read from
``config`` for version-1 files); ``config`` now holds the resolved ``DynamicsConfig``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from robustrl.results.base import F64, I64, Result, ResultRow, same_encoding
from robustrl.results.evaluation import threat_label

__all__ = ["MAX_AXES", "DynamicsResult", "GridAxis"]

MAX_AXES = 3
"""Most parameters a grid has."""


@dataclass(frozen=True, eq=False)
class GridAxis:
    """One axis of a dynamics grid."""

    __eq__ = same_encoding

    name: str
    """The env's physical parameter (``length``, ``mass_scale``...)."""
    values: tuple[float, ...]
    """Values along the axis, in order."""

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a grid parameter needs a name")
        if not self.values or not all(math.isfinite(v) for v in self.values):
            raise ValueError(f"parameter {self.name!r} needs finite values, got {list(self.values)}")


@dataclass(frozen=True, eq=False)
class DynamicsResult(Result):
    """Returns over a grid of physical parameters (JSON schema in ``docs/evaluate.md``).

    Rows (:meth:`to_rows`): one ``return_mean`` row per grid point, with the bootstrap CI; the threat is
    ``dynamics[NAME=VALUE,...]`` (prefixed by ``THREAT+`` when a threat ran in every episode, whose budget
    is the row's budget).
    """

    kind: ClassVar[str] = "dynamics"
    schema_version: ClassVar[int] = 2
    json_properties: ClassVar[tuple[str, ...]] = ("shape",)

    env_id: str
    """The environment."""
    policy: str
    """The policy file, or the policy's class name."""
    params: tuple[GridAxis, ...]
    """The grid's axes (parameter names and values), in order."""
    episodes: int
    """Episodes per grid point."""
    seed: int
    """Seed (same seed ⇒ same result)."""
    returns: F64
    """``float64 [*shape, episodes]`` episode returns."""
    lengths: I64
    """``int64 [*shape, episodes]`` episode lengths."""
    mean: F64
    """``[*shape]`` mean return per grid point."""
    ci_low: F64
    """``[*shape]`` bootstrap CI low of the mean."""
    ci_high: F64
    """``[*shape]`` bootstrap CI high of the mean."""
    threat: str | None = None
    """The threat applied in every episode (``NAME`` or ``NAME[k=v,...]``), or None."""
    budget: float = 0.0
    """Its budget."""
    smoothing_sigma: float = 0.0
    """σ of the Gaussian-smoothed policy that was evaluated (0: not smoothed)."""
    confidence: float = 0.95
    """Level of the confidence intervals."""
    config: dict[str, Any] = field(default_factory=dict)
    """The resolved ``DynamicsConfig``."""
    provenance: dict[str, Any] = field(default_factory=dict)
    """Versions, commit and time of the run."""

    @property
    def shape(self) -> tuple[int, ...]:
        """The grid's shape: the number of values per axis."""
        return tuple(len(a.values) for a in self.params)

    @property
    def axes(self) -> tuple[GridAxis, ...]:
        """The grid's axes (same as :attr:`params`)."""
        return self.params

    def __post_init__(self) -> None:
        if not 1 <= len(self.params) <= MAX_AXES:
            raise ValueError(f"a dynamics grid has 1 to {MAX_AXES} parameters, got {len(self.params)}")
        names = [a.name for a in self.params]
        if len(set(names)) != len(names):
            raise ValueError(f"repeated parameter in the grid: {names}")
        if self.episodes < 1:
            raise ValueError(f"field 'episodes' must be >= 1, got {self.episodes}")
        for key in ("mean", "ci_low", "ci_high"):
            arr = getattr(self, key)
            if arr.shape != self.shape:
                raise ValueError(
                    f"field {key!r} has shape {arr.shape}, expected {self.shape} from the parameter values"
                )
        for key in ("returns", "lengths"):
            arr = getattr(self, key)
            if arr.shape != (*self.shape, self.episodes):
                raise ValueError(f"field {key!r} has shape {arr.shape}, expected {(*self.shape, self.episodes)}")
        if (self.ci_low > self.ci_high).any():
            raise ValueError("ci_low exceeds ci_high")
        if not 0 < self.confidence < 1:
            raise ValueError(f"field 'confidence' must be in (0, 1), got {self.confidence}")
        if not (math.isfinite(self.budget) and self.budget >= 0):
            raise ValueError(f"field 'budget' must be finite and >= 0, got {self.budget}")
        if not (math.isfinite(self.smoothing_sigma) and self.smoothing_sigma >= 0):
            raise ValueError(f"field 'smoothing_sigma' must be finite and >= 0, got {self.smoothing_sigma}")

    @classmethod
    def upgrade(cls, data: dict[str, Any], version: int) -> dict[str, Any]:
        """Version 1 kept the threat (``[name, options]``), budget, σ and confidence only in ``config``."""
        config = data.get("config")
        if not isinstance(config, Mapping):
            return data
        for key in ("budget", "smoothing_sigma", "confidence"):
            if key in config and key not in data:
                data[key] = config[key]
        threat = config.get("threat")
        if "threat" not in data and isinstance(threat, list) and threat and isinstance(threat[0], str):
            options = threat[1] if len(threat) > 1 and isinstance(threat[1], Mapping) else {}
            data["threat"] = threat_label(threat[0], options)
        return data

    def point_label(self, index: tuple[int, ...]) -> str:
        """``dynamics[NAME=VALUE,...]`` of the grid point at ``index``."""
        point = ",".join(f"{a.name}={a.values[i]!r}" for a, i in zip(self.params, index))
        return f"dynamics[{point}]"

    def to_rows(self) -> list[ResultRow]:
        """One ``return_mean`` row per grid point (C order)."""
        prefix = f"{self.threat}+" if self.threat else ""
        budget = self.budget if self.threat else 0.0
        rows = []
        for idx in np.ndindex(*self.shape):
            row = ResultRow(
                self.env_id, self.policy, prefix + self.point_label(idx), float(budget), self.seed, "return_mean",
                float(self.mean[idx]), float(self.ci_low[idx]), float(self.ci_high[idx]),
            )  # fmt: skip
            rows.append(row)
        return rows

    def __str__(self) -> str:
        head = f"{self.env_id}  policy={self.policy}  episodes/point={self.episodes}  seed={self.seed}"
        rows = [head]
        for idx in np.ndindex(*self.mean.shape):
            point = ", ".join(f"{a.name}={a.values[i]:g}" for a, i in zip(self.params, idx))
            rows.append(f"  {point}: {self.mean[idx]:.2f} [{self.ci_low[idx]:.2f}, {self.ci_high[idx]:.2f}]")
        return "\n".join(rows)
