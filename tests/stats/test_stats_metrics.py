"""Point metrics: hand-worked values, bit-equality with rliable, batching, input validation."""

from __future__ import annotations

import numpy as np
import pytest
from rliable import metrics as rly_metrics

from robustrl import stats
from robustrl.stats.metrics import metric_function

# 3 runs × 4 tasks; worked by hand below.
HAND = np.array(
    [
        [0.0, 10.0, 1.0, 5.0],
        [2.0, -4.0, 1.0, 6.0],
        [4.0, 3.0, 1.0, 7.0],
    ]
)


def test_iqm_by_hand() -> None:
    # 12 scores sorted: -4 0 1 1 1 2 3 4 5 6 7 10; cut int(0.25*12)=3 on each side
    # kept: 1 1 2 3 4 5 -> 16 / 6
    assert stats.iqm(HAND) == pytest.approx(16 / 6, abs=1e-15)


def test_iqm_odd_count_by_hand() -> None:
    # 5 scores: cut int(1.25)=1 each side -> mean of the middle three
    assert stats.iqm(np.array([[9.0, -1.0, 3.0, 4.0, 2.0]])) == pytest.approx(3.0, abs=1e-15)
    # 1, 2 or 3 scores: nothing trimmed
    assert stats.iqm(np.array([[5.0]])) == 5.0
    assert stats.iqm(np.array([[1.0], [4.0], [10.0]])) == 5.0


def test_mean_median_by_hand() -> None:
    # task means: 2, 3, 1, 6
    assert stats.mean(HAND) == pytest.approx(3.0, abs=1e-15)
    # median of task means (not of all scores): (2 + 3) / 2
    assert stats.median(HAND) == pytest.approx(2.5, abs=1e-15)
    assert stats.median(HAND[:, :3]) == pytest.approx(2.0, abs=1e-15)


def test_optimality_gap_by_hand() -> None:
    # gamma 1: min(s, 1) = [0 1 1 1; 1 -4 1 1; 1 1 1 1], row sums 3, -1, 4 -> mean 6/12 -> gap 1/2
    assert stats.optimality_gap(HAND) == pytest.approx(0.5, abs=1e-15)
    # gamma 5: [0 5 1 5; 2 -4 1 5; 4 3 1 5], row sums 11, 4, 13 -> gap 5 - 28/12
    assert stats.optimality_gap(HAND, gamma=5.0) == pytest.approx(5 - 28 / 12, abs=1e-15)


@pytest.mark.parametrize("shape", [(1, 1), (3, 1), (1, 7), (5, 4), (10, 5), (7, 13), (50, 20)])
def test_equal_to_rliable_bit_for_bit(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    scores = rng.normal(1.0, 2.0, size=shape)
    scores[rng.random(shape) < 0.2] = 1.0  # ties, and values at the optimality-gap threshold
    assert stats.iqm(scores) == rly_metrics.aggregate_iqm(scores)
    assert stats.mean(scores) == rly_metrics.aggregate_mean(scores)
    assert stats.median(scores) == rly_metrics.aggregate_median(scores)
    assert stats.optimality_gap(scores) == rly_metrics.aggregate_optimality_gap(scores)
    assert stats.optimality_gap(scores, 2.5) == rly_metrics.aggregate_optimality_gap(scores, gamma=2.5)


@pytest.mark.parametrize("name", stats.METRICS)
def test_metrics_are_vectorised_over_leading_axes(name: str) -> None:
    fn = metric_function(name)
    batch = np.random.default_rng(3).normal(size=(2, 3, 6, 5))
    out = np.asarray(fn(batch))
    assert out.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            assert out[i, j] == pytest.approx(float(fn(batch[i, j])), rel=1e-12, abs=1e-12)


def test_as_score_matrix_accepts_lists_and_ints() -> None:
    arr = stats.as_score_matrix([[1, 2], [3, 4]])
    assert arr.dtype == np.float64 and arr.shape == (2, 2)


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (np.ones(4), "2-D"),
        (np.ones((2, 2, 2)), "2-D"),
        (np.ones((0, 3)), "at least 1 run"),
        (np.ones((3, 0)), "at least 1 task"),
        (np.array([[1.0, np.nan]]), "finite.*run 0, task 1"),
        (np.array([[1.0], [np.inf]]), "finite.*run 1, task 0"),
        ([["a", "b"]], "numeric"),
    ],
)
def test_bad_score_matrix_names_the_argument(bad: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        stats.as_score_matrix(bad, "my_scores")
    with pytest.raises(ValueError, match="my_scores"):
        stats.as_score_matrix(bad, "my_scores")


def test_metric_function_rejects_unknown_names_and_misplaced_gamma() -> None:
    with pytest.raises(ValueError, match="metric must be one of"):
        metric_function("iqr")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="gamma applies only"):
        metric_function("iqm", gamma=2.0)
    with pytest.raises(ValueError, match="gamma must be finite"):
        metric_function("optimality_gap", gamma=float("nan"))
    assert metric_function("optimality_gap", gamma=5.0)(HAND) == pytest.approx(5 - 28 / 12)
