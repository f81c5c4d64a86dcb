"""Results of offline RL: ``OfflineTrainResult`` (one ``train-offline`` run) and ``DatasetSummary`` (``dataset``).

``OfflineTrainResult`` is the run folder's ``result.json`` (``"kind": "offline_train"``); its rows carry the
dataset's corruption as the threat (``clean``, or ``random:obs``, ``adversarial:rewards``… with the scale ε as
the budget), so a study table of learners × corruptions comes straight from a results database.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from robustrl.results.base import MaybeNaN, Result, ResultRow, same_encoding

__all__ = ["DatasetSummary", "OfflineEvalRecord", "OfflineTrainResult"]


@dataclass(frozen=True, eq=False)
class OfflineEvalRecord:
    """One periodic evaluation of an offline learner in the real env."""

    __eq__ = same_encoding

    step: int
    """Gradient updates done before it."""
    wall_time: float
    """Seconds since training started (evaluation included)."""
    mean_return: MaybeNaN
    """Mean undiscounted return of the deterministic policy."""
    std_return: MaybeNaN
    """Standard deviation of those returns."""
    normalized_score: MaybeNaN | None = None
    """``100·(R − R_random)/(R_expert − R_random)`` from the dataset's reference returns (None: it has none)."""
    phase: Literal["offline", "online"] = "offline"
    """Training phase it ends: offline (the dataset only) or online (fine-tuning with env interaction)."""
    env_steps: int = 0
    """Online env transitions collected before it (0 in the offline phase)."""


@dataclass(frozen=True, eq=False)
class OfflineTrainResult(Result):
    """What :func:`robustrl.offline.train_offline` returns (and writes as ``result.json``).

    Rows (:meth:`to_rows`) from the last evaluation: ``return_mean``, ``return_std`` and, where the dataset has
    reference returns, ``normalized_score``; ``policy`` is the algorithm, ``threat`` the dataset's corruption.
    """

    kind: ClassVar[str] = "offline_train"
    schema_version: ClassVar[int] = 1
    json_properties: ClassVar[tuple[str, ...]] = ("final_return", "final_score", "offline_return", "offline_score")

    env_id: str
    """The environment the policy was evaluated in."""
    algo: str
    """The offline learner (bc, iql, riql, cql, td3bc)."""
    dataset: str
    """The dataset (Minari id or file)."""
    corruption: str
    """``clean`` or ``MODE:ELEMENT`` of the dataset's corruption (e.g. ``random:obs``)."""
    corruption_scale: float
    """ε of the corruption (0 when clean)."""
    seed: int
    """The run's seed."""
    updates: int
    """Gradient updates done (both phases)."""
    wall_time: float
    """Seconds the whole run took."""
    train_time: float
    """Seconds of training, evaluation excluded."""
    history: tuple[OfflineEvalRecord, ...] = ()
    """Evaluations in order (the offline phase's, then the online phase's)."""
    online_steps: int = 0
    """Env transitions collected in the online fine-tuning phase (0: offline only)."""
    config: dict[str, Any] = field(default_factory=dict)
    """The resolved configs of the run (job, learner, dataset metadata)."""
    provenance: dict[str, Any] = field(default_factory=dict)
    """Versions, commit and time of the run."""
    last_train_metrics: dict[str, Any] = field(default_factory=dict)
    """The learner's metrics of its last update (``train/...`` keys)."""
    run_dir: str | None = None
    """The run folder, when one was written."""
    run_id: str = ""
    """Random id shared by every file of the run folder."""
    policy: Any = field(default=None, compare=False, repr=False, metadata={"persist": False})
    """The trained policy (in memory only; ``policy.zip`` on disk)."""

    @property
    def final_return(self) -> float:
        """Mean return of the last evaluation (NaN if none ran)."""
        return self.history[-1].mean_return if self.history else math.nan

    @property
    def final_score(self) -> float:
        """Normalised score of the last evaluation (NaN if none ran or no reference returns)."""
        if not self.history or self.history[-1].normalized_score is None:
            return math.nan
        return float(self.history[-1].normalized_score)

    @property
    def offline_return(self) -> float:
        """Mean return of the last offline-phase evaluation: the policy before fine-tuning (NaN if none ran)."""
        offline = [r for r in self.history if r.phase == "offline"]
        return offline[-1].mean_return if offline else math.nan

    @property
    def offline_score(self) -> float:
        """Normalised score of the last offline-phase evaluation (NaN if none or no reference returns)."""
        offline = [r for r in self.history if r.phase == "offline"]
        if not offline or offline[-1].normalized_score is None:
            return math.nan
        return float(offline[-1].normalized_score)

    def to_rows(self) -> list[ResultRow]:
        """The last evaluation's numbers (no rows when no evaluation ran)."""
        if not self.history:
            return []
        last = self.history[-1]
        metrics = [("return_mean", last.mean_return), ("return_std", last.std_return)]
        if last.normalized_score is not None:
            metrics.append(("normalized_score", last.normalized_score))
        return [ResultRow(self.env_id, self.algo, self.corruption, self.corruption_scale, self.seed, m, float(v),
                          None, None) for m, v in metrics]  # fmt: skip

    def __str__(self) -> str:
        parts = [f"{self.algo} on {self.dataset}: {self.updates} updates in {self.wall_time:.1f}s"]
        if self.online_steps:
            parts.append(f"{self.online_steps} online steps (return before fine-tuning {self.offline_return:.1f})")
        if self.history:
            last = self.history[-1]
            parts.append(f"eval return {last.mean_return:.1f} ± {last.std_return:.1f}")
            if last.normalized_score is not None:
                parts.append(f"normalised score {last.normalized_score:.1f}")
        text = ", ".join(parts)
        return text + (f" → {self.run_dir}" if self.run_dir else "")


