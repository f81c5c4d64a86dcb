"""``TrainResult``: what one online training run did, with its evaluation history.

Built by :func:`robustrl.agents.train` and saved as the run folder's ``result.json`` (``"kind": "train"``).
The trained policy and the resolved algorithm config travel with the in-memory result but are not written
(the policy is ``policy.zip``, the configs are in ``config``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

from robustrl.results.base import MaybeNaN, Result, ResultRow, same_encoding

__all__ = ["EvalRecord", "TrainPoint", "TrainResult"]


@dataclass(frozen=True, eq=False)
class EvalRecord:
    """One periodic evaluation."""

    __eq__ = same_encoding

    step: int
    """Environment transitions collected before it."""
    wall_time: float
    """Seconds since training started (evaluation time included)."""
    train_time: float
    """Seconds spent training so far (evaluation time excluded)."""
    mean_return: MaybeNaN
    """Mean undiscounted return over the evaluation episodes, clean observations."""
    std_return: MaybeNaN
    """Standard deviation of those returns."""
    mean_length: MaybeNaN
    """Mean episode length."""
    noisy_mean_return: MaybeNaN | None = None
    """Mean return with N(0, obs_noise²) observation noise (None when obs_noise = 0)."""


@dataclass(frozen=True, eq=False)
class TrainPoint:
    """The training episodes' returns at one point of a run (:class:`robustrl.envs.episode_stats.EpisodeStats`)."""

    __eq__ = same_encoding

    step: int
    """Environment transitions collected so far."""
    mean_return: float
    """Mean return of the last finished training episodes (up to 100; the env's reward, as the learner played)."""
    mean_length: float
    """Their mean length."""


@dataclass(frozen=True, eq=False)
class TrainResult(Result):
    """What :func:`robustrl.agents.train` returns (and writes as ``result.json``).

    Rows (:meth:`to_rows`), from the final evaluation, threat ``clean`` at budget 0, no CI:
    ``return_mean``, ``return_std``, ``length_mean`` and, when training added observation noise,
    ``noisy_return_mean`` (the mean return under that noise). ``policy`` is the algorithm's name.
    """

    kind: ClassVar[str] = "train"
    schema_version: ClassVar[int] = 1
    json_properties: ClassVar[tuple[str, ...]] = ("final_return",)

    env_id: str
    """The environment."""
    algo: str
    """The learning algorithm (``ppo``, ``dqn``, ``sac``...)."""
    seed: int
    """The run's seed."""
    steps: int
    """Environment transitions collected."""
    wall_time: float
    """Seconds the whole run took."""
    train_time: float
    """Seconds of training, evaluation excluded."""
    stopped_early: bool
    """True when ``stop_at_return`` was reached before ``total_steps``."""
    history: tuple[EvalRecord, ...] = ()
    """Evaluations in order."""
    train_curve: tuple[TrainPoint, ...] = ()
    """The training episodes' mean return over the run, at most ~200 points (empty in runs before it existed)."""
    config: dict[str, Any] = field(default_factory=dict)
    """The resolved configs of the run (training, algorithm, defense)."""
    provenance: dict[str, Any] = field(default_factory=dict)
    """Versions, commit and time of the run."""
    last_train_metrics: dict[str, Any] = field(default_factory=dict)
    """The learner's metrics of its last iteration (``train/...`` keys)."""
    run_dir: str | None = None
    """The run folder, when one was written."""
    run_id: str = ""
    """Random id shared by every file of the run folder (a folder mixing runs is detectable)."""
    policy: Any = field(default=None, compare=False, repr=False, metadata={"persist": False})
    """The trained policy (in memory only; the run folder's ``policy.zip`` holds it on disk)."""
    algo_config: Any = field(default=None, compare=False, repr=False, metadata={"persist": False})
    """The resolved algorithm config object (in memory only; ``config`` holds it as a dict)."""

    @property
    def final_return(self) -> float:
        """Mean return of the last evaluation (NaN if none ran)."""
        return self.history[-1].mean_return if self.history else math.nan

    def to_rows(self) -> list[ResultRow]:
        """The final evaluation's numbers (no rows when no evaluation ran)."""
        if not self.history:
            return []
        last = self.history[-1]
        metrics = [("return_mean", last.mean_return), ("return_std", last.std_return),
                   ("length_mean", last.mean_length)]  # fmt: skip
        if last.noisy_mean_return is not None:
            metrics.append(("noisy_return_mean", last.noisy_mean_return))
        return [ResultRow(self.env_id, self.algo, "clean", 0.0, self.seed, m, float(v), None, None) for m, v in metrics]

    def __str__(self) -> str:
        last = self.history[-1] if self.history else None
        parts = [f"trained {self.steps} steps in {self.wall_time:.1f}s"]
        if last is not None:
            parts.append(f"eval return {last.mean_return:.1f} ± {last.std_return:.1f}")
            if last.noisy_mean_return is not None:
                parts.append(f"noisy {last.noisy_mean_return:.1f}")
        text = ", ".join(parts)
        if self.stopped_early:
            text += " (target reached)"
        if self.run_dir is not None:
            text += f" → {self.run_dir}"
        return text
