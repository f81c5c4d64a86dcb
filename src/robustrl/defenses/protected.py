"""PROTECTED: a small set of non-dominated policies, and an adversarial bandit choosing among them online.

Liu, Deng, Sun, Liang, Huang (ICLR 2024), "Beyond Worst-case Attacks: Robust RL with Adaptive Defense via
Non-dominated Policies". Training discovers a finite policy class Π̃ iteratively: each new policy is trained
against the attack under which the current set does worst, and only policies not dominated by another one
(on the vector of returns under the attack family) are kept. At test time an adversarial bandit (EXP3) picks,
per episode, which policy of Π̃ acts, and the quality of the choice is its regret against the best fixed
policy of Π̃ in hindsight.

This module holds the config and the pure maths (NumPy, explicit generators). The trainer that runs the
PPO learners is :func:`robustrl.adversarial.protected.train_protected`; the test-time adaptation is
:func:`robustrl.evaluate.protected.adapt`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from robustrl.common.limits import check_count

__all__ = ["Exp3Run", "ProtectedConfig", "check_exp3", "exp3", "exp3_probabilities", "exp3_update", "non_dominated",
           "normalise_returns", "parse_attack", "regret", "select_set", "weakest_attack"]


def parse_attack(text: str) -> tuple[str, float]:
    """``"pgd:0.05"`` → ``("pgd", 0.05)``: an attack of the family as ``name:ε``.

    Raises:
        ValueError: not ``name:number`` with a finite ε ≥ 0 (the threat name is checked by the registry).

    Example:
        >>> parse_attack("uniform:0.2")
        ('uniform', 0.2)
    """
    name, sep, budget = str(text).partition(":")
    try:
        eps = float(budget)
    except ValueError:
        eps = math.nan
    if not sep or not name.strip() or not math.isfinite(eps) or eps < 0:
        raise ValueError(f"an attack is name:ε with a finite ε ≥ 0 (e.g. pgd:0.05), got {text!r}")
    return name.strip(), eps


@dataclass(frozen=True)
class ProtectedConfig:
    """PROTECTED: iteratively discovered non-dominated policies, chosen online by EXP3 at test time."""

    iterations: int = 4
    """Policies trained (the first on clean observations, each next one against the set's weakest attack)."""
    set_size: int = 3
    """Most policies kept in the set Π̃ (non-dominated ones, chosen greedily for coverage)."""
    attacks: tuple[str, ...] = ("none:0", "uniform:0.2", "pgd:0.05", "pgd:0.1")
    """The finite attack family as name:ε (threat names of robustrl.threats.THREATS)."""
    normalized: bool = True
    """ε is in the policy's normalised observation units where it normalises (raw units otherwise)."""
    eval_episodes: int = 16
    """Episodes per (policy, attack) for the return vectors that decide the next attack and the set."""
    warm_start: bool = True
    """A new policy starts from the set's best policy against its target attack."""
    exp3_gamma: float = 0.1
    """EXP3 exploration: the probability mass spread uniformly over the set, in (0, 1]."""
    exp3_eta: float = 0.1
    """EXP3 learning rate on the importance-weighted normalised return (> 0)."""
    exp3_share: float = 0.0
    """Fixed-share mixing towards uniform weights after each update, in [0, 1) (0: plain EXP3; > 0 tracks
    attacks that switch, like Exp3.S)."""

    def validate(self) -> None:
        """Raise a ``ValueError`` naming the first bad field."""
        check_count(self.iterations, "ProtectedConfig.iterations")
        check_count(self.set_size, "ProtectedConfig.set_size")
        check_count(self.eval_episodes, "ProtectedConfig.eval_episodes")
        if isinstance(self.attacks, str) or not self.attacks:
            raise ValueError(f"ProtectedConfig.attacks must be a non-empty list of name:ε, got {self.attacks!r}")
        for item in self.attacks:
            try:
                parse_attack(item)
            except ValueError as err:
                raise ValueError(f"ProtectedConfig.attacks: {err}") from None
        if len(set(self.attacks)) != len(self.attacks):
            raise ValueError(f"ProtectedConfig.attacks lists an attack twice: {list(self.attacks)}")
        if not isinstance(self.normalized, bool) or not isinstance(self.warm_start, bool):
            raise ValueError("ProtectedConfig.normalized and warm_start must be true or false")
        check_exp3(self.exp3_gamma, self.exp3_eta, self.exp3_share, "ProtectedConfig.")

    def attack_list(self) -> list[tuple[str, float]]:
        """The family as ``(name, ε)`` pairs, in order."""
        return [parse_attack(a) for a in self.attacks]


# --- the policy set -------------------------------------------------------------------------------------


def non_dominated(values: np.ndarray) -> list[int]:
    """Indices of the rows of ``values [K, A]`` that no other row dominates.

    Row ``j`` dominates row ``i`` when it is ≥ under every attack and > under one; of equal rows the first
    is kept. (The paper also removes policies dominated by a *mixture* of the set; robustrl checks pure
    domination only.)

    Example:
        >>> non_dominated(np.array([[3.0, 1.0], [1.0, 3.0], [1.0, 1.0], [3.0, 1.0]]))
        [0, 1]
    """
    v = np.asarray(values, dtype=np.float64)
    keep = []
    for i in range(len(v)):
        ge = (v >= v[i]).all(axis=1)
        strictly = ge & (v > v[i]).any(axis=1)
        equal_before = ge & (v == v[i]).all(axis=1) & (np.arange(len(v)) < i)
        if not (strictly.any() or equal_before.any()):
            keep.append(i)
    return keep


def select_set(values: np.ndarray, size: int) -> list[int]:
    """At most ``size`` non-dominated rows of ``values [K, A]``, chosen greedily for coverage.

    The first pick has the highest mean over attacks; each next one raises Σ_a max_{k∈set} values[k, a]
    most (ties: the lower index). Returned in index order.

    Example:
        >>> select_set(np.array([[5.0, 0.0, 1.0], [0.0, 5.0, 1.0], [2.0, 2.0, 4.0]]), 2)
        [0, 2]
    """
    v = np.asarray(values, dtype=np.float64)
    check_count(size, "size")
    candidates = non_dominated(v)
    chosen = [max(candidates, key=lambda i: (v[i].mean(), -i))]
    while len(chosen) < min(size, len(candidates)):
        covered = v[chosen].max(axis=0)
        rest = [i for i in candidates if i not in chosen]
        chosen.append(max(rest, key=lambda i: (np.maximum(covered, v[i]).sum(), -i)))
    return sorted(chosen)


def weakest_attack(values: np.ndarray, members: list[int]) -> int:
    """The attack under which the set ``members`` does worst: argmin_a max_{k∈members} values[k, a].

    Example:
        >>> weakest_attack(np.array([[500.0, 120.0, 300.0], [480.0, 200.0, 90.0]]), [0, 1])
        1
    """
    v = np.asarray(values, dtype=np.float64)[members]
    return int(np.argmin(v.max(axis=0)))


# --- EXP3 -----------------------------------------------------------------------------------------------


def check_exp3(gamma: float, eta: float, share: float, prefix: str = "") -> None:
    """Raise a ``ValueError`` naming ``{prefix}exp3_gamma`` / ``exp3_eta`` / ``exp3_share`` when out of range."""
    def number(x: object) -> bool:
        return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)

    if not (number(gamma) and 0 < gamma <= 1):
        raise ValueError(f"{prefix}exp3_gamma must be in (0, 1], got {gamma!r}")
    if not (number(eta) and eta > 0):
        raise ValueError(f"{prefix}exp3_eta must be a finite number > 0, got {eta!r}")
    if not (number(share) and 0 <= share < 1):
        raise ValueError(f"{prefix}exp3_share must be in [0, 1), got {share!r}")


