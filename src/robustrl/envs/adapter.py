"""The Gymnasium adapter: any Gymnasium id (MuJoCo, ALE, user-registered) behind the batched torch interface.

Underneath is ``gymnasium.make_vec(id, num_envs, vectorization_mode="sync" | "async",
vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP})``, so autoreset follows the same contract as the
native envs (``robustrl.envs.base``). Observations come back as torch tensors on ``device`` (floating ones as
float32, integer ones such as Atari frames keep their dtype), rewards float32, flags bool, and
``info["final_obs"]`` a tensor shaped like ``obs``.

Physical parameters: for MuJoCo envs ``mass_scale`` and ``friction_scale`` (a float or one value per copy)
scale each copy's ``model.body_mass`` / ``model.geom_friction`` relative to the nominal values read when the
env was made; ``<body>_mass`` (one per named body, e.g. ``torso_mass``) sets a body's mass in kg and
``world_friction`` the sliding friction of the geoms on the world body (the floor). The composition is
``body_mass[b] = <body>_mass · mass_scale`` and ``friction[floor, 0] = world_friction · friction_scale``; at the
defaults the model is the nominal one. For other envs a parameter name is an attribute of the unwrapped env
(``length`` for CartPole...), set on each copy.

Disturbances (MuJoCo only, ``disturbance_bodies=[...]``): ``step(action, disturbance=d)`` with ``d`` of shape
``[N, len(bodies), 6]`` writes ``d[i, j]`` = (force xyz in N, torque xyz in N·m, world frame, at the body's
centre of mass) into copy ``i``'s ``data.xfrc_applied`` for body ``j`` for that step's ``frame_skip``
simulator steps, then zeroes it.

Parameter samplers: the adapter draws a copy's parameters for an episode when the episode before it starts
(at ``reset()`` both the current and the next), and the sub-env applies them inside its own reset, before its
first observation of the episode (so observations that depend on masses are right from the start).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from robustrl.common.seeding import torch_generator
from robustrl.envs.base import EnvInfo, ParamValue, StepResult, check_disturbance, suggest_ids
from robustrl.envs.physical import MUJOCO_SCALES, WORLD_FRICTION, PhysicalParams, mujoco_param_defaults
from robustrl.envs.samplers import ParamSampler, check_sampler, draw_params


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


def check_env_id(env_id: str, known: Iterable[str] = ()) -> None:
    """Raise a ValueError naming ``env_id`` (with close ids, or the extra to install) if it cannot be made.

    Args:
        env_id: the id to check.
        known: ids served elsewhere (the native ones), suggested alongside Gymnasium's.
    """
    if ":" in env_id:  # "module:Env-v0": Gymnasium imports the module itself
        return
    if env_id.startswith("ALE/") and env_id not in gym.registry and not _register_ale():
        raise ValueError(f"env {env_id!r} needs ale-py: pip install robustrl[atari]")
    if env_id not in gym.registry:
        _register_ale()
    if env_id not in gym.registry:
        ids = sorted(set(gym.registry) | set(known))
        raise ValueError(f"unknown env id {env_id!r}{suggest_ids(env_id, ids)}")


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
        param_sampler: draws parameters per episode (see :meth:`set_param_sampler`).
        disturbance_bodies: MuJoCo only: names of the bodies a step's ``disturbance`` pushes (then
            ``disturbance_space`` is ``Box(-inf, inf, (len(bodies), 6))``); None: no disturbance.
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
        param_sampler: ParamSampler | None = None,
        disturbance_bodies: Sequence[str] | None = None,
        **env_kwargs: Any,
    ) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
        if vectorization_mode not in ("sync", "async"):
            raise ValueError(f"vectorization_mode must be 'sync' or 'async', got {vectorization_mode!r}")
        if return_floor is not None and not math.isfinite(float(return_floor)):
            raise ValueError(f"return_floor must be finite, got {return_floor!r}")
        if disturbance_bodies is not None and (
            isinstance(disturbance_bodies, str)
            or not isinstance(disturbance_bodies, Sequence)
            or not disturbance_bodies
            or not all(isinstance(b, str) for b in disturbance_bodies)
            or len(set(disturbance_bodies)) != len(disturbance_bodies)
        ):
            raise ValueError(
                f"disturbance_bodies must be a non-empty list of distinct body names, got {disturbance_bodies!r}"
            )
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
        self._mujoco_names: frozenset[str] = frozenset(defaults)
        self._param_names: list[str] = self._vec.get_attr("robustrl_param_names")[0]
        self._p: dict[str, torch.Tensor] = {
            k: torch.full((num_envs,), v, dtype=torch.float64, device=self.device) for k, v in defaults.items()
        }
        self._pending_seed: int | None = seed
        self._gen: torch.Generator = torch_generator(seed, "cpu")
        self._sampler: ParamSampler | None = None
        self._next: dict[str, torch.Tensor] = {}
        self.disturbance_space: gym.spaces.Box | None = None
        try:
            if disturbance_bodies is not None:
                self._set_disturbance_bodies(list(disturbance_bodies))
            if params:
                self.set_params(params)
            if param_sampler is not None:
                self.set_param_sampler(param_sampler)
        except ValueError:
            self.close()
            raise

    def _set_disturbance_bodies(self, bodies: list[str]) -> None:
        valid: list[str] = self._vec.get_attr("robustrl_body_names")[0]
        if not self._mujoco_names:
            raise ValueError(
                f"disturbance_bodies needs a MuJoCo env; {self.env_id} is not one (it takes no disturbance)"
            )
        for body in bodies:
            if body not in valid:
                raise ValueError(f"unknown body {body!r} for {self.env_id}{suggest_ids(body, valid)} (bodies: {valid})")
        self._vec.set_attr("robustrl_disturbance_bodies", [list(bodies)] * self.num_envs)
        self.disturbance_space = gym.spaces.Box(-np.inf, np.inf, (len(bodies), 6), np.float64)

    # ------------------------------------------------------------------ parameters
    @property
    def params(self) -> dict[str, torch.Tensor]:
        """Parameters set or sampled so far (MuJoCo ones always): name → tensor ``[N]`` (a copy)."""
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
            self._check_name(name)
            new[name] = self._check_range(name, _param_values(name, value, self.num_envs))
        per_copy = [{k: float(v[i]) for k, v in new.items()} for i in range(self.num_envs)]
        self._vec.set_attr("robustrl_params", per_copy)
        self._p.update({k: v.to(self.device) for k, v in new.items()})

    def _check_name(self, name: object) -> None:
        if name in MUJOCO_SCALES and name not in self._param_names:
            raise ValueError(f"parameter {name!r} needs a MuJoCo env; {self.env_id} is not one")
        if name not in self._param_names:
            hint = suggest_ids(str(name), self._param_names).replace("; ", " (", 1)
            raise ValueError(
                f"unknown parameter {name!r} for {self.env_id}: not a numeric attribute of the env"
                + (hint + ")" if hint else "")
            )

    def _check_range(self, name: str, t: torch.Tensor) -> torch.Tensor:
        """``t`` if its values suit ``name`` (MuJoCo scales and masses > 0, floor friction >= 0)."""
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"parameter {name!r} must be finite")
        if name == WORLD_FRICTION and not bool((t >= 0).all()):
            raise ValueError(f"parameter {name!r} must be >= 0, got min {float(t.min())}")
        if name in self._mujoco_names and name != WORLD_FRICTION and not bool((t > 0).all()):
            raise ValueError(f"parameter {name!r} must be > 0, got min {float(t.min())}")
        return t

    @property
    def param_sampler(self) -> ParamSampler | None:
        """The sampler drawing parameters for each new episode (None: parameters persist)."""
        return self._sampler

    def set_param_sampler(self, sampler: ParamSampler | None) -> None:
        """Draw parameters per episode with ``sampler`` (None stops; parameters keep their last values).

        The sampler is called with the env's CPU generator (seeded by ``seed``, reseeded by
        ``reset(seed=)``) and the copies whose episode starts; its values are for each copy's *following*
        episode, which its sub-env applies inside its own reset (see the module docstring). It is called
        for every copy now, so the next autoreset of any copy already uses it. While it is set, each step's
        ``info["final_params"]`` holds the sampled parameters in effect during the step.

        Raises:
            ValueError: not a sampler, or a name that is not a parameter of this env (checked before any work).
        """
        if sampler is None:
            self._sampler, self._next = None, {}
            self._vec.set_attr("robustrl_pending_params", [{}] * self.num_envs)
            return
        checked = check_sampler(sampler, self._param_names, self.env_id)
        before = self._sampler, self._next
        self._sampler, self._next = checked, {}
        try:
            self._draw_next(torch.arange(self.num_envs))
        except ValueError:  # out-of-range values: nothing reached the sub-envs
            self._sampler, self._next = before
            raise
        for name in checked.names:  # an attribute never set so far: its current value per copy
            if name not in self._p:
                values = [float(v) for v in self._vec.get_attr(name)]
                self._p[name] = torch.tensor(values, dtype=torch.float64, device=self.device)

    def _draw_next(self, copies: torch.Tensor) -> None:
        """Draw the next episode's parameters of ``copies`` and hand them to their sub-envs (pending)."""
        assert self._sampler is not None
        values = draw_params(self._sampler, copies, self._gen, self.env_id)
        for name, v in values.items():
            t = self._check_range(name, v.detach().to("cpu", torch.float64))
            base = self._next.get(name, torch.zeros(self.num_envs, dtype=torch.float64))
            self._next[name] = base.index_copy(0, copies, t)
        chosen = set(copies.tolist())
        pending = [
            {k: float(v[i]) for k, v in self._next.items()} if i in chosen else None for i in range(self.num_envs)
        ]
        self._vec.set_attr("robustrl_pending_params", pending)

    def _start_next(self, copies: torch.Tensor) -> None:
        """Record that ``copies`` (just reset) now run with their pending parameters."""
        for name, v in self._next.items():
            self._p[name] = self._p[name].index_copy(0, copies.to(self.device), v[copies].to(self.device))

    # ------------------------------------------------------------------ API
    def reset(
        self, *, seed: int | None = None, params: Mapping[str, ParamValue] | None = None
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Reset every copy (copy ``i`` seeded with ``seed + i``); ``params`` are applied first.

        ``seed`` also reseeds the parameter sampler's generator; with a sampler every copy draws new
        parameters (overriding ``params`` for the names it draws), applied before the sub-envs reset.
        """
        if params:
            self.set_params(params)
        if seed is not None:
            self._gen.manual_seed(int(seed))
        if seed is None:
            seed, self._pending_seed = self._pending_seed, None
        else:
            self._pending_seed = None
        every = torch.arange(self.num_envs)
        if self._sampler is not None:
            self._draw_next(every)  # applied by each sub-env inside the reset below
        obs, _ = self._vec.reset(seed=seed)
        if self._sampler is not None:
            self._start_next(every)
            self._draw_next(every)
        return self._to_obs(obs), {}

    def step(self, action: torch.Tensor, *, disturbance: torch.Tensor | None = None) -> StepResult:
        """Step every copy; finished copies restart in the same step, ``info["final_obs"]`` holds their end.

        Args:
            action: ``int64 [N]`` (Discrete) or ``float [N, *shape]`` (Box).
            disturbance: ``float [N, len(disturbance_bodies), 6]`` (any device): force xyz (N) and torque
                xyz (N·m) in the world frame at each body's centre of mass, for this step only. Only for
                MuJoCo envs made with ``disturbance_bodies``.

        Returns:
            ``(obs, reward, terminated, truncated, info)``; ``info`` has ``final_obs``, ``gym_info`` and,
            while a parameter sampler is set, ``final_params`` (the sampled parameters in effect this step).
        """
        act = self._check_action(action)
        if disturbance is not None:
            if self.disturbance_space is None and self._mujoco_names:
                raise ValueError(
                    f"{self.env_id} takes no disturbance: make it with disturbance_bodies=[...] to push bodies"
                )
            d = check_disturbance(
                disturbance, self.disturbance_space, self.num_envs, self.env_id, values=self.validate_actions
            )
            forces = d.detach().to("cpu", torch.float64).numpy()
            self._vec.set_attr("robustrl_disturbance", list(forces))
        obs, reward, terminated, truncated, infos = self._vec.step(act)
        final = obs
        done = np.logical_or(terminated, truncated)
        info: dict[str, Any] = {"gym_info": infos}
        if self._sampler is not None:
            info["final_params"] = {name: self._p[name] for name in self._sampler.names}
        if done.any():
            final = np.array(obs, copy=True)
            for i in np.flatnonzero(done):
                final[i] = infos["final_obs"][i]
            if self._sampler is not None:
                finished = torch.from_numpy(np.flatnonzero(done))
                self._start_next(finished)
                self._draw_next(finished)
        obs_t = self._to_obs(obs)
        info["final_obs"] = obs_t if final is obs else self._to_obs(final)
        return (
            obs_t,
            torch.as_tensor(np.asarray(reward, dtype=np.float32), device=self.device),
            torch.as_tensor(terminated, device=self.device),
            torch.as_tensor(truncated, device=self.device),
            info,
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


def gymnasium_env_infos() -> list[EnvInfo]:
    """:class:`~robustrl.envs.base.EnvInfo` for every id in Gymnasium's registry (ALE ids if installed).

    A MuJoCo id lists its scales, ``world_friction`` and ``<body>_mass`` parameters with the model's values
    (its model is loaded once per process to read them; only the scales if it cannot be made).
    """
    _register_ale()
    out = []
    for env_id in sorted(gym.registry):
        spec = gym.registry[env_id]
        out.append(
            EnvInfo(
                id=env_id,
                kind="gymnasium",
                params=mujoco_param_defaults(env_id) if _is_mujoco(spec) else {},
                return_floor=None,
                max_episode_steps=spec.max_episode_steps,
            )
        )
    return out
