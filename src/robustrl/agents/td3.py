"""Twin Delayed DDPG (Fujimoto et al., ICML 2018, "Addressing Function Approximation Error in Actor-Critic Methods").

A deterministic tanh actor (:class:`~robustrl.policies.DeterministicActorPolicy`, SB3's TD3 layout) and twin
Q critics (a fused :class:`~robustrl.agents.critics.CriticEnsemble`, optionally with the HL-Gauss head), with
TD3's three changes to DDPG:

* **clipped double Q**: the target is ``r + γ·(1 − terminated)·min(Q'_1, Q'_2)(s', ã')``;
* **target policy smoothing**: ``ã' = clip(μ'(s') + clip(ε, ±c), −1, 1)``, ``ε ~ N(0, σ̃²)``;
* **delayed policy updates**: the actor (loss ``−E[Q_1(s, μ(s))]``) and the target networks are updated
  every ``policy_delay`` critic updates.

Exploration adds ``N(0, σ²)`` to the actor's ``[−1, 1]`` output (clipped to ``[−1, 1]``); the first
``learning_starts`` transitions use uniform random actions. Actions are in ``[−1, 1]`` inside the agent and
mapped onto the action box for the env; the critics take the env's actions (as SAC's). On an actor step the
critic and actor losses are summed and take one backward pass and one fused Adam step (the actor loss goes
through detached critic weights), as in :mod:`robustrl.agents.sac`. Truncated episodes bootstrap from
``info["final_obs"]``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

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
from robustrl.policies.actors import DeterministicActorPolicy, unscale_action
from robustrl.policies.features import flat_dim
from robustrl.rollout import Act, StepContext, start_collect


@dataclass(frozen=True)
class TD3Config(OffPolicyConfig):
    """TD3 hyperparameters (defaults: a fast Pendulum-v1 setting; see :data:`TD3_PRESETS`)."""

    learning_starts: int = 500
    """Transitions collected with uniform random actions before the first update."""
    gamma: float = 0.98
    """Discount factor."""
    policy_delay: int = 2
    """Critic updates per actor and target update."""
    exploration_noise: float = 0.1
    """Std of the Gaussian noise added to the actor's [−1, 1] action while collecting."""
    target_policy_noise: float = 0.2
    """Std of the target policy smoothing noise (in [−1, 1] action units)."""
    target_noise_clip: float = 0.5
    """Clip of the target policy smoothing noise."""

    def validate(self) -> None:
        """Raise a ``ValueError`` naming the first bad field."""
        super().validate()
        if self.policy_delay < 1:
            raise ValueError(f"TD3Config.policy_delay must be ≥ 1, got {self.policy_delay}")
        for name in ("exploration_noise", "target_policy_noise", "target_noise_clip"):
            if getattr(self, name) < 0:
                raise ValueError(f"TD3Config.{name} must be ≥ 0, got {getattr(self, name)}")


MUJOCO_TD3 = TD3Config(
    num_envs=1, total_steps=1_000_000, learning_rate=1e-3, buffer_size=1_000_000, learning_starts=10_000,
    batch_size=256, gamma=0.99, tau=0.005, train_freq=1, gradient_steps=1, policy_delay=2, exploration_noise=0.1,
    target_policy_noise=0.2, target_noise_clip=0.5, hidden=(256, 256), activation="relu",
)
"""RL-Zoo's MuJoCo TD3 (with 256-256 ReLU networks): lr 1e-3, batch 256, buffer 1M, 10k random steps, one
critic update per step, actor every 2, exploration σ 0.1, smoothing σ 0.2 clipped at 0.5."""

TD3_PRESETS: dict[str, TD3Config] = {
    "Pendulum-v1": TD3Config(),
    **{env_id: MUJOCO_TD3 for env_id in ("Hopper-v5", "Walker2d-v5", "HalfCheetah-v5", "Ant-v5")},
}
"""Tuned settings for known env ids (other ids start from ``TD3Config()``)."""


