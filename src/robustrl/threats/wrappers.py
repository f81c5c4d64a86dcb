"""Gymnasium wrappers that apply a threat inside a user's own single-env loop.

These are plumbing for users who step one Gymnasium env themselves; evaluation runs threats in the
batched rollout engine instead. Each wrapper keeps the :class:`~robustrl.rollout.StepContext` a threat
expects (step counter, episode start flag, a seeded generator) for a batch of one, and meets the Gymnasium
contract (``gymnasium.utils.env_checker.check_env``, close and spec round-trip included):

* ``reset(seed=s)`` reseeds the threat's generator from ``s`` as well as the env, so a seeded reset fixes
  the whole episode — same seed and same actions give the same observations and rewards;
* ``env.spec.make()`` rebuilds the wrapped env; its spec records the threat and policy *objects* (not
  copies), so the rebuilt env attacks the same, live victim.
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
import torch

from robustrl.common.seeding import derive_seed, torch_generator
from robustrl.policies.base import Policy, policy_device
from robustrl.rollout import StepContext
from robustrl.threats.registry import ActionThreat, ObsThreat

_THREAT_STREAM = 0x7787
"""Key of the threat's generator seed, derived from a reset seed (independent of the env's own stream)."""


def _context(policy: Policy, step: int, start: bool, generator: torch.Generator) -> StepContext:
    """A batch-of-one :class:`StepContext` on the generator's device."""
    return StepContext(
        policy=policy,
        step=torch.tensor([step], dtype=torch.int64, device=generator.device),
        episode_start=torch.tensor([start], device=generator.device),
        generator=generator,
    )


def _reseed(generator: torch.Generator, seed: int | None) -> None:
    """Reseed ``generator`` in place from a reset seed (None: keep its stream going)."""
    if seed is not None:
        derived = derive_seed(seed, _THREAT_STREAM)
        assert derived is not None
        generator.manual_seed(derived)


def _batch(x: Any, device: torch.device) -> torch.Tensor:
    """One env value (observation or action) as a ``[1, ...]`` tensor on ``device`` (a copy: never aliased)."""
    return torch.tensor(np.asarray(x), device=device)[None]


class ObservationThreatWrapper(
    gym.ObservationWrapper,  # type: ignore[type-arg]
    gym.utils.RecordConstructorArgs,
):
    """Apply an observation threat (e.g. ``make_threat("pgd", 0.05)``) to every observation.

    Args:
        env: a single (not vectorised) Gymnasium env with a Box observation space.
        threat: an obs threat, or any ``obs_transform(obs [1, ...], ctx) -> obs'``.
        policy: the victim the threat differentiates through (observations go to its device).
        seed: seeds the threat's generator until the first ``reset(seed=...)``, which reseeds it.

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

    def __init__(
        self, env: gym.Env[Any, Any], threat: ObsThreat | Any, policy: Policy, seed: int | None = None
    ) -> None:
        if isinstance(threat, ActionThreat):
            raise ValueError("ObservationThreatWrapper needs an observation threat; use ActionThreatWrapper")
        gym.utils.RecordConstructorArgs.__init__(self, threat=threat, policy=policy, seed=seed, _disable_deepcopy=True)
        gym.ObservationWrapper.__init__(self, env)
        self.threat = threat
        self.policy = policy
        self.generator = torch_generator(seed, policy_device(policy))
        self._step = 0
        self._start = True

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Reset the env, reseed the threat's generator when ``seed`` is given, start a new episode."""
        self._step, self._start = 0, True
        _reseed(self.generator, seed)
        return super().reset(seed=seed, options=options)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the env; the threat sees the next observation."""
        self._step += 1
        self._start = False
        return super().step(action)

    def observation(self, observation: Any) -> Any:
        """The perturbed observation (a new array, same dtype and shape as the env's)."""
        obs = _batch(observation, self.generator.device)
        out = self.threat(obs, _context(self.policy, self._step, self._start, self.generator))[0]
        return np.array(out.detach().cpu().numpy(), dtype=np.asarray(observation).dtype)


class ActionThreatWrapper(
    gym.ActionWrapper,  # type: ignore[type-arg]
    gym.utils.RecordConstructorArgs,
):
    """Apply an action threat (e.g. ``make_threat("action_replace", 0.1)``) to every action.

    Args:
        env: a single Gymnasium env.
        threat: an action threat, or any ``action_transform(action [1, ...], obs [1, ...], ctx)``.
        policy: the victim (its action space and, for heuristics, its Q values or critic).
        seed: seeds the threat's generator until the first ``reset(seed=...)``, which reseeds it.

    Example:
        >>> from robustrl.threats import make_threat
        >>> from robustrl.policies.networks import ActorCriticPolicy
        >>> env = gym.make("CartPole-v1")
        >>> pi = ActorCriticPolicy(env.observation_space, env.action_space)
        >>> wrapped = ActionThreatWrapper(env, make_threat("action_replace", 0.5), pi)
        >>> def five_steps():
        ...     _ = wrapped.reset(seed=0)
        ...     return np.stack([wrapped.step(0)[0] for _ in range(5)])
        >>> bool((five_steps() == five_steps()).all())  # a seeded reset fixes the threat's draws too
        True
    """

    def __init__(
        self, env: gym.Env[Any, Any], threat: ActionThreat | Any, policy: Policy, seed: int | None = None
    ) -> None:
        if isinstance(threat, ObsThreat):
            raise ValueError("ActionThreatWrapper needs an action threat; use ObservationThreatWrapper")
        gym.utils.RecordConstructorArgs.__init__(self, threat=threat, policy=policy, seed=seed, _disable_deepcopy=True)
        gym.ActionWrapper.__init__(self, env)
        self.threat = threat
        self.policy = policy
        self.generator = torch_generator(seed, policy_device(policy))
        self._obs: Any = None
        self._step = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Reset the env, reseed the threat's generator when ``seed`` is given, remember the first observation."""
        _reseed(self.generator, seed)
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
        a = _batch(action, self.generator.device)
        obs = _batch(self._obs, self.generator.device)
        ctx = _context(self.policy, self._step, self._step == 0, self.generator)
        out = self.threat(a, obs, ctx)[0].detach().cpu().numpy()
        return int(out) if isinstance(self.action_space, gym.spaces.Discrete) else out.astype(self.action_space.dtype)
