"""Probability of improvement between two algorithms (Agarwal et al., NeurIPS 2021, §4.3).

``P(X > Y)`` is, per task, the probability that a run of algorithm X scores higher than a run of
algorithm Y, ties counting one half: the Mann–Whitney ``U`` statistic of X over Y divided by
``runs_x · runs_y``. The aggregate is its mean over tasks (rliable's ``metrics.probability_of_improvement``).
Its interval comes from a stratified bootstrap that resamples the runs of X and of Y independently
within each task (rliable's ``StratifiedIndependentBootstrap``).

The bootstrap never compares all pairs: with Y's runs sorted per task, the number of drawn Y runs below
(or tied with) each X score is a cumulative count of the Y draws, so one replicate costs
``O(runs_x + runs_y)`` per task instead of ``O(runs_x · runs_y)``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from robustrl.common.seeding import numpy_generator
from robustrl.stats.bootstrap import (
    Interval,
    Seed,
    check_confidence,
    check_reps,
    chunk_size,
    percentile_interval,
)
from robustrl.stats.metrics import as_score_matrix

__all__ = ["probability_of_improvement", "task_improvement_probabilities"]


def _pair(x: ArrayLike, y: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    xs, ys = as_score_matrix(x, "x"), as_score_matrix(y, "y")
    if xs.shape[1] != ys.shape[1]:
        raise ValueError(f"x and y must have the same tasks (columns): x has {xs.shape[1]}, y has {ys.shape[1]}")
    return xs, ys


def task_improvement_probabilities(x: ArrayLike, y: ArrayLike) -> NDArray[np.float64]:
    """``P(X_t > Y_t)`` for each task ``t``, ties counting ½ (Mann–Whitney ``U / (runs_x · runs_y)``).

    Args:
        x: ``[runs_x, tasks]`` scores of algorithm X.
        y: ``[runs_y, tasks]`` scores of algorithm Y (same tasks, any number of runs).

    Returns:
        ``[tasks]`` probabilities in ``[0, 1]``.

    Example:
        >>> task_improvement_probabilities([[1.0, 0.0], [3.0, 0.0]], [[2.0, 0.0]]).tolist()
        [0.5, 0.5]
    """
    xs, ys = _pair(x, y)
    below, upto = _ranks_in_y(xs, np.sort(ys, axis=0))
    u = below.sum(axis=1) + 0.5 * (upto - below).sum(axis=1)  # pairs x > y, plus ½ per tie
    return u / (xs.shape[0] * ys.shape[0])  # type: ignore[no-any-return]


def _ranks_in_y(x: NDArray[np.float64], ysorted: NDArray[np.float64]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Per task and x run: how many y runs are ``< x`` and ``<= x`` (``[tasks, runs_x]`` each)."""
    tasks = x.shape[1]
    below = np.empty((tasks, x.shape[0]), dtype=np.intp)
    upto = np.empty((tasks, x.shape[0]), dtype=np.intp)
    for t in range(tasks):
        below[t] = np.searchsorted(ysorted[:, t], x[:, t], side="left")
        upto[t] = np.searchsorted(ysorted[:, t], x[:, t], side="right")
    return below, upto


class _PoIKernel:
    """Average probability of improvement of stratified replicates, from drawn run indices."""

    def __init__(self, x: NDArray[np.float64], y: NDArray[np.float64]) -> None:
        self.nx, self.tasks = x.shape
        self.ny = y.shape[0]
        # Resampling is uniform over runs, so y's runs may be sorted per task first.
        below, upto = _ranks_in_y(x, np.sort(y, axis=0))
        # Flat positions in the cumulative-count array [reps, tasks, ny + 1] for replicate 0.
        base = (np.arange(self.tasks, dtype=np.intp) * (self.ny + 1))[:, None]
        self.below = (below + base).ravel()
        self.upto = (upto + base).ravel()
        self.x_offsets = (np.arange(self.tasks, dtype=np.intp) * self.nx)[:, None]
        self.y_offsets = (np.arange(self.tasks, dtype=np.intp) * self.ny)[:, None]

    def __call__(self, ux: NDArray[np.integer], uy: NDArray[np.integer]) -> NDArray[np.float64]:
        """Replicate values ``[c]`` for run draws of x and y.

        Args:
            ux: ``[c, tasks, nx]`` indices into x's runs.
            uy: ``[c, tasks, ny]`` indices into the *sorted* runs of y, per task.
        """
        c, tasks, nx, ny = len(ux), self.tasks, self.nx, self.ny
        # counts[r, t, j]: how often sorted y run j of task t was drawn in replicate r.
        ykeys = uy + self.y_offsets + (np.arange(c, dtype=np.intp) * (tasks * ny))[:, None, None]
        counts = np.bincount(ykeys.ravel(), minlength=c * tasks * ny).reshape(c, tasks, ny)
        cum = np.zeros((c, tasks, ny + 1))
        np.cumsum(counts, axis=-1, out=cum[:, :, 1:])
        # For each drawn x run: (#y draws below) + ½ (#y draws tied) = ½ (cum[below] + cum[upto]).
        xkeys = (ux + self.x_offsets).reshape(c, tasks * nx)
        rep_base = (np.arange(c, dtype=np.intp) * (tasks * (ny + 1)))[:, None]
        flat = cum.ravel()
        lt = np.take(flat, np.take(self.below, xkeys) + rep_base)
        le = np.take(flat, np.take(self.upto, xkeys) + rep_base)
        u = (lt + le).reshape(c, tasks, nx).sum(axis=-1) * 0.5
        return (u / (nx * ny)).mean(axis=-1)  # type: ignore[no-any-return]


def probability_of_improvement(
    x: ArrayLike,
    y: ArrayLike,
    *,
    reps: int = 50_000,
    confidence: float = 0.95,
    seed: Seed = 0,
) -> Interval:
    """Average probability that algorithm X beats algorithm Y on a task, with a bootstrap interval.

    Args:
        x: ``[runs_x, tasks]`` scores of X.
        y: ``[runs_y, tasks]`` scores of Y; same tasks in the same order, ``runs_y`` may differ.
        reps: bootstrap replicates.
        confidence: interval coverage.
        seed: seed or ``np.random.Generator``.

    Returns:
        ``Interval(point, low, high)``; the point equals rliable's ``metrics.probability_of_improvement``.
        0.5 means no difference; an interval above 0.5 means X is better.

    Example:
        >>> x = np.array([[1.0, 2.0], [1.5, 2.5], [1.2, 2.2]])
        >>> iv = probability_of_improvement(x, x - 1.0, reps=2000)
        >>> iv.point, iv.low
        (1.0, 1.0)
    """
    xs, ys = _pair(x, y)
    reps, confidence = check_reps(reps), check_confidence(confidence)
    point = float(np.mean(task_improvement_probabilities(xs, ys)))
    kernel = _PoIKernel(xs, ys)
    rng = numpy_generator(seed)
    nx, ny, tasks = xs.shape[0], ys.shape[0], xs.shape[1]
    dx = np.uint16 if nx <= 1 << 16 else np.int64
    dy = np.uint16 if ny <= 1 << 16 else np.int64
    cmax = chunk_size(tasks * (nx + ny), reps)
    values = np.empty(reps)
    for start in range(0, reps, cmax):
        c = min(cmax, reps - start)
        ux = rng.integers(0, nx, size=(c, tasks, nx), dtype=dx)
        uy = rng.integers(0, ny, size=(c, tasks, ny), dtype=dy)
        values[start : start + c] = kernel(ux, uy)
    low, high = percentile_interval(values, confidence)
    return Interval(point, float(low), float(high))
