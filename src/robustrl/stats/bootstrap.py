"""Stratified-bootstrap confidence intervals for aggregate metrics (Agarwal et al., NeurIPS 2021).

The bootstrap of "Deep RL at the Edge of the Statistical Precipice" (rliable's ``StratifiedBootstrap``)
resamples the runs of each task independently: a replicate of a ``[runs, tasks]`` matrix draws, for every
task, ``runs`` run indices uniformly with replacement. The metric of each replicate forms the bootstrap
distribution; the interval is its percentile interval (``np.percentile``, linear interpolation, as
``arch``'s ``conf_int(method="percentile")`` that rliable calls).

How it is fast (see docs/stats.md for numbers):

* all replicates of a chunk are drawn at once from one ``np.random.Generator`` as a
  ``[chunk, tasks, runs]`` index array (``uint16`` when it fits), turned into flat indices into the
  transposed matrix with one broadcast add; chunks hold about 2¹⁶ drawn scores, so the working set stays
  in cache and memory does not grow with ``reps``;
* every built-in metric has a kernel that reads only what it needs: the IQM gathers the global *rank*
  of each drawn score (``uint16``), sorts the ranks of each replicate with NumPy's radix sort and sums
  the middle half of the sorted values; mean and optimality gap are a gather and a sum;
* all metrics of :func:`aggregate_all` share the same draws, so each interval equals the one
  :func:`aggregate` gives for that metric alone with the same seed.

Same seed, same inputs ⇒ the same interval, bit for bit. The chunk size depends only on the matrix
shape, never on the machine.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from robustrl.common.seeding import numpy_generator
from robustrl.stats.metrics import (
    METRICS,
    Metric,
    MetricFn,
    as_score_matrix,
    iqm_cuts,
    metric_function,
)

__all__ = [
    "Interval",
    "Seed",
    "Statistic",
    "aggregate",
    "aggregate_all",
    "bootstrap_ci",
    "bootstrap_replicates",
    "percentile_interval",
]

Seed = int | np.random.Generator | None
"""An integer seed, a generator used as is (its state advances), or None for fresh entropy."""

Statistic = Literal["mean", "median", "iqm"]
"""Statistics of a plain 1-D sample for :func:`bootstrap_ci`."""

Kernel = Callable[[NDArray[np.intp]], NDArray[np.float64]]
"""Maps flat indices of drawn scores ``[chunk, tasks, runs]`` to one metric value per replicate ``[chunk]``."""

CHUNK_ELEMENTS = 1 << 16
"""Drawn scores per chunk of replicates: small enough for the L2 cache, large enough to amortise Python."""

_RANK_LIMIT = 1 << 16
"""Matrices with at most this many scores use ``uint16`` ranks (NumPy radix-sorts 16-bit integers)."""


class Interval(NamedTuple):
    """A point estimate with its confidence interval."""

    point: float
    """The metric on the observed data."""
    low: float
    """Lower end of the percentile bootstrap interval."""
    high: float
    """Upper end of the percentile bootstrap interval."""

    @property
    def width(self) -> float:
        """``high − low``."""
        return self.high - self.low


def check_reps(reps: int) -> int:
    """Validate a number of bootstrap replicates (a positive integer)."""
    if isinstance(reps, bool) or not isinstance(reps, int | np.integer) or reps < 1:
        raise ValueError(f"reps must be a positive integer, got {reps!r}")
    return int(reps)


def check_confidence(confidence: float) -> float:
    """Validate a confidence level, strictly between 0 and 1."""
    c = float(confidence)
    if not 0.0 < c < 1.0:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence!r}")
    return c


def percentile_interval(
    replicates: ArrayLike, confidence: float = 0.95
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Percentile interval of bootstrap replicates along axis 0.

    Args:
        replicates: ``[reps, ...]`` bootstrap values.
        confidence: the coverage, e.g. 0.95 for the 2.5 % and 97.5 % percentiles.

    Returns:
        ``(low, high)``, each shaped like ``replicates[0]``.
    """
    alpha = (1.0 - check_confidence(confidence)) / 2.0
    low, high = np.percentile(np.asarray(replicates, dtype=np.float64), [100 * alpha, 100 * (1 - alpha)], axis=0)
    return low, high


