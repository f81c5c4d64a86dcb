"""Offline-to-online fine-tuning (``train-offline --online-steps N``), RO2O-style.

RO2O (Wen, Yu, Yang, Chen, Bai, Wang, *Towards Robust Offline-to-Online Reinforcement Learning via Uncertainty
and Smoothness*, JAIR 2024) keeps training the offline learner while it collects transitions online, with two
additions that damp the drop in return when the state-action distribution shifts away from the dataset:

* **uncertainty**: the TD target subtracts ``β·std_k Q'_k`` over the ``K``-critic ensemble
  (:func:`~robustrl.offline.losses.uncertainty_penalty`), so state-actions the critics disagree on — the new,
  online ones — are valued pessimistically;
* **smoothness** (from RORL, Yang et al., NeurIPS 2022): the critics and the actor are penalised by the
  largest change ``(Q(ŝ, a) − Q(s, a))²`` and ``‖π(ŝ) − π(s)‖²`` over ``n`` perturbed states ``ŝ`` drawn
  uniformly from the ``ℓ∞`` ball of radius ``ε`` around ``s`` (in the policy's feature space: normalised
  observations when the learner normalises them).

The replay buffer (:class:`OnlineReplay`) starts with the whole offline dataset and grows by every online
transition (CORL's and RO2O's fine-tuning); ``offline_ratio`` instead draws a fixed fraction of each
minibatch from the offline data (RLPD's symmetric sampling at 0.5). Collection goes through
:func:`robustrl.rollout.collect` in a :func:`robustrl.envs.make_env` env, acting with the learner's
deterministic actor plus Gaussian noise (TD3's exploration); each vector step of ``num_envs`` copies is
followed by ``updates_per_step × num_envs`` learner updates. The learner's observation normaliser stays the
dataset's (the trained networks depend on it).

Supported learners: those with a critic ensemble and a deterministic actor, :data:`ONLINE_ALGORITHMS`
(IQL, RIQL, TD3+BC); BC has no critic and CQL's stochastic actor is not wired, both are refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import torch

from robustrl.agents.buffer import ReplayBuffer
from robustrl.agents.common import store_transitions
from robustrl.common.seeding import derive_seed, torch_generator
from robustrl.envs.base import VecEnv
from robustrl.offline.base import OfflineBatch, OfflineBuffer, RO2OTerms
from robustrl.offline.losses import ball_noise
from robustrl.policies.actors import unscale_action
from robustrl.policies.features import flat_dim
from robustrl.rollout import Act, StepContext, collect, start_collect

__all__ = ["ONLINE_ALGORITHMS", "OnlineConfig", "OnlineFineTuner", "OnlineReplay", "check_online_algo"]

ONLINE_ALGORITHMS = ("iql", "riql", "td3bc")
"""Offline learners that can be fine-tuned online (a critic ensemble and a deterministic actor)."""


@dataclass(frozen=True)
class OnlineConfig:
    """RO2O's online phase: uncertainty penalty, smoothness, replay mixing, collection (``--online-set``)."""

    beta: float = 0.5
    """β of the uncertainty penalty β·std_k Q'_k subtracted from the TD target (0: none; needs ≥ 2 critics)."""
    smooth_eps: float = 0.01
    """ε: radius (ℓ∞, in the policy's feature units) of the perturbed states of the smoothness terms."""
    smooth_samples: int = 10
    """n: perturbed states drawn per state; the worst one counts."""
    smooth_weight: float = 1e-4
    """Weight of the Q smoothness term max_j (Q(ŝ_j, a) − Q(s, a))² (RO2O's η₁; 0: off)."""
    policy_smooth_weight: float = 0.1
    """Weight of the policy smoothness term max_j ‖π(ŝ_j) − π(s)‖² (0: off)."""
    offline_ratio: float | None = None
    """Fraction of each minibatch drawn from the offline data (None: uniform over offline and online together)."""
    num_envs: int = 1
    """Env copies stepped together while collecting."""
    updates_per_step: int = 1
    """Learner updates per collected transition (update-to-data ratio)."""
    exploration_noise: float = 0.1
    """Std of the Gaussian noise added to the actor's [−1, 1] action while collecting."""
    eval_every: int = 0
    """Online env steps between evaluations (0: only at the end of the online phase)."""

    def validate(self) -> None:
        """Raise a ``ValueError`` naming the first bad field."""
        for name in ("beta", "smooth_eps", "smooth_weight", "policy_smooth_weight", "exploration_noise"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"OnlineConfig.{name} must be ≥ 0, got {value}")
        for name in ("smooth_samples", "num_envs", "updates_per_step"):
            if getattr(self, name) < 1:
                raise ValueError(f"OnlineConfig.{name} must be ≥ 1, got {getattr(self, name)}")
        if self.offline_ratio is not None and not 0.0 <= self.offline_ratio <= 1.0:
            raise ValueError(f"OnlineConfig.offline_ratio must be in [0, 1] or None, got {self.offline_ratio}")
        if self.eval_every < 0:
            raise ValueError(f"OnlineConfig.eval_every must be ≥ 0, got {self.eval_every}")

    @property
    def smooths(self) -> bool:
        """Whether the smoothness terms are on."""
        return self.smooth_eps > 0 and (self.smooth_weight > 0 or self.policy_smooth_weight > 0)


def check_online_algo(algo: str, num_critics: int, cfg: OnlineConfig) -> None:
    """Raise a ``ValueError`` when ``algo`` cannot be fine-tuned online with ``cfg``."""
    if algo not in ONLINE_ALGORITHMS:
        why = "it has no critic" if algo == "bc" else "its stochastic actor is not supported"
        raise ValueError(f"--online-steps: online fine-tuning supports {', '.join(ONLINE_ALGORITHMS)}, not {algo!r} "
                         f"({why})")  # fmt: skip
    if cfg.beta > 0 and num_critics < 2:
        raise ValueError(f"OnlineConfig.beta > 0 needs num_critics ≥ 2 (the ensemble's std), got {num_critics}")


