"""Stratified bootstrap: exact replicates, properties, determinism, agreement with rliable, errors."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from rliable import library as rly
from rliable import metrics as rly_metrics
from scipy.stats import trim_mean

from robustrl import stats
from robustrl.stats.bootstrap import CHUNK_ELEMENTS

RLY = {
    "iqm": rly_metrics.aggregate_iqm,
    "mean": rly_metrics.aggregate_mean,
    "median": rly_metrics.aggregate_median,
    "optimality_gap": rly_metrics.aggregate_optimality_gap,
}


def _scores(runs: int, tasks: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    task_level = rng.uniform(0.2, 1.5, size=tasks)  # tasks differ in difficulty
    return task_level + rng.normal(0.0, 0.3, size=(runs, tasks))


@pytest.mark.parametrize("name", stats.METRICS)
def test_replicates_are_the_metric_of_stratified_resamples(name: str, draws: Callable, resampled: Callable) -> None:
    # 20 × 10 → chunks of 327 replicates, so 700 replicates span three chunks.
    scores = _scores(20, 10)
    assert CHUNK_ELEMENTS // scores.size < 700
    got = stats.bootstrap_replicates(scores, name, reps=700, seed=11)
    mats = resampled(scores, draws(11, 700, 20, 10))
    want = np.array([RLY[name](m) for m in mats])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_interval_is_the_percentile_interval_of_the_replicates() -> None:
    scores = _scores(8, 6)
    reps = stats.bootstrap_replicates(scores, "iqm", reps=999, seed=4)
    iv = stats.aggregate(scores, "iqm", reps=999, seed=4, confidence=0.9)
    assert iv.point == rly_metrics.aggregate_iqm(scores)
    assert (iv.low, iv.high) == tuple(np.percentile(reps, [5.0, 95.0]))


def test_resampling_is_within_tasks() -> None:
    # Every run of a task scores the same: any stratified resample is the same matrix, the interval has
    # width 0. (Resampling whole rows, or pooling tasks, would move every metric.)
    scores = np.tile(np.array([0.1, 0.5, 2.0, 7.0, -3.0]), (6, 1))
    for name, iv in stats.aggregate_all(scores, reps=500, seed=0).items():
        assert iv.low == pytest.approx(iv.point, abs=1e-12) and iv.high == pytest.approx(iv.point, abs=1e-12), name


@pytest.mark.parametrize("name", stats.METRICS)
def test_interval_contains_point(name: str) -> None:
    iv = stats.aggregate(_scores(10, 5), name, reps=5000, seed=1)
    assert iv.low < iv.point < iv.high
    assert iv.width == iv.high - iv.low > 0


def test_same_seed_same_interval_other_seed_other_interval() -> None:
    scores = _scores(10, 5)
    a = stats.aggregate(scores, "iqm", reps=3000, seed=7)
    assert a == stats.aggregate(scores, "iqm", reps=3000, seed=7)
    assert a == stats.aggregate(scores, "iqm", reps=3000, seed=np.random.default_rng(7))
    b = stats.aggregate(scores, "iqm", reps=3000, seed=8)
    assert a.point == b.point and (a.low, a.high) != (b.low, b.high)


def test_aggregate_all_equals_each_aggregate() -> None:
    scores = _scores(12, 7)
    both = stats.aggregate_all(scores, reps=2000, seed=3)
    assert list(both) == list(stats.METRICS)
    for name in stats.METRICS:
        assert both[name] == stats.aggregate(scores, name, reps=2000, seed=3)


@pytest.mark.parametrize("name", stats.METRICS)
def test_named_kernels_match_the_generic_callable_path(name: str) -> None:
    scores = _scores(9, 4)
    fast = stats.aggregate(scores, name, reps=2000, seed=5)
    slow = stats.aggregate(scores, getattr(stats, name), reps=2000, seed=5)
    assert fast.point == slow.point
    assert fast.low == pytest.approx(slow.low, abs=1e-12) and fast.high == pytest.approx(slow.high, abs=1e-12)


def test_large_matrix_paths_match_the_callable_path() -> None:
    # > 2**16 scores: the IQM partitions values instead of radix-sorting uint16 ranks.
    scores = _scores(300, 250, seed=2)
    fast = stats.bootstrap_replicates(scores, "iqm", reps=3, seed=0)
    slow = stats.bootstrap_replicates(scores, stats.iqm, reps=3, seed=0)
    np.testing.assert_allclose(fast, slow, rtol=1e-12)
    # > 2**16 runs: draws are int64, not uint16
    tall = _scores(70_000, 1, seed=3)
    np.testing.assert_allclose(
        stats.bootstrap_replicates(tall, "mean", reps=2, seed=0),
        stats.bootstrap_replicates(tall, stats.mean, reps=2, seed=0),
        rtol=1e-12,
    )


def test_width_shrinks_with_more_runs() -> None:
    few = stats.aggregate(_scores(5, 5, seed=1), "iqm", reps=4000, seed=0)
    many = stats.aggregate(_scores(80, 5, seed=1), "iqm", reps=4000, seed=0)
    assert many.width < 0.5 * few.width  # ~ sqrt(5 / 80) = 1/4 in theory


def test_mean_interval_matches_normal_theory() -> None:
    # Bootstrap sd of the mean of task means: sqrt(sum_t var_t / runs) / tasks with plug-in variances.
    scores = _scores(40, 6, seed=9)
    runs, tasks = scores.shape
    sd = np.sqrt(scores.var(axis=0).sum() / runs) / tasks
    iv = stats.aggregate(scores, "mean", reps=20_000, seed=2)
    assert iv.low == pytest.approx(iv.point - 1.96 * sd, abs=0.05 * sd * 1.96)
    assert iv.high == pytest.approx(iv.point + 1.96 * sd, abs=0.05 * sd * 1.96)


@pytest.mark.parametrize(("name", "rliable_reps"), [("iqm", 5000), ("mean", 10_000)])
def test_close_to_rliable_interval(name: str, rliable_reps: int) -> None:
    scores = _scores(10, 5, seed=4)
    state = np.random.get_state()  # noqa: NPY002
    np.random.seed(0)  # noqa: NPY002  (rliable's StratifiedBootstrap draws from the global NumPy RNG)
    try:
        point, ci = rly.get_interval_estimates({"a": scores}, lambda x: np.array([RLY[name](x)]), reps=rliable_reps)
    finally:
        np.random.set_state(state)  # noqa: NPY002
    ours = stats.aggregate(scores, name, reps=20_000, seed=0)
    assert ours.point == float(point["a"][0])
    # Monte-Carlo s.d. of a 2.5 % percentile: ~0.02 (20k reps) and ~0.04 (5k reps) bootstrap s.d.;
    # allow 0.15 bootstrap s.d. (> 3 s.d. of the difference)
    sd = ours.width / (2 * 1.96)
    assert ours.low == pytest.approx(float(ci["a"][0, 0]), abs=0.15 * sd)
    assert ours.high == pytest.approx(float(ci["a"][1, 0]), abs=0.15 * sd)


def test_optimality_gap_gamma() -> None:
    scores = _scores(6, 3) * 10
    iv = stats.aggregate(scores, "optimality_gap", gamma=8.0, reps=500)
    assert iv.point == rly_metrics.aggregate_optimality_gap(scores, gamma=8.0)
    assert iv.low <= iv.point <= iv.high
    with pytest.raises(ValueError, match="gamma applies only"):
        stats.aggregate(scores, "iqm", gamma=8.0)
    with pytest.raises(ValueError, match="gamma applies only"):
        stats.aggregate_all(scores, ["iqm", "mean"], gamma=8.0)


def test_callable_metrics_and_mapping() -> None:
    scores = _scores(6, 4)

    def top_task(x: np.ndarray) -> np.ndarray:
        return x.mean(axis=-2).max(axis=-1)

    out = stats.aggregate_all(scores, {"best": top_task, "IQM": "iqm"}, reps=300, seed=0)
    assert out["best"].point == scores.mean(axis=0).max()
    assert out["IQM"] == stats.aggregate(scores, "iqm", reps=300, seed=0)
    assert list(stats.aggregate_all(scores, [top_task], reps=10)) == ["top_task"]


def test_non_vectorised_callable_is_reported() -> None:
    with pytest.raises(ValueError, match="vectorised"):
        stats.aggregate(_scores(5, 3), lambda x: float(np.mean(x)), reps=10)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"reps": 0}, "reps"),
        ({"reps": 2.5}, "reps"),
        ({"reps": True}, "reps"),
        ({"confidence": 1.0}, "confidence"),
        ({"confidence": 0.0}, "confidence"),
        ({"metric": "iqr"}, "metric must be one of"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        stats.aggregate(_scores(4, 2), **kwargs)


def test_bad_scores_name_the_argument() -> None:
    with pytest.raises(ValueError, match="scores must be a 2-D"):
        stats.aggregate(np.ones(5))
    with pytest.raises(ValueError, match="scores must be finite"):
        stats.aggregate(np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="metrics lists 'iqm' twice"):
        stats.aggregate_all(np.ones((2, 2)), ["iqm", "iqm"])
    with pytest.raises(ValueError, match="sequence of metric names"):
        stats.aggregate_all(np.ones((2, 2)), "iqm")  # type: ignore[arg-type]


# ---- bootstrap_ci: one plain sample ----


def test_bootstrap_ci_points_and_replicates(draws: Callable) -> None:
    x = np.random.default_rng(0).exponential(size=31)
    idx = draws(5, 400, 31, 1)[:, 0, :]
    for name, fn in [("mean", np.mean), ("median", np.median), ("iqm", lambda v: trim_mean(v, 0.25))]:
        iv = stats.bootstrap_ci(x, name, reps=400, seed=5, confidence=0.8)
        assert iv.point == fn(x)
        reps = np.array([fn(x[i]) for i in idx])
        lo, hi = np.percentile(reps, [10.0, 90.0])
        assert iv.low == pytest.approx(lo, abs=1e-12) and iv.high == pytest.approx(hi, abs=1e-12), name


def test_bootstrap_ci_median_even_count_and_callable() -> None:
    x = np.arange(10.0) ** 2
    fast = stats.bootstrap_ci(x, "median", reps=1000, seed=1)
    slow = stats.bootstrap_ci(x, lambda v: np.median(v, axis=-1), reps=1000, seed=1)
    assert fast.point == slow.point == 20.5
    assert fast.low == pytest.approx(slow.low) and fast.high == pytest.approx(slow.high)


def test_bootstrap_ci_mean_matches_normal_theory() -> None:
    x = np.random.default_rng(1).normal(10.0, 2.0, size=400)
    iv = stats.bootstrap_ci(x, reps=20_000, seed=0)
    half = 1.96 * x.std() / np.sqrt(x.size)
    assert iv.point == x.mean()
    assert (iv.high - iv.low) / 2 == pytest.approx(half, rel=0.05)
    assert stats.bootstrap_ci(np.full(7, 3.0)) == (3.0, 3.0, 3.0)


@pytest.mark.parametrize(
    ("samples", "kwargs", "match"),
    [
        (np.ones((3, 2)), {}, "samples must be a 1-D"),
        (np.array([]), {}, "at least one value"),
        (np.array([1.0, np.inf]), {}, "samples must be finite"),
        (np.ones(3), {"statistic": "mode"}, "statistic must be"),
        (np.ones(3), {"reps": -1}, "reps"),
        (np.ones(3), {"confidence": 95}, "confidence"),
        (np.ones(3), {"statistic": lambda v: np.mean(v)}, "vectorised"),
    ],
)
def test_bootstrap_ci_bad_input(samples: np.ndarray, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        stats.bootstrap_ci(samples, **kwargs)
