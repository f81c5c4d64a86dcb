"""Soundness: on a trained smoothed CartPole policy, the certificate never exceeds what the library's
strongest episode-budget attack (EOT PGD under a total ℓ2 budget B: even, flip and targeted-flip) achieves
at the same B, and the tightness of the check is what the docs report."""

from __future__ import annotations

import pytest

import robustrl
from robustrl.certify import certify_policy, smoothing_transform
from robustrl.policies import ActorCriticPolicy
from robustrl.threats import EpisodeL2Attack, EpisodeL2Config

SIGMA = 0.2
HORIZON = 200  # a shorter CartPole keeps the attacked rollouts fast; certificate and attacks share it


VARIANTS = ({"allocation": "even"}, {"allocation": "flip"}, {"allocation": "flip", "objective": "targeted"})
"""The episode-budget attacks the certificate is checked against (the minimum over them is the strongest)."""


def attacked_mean(policy: ActorCriticPolicy, budget: float, variant: dict, episodes: int = 32) -> float:
    cfg = EpisodeL2Config(smoothing_sigma=SIGMA, horizon=HORIZON, **variant)
    env = robustrl.make_env("CartPole-v1", episodes, seed=2, max_episode_steps=HORIZON)
    attack = smoothing_transform(SIGMA, EpisodeL2Attack(budget, cfg))  # attack first, then the agent's noise
    return float(robustrl.rollout(policy, env, episodes, seed=3, obs_transform=attack).returns.mean())


@pytest.mark.slow
def test_certificate_never_exceeds_the_strongest_attack(cartpole_ppo_smoothed: ActorCriticPolicy) -> None:
    smoothed_cartpole = cartpole_ppo_smoothed  # PPO trained with σ = 0.2 observation noise (tests/conftest.py)
    budgets = [0.5, 2.0]
    cert = certify_policy(
        smoothed_cartpole,
        "CartPole-v1",
        sigma=SIGMA,
        budgets=budgets,
        episodes=2000,
        seed=1,
        env_kwargs={"max_episode_steps": HORIZON},
    )
    assert cert.clean_return > 0.9 * HORIZON  # training worked: the smoothed policy balances
    assert cert.bounds[0] > 10.0  # and the certificate says something at B = 0.5
    attacked = [min(attacked_mean(smoothed_cartpole, b, v) for v in VARIANTS) for b in budgets]
    for bound, value in zip(cert.bounds, attacked):
        assert bound <= value, f"certified {cert.bounds.tolist()} vs attacked {attacked}"
    assert attacked[-1] < cert.clean_return - 50  # the attack is real: it costs ≥ 50 return at B = 2
