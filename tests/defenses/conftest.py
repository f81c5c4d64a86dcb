"""Shared by the defense learning tests: the return of a seeded CartPole PPO run under PGD, vanilla computed once."""

from __future__ import annotations

from collections.abc import Callable

import pytest

PGDReturn = Callable[[str, tuple[str, ...]], float]


def _pgd_return(defense: str, options: tuple[str, ...]) -> float:
    """CartPole PPO 100k steps, seed 0, with ``defense``; mean return under PGD ℓ∞ ε = 0.1 over 32 episodes."""
    from robustrl.agents import TrainConfig
    from robustrl.evaluate import evaluate_policy
    from robustrl.jobs import train

    cfg = TrainConfig(env="CartPole-v1", total_steps=100_000, eval_every=0, eval_episodes=8, seed=0,
                      defense=defense, defense_set=options)
    res = evaluate_policy(train(cfg).policy, "CartPole-v1", ("pgd",), (0.1,), episodes=32, seed=0)
    return float(res.curve("pgd").mean[-1])


@pytest.fixture(scope="session")
def vanilla_under_pgd() -> float:
    """Vanilla PPO's return under the attack (measured when written: 101.0)."""
    return _pgd_return("none", ())


@pytest.fixture(scope="session")
def under_pgd() -> PGDReturn:
    """``(defense, options) -> return under the attack`` for the same run with a defense."""
    return _pgd_return
