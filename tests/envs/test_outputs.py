"""Outputs of the CPU NumPy kernel are fresh: nothing a caller kept changes when the env steps on."""

import gymnasium as gym
import numpy as np
import torch

from robustrl.envs import make_env


def test_kept_outputs_never_change_on_later_steps():
    env = make_env("CartPole-v1", num_envs=32, seed=0)
    obs, _ = env.reset(seed=0)
    kept = []
    gen = torch.Generator().manual_seed(0)
    for _ in range(200):
        action = torch.randint(0, 2, (32,), generator=gen)
        step = env.step(action)
        kept.append((obs, *[t.clone() for t in step[:4]], step[:4], step[4]["final_obs"].clone(), step[4]["final_obs"]))
        obs = step[0]
    for prev_obs, o, r, te, tr, live, final_copy, final in kept:
        assert torch.equal(live[0], o) and torch.equal(live[1], r)
        assert torch.equal(live[2], te) and torch.equal(live[3], tr)
        assert torch.equal(final, final_copy)
        assert prev_obs.shape == (32, 4)


def test_assigned_state_tensor_is_not_written_to():
    env = make_env("CartPole-v1", num_envs=4, seed=0)
    env.reset(seed=0)
    state = torch.full((4, 4), 0.01, dtype=torch.float64)
    env.state = state
    env.step(torch.ones(4, dtype=torch.int64))
    assert torch.all(state == 0.01)
    assert not torch.allclose(env.state, state)


def test_sutton_barto_reward_matches_gymnasium():
    ours = make_env("CartPole-v1", num_envs=1, sutton_barto_reward=True)
    ref = gym.make("CartPole-v1", sutton_barto_reward=True)
    ref.reset(seed=0)
    ours.reset(seed=0)
    ours.state = torch.as_tensor(np.asarray(ref.unwrapped.state), dtype=torch.float64)[None]
    rewards = []
    for _ in range(40):  # always push right: the pole falls and the episode terminates
        _, r_ref, term_ref, trunc_ref, _ = ref.step(1)
        _, r, term, trunc, _ = ours.step(torch.ones(1, dtype=torch.int64))
        rewards.append(r_ref)
        assert float(r[0]) == r_ref and bool(term[0]) == term_ref and bool(trunc[0]) == trunc_ref
        if term_ref:
            break
    assert rewards[-1] == -1.0 and all(x == 0.0 for x in rewards[:-1])
