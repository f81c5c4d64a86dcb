"""The Gymnasium adapter: any Gymnasium id (MuJoCo, ALE, user-registered) behind the batched torch interface.

Underneath is ``gymnasium.make_vec(id, num_envs, vectorization_mode="sync" | "async",
vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP})``, so autoreset follows the same contract as the
native envs (``robustrl.envs.base``). Observations come back as torch tensors on ``device`` (floating ones as
float32, integer ones such as Atari frames keep their dtype), rewards float32, flags bool, and
``info["final_obs"]`` a tensor shaped like ``obs``.

Physical parameters: for MuJoCo envs ``mass_scale`` and ``friction_scale`` (a float or one value per copy)
scale each copy's ``model.body_mass`` / ``model.geom_friction`` relative to the nominal values read when the
env was made. For other envs a parameter name is an attribute of the unwrapped env (``length`` for
CartPole...), set on each copy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from robustrl.envs.base import ParamValue, StepResult

MUJOCO_SCALES = ("mass_scale", "friction_scale")
"""Parameters of every MuJoCo env: multipliers of the nominal body masses and geom frictions."""


def _is_mujoco(spec: gym.envs.registration.EnvSpec) -> bool:
    ep = spec.entry_point
    return isinstance(ep, str) and ep.startswith("gymnasium.envs.mujoco")


def _register_ale() -> bool:
    """Register the ALE ids with Gymnasium if ale-py is installed; True when it is."""
    try:
        import ale_py
    except ImportError:
        return False
    gym.register_envs(ale_py)
    return True


def check_env_id(env_id: str) -> None:
    """Raise a ValueError naming ``env_id`` (with close ids, or the extra to install) if it cannot be made."""
    from robustrl.envs.registry import NATIVE_ENVS, suggest_ids

    if ":" in env_id:  # "module:Env-v0": Gymnasium imports the module itself
        return
    if env_id.startswith("ALE/") and env_id not in gym.registry and not _register_ale():
        raise ValueError(f"env {env_id!r} needs ale-py: pip install robustrl[atari]")
    if env_id not in gym.registry:
        _register_ale()
    if env_id not in gym.registry:
        known = sorted(set(gym.registry) | set(NATIVE_ENVS))
        raise ValueError(f"unknown env id {env_id!r}{suggest_ids(env_id, known)}")


class PhysicalParams(gym.Wrapper[Any, Any, Any, Any]):
    """Sets physical parameters of one Gymnasium env through ``set_attr("robustrl_params", {...})``.

    Nominal MuJoCo masses and frictions are stored when the wrapper is built, so scales are always relative to
    the registration's model, never compounded.
    """

    def __init__(self, env: gym.Env[Any, Any]) -> None:
        super().__init__(env)
        model = getattr(env.unwrapped, "model", None)
        self._nominal: dict[str, np.ndarray] = {}
        if model is not None and hasattr(model, "body_mass") and hasattr(model, "geom_friction"):
            self._nominal = {
                "mass_scale": np.array(model.body_mass, copy=True),
                "friction_scale": np.array(model.geom_friction, copy=True),
            }

    @property
    def robustrl_param_defaults(self) -> dict[str, float]:
        """Parameters this env always has, with their defaults."""
        return dict.fromkeys(MUJOCO_SCALES, 1.0) if self._nominal else {}

    @property
    def robustrl_param_names(self) -> list[str]:
        """Names :attr:`robustrl_params` accepts: the MuJoCo scales and the env's numeric attributes."""
        base = self.env.unwrapped
        names = list(self.robustrl_param_defaults)
        for name in dir(base):
            if name.startswith("_") or name in names:
                continue
            try:
                value = getattr(base, name)
            except Exception:  # properties that need a reset or a renderer
                continue
            if isinstance(value, int | float | np.number) and not isinstance(value, bool | np.bool_):
                names.append(name)
        return names

    @property
    def robustrl_params(self) -> dict[str, float]:
        """Write-only in practice: assigning a dict applies it (reading gives an empty dict)."""
        return {}

    @robustrl_params.setter
    def robustrl_params(self, values: Mapping[str, float]) -> None:
        base = self.env.unwrapped
        for name, value in values.items():
            if name in MUJOCO_SCALES:
                if not self._nominal:
                    raise ValueError(f"parameter {name!r} needs a MuJoCo env")
                model = base.model  # type: ignore[attr-defined]
                target = model.body_mass if name == "mass_scale" else model.geom_friction
                target[...] = self._nominal[name] * float(value)
                continue
            current = getattr(base, name, None)
            if isinstance(current, bool) or not isinstance(current, int | float | np.number):
                raise ValueError(f"unknown parameter {name!r}: not a numeric attribute of {type(base).__name__}")
            setattr(base, name, type(current)(value) if isinstance(current, float) else float(value))
        # CartPole derives these in __init__; keep them consistent with the new masses/length.
        if hasattr(base, "polemass_length") and hasattr(base, "total_mass"):
            base.total_mass = base.masspole + base.masscart  # type: ignore[attr-defined]
            base.polemass_length = base.masspole * base.length  # type: ignore[attr-defined]


