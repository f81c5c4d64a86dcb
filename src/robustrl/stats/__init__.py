"""Aggregate statistics over runs × tasks with bootstrap confidence intervals.

Implements the recommendations of Agarwal et al., "Deep Reinforcement Learning at the Edge of the
Statistical Precipice" (NeurIPS 2021): interquartile mean, median, mean and optimality gap of a
``[runs × tasks]`` score matrix, probability of improvement, performance profiles, all with
stratified-bootstrap percentile intervals. Pure NumPy; every random function takes a seed or an
``np.random.Generator`` and the same seed gives the same interval.

Example:
    >>> import numpy as np
    >>> from robustrl import stats
    >>> scores = np.random.default_rng(0).normal(1.0, 0.2, size=(10, 5))  # 10 runs, 5 tasks
    >>> iv = stats.aggregate(scores, "iqm", reps=2000, seed=0)
    >>> iv.low <= iv.point <= iv.high
    True
"""

from robustrl.stats.bootstrap import (
    Interval,
    Seed,
    Statistic,
    aggregate,
    aggregate_all,
    bootstrap_ci,
    bootstrap_replicates,
    percentile_interval,
)
from robustrl.stats.compare import probability_of_improvement, task_improvement_probabilities
from robustrl.stats.metrics import (
    METRICS,
    Metric,
    MetricFn,
    as_score_matrix,
    iqm,
    mean,
    median,
    optimality_gap,
)
from robustrl.stats.profiles import Profile, ProfileKind, performance_profile, score_distribution
from robustrl.stats.table import format_interval, interval_table

__all__ = [
    "METRICS",
    "Interval",
    "Metric",
    "MetricFn",
    "Profile",
    "ProfileKind",
    "Seed",
    "Statistic",
    "aggregate",
    "aggregate_all",
    "as_score_matrix",
    "bootstrap_ci",
    "bootstrap_replicates",
    "format_interval",
    "interval_table",
    "iqm",
    "mean",
    "median",
    "optimality_gap",
    "percentile_interval",
    "performance_profile",
    "probability_of_improvement",
    "score_distribution",
    "task_improvement_probabilities",
]