@dataclass(frozen=True, eq=False)
class DatasetSummary(Result):
    """What ``robustrl dataset`` did or found: size, returns, and the measures TQ and SACo."""

    kind: ClassVar[str] = "dataset_summary"
    schema_version: ClassVar[int] = 1

    dataset: str
    """The dataset (Minari id or file)."""
    env_id: str
    """Its environment."""
    transitions: int
    """Transitions ``N``."""
    episodes: int
    """Episodes ``E``."""
    return_mean: MaybeNaN
    """Mean episode return (of the stored, possibly corrupted, rewards)."""
    return_std: MaybeNaN
    """Standard deviation of the episode returns."""
    return_min: MaybeNaN
    """Lowest episode return."""
    return_max: MaybeNaN
    """Highest episode return."""
    terminations: int
    """Transitions that end in a terminal state."""
    truncations: int
    """Transitions cut by a time limit."""
    ref_min_score: MaybeNaN | None = None
    """Random policy's return (score 0), when stored."""
    ref_max_score: MaybeNaN | None = None
    """Expert policy's return (score 100), when stored."""
    tq: MaybeNaN | None = None
    """Trajectory quality (None without reference returns)."""
    saco: MaybeNaN | None = None
    """State-action coverage relative to the reference dataset (None without one)."""
    corrupted_fraction: tuple[float, ...] = ()
    """Fraction of transitions corrupted per element (obs, actions, rewards, next_obs); empty when clean."""
    written: str | None = None
    """Where a new dataset was written (collect, corrupt)."""
    meta: dict[str, Any] = field(default_factory=dict)
    """robustrl's metadata of the dataset (recipe, corruption config)."""

    def to_rows(self) -> list[ResultRow]:
        """``tq``, ``saco``, ``return_mean`` and ``transitions`` (where defined)."""
        rows = [("return_mean", self.return_mean), ("transitions", float(self.transitions))]
        rows += [(m, v) for m, v in (("tq", self.tq), ("saco", self.saco)) if v is not None]
        return [ResultRow(self.env_id, self.dataset, "clean", 0.0, None, m, float(v), None, None) for m, v in rows]

    def __str__(self) -> str:
        lines = [
            f"dataset {self.dataset} ({self.env_id}): {self.transitions} transitions, {self.episodes} episodes "
            f"({self.terminations} terminated, {self.truncations} truncated)",
            f"  return {self.return_mean:.2f} ± {self.return_std:.2f} (min {self.return_min:.2f}, "
            f"max {self.return_max:.2f})",
        ]
        if self.ref_min_score is not None and self.ref_max_score is not None:
            lines.append(f"  reference returns: random {self.ref_min_score:.2f}, expert {self.ref_max_score:.2f}")
        if self.tq is not None:
            lines.append(f"  TQ {self.tq:.3f}")
        if self.saco is not None:
            lines.append(f"  SACo {self.saco:.3f}")
        if self.corrupted_fraction:
            fr = ", ".join(f"{k} {v:.3f}" for k, v in zip(("obs", "actions", "rewards", "next_obs"),
                                                            self.corrupted_fraction, strict=True))  # fmt: skip
            lines.append(f"  corrupted: {fr}")
        if self.written:
            lines.append(f"  written to {self.written}")
        return "\n".join(lines)
