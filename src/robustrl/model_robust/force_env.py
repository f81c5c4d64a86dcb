"""The two sides of an adversarial game: batched envs whose other player is a frozen policy.

Force games (RARL/QARL):

:class:`ForcedEnv` is the protagonist's env: every step, the adversary policy picks a force in
``[-1, 1]^d`` from the observation, scaled to the set's bound and sent as the env's disturbance.
:class:`ForceAdversaryEnv` is the adversary's: its action is the force, the protagonist acts on the
observation, and the reward is the protagonist's negated (zero-sum).

Action-robust games (Tessler, Efroni & Mannor, ICML 2019): :class:`MixedEnv` and :class:`MixAdversaryEnv`
are the same two sides where the adversary's action enters through :func:`mix_actions` (PR-MDP: it replaces
the protagonist's with probability α; NR-MDP: the env receives ``(1 − α)·a + α·a_adv``). All four meet
:class:`~robustrl.envs.base.VecEnv`, so any learner trains either side and ``rollout`` evaluates them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from robustrl.envs.base import ParamValue, StepResult, VecEnv
from robustrl.envs.uncertainty import ForceSet
from robustrl.policies.base import Policy

__all__ = ["ForceAdversaryEnv", "ForcedEnv", "MixAdversaryEnv", "MixedEnv", "force_disturbance", "mix_actions"]


def force_disturbance(env: VecEnv, force: ForceSet, action: torch.Tensor, scale: float) -> torch.Tensor:
    """The env's disturbance for adversary actions ``action [N, force.dim]`` in ``[-1, 1]`` (clipped).

    Native env: ``[N, 1]`` = ``scale · bound · a``. MuJoCo (adapter with ``disturbance_bodies``):
    ``[N, bodies, 6]`` with the chosen wrench components set, the others zero.
    """
    space = getattr(env, "disturbance_space", None)
    if space is None:
        raise ValueError(f"{env.env_id} takes no disturbance: a force adversary needs one (MuJoCo: disturbance_bodies)")
    a = action.reshape(env.num_envs, force.dim).clamp(-1.0, 1.0) * (scale * force.bound)
    if not force.bodies:
        return a.reshape(env.num_envs, *space.shape).to(torch.float32)
    out = torch.zeros((env.num_envs, len(force.bodies), 6), dtype=torch.float32, device=a.device)
    out[:, :, list(force.components)] = a.reshape(env.num_envs, len(force.bodies), len(force.components)).float()
    return out


class _Game:
    """What both sides share: the wrapped env's spaces, limits and reset."""

    def __init__(self, env: VecEnv, other: Policy | None, force: ForceSet | None, scale: float, seed: int) -> None:
        self.env, self.other, self.force, self.scale = env, other, force, float(scale)
        self.generator = torch.Generator(device=env.device).manual_seed(int(seed))
        """The other player's sampling stream."""
        self.env_id = env.env_id
        self.num_envs = env.num_envs
        self.device = env.device
        self.observation_space = env.observation_space
        self.disturbance_space = None
        self.deterministic_other = False
        """Whether the other player acts greedily (False during training: it samples, as it was trained)."""
        self._obs: torch.Tensor | None = None

    @property
    def max_episode_steps(self) -> int | None:
        """The wrapped env's time limit."""
        return self.env.max_episode_steps

    def reset(
        self, *, seed: int | None = None, params: Mapping[str, ParamValue] | None = None
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Reset the wrapped env."""
        obs, info = self.env.reset(seed=seed, params=params)
        self._obs = obs
        return obs, info

    def _last_obs(self, disturbance: torch.Tensor | None) -> torch.Tensor:
        if self._obs is None:
            raise RuntimeError("call reset() before step()")
        if disturbance is not None:
            raise ValueError("a force game's env takes no further disturbance")
        return self._obs

    def _other_act(self, obs: torch.Tensor) -> torch.Tensor:
        assert self.other is not None
        with torch.no_grad():
            if self.deterministic_other:
                return self.other.act(obs, deterministic=True)
            return self.other.act(obs, deterministic=False, generator=self.generator)

    def close(self) -> None:
        """Close the wrapped env."""
        self.env.close()


class ForcedEnv(_Game):
    """``env`` as the protagonist sees it: the frozen ``adversary`` pushes every step (``None``: no force).

    Args:
        env: an env with a disturbance (native classic control, or the adapter with ``disturbance_bodies``).
        adversary: policy from observations to ``[-1, 1]^force.dim``; swap it with :attr:`other`.
        force: the force set.
        scale: multiplier of the force bound.
        seed: seeds the adversary's sampling.
    """

    def __init__(self, env: VecEnv, adversary: Policy | None, force: ForceSet, scale: float = 1.0,
                 seed: int = 0) -> None:
        super().__init__(env, adversary, force, scale, seed)
        self.action_space = env.action_space

    @property
    def return_floor(self) -> float | None:
        """The wrapped env's return floor (forces do not change the reward's range)."""
        return getattr(self.env, "return_floor", None)

    def step(self, action: torch.Tensor, *, disturbance: torch.Tensor | None = None) -> StepResult:
        """Step under the adversary's force on the current observation."""
        obs = self._last_obs(disturbance)
        d = None
        if self.other is not None:
            assert self.force is not None
            d = force_disturbance(self.env, self.force, self._other_act(obs).float(), self.scale)
        out = self.env.step(action, disturbance=d)  # type: ignore[call-arg]
        self._obs = out[0]
        return out


