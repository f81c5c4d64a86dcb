"""Policy Smoothing certificates: from smoothed clean returns to bounds on the attacked return.

Kumar, Levine & Feizi, "Policy Smoothing for Provably Robust Reinforcement Learning", ICLR 2022.

The smoothed policy adds ``N(0, σ² I)`` to every observation. The paper's adaptive Neyman–Pearson lemma
gives, for every event ``E`` of the episode (for instance ``R ≥ v``) and every adversary whose
perturbations have total ℓ2 norm ``sqrt(Σ_t ‖δ_t‖²) ≤ B`` (adaptive: it may use the whole history)::

    P_adv(E) ≥ Φ(Φ⁻¹(P_clean(E)) − B/σ).

Everything here is a pure function from an array of clean smoothed returns to a typed result:

* :func:`expected_return_bound` — the expected-return certificate
  ``E_adv[R] ≥ v_0 + Σ_i (v_i − v_{i−1}) Φ(Φ⁻¹(p̲_i) − B/σ)`` with ``p̲_i`` a lower confidence bound on
  ``P_clean(R ≥ v_i)`` (DKW band, or Clopper–Pearson with a Bonferroni split over a fixed grid).
* :func:`percentile_bound` — the q-quantile of the attacked return is at least the q′-quantile of the
  clean return, ``q′ = Φ(Φ⁻¹(q) − B/σ)``, estimated from below with an order statistic.
* :func:`per_step_budget` — a per-step budget ε over H steps is the total budget ``B = ε·sqrt(H)``.
* :func:`attack_tightness` — how much of the certified drop an attack of the same budget realises.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import special, stats

logger = logging.getLogger(__name__)

ArrayLike = Sequence[float] | np.ndarray | Any
"""Anything :func:`numpy.asarray` turns into a float array (lists, arrays, CPU or GPU torch tensors)."""


# --------------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------------
def _as_float_array(values: ArrayLike, name: str) -> np.ndarray:
    """Return a float64 NumPy copy of ``values`` (torch tensors are detached and moved to the CPU)."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be an array of numbers: {err}") from err
    return arr.reshape(-1) if arr.ndim == 0 else arr


def _check_returns(returns: ArrayLike) -> np.ndarray:
    r = _as_float_array(returns, "returns")
    if r.ndim != 1:
        raise ValueError(f"returns must be 1-D [n], got shape {tuple(r.shape)}")
    if r.size == 0:
        raise ValueError("returns is empty: at least one smoothed episode return is needed")
    if not np.all(np.isfinite(r)):
        bad = int(np.sum(~np.isfinite(r)))
        raise ValueError(f"returns contains {bad} non-finite value(s) (NaN or inf)")
    return r


def _check_sigma(sigma: float) -> float:
    s = float(sigma)
    if not math.isfinite(s) or s <= 0:
        raise ValueError(f"sigma must be a finite number > 0 (the smoothing noise std), got {sigma!r}")
    return s


def _check_alpha(alpha: float) -> float:
    a = float(alpha)
    if not 0 < a < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5) (the certificate holds with probability 1 − alpha), got {alpha!r}")
    return a


def _check_floor(floor: float | None, returns: np.ndarray) -> float:
    if floor is None:
        raise ValueError(
            "floor is required: the least return the task allows, known before any data "
            "(e.g. 0 for CartPole); the observed minimum is not a valid floor"
        )
    f = float(floor)
    if not math.isfinite(f):
        raise ValueError(f"floor must be finite, got {floor!r}")
    low = float(returns.min())
    if low < f:
        raise ValueError(
            f"floor={f} is above an observed return ({low}): the floor must be a return no episode can go under"
        )
    return f