def normalise_returns(returns: np.ndarray, low: float, high: float) -> np.ndarray:
    """Returns mapped to bandit rewards in ``[0, 1]``: ``(R − low) / (high − low)``, clipped.

    Example:
        >>> normalise_returns(np.array([0.0, 250.0, 600.0]), 0.0, 500.0).tolist()
        [0.0, 0.5, 1.0]
    """
    if not (math.isfinite(low) and math.isfinite(high) and high > low):
        raise ValueError(f"the return range must be finite with high > low, got ({low}, {high})")
    return np.clip((np.asarray(returns, dtype=np.float64) - low) / (high - low), 0.0, 1.0)


def exp3_probabilities(log_weights: np.ndarray, gamma: float) -> np.ndarray:
    """EXP3's arm probabilities ``[K]``: ``(1 − γ) · softmax(log_weights) + γ / K``.

    Example:
        >>> exp3_probabilities(np.log(np.array([1.0, 3.0])), 0.2).round(3).tolist()
        [0.3, 0.7]
    """
    lw = np.asarray(log_weights, dtype=np.float64)
    w = np.exp(lw - lw.max())
    return (1.0 - gamma) * w / w.sum() + gamma / len(lw)


def exp3_update(
    log_weights: np.ndarray, probs: np.ndarray, arm: int, reward: float, eta: float, share: float = 0.0
) -> np.ndarray:
    """EXP3's update after playing ``arm`` and seeing ``reward ∈ [0, 1]``: the importance-weighted estimate.

    ``x̂_arm = reward / p_arm`` (unbiased for every arm's reward, 0 for arms not played), and
    ``log w_arm += η · x̂_arm``. With η = γ/K this is Auer et al.'s (2002) EXP3. With ``share`` α > 0 the
    normalised weights are then mixed with the uniform ones, ``w ← (1 − α) w + α / K`` (fixed share, as in
    Exp3.S), so no arm's weight falls so low that a switch of the best arm goes unnoticed.

    Example:
        >>> exp3_update(np.zeros(2), np.array([0.25, 0.75]), 0, 0.5, 0.1).tolist()
        [0.2, 0.0]
    """
    out = np.array(log_weights, dtype=np.float64, copy=True)
    out[arm] += eta * reward / probs[arm]
    if share > 0:
        w = np.exp(out - out.max())
        out = np.log((1.0 - share) * w / w.sum() + share / len(out))
    return out


