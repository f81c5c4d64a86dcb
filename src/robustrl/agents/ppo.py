"""Proximal Policy Optimization (Schulman et al. 2017, "Proximal Policy Optimization Algorithms").

Clipped surrogate objective, GAE(γ, λ) with truncation bootstrapped from ``V(final_obs)``, optional
clipped value loss, advantage normalisation per minibatch, linear learning-rate / clip annealing, an
optional running observation normaliser inside the policy, and Gaussian observation noise for Policy
Smoothing training. Discrete (categorical) and Box (diagonal Gaussian) action spaces.

Speed: the rollout loop does one actor forward and one env step per step for all copies at once; values
are computed afterwards in one batched forward over the whole rollout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, NamedTuple

import gymnasium as gym
import torch
from torch import nn

from robustrl.agents.common import (
    Generators,
    add_obs_noise,
    check_num_envs,
    check_obs_noise,
    linear_schedule,
    make_adam,
    seeded_init,
    set_lr,
)
from robustrl.agents.returns import generalized_advantage_estimate, next_values_from_rollout
from robustrl.common.seeding import derive_seed
from robustrl.envs.base import VecEnv
from robustrl.policies.networks import ActorCriticPolicy

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
    log_std_init: float = 0.0
    """Initial log standard deviation of Gaussian actions (Box action spaces)."""
    obs_noise: float = 0.0
    """σ of Gaussian noise added to every observation the agent acts and learns on (Policy Smoothing)."""
    critic_obs: Literal["clean", "noisy"] = "clean"
    """What the critic sees when obs_noise > 0: the clean observation (asymmetric critic) or the noisy one."""

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
        check_obs_noise(self.obs_noise)


PPO_PRESETS: dict[str, PPOConfig] = {
    "CartPole-v1": PPOConfig(),
    "Pendulum-v1": PPOConfig(num_envs=16, num_steps=256, total_steps=400_000, learning_rate=1e-3,
                             gamma=0.9, gae_lambda=0.95, clip_range=0.2, anneal_clip=False, num_epochs=10,
                             num_minibatches=16, normalize_obs=True, log_std_init=-1.0, max_grad_norm=0.5),
}
"""Tuned settings for known env ids (other ids start from ``PPOConfig()``)."""


class Rollout(NamedTuple):
    """One PPO rollout: ``T = num_steps`` steps of ``N = num_envs`` copies."""

    obs: torch.Tensor
    """``[T, N, *obs_shape]`` observations the actor saw (noisy when obs_noise > 0)."""
    critic_obs: torch.Tensor
    """``[T, N, *obs_shape]`` observations the critic sees (``obs`` itself unless the critic is asymmetric)."""
    actions: torch.Tensor
    """``[T, N]`` int64 or ``[T, N, act_dim]`` float32 sampled (unclipped) actions."""
    log_probs: torch.Tensor
    """``[T, N]`` log-probabilities of the actions at sampling time."""
    rewards: torch.Tensor
    """``[T, N]``."""
    terminated: torch.Tensor
    """``[T, N]`` bool."""
    truncated: torch.Tensor
    """``[T, N]`` bool."""
    last_critic_obs: torch.Tensor
    """``[N, *obs_shape]`` critic observation after the last step (bootstrap of unfinished episodes)."""
    final_index: torch.Tensor
    """``[M, 2]`` int64 ``(t, env)`` of the truncated steps."""
    final_critic_obs: torch.Tensor
    """``[M, *obs_shape]`` critic observation of ``info["final_obs"]`` at those steps (bootstrap of truncation)."""


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
        seed: seeds network initialisation, action sampling, observation noise and minibatch order.
    """

    def __init__(self, env: VecEnv, cfg: PPOConfig, *, seed: int) -> None:
        cfg.validate()
        check_num_envs(env.num_envs, cfg.num_envs, "PPOConfig")
        if not isinstance(env.action_space, gym.spaces.Discrete | gym.spaces.Box):
            raise ValueError(f"PPO needs a Discrete or Box action space, got {env.action_space!r}")
        self.env = env
        self.cfg = cfg
        self.device = env.device
        gens = Generators(seed, self.device)
        with seeded_init(gens.seed):
            self.policy = ActorCriticPolicy(
                env.observation_space,
                env.action_space,
                pi_hidden=cfg.hidden,
                vf_hidden=cfg.hidden,
                activation=cfg.activation,
                normalize_obs=cfg.normalize_obs,
                log_std_init=cfg.log_std_init,
            ).to(self.device)
        self.discrete = self.policy.discrete
        self.optimizer = make_adam(self.policy.parameters(), cfg.learning_rate, eps=cfg.adam_eps)
        self._act_gen = gens.make(1)
        self._noise_gen = gens.make(2)
        self._shuffle_gen = gens.make(3)
        self._asym = cfg.obs_noise > 0 and cfg.critic_obs == "clean"
        obs, _ = env.reset(seed=derive_seed(seed, 4))
        self._clean = obs.float()
        self._x = self._see(self._clean)
        self.steps = 0
        self.updates = 0

    def _see(self, obs: torch.Tensor) -> torch.Tensor:
        return add_obs_noise(obs.float(), self.cfg.obs_noise, self._noise_gen)

    @property
    def progress(self) -> float:
        """Fraction of ``total_steps`` done."""
        return self.steps / self.cfg.total_steps

    def _sample(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Sampled actions and their log-probabilities for observations ``x`` (no autograd)."""
        params = self.policy.action_params(x)
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

    @torch.no_grad()
    def collect(self) -> Rollout:
        """Run ``num_steps`` steps on every copy; returns the rollout tensors ``[T, N, ...]``."""
        cfg, env, policy = self.cfg, self.env, self.policy
        t_len, n = cfg.num_steps, env.num_envs
        x = self._x
        obs_buf = torch.empty((t_len, *x.shape), device=self.device)
        critic_buf = obs_buf if not self._asym else torch.empty_like(obs_buf)
        act_shape = () if self.discrete else (policy.action_net.out_features,)
        act_buf = torch.empty(
            (t_len, n, *act_shape), device=self.device, dtype=torch.int64 if self.discrete else torch.float32
        )
        logp_buf = torch.empty((t_len, n), device=self.device)
        rew_buf = torch.empty((t_len, n), device=self.device)
        term_buf = torch.empty((t_len, n), device=self.device, dtype=torch.bool)
        trunc_buf = torch.empty((t_len, n), device=self.device, dtype=torch.bool)
        final_index: list[torch.Tensor] = []
        final_obs: list[torch.Tensor] = []
        check = self.device.type == "cpu"
        for t in range(t_len):
            obs_buf[t] = x
            if self._asym:
                critic_buf[t] = self._clean
            action, logp = self._sample(x)
            act_buf[t] = action
            logp_buf[t] = logp
            obs, reward, terminated, truncated, info = env.step(self._env_action(action))
            rew_buf[t] = reward
            term_buf[t] = terminated
            trunc_buf[t] = truncated
            if not check or bool(truncated.any()):
                idx = truncated.nonzero().squeeze(1)
                fin = info["final_obs"][idx].float()
                final_index.append(torch.stack([torch.full_like(idx, t), idx], dim=1))
                final_obs.append(fin if self._asym else self._see(fin))
            self._clean = obs.float()
            x = self._see(self._clean)
        self._x = x
        self.steps += t_len * n
        obs_shape, dev = tuple(x.shape[1:]), self.device
        return Rollout(
            obs=obs_buf,
            critic_obs=critic_buf,
            actions=act_buf,
            log_probs=logp_buf,
            rewards=rew_buf,
            terminated=term_buf,
            truncated=trunc_buf,
            last_critic_obs=self._clean if self._asym else x,
            final_index=torch.cat(final_index) if final_index else torch.zeros((0, 2), dtype=torch.int64, device=dev),
            final_critic_obs=torch.cat(final_obs) if final_obs else torch.zeros((0, *obs_shape), device=dev),
        )

    @torch.no_grad()
    def advantages(self, roll: Rollout) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """GAE advantages, λ-returns and values, each ``[T, N]``, under the current critic."""
        cfg, policy = self.cfg, self.policy
        t_len, n = roll.rewards.shape
        values = policy.value(roll.critic_obs.flatten(0, 1)).view(t_len, n)
        last_value = policy.value(roll.last_critic_obs)
        final_values = torch.zeros_like(values)
        if roll.final_index.numel():
            final_values[roll.final_index[:, 0], roll.final_index[:, 1]] = policy.value(roll.final_critic_obs)
        done = roll.terminated | roll.truncated
        next_values = next_values_from_rollout(values, last_value, done, final_values)
        est = generalized_advantage_estimate(
            roll.rewards, values, next_values, roll.terminated, roll.truncated, cfg.gamma, cfg.gae_lambda
        )
        return est.advantages, est.returns, values

    def _log_prob_entropy(self, x: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        params = self.policy.action_params(x)
        if self.discrete:
            logp_all = torch.log_softmax(params, -1)
            logp = logp_all.gather(1, actions.unsqueeze(1)).squeeze(1)
            entropy = -(logp_all.exp() * logp_all).sum(-1)
            return logp, entropy
        log_std = self.policy.log_std
        assert log_std is not None
        z = (actions - params) * torch.exp(-log_std)
        logp = (-0.5 * z.square() - log_std - _LOG_SQRT_2PI).sum(-1)
        entropy = (log_std + 0.5 + _LOG_SQRT_2PI).sum().expand(x.shape[0])
        return logp, entropy

    def update(self, roll: Rollout) -> dict[str, float]:
        """PPO epochs over one rollout; returns ``train/…`` metrics."""
        cfg, policy = self.cfg, self.policy
        advantages, returns, values = self.advantages(roll)
        obs = roll.obs.flatten(0, 1)
        critic_obs = roll.critic_obs.flatten(0, 1)
        actions = roll.actions.flatten(0, 1)
        old_logp = roll.log_probs.flatten(0, 1)
        adv, ret, old_v = advantages.flatten(), returns.flatten(), values.flatten()
        lr = linear_schedule(cfg.learning_rate, self.progress) if cfg.anneal_lr else cfg.learning_rate
        set_lr(self.optimizer, max(lr, 1e-12))
        clip = linear_schedule(cfg.clip_range, self.progress) if cfg.anneal_clip else cfg.clip_range
        clip = max(clip, 1e-8)
        batch, mb = obs.shape[0], cfg.minibatch_size
        # one gather per epoch: pack every per-sample tensor into one [B, F] table, minibatches are views
        columns = [obs.flatten(1), critic_obs.flatten(1), actions.reshape(batch, -1).float(),
                   torch.stack([old_logp, adv, ret, old_v], 1)]
        widths = [c.shape[1] for c in columns]
        table = torch.cat(columns, 1)
        params = list(policy.parameters())
        terms: list[torch.Tensor] = []
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
                self.optimizer.zero_grad(set_to_none=True)
                loss.total.backward()
                if cfg.max_grad_norm is not None:
                    nn.utils.clip_grad_norm_(params, cfg.max_grad_norm, foreach=True)
                self.optimizer.step()
                self.updates += 1
                terms.append(torch.stack([*loss[1:], loss.total]).detach())
                if cfg.target_kl is not None and float(loss.approx_kl) > 1.5 * cfg.target_kl:
                    stop = True
                    break
            if stop:
                break
        if policy.obs_norm is not None:
            policy.obs_norm.update(obs)
        s = torch.stack(terms).mean(0).tolist()
        var_ret = float(ret.var())
        explained = float("nan") if var_ret == 0 else 1.0 - float((ret - old_v).var()) / var_ret
        return {
            "train/policy_loss": s[0],
            "train/value_loss": s[1],
            "train/entropy": s[2],
            "train/approx_kl": s[3],
            "train/clip_fraction": s[4],
            "train/loss": s[5],
            "train/explained_variance": explained,
            "train/learning_rate": lr,
            "train/clip_range": clip,
            "train/rollout_reward": float(roll.rewards.mean()),
        }

    def iterate(self) -> dict[str, float]:
        """One rollout of ``num_envs × num_steps`` transitions, then one PPO update."""
        return self.update(self.collect())
