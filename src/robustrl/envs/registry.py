"""``make_env`` and ``list_envs``: the native envs by id, and any other id through the Gymnasium adapter.

The top of ``robustrl.envs``' import graph: this module imports the adapter and the native envs, none of
which imports it back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch

from robustrl.common.limits import check_count, check_fits
from robustrl.envs.acrobot import AcrobotEnv
from robustrl.envs.adapter import GymnasiumVecEnv, check_env_id, gymnasium_env_infos
from robustrl.envs.base import EnvInfo, ParamValue, VecEnv, suggest_ids
from robustrl.envs.cartpole import CartPoleEnv
from robustrl.envs.mountain_car import MountainCarContinuousEnv, MountainCarEnv
from robustrl.envs.native import NativeVecEnv
from robustrl.envs.pendulum import PendulumEnv
from robustrl.envs.samplers import ParamSampler

__all__ = ["NATIVE_ENVS", "Backend", "EnvInfo", "list_envs", "make_env", "suggest_ids"]

NATIVE_ENVS: dict[str, type[NativeVecEnv]] = {
    cls.ID: cls for cls in (CartPoleEnv, PendulumEnv, MountainCarEnv, MountainCarContinuousEnv, AcrobotEnv)
}
"""Native env classes by Gymnasium id."""

Backend = Literal["native", "gymnasium"]


def make_env(
    env_id: str,
    num_envs: int = 1,
    *,
    device: torch.device | str = "cpu",
    seed: int | None = None,
    params: Mapping[str, ParamValue] | None = None,
    param_sampler: ParamSampler | None = None,
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
        param_sampler: draws parameters for every new episode (:mod:`robustrl.envs.samplers`); its names
            are checked against the env's before anything runs.
        **kwargs: ``backend`` (``"native"`` or ``"gymnasium"``; default native where one exists),
            ``max_episode_steps``, ``validate_actions`` (default True), native options (``dtype``,
            ``compile``, env options such as Acrobot's ``book_or_nips``), adapter options
            (``vectorization_mode``, ``return_floor``, ``disturbance_bodies`` for MuJoCo envs), other
            keyword arguments go to the Gymnasium env.

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
    check_count(num_envs, "num_envs")
    if native is not None and backend != "gymnasium":
        # state, parameters, the reset pool, observations and flags: about 64 floats a copy, float64
        check_fits(num_envs * 64 * 8, f"num_envs={num_envs} copies of {env_id}", hint="use fewer copies")
        if kwargs.get("disturbance_bodies") is not None:
            shape = native.DISTURBANCE_SHAPE
            raise ValueError(
                f"disturbance_bodies is for MuJoCo envs; native {env_id} takes step(..., disturbance=) of shape"
                f" [num_envs, *{shape}] ({native.DISTURBANCE_DOC})"
            )
        kwargs.pop("disturbance_bodies", None)
        try:
            return native(num_envs, device=device, seed=seed, params=params, param_sampler=param_sampler, **kwargs)
        except TypeError as err:
            raise ValueError(f"bad option for {env_id}: {err}") from err
    if backend == "native":
        raise ValueError(f"no native implementation of {env_id!r}; native ids: {sorted(NATIVE_ENVS)}")
    check_env_id(env_id, NATIVE_ENVS)
    if num_envs > 4096:
        raise ValueError(
            f"num_envs={num_envs} through the Gymnasium adapter means {num_envs} Python env objects (the limit is "
            "4096); native batched envs take millions: robustrl envs --kind native"
        )
    return GymnasiumVecEnv(
        env_id, num_envs, device=device, seed=seed, params=params, param_sampler=param_sampler, **kwargs
    )


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
        out.extend(i for i in gymnasium_env_infos() if i.id not in NATIVE_ENVS)
    return out
