"""Proximal Policy Optimization (Schulman et al. 2017, "Proximal Policy Optimization Algorithms").

Clipped surrogate objective, GAE(γ, λ) with truncation bootstrapped from ``V(final_obs)``, optional
clipped value loss, advantage normalisation per minibatch, linear learning-rate / clip annealing, an
optional running observation normaliser inside the policy (clipped at ``±obs_norm_clip``) and optional
return-based reward scaling (SB3 ``VecNormalize(norm_reward=True)``: rewards divided by the running standard
deviation of the discounted return, :func:`scale_rewards`). Defenses plug in through
:class:`~robustrl.defenses.TrainingHooks` (observation/action transforms, extra loss terms). Discrete
(categorical) and Box (diagonal Gaussian) action spaces.

Speed: experience comes from the shared :func:`~robustrl.rollout.collect` (one actor forward and one env
step per step for all copies at once); values are computed afterwards in one batched forward over the
whole rollout.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Literal, NamedTuple

import gymnasium as gym
import torch
from torch import nn

from robustrl.agents.common import (
    Generators,
    Metrics,
    check_num_envs,
    linear_schedule,
    make_adam,
    regularization,
    seeded_init,
    set_lr,
)
from robustrl.agents.returns import generalized_advantage_estimate, next_values_from_rollout
from robustrl.common.seeding import derive_seed
from robustrl.defenses.base import NO_HOOKS, Minibatch, TrainingHooks
from robustrl.envs.base import VecEnv
from robustrl.policies.features import ObsNormalizer
from robustrl.policies.networks import ActorCriticPolicy
from robustrl.rollout import Act, StepContext, Trajectory, collect, start_collect

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


@dataclass(frozen=True)
class PPOConfig:
    """PPO hyperparameters (defaults: a fast CartPole-v1 setting; see :data:`PPO_PRESETS`)."""

    num_envs: int = 128
    """Env copies stepped together."""
    num_steps: int = 16
    """Steps per copy in each rollout (rollout size = num_envs × num_steps)."""
    total_steps: int = 200_000
    """Environment transitions to train for (summed over copies)."""
    learning_rate: float = 3e-3
    """Adam step size (annealed linearly to 0 when anneal_lr)."""
    anneal_lr: bool = True
    """Decay the learning rate linearly to 0 over total_steps."""
    adam_eps: float = 1e-5
    """Adam ε."""
    gamma: float = 0.98
    """Discount factor."""
    gae_lambda: float = 0.8
    """GAE λ."""
    clip_range: float = 0.2
    """Clip ε of the probability ratio."""
    anneal_clip: bool = True
    """Decay clip_range linearly to 0 over total_steps."""
    clip_range_vf: float | None = None
    """Clip of the value update around the old values (None: no value clipping)."""
    ent_coef: float = 0.0
    """Entropy bonus coefficient."""
    vf_coef: float = 0.5
    """Value loss coefficient."""
    max_grad_norm: float | None = 0.5
    """Global gradient-norm clip (None: no clipping)."""
    num_epochs: int = 4
    """Passes over each rollout."""
    num_minibatches: int = 4
    """Minibatches per pass."""
    normalize_advantage: bool = True
    """Standardise advantages in each minibatch."""
    target_kl: float | None = None
    """Stop the epochs of an update early once the approximate KL exceeds this (None: never)."""
    hidden: tuple[int, ...] = (64, 64)
    """Hidden widths of the actor and of the critic."""
    activation: Literal["tanh", "relu"] = "tanh"
    """Hidden activation."""
    normalize_obs: bool = False
    """Keep a running observation normaliser inside the policy (updated after each rollout)."""
    obs_norm_clip: float = 10.0
    """Clip of the normalised observations (±obs_norm_clip) when normalize_obs."""
    normalize_reward: bool = False
    """Divide rewards by the running std of the discounted return (SB3 VecNormalize norm_reward)."""
    reward_clip: float = 10.0
    """Clip of the scaled rewards (±reward_clip) when normalize_reward."""
    log_std_init: float = 0.0
    """Initial log standard deviation of Gaussian actions (Box action spaces)."""
    lstm_size: int = 0
    """Width of an LSTM in front of the actor's and of the critic's MLP (0: feed-forward policy). Recurrent PPO
    splits each rollout's copies into num_minibatches groups and back-propagates through whole rollouts."""

    @property
    def batch_size(self) -> int:
        """Transitions per rollout."""
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        """Transitions per gradient step."""
        return self.batch_size // self.num_minibatches

    def validate(self) -> None:
        """Raise a ``ValueError`` naming the first bad field."""
        positive = ("num_envs", "num_steps", "total_steps", "num_epochs", "num_minibatches")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"PPOConfig.{name} must be ≥ 1, got {getattr(self, name)}")
        if self.num_minibatches > self.batch_size:
            raise ValueError(f"PPOConfig.num_minibatches={self.num_minibatches} exceeds the batch {self.batch_size}")
        if not 0.0 <= self.gamma <= 1.0 or not 0.0 <= self.gae_lambda <= 1.0:
            raise ValueError(f"PPOConfig.gamma and gae_lambda must lie in [0, 1], got {self.gamma}, {self.gae_lambda}")
        if self.learning_rate <= 0 or self.clip_range <= 0:
            raise ValueError("PPOConfig.learning_rate and clip_range must be > 0")
        if self.obs_norm_clip <= 0 or self.reward_clip <= 0:
            raise ValueError("PPOConfig.obs_norm_clip and reward_clip must be > 0")
        if self.lstm_size < 0:
            raise ValueError(f"PPOConfig.lstm_size must be ≥ 0, got {self.lstm_size}")
        if self.lstm_size and self.num_envs % self.num_minibatches:
            raise ValueError(
                f"PPOConfig.num_minibatches={self.num_minibatches} must divide num_envs={self.num_envs} with "
                "lstm_size > 0 (recurrent minibatches are groups of whole env copies)"
            )


