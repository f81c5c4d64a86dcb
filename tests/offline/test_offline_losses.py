"""Hand-computed values of the offline losses and dataset measures."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robustrl.offline.iql import RIQL_PRESETS, riql_preset
from robustrl.offline.losses import cql_penalty, ensemble_quantile, expectile_loss, huber_loss, td3bc_actor_loss
from robustrl.offline.measures import state_action_coverage, trajectory_quality, unique_state_actions


def test_riql_huber_matches_hand_values() -> None:
    # σ = 2: threshold δ = 1/σ² = 0.25; |d| < δ → ½d²/δ = 2d², else |d| − δ/2
    d = torch.tensor([0.1, -0.2, 0.25, 1.0, -3.0])
    expected = torch.tensor([0.02, 0.08, 0.125, 0.875, 2.875])
    torch.testing.assert_close(huber_loss(d, 2.0), expected)
    # σ = 1 is the ordinary Huber loss with δ = 1 (smooth L1)
    smooth_l1 = torch.nn.functional.smooth_l1_loss(d, torch.zeros(5), reduction="none")
    torch.testing.assert_close(huber_loss(d, 1.0), smooth_l1)


def test_quantile_over_the_ensemble_matches_hand_values() -> None:
    q = torch.tensor([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [4.0, 40.0], [5.0, 50.0]])  # K = 5, B = 2
    torch.testing.assert_close(ensemble_quantile(q, 0.25), torch.tensor([2.0, 20.0]))
    torch.testing.assert_close(ensemble_quantile(q, 0.1), torch.tensor([1.4, 14.0]))  # linear interpolation
    torch.testing.assert_close(ensemble_quantile(q, 0.0), q.min(0).values)


def test_expectile_td3bc_and_cql_values() -> None:
    u = torch.tensor([2.0, -1.0])
    assert float(expectile_loss(u, 0.9)) == pytest.approx((0.9 * 4 + 0.1 * 1) / 2)
    q = torch.tensor([2.0, -2.0])
    pi, a = torch.tensor([[0.5], [0.0]]), torch.tensor([[0.0], [0.0]])
    assert float(td3bc_actor_loss(q, pi, a, 2.5)) == pytest.approx(-(2.5 / 2.0) * 0.0 + 0.125)
    sampled = torch.zeros(1, 1, 4)  # log Σ exp 0 over 4 actions = log 4
    assert float(cql_penalty(sampled, torch.tensor([[1.0]]))) == pytest.approx(np.log(4) - 1.0)


def test_riql_presets_are_the_published_ones() -> None:
    hop = riql_preset("Hopper-v5", "random", "next_obs")
    assert (hop.sigma, hop.quantile, hop.num_critics) == (1.0, 0.5, 5)
    cheetah = riql_preset("HalfCheetah-v5", "random", "actions")
    assert (cheetah.sigma, cheetah.quantile, cheetah.num_critics) == (0.5, 0.25, 3)
    assert riql_preset("Pendulum-v1", "random", "obs") == riql_preset("Pendulum-v1", None, None)
    assert all(c.q_loss == "huber" and c.v_target == "quantile" and c.normalize_obs for c in RIQL_PRESETS.values())
    assert len(RIQL_PRESETS) == 24


def test_tq_and_saco_hand_values() -> None:
    assert trajectory_quality(np.array([-100.0, -300.0]), ref_min=-1000.0, ref_max=0.0) == pytest.approx(0.8)
    obs = np.array([[0.001, 1.0], [0.004, 1.0], [0.5, 1.0], [0.5, 1.0]])
    act = np.array([[0.0], [0.0], [1.0], [1.0]])
    assert unique_state_actions(obs, act, decimals=2) == 2  # 0.001 and 0.004 round to 0.00
    assert unique_state_actions(obs, act, decimals=3) == 3
    ref_obs = np.concatenate([obs, [[9.0, 9.0], [8.0, 8.0]]])
    ref_act = np.concatenate([act, [[0.0], [0.0]]])
    assert state_action_coverage(obs, act, ref_obs, ref_act) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="ref_max"):
        trajectory_quality(np.array([1.0]), ref_min=1.0, ref_max=1.0)
