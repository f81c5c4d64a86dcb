"""Trajectory reweighting for mixed datasets: sample episodes by their return, usable with any offline learner.

Return-weighted resampling (Hong et al., *Harnessing Mixed Offline Reinforcement Learning Datasets via
Trajectory Weighting*, ICLR 2023): episode ``i`` is drawn with probability ``∝ exp((G_i − G_max) / (T·(G_max −
G_min)))`` and a transition uniformly within it, so each transition's weight is that probability divided by
its episode's length. ``T`` (``temperature``) is in units of the dataset's return range: large ``T`` is close
to uniform over episodes, small ``T`` keeps the best ones.

Example:
    >>> from robustrl.offline.data import OfflineDataset
    >>> z = np.zeros((3, 1), np.float32)
    >>> d = OfflineDataset(z, z, np.array([0, 0, 1], np.float32), z, np.zeros(3, bool), np.array([0, 1, 1], bool),
    ...                    np.array([0, 0, 1]))
    >>> np.round(return_weights(d, 1.0), 4)
    array([0.1345, 0.1345, 0.7311])
"""

from __future__ import annotations

import numpy as np

from robustrl.offline.data import OfflineDataset

__all__ = ["return_weights"]


def return_weights(data: OfflineDataset, temperature: float) -> np.ndarray:
    """``float64 [N]`` sampling weights (summing to 1) of return-weighted episode resampling."""
    if not temperature > 0:
        raise ValueError(f"reweighting temperature must be > 0, got {temperature}")
    returns = data.episode_returns()
    span = float(returns.max() - returns.min()) or 1.0
    p = np.exp((returns - returns.max()) / (temperature * span))
    p /= p.sum()
    _, inverse, counts = np.unique(data.episode_ids, return_inverse=True, return_counts=True)
    return p[inverse] / counts[inverse]
