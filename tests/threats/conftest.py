"""Hand-made differentiable policies for the threat tests."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn


class LinearPolicy(nn.Module):
    """Random linear logits (discrete) or tanh means (continuous) over flattened observations.

    Has logits/dist/value/q_values for discrete actions and act/dist/critic for continuous ones, so every
    attack's objective can run on it.
    """

    def __init__(self, obs_shape, n_actions=3, act_dim=0, bounds=None, seed=0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        d = int(np.prod(obs_shape))
        low, high = bounds if bounds is not None else (-np.inf, np.inf)
        self.observation_space = gym.spaces.Box(low, high, obs_shape, dtype=np.float32)
        self.continuous = act_dim > 0
        out = act_dim if self.continuous else n_actions
        self.action_space = (
            gym.spaces.Box(-1.0, 1.0, (act_dim,), dtype=np.float32)
            if self.continuous
            else gym.spaces.Discrete(n_actions)
        )
        self.w = nn.Parameter(torch.randn(d, out, generator=gen))
        self.v = nn.Parameter(torch.randn(d, generator=gen))
        self.c = nn.Parameter(torch.randn(d + max(act_dim, 1), generator=gen))

    def logits(self, obs):
        return obs.flatten(1).float() @ self.w

    def q_values(self, obs):
        return self.logits(obs)

    def dist(self, obs):
        if self.continuous:
            return torch.distributions.Independent(torch.distributions.Normal(torch.tanh(self.logits(obs)), 0.5), 1)
        return torch.distributions.Categorical(logits=self.logits(obs))

    def value(self, obs):
        return torch.tanh(obs.flatten(1).float() @ self.v)

    def critic(self, obs, action):
        x = torch.cat([obs.flatten(1).float(), action.flatten(1).float()], 1)
        return -(x @ self.c).square()

    def act(self, obs, *, deterministic=True, generator=None):
        if self.continuous:
            return torch.tanh(self.logits(obs))
        return self.logits(obs).argmax(-1)


class ThetaPolicy(nn.Module):
    """Differentiable CartPole controller: logits ±k·(θ + 0.5·θ̇); solves CartPole when undisturbed.

    Its value is high when the pole is upright, so the critic attack has something to push down.
    """

    def __init__(self, k=20.0):
        super().__init__()
        hi = np.array([4.8, np.inf, 0.418, np.inf], dtype=np.float32)
        self.observation_space = gym.spaces.Box(-hi, hi, dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.w = nn.Parameter(torch.tensor([0.0, 0.0, 1.0, 0.5]) * k)

    def logits(self, obs):
        z = obs.float() @ self.w
        return torch.stack([-z, z], -1)

    def dist(self, obs):
        return torch.distributions.Categorical(logits=self.logits(obs))

    def value(self, obs):
        return 100.0 - 2000.0 * obs[:, 2].float().square()

    def act(self, obs, *, deterministic=True, generator=None):
        logits = self.logits(obs)
        if deterministic:
            return logits.argmax(-1)
        return torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(-1)


@pytest.fixture
def theta_policy():
    return ThetaPolicy()


@pytest.fixture(scope="session")
def make_linear():
    return LinearPolicy


def ctx_for(policy, n, *, step=0, start=True, seed=0):
    from robustrl.rollout import StepContext

    return StepContext(
        policy=policy,
        step=torch.full((n,), step, dtype=torch.int64),
        episode_start=torch.full((n,), start),
        generator=torch.Generator().manual_seed(seed),
    )


@pytest.fixture(scope="session")
def make_ctx():
    return ctx_for
