"""MuJoCo presets (PPO, SAC, TD3) and PPO's return-based reward scaling."""

from __future__ import annotations

import math

import pytest
import torch

from robustrl.agents import (
    PPO,
    PPO_PRESETS,
    SAC_PRESETS,
    TD3_PRESETS,
    PPOConfig,
    SACConfig,
    TD3Config,
    TrainConfig,
    resolve_algo_config,
    scale_rewards,
    train,
)
from robustrl.agents.common import learner_state
from robustrl.envs import make_env
from robustrl.policies.features import ObsNormalizer

MUJOCO = ("Hopper-v5", "Walker2d-v5", "HalfCheetah-v5", "Ant-v5")


@pytest.mark.parametrize("env_id", MUJOCO)
def test_mujoco_presets_carry_the_published_settings(env_id: str) -> None:
    ppo = resolve_algo_config(TrainConfig(algo="ppo", env=env_id))
    assert isinstance(ppo, PPOConfig) and ppo == PPO_PRESETS[env_id]
    assert ppo.normalize_obs and ppo.obs_norm_clip == 10.0 and ppo.normalize_reward and ppo.reward_clip == 10.0
    assert ppo.total_steps == 1_000_000 and ppo.minibatch_size == 64 and not ppo.anneal_clip
    if env_id == "HalfCheetah-v5":  # RL-Zoo's tuned HalfCheetah setting
        assert (ppo.num_envs, ppo.batch_size, ppo.num_epochs, ppo.learning_rate) == (1, 512, 20, 2.0633e-5)
        assert (ppo.gamma, ppo.gae_lambda, ppo.clip_range, ppo.log_std_init) == (0.98, 0.92, 0.1, -2.0)
        assert not ppo.anneal_lr and ppo.hidden == (256, 256) and ppo.activation == "relu"
    else:
        assert (ppo.batch_size, ppo.num_epochs) == (2048, 10)
        assert (ppo.gamma, ppo.gae_lambda, ppo.learning_rate, ppo.clip_range) == (0.99, 0.95, 3e-4, 0.2)
        assert ppo.anneal_lr and ppo.hidden == (64, 64) and ppo.activation == "tanh"
        assert ppo.log_std_init == (-1.0 if env_id == "Ant-v5" else 0.0)
    for cfg, lr in ((SAC_PRESETS[env_id], 3e-4), (TD3_PRESETS[env_id], 1e-3)):
        assert isinstance(cfg, SACConfig | TD3Config)
        assert (cfg.hidden, cfg.activation, cfg.learning_rate, cfg.batch_size) == ((256, 256), "relu", lr, 256)
        assert (cfg.buffer_size, cfg.learning_starts, cfg.train_freq, cfg.gradient_steps) == (1_000_000, 10_000, 1, 1)
    assert TD3_PRESETS[env_id].policy_delay == 2


def test_scale_rewards_divides_by_the_running_std_of_the_discounted_return() -> None:
    stats = ObsNormalizer((), dtype=torch.float64)
    rewards = torch.tensor([[1.0, 2.0], [1.0, 2.0], [1.0, 2.0]])
    done = torch.tensor([[False, False], [False, True], [False, False]])
    scaled, g = scale_rewards(rewards, done, torch.tensor([0.0, 4.0]), stats, gamma=0.5, clip=100.0)
    # copy 0: G = 1, 1.5, 1.75; copy 1 starts from 4: G = 4, 4 (then reset at the episode end), 2
    returns = torch.tensor([1.0, 1.5, 1.75, 4.0, 4.0, 2.0], dtype=torch.float64)
    expected = ObsNormalizer((), dtype=torch.float64)
    expected.update(returns)
    torch.testing.assert_close(stats.var, expected.var)
    std = math.sqrt(float(expected.var) + stats.eps)
    torch.testing.assert_close(scaled, rewards / std)
    torch.testing.assert_close(g, torch.tensor([1.75, 2.0]))
    # equal returns: a tiny variance, so the scaled rewards hit the clip
    same = ObsNormalizer((), dtype=torch.float64)
    clipped, _ = scale_rewards(torch.full((3, 2), 2.0), done, torch.zeros(2), same, gamma=0.0, clip=3.0)
    torch.testing.assert_close(clipped, torch.full((3, 2), 3.0))


def test_ppo_scales_rewards_keeps_raw_ones_and_checkpoints_the_statistics() -> None:
    cfg = PPOConfig(num_envs=4, num_steps=32, normalize_reward=True, normalize_obs=True, obs_norm_clip=5.0)
    agent = PPO(make_env("Pendulum-v1", 4, seed=0), cfg, seed=0)
    roll = agent.collect()
    raw = roll.trajectory.extras["raw_rewards"]
    assert not torch.equal(raw, roll.rewards)
    assert agent.return_stats is not None and agent.running_return is not None
    ratio = roll.rewards / raw
    torch.testing.assert_close(ratio, torch.full_like(ratio, float(ratio[0, 0])))  # one scale for the rollout
    assert {"return_stats", "running_return"} <= set(learner_state(agent))
    assert agent.policy.obs_norm is not None and agent.policy.obs_norm.clip == 5.0
    metrics = agent.update(roll)
    assert metrics["train/rollout_reward"] == pytest.approx(float(raw.mean()))
    plain = PPO(make_env("Pendulum-v1", 4, seed=0), PPOConfig(num_envs=4, num_steps=32), seed=0)
    assert "return_stats" not in learner_state(plain)  # checkpoints of unscaled runs are unchanged


def test_ppo_mujoco_preset_runs_through_the_adapter() -> None:
    pytest.importorskip("mujoco")
    res = train(TrainConfig(algo="ppo", env="Hopper-v5", total_steps=2048, eval_episodes=1))
    assert res.steps == 2048 and math.isfinite(res.final_return)
    policy = res.policy
    obs = torch.full((2, 11), 1e3)  # raw, unnormalised observations: the policy normalises and clips inside
    assert torch.isfinite(policy.act(obs)).all()
