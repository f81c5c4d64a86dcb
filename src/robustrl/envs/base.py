"""The batched environment contract shared by native torch envs and the Gymnasium adapter.

Autoreset semantics (same-step): when copy ``i`` terminates or is truncated at a step, that step returns
``reward[i]``, ``terminated[i]``/``truncated[i]`` of the finished episode, but ``obs[i]`` is already the
first observation of copy ``i``'s next episode. The last observation of the finished episode is in
``info["final_obs"][i]`` (a tensor shaped like ``obs``; rows of copies that did not finish equal ``obs``).
Physical parameters persist across autoresets, unless a parameter sampler (``robustrl.envs.samplers``) draws
new ones for each episode.

Disturbances: an env whose ``disturbance_space`` is a Box takes ``step(action, disturbance=d)``, ``d`` of shape
``[N, *disturbance_space.shape]``, an external force or torque acting during that step only (units and point
of application are the env's; see ``docs/envs.md``).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

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
    disturbance_space: gym.spaces.Box | None
    """One copy's per-step disturbance (an external force), or None when the env takes none."""

    @property
    def return_floor(self) -> float | None:
        """The least return an episode of this task can have, known before any data (None: unknown)."""
        ...

    def reset(
        self, *, seed: int | None = None, params: Mapping[str, ParamValue] | None = None
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Reset every copy; ``seed`` seeds the env's own generator, ``params`` updates physical parameters."""
        ...

    def step(self, action: torch.Tensor, *, disturbance: torch.Tensor | None = None) -> StepResult:
        """Step every copy once (see the module docstring for autoreset).

        ``disturbance`` ``[N, *disturbance_space.shape]`` acts during this step only (None: no disturbance).
        """
        ...

    def close(self) -> None:
        """Release resources (subprocesses, simulators)."""
        ...


@dataclass(frozen=True)
class EnvInfo:
    """What :func:`~robustrl.envs.registry.list_envs` reports about one env id."""

    id: str
    """The id to pass to :func:`~robustrl.envs.registry.make_env`."""
    kind: Literal["native", "gymnasium"]
    """``native`` (batched torch) or ``gymnasium`` (through the adapter)."""
    params: dict[str, float] = field(default_factory=dict)
    """Physical parameters and their defaults (for MuJoCo adapter envs: scales, per-body masses, floor friction)."""
    return_floor: float | None = None
    """The least return the task allows at default parameters (None: unknown)."""
    max_episode_steps: int | None = None
    """Time limit of the registration (None: none)."""


def suggest_ids(name: str, known: Iterable[str]) -> str:
    """A ``"; did you mean ...?"`` hint with the names in ``known`` closest to ``name`` (empty when none is close)."""
    lowered = {k.lower(): k for k in known}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.6)
    return f"; did you mean {[lowered[c] for c in close]}?" if close else ""


def check_disturbance(
    disturbance: object, space: gym.spaces.Box | None, num_envs: int, env_id: str, *, values: bool = True
) -> torch.Tensor:
    """Check a step's disturbance against one copy's ``space``; returns it unchanged.

    Args:
        disturbance: what was passed as ``step(..., disturbance=)``.
        space: the env's ``disturbance_space`` (None: the env takes no disturbance).
        num_envs: ``N``, the leading dimension the disturbance must have.
        env_id: named in the error messages.
        values: also check that every entry is finite (a device sync on CUDA).

    Returns:
        ``disturbance`` as a floating-point tensor ``[N, *space.shape]``.

    Raises:
        ValueError: the env takes no disturbance, or a wrong type, shape or dtype, or NaN/inf values; the
            message names ``env_id`` and the expected shape.
    """
    if space is None:
        raise ValueError(f"{env_id} takes no disturbance (its disturbance_space is None)")
    shape = (num_envs, *space.shape)
    if not isinstance(disturbance, torch.Tensor):
        kind = type(disturbance).__name__
        raise ValueError(f"{env_id}: disturbance must be a torch.Tensor of shape {shape}, got {kind}")
    if disturbance.shape != shape:
        raise ValueError(f"{env_id}: disturbance must have shape {shape}, got {tuple(disturbance.shape)}")
    if not disturbance.is_floating_point():
        raise ValueError(f"{env_id}: disturbance must be a floating-point tensor, got {disturbance.dtype}")
    if values and not bool(torch.isfinite(disturbance).all()):
        raise ValueError(f"{env_id}: disturbance of shape {shape} contains NaN or inf")
    return disturbance
