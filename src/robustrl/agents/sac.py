"""Soft Actor-Critic with automatic entropy tuning.

Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and Applications".
Twin Q critics (a fused :class:`~robustrl.agents.critics.CriticEnsemble`: one batched matmul per layer for
both; optionally an HL-Gauss classification head) with Polyak-averaged targets, a tanh-squashed Gaussian actor
(reparameterised), and the temperature α learned to keep the policy entropy near ``target_entropy`` (default
``−dim(A)``). Actions are rescaled from ``[−1, 1]`` to the action box; log-probabilities are those of the
``[−1, 1]`` action, as in Stable-Baselines3. Experience comes from ``num_envs`` copies at once; truncated
episodes bootstrap from ``info["final_obs"]``.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from robustrl.agents.buffer import ReplayBuffer
from robustrl.agents.common import (
    Generators,
    Metrics,
    check_num_envs,
    collect_replay,
    make_adam,
    polyak_,
    regularization,
    seeded_init,
)
from robustrl.agents.critics import make_critic_ensemble
from robustrl.agents.off_policy import OffPolicyConfig, critic_head_spec
from robustrl.common.seeding import derive_seed
from robustrl.defenses.base import NO_HOOKS, Minibatch, TrainingHooks
from robustrl.envs.base import VecEnv
from robustrl.policies.actors import SquashedGaussianActorPolicy
from robustrl.policies.features import flat_dim
from robustrl.rollout import Act, StepContext, start_collect

_LOG2 = math.log(2.0)
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


@dataclass(frozen=True)
class SACConfig(OffPolicyConfig):
    """SAC hyperparameters (defaults: a fast Pendulum-v1 setting; see :data:`SAC_PRESETS`)."""

    ent_coef: float | None = None
    """Fixed temperature α (None: learned, automatic entropy tuning)."""
    init_ent_coef: float = 1.0
    """Initial α when it is learned."""
    target_entropy: float | None = None
    """Entropy target of automatic tuning (None: −dim(A))."""

    def validate(self) -> None:
        """Raise a ``ValueError`` naming the first bad field."""
        super().validate()
        if self.ent_coef is not None and self.ent_coef < 0:
            raise ValueError(f"SACConfig.ent_coef must be ≥ 0 or None, got {self.ent_coef}")
        if self.init_ent_coef <= 0:
            raise ValueError(f"SACConfig.init_ent_coef must be > 0, got {self.init_ent_coef}")


MUJOCO_SAC = SACConfig(
    num_envs=1, total_steps=1_000_000, learning_rate=3e-4, buffer_size=1_000_000, learning_starts=10_000,
    batch_size=256, gamma=0.99, tau=0.005, train_freq=1, gradient_steps=1, hidden=(256, 256), activation="relu",
)
"""RL-Zoo's MuJoCo SAC: 256-256 ReLU, lr 3e-4, batch 256, buffer 1M, 10k random steps, one update per step."""

SAC_PRESETS: dict[str, SACConfig] = {
    "Pendulum-v1": SACConfig(),
    **{env_id: MUJOCO_SAC for env_id in ("Hopper-v5", "Walker2d-v5", "HalfCheetah-v5", "Ant-v5")},
}
"""Tuned settings for known env ids (other ids start from ``SACConfig()``)."""


