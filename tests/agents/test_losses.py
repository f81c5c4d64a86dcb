"""Pure loss functions: PPO clipping, TD targets, HL-Gauss, SAC pieces — on hand-made numbers."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from robustrl.agents.dqn import hl_gauss_loss, hl_gauss_target, td_target
from robustrl.agents.ppo import clipped_surrogate_loss, ppo_loss, value_loss
from robustrl.agents.sac import (
    sac_actor_loss,
    sac_critic_loss,
    sac_temperature_loss,
    soft_td_target,
    squashed_log_prob,
)

# ----------------------------------------------------------------------------------------------- PPO


@pytest.mark.parametrize(
    ("ratio", "adv", "expected"),
    [
        (1.5, 1.0, -1.2),  # positive advantage: gain capped at 1 + ε
        (0.5, 1.0, -0.5),  # ratio below 1 − ε with A > 0: unclipped term is the min
        (0.5, -1.0, 0.8),  # negative advantage: loss capped at (1 − ε)·|A|
        (1.5, -1.0, 1.5),  # ratio above 1 + ε with A < 0: pessimistic unclipped term
        (1.1, 2.0, -2.2),  # inside the trust region: plain ratio·A
    ],
)
def test_clipped_surrogate_hand_values(ratio: float, adv: float, expected: float) -> None:
    lp = torch.tensor([math.log(ratio)])
    loss = clipped_surrogate_loss(lp, torch.zeros(1), torch.tensor([adv]), clip_range=0.2)
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_clipped_surrogate_has_no_gradient_once_clipped() -> None:
    lp = torch.tensor([math.log(1.5), math.log(1.1)], requires_grad=True)
    loss = clipped_surrogate_loss(lp, torch.zeros(2), torch.tensor([1.0, 1.0]), clip_range=0.2)
    loss.backward()
    assert lp.grad is not None
    assert lp.grad[0].item() == 0.0
    assert lp.grad[1].item() == pytest.approx(-1.1 / 2)


def test_value_loss_clipping_is_pessimistic() -> None:
    v = torch.tensor([2.0])
    ret = torch.tensor([3.0])
    old = torch.tensor([0.0])
    assert value_loss(v, ret, old, None).item() == pytest.approx(0.5)
    # clipped prediction 0.5 is further from the target: max picks its error (2.5² / 2)
    assert value_loss(v, ret, old, 0.5).item() == pytest.approx(0.5 * 2.5**2)


def test_ppo_loss_combines_terms_and_reports_kl() -> None:
    lp = torch.log(torch.tensor([1.0, 1.0]))
    out = ppo_loss(
        lp, torch.zeros(2), torch.tensor([1.0, -1.0]), torch.tensor([1.0, 1.0]), torch.tensor([2.0, 0.0]),
        torch.tensor([1.0, 1.0]), torch.tensor([0.5, 0.7]), clip_range=0.2, clip_range_vf=None,
        vf_coef=0.5, ent_coef=0.1,
    )
    assert out.policy.item() == pytest.approx(0.0)
    assert out.value.item() == pytest.approx(0.5)
    assert out.entropy.item() == pytest.approx(0.6)
    assert out.total.item() == pytest.approx(0.0 + 0.25 - 0.06)
    assert out.approx_kl.item() == pytest.approx(0.0)
    assert out.clip_fraction.item() == 0.0


# ----------------------------------------------------------------------------------------------- DQN


def test_td_target_masks_only_termination() -> None:
    out = td_target(torch.tensor([1.0, 1.0]), torch.tensor([5.0, 5.0]), torch.tensor([0.0, 1.0]), 0.9)
    torch.testing.assert_close(out, torch.tensor([5.5, 1.0]))


SUPPORT = torch.linspace(-10.0, 10.0, 41)
WIDTH = float(SUPPORT[1] - SUPPORT[0])


@settings(max_examples=50, deadline=None)
@given(st.floats(-8.0, 8.0))
def test_hl_gauss_target_is_a_distribution_with_the_target_as_mean(target: float) -> None:
    probs = hl_gauss_target(torch.tensor([target], dtype=torch.float64), SUPPORT.double(), 0.75 * WIDTH)
    assert probs.shape == (1, 41)
    assert bool((probs >= 0).all())
    assert probs.sum().item() == pytest.approx(1.0, abs=1e-9)
    mean = (probs * SUPPORT.double()).sum().item()
    assert mean == pytest.approx(target, abs=1e-3 * WIDTH)


def test_hl_gauss_target_matches_integrated_gaussian() -> None:
    # σ = 0.75·w, target on a bin centre: the centre bin holds P(|Z| ≤ w/2 / σ) of the (renormalised) mass.
    sigma = 0.75 * WIDTH
    probs = hl_gauss_target(torch.tensor([0.0], dtype=torch.float64), SUPPORT.double(), sigma)[0]
    normal = torch.distributions.Normal(0.0, sigma)
    centre = (normal.cdf(torch.tensor(WIDTH / 2)) - normal.cdf(torch.tensor(-WIDTH / 2))).item()
    assert probs[20].item() == pytest.approx(centre, rel=1e-6)
    assert probs[19].item() == pytest.approx(probs[21].item())


def test_hl_gauss_target_outside_support_stays_on_the_support() -> None:
    probs = hl_gauss_target(torch.tensor([50.0]), SUPPORT, 0.75 * WIDTH)
    assert probs.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert probs[0, -1].item() > 0.5


def test_hl_gauss_loss_is_minimised_by_the_target_distribution() -> None:
    target = torch.tensor([1.3, -4.2])
    probs = hl_gauss_target(target, SUPPORT, 0.75 * WIDTH)
    best = hl_gauss_loss(torch.log(probs + 1e-30), target, SUPPORT, 0.75 * WIDTH)
    entropy = -(probs * torch.log(probs + 1e-30)).sum(-1).mean()
    assert best.item() == pytest.approx(entropy.item(), abs=1e-4)
    worse = hl_gauss_loss(torch.zeros(2, 41), target, SUPPORT, 0.75 * WIDTH)
    assert worse.item() > best.item() + 1.0


# ----------------------------------------------------------------------------------------------- SAC


def test_squashed_log_prob_matches_torch_transformed_distribution() -> None:
    g = torch.Generator().manual_seed(0)
    mean = torch.randn(5, 3, generator=g)
    log_std = torch.randn(5, 3, generator=g) * 0.3
    u = mean + log_std.exp() * torch.randn(5, 3, generator=g)
    base = torch.distributions.Normal(mean.double(), log_std.exp().double())
    dist = torch.distributions.TransformedDistribution(base, [torch.distributions.TanhTransform()])
    expected = dist.log_prob(torch.tanh(u.double())).sum(-1)
    torch.testing.assert_close(squashed_log_prob(u.double(), mean.double(), log_std.double()), expected)


def test_soft_td_target_hand_values() -> None:
    y = soft_td_target(
        torch.tensor([1.0, 1.0]), torch.tensor([3.0, 3.0]), torch.tensor([2.0, 5.0]),
        torch.tensor([-1.0, -1.0]), torch.tensor([0.0, 1.0]), alpha=0.5, gamma=0.9,
    )
    torch.testing.assert_close(y, torch.tensor([1.0 + 0.9 * (2.0 + 0.5), 1.0]))


def test_sac_losses_hand_values_and_gradients() -> None:
    q1 = torch.tensor([1.0, 2.0], requires_grad=True)
    loss = sac_critic_loss(q1, torch.tensor([0.0, 0.0]), torch.tensor([1.0, 1.0]))
    assert loss.item() == pytest.approx(0.5 * (0.5 + 1.0))
    actor = sac_actor_loss(torch.tensor([2.0]), torch.tensor([-1.0]), torch.tensor(0.5))
    assert actor.item() == pytest.approx(-2.5)
    log_alpha = torch.tensor(0.0, requires_grad=True)
    # entropy 1 (log π = −1) below the target 2 (H̄ = 2): the gradient step must raise α
    sac_temperature_loss(log_alpha, torch.tensor([-1.0]), target_entropy=2.0).backward()
    assert log_alpha.grad is not None and log_alpha.grad.item() < 0
