"""The learned attacks' test-time pieces: perturbation geometry, PA-AD's actor, robust Sarsa's PGD step."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch

from robustrl.policies.networks import ActorCriticPolicy
from robustrl.rollout.context import StepContext
from robustrl.threats.learned import (
    LearnedAttack,
    director_perturbation,
    learned_perturbation,
    policy_features,
    sa_rl_perturbation,
)
from robustrl.threats.pgd import SearchConfig
from robustrl.threats.robust_sarsa import SarsaQ, sarsa_attack


def _victim(discrete: bool = True, seed: int = 0) -> ActorCriticPolicy:
    torch.manual_seed(seed)
    space = gym.spaces.Box(-2.0, 2.0, (3,))
    act = gym.spaces.Discrete(3) if discrete else gym.spaces.Box(-1.0, 1.0, (2,))
    return ActorCriticPolicy(space, act).eval()


def test_sa_rl_perturbation_is_the_action_scaled_into_the_ball() -> None:
    a = torch.tensor([[0.5, -2.0, 1.0], [0.0, 0.0, 0.3]])
    u = sa_rl_perturbation(a, 0.1, "linf", torch.Size([3]))
    assert torch.allclose(u, torch.tensor([[0.05, -0.1, 0.1], [0.0, 0.0, 0.03]]))
    u2 = sa_rl_perturbation(torch.tensor([[3.0, 4.0, 0.0], [0.3, 0.4, 0.0]]), 0.2, "l2", torch.Size([3]))
    assert torch.allclose(u2.norm(dim=1), torch.tensor([0.2, 0.1]))  # projected only when outside the ball


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("kind", ["sa-rl", "pa-ad"])
def test_learned_perturbations_stay_in_the_ball_and_the_box(kind: str, norm: str) -> None:
    victim = _victim()
    g = torch.Generator().manual_seed(0)
    obs = torch.rand(64, 3, generator=g) * 4 - 2  # some rows at the box edges
    obs[:8] = 2.0
    action = torch.rand(64, 3, generator=g) * 4 - 2  # 3 observations, 3 actions
    adv = learned_perturbation(kind, victim, obs, action, 0.3, g, norm=norm)  # type: ignore[arg-type]
    delta = adv - obs
    size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert bool((size <= 0.3 + 1e-5).all())
    assert bool((adv <= 2.0 + 1e-6).all()) and bool((adv >= -2.0 - 1e-6).all())


@pytest.mark.parametrize("discrete", [True, False])
def test_pa_ad_actor_moves_the_policy_along_the_direction(discrete: bool) -> None:
    victim = _victim(discrete)
    g = torch.Generator().manual_seed(1)
    obs = torch.rand(128, 3, generator=g) - 0.5
    k = 3 if discrete else 2
    direction = torch.randn(128, k, generator=g)
    adv = director_perturbation(victim, obs, direction, 0.2, g, SearchConfig(steps=10))
    with torch.no_grad():
        gain = ((policy_features(victim, adv) - policy_features(victim, obs)) * direction).sum(1)
        other = ((policy_features(victim, adv) - policy_features(victim, obs)) * -direction).sum(1)
    assert float(gain.mean()) > 0  # along the asked direction, never against it on average
    assert float(gain.mean()) > float(other.mean())
    assert float((gain >= -1e-6).float().mean()) > 0.95


def test_robust_sarsa_step_lowers_the_q_of_the_chosen_action() -> None:
    victim = _victim()
    torch.manual_seed(3)
    q = SarsaQ(3, 3, discrete=True)
    g = torch.Generator().manual_seed(2)
    obs = torch.rand(256, 3, generator=g) - 0.5
    adv = sarsa_attack(victim, q, obs, 0.3, g, SearchConfig(steps=10))
    assert bool(((adv - obs).abs() <= 0.3 + 1e-5).all())
    with torch.no_grad():
        q_all = q.all_actions(obs)
        before = (policy_features(victim, obs) * q_all).sum(1)
        after = (policy_features(victim, adv) * q_all).sum(1)
        for a in range(3):  # all_actions agrees with the pointwise forward
            assert torch.allclose(q_all[:, a], q(obs, torch.full((256,), a)), atol=1e-6)
    assert float((after <= before + 1e-6).float().mean()) > 0.95
    assert float((before - after).mean()) > 0


def test_learned_attack_without_an_adversary_or_budget_is_the_identity() -> None:
    victim = _victim()
    obs = torch.rand(4, 3)
    ctx = StepContext(victim, torch.zeros(4, dtype=torch.int64), torch.ones(4, dtype=torch.bool), torch.Generator())
    assert torch.equal(LearnedAttack("sa-rl", None, 0.1)(obs, ctx), obs)
    assert torch.equal(LearnedAttack("sa-rl", victim, 0.0)(obs, ctx), obs)