MUJOCO_PPO = PPOConfig(
    num_envs=8, num_steps=256, total_steps=1_000_000, learning_rate=3e-4, anneal_lr=True, gamma=0.99,
    gae_lambda=0.95, clip_range=0.2, anneal_clip=False, ent_coef=0.0, vf_coef=0.5, max_grad_norm=0.5,
    num_epochs=10, num_minibatches=32, hidden=(64, 64), activation="tanh", normalize_obs=True,
    obs_norm_clip=10.0, normalize_reward=True, reward_clip=10.0,
)
"""RL-Zoo / SA-PPO MuJoCo setting with the 2048-step rollout spread over 8 copies × 256 steps (the same batch;
1.6× less wall-clock than 1 copy × 2048, which ``--num-envs 1 --set num_steps=2048`` restores), 10 epochs × 32
minibatches of 64, lr 3e-4 annealed, γ 0.99, λ 0.95, clip 0.2, 64-64 tanh (orthogonal init), observations
normalised and clipped at ±10, rewards scaled by the return's running std."""

ANT_PPO = replace(MUJOCO_PPO, log_std_init=-1.0)
"""MUJOCO_PPO with a narrower initial action noise (σ = e⁻¹ ≈ 0.37): Ant-v5 charges 0.5·‖a‖² per step against a
healthy reward of 1, so σ = 1 actions cost more than staying alive earns and the shared preset first learns to
fall over (median 876 at 1M); with σ ≈ 0.37 it stays up from the start."""

HALFCHEETAH_PPO = PPOConfig(
    num_envs=1, num_steps=512, total_steps=1_000_000, learning_rate=2.0633e-5, anneal_lr=False, gamma=0.98,
    gae_lambda=0.92, clip_range=0.1, anneal_clip=False, ent_coef=0.000401762, vf_coef=0.58096, max_grad_norm=0.8,
    num_epochs=20, num_minibatches=8, hidden=(256, 256), activation="relu", normalize_obs=True,
    obs_norm_clip=10.0, normalize_reward=True, reward_clip=10.0, log_std_init=-2.0,
)
"""RL-Zoo's tuned HalfCheetah PPO: one copy × 512 steps, 20 epochs of minibatch 64, lr 2.06e-5 constant, γ 0.98,
λ 0.92, clip 0.1, 256-256 ReLU, log σ₀ = −2. The shared MUJOCO_PPO stalls near 1800 on HalfCheetah-v5."""

