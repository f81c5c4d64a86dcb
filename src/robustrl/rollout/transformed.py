"""``TransformedVecEnv``: a batched env whose observations and actions pass through threat transforms.

Wrap a training env in it and any learner trains under any observation or action threat (or a defense
written as a transform) without a line of learner code changing. The transforms are the same callables
:func:`~robustrl.rollout.rollout` and :func:`~robustrl.rollout.collect` take.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import torch

from robustrl.common.seeding import derive_seed, torch_generator
from robustrl.envs.base import ParamValue, StepResult, VecEnv
from robustrl.policies.base import Policy
from robustrl.rollout.context import ActionTransform, ObsTransform, StepContext


class _NoPolicy:
    """Stands in for the victim until :attr:`TransformedVecEnv.policy` is set.

    It has the env's spaces (noise threats need no more); any other use of it is an error.
    """

    def __init__(self, observation_space: gym.Space[Any], action_space: gym.Space[Any]) -> None:
        self.observation_space = observation_space
        self.action_space = action_space

    def __getattr__(self, name: str) -> Any:
        raise ValueError(
            "this threat needs the victim policy: set TransformedVecEnv.policy (env.policy = agent.policy) "
            "before stepping"
        )


class TransformedVecEnv:
    """A :class:`~robustrl.envs.base.VecEnv` applying ``obs_transform`` / ``action_transform`` to ``env``.

    Observations returned by :meth:`reset` and :meth:`step` (and ``info["final_obs"]``) are transformed;
    the clean ones are in ``info["clean_obs"]`` and ``info["clean_final_obs"]``. Actions given to
    :meth:`step` pass through ``action_transform`` (which sees the clean observation) before the env.

    Args:
        env: the env to wrap (its copies, device and spaces are this env's).
        obs_transform: ``(obs, ctx) -> obs'``, e.g. a threat from :func:`robustrl.threats.make_threat`.
        action_transform: ``(action, obs, ctx) -> action'``.
        policy: the victim the transforms see as ``ctx.policy`` (attacks differentiate through it); set
            :attr:`policy` later when the learner builds its policy after the env (threats that do not
            look at the policy, such as noise, run without one).
        seed: seeds the transforms' generator (re-seeded by ``reset(seed=...)``).

    Example:
        >>> import robustrl
        >>> from robustrl.threats import make_threat
        >>> env = TransformedVecEnv(robustrl.make_env("CartPole-v1", 4), make_threat("uniform", 0.1))
        >>> obs, info = env.reset(seed=0)
        >>> bool(((obs - info["clean_obs"]).abs() <= 0.1 + 1e-6).all())
        True
    """

    def __init__(
        self,
        env: VecEnv,
        obs_transform: ObsTransform | None = None,
        action_transform: ActionTransform | None = None,
        *,
        policy: Policy | None = None,
        seed: int | None = None,
    ) -> None:
        self.env = env
        """The wrapped env."""
        self.obs_transform = obs_transform
        self.action_transform = action_transform
        self.policy = policy
        """The policy the transforms attack (``ctx.policy``)."""
        self.env_id = env.env_id
        self.num_envs = env.num_envs
        self.device = env.device
        self.observation_space: gym.Space[Any] = env.observation_space
        self.action_space: gym.Space[Any] = env.action_space
        self.generator = torch_generator(seed, self.device)
        self._step = torch.zeros(self.num_envs, dtype=torch.int64, device=self.device)
        self._start = torch.ones(self.num_envs, dtype=torch.bool, device=self.device)
        self._clean: torch.Tensor | None = None

    @property
    def max_episode_steps(self) -> int | None:
        """The wrapped env's time limit."""
        return self.env.max_episode_steps

    @property
    def return_floor(self) -> float | None:
        """The wrapped env's return floor (an observation or action threat cannot change it)."""
        return self.env.return_floor

    def _ctx(self, step: torch.Tensor, start: torch.Tensor) -> StepContext:
        policy: Any = self.policy if self.policy is not None else _NoPolicy(self.observation_space, self.action_space)
        return StepContext(policy=policy, step=step, episode_start=start, generator=self.generator)

    def _see(self, obs: torch.Tensor, ctx: StepContext | None) -> torch.Tensor:
        if self.obs_transform is None:
            return obs
        assert ctx is not None
        return self.obs_transform(obs.float(), ctx)

    def reset(
        self, *, seed: int | None = None, params: Mapping[str, ParamValue] | None = None
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Reset the env; ``seed`` also re-seeds the transforms' generator."""
        obs, info = self.env.reset(seed=seed, params=params)
        if seed is not None:
            self.generator = torch_generator(derive_seed(seed, 1), self.device)
        self._step.zero_()
        self._start.fill_(True)
        self._clean = obs
        transforms = self.obs_transform is not None or self.action_transform is not None
        ctx = self._ctx(self._step, self._start) if transforms else None
        return self._see(obs, ctx), {**info, "clean_obs": obs}

    @property
    def disturbance_space(self) -> gym.spaces.Box | None:
        """The wrapped env's per-step disturbance space (None: it takes none)."""
        return getattr(self.env, "disturbance_space", None)

    def __getattr__(self, name: str) -> Any:
        """Anything else (``params``, ``set_params``, ``state``…) is the wrapped env's."""
        if name.startswith("_") or name == "env":
            raise AttributeError(name)
        return getattr(self.env, name)

    def step(self, action: torch.Tensor, *, disturbance: torch.Tensor | None = None) -> StepResult:
        """Step with ``action_transform(action)``; returns transformed observations (clean ones in ``info``).

        ``disturbance`` (an external force, see the env's ``disturbance_space``) goes to the env unchanged.
        """
        if self._clean is None:
            raise RuntimeError("call reset() before step()")
        transforms = self.obs_transform is not None or self.action_transform is not None
        ctx = self._ctx(self._step, self._start) if transforms else None
        if self.action_transform is not None:
            assert ctx is not None
            action = self.action_transform(action, self._clean, ctx)
        if disturbance is None:
            obs, reward, terminated, truncated, info = self.env.step(action)
        else:
            obs, reward, terminated, truncated, info = self.env.step(action, disturbance=disturbance)  # type: ignore[call-arg]
        done = terminated | truncated
        final_clean = info["final_obs"]
        final = self._see(final_clean, self._ctx(self._step + 1, torch.zeros_like(done)) if transforms else None)
        self._step = torch.where(done, 0, self._step + 1)
        self._start = done
        self._clean = obs
        seen = self._see(obs, self._ctx(self._step, self._start) if transforms else None)
        out = {**info, "final_obs": final, "clean_obs": obs, "clean_final_obs": final_clean}
        return seen, reward, terminated, truncated, out

    def close(self) -> None:
        """Close the wrapped env."""
        self.env.close()

    def __repr__(self) -> str:
        obs_t, act_t = self.obs_transform, self.action_transform
        return f"TransformedVecEnv({self.env!r}, obs_transform={obs_t!r}, action_transform={act_t!r})"
