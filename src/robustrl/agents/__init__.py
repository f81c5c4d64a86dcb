"""Online learners: PPO, DQN (regression or HL-Gauss head), SAC, TD3 — and ``train(cfg)``, their entry point.

Example:
    >>> import torch
    >>> from robustrl.agents import TrainConfig, train
    >>> res = train(TrainConfig(algo="dqn", env="CartPole-v1", total_steps=512, eval_episodes=2))
    >>> res.steps, res.policy.act(torch.zeros(3, 4)).shape
    (512, torch.Size([3]))
"""

from robustrl.agents.buffer import ReplayBuffer, Transitions
from robustrl.agents.critics import CriticEnsemble
from robustrl.agents.dqn import DQN, DQN_PRESETS, DQNConfig, hl_gauss_loss, hl_gauss_target, td_target
from robustrl.agents.ppo import (
    PPO,
    PPO_PRESETS,
    PPOConfig,
    PPOLoss,
    clipped_surrogate_loss,
    ppo_loss,
    scale_rewards,
    value_loss,
)
from robustrl.agents.recurrent_ppo import RecurrentPPO, make_ppo
from robustrl.agents.returns import (
    AdvantageEstimate,
    discounted_returns,
    generalized_advantage_estimate,
    next_values_from_rollout,
)
from robustrl.agents.sac import (
    SAC,
    SAC_PRESETS,
    SACConfig,
    sac_actor_loss,
    sac_critic_loss,
    sac_temperature_loss,
    soft_td_target,
    squashed_log_prob,
)
from robustrl.agents.td3 import TD3, TD3_PRESETS, TD3Config, smoothed_target_action, td3_target
from robustrl.agents.train import (
    ALGORITHMS,
    EvalRecord,
    TrainConfig,
    TrainResult,
    apply_overrides,
    resolve_algo_config,
    train,
)

__all__ = [
    "ALGORITHMS",
    "DQN",
    "DQN_PRESETS",
    "PPO",
    "PPO_PRESETS",
    "SAC",
    "SAC_PRESETS",
    "TD3",
    "TD3_PRESETS",
    "AdvantageEstimate",
    "CriticEnsemble",
    "DQNConfig",
    "EvalRecord",
    "PPOConfig",
    "PPOLoss",
    "RecurrentPPO",
    "ReplayBuffer",
    "SACConfig",
    "TD3Config",
    "TrainConfig",
    "TrainResult",
    "Transitions",
    "apply_overrides",
    "clipped_surrogate_loss",
    "discounted_returns",
    "generalized_advantage_estimate",
    "hl_gauss_loss",
    "hl_gauss_target",
    "make_ppo",
    "next_values_from_rollout",
    "ppo_loss",
    "resolve_algo_config",
    "sac_actor_loss",
    "sac_critic_loss",
    "sac_temperature_loss",
    "scale_rewards",
    "smoothed_target_action",
    "soft_td_target",
    "squashed_log_prob",
    "td3_target",
    "td_target",
    "train",
    "value_loss",
]
