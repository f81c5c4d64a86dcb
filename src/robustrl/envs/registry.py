"""``make_env`` and ``list_envs``: the native envs by id, and any other id through the Gymnasium adapter."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from robustrl.envs.acrobot import AcrobotEnv
from robustrl.envs.base import ParamValue, VecEnv
from robustrl.envs.cartpole import CartPoleEnv
from robustrl.envs.mountain_car import MountainCarContinuousEnv, MountainCarEnv
from robustrl.envs.native import NativeVecEnv
from robustrl.envs.pendulum import PendulumEnv

NATIVE_ENVS: dict[str, type[NativeVecEnv]] = {
    cls.ID: cls for cls in (CartPoleEnv, PendulumEnv, MountainCarEnv, MountainCarContinuousEnv, AcrobotEnv)
}
"""Native env classes by Gymnasium id."""

Backend = Literal["native", "gymnasium"]


@dataclass(frozen=True)
class EnvInfo:
    """What :func:`list_envs` reports about one env id."""

    id: str
    """The id to pass to :func:`make_env`."""
    kind: Literal["native", "gymnasium"]
    """``native`` (batched torch) or ``gymnasium`` (through the adapter)."""
    params: dict[str, float] = field(default_factory=dict)
    """Physical parameters and their defaults (for adapter envs: the scales robustrl can apply)."""
    return_floor: float | None = None
    """The least return the task allows at default parameters (None: unknown)."""
    max_episode_steps: int | None = None
    """Time limit of the registration (None: none)."""


def make_env(
    env_id: str,
    num_envs: int = 1,
    *,
    device: torch.device | str = "cpu",
    seed: int | None = None,
    params: Mapping[str, ParamValue] | None = None,
    **kwargs: Any,
) -> VecEnv:
    """Make ``num_envs`` copies of ``env_id`` stepping together on torch tensors.

    Native ids (see :func:`list_envs`) give a batched torch env; any other Gymnasium id (MuJoCo, ALE,
    user-registered) goes through :class:`~robustrl.envs.adapter.GymnasiumVecEnv`.

    Args:
        env_id: a Gymnasium id such as ``"CartPole-v1"`` or ``"Hopper-v5"``.
        num_envs: copies stepped together.
        device: where observations, rewards and flags live.
        seed: seeds initial states; ``reset(seed=...)`` reseeds. None draws fresh entropy.
        params: physical parameters, each a float or a tensor ``[num_envs]`` (names in :func:`list_envs`).
        **kwargs: ``backend`` (``"native"`` or ``"gymnasium"``; default native where one exists),
            ``max_episode_steps``, ``validate_actions`` (default True), native options (``dtype``,
            ``compile``, env options such as Acrobot's ``book_or_nips``), adapter options
            (``vectorization_mode``, ``return_floor``), other keyword arguments go to the Gymnasium env.

    Returns:
        A :class:`~robustrl.envs.base.VecEnv`.

    Raises:
        ValueError: unknown id (with close ids suggested), bad parameters or options.

    Example:
        >>> env = make_env("CartPole-v1", 4, seed=0)
        >>> obs, _ = env.reset()
        >>> obs.shape
        torch.Size([4, 4])
    """
    backend = kwargs.pop("backend", None)
    if backend not in (None, "native", "gymnasium"):
        raise ValueError(f"backend must be 'native' or 'gymnasium', got {backend!r}")
    if not isinstance(env_id, str):
        raise ValueError(f"env_id must be a string, got {type(env_id).__name__}")
    native = NATIVE_ENVS.get(env_id)
    if native is not None and backend != "gymnasium":
        try:
            return native(num_envs, device=device, seed=seed, params=params, **kwargs)
        except TypeError as err:
            raise ValueError(f"bad option for {env_id}: {err}") from err
    if backend == "native":
        raise ValueError(f"no native implementation of {env_id!r}; native ids: {sorted(NATIVE_ENVS)}")
    from robustrl.envs.adapter import GymnasiumVecEnv, check_env_id

    check_env_id(env_id)
    return GymnasiumVecEnv(env_id, num_envs, device=device, seed=seed, params=params, **kwargs)


def suggest_ids(env_id: str, known: list[str]) -> str:
    """A ``"; did you mean ...?"`` hint with the ids closest to ``env_id`` (empty when none is close)."""
    lowered = {k.lower(): k for k in known}
    close = difflib.get_close_matches(env_id.lower(), list(lowered), n=3, cutoff=0.6)
    return f"; did you mean {[lowered[c] for c in close]}?" if close else ""


def _native_info(cls: type[NativeVecEnv]) -> EnvInfo:
    env = cls(1, seed=0)
    return EnvInfo(
        id=cls.ID,
        kind="native",
        params={k: s.default for k, s in cls.PARAMS.items()},
        return_floor=env.return_floor,
        max_episode_steps=cls.MAX_EPISODE_STEPS,
    )


def list_envs(kind: Literal["all", "native", "gymnasium"] = "all") -> list[EnvInfo]:
    """The env ids :func:`make_env` accepts, natives first, then Gymnasium's registry (sorted).

    Args:
        kind: ``native``, ``gymnasium`` (ids without a native implementation) or ``all``.

    Example:
        >>> [e.id for e in list_envs("native")][:2]
        ['CartPole-v1', 'Pendulum-v1']
    """
    if kind not in ("all", "native", "gymnasium"):
        raise ValueError(f"kind must be 'all', 'native' or 'gymnasium', got {kind!r}")
    out: list[EnvInfo] = []
    if kind in ("all", "native"):
        out.extend(_native_info(cls) for cls in NATIVE_ENVS.values())
    if kind in ("all", "gymnasium"):
        from robustrl.envs.adapter import gymnasium_env_infos

        out.extend(i for i in gymnasium_env_infos() if i.id not in NATIVE_ENVS)
    return out
