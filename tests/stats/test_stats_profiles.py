"""Performance profiles: hand values, rliable equality, exact bands from the draws, monotonicity."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from rliable import library as rly

from robustrl import stats


def test_by_hand() -> None:
    scores = np.array([[0.0, 1.0], [2.0, 3.0]])
    # run scores 0 1 2 3: > 0.5 -> 3/4, > 2.0 -> 1/4 (strict), > 3 -> 0
    np.testing.assert_array_equal(stats.score_distribution(scores, [0.5, 2.0, 3.0]), [0.75, 0.25, 0.0])
    # task means 1 and 2: > 0.5 -> 1, > 1.0 -> 1/2 (strict), > 2.0 -> 0
    np.testing.assert_array_equal(stats.score_distribution(scores, [0.5, 1.0, 2.0], kind="task_mean"), [1.0, 0.5, 0.0])


@pytest.mark.parametrize("kind", ["run", "task_mean"])
def test_point_equals_rliable(kind: str) -> None:
    rng = np.random.default_rng(0)
    scores = np.round(rng.normal(1.0, 0.5, size=(10, 6)), 1)
    taus = np.linspace(0.0, 2.0, 21)  # grid values coincide with scores: strictness matters
    want, _ = rly.create_performance_profile({"a": scores}, taus, use_score_distribution=kind == "run", reps=5)
    prof = stats.performance_profile(scores, taus, kind=kind, reps=50)  # type: ignore[arg-type]
    np.testing.assert_array_equal(prof.point, want["a"])
    np.testing.assert_array_equal(prof.taus, taus)


@pytest.mark.parametrize("kind", ["run", "task_mean"])
def test_band_is_percentile_of_replicate_profiles(kind: str, draws: Callable, resampled: Callable) -> None:
    rng = np.random.default_rng(1)
    scores = np.round(rng.normal(1.0, 0.5, size=(12, 4)), 1)
    taus = np.array([1.5, 0.2, 1.0, 0.9, 1.0])  # unsorted, repeated
    reps = 300
    prof = stats.performance_profile(scores, taus, kind=kind, reps=reps, seed=9, confidence=0.9)  # type: ignore[arg-type]
    mats = resampled(scores, draws(9, reps, 12, 4))
    values = mats.reshape(reps, -1) if kind == "run" else mats.mean(axis=1)
    fractions = (values[:, :, None] > taus[None, None, :]).mean(axis=1)
    lo, hi = np.percentile(fractions, [5.0, 95.0], axis=0)
    np.testing.assert_allclose(prof.low, lo, atol=1e-12)
    np.testing.assert_allclose(prof.high, hi, atol=1e-12)


def test_band_properties_and_determinism() -> None:
    rng = np.random.default_rng(2)
    scores = rng.normal(1.0, 0.5, size=(10, 5))
    taus = np.linspace(-0.5, 2.5, 31)
    prof = stats.performance_profile(scores, taus, reps=2000, seed=0)
    assert np.all(prof.low <= prof.point) and np.all(prof.point <= prof.high)
    for arr in (prof.point, prof.low, prof.high):
        assert np.all(np.diff(arr) <= 0)  # fewer scores above a higher threshold
    again = stats.performance_profile(scores, taus, reps=2000, seed=0)
    other = stats.performance_profile(scores, taus, reps=2000, seed=1)
    np.testing.assert_array_equal(prof.low, again.low)
    assert not np.array_equal(np.r_[prof.low, prof.high], np.r_[other.low, other.high])


def test_bad_input() -> None:
    ok = np.ones((3, 2))
    with pytest.raises(ValueError, match="taus must be a non-empty 1-D"):
        stats.performance_profile(ok, [])
    with pytest.raises(ValueError, match="taus must be a non-empty 1-D"):
        stats.performance_profile(ok, np.ones((2, 2)))
    with pytest.raises(ValueError, match="taus must be finite"):
        stats.performance_profile(ok, [0.0, np.nan])
    with pytest.raises(ValueError, match="kind must be"):
        stats.performance_profile(ok, [0.0], kind="runs")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="scores must be a 2-D"):
        stats.performance_profile(np.ones(3), [0.0])