def per_step_budget(epsilon: float | ArrayLike, horizon: int) -> np.ndarray:
    """Return the total ℓ2 budget of a per-step budget: ``B = ε·sqrt(H)``.

    An adversary allowed ``‖δ_t‖₂ ≤ ε`` at each of ``H`` steps has ``sqrt(Σ_t ‖δ_t‖²) ≤ ε·sqrt(H)``, so a
    certificate for total budget ``B = ε·sqrt(H)`` covers it (Kumar et al., 2022, Section 3).

    Args:
        epsilon: per-step ℓ2 budget(s) ε ≥ 0, a number or an array ``[K]``.
        horizon: the episode length H ≥ 1 (the env's ``max_episode_steps``).

    Returns:
        float64 array ``[K]`` (``[1]`` for a number) of total budgets.

    Example:
        >>> per_step_budget(0.1, 100).tolist()
        [1.0]

    """
    eps = _as_float_array(epsilon, "epsilon")
    if eps.ndim != 1 or not np.all(np.isfinite(eps)) or np.any(eps < 0):
        raise ValueError(f"epsilon must be finite numbers >= 0, got {epsilon!r}")
    if isinstance(horizon, bool) or int(horizon) != horizon or int(horizon) < 1:
        raise ValueError(f"horizon must be an integer >= 1, got {horizon!r}")
    return eps * math.sqrt(int(horizon))


def resolve_budgets(
    budgets: float | ArrayLike | None, epsilon: float | ArrayLike | None, horizon: int | None
) -> np.ndarray:
    """Total ℓ2 budgets ``[K]`` from either ``budgets`` or a per-step ``epsilon`` with ``horizon``.

    Raises:
        ValueError: both or neither given, a budget < 0 or non-finite, or ``epsilon`` without ``horizon``.

    """
    if budgets is not None and epsilon is not None:
        raise ValueError("give either budgets (total ℓ2) or epsilon with horizon (per step), not both")
    if epsilon is not None:
        if horizon is None:
            raise ValueError("epsilon (a per-step budget) needs horizon: B = epsilon * sqrt(horizon)")
        return per_step_budget(epsilon, horizon)
    if budgets is None:
        raise ValueError("budgets is required (total ℓ2 budgets B >= 0), or epsilon with horizon")
    b = _as_float_array(budgets, "budgets")
    if b.ndim != 1 or b.size == 0:
        raise ValueError(f"budgets must be a number or a 1-D list of numbers, got shape {tuple(b.shape)}")
    if not np.all(np.isfinite(b)) or np.any(b < 0):
        raise ValueError(f"budgets must be finite and >= 0, got {b.tolist()}")
    return b


def _shifted_probability(p: np.ndarray, budgets: np.ndarray, sigma: float) -> np.ndarray:
    """``Φ(Φ⁻¹(p) − B/σ)`` for every budget × probability: ``[K, k]``; exactly ``p`` where ``B = 0``."""
    z = special.ndtri(np.clip(p, 0.0, 1.0))  # Φ⁻¹(0) = −inf → Φ(−inf) = 0
    out = special.ndtr(z[None, :] - budgets[:, None] / sigma)
    out[budgets == 0] = p
    return np.asarray(out, dtype=np.float64)


# --------------------------------------------------------------------------------------------------
# expected-return certificate
# --------------------------------------------------------------------------------------------------
Method = Literal["dkw", "cp"]

_CHUNK_ELEMENTS = 1 << 18
"""Budget × threshold entries computed at once by :func:`expected_return_bound` (a few MiB per temporary)."""


@dataclass(frozen=True)
class ReturnBound:
    """A certified lower bound on the expected return under every ℓ2 attack of total budget B.

    With probability at least ``1 − alpha`` over the ``n`` sampled smoothed episodes, for every budget
    ``budgets[j]`` and every adversary of that total budget, ``E_adv[R] ≥ bounds[j]``.
    """

    budgets: np.ndarray
    """Total ℓ2 budgets B ``[K]``."""
    bounds: np.ndarray
    """Certified lower bounds on the attacked expected return ``[K]``, non-increasing in B."""
    method: Method
    """How the probabilities were bounded: ``dkw`` band or Bonferroni ``cp`` (Clopper–Pearson)."""
    alpha: float
    """Failure probability of the whole certificate (all budgets, all thresholds at once)."""
    n: int
    """Number of smoothed episodes."""
    sigma: float
    """Std of the Gaussian observation noise of the smoothed policy."""
    floor: float
    """``v_0``: the least return the task allows, fixed before the data."""
    thresholds: np.ndarray
    """``v_1 < … < v_k`` ``[k]``, all above the floor."""
    p_lower: np.ndarray
    """Lower confidence bounds ``p̲_i`` on ``P_clean(R ≥ v_i)`` ``[k]``."""
    clean_lower: float
    """The bound at B = 0: a lower confidence bound on the clean smoothed expected return."""
    empirical_mean: float
    """Mean of the sampled returns (the bound never exceeds it)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (arrays as lists)."""
        return {
            "budgets": self.budgets.tolist(),
            "bounds": self.bounds.tolist(),
            "method": self.method,
            "alpha": self.alpha,
            "n": self.n,
            "sigma": self.sigma,
            "floor": self.floor,
            "num_thresholds": int(self.thresholds.size),
            "clean_lower": self.clean_lower,
            "empirical_mean": self.empirical_mean,
        }