class ForceAdversaryEnv(_Game):
    """``env`` as the adversary sees it: actions are forces in ``[-1, 1]^d``, reward = −protagonist reward.

    Args:
        env: an env with a disturbance.
        protagonist: the frozen protagonist (its parameters are never changed here).
        force: the force set.
        scale: multiplier of the force bound.
        seed: seeds the protagonist's sampling.
    """

    def __init__(self, env: VecEnv, protagonist: Policy, force: ForceSet, scale: float = 1.0,
                 seed: int = 0) -> None:
        super().__init__(env, protagonist, force, scale, seed)
        self.action_space: gym.spaces.Space[Any] = gym.spaces.Box(-1.0, 1.0, (force.dim,), dtype=np.float32)

    @property
    def return_floor(self) -> float | None:
        """Unknown: the adversary's return is the negated protagonist return."""
        return None

    def step(self, action: torch.Tensor, *, disturbance: torch.Tensor | None = None) -> StepResult:
        """The protagonist acts, the force pushes, the adversary gets the negated reward."""
        obs = self._last_obs(disturbance)
        p_action = self._other_act(obs)
        assert self.force is not None
        d = force_disturbance(self.env, self.force, action.float(), self.scale)
        obs, reward, terminated, truncated, info = self.env.step(p_action, disturbance=d)  # type: ignore[call-arg]
        self._obs = obs
        return obs, -reward, terminated, truncated, info


def mix_actions(
    action: torch.Tensor, adversary: torch.Tensor, alpha: float, mix: str, generator: torch.Generator
) -> torch.Tensor:
    """The action the env receives when an action adversary mixes in.

    PR-MDP (``mix="pr"``): ``adversary`` replaces ``action`` per sample with probability α; NR-MDP (``"nr"``,
    continuous): ``(1 − α)·action + α·adversary``. Shapes ``[N, ...]`` (``[N]`` for discrete actions).
    """
    adversary = adversary.reshape(action.shape).to(action.dtype)
    if mix == "nr":
        return (1 - alpha) * action + alpha * adversary
    take = torch.rand((action.shape[0],), generator=generator, device=action.device) < alpha
    return torch.where(take.view(-1, *([1] * (action.dim() - 1))), adversary, action)


class MixedEnv(_Game):
    """``env`` as the protagonist of an action-robust game sees it: the frozen ``adversary``'s action mixes in.

    Args:
        env: any env (the adversary acts in its action space).
        adversary: policy from observations to actions of ``env``; swap it with :attr:`other`.
        alpha: the adversary's probability (PR) or weight (NR), in ``[0, 1]``.
        mix: ``pr`` or ``nr``.
        seed: seeds the adversary's sampling and the PR coin flips.
    """

    def __init__(self, env: VecEnv, adversary: Policy | None, alpha: float, mix: str, seed: int = 0) -> None:
        super().__init__(env, adversary, None, 1.0, seed)
        self.alpha, self.mix = float(alpha), mix
        self.action_space = env.action_space

    @property
    def return_floor(self) -> float | None:
        """The wrapped env's return floor."""
        return getattr(self.env, "return_floor", None)

    def step(self, action: torch.Tensor, *, disturbance: torch.Tensor | None = None) -> StepResult:
        """Step with the protagonist's action mixed with the adversary's."""
        obs = self._last_obs(disturbance)
        if self.other is not None:
            action = mix_actions(action, self._other_act(obs), self.alpha, self.mix, self.generator)
        out = self.env.step(action)
        self._obs = out[0]
        return out


class MixAdversaryEnv(_Game):
    """``env`` as the adversary of an action-robust game sees it: its action mixes in, reward negated.

    Args:
        env: any env.
        protagonist: the frozen protagonist.
        alpha: the adversary's probability (PR) or weight (NR).
        mix: ``pr`` or ``nr``.
        seed: seeds the protagonist's sampling and the PR coin flips.
    """

    def __init__(self, env: VecEnv, protagonist: Policy, alpha: float, mix: str, seed: int = 0) -> None:
        super().__init__(env, protagonist, None, 1.0, seed)
        self.alpha, self.mix = float(alpha), mix
        self.action_space = env.action_space

    @property
    def return_floor(self) -> float | None:
        """Unknown: the adversary's return is the negated protagonist return."""
        return None

    def step(self, action: torch.Tensor, *, disturbance: torch.Tensor | None = None) -> StepResult:
        """The protagonist acts, the adversary's action mixes in, the adversary gets the negated reward."""
        obs = self._last_obs(disturbance)
        mixed = mix_actions(self._other_act(obs), action, self.alpha, self.mix, self.generator)
        obs, reward, terminated, truncated, info = self.env.step(mixed)
        self._obs = obs
        return obs, -reward, terminated, truncated, info