PPO_PRESETS: dict[str, PPOConfig] = {
    "CartPole-v1": PPOConfig(),
    "Pendulum-v1": PPOConfig(num_envs=16, num_steps=256, total_steps=400_000, learning_rate=1e-3,
                             gamma=0.9, gae_lambda=0.95, clip_range=0.2, anneal_clip=False, num_epochs=10,
                             num_minibatches=16, normalize_obs=True, log_std_init=-1.0, max_grad_norm=0.5),
    **{env_id: MUJOCO_PPO for env_id in ("Hopper-v5", "Walker2d-v5")},
    "HalfCheetah-v5": HALFCHEETAH_PPO,
    "Ant-v5": ANT_PPO,
}
"""Tuned settings for known env ids (other ids start from ``PPOConfig()``)."""


def policy_kwargs(cfg: PPOConfig) -> dict[str, Any]:
    """The policy options a PPO config sets (widths, activation, normaliser, initial log σ)."""
    return {"pi_hidden": cfg.hidden, "vf_hidden": cfg.hidden, "activation": cfg.activation,
            "normalize_obs": cfg.normalize_obs, "obs_norm_clip": cfg.obs_norm_clip, "log_std_init": cfg.log_std_init}


def scale_rewards(
    rewards: torch.Tensor,
    done: torch.Tensor,
    running_return: torch.Tensor,
    return_stats: ObsNormalizer,
    gamma: float,
    clip: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return-based reward scaling (SB3 ``VecNormalize(norm_reward=True)``, Engstrom et al. 2020).

    The discounted return ``G_t = γ·G_{t−1} + r_t`` of each copy (restarted after every episode end) is
    accumulated through the rollout; its running variance (``return_stats``, updated here with all
    ``G_t`` of the rollout) scales the rewards: ``clip(r_t / sqrt(Var[G] + eps), ±clip)``.

    Args:
        rewards: ``[T, N]`` raw rewards.
        done: ``[T, N]`` bool, ``terminated | truncated``.
        running_return: ``[N]`` the copies' discounted returns before the rollout (carried between rollouts).
        return_stats: running statistics of ``G`` (a scalar-shaped :class:`ObsNormalizer`, updated in place).
        gamma: discount of ``G``.
        clip: clip of the scaled rewards.

    Returns:
        ``([T, N]`` scaled rewards, ``[N]`` running returns after the rollout).

    Example:
        >>> stats = ObsNormalizer((), dtype=torch.float64)
        >>> r = torch.full((4, 1), 2.0); d = torch.zeros(4, 1, dtype=torch.bool)
        >>> scaled, g = scale_rewards(r, d, torch.zeros(1), stats, gamma=0.0, clip=10.0)
        >>> g.item(), scaled[0, 0].item()  # every return is 2: tiny variance, the scaled reward hits the clip
        (2.0, 10.0)
    """
    acc = running_return.to(torch.float64)
    returns = torch.empty(rewards.shape, dtype=torch.float64, device=rewards.device)
    r64 = rewards.to(torch.float64)
    for t in range(rewards.shape[0]):
        acc = gamma * acc + r64[t]
        returns[t] = acc
        acc = torch.where(done[t], torch.zeros_like(acc), acc)
    return_stats.update(returns.flatten())
    std = torch.sqrt(return_stats.var + return_stats.eps)
    scaled = (r64 / std).clamp(-clip, clip).to(rewards.dtype)
    return scaled, acc.to(running_return.dtype)


class Rollout(NamedTuple):
    """One PPO rollout: the collected trajectory and the critic's view of it."""

    trajectory: Trajectory
    """``T = num_steps`` steps of ``N = num_envs`` copies (log-probabilities in ``extras["log_prob"]``)."""
    critic_obs: torch.Tensor
    """``[T, N, *obs_shape]`` observations the critic sees (the actor's unless the critic is asymmetric)."""
    last_critic_obs: torch.Tensor
    """``[N, *obs_shape]`` critic observation after the last step (bootstrap of unfinished episodes)."""
    final_critic_obs: torch.Tensor
    """``[T, N, *obs_shape]`` critic view of the final observation of episodes ending at each step."""

    @property
    def obs(self) -> torch.Tensor:
        """``[T, N, *obs_shape]`` observations the actor saw."""
        return self.trajectory.obs

    @property
    def rewards(self) -> torch.Tensor:
        """``[T, N]``."""
        return self.trajectory.rewards


class PPOLoss(NamedTuple):
    """The terms of a PPO minibatch loss."""

    total: torch.Tensor
    """Scalar loss to minimise: policy + vf_coef·value − ent_coef·entropy."""
    policy: torch.Tensor
    """Scalar clipped-surrogate loss."""
    value: torch.Tensor
    """Scalar value loss (½ mean squared error, clipped when asked)."""
    entropy: torch.Tensor
    """Scalar mean policy entropy."""
    approx_kl: torch.Tensor
    """Scalar ``E[(r − 1) − log r]`` estimate of KL(old ‖ new) (Schulman's k3)."""
    clip_fraction: torch.Tensor
    """Scalar fraction of samples whose ratio was clipped."""


def clipped_surrogate_loss(
    log_prob: torch.Tensor, old_log_prob: torch.Tensor, advantages: torch.Tensor, clip_range: float
) -> torch.Tensor:
    """PPO's clipped surrogate, negated to be minimised: ``−E[min(r·A, clip(r, 1 ± ε)·A)]``.

    Args:
        log_prob: ``[B]`` log π(a|s) under the current policy (differentiable).
        old_log_prob: ``[B]`` log π_old(a|s) from the rollout.
        advantages: ``[B]`` advantage estimates.
        clip_range: ε > 0.

    Returns:
        Scalar loss.

    Example:
        >>> lp = torch.log(torch.tensor([1.5, 0.5])); a = torch.tensor([1.0, -1.0])
        >>> clipped_surrogate_loss(lp, torch.zeros(2), a, 0.2)  # ratios clipped to 1.2 and 0.8
        tensor(-0.2000)
    """
    ratio = torch.exp(log_prob - old_log_prob)
    unclipped = ratio * advantages
    clipped = ratio.clamp(1.0 - clip_range, 1.0 + clip_range) * advantages
    return -torch.min(unclipped, clipped).mean()


def value_loss(
    values: torch.Tensor, returns: torch.Tensor, old_values: torch.Tensor, clip_range_vf: float | None
) -> torch.Tensor:
    """``½·E[(V − R)²]``, or with ``clip_range_vf`` the pessimistic max over the clipped update.

    Args:
        values: ``[B]`` current value predictions.
        returns: ``[B]`` targets.
        old_values: ``[B]`` predictions at rollout time.
        clip_range_vf: clip of ``V − V_old`` (None: plain squared error).

    Returns:
        Scalar loss.
    """
    err = (values - returns).square()
    if clip_range_vf is not None:
        clipped = old_values + (values - old_values).clamp(-clip_range_vf, clip_range_vf)
        err = torch.max(err, (clipped - returns).square())
    return 0.5 * err.mean()


def ppo_loss(
    log_prob: torch.Tensor,
    old_log_prob: torch.Tensor,
    advantages: torch.Tensor,
    values: torch.Tensor,
    returns: torch.Tensor,
    old_values: torch.Tensor,
    entropy: torch.Tensor,
    *,
    clip_range: float,
    clip_range_vf: float | None,
    vf_coef: float,
    ent_coef: float,
) -> PPOLoss:
    """The full PPO minibatch loss; every input is ``[B]`` (see :func:`clipped_surrogate_loss`)."""
    pol = clipped_surrogate_loss(log_prob, old_log_prob, advantages, clip_range)
    val = value_loss(values, returns, old_values, clip_range_vf)
    ent = entropy.mean()
    with torch.no_grad():
        log_ratio = log_prob - old_log_prob
        approx_kl = (torch.exp(log_ratio) - 1 - log_ratio).mean()
        clip_fraction = ((log_ratio.exp() - 1).abs() > clip_range).float().mean()
    total = pol + vf_coef * val - ent_coef * ent
    return PPOLoss(total, pol, val, ent, approx_kl, clip_fraction)


class PPO:
    """A PPO learner on a batched env; :meth:`iterate` runs one rollout and one update.

    Args:
        env: the batched training env (its ``num_envs`` copies all collect experience).
        cfg: hyperparameters (``cfg.num_envs`` must equal ``env.num_envs``).
        seed: seeds network initialisation, action sampling, transform noise and minibatch order.
        hooks: what a defense changes: observation/action transforms of collection, whether the critic
            sees clean observations, extra loss terms.
    """

    def __init__(self, env: VecEnv, cfg: PPOConfig, *, seed: int, hooks: TrainingHooks = NO_HOOKS) -> None:
        cfg.validate()
        check_num_envs(env.num_envs, cfg.num_envs, "PPOConfig")
        if not isinstance(env.action_space, gym.spaces.Discrete | gym.spaces.Box):
            raise ValueError(f"PPO needs a Discrete or Box action space, got {env.action_space!r}")
        self.env = env
        self.cfg = cfg
        self.hooks = hooks
        self.device = env.device
        gens = Generators(seed, self.device)
        with seeded_init(gens.seed):
            self.policy = self._make_policy(env, cfg).to(self.device)
        self.discrete = self.policy.discrete
        self.optimizer = make_adam(self.policy.parameters(), cfg.learning_rate, eps=cfg.adam_eps)
        self._act_gen = gens.make(1)
        self._shuffle_gen = gens.make(3)
        self._asym = hooks.obs_transform is not None and hooks.clean_critic
        self._state = start_collect(env, seed=derive_seed(seed, 4), generator=gens.make(2))
        # reward scaling: running discounted return of each copy and its running variance (checkpointed)
        self.return_stats: ObsNormalizer | None = None
        self.running_return: torch.Tensor | None = None
        if cfg.normalize_reward:
            self.return_stats = ObsNormalizer((), dtype=torch.float64).to(self.device)
            self.running_return = torch.zeros(env.num_envs, device=self.device)
        self.steps = 0
        self.updates = 0

    def _make_policy(self, env: VecEnv, cfg: PPOConfig) -> ActorCriticPolicy:
        return ActorCriticPolicy(env.observation_space, env.action_space, **policy_kwargs(cfg))

    @property
    def progress(self) -> float:
        """Fraction of ``total_steps`` done."""
        return self.steps / self.cfg.total_steps

    def _sample(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Sampled actions and their log-probabilities for observations ``x`` (no autograd)."""
        return self._sample_params(self.policy.action_params(x))

    def _sample_params(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.discrete:
            logp_all = torch.log_softmax(params, -1)
            u = torch.rand(params.shape, generator=self._act_gen, device=params.device)
            action = (logp_all - torch.log(-torch.log(u))).argmax(-1)  # Gumbel-max sampling
            return action, logp_all.gather(1, action.unsqueeze(1)).squeeze(1)
        log_std = self.policy.log_std
        assert log_std is not None
        eps = torch.randn(params.shape, generator=self._act_gen, device=params.device)
        action = params + log_std.exp() * eps
        logp = (-0.5 * eps.square() - log_std - _LOG_SQRT_2PI).sum(-1)
        return action, logp

    def _env_action(self, action: torch.Tensor) -> torch.Tensor:
        if self.discrete:
            return action
        p = self.policy
        clipped = torch.max(torch.min(action, p.action_high.flatten()), p.action_low.flatten())
        return clipped.reshape(-1, *tuple(self.env.action_space.shape or ()))

    def _act(self, x: torch.Tensor, ctx: StepContext) -> Act:
        action, logp = self._sample(x)
        return Act(action, self._env_action(action), {"log_prob": logp})

    @torch.no_grad()
    def collect(self) -> Rollout:
        """Run ``num_steps`` steps on every copy through :func:`~robustrl.rollout.collect`."""
        traj = collect(
            self.policy,  # type: ignore[arg-type]
            self.env,
            self.cfg.num_steps,
            state=self._state,
            act=self._act,
            obs_transform=self.hooks.obs_transform,
            action_transform=self.hooks.action_transform,
            transform_final=not self._asym,  # an asymmetric critic bootstraps from the clean final obs
        )
        self._state = traj.state
        self.steps += self.cfg.num_steps * self.env.num_envs
        if self.return_stats is not None and self.running_return is not None:
            scaled, self.running_return = scale_rewards(
                traj.rewards, traj.done, self.running_return, self.return_stats, self.cfg.gamma, self.cfg.reward_clip
            )
            traj = traj._replace(rewards=scaled, extras={**traj.extras, "raw_rewards": traj.rewards})
        seen = traj.state.seen
        assert seen is not None
        if self._asym:
            return Rollout(traj, traj.clean_obs, traj.state.obs.float(), traj.final_clean_obs)
        return Rollout(traj, traj.obs, seen, traj.final_obs)

    @torch.no_grad()
    def advantages(self, roll: Rollout) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """GAE advantages, λ-returns and values, each ``[T, N]``, under the current critic."""
        cfg, policy, traj = self.cfg, self.policy, roll.trajectory
        t_len, n = traj.rewards.shape
        values = policy.value(roll.critic_obs.flatten(0, 1)).view(t_len, n)
        last_value = policy.value(roll.last_critic_obs)
        final_values = torch.zeros_like(values)
        # one host-device sync per rollout (not per step): the truncated steps whose final obs bootstraps
        idx = traj.truncated.nonzero()
        if idx.numel():
            final_values[idx[:, 0], idx[:, 1]] = policy.value(roll.final_critic_obs[idx[:, 0], idx[:, 1]])
        next_values = next_values_from_rollout(values, last_value, traj.done, final_values)
        est = generalized_advantage_estimate(
            traj.rewards, values, next_values, traj.terminated, traj.truncated, cfg.gamma, cfg.gae_lambda
        )
        return est.advantages, est.returns, values

    def _log_prob_entropy(self, x: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._log_prob_entropy_params(self.policy.action_params(x), actions)

    def _log_prob_entropy_params(
        self, params: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probabilities and entropies of ``actions [B, ...]`` under action parameters ``params [B, ...]``."""
        if self.discrete:
            logp_all = torch.log_softmax(params, -1)
            logp = logp_all.gather(1, actions.unsqueeze(1)).squeeze(1)
            entropy = -(logp_all.exp() * logp_all).sum(-1)
            return logp, entropy
        log_std = self.policy.log_std
        assert log_std is not None
        z = (actions - params) * torch.exp(-log_std)
        logp = (-0.5 * z.square() - log_std - _LOG_SQRT_2PI).sum(-1)
        entropy = (log_std + 0.5 + _LOG_SQRT_2PI).sum().expand(params.shape[0])
        return logp, entropy

    def update(self, roll: Rollout) -> Metrics:
        """PPO epochs over one rollout; returns ``train/…`` metrics."""
        cfg, policy = self.cfg, self.policy
        advantages, returns, values = self.advantages(roll)
        traj = roll.trajectory
        obs = traj.obs.flatten(0, 1)
        critic_obs = roll.critic_obs.flatten(0, 1)
        actions = traj.actions.flatten(0, 1)
        old_logp = traj.extras["log_prob"].flatten(0, 1)
        adv, ret, old_v = advantages.flatten(), returns.flatten(), values.flatten()
        lr, clip = self._schedules()
        batch, mb = obs.shape[0], cfg.minibatch_size
        # one gather per epoch: pack every per-sample tensor into one [B, F] table, minibatches are views
        columns = [obs.flatten(1), critic_obs.flatten(1), actions.reshape(batch, -1).float(),
                   torch.stack([old_logp, adv, ret, old_v], 1)]
        widths = [c.shape[1] for c in columns]
        table = torch.cat(columns, 1)
        params = list(policy.parameters())
        terms: list[torch.Tensor] = []
        reg_terms: list[torch.Tensor] = []
        stop = False
        for _ in range(cfg.num_epochs):
            perm = torch.randperm(batch, generator=self._shuffle_gen, device=self.device)
            shuffled = table[perm]
            for start in range(0, batch - mb + 1, mb):
                o, c_o, act, rest = shuffled[start : start + mb].split(widths, 1)
                o, c_o = o.view(-1, *obs.shape[1:]), c_o.view(-1, *obs.shape[1:])
                act = act.squeeze(1).long() if self.discrete else act
                b_logp, a, b_ret, b_v = rest.unbind(1)
                if cfg.normalize_advantage and mb > 1:
                    a = (a - a.mean()) / (a.std() + 1e-8)
                logp, entropy = self._log_prob_entropy(o, act)
                v = policy.value(c_o)
                loss = ppo_loss(
                    logp, b_logp, a, v, b_ret, b_v, entropy,
                    clip_range=clip, clip_range_vf=cfg.clip_range_vf, vf_coef=cfg.vf_coef, ent_coef=cfg.ent_coef,
                )
                regularize = partial(regularization, self.hooks.regularizers, policy, Minibatch(o, act), self.progress)
                if self._gradient_step(loss, params, terms, reg_terms, regularize):
                    stop = True
                    break
            if stop:
                break
        if policy.obs_norm is not None:
            policy.obs_norm.update(obs)
        return self._metrics(terms, reg_terms, ret, old_v, lr, clip, traj)

    def _gradient_step(
        self, loss: PPOLoss, params: list[nn.Parameter], terms: list[torch.Tensor], reg_terms: list[torch.Tensor],
        regularize: Callable[[], torch.Tensor],
    ) -> bool:
        """One optimiser step on the loss plus the defenses' regularisers; True when the KL early stop fires.

        ``regularize()`` is called only when the hooks have regularisers; the loss terms are recorded.
        """
        cfg = self.cfg
        total = loss.total
        if self.hooks.regularizers:
            reg = regularize()
            reg_terms.append(reg.detach())
            total = total + reg
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        if cfg.max_grad_norm is not None:
            nn.utils.clip_grad_norm_(params, cfg.max_grad_norm, foreach=True)
        self.optimizer.step()
        self.updates += 1
        terms.append(torch.stack([*loss[1:], loss.total]).detach())
        return cfg.target_kl is not None and float(loss.approx_kl) > 1.5 * cfg.target_kl

    def _schedules(self) -> tuple[float, float]:
        """This update's learning rate (set on the optimiser) and clip range."""
        cfg = self.cfg
        lr = linear_schedule(cfg.learning_rate, self.progress) if cfg.anneal_lr else cfg.learning_rate
        set_lr(self.optimizer, max(lr, 1e-12))
        clip = linear_schedule(cfg.clip_range, self.progress) if cfg.anneal_clip else cfg.clip_range
        return lr, max(clip, 1e-8)

    def _metrics(
        self, terms: list[torch.Tensor], reg_terms: list[torch.Tensor], ret: torch.Tensor, old_v: torch.Tensor,
        lr: float, clip: float, traj: Trajectory,
    ) -> Metrics:
        s = torch.stack(terms).mean(0).tolist()
        var_ret = float(ret.var())
        explained = float("nan") if var_ret == 0 else 1.0 - float((ret - old_v).var()) / var_ret
        out: Metrics = {
            "train/policy_loss": s[0],
            "train/value_loss": s[1],
            "train/entropy": s[2],
            "train/approx_kl": s[3],
            "train/clip_fraction": s[4],
            "train/loss": s[5],
            "train/explained_variance": explained,
            "train/learning_rate": lr,
            "train/clip_range": clip,
            "train/rollout_reward": float(traj.extras.get("raw_rewards", traj.rewards).mean()),
        }
        if reg_terms:
            out["train/regularizer"] = float(torch.stack(reg_terms).mean())
        return out

    def iterate(self) -> Metrics:
        """One rollout of ``num_envs × num_steps`` transitions, then one PPO update."""
        return self.update(self.collect())
