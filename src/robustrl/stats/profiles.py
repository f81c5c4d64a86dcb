"""Performance profiles with bootstrap bands (Agarwal et al., NeurIPS 2021, §4.2).

A performance profile plots, for each threshold ``τ``, the fraction of scores above ``τ``:

* ``kind="run"`` (the paper's *score distribution*, rliable's default): the fraction of all
  run × task scores strictly above ``τ``;
* ``kind="task_mean"`` (*average-score distribution*): the fraction of tasks whose mean score over runs
  is strictly above ``τ``.

Bands are pointwise percentile intervals of a stratified bootstrap over runs within tasks (the same
resampling as :func:`robustrl.stats.aggregate`). For ``kind="run"`` each drawn score is mapped once to
the number of thresholds below it, so a replicate costs one histogram, not one pass per threshold.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from robustrl.common.seeding import numpy_generator
from robustrl.stats.bootstrap import (
    Seed,
    Strata,
    check_confidence,
    check_reps,
    chunk_size,
    percentile_interval,
)
from robustrl.stats.metrics import as_score_matrix

__all__ = ["Profile", "ProfileKind", "performance_profile", "score_distribution"]

ProfileKind = Literal["run", "task_mean"]
"""Which fraction a profile counts: of run × task scores, or of per-task mean scores."""


class Profile(NamedTuple):
    """A performance profile and its pointwise confidence band, all ``[len(taus)]``."""

    taus: NDArray[np.float64]
    """Thresholds, in the order given."""
    point: NDArray[np.float64]
    """Fraction of scores (or task means) strictly above each threshold."""
    low: NDArray[np.float64]
    """Lower end of the pointwise percentile interval."""
    high: NDArray[np.float64]
    """Upper end of the pointwise percentile interval."""


def _as_taus(taus: ArrayLike) -> NDArray[np.float64]:
    try:
        t = np.asarray(taus, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"taus must be a numeric 1-D array: {err}") from err
    if t.ndim == 0:
        t = t[None]
    if t.ndim != 1 or t.size < 1:
        raise ValueError(f"taus must be a non-empty 1-D array of thresholds, got shape {t.shape}")
    if not np.isfinite(t).all():
        raise ValueError("taus must be finite")
    return t


def _check_kind(kind: str) -> ProfileKind:
    if kind not in ("run", "task_mean"):
        raise ValueError(f"kind must be 'run' or 'task_mean', got {kind!r}")
    return kind  # type: ignore[return-value]


def score_distribution(scores: ArrayLike, taus: ArrayLike, kind: ProfileKind = "run") -> NDArray[np.float64]:
    """The point estimate of a performance profile.

    Equals rliable's ``score_distributions`` (``kind="run"``) and ``average_score_distributions``
    (``kind="task_mean"``).

    Args:
        scores: ``[runs, tasks]``.
        taus: ``[K]`` thresholds.
        kind: ``"run"`` for run × task scores, ``"task_mean"`` for per-task means.

    Returns:
        ``[K]`` fractions strictly above each threshold.

    Example:
        >>> score_distribution([[0.0, 1.0], [2.0, 3.0]], [0.5, 2.0]).tolist()
        [0.75, 0.25]
    """
    s = as_score_matrix(scores)
    t = _as_taus(taus)
    values = s.ravel() if _check_kind(kind) == "run" else np.mean(s, axis=0)
    above = (values[:, None] > t[None, :]).sum(axis=0)
    return above / values.size  # type: ignore[no-any-return]


def _run_kernel(strata: Strata, taus: NDArray[np.float64]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """``(bucket of each flat score = #sorted taus strictly below it, position of each tau when sorted)``."""
    order = np.argsort(taus, kind="stable")
    bucket = np.searchsorted(taus[order], strata.flat, side="left").astype(np.intp)
    where = np.empty(taus.size, dtype=np.intp)
    where[order] = np.arange(taus.size)
    return bucket, where


def performance_profile(
    scores: ArrayLike,
    taus: ArrayLike,
    *,
    kind: ProfileKind = "run",
    reps: int = 2000,
    confidence: float = 0.95,
    seed: Seed = 0,
) -> Profile:
    """A performance profile with stratified-bootstrap pointwise bands.

    Args:
        scores: ``[runs, tasks]`` normalised scores.
        taus: ``[K]`` thresholds, any order (kept in the result).
        kind: ``"run"`` (fraction of run × task scores > τ, default) or ``"task_mean"`` (fraction of
            per-task mean scores > τ).
        reps: bootstrap replicates (rliable's default for profiles is 2000).
        confidence: band coverage, pointwise per threshold.
        seed: seed or ``np.random.Generator``.

    Returns:
        ``Profile(taus, point, low, high)``; ``point`` equals rliable's profile.

    Example:
        >>> prof = performance_profile([[0.0, 1.0], [2.0, 3.0]], [0.5, 2.0], reps=500)
        >>> prof.point.tolist(), bool((prof.low <= prof.point).all())
        ([0.75, 0.25], True)
    """
    s = as_score_matrix(scores)
    t = _as_taus(taus)
    kind = _check_kind(kind)
    reps, confidence = check_reps(reps), check_confidence(confidence)
    point = score_distribution(s, t, kind)
    strata = Strata(s)
    k = t.size
    rng = numpy_generator(seed)
    if kind == "run":
        cmax = chunk_size(strata.size, reps)
        bucket, where = _run_kernel(strata, t)
    else:
        # the [chunk, tasks, K] comparison also has to stay small
        cmax = min(chunk_size(strata.size, reps), chunk_size(strata.tasks * k, reps))
    keys_buf = np.empty((cmax, strata.tasks, strata.runs), dtype=np.intp)
    values = np.empty((reps, k))
    for start in range(0, reps, cmax):
        c = min(cmax, reps - start)
        keys = strata.draw(rng, c, keys_buf)
        if kind == "run":
            codes = np.take(bucket, keys.reshape(c, strata.size)) + (np.arange(c, dtype=np.intp) * (k + 1))[:, None]
            hist = np.bincount(codes.ravel(), minlength=c * (k + 1)).reshape(c, k + 1)
            # scores above sorted tau j are those with bucket > j: a suffix sum of the histogram
            above = np.cumsum(hist[:, :0:-1], axis=1)[:, ::-1]
            values[start : start + c] = above[:, where] / strata.size
        else:
            means = np.take(strata.flat, keys).mean(axis=-1)
            values[start : start + c] = (means[:, :, None] > t[None, None, :]).mean(axis=1)
    low, high = percentile_interval(values, confidence)
    return Profile(t, point, low, high)