def smoothed_target_action(
    target_action: torch.Tensor, noise: torch.Tensor, noise_std: float, noise_clip: float
) -> torch.Tensor:
    """TD3's target policy smoothing ``clip(μ'(s') + clip(σ̃·ε, ±c), −1, 1)``.

    Args:
        target_action: ``[B, A]`` target actor output in ``[−1, 1]``.
        noise: ``[B, A]`` standard normal draws ``ε``.
        noise_std: ``σ̃``.
        noise_clip: ``c``.

    Returns:
        ``[B, A]`` smoothed actions in ``[−1, 1]``.

    Example:
        >>> smoothed_target_action(torch.tensor([[0.9, 0.0]]), torch.tensor([[3.0, -3.0]]), 0.2, 0.5)
        tensor([[ 1.0000, -0.5000]])
    """
    return (target_action + (noise_std * noise).clamp(-noise_clip, noise_clip)).clamp(-1.0, 1.0)


def td3_target(
    rewards: torch.Tensor, next_q: torch.Tensor, terminated: torch.Tensor, gamma: float
) -> torch.Tensor:
    """Clipped double-Q target ``y = r + γ·(1 − terminated)·min_k Q'_k(s', ã')``.

    Args:
        rewards: ``[B]``.
        next_q: ``[K, B]`` target critics at the smoothed target actions.
        terminated: ``[B]`` (truncation is not termination: it bootstraps).
        gamma: discount.

    Returns:
        ``[B]`` targets.
    """
    return rewards + gamma * (1.0 - terminated.to(next_q.dtype)) * next_q.min(0).values


def exploration_action(
    policy: DeterministicActorPolicy, obs: torch.Tensor, *, uniform: bool, noise: float, generator: torch.Generator
) -> torch.Tensor:
    """TD3's behaviour action ``[N, A]`` in ``[−1, 1]``: uniform, else μ(s) + N(0, noise²) clipped.

    ``uniform`` is True before learning starts (TD3 and M2TD3 fill their replay with random actions first).
    """
    n, act_dim = obs.shape[0], policy.action_low.numel()
    if uniform:
        return torch.rand((n, act_dim), generator=generator, device=obs.device) * 2 - 1
    mu = policy.mu(policy.features(obs))
    eps = torch.randn(mu.shape, generator=generator, device=mu.device)
    return (mu + noise * eps).clamp(-1.0, 1.0)


