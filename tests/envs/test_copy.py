"""Native envs survive copy.deepcopy and pickle: the copy steps like the original and shares nothing with it."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from robustrl.envs import NATIVE_ENVS, UniformParamSampler, make_env

IDS = list(NATIVE_ENVS)
PATHS = ["default", "torch", "fused"]
COPIES = {"deepcopy": copy.deepcopy, "pickle": lambda env: pickle.loads(pickle.dumps(env))}


def _make(env_id: str, path: str) -> Any:
    """A native env on its default path (CartPole's is the NumPy kernel), the eager torch path or the fused one."""
    env: Any = make_env(env_id, 6, seed=0, max_episode_steps=20)
    if path == "torch":
        env._numpy_path = False
    if path == "fused":
        env._fused = True
    return env


def _step(env: Any, g: torch.Generator) -> tuple:
    space = env.action_space
    if isinstance(space, gym.spaces.Discrete):
        a = torch.randint(0, int(space.n), (env.num_envs,), generator=g)
    else:
        a = torch.rand((env.num_envs, 1), generator=g) * 4 - 2
    return env.step(a)


def _assert_same(a: tuple, b: tuple) -> None:
    for x, y in zip(a[:4], b[:4]):
        assert torch.equal(x, y)
    assert torch.equal(a[4]["final_obs"], b[4]["final_obs"])


@pytest.mark.parametrize("how", list(COPIES))
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("env_id", IDS)
def test_copy_steps_like_the_original(env_id: str, path: str, how: str) -> None:
    env = _make(env_id, path)
    env.reset(seed=1)
    g = torch.Generator().manual_seed(0)
    for _ in range(7):  # mid-episode, with the state living in the step buffers
        _step(env, g)
    dup = COPIES[how](env)
    assert type(dup) is type(env) and dup.num_envs == env.num_envs
    assert torch.equal(dup.state, env.state) and torch.equal(dup.elapsed_steps, env.elapsed_steps)
    ga, gb = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    for _ in range(50):  # through autoresets (time limit 20): the copy's generator and pool carry on alike
        _assert_same(_step(env, ga), _step(dup, gb))
    # Independent: stepping the copy leaves the original alone, and their buffers do not overlap.
    state, elapsed = env.state, env.elapsed_steps
    for _ in range(5):
        _step(dup, gb)
    assert torch.equal(env.state, state) and torch.equal(env.elapsed_steps, elapsed)
    assert not torch.equal(dup.state, state)
    for name in ("_state_np", "_elapsed_np", "_pool_np", "_pool_obs_np", "_work_np"):
        mine, theirs = getattr(dup, name, None), getattr(env, name, None)
        if isinstance(mine, np.ndarray) and mine.size:
            assert not np.shares_memory(mine, theirs), name


@pytest.mark.parametrize("how", list(COPIES))
def test_copy_keeps_the_numpy_views_on_its_own_buffers(how: str) -> None:
    env: Any = make_env("CartPole-v1", 4, seed=0)
    env.step(torch.ones(4, dtype=torch.int64))
    dup = COPIES[how](env)
    assert dup._numpy_path
    assert np.shares_memory(dup._state_np, dup._state_buf.numpy())
    assert np.shares_memory(dup._work_np, dup._work_t.numpy())
    assert np.shares_memory(dup._theta_t.numpy(), dup._state_buf.numpy())
    assert dup._state is dup._state_buf


@pytest.mark.parametrize("how", list(COPIES))
def test_copy_with_params_sampler_and_disturbance(how: str) -> None:
    sampler = UniformParamSampler({"length": (0.3, 0.9)})
    env: Any = make_env("CartPole-v1", 5, seed=0, max_episode_steps=15, params={"gravity": 5.0}, param_sampler=sampler)
    env.reset(seed=2)
    dup = COPIES[how](env)
    assert dup.param_sampler == sampler
    assert all(torch.equal(v, dup.params[k]) for k, v in env.params.items())
    g = torch.Generator().manual_seed(0)
    for _ in range(40):
        a = torch.randint(0, 2, (5,), generator=g)
        d = torch.randn(5, 1, generator=g, dtype=torch.float64)
        ra, rb = env.step(a, disturbance=d), dup.step(a, disturbance=d)
        _assert_same(ra, rb)
        assert torch.equal(ra[4]["final_params"]["length"], rb[4]["final_params"]["length"])
    dup.set_params({"gravity": 1.0})
    assert float(env.params["gravity"][0]) == 5.0