def dkw_margin(n: int, alpha: float) -> float:
    """Return the DKW band half-width ``sqrt(ln(2/α)/(2n))``: ``P(sup_v |F̂_n(v) − F(v)| > margin) ≤ α``."""
    return math.sqrt(math.log(2.0 / alpha) / (2.0 * n))


def clopper_pearson_lower(successes: np.ndarray, n: int, level: float) -> np.ndarray:
    """One-sided lower Clopper–Pearson bounds: ``P(p < bound) ≤ level`` for each count ``[k]``.

    ``bound = Beta.ppf(level, x, n − x + 1)`` for ``x > 0`` and 0 for ``x = 0``.
    """
    x = np.asarray(successes, dtype=np.float64)
    out = np.zeros_like(x)
    pos = x > 0
    out[pos] = stats.beta.ppf(level, x[pos], n - x[pos] + 1)
    return out


def _check_thresholds(thresholds: ArrayLike, floor: float) -> np.ndarray:
    v = _as_float_array(thresholds, "thresholds")
    if v.ndim != 1 or v.size == 0:
        raise ValueError("thresholds must be a non-empty 1-D list of returns")
    if not np.all(np.isfinite(v)):
        raise ValueError("thresholds must be finite")
    if np.any(np.diff(v) <= 0):
        raise ValueError("thresholds must be strictly increasing")
    if v[0] <= floor:
        raise ValueError(f"thresholds must all be above the floor {floor}, got first threshold {v[0]}")
    return v


def integer_grid(floor: float, max_return: float) -> np.ndarray:
    """Return the grid ``floor + 1, floor + 2, …, ≤ max_return`` (every integer return above the floor).

    For tasks with integer rewards (CartPole: +1 per step, floor 0, max 500) this loses nothing: the
    attacked return cannot fall strictly between two grid points.
    """
    if not math.isfinite(max_return) or max_return <= floor:
        raise ValueError(f"max_return must be finite and above the floor {floor}, got {max_return!r}")
    k = math.floor(max_return - floor + 1e-9)
    if k < 1:
        raise ValueError(f"max_return={max_return} leaves no integer threshold above the floor {floor}")
    return floor + np.arange(1, k + 1, dtype=np.float64)


