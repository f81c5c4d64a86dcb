"""Session-wide fixtures shared by every test area.

``cartpole_ppo`` and ``cartpole_ppo_smoothed`` are PPO policies trained once per test session (cached in
the process only) on the native CartPole-v1, seeded, stopping as soon as an evaluation reaches the target.
They are shared: do not train, mutate or move them in a test (``copy.deepcopy`` first if you must).
"""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

from robustrl.agents import TrainConfig, train
from robustrl.demo import smoothed_ppo_config

# importing robustrl sets no global state: the suite runs torch on one thread, as the CLI does
torch.set_num_threads(int(os.environ.get("ROBUSTRL_NUM_THREADS", "1")))

CARTPOLE_PPO = TrainConfig(
    algo="ppo",
    env="CartPole-v1",
    seed=0,
    total_steps=200_000,
    eval_every=5_120,
    eval_episodes=32,
    stop_at_return=475.0,
)
"""How ``cartpole_ppo`` is trained: mean return ≥ 475 (over 100 episodes, tested in tests/agents)."""

CARTPOLE_PPO_SMOOTHED = smoothed_ppo_config("CartPole-v1", 0.2, seed=0)
"""How ``cartpole_ppo_smoothed`` is trained: on observations with N(0, 0.2²) noise, until its mean return
under that noise reaches 475 on an evaluation."""


@pytest.fixture(scope="session")
def cartpole_ppo() -> nn.Module:
    """An ``ActorCriticPolicy`` solving native CartPole-v1 (deterministic mean return ≥ 475), in eval mode."""
    return train(CARTPOLE_PPO).policy


@pytest.fixture(scope="session")
def cartpole_ppo_smoothed() -> nn.Module:
    """An ``ActorCriticPolicy`` for CartPole-v1 trained with σ = 0.2 observation noise (Policy Smoothing):
    good when N(0, 0.2²) noise is added to every observation; in eval mode."""
    return train(CARTPOLE_PPO_SMOOTHED).policy