class TD3:
    """A TD3 learner on a batched env; :meth:`iterate` collects ``train_freq`` steps and updates.

    Args:
        env: the batched training env (Box actions with finite bounds).
        cfg: hyperparameters.
        seed: seeds network initialisation, exploration, transform noise, target smoothing and replay sampling.
        hooks: what a defense changes: observation/action transforms of collection, extra actor-loss terms.

    Example:
        >>> import robustrl
        >>> agent = TD3(robustrl.make_env("Pendulum-v1", 8, seed=0), TD3Config(learning_starts=64), seed=0)
        >>> for _ in range(20):
        ...     metrics = agent.iterate()
        >>> agent.steps, sorted(metrics)[:2]
        (160, ['train/actor_loss', 'train/critic_loss'])
    """

    def __init__(self, env: VecEnv, cfg: TD3Config, *, seed: int, hooks: TrainingHooks = NO_HOOKS) -> None:
        cfg.validate()
        check_num_envs(env.num_envs, cfg.num_envs, "TD3Config")
        space = env.action_space
        if not isinstance(space, gym.spaces.Box) or not space.is_bounded("both"):
            raise ValueError(f"TD3 needs a bounded Box action space, got {space!r} (use dqn or ppo)")
        self.env = env
        self.cfg = cfg
        self.hooks = hooks
        self.device = env.device
        self.act_dim = int(np.prod(space.shape))
        gens = Generators(seed, self.device)
        with seeded_init(gens.seed):
            self.policy = DeterministicActorPolicy(
                env.observation_space,
                space,
                hidden=cfg.hidden,
                activation=cfg.activation,
                normalize_obs=cfg.normalize_obs,
                **critic_head_spec(cfg),
            ).to(self.device)
            critics, self._export_critics = make_critic_ensemble(
                self.policy, cfg, flat_dim(env.observation_space), self.act_dim
            )
        self.critics = critics.to(self.device)
        self.target_critics = copy.deepcopy(self.critics).requires_grad_(False)
        self.target_actor = copy.deepcopy(self.policy.mu).requires_grad_(False)
        self._critic_params: list[torch.Tensor] = list(self.critics.parameters())
        self._target_params: list[torch.Tensor] = [*self.target_critics.parameters(), *self.target_actor.parameters()]
        self._online_params: list[torch.Tensor] = [*self._critic_params, *self.policy.mu.parameters()]
        self.optimizer = make_adam([*self.policy.mu.parameters(), *self._critic_params], cfg.learning_rate)
        obs_shape = tuple(env.observation_space.shape or ())
        self.buffer = ReplayBuffer(cfg.buffer_size, obs_shape, (self.act_dim,), torch.float32, self.device)
        self._act_gen = gens.make(1)
        self._sample_gen = gens.make(3)
        self._state = start_collect(env, seed=derive_seed(seed, 4), generator=gens.make(2))
        self.steps = 0
        self.updates = 0

    def _to_env(self, a: torch.Tensor) -> torch.Tensor:
        """``[−1, 1]`` actions ``[B, A]`` onto the action box (flat)."""
        return unscale_action(a, self.policy.action_low, self.policy.action_high)

    def _act(self, x: torch.Tensor, ctx: StepContext) -> Act:
        a = exploration_action(self.policy, x, uniform=self.steps < self.cfg.learning_starts,
                               noise=self.cfg.exploration_noise, generator=self._act_gen)  # fmt: skip
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
        """``gradient_steps`` critic updates (the actor and targets every ``policy_delay``); ``train/…`` metrics."""
        cfg, policy = self.cfg, self.policy
        critic_terms: list[torch.Tensor] = []
        actor_terms: list[torch.Tensor] = []
        for _ in range(gradient_steps):
            b = self.buffer.sample(cfg.batch_size, self._sample_gen)
            actor_step = (self.updates + 1) % cfg.policy_delay == 0
            feats = policy.features(b.obs)
            with torch.no_grad():
                next_feats = policy.features(b.next_obs)
                eps = torch.randn((cfg.batch_size, self.act_dim), generator=self._sample_gen, device=self.device)
                next_a = smoothed_target_action(
                    self.target_actor(next_feats), eps, cfg.target_policy_noise, cfg.target_noise_clip
                )
                next_q = self.target_critics.q_values(torch.cat([next_feats, self._to_env(next_a)], -1))
                y = td3_target(b.rewards, next_q, b.terminated, cfg.gamma)
            out = self.critics(torch.cat([feats, b.actions], -1))
            loss = critic_loss = self.critics.loss(out, y, cfg.sigma_ratio)
            if actor_step:
                a_new = policy.mu(feats)
                q1 = self.critics.q_values(torch.cat([feats, self._to_env(a_new)], -1), detach=True)[0]
                actor_loss = -q1.mean()
                if self.hooks.regularizers:
                    progress = self.steps / cfg.total_steps
                    reg = regularization(self.hooks.regularizers, policy, Minibatch(b.obs, b.actions), progress)
                    actor_loss = actor_loss + reg
                loss = loss + actor_loss
                actor_terms.append(actor_loss.detach())
            self.optimizer.zero_grad(set_to_none=True)  # actor grads stay None on critic-only steps: Adam skips them
            loss.backward()
            self.optimizer.step()
            if actor_step:
                polyak_(self._target_params, self._online_params, cfg.tau)
            self.updates += 1
            critic_terms.append(torch.stack([critic_loss.detach(), self.critics.expectation(out.detach()).mean()]))
        self._export_critics()  # the policy's (saved, attackable) critics follow the trained ensemble
        nan = torch.tensor(float("nan"))
        c: Any = torch.stack(critic_terms).mean(0) if critic_terms else [nan, nan]
        actor = torch.stack(actor_terms).mean() if actor_terms else nan
        return {"train/critic_loss": c[0], "train/q_mean": c[1], "train/actor_loss": actor}

    def iterate(self) -> Metrics:
        """Collect ``train_freq`` env steps on every copy, then ``gradient_steps`` updates once warm."""
        cfg = self.cfg
        reward = self.collect(cfg.train_freq)
        out: Metrics = {"train/rollout_reward": reward}
        if self.buffer.size >= max(cfg.learning_starts, cfg.batch_size):
            out.update(self.update(cfg.gradient_steps))
        return out
