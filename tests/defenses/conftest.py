"""Shared by the defense learning tests: seeded CartPole PPO runs (vanilla trained once) and how far each
policy's action distribution moves inside an ℓ∞ ball."""

from __future__ import annotations

import functools
from collections.abc import Callable

import pytest
import torch
from torch import nn

TrainedPolicy = Callable[[str, tuple[str, ...]], nn.Module]


@functools.cache
def _trained(defense: str, options: tuple[str, ...]) -> nn.Module:
    """CartPole PPO 100k steps, seed 0, with ``defense`` and its ``options``."""
    from robustrl.agents import TrainConfig
    from robustrl.jobs import train

    cfg = TrainConfig(env="CartPole-v1", total_steps=100_000, eval_every=0, eval_episodes=8, seed=0,
                      defense=defense, defense_set=options)
    return train(cfg).policy


def _worst_kl(policy: nn.Module, eps: float = 0.1) -> float:
    """Mean over 4096 CartPole-range states of the largest KL(π(·|s) ‖ π(·|ŝ)) that 10-step PGD finds in the
    ℓ∞ ball of radius ``eps`` around each state (the quantity SA-PPO's bound is in)."""
    from robustrl.defenses.sa_reg import SARegConfig, divergence_fn, maximise_divergence

    gen = torch.Generator().manual_seed(0)
    scale = torch.tensor([1.0, 1.0, 0.1, 1.0])  # cart position, velocity, pole angle, angular velocity
    obs = (torch.rand(4096, 4, generator=gen) * 2 - 1) * scale
    div = divergence_fn(policy, obs)
    worst = maximise_divergence(div, obs, eps, SARegConfig(eps=eps, steps=10), generator=gen)
    return float(div(worst).detach().mean())


@pytest.fixture(scope="session")
def vanilla_ppo() -> nn.Module:
    """The seeded run without a defense."""
    return _trained("none", ())


@pytest.fixture(scope="session")
def trained_with() -> TrainedPolicy:
    """``(defense, options) -> policy`` of the same seeded run with a defense."""
    return _trained


@pytest.fixture(scope="session")
def worst_kl() -> Callable[[nn.Module], float]:
    """``policy -> mean worst KL`` in the ε = 0.1 ball (see :func:`_worst_kl`)."""
    return _worst_kl
