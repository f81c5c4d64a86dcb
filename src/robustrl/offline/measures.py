"""Dataset measures TQ and SACo of the dataset-perspective paper.

Schweighofer et al., *A Dataset Perspective on Offline Reinforcement Learning*, CoLLAs 2022, arXiv:2111.04714.

* **TQ** (trajectory quality, exploitation): the dataset's average trajectory return normalised between the
  return of a random policy's dataset and the best return, ``TQ = (ḡ(D) − ḡ_min) / (ḡ_max − ḡ_min)``; the
  paper takes ``ḡ_min`` from the random dataset and ``ḡ_max`` from the best policy (the online-trained expert).
* **SACo** (state-action coverage, exploration): the number of unique state-action pairs of the dataset
  relative to a reference dataset, ``SACo = u_{s,a}(D) / u_{s,a}(D_ref)``; the paper's reference is the replay
  dataset of the online training run. For continuous states and actions, pairs are counted after rounding
  every coordinate to ``decimals`` places (the paper counts exact pairs in deterministic discrete-ish MDPs and
  estimates counts with HyperLogLog at scale; here the count is exact, after the rounding).

Example:
    >>> trajectory_quality(np.array([10.0, 20.0]), ref_min=0.0, ref_max=30.0)
    0.5
    >>> obs = np.array([[0.0], [0.0], [1.0]]); act = np.array([[1.0], [1.0], [1.0]])
    >>> unique_state_actions(obs, act)
    2
"""

from __future__ import annotations

import numpy as np

__all__ = ["state_action_coverage", "trajectory_quality", "unique_state_actions"]


def trajectory_quality(returns: np.ndarray, *, ref_min: float, ref_max: float) -> float:
    """TQ: ``(mean(returns) − ref_min) / (ref_max − ref_min)`` for the episode ``returns [E]``.

    Raises:
        ValueError: no returns, or ``ref_max == ref_min``.
    """
    if len(returns) == 0:
        raise ValueError("TQ needs at least one episode return")
    if ref_max == ref_min:
        raise ValueError(f"TQ needs ref_max ≠ ref_min, got {ref_min} for both")
    return float((np.mean(returns) - ref_min) / (ref_max - ref_min))


def unique_state_actions(observations: np.ndarray, actions: np.ndarray, *, decimals: int = 2) -> int:
    """``u_{s,a}``: the number of distinct ``(s, a)`` rows after rounding to ``decimals`` places.

    Args:
        observations: ``[N, obs_dim]``.
        actions: ``[N, act_dim]`` or ``[N]`` (Discrete).
        decimals: rounding of every coordinate before counting.
    """
    pairs = np.concatenate([observations.reshape(len(observations), -1),
                            actions.reshape(len(actions), -1).astype(np.float64)], axis=1)  # fmt: skip
    rounded = np.round(pairs.astype(np.float64), decimals) + 0.0  # + 0.0: -0.0 and 0.0 are one value
    return int(np.unique(rounded, axis=0).shape[0])


def state_action_coverage(
    observations: np.ndarray,
    actions: np.ndarray,
    ref_observations: np.ndarray,
    ref_actions: np.ndarray,
    *,
    decimals: int = 2,
) -> float:
    """SACo: ``u_{s,a}(D) / u_{s,a}(D_ref)`` with pairs rounded to ``decimals`` places."""
    ref = unique_state_actions(ref_observations, ref_actions, decimals=decimals)
    return unique_state_actions(observations, actions, decimals=decimals) / ref
