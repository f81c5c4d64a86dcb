"""Policy Smoothing bounds: exact toy values, analytic oracles, properties, refusals."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robustrl.certify import (
    dkw_margin,
    expected_return_bound,
    integer_grid,
    order_statistic_index,
    per_step_budget,
    percentile_bound,
)

N01 = NormalDist()


def shifted(p: float, budget: float, sigma: float) -> float:
    """Φ(Φ⁻¹(p) − B/σ) with the standard library's normal, independent of scipy."""
    if p <= 0:
        return 0.0
    return N01.cdf(N01.inv_cdf(p) - budget / sigma)


# ---------------------------------------------------------------- expected return: exact values
def test_dkw_exact_values_on_hand_made_sample() -> None:
    returns = [2.0] * 30 + [5.0] * 50 + [9.0] * 20  # n = 100, thresholds 2 < 5 < 9
    alpha, sigma = 0.1, 0.25
    margin = math.sqrt(math.log(2 / alpha) / (2 * 100))
    assert dkw_margin(100, alpha) == pytest.approx(margin, rel=1e-12)
    p_low = [1.0 - margin, 0.7 - margin, 0.2 - margin]
    widths = [2.0, 3.0, 4.0]
    res = expected_return_bound(returns, sigma=sigma, budgets=[0.0, 0.1, 0.5], floor=0.0, alpha=alpha)
    np.testing.assert_allclose(res.thresholds, [2.0, 5.0, 9.0])
    np.testing.assert_allclose(res.p_lower, p_low, rtol=1e-12)
    for j, b in enumerate([0.0, 0.1, 0.5]):
        expected = sum(w * shifted(p, b, sigma) for w, p in zip(widths, p_low))
        assert res.bounds[j] == pytest.approx(expected, rel=1e-9)
    assert res.clean_lower == pytest.approx(2 * (1 - margin) + 3 * (0.7 - margin) + 4 * (0.2 - margin))
    assert res.empirical_mean == pytest.approx(0.3 * 2 + 0.5 * 5 + 0.2 * 9)
    assert res.n == 100 and res.method == "dkw" and res.floor == 0.0


def test_dkw_clips_small_probabilities_to_zero() -> None:
    # P̂(R >= 9) = 0.02 < margin: that threshold contributes nothing at any budget
    returns = [3.0] * 98 + [9.0] * 2
    res = expected_return_bound(returns, sigma=1.0, budgets=[0.0, 1.0], floor=1.0, alpha=0.05)
    m = dkw_margin(100, 0.05)
    assert res.p_lower[1] == 0.0
    assert res.bounds[0] == pytest.approx(1.0 + 2.0 * (1.0 - m))
    assert res.bounds[1] == pytest.approx(1.0 + 2.0 * shifted(1.0 - m, 1.0, 1.0))


def test_clopper_pearson_closed_forms() -> None:
    # x = n successes: lower bound level**(1/n); x = 1: 1 - (1 - level)**(1/n)
    n, alpha = 10, 0.06
    returns = [3.0] + [1.0] * 9
    res = expected_return_bound(returns, sigma=0.5, budgets=[0.0, 0.3], floor=0.0, alpha=alpha,
                                method="cp", thresholds=[1.0, 2.0, 3.0])
    level = alpha / 3  # Bonferroni over the 3 fixed thresholds
    p_all = level ** (1 / n)
    p_one = 1 - (1 - level) ** (1 / n)
    np.testing.assert_allclose(res.p_lower, [p_all, p_one, p_one], rtol=1e-9)
    assert res.bounds[0] == pytest.approx(p_all + 2 * p_one, rel=1e-9)
    expected = shifted(p_all, 0.3, 0.5) + 2 * shifted(p_one, 0.3, 0.5)
    assert res.bounds[1] == pytest.approx(expected, rel=1e-9)


def test_clopper_pearson_is_the_binomial_tail_inverse() -> None:
    from scipy.stats import binom

    rng = np.random.default_rng(3)
    returns = rng.integers(0, 21, size=200).astype(float)
    res = expected_return_bound(returns, sigma=1.0, budgets=[0.0], floor=0.0, method="cp", max_return=20)
    np.testing.assert_array_equal(res.thresholds, np.arange(1, 21))
    level = 0.05 / 20
    for v, p in zip(res.thresholds, res.p_lower):
        x = int(np.sum(returns >= v))
        # P(Binomial(n, p) >= x) = level defines the one-sided lower bound
        assert binom.sf(x - 1, 200, p) == pytest.approx(level, rel=1e-6)


