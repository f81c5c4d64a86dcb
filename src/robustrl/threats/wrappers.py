"""Gymnasium wrappers that apply a threat inside a user's own single-env loop.

These are plumbing for users who step one Gymnasium env themselves; evaluation runs threats in the
batched rollout engine instead. Each wrapper keeps the :class:`~robustrl.evaluate.rollout.StepContext` a
threat expects (step counter, episode start flag, a seeded generator) for a batch of one.
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
import torch

from robustrl.common.seeding import torch_generator
from robustrl.policies.base import Policy
from robustrl.threats.registry import ActionThreat, ObsThreat


def _context(policy: Policy, step: int, start: bool, generator: torch.Generator) -> Any:
    from robustrl.evaluate.rollout import StepContext

    return StepContext(
        policy=policy,
        step=torch.tensor([step], dtype=torch.int64),
        episode_start=torch.tensor([start]),
        generator=generator,
    )


class ObservationThreatWrapper(gym.ObservationWrapper):  # type: ignore[type-arg]
    """Apply an observation threat (e.g. ``make_threat("pgd", 0.05)``) to every observation.

    Args:
        env: a single (not vectorised) Gymnasium env with a Box observation space.
        threat: an obs threat, or any ``obs_transform(obs [1, ...], ctx) -> obs'``.
        policy: the victim the threat differentiates through.
        seed: seeds the threat's generator.

    Example:
        >>> from robustrl.threats import make_threat
        >>> from robustrl.policies.networks import ActorCriticPolicy
        >>> env = gym.make("CartPole-v1")
        >>> pi = ActorCriticPolicy(env.observation_space, env.action_space)
        >>> wrapped = ObservationThreatWrapper(env, make_threat("pgd", 0.1), pi, seed=0)
        >>> obs, _ = wrapped.reset(seed=0)
        >>> obs.shape
        (4,)
    """

    def __init__(self, env: gym.Env[Any, Any], threat: ObsThreat | Any, policy: Policy, seed: int | None = None):
        super().__init__(env)
        if isinstance(threat, ActionThreat):
            raise ValueError("ObservationThreatWrapper needs an observation threat; use ActionThreatWrapper")
        self.threat = threat
        self.policy = policy
        self.generator = torch_generator(seed)
        self._step = 0
        self._start = True

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Reset the env and start a new episode for the threat."""
        self._step, self._start = 0, True
        return super().reset(seed=seed, options=options)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the env; the threat sees the next observation."""
        self._step += 1
        self._start = False
        return super().step(action)

    def observation(self, observation: Any) -> Any:
        """The perturbed observation (same dtype and shape as the env's)."""
        obs = torch.as_tensor(np.asarray(observation))[None]
        out = self.threat(obs, _context(self.policy, self._step, self._start, self.generator))[0]
        return out.detach().cpu().numpy().astype(np.asarray(observation).dtype, copy=False)


class ActionThreatWrapper(gym.ActionWrapper):  # type: ignore[type-arg]
    """Apply an action threat (e.g. ``make_threat("action_replace", 0.1)``) to every action.

    Args:
        env: a single Gymnasium env.
        threat: an action threat, or any ``action_transform(action [1, ...], obs [1, ...], ctx)``.
        policy: the victim (its action space and, for heuristics, its Q values or critic).
        seed: seeds the threat's generator.
    """

    def __init__(self, env: gym.Env[Any, Any], threat: ActionThreat | Any, policy: Policy, seed: int | None = None):
        super().__init__(env)
        if isinstance(threat, ObsThreat):
            raise ValueError("ActionThreatWrapper needs an action threat; use ObservationThreatWrapper")
        self.threat = threat
        self.policy = policy
        self.generator = torch_generator(seed)
        self._obs: Any = None
        self._step = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Reset the env and remember the first observation (what an adversary sees)."""
        obs, info = self.env.reset(seed=seed, options=options)
        self._obs, self._step = obs, 0
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the env with the perturbed action."""
        obs, reward, terminated, truncated, info = super().step(action)
        self._obs = obs
        self._step += 1
        return obs, reward, terminated, truncated, info

    def action(self, action: Any) -> Any:
        """The action the env receives."""
        if self._obs is None:
            raise ValueError("call reset() before step()")
        a = torch.as_tensor(np.asarray(action))[None]
        obs = torch.as_tensor(np.asarray(self._obs))[None]
        ctx = _context(self.policy, self._step, self._step == 0, self.generator)
        out = self.threat(a, obs, ctx)[0].detach().cpu().numpy()
        return int(out) if isinstance(self.action_space, gym.spaces.Discrete) else out.astype(self.action_space.dtype)
