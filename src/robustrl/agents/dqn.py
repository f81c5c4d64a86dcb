"""Deep Q-Networks (Mnih et al., Nature 2015) with an optional HL-Gauss classification head.

Regression head: Huber loss on the TD target ``r + γ·(1 − terminated)·max_a' Q_target(s', a')`` (or the
double-DQN target, van Hasselt et al. 2016). Classification head ("Stop Regressing: Training Value
Functions via Classification for Scalable Deep RL", Farebrother et al., ICML 2024): the network outputs
logits over ``num_bins`` atoms on ``[v_min, v_max]``; the scalar TD target becomes the distribution a
Gaussian ``N(target, σ²)``, ``σ = sigma_ratio · bin width``, puts on each bin (integrated over the bin and
renormalised over the support), and the loss is the cross-entropy to it.

Experience comes from ``num_envs`` env copies at once (ε-greedy with an explicit generator); truncated
episodes bootstrap from ``info["final_obs"]``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Literal

import gymnasium as gym
import torch
from torch import nn

from robustrl.agents.buffer import ReplayBuffer
from robustrl.agents.common import (
    Generators,
    Metrics,
    check_num_envs,
    collect_replay,
    linear_schedule,
    make_adam,
    regularization,
    seeded_init,
    soft_update,
)
from robustrl.common.seeding import derive_seed
from robustrl.defenses.base import NO_HOOKS, Minibatch, TrainingHooks
from robustrl.envs.base import VecEnv
from robustrl.policies.networks import QNetworkPolicy
from robustrl.rollout import Act, StepContext, start_collect


@dataclass(frozen=True)
class DQNConfig:
    """DQN hyperparameters (defaults: a fast CartPole-v1 setting; see :data:`DQN_PRESETS`)."""

    num_envs: int = 16
    """Env copies stepped together."""
    total_steps: int = 80_000
    """Environment transitions to train for (summed over copies)."""
    learning_rate: float = 1e-3
    """Adam step size."""
    buffer_size: int = 100_000
    """Replay buffer capacity (transitions)."""
    learning_starts: int = 1_000
    """Transitions collected before the first update."""
    batch_size: int = 256
    """Transitions per gradient step."""
    gamma: float = 0.99
    """Discount factor."""
    train_freq: int = 2
    """Env steps (of all copies at once) between two rounds of updates."""
    gradient_steps: int = 4
    """Gradient steps per round of updates."""
    target_update_interval: int = 20
    """Gradient steps between target-network updates."""
    tau: float = 1.0
    """Target update rate (1: hard copy)."""
    exploration_fraction: float = 0.05
    """Fraction of total_steps over which ε decays linearly."""
    exploration_initial_eps: float = 1.0
    """ε at the start."""
    exploration_final_eps: float = 0.04
    """ε after the decay."""
    max_grad_norm: float | None = 10.0
    """Global gradient-norm clip (None: no clipping)."""
    double_q: bool = False
    """Choose the next action with the online network (double DQN)."""
    hidden: tuple[int, ...] = (64, 64)
    """Hidden widths of the Q network."""
    activation: Literal["tanh", "relu"] = "relu"
    """Hidden activation."""
    head: Literal["regression", "hl_gauss"] = "hl_gauss"
    """Q head: scalar regression (Huber loss) or HL-Gauss classification (cross-entropy)."""
    num_bins: int = 51
    """Atoms of the HL-Gauss head."""
    v_min: float = -10.0
    """Lowest atom of the HL-Gauss support."""
    v_max: float = 110.0
    """Highest atom of the HL-Gauss support."""
    sigma_ratio: float = 0.75
    """σ of the HL-Gauss target as a multiple of the bin width."""
    normalize_obs: bool = False
    """Keep a running observation normaliser inside the policy (updated with collected observations)."""

    def validate(self) -> None:
        """Raise a ``ValueError`` naming the first bad field."""
        for name in ("num_envs", "total_steps", "buffer_size", "batch_size", "train_freq", "gradient_steps",
                     "target_update_interval"):
            if getattr(self, name) < 1:
                raise ValueError(f"DQNConfig.{name} must be ≥ 1, got {getattr(self, name)}")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"DQNConfig.gamma must lie in [0, 1], got {self.gamma}")
        if not 0.0 < self.tau <= 1.0:
            raise ValueError(f"DQNConfig.tau must lie in (0, 1], got {self.tau}")
        if self.head == "hl_gauss" and (self.num_bins < 2 or not self.v_max > self.v_min or self.sigma_ratio <= 0):
            raise ValueError("DQNConfig: the hl_gauss head needs num_bins ≥ 2, v_max > v_min, sigma_ratio > 0")
        if self.learning_rate <= 0:
            raise ValueError(f"DQNConfig.learning_rate must be > 0, got {self.learning_rate}")


DQN_PRESETS: dict[str, DQNConfig] = {
    "CartPole-v1": DQNConfig(),
}
"""Tuned settings for known env ids (other ids start from ``DQNConfig()``)."""


def td_target(rewards: torch.Tensor, next_q: torch.Tensor, terminated: torch.Tensor, gamma: float) -> torch.Tensor:
    """One-step TD target ``r + γ·(1 − terminated)·Q(s', a')``.

    Args:
        rewards: ``[B]``.
        next_q: ``[B]`` value of the successor (max over actions, or the double-DQN choice).
        terminated: ``[B]`` float or bool, 1 where the episode terminated (truncation is not termination).
        gamma: discount.

    Returns:
        ``[B]`` targets.

    Example:
        >>> td_target(torch.tensor([1.0, 1.0]), torch.tensor([10.0, 10.0]), torch.tensor([0.0, 1.0]), 0.9)
        tensor([10.,  1.])
    """
    return rewards + gamma * (1.0 - terminated.to(next_q.dtype)) * next_q


def hl_gauss_target(target: torch.Tensor, support: torch.Tensor, sigma: float) -> torch.Tensor:
    """HL-Gauss target distribution over the bins centred on ``support`` (Farebrother et al. 2024).

    Bin ``i`` spans ``[c_i − w/2, c_i + w/2]`` around its centre ``c_i`` (``w`` the spacing of ``support``);
    its probability is the mass ``N(target, σ²)`` puts on it, renormalised by the mass on the whole
    support ``[c_0 − w/2, c_{K−1} + w/2]``. Targets outside ``[c_0, c_{K−1}]`` are first clipped to it.

    Args:
        target: ``[B]`` scalar targets.
        support: ``[K]`` evenly spaced bin centres, ``K ≥ 2``.
        sigma: Gaussian standard deviation (> 0), e.g. ``0.75 · w``.

    Returns:
        ``[B, K]`` probabilities (rows sum to 1).
    """
    width = support[1] - support[0]
    target = target.clamp(float(support[0]), float(support[-1]))
    edges = torch.cat([support - width / 2, support[-1:] + width / 2])
    cdf = torch.special.ndtr((edges.unsqueeze(0) - target.unsqueeze(1)) / sigma)
    mass = cdf[:, 1:] - cdf[:, :-1]
    return mass / (cdf[:, -1:] - cdf[:, :1]).clamp_min(1e-12)


def hl_gauss_loss(logits: torch.Tensor, target: torch.Tensor, support: torch.Tensor, sigma: float) -> torch.Tensor:
    """Cross-entropy between the HL-Gauss target distribution and ``softmax(logits)``, averaged.

    Args:
        logits: ``[B, K]`` predicted logits over the bins.
        target: ``[B]`` scalar targets (no gradient flows into them).
        support: ``[K]`` bin centres.
        sigma: Gaussian standard deviation.

    Returns:
        Scalar loss.
    """
    probs = hl_gauss_target(target.detach(), support, sigma)
    return -(probs * torch.log_softmax(logits, -1)).sum(-1).mean()


class DQN:
    """A DQN learner on a batched env; :meth:`iterate` collects ``train_freq`` steps and updates.

    Args:
        env: the batched training env (Discrete actions).
        cfg: hyperparameters.
        seed: seeds network initialisation, exploration, transform noise and replay sampling.
        hooks: what a defense changes: observation/action transforms of collection, extra loss terms.
    """

    def __init__(self, env: VecEnv, cfg: DQNConfig, *, seed: int, hooks: TrainingHooks = NO_HOOKS) -> None:
        cfg.validate()
        check_num_envs(env.num_envs, cfg.num_envs, "DQNConfig")
        if not isinstance(env.action_space, gym.spaces.Discrete):
            raise ValueError(f"DQN needs a Discrete action space, got {env.action_space!r} (use sac or ppo)")
        self.env = env
        self.cfg = cfg
        self.hooks = hooks
        self.device = env.device
        gens = Generators(seed, self.device)
        hl = cfg.head == "hl_gauss"
        with seeded_init(gens.seed):
            self.policy = QNetworkPolicy(
                env.observation_space,
                env.action_space,
                hidden=cfg.hidden,
                activation=cfg.activation,
                normalize_obs=cfg.normalize_obs,
                num_bins=cfg.num_bins if hl else 0,
                v_min=cfg.v_min,
                v_max=cfg.v_max,
            ).to(self.device)
        self.target = copy.deepcopy(self.policy)
        self.target.requires_grad_(False)
        self.optimizer = make_adam(self.policy.parameters(), cfg.learning_rate)
        self.num_actions = int(env.action_space.n)
        self.sigma = cfg.sigma_ratio * (cfg.v_max - cfg.v_min) / (cfg.num_bins - 1) if hl else 0.0
        obs_shape = tuple(env.observation_space.shape or ())
        self.buffer = ReplayBuffer(cfg.buffer_size, obs_shape, (), torch.int64, self.device)
        self._explore_gen = gens.make(1)
        self._sample_gen = gens.make(3)
        self._state = start_collect(env, seed=derive_seed(seed, 4), generator=gens.make(2))
        self.steps = 0
        self.updates = 0

    @property
    def epsilon(self) -> float:
        """Current exploration rate."""
        cfg = self.cfg
        frac = self.steps / max(cfg.exploration_fraction * cfg.total_steps, 1e-9)
        return linear_schedule(cfg.exploration_initial_eps, frac, cfg.exploration_final_eps)

    def _act(self, x: torch.Tensor, ctx: StepContext) -> Act:
        n = x.shape[0]
        greedy = self.policy.q_values(x).argmax(-1)
        u = torch.rand(n, generator=self._explore_gen, device=self.device)
        rand_a = torch.randint(0, self.num_actions, (n,), generator=self._explore_gen, device=self.device)
        return Act(torch.where(u < self.epsilon, rand_a, greedy))

    @torch.no_grad()
    def collect(self, vec_steps: int) -> torch.Tensor:
        """Step all copies ``vec_steps`` times with ε-greedy actions into the replay buffer.

        Returns the mean reward as a scalar tensor (no host-device sync).

        ε is held for the ``vec_steps`` steps of one call (it moves by ``vec_steps·num_envs`` steps per call).
        """
        return collect_replay(self, vec_steps)

    def loss(self, batch_obs: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor,
             next_obs: torch.Tensor, terminated: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, Q of the taken actions ``[B]``) on a replay batch."""
        cfg = self.cfg
        with torch.no_grad():
            next_q_all = self.target.q_values(next_obs)
            if cfg.double_q:
                next_a = self.policy.q_values(next_obs).argmax(-1, keepdim=True)
                next_q = next_q_all.gather(1, next_a).squeeze(1)
            else:
                next_q = next_q_all.max(-1).values
            target = td_target(rewards, next_q, terminated, cfg.gamma)
        head = self.policy.head(batch_obs)
        idx = actions.view(-1, 1)
        if cfg.head == "hl_gauss":
            logits = head.gather(1, idx.unsqueeze(-1).expand(-1, 1, head.shape[-1])).squeeze(1)
            loss = hl_gauss_loss(logits, target, self.policy.support, self.sigma)
            q = (torch.softmax(logits.detach(), -1) * self.policy.support).sum(-1)
            return loss, q
        q = head.gather(1, idx).squeeze(1)
        return nn.functional.smooth_l1_loss(q, target), q.detach()

    def update(self, gradient_steps: int) -> Metrics:
        """``gradient_steps`` updates on replay batches; returns ``train/…`` metrics."""
        cfg = self.cfg
        loss_sum = torch.zeros((), device=self.device)
        q_sum = torch.zeros((), device=self.device)
        for _ in range(gradient_steps):
            b = self.buffer.sample(cfg.batch_size, self._sample_gen)
            loss, q = self.loss(b.obs, b.actions, b.rewards, b.next_obs, b.terminated)
            if self.hooks.regularizers:
                progress = self.steps / cfg.total_steps
                batch = Minibatch(b.obs, b.actions)
                loss = loss + regularization(self.hooks.regularizers, self.policy, batch, progress)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.max_grad_norm is not None:
                nn.utils.clip_grad_norm_(self.policy.parameters(), cfg.max_grad_norm, foreach=True)
            self.optimizer.step()
            self.updates += 1
            if self.updates % cfg.target_update_interval == 0:
                soft_update(self.target, self.policy, cfg.tau)
            loss_sum += loss.detach()
            q_sum += q.mean()
        k = max(gradient_steps, 1)
        return {"train/loss": loss_sum / k, "train/q_mean": q_sum / k}

    def iterate(self) -> Metrics:
        """Collect ``train_freq`` env steps on every copy, then ``gradient_steps`` updates once warm."""
        cfg = self.cfg
        reward = self.collect(cfg.train_freq)
        out: Metrics = {"train/epsilon": self.epsilon, "train/rollout_reward": reward}
        if self.buffer.size >= max(cfg.learning_starts, cfg.batch_size):
            out.update(self.update(cfg.gradient_steps))
        out["train/buffer_size"] = float(self.buffer.size)
        return out
