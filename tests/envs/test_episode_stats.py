"""Training-episode returns: each finished episode's summed reward, over real envs, eager or deferred."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from robustrl.agents import TrainConfig, train
from robustrl.agents.ppo import PPO
from robustrl.envs import make_env
from robustrl.envs.episode_stats import EpisodeStats
from robustrl.results import load_result


def _play(env_id: str, n: int, steps: int, *, eager: bool = True, **kwargs) -> tuple[EpisodeStats, list[float]]:
    """Random actions for ``steps``; the wrapper and the returns summed by hand from the same steps."""
    env = EpisodeStats(make_env(env_id, n, seed=1, **kwargs), window=1000)
    env._eager = eager
    env.reset(seed=1)
    g = torch.Generator().manual_seed(0)
    running, finished = np.zeros(n), []
    for _ in range(steps):
        space = env.action_space
        if hasattr(space, "n"):
            action = torch.randint(0, int(space.n), (n,), generator=g)
        else:
            action = torch.rand((n, *space.shape), generator=g) * 2 - 1
        _, reward, terminated, truncated, _ = env.step(action)
        running += reward.double().numpy()
        for i in np.flatnonzero((terminated | truncated).numpy()):
            finished.append(running[i])
            running[i] = 0.0
    return env, finished


@pytest.mark.parametrize("eager", [True, False], ids=["cpu-path", "deferred-path"])
@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_returns_are_the_summed_rewards_of_each_finished_episode(env_id: str, eager: bool) -> None:
    env, finished = _play(env_id, 4, 450 if env_id == "Pendulum-v1" else 200, eager=eager)
    assert env.finished == len(finished) > 0
    mean_return, mean_length = env.recent()
    assert mean_return == pytest.approx(float(np.mean(finished)), rel=1e-9)
    if env_id == "CartPole-v1":
        assert mean_return == mean_length  # one reward per step
    else:
        assert mean_length == 200  # Pendulum episodes are all truncated at 200 steps


def test_the_window_keeps_the_latest_episodes_and_nothing_before_any_ends() -> None:
    env = EpisodeStats(make_env("CartPole-v1", 2, seed=0), window=3)
    env.reset(seed=0)
    assert env.recent() is None
    lengths = []
    while env.finished < 6:
        env.step(torch.zeros(2, dtype=torch.int64))
        lengths = list(env._lengths)
    assert len(lengths) == 3 and env.recent()[1] == pytest.approx(sum(lengths) / 3)


def test_a_disturbance_reaches_the_wrapped_env() -> None:
    plain = make_env("CartPole-v1", 2, seed=0)
    wrapped = EpisodeStats(make_env("CartPole-v1", 2, seed=0))
    push = torch.full((2, *plain.disturbance_space.shape), 5.0)
    a = torch.zeros(2, dtype=torch.int64)
    free = make_env("CartPole-v1", 2, seed=0)
    plain.reset(seed=0), wrapped.reset(seed=0), free.reset(seed=0)
    pushed = plain.step(a, disturbance=push)[0]
    assert torch.equal(pushed, wrapped.step(a, disturbance=push)[0])
    assert not torch.equal(pushed, free.step(a)[0])  # the push matters, so a dropped one would show


def test_train_logs_the_training_returns_and_keeps_their_curve_across_a_resume(tmp_path, monkeypatch) -> None:
    out = tmp_path / "run"
    cfg = TrainConfig(algo="ppo", env="CartPole-v1", total_steps=12288, eval_every=4096, eval_episodes=4, seed=0,
                      out=str(out))  # fmt: skip
    whole = train(dataclasses.replace(cfg, out=str(tmp_path / "whole")))
    curve = whole.train_curve
    assert len(curve) >= 2 and [p.step for p in curve] == sorted(p.step for p in curve)
    assert all(p.mean_return == p.mean_length and p.mean_return >= 8 for p in curve)  # CartPole: return = length
    assert curve[-1].mean_return > curve[0].mean_return  # it learns
    assert whole.last_train_metrics["train/episode_return"] == curve[-1].mean_return
    assert load_result(tmp_path / "whole" / "result.json").train_curve == curve  # written and read back

    iterate = PPO.iterate

    def stop_after_the_second_checkpoint(self: PPO) -> dict:
        if self.steps >= 9000:
            raise KeyboardInterrupt
        return iterate(self)

    monkeypatch.setattr(PPO, "iterate", stop_after_the_second_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        train(cfg)
    monkeypatch.setattr(PPO, "iterate", iterate)
    resumed = train(dataclasses.replace(cfg, resume=True))
    before = [p for p in curve if p.step <= 8192]
    assert resumed.train_curve[: len(before)] == tuple(before)  # the checkpoint kept the curve so far
    assert len(resumed.train_curve) > len(before) and resumed.train_curve[-1].step == curve[-1].step