def chunk_size(elements: int, reps: int) -> int:
    """Replicates per chunk for ``elements`` drawn scores per replicate (depends on the shape only)."""
    return max(1, min(reps, CHUNK_ELEMENTS // max(1, elements)))


class Strata:
    """A ``[runs, tasks]`` matrix laid out for resampling runs within each task.

    The scores are stored task-major (``flat[t·runs + j] = scores[j, t]``) so a draw of run ``j`` for
    task ``t`` is the flat index ``t·runs + j``.
    """

    def __init__(self, scores: NDArray[np.float64]) -> None:
        self.runs, self.tasks = scores.shape
        self.size = self.runs * self.tasks
        self.flat: NDArray[np.float64] = np.ascontiguousarray(scores.T).ravel()
        # uint16 draws are about twice as cheap as int64 ones; when every flat index fits in 16 bits the
        # offsets are added in uint16 too and the result is cast once (a mixed-type add is much slower).
        self._dtype = np.uint16 if self.runs <= _RANK_LIMIT else np.int64
        self._small = self.size <= _RANK_LIMIT
        offsets = np.arange(self.tasks, dtype=np.intp) * self.runs
        self.offsets = (offsets.astype(np.uint16) if self._small else offsets)[:, None]

    def draw(self, rng: np.random.Generator, count: int, out: NDArray[np.intp]) -> NDArray[np.intp]:
        """Draw ``count`` replicates: flat indices ``[count, tasks, runs]`` written into ``out[:count]``.

        The draws are ``rng.integers(0, runs, size=(count, tasks, runs))`` (``uint16`` when
        ``runs ≤ 2¹⁶``): run ``j`` of task ``t`` in replicate ``r`` is ``u[r, t, j]``.
        """
        u = rng.integers(0, self.runs, size=(count, self.tasks, self.runs), dtype=self._dtype)
        if self._small:
            np.add(u, self.offsets, out=u)
            np.copyto(out[:count], u)
            return out[:count]
        return np.add(u, self.offsets, out=out[:count])

    def resample(self, keys: NDArray[np.intp]) -> NDArray[np.float64]:
        """The drawn matrices ``[count, runs, tasks]`` for flat indices ``keys [count, tasks, runs]``."""
        return np.take(self.flat, keys).transpose(0, 2, 1)

    def ranks(self) -> tuple[NDArray[np.uint16], NDArray[np.float64]]:
        """``(rank of each flat score [size] as uint16, scores sorted ascending [size])``."""
        order = np.argsort(self.flat, kind="stable")
        rank = np.empty(self.size, dtype=np.uint16)
        rank[order] = np.arange(self.size, dtype=np.uint16)
        return rank, self.flat[order]


class _TaskSums:
    """Per-task sums ``[chunk, tasks]`` of a table over the drawn scores, computed once per chunk.

    The mean and the median of :func:`aggregate_all` share one instance, so the scores are gathered once.
    """

    def __init__(self, table: NDArray[np.float64], cmax: int, tasks: int, runs: int) -> None:
        self.table = table
        self.buf = np.empty((cmax, tasks, runs))
        self._keys: NDArray[np.intp] | None = None
        self._sums = np.empty((0, tasks))

    def __call__(self, keys: NDArray[np.intp]) -> NDArray[np.float64]:
        if keys is not self._keys:  # a new chunk (each chunk's keys is a new array object)
            vals = np.take(self.table, keys, out=self.buf[: len(keys)], mode="clip")  # clip: not buffered
            self._sums = vals.sum(axis=-1)
            self._keys = keys
        return self._sums


def _trimmed_kernel(strata: Strata, cmax: int, lo: int, hi: int) -> Kernel:
    """Mean of the sorted drawn scores at positions ``[lo, hi)`` of each replicate.

    With ``lo, hi = iqm_cuts(size)`` this is the IQM; with ``lo = (size − 1) // 2, hi = size // 2 + 1``
    and one task, the sample median. Small matrices sort ``uint16`` ranks (radix sort) and gather the
    kept values; large ones partition the drawn values.
    """
    size = strata.size
    if size <= _RANK_LIMIT:
        rank, ordered = strata.ranks()
        rbuf = np.empty((cmax, size), dtype=np.uint16)
        mbuf = np.empty((cmax, hi - lo))

        def kernel(keys: NDArray[np.intp]) -> NDArray[np.float64]:
            c = len(keys)
            r = np.take(rank, keys.reshape(c, size), out=rbuf[:c], mode="clip")
            r.sort(axis=-1, kind="stable")  # radix sort for 16-bit integers
            kept = np.take(ordered, r[:, lo:hi], out=mbuf[:c], mode="clip")
            return kept.sum(axis=-1) / (hi - lo)  # type: ignore[no-any-return]

        return kernel

    def big_kernel(keys: NDArray[np.intp]) -> NDArray[np.float64]:
        vals = np.take(strata.flat, keys.reshape(len(keys), size))
        part = np.partition(vals, (lo, hi - 1), axis=-1)
        return part[:, lo:hi].mean(axis=-1)  # type: ignore[no-any-return]

    return big_kernel


def _callable_kernel(fn: MetricFn, strata: Strata, name: str) -> Kernel:
    def kernel(keys: NDArray[np.intp]) -> NDArray[np.float64]:
        out = np.asarray(fn(strata.resample(keys)), dtype=np.float64)
        if out.shape != (len(keys),):
            raise ValueError(
                f"metric {name!r} must be vectorised: given scores [reps, runs, tasks] it must return [reps] "
                f"values, got shape {out.shape} for input {(len(keys), strata.runs, strata.tasks)}"
            )
        return out

    return kernel


def _metric_kernel(
    metric: Metric | MetricFn, strata: Strata, cmax: int, gamma: float, name: str, sums: _TaskSums | None = None
) -> Kernel:
    """The fastest kernel for a metric (all give the same values as the metric on the resampled matrices).

    ``sums``: per-task sums of the scores shared between kernels (made here when None).
    """
    size, runs, tasks = strata.size, strata.runs, strata.tasks
    if callable(metric):
        return _callable_kernel(metric, strata, name)
    if metric == "iqm":
        return _trimmed_kernel(strata, cmax, *iqm_cuts(size))
    if metric == "optimality_gap":
        clipped = _TaskSums(np.minimum(strata.flat, gamma), cmax, tasks, runs)
        return lambda keys: gamma - clipped(keys).sum(axis=-1) / size
    shared = sums if sums is not None else _TaskSums(strata.flat, cmax, tasks, runs)
    if metric == "mean":
        return lambda keys: shared(keys).sum(axis=-1) / size
    if metric == "median":
        return lambda keys: np.median(shared(keys) / runs, axis=-1)
    raise ValueError(f"metric must be one of {list(METRICS)} or a callable, got {metric!r}")


def _run_bootstrap(strata: Strata, kernels: Sequence[Kernel], reps: int, seed: Seed) -> list[NDArray[np.float64]]:
    """Draw ``reps`` stratified replicates chunk by chunk and apply every kernel to the same draws."""
    rng = numpy_generator(seed)
    cmax = chunk_size(strata.size, reps)
    keys_buf = np.empty((cmax, strata.tasks, strata.runs), dtype=np.intp)
    outs = [np.empty(reps) for _ in kernels]
    for start in range(0, reps, cmax):
        count = min(cmax, reps - start)
        keys = strata.draw(rng, count, keys_buf)
        for out, kernel in zip(outs, kernels):
            out[start : start + count] = kernel(keys)
    return outs


def _named_metrics(
    metrics: Sequence[Metric | MetricFn] | Mapping[str, Metric | MetricFn],
) -> dict[str, Metric | MetricFn]:
    if isinstance(metrics, Mapping):
        named = dict(metrics)
    else:
        if isinstance(metrics, str):
            raise ValueError(f"metrics must be a sequence of metric names, got the string {metrics!r}")
        named = {}
        for i, m in enumerate(metrics):
            key = m if isinstance(m, str) else getattr(m, "__name__", f"metric_{i}")
            if key in named:
                raise ValueError(f"metrics lists {key!r} twice; pass a mapping {{name: metric}} to name them")
            named[key] = m
    if not named:
        raise ValueError("metrics must name at least one metric")
    return named


def _point(fn: MetricFn, scores: NDArray[np.float64], name: str) -> float:
    value = np.asarray(fn(scores), dtype=np.float64)
    if value.shape != ():
        raise ValueError(f"metric {name!r} must return a scalar for a [runs, tasks] matrix, got shape {value.shape}")
    return float(value)


def aggregate_all(
    scores: ArrayLike,
    metrics: Sequence[Metric | MetricFn] | Mapping[str, Metric | MetricFn] = METRICS,
    *,
    reps: int = 50_000,
    confidence: float = 0.95,
    seed: Seed = 0,
    gamma: float | None = None,
) -> dict[str, Interval]:
    """Several aggregate metrics with stratified-bootstrap intervals, from one set of resamples.

    Args:
        scores: ``[runs, tasks]`` normalised scores.
        metrics: names from :data:`~robustrl.stats.metrics.METRICS` and/or vectorised callables
            ``f(scores[..., runs, tasks]) -> [...]`` (a callable's key is its ``__name__``), or a mapping
            ``{key: metric}``.
        reps: bootstrap replicates.
        confidence: interval coverage.
        seed: seed or generator for the resampling.
        gamma: optimality-gap threshold (default 1.0); only with ``"optimality_gap"`` among the metrics.

    Returns:
        ``{key: Interval}`` in the order given; each equals ``aggregate(scores, metric, same seed)``.
    """
    scores = as_score_matrix(scores)
    reps, confidence = check_reps(reps), check_confidence(confidence)
    named = _named_metrics(metrics)
    if gamma is not None and "optimality_gap" not in named.values():
        raise ValueError("gamma applies only to metric='optimality_gap', which is not among the metrics")
    fns = {key: metric_function(m, gamma=gamma if m == "optimality_gap" else None) for key, m in named.items()}
    points = {key: _point(fn, scores, key) for key, fn in fns.items()}
    strata = Strata(scores)
    cmax = chunk_size(strata.size, reps)
    g = 1.0 if gamma is None else float(gamma)
    sums = _TaskSums(strata.flat, cmax, strata.tasks, strata.runs)  # shared by mean and median
    kernels = [_metric_kernel(m, strata, cmax, g, key, sums) for key, m in named.items()]
    replicates = _run_bootstrap(strata, kernels, reps, seed)
    result = {}
    for (key, point), values in zip(points.items(), replicates):
        low, high = percentile_interval(values, confidence)
        result[key] = Interval(point, float(low), float(high))
    return result


def aggregate(
    scores: ArrayLike,
    metric: Metric | MetricFn = "iqm",
    *,
    reps: int = 50_000,
    confidence: float = 0.95,
    seed: Seed = 0,
    gamma: float | None = None,
) -> Interval:
    """An aggregate metric of a score matrix with its stratified-bootstrap percentile interval.

    Implements the interval estimates of Agarwal et al. (NeurIPS 2021): runs are resampled with
    replacement within each task, ``reps`` times; the interval is the percentile interval of the metric
    over the replicates. Results agree with rliable's ``get_interval_estimates`` (same point estimate,
    interval within Monte-Carlo error), several times to hundreds of times faster (docs/stats.md).

    Args:
        scores: ``[runs, tasks]`` normalised scores (2-D, finite, ≥ 1 run).
        metric: ``"iqm"`` (default), ``"median"``, ``"mean"``, ``"optimality_gap"``, or a callable
            vectorised over a leading batch axis: ``f(scores[..., runs, tasks]) -> [...]`` (the functions
            in :mod:`robustrl.stats.metrics` are). Callables are slower than the named metrics.
        reps: bootstrap replicates (rliable's default 50 000).
        confidence: interval coverage.
        seed: seed or ``np.random.Generator``; the same seed gives the same interval.
        gamma: optimality-gap threshold (default 1.0), only for ``metric="optimality_gap"``.

    Returns:
        ``Interval(point, low, high)``. A percentile interval need not contain the point estimate when
        the bootstrap distribution is very skewed (e.g. the median over very few tasks).

    Example:
        >>> scores = np.array([[0.1, 0.9], [0.3, 1.2], [0.2, 1.0]])
        >>> iv = aggregate(scores, "mean", reps=2000, seed=0)
        >>> round(iv.point, 3), iv.low <= iv.point <= iv.high
        (0.617, True)
    """
    key = metric if isinstance(metric, str) else getattr(metric, "__name__", "metric")
    return aggregate_all(scores, {key: metric}, reps=reps, confidence=confidence, seed=seed, gamma=gamma)[key]


def bootstrap_replicates(
    scores: ArrayLike,
    metric: Metric | MetricFn = "iqm",
    *,
    reps: int = 50_000,
    seed: Seed = 0,
    gamma: float | None = None,
) -> NDArray[np.float64]:
    """The bootstrap distribution behind :func:`aggregate`: the metric of each replicate, ``[reps]``.

    Uses the same draws as :func:`aggregate` with the same seed (its interval is the percentile interval
    of these values). Useful for other interval types or for plotting the distribution.
    """
    scores = as_score_matrix(scores)
    reps = check_reps(reps)
    key = metric if isinstance(metric, str) else getattr(metric, "__name__", "metric")
    metric_function(metric, gamma=gamma)  # validates the name and gamma
    strata = Strata(scores)
    g = 1.0 if gamma is None else float(gamma)
    kernel = _metric_kernel(metric, strata, chunk_size(strata.size, reps), g, key)
    return _run_bootstrap(strata, [kernel], reps, seed)[0]


def _as_sample(samples: ArrayLike, name: str = "samples") -> NDArray[np.float64]:
    try:
        x = np.asarray(samples, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a numeric 1-D array: {err}") from err
    if x.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of values, got shape {x.shape}")
    if x.size < 1:
        raise ValueError(f"{name} must hold at least one value")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} must be finite: {int((~np.isfinite(x)).sum())} NaN/inf value(s)")
    return x


def _sample_statistic(statistic: Statistic | Callable[..., object]) -> Callable[[NDArray[np.float64]], object]:
    if callable(statistic):
        return statistic
    if statistic == "mean":
        return lambda x: np.mean(x, axis=-1)
    if statistic == "median":
        return lambda x: np.median(x, axis=-1)
    if statistic == "iqm":
        from scipy.stats import trim_mean

        return lambda x: trim_mean(x, 0.25, axis=-1)
    raise ValueError(f"statistic must be 'mean', 'median', 'iqm' or a callable, got {statistic!r}")


def bootstrap_ci(
    samples: ArrayLike,
    statistic: Statistic | Callable[[NDArray[np.float64]], NDArray[np.float64]] = "mean",
    *,
    reps: int = 10_000,
    confidence: float = 0.95,
    seed: Seed = 0,
) -> Interval:
    """Percentile-bootstrap interval of a statistic of one plain sample (e.g. episode returns).

    The i.i.d. bootstrap: ``reps`` resamples of ``samples`` with replacement (the one-task case of the
    stratified bootstrap).

    Args:
        samples: ``[n]`` values, finite.
        statistic: ``"mean"`` (default), ``"median"`` (sample median), ``"iqm"`` (25 % trimmed mean), or a
            callable vectorised over leading axes: ``f(x[..., n]) -> [...]``.
        reps: bootstrap replicates.
        confidence: interval coverage.
        seed: seed or ``np.random.Generator``.

    Returns:
        ``Interval(point, low, high)``.

    Example:
        >>> iv = bootstrap_ci([10.0, 12.0, 9.0, 11.0, 13.0], reps=2000, seed=1)
        >>> iv.point, iv.low < 11.0 < iv.high
        (11.0, True)
    """
    x = _as_sample(samples)
    reps, confidence = check_reps(reps), check_confidence(confidence)
    fn = _sample_statistic(statistic)
    point = np.asarray(fn(x), dtype=np.float64)
    if point.shape != ():
        raise ValueError(f"statistic must return a scalar for a 1-D sample, got shape {point.shape}")
    strata = Strata(x[:, None])
    n, cmax = x.size, chunk_size(x.size, reps)
    kernel: Kernel
    if statistic == "mean":
        sums = _TaskSums(strata.flat, cmax, 1, n)
        kernel = lambda keys: sums(keys)[:, 0] / n  # noqa: E731
    elif statistic == "median":
        kernel = _trimmed_kernel(strata, cmax, (n - 1) // 2, n // 2 + 1)
    elif statistic == "iqm":
        kernel = _trimmed_kernel(strata, cmax, *iqm_cuts(n))
    else:

        def kernel(keys: NDArray[np.intp]) -> NDArray[np.float64]:
            out = np.asarray(fn(np.take(strata.flat, keys[:, 0, :])), dtype=np.float64)
            if out.shape != (len(keys),):
                raise ValueError(
                    f"statistic must be vectorised: given [reps, n] samples it must return [reps] values, "
                    f"got shape {out.shape}"
                )
            return out

    values = _run_bootstrap(strata, [kernel], reps, seed)[0]
    low, high = percentile_interval(values, confidence)
    return Interval(float(point), float(low), float(high))