class GymnasiumVecEnv:
    """Any Gymnasium id as a :class:`~robustrl.envs.base.VecEnv` on torch tensors.

    Args:
        env_id: a registered Gymnasium id (``Hopper-v5``, ``ALE/Pong-v5``, a user's id).
        num_envs: copies (``gymnasium.make_vec`` sub-environments).
        device: where observations, rewards and flags are put.
        seed: the first ``reset()`` seeds copy ``i`` with ``seed + i``; None leaves Gymnasium's entropy.
        params: physical parameters (see the module docstring), a float or a tensor ``[num_envs]`` each.
        vectorization_mode: ``"sync"`` (one process) or ``"async"`` (one subprocess per copy).
        validate_actions: check action values (range, NaN/inf) before stepping.
        max_episode_steps: override the registration's time limit.
        return_floor: the least return of the task if the user knows it (None: unknown).
        **env_kwargs: passed to the Gymnasium env's constructor.
    """

    def __init__(
        self,
        env_id: str,
        num_envs: int = 1,
        *,
        device: torch.device | str = "cpu",
        seed: int | None = None,
        params: Mapping[str, ParamValue] | None = None,
        vectorization_mode: str = "sync",
        validate_actions: bool = True,
        max_episode_steps: int | None = None,
        return_floor: float | None = None,
        **env_kwargs: Any,
    ) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
        if vectorization_mode not in ("sync", "async"):
            raise ValueError(f"vectorization_mode must be 'sync' or 'async', got {vectorization_mode!r}")
        if return_floor is not None and not math.isfinite(float(return_floor)):
            raise ValueError(f"return_floor must be finite, got {return_floor!r}")
        try:
            spec: gym.envs.registration.EnvSpec | None = gym.spec(env_id)
        except gym.error.Error:
            spec = None  # "module:Env-v0": make_vec imports the module
        self.env_id: str = env_id
        self.num_envs: int = num_envs
        self.device: torch.device = torch.device(device)
        self.validate_actions: bool = validate_actions
        self.return_floor: float | None = None if return_floor is None else float(return_floor)
        if max_episode_steps is not None:
            env_kwargs["max_episode_steps"] = max_episode_steps
        try:
            self._vec: gym.vector.SyncVectorEnv | gym.vector.AsyncVectorEnv = gym.make_vec(  # type: ignore[assignment]
                env_id,
                num_envs,
                vectorization_mode=vectorization_mode,
                vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP},
                wrappers=[PhysicalParams],
                **env_kwargs,
            )
        except gym.error.DependencyNotInstalled as err:
            extra = (
                "mujoco" if spec is not None and _is_mujoco(spec) else "atari" if env_id.startswith("ALE/") else None
            )
            hint = f": pip install robustrl[{extra}]" if extra else ""
            raise ValueError(f"env {env_id!r} needs a missing dependency{hint} ({err})") from err
        except TypeError as err:
            raise ValueError(f"bad option for {env_id!r}: {err}") from err
        self.max_episode_steps: int | None = (
            max_episode_steps if max_episode_steps is not None else self._vec.get_attr("spec")[0].max_episode_steps
        )
        self.observation_space, self._obs_dtype = _torch_obs_space(self._vec.single_observation_space)
        self.action_space: gym.Space[Any] = self._vec.single_action_space
        if not isinstance(self.action_space, gym.spaces.Discrete | gym.spaces.Box):
            self.close()
            raise ValueError(f"{env_id}: action space {self.action_space} is not Discrete or Box")
        defaults: dict[str, float] = self._vec.get_attr("robustrl_param_defaults")[0]
        self._param_names: list[str] = self._vec.get_attr("robustrl_param_names")[0]
        self._p: dict[str, torch.Tensor] = {
            k: torch.full((num_envs,), v, dtype=torch.float64, device=self.device) for k, v in defaults.items()
        }
        self._pending_seed: int | None = seed
        if params:
            try:
                self.set_params(params)
            except ValueError:
                self.close()
                raise

    # ------------------------------------------------------------------ parameters
    @property
    def params(self) -> dict[str, torch.Tensor]:
        """Parameters set so far (MuJoCo scales always): name → tensor ``[N]`` (a copy)."""
        return {k: v.clone() for k, v in self._p.items()}

    def set_params(self, params: Mapping[str, ParamValue]) -> None:
        """Apply parameters to every copy now (a float applies to all copies).

        Raises:
            ValueError: wrong shape, non-finite value, non-positive scale, or unknown name.
        """
        if not isinstance(params, Mapping):
            raise ValueError(f"params must be a mapping name -> value, got {type(params).__name__}")
        new: dict[str, torch.Tensor] = {}
        for name, value in params.items():
            if name in MUJOCO_SCALES and name not in self._param_names:
                raise ValueError(f"parameter {name!r} needs a MuJoCo env; {self.env_id} is not one")
            if name not in self._param_names:
                from robustrl.envs.registry import suggest_ids

                hint = suggest_ids(str(name), self._param_names).replace("; ", " (", 1)
                raise ValueError(
                    f"unknown parameter {name!r} for {self.env_id}: not a numeric attribute of the env"
                    + (hint + ")" if hint else "")
                )
            t = _param_values(name, value, self.num_envs)
            if name in MUJOCO_SCALES and not bool((t > 0).all()):
                raise ValueError(f"parameter {name!r} must be > 0, got min {float(t.min())}")
            new[name] = t
        per_copy = [{k: float(v[i]) for k, v in new.items()} for i in range(self.num_envs)]
        self._vec.set_attr("robustrl_params", per_copy)
        self._p.update({k: v.to(self.device) for k, v in new.items()})

    # ------------------------------------------------------------------ API
    def reset(
        self, *, seed: int | None = None, params: Mapping[str, ParamValue] | None = None
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Reset every copy (copy ``i`` seeded with ``seed + i``); ``params`` are applied first."""
        if params:
            self.set_params(params)
        if seed is None:
            seed, self._pending_seed = self._pending_seed, None
        else:
            self._pending_seed = None
        obs, _ = self._vec.reset(seed=seed)
        return self._to_obs(obs), {}

    def step(self, action: torch.Tensor) -> StepResult:
        """Step every copy; finished copies restart in the same step, ``info["final_obs"]`` holds their end."""
        act = self._check_action(action)
        obs, reward, terminated, truncated, infos = self._vec.step(act)
        final = obs
        done = np.logical_or(terminated, truncated)
        if done.any():
            final = np.array(obs, copy=True)
            for i in np.flatnonzero(done):
                final[i] = infos["final_obs"][i]
        obs_t = self._to_obs(obs)
        return (
            obs_t,
            torch.as_tensor(np.asarray(reward, dtype=np.float32), device=self.device),
            torch.as_tensor(terminated, device=self.device),
            torch.as_tensor(truncated, device=self.device),
            {"final_obs": obs_t if final is obs else self._to_obs(final), "gym_info": infos},
        )

    def close(self) -> None:
        """Close the Gymnasium vector env (and its subprocesses)."""
        vec = getattr(self, "_vec", None)
        if vec is not None:
            vec.close()

    def __repr__(self) -> str:
        return f"GymnasiumVecEnv({self.env_id}, num_envs={self.num_envs}, device={self.device})"

    # ------------------------------------------------------------------ conversions
    def _to_obs(self, obs: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(obs, dtype=self._obs_dtype), device=self.device)

    def _check_action(self, action: torch.Tensor) -> np.ndarray:
        space = self.action_space
        if not isinstance(action, torch.Tensor):
            raise ValueError(f"action must be a torch.Tensor, got {type(action).__name__}")
        if isinstance(space, gym.spaces.Discrete):
            if action.shape != (self.num_envs,):
                raise ValueError(f"action must have shape ({self.num_envs},), got {tuple(action.shape)}")
            if action.dtype != torch.int64:
                raise ValueError(f"action must be int64 for a Discrete space, got {action.dtype}")
            a = action.detach().cpu().numpy()
            lo, n = int(space.start), int(space.n)
            if self.validate_actions and bool(((a < lo) | (a >= lo + n)).any()):
                raise ValueError(f"action values must lie in [{lo}, {lo + n}), got {a.tolist()}")
            return a
        assert isinstance(space, gym.spaces.Box)
        shape = (self.num_envs, *space.shape)
        if action.shape != shape:
            raise ValueError(f"action must have shape {shape}, got {tuple(action.shape)}")
        if not action.is_floating_point():
            raise ValueError(f"action must be a floating-point tensor for a Box space, got {action.dtype}")
        a = action.detach().cpu().numpy().astype(space.dtype, copy=False)
        if self.validate_actions and not bool(np.isfinite(a).all()):
            raise ValueError("action contains NaN or inf")
        return a


def _torch_obs_space(space: gym.Space[Any]) -> tuple[gym.Space[Any], np.dtype[Any]]:
    """One copy's observation space as robustrl returns it (floating Box → float32) and the array dtype."""
    if isinstance(space, gym.spaces.Box):
        if np.issubdtype(space.dtype, np.floating):
            f32 = gym.spaces.Box(space.low.astype(np.float32), space.high.astype(np.float32), dtype=np.float32)
            return f32, np.dtype(np.float32)
        return space, np.dtype(space.dtype)
    if isinstance(space, gym.spaces.Discrete):
        return space, np.dtype(np.int64)
    raise ValueError(f"observation space {space} is not supported (Box or Discrete only)")


def _param_values(name: str, value: ParamValue, n: int) -> torch.Tensor:
    """Validated per-copy values ``[n]`` float64 on CPU."""
    if isinstance(value, torch.Tensor):
        if value.dim() == 0:
            t = value.detach().double().cpu().expand(n).clone()
        elif value.shape == (n,):
            t = value.detach().double().cpu()
        else:
            raise ValueError(
                f"parameter {name!r} must be a float or a tensor of shape ({n},), got {tuple(value.shape)}"
            )
    elif isinstance(value, int | float) and not isinstance(value, bool):
        t = torch.full((n,), float(value), dtype=torch.float64)
    else:
        raise ValueError(f"parameter {name!r} must be a float or a tensor [num_envs], got {type(value).__name__}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"parameter {name!r} must be finite")
    return t


def gymnasium_env_infos() -> list[Any]:
    """:class:`~robustrl.envs.registry.EnvInfo` for every id in Gymnasium's registry (ALE ids if installed)."""
    from robustrl.envs.registry import EnvInfo

    _register_ale()
    out = []
    for env_id in sorted(gym.registry):
        spec = gym.registry[env_id]
        out.append(
            EnvInfo(
                id=env_id,
                kind="gymnasium",
                params=dict.fromkeys(MUJOCO_SCALES, 1.0) if _is_mujoco(spec) else {},
                return_floor=None,
                max_episode_steps=spec.max_episode_steps,
            )
        )
    return out