class OnlineReplay:
    """The offline dataset plus the online transitions, sampled as one replay buffer.

    Args:
        offline: the dataset's buffer (its sampling weights, if any, apply to its part of each minibatch).
        capacity: online transitions kept (the online phase's budget: nothing is overwritten).
    """

    def __init__(self, offline: OfflineBuffer, capacity: int) -> None:
        self.offline = offline
        obs_dim, act_dim = offline.obs.shape[1], offline.actions.shape[1]
        self.online = ReplayBuffer(capacity, (obs_dim,), (act_dim,), torch.float32, offline.obs.device)

    @property
    def size(self) -> int:
        """Transitions held: the offline ones and the online ones."""
        return self.offline.size + self.online.size

    def sample(self, batch_size: int, offline_ratio: float | None, generator: torch.Generator) -> OfflineBatch:
        """``batch_size`` transitions: a fixed ``offline_ratio`` of offline ones, or uniform over both parts."""
        if offline_ratio is None:
            draw = torch.randint(self.size, (batch_size,), generator=generator, device=self.offline.obs.device)
            n_off = int((draw < self.offline.size).sum())
        else:
            n_off = round(offline_ratio * batch_size) if self.online.size else batch_size
        parts = []
        if n_off > 0:
            parts.append(self.offline.sample(n_off, generator))
        if n_off < batch_size:
            on = self.online.sample(batch_size - n_off, generator)
            parts.append(OfflineBatch(on.obs, on.actions, on.rewards, on.next_obs, on.terminated))
        if len(parts) == 1:
            return parts[0]
        return OfflineBatch(*(torch.cat(fields) for fields in zip(*parts, strict=True)))


class OnlineFineTuner:
    """The online phase of one learner: collects with exploration noise, updates with RO2O's terms.

    Args:
        learner: an offline learner of :data:`ONLINE_ALGORITHMS` after its offline phase.
        replay: the offline data and room for the online transitions.
        env: the batched env to collect from (``cfg.num_envs`` copies, Box actions).
        cfg: the online phase's settings.
        seed: seeds the env resets, exploration, minibatches and perturbations.
    """

    def __init__(self, learner: Any, replay: OnlineReplay, env: VecEnv, cfg: OnlineConfig, *, seed: int) -> None:
        cfg.validate()
        if not isinstance(env.action_space, gym.spaces.Box):
            raise ValueError(f"online fine-tuning needs a Box action space, got {env.action_space!r}")
        self.learner, self.replay, self.env, self.cfg = learner, replay, env, cfg
        self.seed = int(seed)
        self.feature_dim = flat_dim(env.observation_space)
        self.act_generator = torch_generator(derive_seed(seed, 1), env.device)
        self.sample_generator = torch_generator(derive_seed(seed, 2), env.device)
        self.noise_generator = torch_generator(derive_seed(seed, 3), env.device)
        self.env_steps = 0
        self._state = self._start()

    def _start(self) -> Any:
        """Reset the env for collection (seeded by how far the phase has come: a resumed phase starts afresh)."""
        return start_collect(self.env, seed=derive_seed(self.seed, 100 + self.env_steps))

    def _act(self, x: torch.Tensor, ctx: StepContext) -> Act:
        policy = self.learner.policy
        mu = policy.mu(policy.features(x))
        eps = torch.randn(mu.shape, generator=self.act_generator, device=mu.device)
        a = (mu + self.cfg.exploration_noise * eps).clamp(-1.0, 1.0)
        env_a = unscale_action(a, policy.action_low, policy.action_high)
        return Act(a, env_a.reshape(x.shape[0], *tuple(self.env.action_space.shape or ())))

    def step(self) -> dict[str, torch.Tensor]:
        """Collect one step of every copy into the replay, then ``updates_per_step × num_envs`` updates."""
        cfg, learner = self.cfg, self.learner
        learner.policy.eval()
        with torch.no_grad():
            traj = collect(learner.policy, self.env, 1, state=self._state, act=self._act)
        learner.policy.train()
        self._state = traj.state
        reward = store_transitions(traj, self.replay.online, None)
        self.env_steps += self.env.num_envs
        metrics: dict[str, torch.Tensor] = {"train/rollout_reward": reward}
        for _ in range(cfg.updates_per_step * self.env.num_envs):
            b = self.replay.sample(learner.cfg.batch_size, cfg.offline_ratio, self.sample_generator)
            noise = None
            if cfg.smooths:
                noise = ball_noise(cfg.smooth_samples, b.obs.shape[0], self.feature_dim, cfg.smooth_eps,
                                   self.noise_generator, b.obs.device)  # fmt: skip
            metrics |= learner.update(b, RO2OTerms(cfg.beta, noise, cfg.smooth_weight, cfg.policy_smooth_weight))
        return metrics

    def state_dict(self) -> dict[str, Any]:
        """The online transitions, random streams and step count (for checkpoints; the env is not saved)."""
        return {"buffer": self.replay.online.state_dict(), "env_steps": self.env_steps,
                "act_generator": self.act_generator.get_state(),
                "sample_generator": self.sample_generator.get_state(),
                "noise_generator": self.noise_generator.get_state()}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; collection restarts with a fresh episode (the one in flight is cut)."""
        self.replay.online.load_state_dict(state["buffer"])
        self.env_steps = int(state["env_steps"])
        for name in ("act_generator", "sample_generator", "noise_generator"):
            getattr(self, name).set_state(state[name])
        self._state = self._start()
