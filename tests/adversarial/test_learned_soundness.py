"""Soundness with learned attacks: on a smoothed CartPole policy, the Policy Smoothing certificate stays below
what the learned adversaries (per-step ℓ2 ε over H steps, so total budget B = ε·sqrt(H)) achieve."""

from __future__ import annotations

import math

from torch import nn

import robustrl
from robustrl.adversarial.learned import AdversaryConfig, cached_adversary
from robustrl.adversarial.sarsa import RobustSarsaConfig, cached_sarsa_attack
from robustrl.certify import certify_policy, smoothing_transform

SIGMA = 0.2
HORIZON = 200
EPS = 0.5 / math.sqrt(HORIZON)  # per step, ℓ2: a total budget B = 0.5, where the certificate is informative
KW = {"max_episode_steps": HORIZON}


def _attacked(policy: nn.Module, attack: object) -> float:
    env = robustrl.make_env("CartPole-v1", 32, seed=4, **KW)
    noisy = smoothing_transform(SIGMA, attack)  # the attack first, then the smoothed policy's own noise
    return float(robustrl.rollout(policy, env, 32, seed=4, obs_transform=noisy).returns.mean())  # type: ignore[arg-type]


def test_certificate_stays_below_the_learned_attacks(cartpole_ppo_smoothed: nn.Module) -> None:
    budget = EPS * math.sqrt(HORIZON)
    cert = certify_policy(cartpole_ppo_smoothed, "CartPole-v1", sigma=SIGMA, budgets=[budget], episodes=500,
                          seed=1, env_kwargs=KW)
    attacks = {
        kind: cached_adversary(cartpole_ppo_smoothed, "CartPole-v1", EPS,  # type: ignore[arg-type]
                               AdversaryConfig(kind=kind, total_steps=20_480, norm="l2", pgd_steps=3),
                               cache_dir=None,
                               env_kwargs=KW).attack
        for kind in ("sa-rl", "pa-ad")
    }
    attacks["robust-sarsa"] = cached_sarsa_attack(
        cartpole_ppo_smoothed, "CartPole-v1", EPS, RobustSarsaConfig(total_steps=8192, norm="l2", attack_steps=5),  # type: ignore[arg-type]
        cache_dir=None, env_kwargs=KW,
    ).attack
    attacked = {k: _attacked(cartpole_ppo_smoothed, a) for k, a in attacks.items()}
    clean = _attacked(cartpole_ppo_smoothed, None)
    assert cert.clean_return > 0.9 * HORIZON
    assert float(cert.bounds[0]) <= min(attacked.values()), (float(cert.bounds[0]), attacked)
    assert float(cert.bounds[0]) > 10.0  # the check has power: the certificate says something at B = 0.5
    print(f"B={budget:.3f} certificate {float(cert.bounds[0]):.1f} clean {clean:.1f} attacked {attacked}")
