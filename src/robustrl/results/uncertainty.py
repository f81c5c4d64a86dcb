"""``UncertaintyResult``: a policy over a named uncertainty set's grid, with references for a normalised score.

Written by :func:`robustrl.evaluate.uncertainty.evaluate_uncertainty` (``"kind": "uncertainty"``). The
grid's mean returns of the policy and of up to two reference policies, evaluated in the same run on the same
grid with the same seeds, give the worst case, the average, the worst parameter point and IWOCS's normalised
score ``(v − v_ref0) / |v_ref1 − v_ref0|`` (reference 0 scores 0 and reference 1 scores 1; IWOCS uses nominal
TD3 and M2TD3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from robustrl.results.base import F64, Result, ResultRow
from robustrl.results.dynamics import MAX_AXES, GridAxis

__all__ = ["UncertaintyResult", "normalised_score"]


def normalised_score(value: float, ref0: float, ref1: float) -> float:
    """``(value − ref0) / |ref1 − ref0|``: 0 at reference 0, 1 at reference 1 when ``ref1 > ref0``.

    Raises:
        ValueError: equal references (the score is undefined).

    Example:
        >>> normalised_score(150.0, 100.0, 200.0), normalised_score(50.0, 100.0, 200.0)
        (0.5, -0.5)
    """
    if not (math.isfinite(ref0) and math.isfinite(ref1)) or ref0 == ref1:
        raise ValueError(f"a normalised score needs two different finite references, got {ref0} and {ref1}")
    return (value - ref0) / abs(ref1 - ref0)


@dataclass(frozen=True, eq=False)
class UncertaintyResult(Result):
    """Mean returns over an uncertainty set's grid, for the policy and its references.

    Rows (:meth:`to_rows`): ``worst_case`` and ``average`` of the policy, and with two references
    ``normalised_worst_case`` and ``normalised_average``; the threat is ``uncertainty[SET]``.
    """

    kind: ClassVar[str] = "uncertainty"
    schema_version: ClassVar[int] = 1
    json_properties: ClassVar[tuple[str, ...]] = ("worst_case", "average", "worst_point")

    env_id: str
    """The environment."""
    policy: str
    """The policy file, or the policy's class name."""
    uncertainty_set: str
    """The set's name (``hopper-2d-v1``)."""
    set_version: int
    """The set's version."""
    params: tuple[GridAxis, ...]
    """The grid's axes, in the set's order."""
    episodes: int
    """Episodes per grid point."""
    seed: int
    """Seed (same seed ⇒ same result)."""
    returns: F64
    """``float64 [*shape, episodes]`` the policy's episode returns."""
    mean: F64
    """``float64 [*shape]`` the policy's mean return per grid point."""
    references: tuple[str, ...] = ()
    """The reference policies (none, or two: score 0 and score 1)."""
    reference_mean: F64 = field(default_factory=lambda: np.zeros((0,)))
    """``float64 [len(references), *shape]`` their mean returns per grid point (same seeds)."""
    config: dict[str, Any] = field(default_factory=dict)
    """The resolved evaluation config."""
    provenance: dict[str, Any] = field(default_factory=dict)
    """Versions, commit and time of the run."""

    @property
    def shape(self) -> tuple[int, ...]:
        """The grid's shape."""
        return tuple(len(a.values) for a in self.params)

    def __post_init__(self) -> None:
        if not 1 <= len(self.params) <= MAX_AXES:
            raise ValueError(f"an uncertainty grid has 1 to {MAX_AXES} parameters, got {len(self.params)}")
        if self.episodes < 1:
            raise ValueError(f"field 'episodes' must be >= 1, got {self.episodes}")
        if self.mean.shape != self.shape:
            raise ValueError(f"field 'mean' has shape {self.mean.shape}, expected {self.shape}")
        if self.returns.shape != (*self.shape, self.episodes):
            raise ValueError(f"field 'returns' has shape {self.returns.shape}, expected {(*self.shape, self.episodes)}")
        if len(self.references) not in (0, 2):
            raise ValueError(f"field 'references' holds none or two policies, got {len(self.references)}")
        want = (len(self.references), *self.shape) if self.references else (0,)
        if self.reference_mean.shape != want:
            raise ValueError(f"field 'reference_mean' has shape {self.reference_mean.shape}, expected {want}")

    @property
    def worst_case(self) -> float:
        """The least mean return over the grid."""
        return float(self.mean.min())

    @property
    def average(self) -> float:
        """The mean return averaged over the grid points."""
        return float(self.mean.mean())

    @property
    def worst_point(self) -> dict[str, float]:
        """The grid point of :attr:`worst_case` (the first in C order on ties)."""
        idx = np.unravel_index(int(np.argmin(self.mean)), self.shape)
        return {a.name: float(a.values[i]) for a, i in zip(self.params, idx)}

    def normalised(self, statistic: str = "worst_case") -> float | None:
        """The policy's ``worst_case`` or ``average`` on the references' scale (None without references)."""
        if not self.references:
            return None
        if statistic not in ("worst_case", "average"):
            raise ValueError(f"statistic must be 'worst_case' or 'average', got {statistic!r}")
        refs = [float(m.min() if statistic == "worst_case" else m.mean()) for m in self.reference_mean]
        return normalised_score(getattr(self, statistic), refs[0], refs[1])

    def to_rows(self) -> list[ResultRow]:
        """Worst case and average, and their normalised scores when there are references."""
        threat = f"uncertainty[{self.uncertainty_set}]"
        rows = [
            ResultRow(self.env_id, self.policy, threat, 0.0, self.seed, "worst_case", self.worst_case, None, None),
            ResultRow(self.env_id, self.policy, threat, 0.0, self.seed, "average", self.average, None, None),
        ]
        if self.references:
            for stat in ("worst_case", "average"):
                value = self.normalised(stat)
                assert value is not None
                rows.append(ResultRow(self.env_id, self.policy, threat, 0.0, self.seed, f"normalised_{stat}",
                                      value, None, None))
        return rows

    def __str__(self) -> str:
        point = ", ".join(f"{k}={v:g}" for k, v in self.worst_point.items())
        lines = [
            f"{self.env_id}  set={self.uncertainty_set} (v{self.set_version})  policy={self.policy}  "
            f"grid={'x'.join(map(str, self.shape))}  episodes/point={self.episodes}  seed={self.seed}",
            f"  worst case {self.worst_case:.2f} at {point}",
            f"  average    {self.average:.2f}",
        ]
        if self.references:
            lines.append(f"  normalised worst case {self.normalised('worst_case'):.3f}, average "
                         f"{self.normalised('average'):.3f} (0: {self.references[0]}, 1: {self.references[1]})")
        return "\n".join(lines)
