"""Probability of improvement: hand values, rliable equality, brute-force replicates, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from rliable import metrics as rly_metrics

from robustrl import stats
from robustrl.stats.compare import _PoIKernel


def test_by_hand() -> None:
    # task 0: x = {1, 3} vs y = {2}: pairs (1>2: 0), (3>2: 1) -> 1/2
    # task 1: x = {5, 5} vs y = {5}: two ties -> 1/2 each -> 1/2
    # task 2: x = {0, 4} vs y = {-1}: both greater -> 1
    x = np.array([[1.0, 5.0, 0.0], [3.0, 5.0, 4.0]])
    y = np.array([[2.0, 5.0, -1.0]])
    np.testing.assert_array_equal(stats.task_improvement_probabilities(x, y), [0.5, 0.5, 1.0])
    assert stats.probability_of_improvement(x, y, reps=100).point == pytest.approx(2 / 3)


def test_certain_improvement_has_a_degenerate_interval() -> None:
    x = np.random.default_rng(0).normal(size=(6, 4))
    iv = stats.probability_of_improvement(x + 100.0, x, reps=500)
    assert iv == (1.0, 1.0, 1.0)
    iv = stats.probability_of_improvement(x, x + 100.0, reps=500)
    assert iv == (0.0, 0.0, 0.0)


@pytest.mark.parametrize(("nx", "ny", "tasks"), [(5, 5, 3), (10, 7, 4), (3, 12, 1)])
def test_point_equals_rliable(nx: int, ny: int, tasks: int) -> None:
    rng = np.random.default_rng(nx * ny)
    x = np.round(rng.normal(size=(nx, tasks)), 1)  # rounding makes ties
    y = np.round(rng.normal(0.2, 1.0, size=(ny, tasks)), 1)
    assert stats.probability_of_improvement(x, y, reps=10).point == rly_metrics.probability_of_improvement(x, y)
    # X vs itself is exactly 1/2, as rliable's special case
    assert stats.probability_of_improvement(x, x, reps=10).point == 0.5


def test_point_is_antisymmetric() -> None:
    rng = np.random.default_rng(1)
    x, y = np.round(rng.normal(size=(8, 5)), 1), np.round(rng.normal(size=(6, 5)), 1)
    px = stats.task_improvement_probabilities(x, y)
    py = stats.task_improvement_probabilities(y, x)
    np.testing.assert_allclose(px + py, 1.0, rtol=0, atol=1e-15)


def test_kernel_matches_brute_force_on_the_same_draws() -> None:
    rng = np.random.default_rng(2)
    nx, ny, tasks, reps = 7, 5, 3, 40
    x = np.round(rng.normal(size=(nx, tasks)), 1)
    y = np.round(rng.normal(size=(ny, tasks)), 1)
    ux = rng.integers(0, nx, size=(reps, tasks, nx), dtype=np.uint16)
    uy = rng.integers(0, ny, size=(reps, tasks, ny), dtype=np.uint16)
    got = _PoIKernel(x, y)(ux, uy)
    ysorted = np.sort(y, axis=0)  # the kernel's draws index y's runs sorted per task
    want = np.empty(reps)
    for r in range(reps):
        per_task = []
        for t in range(tasks):
            xr, yr = x[ux[r, t], t], ysorted[uy[r, t], t]
            per_task.append(np.mean(xr[:, None] > yr[None, :]) + 0.5 * np.mean(xr[:, None] == yr[None, :]))
        want[r] = np.mean(per_task)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-14)


def test_interval_properties_and_determinism() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(0.3, 1.0, size=(10, 5))
    y = rng.normal(0.0, 1.0, size=(8, 5))
    a = stats.probability_of_improvement(x, y, reps=4000, seed=1)
    assert a.low < a.point < a.high
    assert a == stats.probability_of_improvement(x, y, reps=4000, seed=1)
    assert a != stats.probability_of_improvement(x, y, reps=4000, seed=2)
    # more runs, narrower interval
    big = stats.probability_of_improvement(
        rng.normal(0.3, 1.0, size=(80, 5)), rng.normal(0.0, 1.0, size=(80, 5)), reps=4000, seed=1
    )
    assert big.width < 0.6 * a.width


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="same tasks"):
        stats.probability_of_improvement(np.ones((3, 2)), np.ones((3, 4)))
    with pytest.raises(ValueError, match="x must be a 2-D"):
        stats.probability_of_improvement(np.ones(3), np.ones((3, 1)))
    with pytest.raises(ValueError, match="y must be finite"):
        stats.probability_of_improvement(np.ones((3, 1)), np.array([[np.nan]]))
    with pytest.raises(ValueError, match="reps"):
        stats.probability_of_improvement(np.ones((3, 1)), np.ones((3, 1)), reps=0)