class Exp3Run(NamedTuple):
    """One run of EXP3 over ``T`` rounds and ``K`` arms."""

    arms: np.ndarray
    """``int64 [T]`` the arm played each round."""
    probs: np.ndarray
    """``float64 [T, K]`` the probabilities it was drawn from."""
    rewards: np.ndarray
    """``float64 [T]`` the rewards observed (only the played arm's)."""


def exp3(
    rewards: np.ndarray, gamma: float, eta: float, generator: np.random.Generator, *, share: float = 0.0
) -> Exp3Run:
    """Run EXP3 on a reward table ``rewards [T, K]`` in ``[0, 1]``, seeing only the played arm's entry.

    Holding the whole table is only for the caller's regret; round ``t`` reads ``rewards[t, arm_t]`` alone.

    Example:
        >>> r = np.tile([0.1, 0.9], (400, 1))
        >>> run = exp3(r, 0.1, 0.1, np.random.default_rng(0))
        >>> bool((run.arms[-100:] == 1).mean() > 0.85)
        True
    """
    check_exp3(gamma, eta, share)
    table = np.asarray(rewards, dtype=np.float64)
    if table.ndim != 2 or table.shape[1] < 1:
        raise ValueError(f"rewards must be [T, K], got shape {table.shape}")
    if not np.all((table >= 0) & (table <= 1)):
        raise ValueError("rewards must lie in [0, 1] (normalise returns first)")
    t_max, k = table.shape
    log_w = np.zeros(k)
    arms = np.zeros(t_max, dtype=np.int64)
    probs = np.zeros((t_max, k))
    seen = np.zeros(t_max)
    for t in range(t_max):
        p = exp3_probabilities(log_w, gamma)
        arm = int(generator.choice(k, p=p))
        arms[t], probs[t], seen[t] = arm, p, table[t, arm]
        log_w = exp3_update(log_w, p, arm, seen[t], eta, share)
    return Exp3Run(arms, probs, seen)


def regret(rewards: np.ndarray, arms: np.ndarray) -> np.ndarray:
    """``float64 [T]`` cumulative regret against the best fixed arm in hindsight after each round.

    ``regret[t] = max_k Σ_{s≤t} rewards[s, k] − Σ_{s≤t} rewards[s, arms[s]]`` (the best arm of the first
    ``t + 1`` rounds).

    Example:
        >>> regret(np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]), np.array([1, 0, 0])).tolist()
        [1.0, 1.0, 2.0]
    """
    table = np.asarray(rewards, dtype=np.float64)
    played = table[np.arange(len(table)), np.asarray(arms, dtype=np.int64)]
    return np.cumsum(table, axis=0).max(axis=1) - np.cumsum(played)