def test_integer_grid() -> None:
    np.testing.assert_array_equal(integer_grid(0.0, 5.0), [1, 2, 3, 4, 5])
    np.testing.assert_array_equal(integer_grid(-2.0, 1.5), [-1, 0, 1])


def test_per_step_budget_and_epsilon_argument() -> None:
    np.testing.assert_allclose(per_step_budget([0.0, 0.1, 0.2], 400), [0.0, 2.0, 4.0])
    returns = np.arange(1.0, 51.0)
    a = expected_return_bound(returns, sigma=1.0, budgets=[0.0, 2.0, 4.0], floor=0.0)
    b = expected_return_bound(returns, sigma=1.0, epsilon=[0.0, 0.1, 0.2], horizon=400, floor=0.0)
    np.testing.assert_allclose(a.bounds, b.bounds)
    np.testing.assert_allclose(b.budgets, [0.0, 2.0, 4.0])


# ---------------------------------------------------------------- analytic oracle: a tight case
def test_bound_is_sound_and_tight_for_a_linear_one_step_task() -> None:
    """One step, obs 0, smoothed policy scores 1 iff obs + noise >= -c: the worst ℓ2 shift of size B gives
    exactly E_adv[R] = Φ((c − B)/σ) = Φ(Φ⁻¹(p) − B/σ), so a good bound sits just below it."""
    sigma, c, n = 0.5, 0.4, 200_000
    rng = np.random.default_rng(0)
    returns = (rng.normal(0.0, sigma, size=n) >= -c).astype(float)
    budgets = np.array([0.0, 0.2, 0.5, 1.0])
    truth = np.array([N01.cdf((c - b) / sigma) for b in budgets])
    for method in ("dkw", "cp"):
        res = expected_return_bound(returns, sigma=sigma, budgets=budgets, floor=0.0, method=method,
                                    thresholds=[1.0])
        assert np.all(res.bounds <= truth)
        assert np.all(res.bounds >= truth - 0.01)


def test_clean_lower_bound_covers_the_true_mean() -> None:
    # a known discrete law: P(R=0)=.2, P(R=3)=.5, P(R=10)=.3 → mean 4.5; coverage must be >= 1 - alpha
    rng = np.random.default_rng(1)
    values, probs = np.array([0.0, 3.0, 10.0]), np.array([0.2, 0.5, 0.3])
    misses = {"dkw": 0, "cp": 0}
    trials = 300
    for _ in range(trials):
        sample = rng.choice(values, size=40, p=probs)
        for method, extra in (("dkw", {}), ("cp", {"thresholds": [3.0, 10.0]})):
            res = expected_return_bound(sample, sigma=1.0, budgets=[0.0], floor=0.0, alpha=0.1,
                                        method=method, **extra)
            misses[method] += res.clean_lower > 4.5
    assert misses["dkw"] <= 0.1 * trials and misses["cp"] <= 0.1 * trials


# ---------------------------------------------------------------- properties
returns_strategy = st.lists(st.integers(0, 50), min_size=5, max_size=60).map(lambda xs: np.asarray(xs, float))


@settings(max_examples=60, deadline=None)
@given(returns=returns_strategy, sigma=st.floats(0.05, 2.0), method=st.sampled_from(["dkw", "cp"]))
def test_bound_properties(returns: np.ndarray, sigma: float, method: str) -> None:
    budgets = np.array([0.0, 0.01, 0.1, 0.5, 1.0, 3.0, 1e6])
    extra = {"max_return": 50.0} if method == "cp" else {}
    res = expected_return_bound(returns, sigma=sigma, budgets=budgets, floor=0.0, method=method, **extra)
    assert np.all(np.diff(res.bounds) <= 1e-12)  # non-increasing in B
    assert res.bounds[0] == res.clean_lower  # B = 0 is the clean lower bound
    assert res.bounds[0] <= returns.mean() + 1e-9  # never above the empirical mean
    assert np.all(res.bounds >= 0.0)  # never below the floor
    assert res.bounds[-1] == pytest.approx(0.0, abs=1e-6)  # → floor as B → ∞


