"""Shared fixtures of the offline tests: a hand-written Pendulum expert and small datasets on tmp_path."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import pytest
import torch

import robustrl
from robustrl.offline.collect import RandomPolicy, collect_episodes
from robustrl.offline.data import OfflineDataset


class PendulumSwingUp:
    """Energy-pumping swing-up with a PD balance near the top (a Pendulum expert in closed form).

    Pendulum-v1's dynamics are ``θ̈ = 15·sin θ + 3u`` (θ = 0 upright); ``E = ½θ̇² + 15·cos θ`` is conserved
    without torque and equals 15 at rest upright, so ``u ∝ (15 − E)·θ̇`` pumps energy in or out.
    """

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(-8.0, 8.0, (3,))
        self.action_space = gym.spaces.Box(-2.0, 2.0, (1,))

    def act(self, obs: torch.Tensor, *, deterministic: bool = True, generator: Any = None) -> torch.Tensor:
        cos, sin, vel = obs[:, 0], obs[:, 1], obs[:, 2]
        theta = torch.atan2(sin, cos)
        energy = 0.5 * vel.square() + 15.0 * cos
        pump = 0.5 * (15.0 - energy) * vel
        balance = -(10.0 * theta + 2.0 * vel)
        u = torch.where(cos > math.cos(0.5), balance, pump)
        return u.clamp(-2.0, 2.0).unsqueeze(-1)


@pytest.fixture(scope="session")
def pendulum_expert() -> PendulumSwingUp:
    return PendulumSwingUp()


@pytest.fixture(scope="session")
def expert_data(pendulum_expert: PendulumSwingUp) -> OfflineDataset:
    """20 expert Pendulum episodes (4000 transitions) with reference returns."""
    import dataclasses

    env = robustrl.make_env("Pendulum-v1", 10, seed=0)
    data = collect_episodes(pendulum_expert, env, 20, seed=0)
    rand = RandomPolicy(env.observation_space, env.action_space)
    random_data = collect_episodes(rand, env, 10, seed=1)
    env.close()
    return dataclasses.replace(data, ref_min_score=float(random_data.episode_returns().mean()),
                               ref_max_score=float(data.episode_returns().mean()))