def squashed_log_prob(u: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """Log-density of ``tanh(u)`` where ``u ~ N(mean, exp(log_std)²)`` (diagonal), summed over action dims.

    Uses ``log(1 − tanh(u)²) = 2·(log 2 − u − softplus(−2u))`` for numerical stability.

    Args:
        u: ``[B, A]`` pre-squash samples.
        mean: ``[B, A]``.
        log_std: ``[B, A]``.

    Returns:
        ``[B]`` log-probabilities of the squashed actions in ``[−1, 1]^A``.
    """
    z = (u - mean) * torch.exp(-log_std)
    gauss = (-0.5 * z.square() - log_std - _LOG_SQRT_2PI).sum(-1)
    correction = (2.0 * (_LOG2 - u - nn.functional.softplus(-2.0 * u))).sum(-1)
    return gauss - correction


def sac_critic_loss(q1: torch.Tensor, q2: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``½·E[(Q1 − y)²] + ½·E[(Q2 − y)²]`` for the soft TD target ``y`` (``[B]`` each; ``y`` not differentiated)."""
    y = target.detach()
    return 0.5 * ((q1 - y).square().mean() + (q2 - y).square().mean())


def soft_td_target(
    rewards: torch.Tensor,
    next_q1: torch.Tensor,
    next_q2: torch.Tensor,
    next_log_prob: torch.Tensor,
    terminated: torch.Tensor,
    alpha: torch.Tensor | float,
    gamma: float,
) -> torch.Tensor:
    """``y = r + γ·(1 − terminated)·(min(Q1', Q2') − α·log π(a'|s'))``, every input ``[B]``; returns ``[B]``."""
    soft_v = torch.min(next_q1, next_q2) - alpha * next_log_prob
    return rewards + gamma * (1.0 - terminated.to(soft_v.dtype)) * soft_v


def sac_actor_loss(q_new: torch.Tensor, log_prob: torch.Tensor, alpha: torch.Tensor | float) -> torch.Tensor:
    """``E[α·log π(ã|s) − Q(s, ã)]`` for reparameterised actions ``ã`` (``[B]`` inputs; α not differentiated)."""
    a = alpha.detach() if isinstance(alpha, torch.Tensor) else alpha
    return (a * log_prob - q_new).mean()


def sac_temperature_loss(log_alpha: torch.Tensor, log_prob: torch.Tensor, target_entropy: float) -> torch.Tensor:
    """``−E[log α · (log π(ã|s) + H̄)]``: raises α when the entropy is below ``target_entropy`` ``H̄``."""
    return -(log_alpha * (log_prob.detach() + target_entropy)).mean()


class SAC:
    """A SAC learner on a batched env; :meth:`iterate` collects ``train_freq`` steps and updates.

    Args:
        env: the batched training env (Box actions).
        cfg: hyperparameters.
        seed: seeds network initialisation, actions, transform noise and replay sampling.
        hooks: what a defense changes: observation/action transforms of collection, extra actor-loss terms.
    """

    def __init__(self, env: VecEnv, cfg: SACConfig, *, seed: int, hooks: TrainingHooks = NO_HOOKS) -> None:
        cfg.validate()
        check_num_envs(env.num_envs, cfg.num_envs, "SACConfig")
        if not isinstance(env.action_space, gym.spaces.Box):
            raise ValueError(f"SAC needs a Box action space, got {env.action_space!r} (use dqn or ppo)")
        self.env = env
        self.cfg = cfg
        self.hooks = hooks
        self.device = env.device
        gens = Generators(seed, self.device)
        self.act_dim = int(np.prod(env.action_space.shape))
        with seeded_init(gens.seed):
            self.policy = SquashedGaussianActorPolicy(
                env.observation_space,
                env.action_space,
                hidden=cfg.hidden,
                activation=cfg.activation,
                normalize_obs=cfg.normalize_obs,
                **critic_head_spec(cfg),
            ).to(self.device)
            critics, self._export_critics = make_critic_ensemble(
                self.policy, cfg, flat_dim(env.observation_space), self.act_dim
            )
        self.critics = critics.to(self.device)
        self.target_critics = copy.deepcopy(self.critics)
        self.target_critics.requires_grad_(False)
        self._critic_params: list[torch.Tensor] = list(self.critics.parameters())
        self._target_params: list[torch.Tensor] = list(self.target_critics.parameters())
        actor_params: list[torch.Tensor] = [
            *self.policy.latent_pi.parameters(), *self.policy.mu.parameters(), *self.policy.log_std.parameters()
        ]
        self.target_entropy = float(-self.act_dim if cfg.target_entropy is None else cfg.target_entropy)
        self.log_alpha = torch.tensor(math.log(cfg.init_ent_coef), device=self.device, requires_grad=True)
        trained = [*actor_params, *self.critics.parameters()]
        self.optimizer = make_adam(trained + ([self.log_alpha] if cfg.ent_coef is None else []), cfg.learning_rate)
        obs_shape = tuple(env.observation_space.shape or ())
        self.buffer = ReplayBuffer(cfg.buffer_size, obs_shape, (self.act_dim,), torch.float32, self.device)
        self._act_gen = gens.make(1)
        self._sample_gen = gens.make(3)
        self._state = start_collect(env, seed=derive_seed(seed, 4), generator=gens.make(2))
        self.steps = 0
        self.updates = 0

    @property
    def alpha(self) -> torch.Tensor:
        """Current temperature α (a scalar tensor, not differentiated)."""
        if self.cfg.ent_coef is not None:
            return torch.tensor(self.cfg.ent_coef, device=self.device)
        return self.log_alpha.detach().exp()

    def _sample(self, x: torch.Tensor, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised squashed actions in ``[−1, 1]^A`` and their log-probabilities."""
        mean, log_std = self.policy.mean_log_std(x)
        eps = torch.randn(mean.shape, generator=generator, device=mean.device)
        u = mean + log_std.exp() * eps
        return torch.tanh(u), squashed_log_prob(u, mean, log_std)

    def _to_env(self, a: torch.Tensor) -> torch.Tensor:
        return a * self.policy.action_scale + self.policy.action_bias

    def _act(self, x: torch.Tensor, ctx: StepContext) -> Act:
        if self.steps < self.cfg.learning_starts:
            a = torch.rand((x.shape[0], self.act_dim), generator=self._act_gen, device=self.device) * 2 - 1
        else:
            a, _ = self._sample(x, self._act_gen)
        env_a = self._to_env(a)
        return Act(env_a, env_a.reshape(x.shape[0], *tuple(self.env.action_space.shape or ())))

    @torch.no_grad()
    def collect(self, vec_steps: int) -> torch.Tensor:
        """Step all copies ``vec_steps`` times (uniform actions until learning_starts) into the replay buffer.

        Returns:
            The mean reward of the collected steps, a scalar tensor (no host-device sync).
        """
        return collect_replay(self, vec_steps)

    def update(self, gradient_steps: int) -> Metrics:
        """``gradient_steps`` SAC updates on replay batches; returns ``train/…`` metrics."""
        cfg, policy = self.cfg, self.policy
        terms: list[torch.Tensor] = []
        for _ in range(gradient_steps):
            b = self.buffer.sample(cfg.batch_size, self._sample_gen)
            alpha = self.alpha
            # one actor pass over [obs; next_obs]: actions for the actor loss and for the soft TD target
            both = torch.cat([b.obs, b.next_obs])
            a_both, logp_both = self._sample(both, self._sample_gen)
            a_new, next_a = a_both.split(cfg.batch_size)
            logp, next_logp = logp_both.split(cfg.batch_size)
            feats, next_feats = policy.features(both).split(cfg.batch_size)
            with torch.no_grad():
                nq1, nq2 = self.target_critics.q_values(torch.cat([next_feats, self._to_env(next_a)], -1)).unbind(0)
                y = soft_td_target(b.rewards, nq1, nq2, next_logp, b.terminated, alpha, cfg.gamma)
            # both critics in one batched pass; the actor loss goes through detached critic weights
            critic_loss = self.critics.loss(self.critics(torch.cat([feats, b.actions], -1)), y, cfg.sigma_ratio)
            qn = self.critics.q_values(torch.cat([feats, self._to_env(a_new)], -1), detach=True)
            actor_loss = sac_actor_loss(qn.min(0).values, logp, alpha)
            if self.hooks.regularizers:
                progress = self.steps / cfg.total_steps
                batch = Minibatch(b.obs, b.actions)
                actor_loss = actor_loss + regularization(self.hooks.regularizers, policy, batch, progress)
            alpha_loss = (
                sac_temperature_loss(self.log_alpha, logp, self.target_entropy)
                if cfg.ent_coef is None
                else torch.zeros((), device=self.device)
            )
            # the three losses touch disjoint parameters: one backward pass and one fused Adam step
            self.optimizer.zero_grad(set_to_none=True)
            (critic_loss + actor_loss + alpha_loss).backward()
            self.optimizer.step()
            polyak_(self._target_params, self._critic_params, cfg.tau)
            self.updates += 1
            terms.append(torch.stack([critic_loss, actor_loss, alpha_loss, alpha]).detach())
        self._export_critics()  # the policy's (saved, attackable) critics follow the trained ensemble
        s: Any = torch.stack(terms).mean(0) if terms else [float("nan")] * 4  # tensors: no sync per update
        return {"train/critic_loss": s[0], "train/actor_loss": s[1], "train/alpha_loss": s[2], "train/alpha": s[3]}

    def iterate(self) -> Metrics:
        """Collect ``train_freq`` env steps on every copy, then ``gradient_steps`` updates once warm."""
        cfg = self.cfg
        reward = self.collect(cfg.train_freq)
        out: Metrics = {"train/rollout_reward": reward}
        if self.buffer.size >= max(cfg.learning_starts, cfg.batch_size):
            out.update(self.update(cfg.gradient_steps))
        return out
