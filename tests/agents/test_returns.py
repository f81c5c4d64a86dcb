"""GAE and discounted returns: analytic oracles, truncation vs termination."""

from __future__ import annotations

import pytest
import torch

from robustrl.agents.returns import (
    discounted_returns,
    generalized_advantage_estimate,
    next_values_from_rollout,
)


def _flags(t: int, n: int, where: list[tuple[int, int]]) -> torch.Tensor:
    f = torch.zeros(t, n, dtype=torch.bool)
    for i, j in where:
        f[i, j] = True
    return f


def test_gae_zero_advantage_for_perfect_critic_only_if_truncation_bootstraps() -> None:
    # Reward 1 forever, cut by a time limit: V ≡ 1/(1−γ) is the true value everywhere.
    gamma, t_len = 0.9, 6
    v_star = 1.0 / (1.0 - gamma)
    rewards = torch.ones(t_len, 1)
    values = torch.full((t_len, 1), v_star)
    truncated = _flags(t_len, 1, [(2, 0)])
    no_term = torch.zeros(t_len, 1, dtype=torch.bool)
    next_values = torch.full((t_len, 1), v_star)  # V(final_obs) = v_star at the truncation too
    est = generalized_advantage_estimate(rewards, values, next_values, no_term, truncated, gamma, 0.95)
    torch.testing.assert_close(est.advantages, torch.zeros(t_len, 1), atol=1e-5, rtol=0)
    torch.testing.assert_close(est.returns, values)
    # Treating the truncation as a termination is wrong: the advantage at the cut is 1 − v_star.
    wrong = generalized_advantage_estimate(rewards, values, next_values, truncated, truncated, gamma, 0.95)
    assert wrong.advantages[2, 0].item() == pytest.approx(1.0 - v_star)


def test_gae_lambda_one_is_discounted_return_minus_value() -> None:
    g = torch.Generator().manual_seed(0)
    t_len, n, gamma = 7, 3, 0.97
    rewards = torch.randn(t_len, n, generator=g)
    values = torch.randn(t_len, n, generator=g)
    final_values = torch.randn(t_len, n, generator=g)
    last = torch.randn(n, generator=g)
    term = _flags(t_len, n, [(1, 0), (4, 2)])
    trunc = _flags(t_len, n, [(3, 1), (5, 0)])
    nxt = next_values_from_rollout(values, last, term | trunc, final_values)
    est = generalized_advantage_estimate(rewards, values, nxt, term, trunc, gamma, 1.0)
    expected = discounted_returns(rewards, term, trunc, nxt, gamma)
    torch.testing.assert_close(est.returns, expected)


def test_gae_lambda_zero_is_one_step_td_error() -> None:
    rewards = torch.tensor([[1.0], [2.0], [3.0]])
    values = torch.tensor([[0.5], [1.0], [1.5]])
    next_values = torch.tensor([[1.0], [4.0], [2.0]])
    term = _flags(3, 1, [(1, 0)])
    trunc = torch.zeros(3, 1, dtype=torch.bool)
    est = generalized_advantage_estimate(rewards, values, next_values, term, trunc, 0.5, 0.0)
    expected = torch.tensor([[1.0 + 0.5 * 1.0 - 0.5], [2.0 - 1.0], [3.0 + 0.5 * 2.0 - 1.5]])
    torch.testing.assert_close(est.advantages, expected)


def test_gae_hand_computed_two_step_episode() -> None:
    # Episode terminates at t=1; the next episode starts at t=2 and must not leak back.
    gamma, lam = 0.5, 0.5
    rewards = torch.tensor([[1.0], [1.0], [1.0]])
    values = torch.tensor([[2.0], [1.0], [3.0]])
    nxt = torch.tensor([[1.0], [99.0], [4.0]])  # 99 is ignored (terminated)
    term = _flags(3, 1, [(1, 0)])
    trunc = torch.zeros(3, 1, dtype=torch.bool)
    adv = generalized_advantage_estimate(rewards, values, nxt, term, trunc, gamma, lam).advantages
    d0, d1, d2 = 1 + 0.5 * 1 - 2, 1 - 1, 1 + 0.5 * 4 - 3
    torch.testing.assert_close(adv.squeeze(1), torch.tensor([d0 + 0.25 * d1, d1, d2]))


def test_next_values_from_rollout_uses_final_values_only_where_done() -> None:
    values = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    final = torch.tensor([[10.0, 20.0], [30.0, 40.0]])
    done = _flags(2, 2, [(0, 1), (1, 0)])
    out = next_values_from_rollout(values, torch.tensor([5.0, 6.0]), done, final)
    torch.testing.assert_close(out, torch.tensor([[3.0, 20.0], [30.0, 6.0]]))


def test_gae_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="same shape"):
        z = torch.zeros(3, 2)
        f = torch.zeros(3, 2, dtype=torch.bool)
        generalized_advantage_estimate(z, torch.zeros(3, 1), z, f, f, 0.9, 0.9)
