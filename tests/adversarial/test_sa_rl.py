"""SA-RL: the adversary's MDP, a seeded learned attack stronger than noise, and the adversary cache."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

import robustrl
from robustrl.adversarial.env import AdversaryEnv
from robustrl.adversarial.learned import AdversaryConfig, cached_adversary, victim_hash
from robustrl.policies import save_policy
from robustrl.threats import make_threat

EPS = 0.2
SA_RL = AdversaryConfig(kind="sa-rl", total_steps=100_000)
"""Measured under three MKL code paths: sa-rl 101-151 against noise 378-449 (60k steps left 433 on one)."""


class _Zero:
    """An adversary that never perturbs (action 0 everywhere)."""

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def act(self, obs: torch.Tensor, *, deterministic: bool = True, generator: object = None) -> torch.Tensor:
        return torch.zeros(obs.shape[0], self.dim)


def _mean(policy: nn.Module, transform: object = None) -> float:
    env = robustrl.make_env("CartPole-v1", 64, seed=5)
    return float(robustrl.rollout(policy, env, 64, seed=5, obs_transform=transform).returns.mean())  # type: ignore[arg-type]


def test_adversary_env_with_a_null_adversary_is_the_clean_victim_negated(cartpole_ppo: nn.Module) -> None:
    env = robustrl.make_env("CartPole-v1", 16, seed=3)
    adv_env = AdversaryEnv(env, cartpole_ppo, "sa-rl", 0.1)
    assert adv_env.action_space.shape == (4,)
    adv_returns = robustrl.rollout(_Zero(4), adv_env, 16, seed=3).returns  # type: ignore[arg-type]
    clean = robustrl.rollout(cartpole_ppo, robustrl.make_env("CartPole-v1", 16, seed=3), 16, seed=3).returns  # type: ignore[arg-type]
    assert torch.equal(adv_returns, -clean)


def test_sa_rl_hurts_a_vanilla_policy_more_than_uniform_noise(cartpole_ppo: nn.Module, tmp_path: Path) -> None:
    made = cached_adversary(cartpole_ppo, "CartPole-v1", EPS, SA_RL, cache_dir=tmp_path)  # type: ignore[arg-type]
    assert not made.reused and made.path is not None and made.path.is_file()
    clean = _mean(cartpole_ppo)
    noise = _mean(cartpole_ppo, make_threat("uniform", EPS))
    learned = _mean(cartpole_ppo, made.attack)
    assert clean > 450
    assert learned < noise - 100, (clean, noise, learned)
    print(f"eps={EPS} clean {clean:.1f} uniform {noise:.1f} sa-rl {learned:.1f}")


def test_the_cache_reuses_an_adversary_keyed_by_victim_eps_config(cartpole_ppo: nn.Module, tmp_path: Path) -> None:
    small = AdversaryConfig(kind="sa-rl", total_steps=2048)
    first = cached_adversary(cartpole_ppo, "CartPole-v1", EPS, small, cache_dir=tmp_path)  # type: ignore[arg-type]
    again = cached_adversary(cartpole_ppo, "CartPole-v1", EPS, small, cache_dir=tmp_path)  # type: ignore[arg-type]
    assert not first.reused and again.reused and again.path == first.path
    obs = torch.rand(32, 4) - 0.5
    assert torch.equal(first.attack.adversary.act(obs), again.attack.adversary.act(obs))  # type: ignore[union-attr]
    other_eps = cached_adversary(cartpole_ppo, "CartPole-v1", 0.1, small, cache_dir=tmp_path)  # type: ignore[arg-type]
    other_cfg = cached_adversary(cartpole_ppo, "CartPole-v1", EPS, AdversaryConfig(total_steps=2048, seed=1),  # type: ignore[arg-type]
                                 cache_dir=tmp_path)
    assert not other_eps.reused and not other_cfg.reused
    assert len({first.path, other_eps.path, other_cfg.path}) == 3
    # the key follows the victim file's bytes: a re-saved identical policy hashes like the weights do not
    path = save_policy(cartpole_ppo, tmp_path / "victim.zip", env_id="CartPole-v1")  # type: ignore[arg-type]
    assert victim_hash(path) == victim_hash(path) and victim_hash(path) != victim_hash(cartpole_ppo)  # type: ignore[arg-type]
    assert len(list(tmp_path.glob("sa-rl-*.zip"))) == 3
