"""Point metrics over a ``[runs × tasks]`` score matrix (Agarwal et al., NeurIPS 2021).

"Deep Reinforcement Learning at the Edge of the Statistical Precipice" recommends aggregating the
normalised scores of ``runs`` independent runs on each of ``tasks`` tasks with the interquartile mean
(IQM), and reporting the median, the mean and the optimality gap beside it. Every function here:

* takes ``scores`` with shape ``[..., runs, tasks]``: the leading axes are a batch (the bootstrap calls
  them on ``[reps, runs, tasks]`` at once) and are kept in the result;
* returns exactly what rliable's ``metrics.aggregate_*`` returns on a 2-D matrix (same operations in
  the same order, so the floats are identical, not merely close).

Validation lives in :func:`as_score_matrix`; the metric functions themselves do not validate, so they
stay cheap inside the bootstrap.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, get_args

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "METRICS",
    "Metric",
    "MetricFn",
    "as_score_matrix",
    "iqm",
    "mean",
    "median",
    "metric_function",
    "optimality_gap",
]

Metric = Literal["iqm", "median", "mean", "optimality_gap"]
"""The names of the built-in aggregate metrics."""

METRICS: tuple[Metric, ...] = get_args(Metric)
"""All built-in metric names, in the order rliable's examples report them."""

MetricFn = Callable[[NDArray[np.float64]], "NDArray[np.float64] | np.floating | float"]
"""A vectorised metric: ``f(scores[..., runs, tasks]) -> value[...]``."""


def as_score_matrix(scores: ArrayLike, name: str = "scores") -> NDArray[np.float64]:
    """Validate and convert a score matrix.

    Args:
        scores: ``[runs, tasks]`` scores (normalised returns): 2-D, finite, at least one run and one task.
        name: what to call the argument in error messages.

    Returns:
        The scores as a float64 array (a view when ``scores`` already is one).

    Raises:
        ValueError: naming ``name`` when the input is not numeric, not 2-D, empty or not finite.
    """
    try:
        arr = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a numeric [runs × tasks] array: {err}") from err
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D [runs × tasks] array, got shape {arr.shape}")
    if arr.shape[0] < 1:
        raise ValueError(f"{name} needs at least 1 run (row), got shape {arr.shape}")
    if arr.shape[1] < 1:
        raise ValueError(f"{name} needs at least 1 task (column), got shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        run, task = np.argwhere(bad)[0]
        raise ValueError(f"{name} must be finite: {int(bad.sum())} NaN/inf value(s), first at run {run}, task {task}")
    return arr


def _flat(scores: NDArray[np.float64]) -> NDArray[np.float64]:
    """``[..., runs, tasks] -> [..., runs·tasks]`` (row-major, as ``ravel`` of each matrix)."""
    return scores.reshape(*scores.shape[:-2], scores.shape[-2] * scores.shape[-1])


def iqm_cuts(size: int) -> tuple[int, int]:
    """The kept slice ``[lo, hi)`` of ``size`` sorted values in the 25 % trimmed mean (as SciPy's)."""
    lo = int(0.25 * size)
    return lo, size - lo


def iqm(scores: NDArray[np.float64]) -> NDArray[np.float64]:
    """Interquartile mean: the 25 % trimmed mean of all run × task scores.

    Sorts the ``N = runs·tasks`` scores, drops the ``⌊N/4⌋`` lowest and the ``⌊N/4⌋`` highest and
    averages the rest: exactly ``scipy.stats.trim_mean(scores, 0.25, axis=None)`` (rliable's
    ``metrics.aggregate_iqm``), computed the same way (``np.partition`` then ``np.mean``).

    Args:
        scores: ``[..., runs, tasks]``.

    Returns:
        ``[...]`` the IQM of each matrix.

    Example:
        >>> float(iqm(np.array([[1.0, 2.0], [3.0, 100.0]])))
        2.5
    """
    flat = _flat(np.asarray(scores, dtype=np.float64))
    lo, hi = iqm_cuts(flat.shape[-1])
    part = np.partition(flat, (lo, hi - 1), axis=-1)
    return np.mean(part[..., lo:hi], axis=-1)  # type: ignore[no-any-return]


def mean(scores: NDArray[np.float64]) -> NDArray[np.float64]:
    """Mean over tasks of the per-task mean over runs (rliable's ``metrics.aggregate_mean``).

    Args:
        scores: ``[..., runs, tasks]``.

    Returns:
        ``[...]``.

    Example:
        >>> float(mean(np.array([[0.0, 1.0], [2.0, 5.0]])))
        2.0
    """
    scores = np.asarray(scores, dtype=np.float64)
    return np.mean(np.mean(scores, axis=-2), axis=-1)  # type: ignore[no-any-return]


def median(scores: NDArray[np.float64]) -> NDArray[np.float64]:
    """Median over tasks of the per-task mean over runs (rliable's ``metrics.aggregate_median``).

    This is the paper's "median": of the task means, not of all run × task scores. With an even number
    of tasks it is the average of the two middle task means.

    Args:
        scores: ``[..., runs, tasks]``.

    Returns:
        ``[...]``.

    Example:
        >>> float(median(np.array([[0.0, 1.0, 9.0], [2.0, 3.0, 9.0]])))
        2.0
    """
    scores = np.asarray(scores, dtype=np.float64)
    return np.median(np.mean(scores, axis=-2), axis=-1)  # type: ignore[no-any-return]


def optimality_gap(scores: NDArray[np.float64], gamma: float = 1.0) -> NDArray[np.float64]:
    """How far the scores fall short of ``gamma``: ``gamma − mean(min(scores, gamma))``.

    Scores above ``gamma`` count as ``gamma`` (being better than the target earns nothing); lower is
    better. Matches rliable's ``metrics.aggregate_optimality_gap``.

    Args:
        scores: ``[..., runs, tasks]``.
        gamma: the target score (1.0 = the normalisation reference, e.g. human level).

    Returns:
        ``[...]``.

    Example:
        >>> float(optimality_gap(np.array([[0.5, 2.0], [1.0, 0.0]])))
        0.375
    """
    flat = _flat(np.asarray(scores, dtype=np.float64))
    return gamma - np.mean(np.minimum(flat, gamma), axis=-1)  # type: ignore[no-any-return]


def metric_function(metric: Metric | MetricFn, *, gamma: float | None = None) -> MetricFn:
    """The vectorised point function for a metric name, or a callable passed through.

    Args:
        metric: a name from :data:`METRICS` or a vectorised callable.
        gamma: the optimality-gap threshold; only allowed with ``metric="optimality_gap"``.

    Raises:
        ValueError: for an unknown name, or ``gamma`` with another metric.
    """
    if callable(metric):
        if gamma is not None:
            raise ValueError("gamma applies only to metric='optimality_gap', not to a callable metric")
        return metric
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {list(METRICS)} or a callable, got {metric!r}")
    if gamma is not None and metric != "optimality_gap":
        raise ValueError(f"gamma applies only to metric='optimality_gap', not to {metric!r}")
    if metric == "optimality_gap":
        g = 1.0 if gamma is None else float(gamma)
        if not np.isfinite(g):
            raise ValueError(f"gamma must be finite, got {gamma!r}")

        def gap(scores: NDArray[np.float64]) -> NDArray[np.float64]:
            return optimality_gap(scores, g)

        gap.__name__ = "optimality_gap"
        return gap
    return {"iqm": iqm, "mean": mean, "median": median}[metric]
