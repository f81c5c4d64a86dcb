"""The adversary's MDP: a batched env in which the agent is the attacker and the frozen victim is the world.

SA-MDP (Zhang et al., NeurIPS 2020, Theorem 5): against a fixed victim π, the optimal state adversary is an
optimal policy of an MDP whose state is the true state, whose action chooses the perturbed observation, and
whose reward is the victim's reward negated. :class:`AdversaryEnv` is that MDP on any
:class:`~robustrl.envs.base.VecEnv`, so any learner (PPO here) trains an ``sa-rl`` or ``pa-ad`` adversary.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from robustrl.envs.base import ParamValue, StepResult, VecEnv
from robustrl.policies.base import Policy
from robustrl.rollout import episode_starts_hook
from robustrl.threats import projection as P
from robustrl.threats.learned import LearnedKind, adversary_action_dim, learned_perturbation
from robustrl.threats.pgd import SearchConfig


class AdversaryEnv:
    """``env`` seen by an adversary of ``victim``: actions in ``[-1, 1]^d``, reward = −victim reward.

    The adversary observes the clean observation; its action becomes the victim's perturbed observation
    (:func:`~robustrl.threats.learned.learned_perturbation`); the victim acts greedily on it and the env steps.
    Termination, truncation and ``info["final_obs"]`` are the env's.

    Args:
        env: the victim's env.
        victim: the frozen victim (its parameters are never changed here).
        kind: ``sa-rl`` or ``pa-ad``.
        budget: ε in attack units.
        norm: ``linf`` or ``l2``.
        normalized: attack units are the victim's normalised units.
        search: PA-AD's actor search.
        seed: seeds the perturbation's randomness (PA-AD random starts).
    """

    def __init__(
        self,
        env: VecEnv,
        victim: Policy,
        kind: LearnedKind,
        budget: float,
        *,
        norm: P.Norm = "linf",
        normalized: bool = False,
        search: SearchConfig | None = None,
        seed: int = 0,
    ) -> None:
        if not isinstance(env.observation_space, gym.spaces.Box):
            raise ValueError(f"a learned adversary needs a Box observation space, got {env.observation_space!r}")
        self.env, self.victim, self.kind, self.budget = env, victim, kind, float(budget)
        self._victim_starts = episode_starts_hook(victim)
        self._victim_state: torch.Tensor | None = None
        """A recurrent victim's state on this env's copies, kept between steps."""
        self.norm, self.normalized, self.search = norm, normalized, search
        self.env_id = env.env_id
        self.num_envs = env.num_envs
        self.device = env.device
        self.observation_space = env.observation_space
        obs_dim = int(np.prod(env.observation_space.shape))
        dim = adversary_action_dim(kind, victim, obs_dim)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (dim,), dtype=np.float32)
        self.disturbance_space = None
        self.generator = torch.Generator(device=self.device).manual_seed(int(seed))
        self._obs: torch.Tensor | None = None

    @property
    def max_episode_steps(self) -> int | None:
        """The victim env's time limit."""
        return self.env.max_episode_steps

    @property
    def return_floor(self) -> float | None:
        """Unknown: the adversary's return is the negated victim return."""
        return None

    def reset(
        self, *, seed: int | None = None, params: Mapping[str, ParamValue] | None = None
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Reset the victim's env."""
        obs, info = self.env.reset(seed=seed, params=params)
        self._obs = obs
        if self._victim_starts is not None:  # a recurrent victim starts every copy's episode afresh
            self._victim_starts(torch.ones(obs.shape[0], dtype=torch.bool, device=obs.device))
            self._victim_state = self.victim.recurrent_state  # type: ignore[attr-defined]
        return obs, info

    def perturb(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """The observation the victim sees when the adversary plays ``action [N, d]`` at ``obs``."""
        scale = P.observation_scale(self.victim) if self.normalized else None
        return learned_perturbation(self.kind, self.victim, obs.float(), action, self.budget, self.generator,
                                    norm=self.norm, search=self.search, scale=scale)

    def step(self, action: torch.Tensor, *, disturbance: torch.Tensor | None = None) -> StepResult:
        """The victim acts on the perturbed observation; the adversary gets the negated reward."""
        if self._obs is None:
            raise RuntimeError("call reset() before step()")
        if disturbance is not None:
            raise ValueError("the adversary's env takes no disturbance")
        if self._victim_starts is not None:  # this env's copies' state (the victim may have stepped others since)
            self.victim.recurrent_state = self._victim_state  # type: ignore[attr-defined]
        seen = self.perturb(self._obs, action.reshape(self.num_envs, -1))
        with torch.no_grad():
            victim_action = self.victim.act(seen, deterministic=True)
        obs, reward, terminated, truncated, info = self.env.step(victim_action)
        self._obs = obs
        if self._victim_starts is not None:
            self._victim_starts(terminated | truncated)
            self._victim_state = self.victim.recurrent_state  # type: ignore[attr-defined]
        return obs, -reward, terminated, truncated, info

    def close(self) -> None:
        """Close the victim's env."""
        self.env.close()
