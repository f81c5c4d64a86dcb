"""Fixtures for the stats tests: reproducing the bootstrap's draws independently of its kernels."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from robustrl.stats.bootstrap import chunk_size

Draws = Callable[[int, int, int, int], np.ndarray]


def stratified_draws(seed: int, reps: int, runs: int, tasks: int) -> np.ndarray:
    """Run indices ``[reps, tasks, runs]`` exactly as the bootstrap draws them for this seed and shape.

    The documented contract: one ``np.random.default_rng(seed)``; chunks of ``chunk_size(runs·tasks, reps)``
    replicates; per chunk ``integers(0, runs, size=(chunk, tasks, runs), dtype=uint16)``.
    """
    rng = np.random.default_rng(seed)
    c = chunk_size(runs * tasks, reps)
    parts = []
    for start in range(0, reps, c):
        m = min(c, reps - start)
        parts.append(rng.integers(0, runs, size=(m, tasks, runs), dtype=np.uint16).astype(np.intp))
    return np.concatenate(parts)


def resample(scores: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """The resampled matrices ``[reps, runs, tasks]``: column t takes rows ``draws[r, t]`` of column t only."""
    tasks = np.arange(scores.shape[1])
    return scores[draws.transpose(0, 2, 1), tasks[None, None, :]]


@pytest.fixture
def draws() -> Draws:
    return stratified_draws


@pytest.fixture
def resampled() -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    return resample