def test_bound_tends_to_floor_with_negative_floor() -> None:
    res = expected_return_bound([-5.0, 0.0, 3.0] * 20, sigma=1.0, budgets=[0.0, 50.0], floor=-10.0)
    assert res.bounds[1] == pytest.approx(-10.0)
    assert -10.0 < res.bounds[0] <= np.mean([-5.0, 0.0, 3.0])


def test_all_returns_on_the_floor_give_the_floor() -> None:
    res = expected_return_bound([0.0] * 10, sigma=1.0, budgets=[0.0, 1.0], floor=0.0)
    np.testing.assert_array_equal(res.bounds, [0.0, 0.0])


# ---------------------------------------------------------------- refusals
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sigma": 0.0}, "sigma"),
        ({"sigma": -1.0}, "sigma"),
        ({"budgets": [0.0, -0.1]}, "budgets"),
        ({"returns": [1.0, float("nan"), 2.0]}, "non-finite"),
        ({"floor": None}, "floor is required"),
        ({"floor": 1.5}, "floor"),
        ({"returns": [1.0], "alpha": 0.05}, "too few"),
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": 0.7}, "alpha"),
        ({"method": "cp"}, "grid fixed before the data"),
        ({"method": "bogus"}, "method"),
        ({"thresholds": [2.0, 1.0]}, "strictly increasing"),
        ({"thresholds": [0.0, 1.0]}, "above the floor"),
        ({"epsilon": 0.1, "horizon": 10}, "not both"),
        ({"budgets": None, "epsilon": 0.1}, "horizon"),
        ({"max_return": 2.0}, "max_return"),
        ({"returns": [[1.0, 2.0]]}, "1-D"),
        ({"returns": []}, "empty"),
    ],
)
def test_expected_return_bound_refuses_bad_input(kwargs: dict, match: str) -> None:
    args = {"returns": [1.0, 2.0, 3.0] * 10, "sigma": 1.0, "budgets": [0.0, 1.0], "floor": 0.0}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        expected_return_bound(args.pop("returns"), **args)


def test_dkw_minimum_n_is_exact() -> None:
    # half-width < 1 iff n > ln(2/alpha)/2: alpha = 0.05 → ln(40)/2 = 1.84 → n = 2 is the smallest allowed
    with pytest.raises(ValueError, match="too few"):
        expected_return_bound([1.0], sigma=1.0, budgets=[0.0], floor=0.0, alpha=0.05)
    expected_return_bound([1.0, 1.0], sigma=1.0, budgets=[0.0], floor=0.0, alpha=0.05)


# ---------------------------------------------------------------- percentile bound
def binom_cdf(j: int, n: int, p: float) -> float:
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(j + 1))


def test_order_statistic_index_matches_a_direct_search() -> None:
    for n, q, alpha in [(100, 0.5, 0.05), (37, 0.2, 0.1), (60, 0.9, 0.01), (20, 0.05, 0.05)]:
        k = 0
        for cand in range(1, n + 1):
            if binom_cdf(cand - 1, n, q) <= alpha:
                k = cand
        assert int(order_statistic_index(n, q, alpha)[0]) == k


def test_percentile_exact_values() -> None:
    returns = np.arange(100.0, 0.0, -1.0)  # 1..100 in any order
    sigma, budgets = 2.0, np.array([0.0, 1.0, 3.0])
    res = percentile_bound(returns, q=0.5, sigma=sigma, budgets=budgets, alpha=0.05)
    for j, b in enumerate(budgets):
        q_prime = N01.cdf(N01.inv_cdf(0.5) - b / sigma)
        assert res.q_prime[j] == pytest.approx(q_prime, rel=1e-12)
        k = max((c for c in range(1, 101) if binom_cdf(c - 1, 100, q_prime) <= 0.05), default=0)
        assert res.order_index[j] == k
        assert res.bounds[j] == float(k)  # R_(k) = k here
    assert res.order_index[0] == 42