def expected_return_bound(
    returns: ArrayLike,
    *,
    sigma: float,
    budgets: float | ArrayLike | None = None,
    floor: float | None,
    alpha: float = 0.05,
    method: Method = "dkw",
    thresholds: ArrayLike | None = None,
    max_return: float | None = None,
    epsilon: float | ArrayLike | None = None,
    horizon: int | None = None,
) -> ReturnBound:
    """Certified lower bound on the expected return under an ℓ2 attack of total budget B.

    Kumar, Levine & Feizi (ICLR 2022), expected-reward certificate::

        E_adv[R] ≥ v_0 + Σ_{i=1..k} (v_i − v_{i−1}) · Φ(Φ⁻¹(p̲_i) − B/σ)

    where ``v_0 = floor`` and ``p̲_i`` is a lower confidence bound on ``P_clean(R ≥ v_i)``. Sound because
    ``E[R] = v_0 + ∫_{v_0}^∞ P(R ≥ v) dv ≥ v_0 + Σ_i (v_i − v_{i−1}) P(R ≥ v_i)`` and each attacked
    probability is at least ``Φ(Φ⁻¹(P_clean) − B/σ)``, which is increasing in ``P_clean``.

    Methods:
        * ``dkw``: one simultaneous band ``p̲_i = max(0, p̂_i − sqrt(ln(2/α)/(2n)))`` (two-sided
          Dvoretzky–Kiefer–Wolfowitz–Massart), so the thresholds may be chosen from the data: by
          default every distinct observed return above the floor.
        * ``cp``: one-sided Clopper–Pearson lower bounds at level ``α/k`` each (Bonferroni), which is
          valid only for a grid fixed before the data: pass ``thresholds`` or ``max_return`` (then the
          grid is every integer above the floor up to ``max_return``; :func:`integer_grid`).

    Args:
        returns: clean smoothed episode returns ``[n]`` (noise σ on every observation).
        sigma: std of the smoothing noise, > 0.
        budgets: total ℓ2 budgets ``B ≥ 0``, a number or ``[K]``. Alternatively ``epsilon`` + ``horizon``.
        floor: ``v_0``, the least return the task allows, known before the data (never the observed
            minimum). Required; an observed return below it is an error.
        alpha: failure probability in (0, 0.5); the bound holds for all budgets at once w.p. ≥ 1 − α.
        method: ``"dkw"`` or ``"cp"``.
        thresholds: ``v_1 < … < v_k`` above the floor. ``dkw`` default: distinct observed returns above
            the floor. ``cp``: required unless ``max_return`` is given.
        max_return: the largest return the task allows (e.g. 500 for CartPole-v1); a return above it is an
            error. With ``cp`` and no ``thresholds`` it defines the integer grid.
        epsilon: per-step ℓ2 budget(s), used instead of ``budgets``: ``B = ε·sqrt(horizon)``.
        horizon: episode length H for ``epsilon``.

    Returns:
        A :class:`ReturnBound`; ``bounds[j]`` is non-increasing in B, equals ``clean_lower`` at B = 0,
        never exceeds the empirical mean and tends to the floor as B → ∞.

    Raises:
        ValueError: σ ≤ 0, a budget < 0, NaN/inf returns, a missing floor or a return below it, α outside
            (0, 0.5), thresholds not strictly increasing above the floor, ``cp`` without a fixed grid, or
            ``dkw`` with ``n ≤ ln(2/α)/2`` (the band half-width is ≥ 1, so no data could certify anything).

    Example:
        >>> b = expected_return_bound([1.0, 2.0, 3.0] * 100, sigma=1.0, budgets=[0.0, 1.0], floor=0.0)
        >>> [round(float(x), 3) for x in b.bounds]
        [1.765, 0.928]

    """
    r = _check_returns(returns)
    s = _check_sigma(sigma)
    a = _check_alpha(alpha)
    v0 = _check_floor(floor, r)
    b = resolve_budgets(budgets, epsilon, horizon)
    n = int(r.size)
    if max_return is not None:
        if float(r.max()) > float(max_return):
            raise ValueError(f"an observed return {float(r.max())} is above max_return={max_return}")
    if method == "dkw":
        margin = dkw_margin(n, a)
        if margin >= 1.0:
            raise ValueError(
                f"n={n} episodes is too few for alpha={a}: the DKW half-width sqrt(ln(2/alpha)/(2n)) = "
                f"{margin:.3f} >= 1, so every lower bound is 0; need n > ln(2/alpha)/2 = "
                f"{math.log(2 / a) / 2:.3f}, and far more for a useful bound"
            )
        v = np.unique(r[r > v0]) if thresholds is None else _check_thresholds(thresholds, v0)
        if v.size == 0:  # every episode sits exactly on the floor
            v = np.asarray([v0 + 1.0])
        p_hat = _survival(r, v)
        p_low = np.maximum(p_hat - margin, 0.0)
    elif method == "cp":
        if thresholds is not None:
            v = _check_thresholds(thresholds, v0)
        elif max_return is not None:
            v = integer_grid(v0, float(max_return))
        else:
            raise ValueError(
                "method='cp' needs a threshold grid fixed before the data: pass thresholds=[...] or "
                "max_return= (then every integer return above the floor up to max_return is a threshold)"
            )
        p_low = clopper_pearson_lower(np.round(_survival(r, v) * n), n, a / v.size)
    else:
        raise ValueError(f"method must be 'dkw' or 'cp', got {method!r}")

    widths = np.diff(np.concatenate(([v0], v)))
    clean = float(v0 + np.sum(p_low * widths))
    bounds = np.empty(b.size, dtype=np.float64)
    rows = max(1, _CHUNK_ELEMENTS // max(1, v.size))  # budgets per chunk: memory stays O(K + k), not O(K·k)
    for lo in range(0, b.size, rows):
        probs = _shifted_probability(p_low, b[lo : lo + rows], s)  # [chunk, k]
        bounds[lo : lo + rows] = v0 + np.sum(probs * widths[None, :], axis=1)
    bounds[b == 0] = clean  # exactly the clean bound, whatever the summation order
    if clean <= v0:
        logger.warning("cert: no threshold has a positive lower probability; every bound is the floor %s", v0)
    return ReturnBound(
        budgets=b,
        bounds=np.asarray(bounds, dtype=np.float64),
        method=method,
        alpha=a,
        n=n,
        sigma=s,
        floor=v0,
        thresholds=v,
        p_lower=p_low,
        clean_lower=clean,
        empirical_mean=float(r.mean()),
    )


def _survival(returns: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Empirical ``P̂(R ≥ v)`` for each threshold ``[k]``."""
    sorted_r = np.sort(returns)
    below = np.searchsorted(sorted_r, thresholds, side="left")  # count of R < v
    return np.asarray((returns.size - below) / returns.size, dtype=np.float64)


# --------------------------------------------------------------------------------------------------
# percentile certificate
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PercentileBound:
    """A certified lower bound on the q-quantile of the attacked return, for each total budget B.

    With probability ≥ ``1 − alpha`` over the sampled episodes (for each budget), for every adversary of
    total ℓ2 budget ``budgets[j]``, the q-quantile of the attacked return is ≥ ``bounds[j]``.
    """

    budgets: np.ndarray
    """Total ℓ2 budgets B ``[K]``."""
    bounds: np.ndarray
    """Certified lower bounds on the attacked q-quantile ``[K]`` (the floor, or −inf, where none)."""
    q: float
    """Quantile level in (0, 1) (0.5: the median)."""
    q_prime: np.ndarray
    """``q′ = Φ(Φ⁻¹(q) − B/σ)`` ``[K]``: the clean quantile level that bounds the attacked one."""
    order_index: np.ndarray
    """1-based index k of the order statistic ``R_(k)`` used ``[K]`` (0 where none qualifies)."""
    alpha: float
    """Failure probability for each budget."""
    n: int
    """Number of smoothed episodes."""
    sigma: float
    """Std of the Gaussian observation noise."""
    floor: float | None
    """The task's least return, returned where no order statistic qualifies (None: −inf there)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (arrays as lists)."""
        return {
            "budgets": self.budgets.tolist(),
            "bounds": self.bounds.tolist(),
            "q": self.q,
            "q_prime": self.q_prime.tolist(),
            "order_index": self.order_index.tolist(),
            "alpha": self.alpha,
            "n": self.n,
            "sigma": self.sigma,
            "floor": self.floor,
        }


def order_statistic_index(n: int, q: float | np.ndarray, alpha: float) -> np.ndarray:
    """Largest 1-based ``k`` with ``P(Binomial(n, q) ≤ k − 1) ≤ α`` (0 where no ``k`` qualifies).

    Then ``R_(k) ≤ Q(q)`` (the lower q-quantile of the return distribution) with probability ≥ 1 − α:
    ``R_(k) > Q(q)`` means fewer than k samples are ≤ ``Q(q)``, and that count is
    ``Binomial(n, F(Q(q)))`` with ``F(Q(q)) ≥ q``, so its probability is ≤ ``P(Binomial(n, q) ≤ k − 1)``.
    """
    qs = np.atleast_1d(np.asarray(q, dtype=np.float64))
    out = np.zeros(qs.shape, dtype=np.int64)
    for i, qi in enumerate(qs):
        if qi <= 0:
            continue
        if qi >= 1:
            out[i] = n
            continue
        # smallest j with cdf(j) >= alpha; then fix the boundary exactly
        j = int(stats.binom.ppf(alpha, n, qi))
        while j >= 0 and stats.binom.cdf(j, n, qi) > alpha:
            j -= 1
        while j + 1 <= n - 1 and stats.binom.cdf(j + 1, n, qi) <= alpha:
            j += 1
        out[i] = min(j + 1, n)  # j = largest value with cdf(j) ≤ α; k = j + 1 (0 when j = −1)
    return out


def percentile_bound(
    returns: ArrayLike,
    *,
    q: float,
    sigma: float,
    budgets: float | ArrayLike | None = None,
    alpha: float = 0.05,
    floor: float | None = None,
    epsilon: float | ArrayLike | None = None,
    horizon: int | None = None,
) -> PercentileBound:
    """Certified lower bound on the q-quantile of the return under an ℓ2 attack of total budget B.

    Percentile form of Policy Smoothing (Kumar et al., ICLR 2022): with ``Q(q) = inf{v : F(v) ≥ q}``
    the lower q-quantile, ``Q_adv(q) ≥ Q_clean(q′)`` with ``q′ = Φ(Φ⁻¹(q) − B/σ)``. (For ``u < Q_clean(q′)``,
    ``P_clean(R > u) > 1 − q′`` so ``P_adv(R > u) > Φ(Φ⁻¹(1 − q′) − B/σ) = 1 − q``.) The unknown
    ``Q_clean(q′)`` is bounded from below by the order statistic ``R_(k)`` of
    :func:`order_statistic_index`, which is ≤ it with probability ≥ 1 − α.

    Args:
        returns: clean smoothed episode returns ``[n]``.
        q: quantile level in (0, 1), e.g. 0.5 for the median.
        sigma: std of the smoothing noise, > 0.
        budgets: total ℓ2 budgets ``B ≥ 0`` (or ``epsilon`` + ``horizon``).
        alpha: failure probability for each budget, in (0, 0.5).
        floor: the task's least return (optional here). Where no order statistic qualifies (q′ too small
            for n), the bound is ``floor``, or ``-inf`` without one. An observed return below it is an error.
        epsilon: per-step ℓ2 budget(s), ``B = ε·sqrt(horizon)``.
        horizon: episode length H for ``epsilon``.

    Returns:
        A :class:`PercentileBound`; bounds are non-increasing in B.

    Raises:
        ValueError: bad σ, q, α, budgets or returns, or ``n`` so small that even at B = 0 no order
            statistic qualifies (``(1 − q)^n > α``: need ``n ≥ ln(α)/ln(1 − q)``).

    Example:
        >>> pb = percentile_bound(list(range(1, 101)), q=0.5, sigma=1.0, budgets=[0.0], alpha=0.05)
        >>> int(pb.order_index[0]), float(pb.bounds[0])
        (42, 42.0)

    """
    r = _check_returns(returns)
    s = _check_sigma(sigma)
    a = _check_alpha(alpha)
    qf = float(q)
    if not 0 < qf < 1:
        raise ValueError(f"q must be in (0, 1) (0.5 is the median), got {q!r}")
    f = None if floor is None else _check_floor(floor, r)
    b = resolve_budgets(budgets, epsilon, horizon)
    n = int(r.size)
    if (1 - qf) ** n > a:
        need = math.ceil(math.log(a) / math.log(1 - qf))
        raise ValueError(
            f"n={n} episodes is too few for the {qf}-quantile at alpha={a}: even the smallest return is "
            f"above the quantile with probability (1-q)^n > alpha; need n >= {need}"
        )
    q_prime = special.ndtr(special.ndtri(qf) - b / s)
    q_prime[b == 0] = qf
    k = order_statistic_index(n, q_prime, a)
    sorted_r = np.sort(r)
    none_value = -math.inf if f is None else f
    bounds = np.where(k > 0, sorted_r[np.maximum(k - 1, 0)], none_value).astype(np.float64)
    return PercentileBound(
        budgets=b,
        bounds=bounds,
        q=qf,
        q_prime=np.asarray(q_prime, dtype=np.float64),
        order_index=k,
        alpha=a,
        n=n,
        sigma=s,
        floor=f,
    )


def attack_tightness(clean: float, certified: float, attacked: float) -> float:
    """The share of the certified drop an attack realises: ``(clean − attacked) / (clean − certified)``.

    1 means the attack pushes the return down to the certificate (the bound is tight for this policy);
    0 means the attack costs nothing; above 1 the attack went below the bound (only possible by chance,
    the bound holding with probability 1 − α, or with an unsound certificate). NaN where the certificate
    allows no drop (``certified ≥ clean``).

    Example:
        >>> attack_tightness(200.0, 50.0, 170.0)
        0.2
    """
    values = {"clean": clean, "certified": certified, "attacked": attacked}
    for name, v in values.items():
        if not math.isfinite(float(v)):
            raise ValueError(f"{name} must be a finite return, got {v!r}")
    drop = float(clean) - float(certified)
    if drop <= 0:
        return math.nan
    return (float(clean) - float(attacked)) / drop
