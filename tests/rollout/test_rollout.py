"""The shared rollout engine against a plain single-env Gymnasium loop."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from robustrl.envs import make_env
from robustrl.rollout import StepContext, rollout


class ThetaController:
    """Push the cart towards the side the pole leans to (solves CartPole when undisturbed)."""

    def act(self, obs, *, deterministic=True, generator=None):
        return (obs[:, 2] + 0.5 * obs[:, 3] > 0).long()


class AlwaysLeft:
    def act(self, obs, *, deterministic=True, generator=None):
        return torch.zeros(obs.shape[0], dtype=torch.int64)


def _gym_returns(policy, seeds):
    env = gym.make("CartPole-v1")
    out = []
    for s in seeds:
        obs, _ = env.reset(seed=int(s))
        total, done = 0.0, False
        while not done:
            a = int(policy.act(torch.as_tensor(obs)[None])[0])
            obs, r, term, trunc, _ = env.step(a)
            total += r
            done = term or trunc
        out.append(total)
    return np.array(out)


def test_returns_match_gymnasium_distribution_for_a_fixed_policy():
    res = rollout(AlwaysLeft(), make_env("CartPole-v1", num_envs=64), episodes=300, seed=0)
    ref = _gym_returns(AlwaysLeft(), range(300))
    # Always-left episodes last 8-11 steps; the two samples must agree in distribution.
    assert res.returns.shape == (300,) and res.lengths.dtype == torch.int64
    assert torch.equal(res.returns, res.lengths.double())  # reward 1 per step, terminating step included
    assert abs(res.returns.mean().item() - ref.mean()) < 0.3
    assert set(res.returns.long().tolist()) <= set(range(7, 13))


def test_good_controller_is_truncated_at_500():
    res = rollout(ThetaController(), make_env("CartPole-v1", num_envs=8), episodes=8, seed=1)
    assert torch.all(res.returns == 500) and torch.all(res.lengths == 500)


def test_same_seed_same_returns_and_episode_count_not_multiple_of_copies():
    env = make_env("CartPole-v1", num_envs=7)
    a = rollout(AlwaysLeft(), env, episodes=30, seed=3)
    b = rollout(AlwaysLeft(), env, episodes=30, seed=3)
    c = rollout(AlwaysLeft(), env, episodes=30, seed=4)
    assert a.returns.shape == (30,)
    assert torch.equal(a.returns, b.returns) and torch.equal(a.lengths, b.lengths)
    assert not torch.equal(a.lengths, c.lengths)


def test_with_one_copy_per_episode_results_follow_copies():
    # With one copy per episode the result is the first episode of each copy, whatever finishes first.
    env = make_env("CartPole-v1", num_envs=16)
    res = rollout(AlwaysLeft(), env, episodes=16, seed=5)
    obs, _ = env.reset(seed=5)
    lengths = torch.zeros(16, dtype=torch.int64)
    alive = torch.ones(16, dtype=torch.bool)
    while alive.any():
        obs, _, term, trunc, _ = env.step(AlwaysLeft().act(obs))
        lengths += alive.long()
        alive &= ~(term | trunc)
    assert torch.equal(res.lengths, lengths)
    assert torch.equal(res.copies, torch.arange(16))


def test_copies_and_active_mask_follow_the_sample():
    seen_active = []

    def record(obs, ctx: StepContext):
        seen_active.append(ctx.active.clone())
        return obs

    env = make_env("CartPole-v1", num_envs=8)
    res = rollout(AlwaysLeft(), env, episodes=20, seed=2, obs_transform=record)
    assert res.copies.shape == (20,) and set(res.copies.tolist()) <= set(range(8))
    # The first 8 episodes to start are the copies 0..7; by the end, copies run episodes outside the sample.
    assert torch.equal(res.copies[:8], torch.arange(8))
    assert bool(seen_active[0].all()) and not bool(seen_active[-1].all())


def test_obs_transform_sees_episode_starts_and_changes_behaviour():
    starts = []

    def flip(obs, ctx: StepContext):
        starts.append(int(ctx.episode_start.sum()))
        assert torch.equal(ctx.episode_start, ctx.step == 0)
        return -obs  # the controller now pushes the wrong way

    env = make_env("CartPole-v1", num_envs=4)
    res = rollout(ThetaController(), env, episodes=4, seed=0, obs_transform=flip)
    assert starts[0] == 4
    assert res.returns.max() < 100


def test_action_transform_replaces_actions():
    env = make_env("CartPole-v1", num_envs=4)
    res = rollout(
        ThetaController(), env, episodes=4, seed=0, action_transform=lambda a, obs, ctx: torch.zeros_like(a)
    )
    assert res.returns.max() < 20


def test_bad_episode_count():
    with pytest.raises(ValueError, match="episodes"):
        rollout(AlwaysLeft(), make_env("CartPole-v1", num_envs=2), episodes=0)