def test_percentile_no_order_statistic_gives_floor_or_minus_inf() -> None:
    returns = np.linspace(1.0, 10.0, 30)
    res = percentile_bound(returns, q=0.5, sigma=0.1, budgets=[0.0, 5.0], alpha=0.05)
    assert res.order_index[1] == 0 and res.bounds[1] == -math.inf
    res = percentile_bound(returns, q=0.5, sigma=0.1, budgets=[0.0, 5.0], alpha=0.05, floor=0.0)
    assert res.bounds[1] == 0.0
    assert res.bounds[0] > 0.0


def test_percentile_monotone_and_covers_true_quantile() -> None:
    rng = np.random.default_rng(5)
    sigma, q, alpha = 1.0, 0.5, 0.1
    budgets = np.array([0.0, 0.25, 0.5, 1.0])
    q_prime = np.array([N01.cdf(N01.inv_cdf(q) - b / sigma) for b in budgets])
    misses = np.zeros(len(budgets))
    trials = 300
    for _ in range(trials):
        sample = rng.uniform(0.0, 1.0, size=80)  # true q'-quantile of U(0,1) is q'
        res = percentile_bound(sample, q=q, sigma=sigma, budgets=budgets, alpha=alpha)
        assert np.all(np.diff(res.bounds) <= 0)
        misses += res.bounds > q_prime
    assert np.all(misses <= alpha * trials)


def test_percentile_refusals() -> None:
    with pytest.raises(ValueError, match="too few"):
        percentile_bound([1.0] * 4, q=0.5, sigma=1.0, budgets=[0.0], alpha=0.05)  # 0.5**4 > 0.05
    percentile_bound([1.0] * 5, q=0.5, sigma=1.0, budgets=[0.0], alpha=0.05)  # 0.5**5 < 0.05
    with pytest.raises(ValueError, match="q must be"):
        percentile_bound([1.0] * 10, q=1.0, sigma=1.0, budgets=[0.0])
    with pytest.raises(ValueError, match="sigma"):
        percentile_bound([1.0] * 10, q=0.5, sigma=0.0, budgets=[0.0])
    with pytest.raises(ValueError, match="budgets"):
        percentile_bound([1.0] * 10, q=0.5, sigma=1.0, budgets=[-1.0])
    with pytest.raises(ValueError, match="non-finite"):
        percentile_bound([1.0, float("nan")] * 10, q=0.5, sigma=1.0, budgets=[0.0])
    with pytest.raises(ValueError, match="floor"):
        percentile_bound([1.0] * 10, q=0.5, sigma=1.0, budgets=[0.0], floor=2.0)


def test_bounds_over_many_budgets_are_computed_in_chunks_with_the_same_values(monkeypatch) -> None:
    from robustrl.certify import smoothing

    rng = np.random.default_rng(0)
    returns = rng.integers(0, 500, size=2000).astype(float)
    budgets = np.linspace(0, 3, 101)
    whole = expected_return_bound(returns, sigma=0.5, budgets=budgets, floor=0.0)
    monkeypatch.setattr(smoothing, "_CHUNK_ELEMENTS", 7)  # a few budgets per chunk (k ≈ 500 thresholds)
    chunked = expected_return_bound(returns, sigma=0.5, budgets=budgets, floor=0.0)
    np.testing.assert_array_equal(chunked.bounds, whole.bounds)
    for i in (0, 37, 100):  # and each equals the bound of that budget alone
        alone = expected_return_bound(returns, sigma=0.5, budgets=[budgets[i]], floor=0.0)
        assert alone.bounds[0] == whole.bounds[i]


def test_budget_ranges_are_counted_before_they_are_expanded(monkeypatch) -> None:
    from robustrl.certify.config import parse_budgets

    monkeypatch.setenv("ROBUSTRL_MAX_MEMORY", "1M")
    assert parse_budgets(["0:1:0.5"]).tolist() == [0.0, 0.5, 1.0]
    with pytest.raises(ValueError, match=r"--budgets 0:1:1e-5 \(100001 budgets\) needs about 24\.4 MiB"):
        parse_budgets(["0:1:1e-5"])
    with pytest.raises(ValueError, match=r"--budgets 0:inf:1: cannot read|cannot read '0:inf:1'"):
        parse_budgets(["0:inf:1"])
