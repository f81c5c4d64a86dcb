"""The batched environment contract shared by native torch envs and the Gymnasium adapter.

Autoreset semantics (same-step): when copy ``i`` terminates or is truncated at a step, that step returns
``reward[i]``, ``terminated[i]``/``truncated[i]`` of the finished episode, but ``obs[i]`` is already the
first observation of copy ``i``'s next episode. The last observation of the finished episode is in
``info["final_obs"][i]`` (a tensor shaped like ``obs``; rows of copies that did not finish equal ``obs``).
Physical parameters persist across autoresets.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import torch

ParamValue = float | torch.Tensor
"""A physical parameter: one value for every copy, or a tensor ``[num_envs]`` with one per copy."""

StepResult = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]
"""``(obs [N, *obs_shape], reward [N] float32, terminated [N] bool, truncated [N] bool, info)``."""


@runtime_checkable
class VecEnv(Protocol):
    """``num_envs`` copies of one environment, stepped together on torch tensors.

    Spaces describe a single copy (Gymnasium's ``single_observation_space``); tensors carry a leading
    batch dimension ``N = num_envs``. Discrete actions are ``int64 [N]``, Box actions ``float32 [N, *shape]``.
    """

    env_id: str
    """The id this env was made from (``CartPole-v1``...)."""
    num_envs: int
    """How many copies step together."""
    device: torch.device
    """Where observations, rewards and flags live."""
    observation_space: gym.Space[Any]
    """One copy's observation space."""
    action_space: gym.Space[Any]
    """One copy's action space."""
    max_episode_steps: int | None
    """Steps after which an episode is truncated (None: never)."""

    @property
    def return_floor(self) -> float | None:
        """The least return an episode of this task can have, known before any data (None: unknown)."""
        ...

    def reset(
        self, *, seed: int | None = None, params: Mapping[str, ParamValue] | None = None
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Reset every copy; ``seed`` seeds the env's own generator, ``params`` updates physical parameters."""
        ...

    def step(self, action: torch.Tensor) -> StepResult:
        """Step every copy once (see the module docstring for autoreset)."""
        ...

    def close(self) -> None:
        """Release resources (subprocesses, simulators)."""
        ...
