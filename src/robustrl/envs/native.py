"""The shared base of robustrl's native batched torch environments.

A native env keeps ``num_envs`` copies of one task as tensors: the physical state, one tensor ``[N]`` per
physical parameter, and a step counter ``[N]`` for truncation. A subclass supplies pure pieces: how initial
states are drawn, how one step maps ``(state, action)`` to ``(next_state, reward, terminated)``, how a state
is observed. This base does the rest: action checks, the time limit, same-step autoreset (batched, no Python
loop over copies), seeding, parameter validation.

Internally the state is stored component-major, ``[STATE_DIM, N]`` (each row contiguous, so element-wise
kernels vectorise); :attr:`NativeVecEnv.state` shows and takes Gymnasium's layout ``[N, STATE_DIM]``.

Autoreset draws initial states from the env's generator in chunks (a pool) and hands them out in order to
the copies that finish. Equivalent paths do the mixing:

- eager on CPU: count the finished copies (a free sync on CPU) and ``index_copy_`` their new states in;
- eager on CPU with a NumPy kernel (a subclass that sets ``NUMPY_KERNEL`` and implements
  :meth:`NativeVecEnv._numpy_dynamics`, CartPole so far): the same, but the state lives in one persistent
  buffer updated in place by NumPy ufuncs with ``out=`` on a view of the torch tensor's memory (about 1 µs
  per operation against torch's 2 µs, and no allocation); outputs are fresh tensors;
- fused (``compile=True``, or any non-CPU device): a branch-free function that ranks finished copies with a
  cumulative sum and selects pool rows with ``torch.where``; it never syncs, so it can be captured in a
  CUDA graph, and ``torch.compile`` fuses it with the physics into one or two kernels. While a parameter
  sampler is set, a fused env steps on the eager torch path instead (the sampler needs the finished copies'
  indices on the host).

Two extension points serve robust training: a per-step *disturbance* (``step(action, disturbance=d)``, an
external force or torque each task adds to its dynamics, see :attr:`NativeVecEnv.DISTURBANCE_DOC`) and a
per-episode *parameter sampler* (:mod:`robustrl.envs.samplers`), called at every reset and autoreset.
Native envs survive ``copy.deepcopy`` and ``pickle``: the NumPy views of torch memory are rebuilt in the copy.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch

from robustrl.common.seeding import torch_generator
from robustrl.envs.base import ParamValue, StepResult, check_disturbance
from robustrl.envs.compiled import compiled_copy
from robustrl.envs.params import ParamSpec, check_range, validated_params
from robustrl.envs.samplers import ParamSampler, check_sampler, draw_params

_POOL_MIN_ROWS = 4096
"""Initial states drawn per refill of the CPU pool (at least ``num_envs``)."""


class NativeVecEnv:
    """Base of the native envs: batched state, parameters, time limit and same-step autoreset.

    Subclasses set the class variables and implement :meth:`_initial_state`, :meth:`_dynamics`,
    :meth:`_observe` and :meth:`_floor`; they may override :meth:`_derive` to cache quantities computed
    from the parameters.

    Args:
        num_envs: number of copies ``N`` stepped together.
        device: where every tensor lives.
        seed: seeds the env's ``torch.Generator`` (initial states); None draws fresh entropy.
        params: physical parameters, each a float or a tensor ``[N]``; missing ones take their default.
        dtype: dtype of the physical state and parameters (float64 matches Gymnasium's NumPy maths).
        validate_actions: check action values (NaN/inf, range); needs a device sync on CUDA.
        max_episode_steps: time limit (None keeps the Gymnasium registration's value).
        compile: fuse the physics and flags of a step with ``torch.compile`` (first step compiles: seconds
            to a minute; pays off for large ``num_envs``).
        param_sampler: draws parameters for each new episode (at construction, every ``reset()`` and every
            autoreset); see :meth:`set_param_sampler`.
    """

    ID: ClassVar[str]
    """The Gymnasium id this env reproduces."""
    PARAMS: ClassVar[dict[str, ParamSpec]]
    """Physical parameters, by Gymnasium attribute name."""
    STATE_DIM: ClassVar[int]
    """Width of the physical state."""
    MAX_EPISODE_STEPS: ClassVar[int]
    """Gymnasium's TimeLimit for this id."""
    NUMPY_KERNEL: ClassVar[bool] = False
    """Whether the subclass implements :meth:`_numpy_dynamics` (then the eager CPU path runs in NumPy)."""
    DISTURBANCE_SHAPE: ClassVar[tuple[int, ...] | None] = None
    """One copy's disturbance shape (None: the task takes no disturbance)."""
    DISTURBANCE_DOC: ClassVar[str] = ""
    """What a disturbance is, its unit and where it enters the dynamics."""
    _VIEWS: ClassVar[tuple[str, ...]] = ("_state_np", "_elapsed_np", "_pool_np", "_pool_obs_np", "_fused_fn")
    """Attributes that alias other ones' memory (or hold compiled code): rebuilt by a copy, never copied."""

    observation_space: gym.Space[Any]
    action_space: gym.Space[Any]
    disturbance_space: gym.spaces.Box | None

    def __init__(
        self,
        num_envs: int = 1,
        *,
        device: torch.device | str = "cpu",
        seed: int | None = None,
        params: Mapping[str, ParamValue] | None = None,
        dtype: torch.dtype = torch.float64,
        validate_actions: bool = True,
        max_episode_steps: int | None = None,
        compile: bool = False,
        param_sampler: ParamSampler | None = None,
    ) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
        steps = self.MAX_EPISODE_STEPS if max_episode_steps is None else max_episode_steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"max_episode_steps must be a positive int, got {max_episode_steps!r}")
        self.env_id: str = self.ID
        self.num_envs: int = num_envs
        self.device: torch.device = torch.device(device)
        self.dtype: torch.dtype = dtype
        self._limit: int = steps
        self.validate_actions: bool = validate_actions
        shape = self.DISTURBANCE_SHAPE
        self.disturbance_space = None if shape is None else gym.spaces.Box(-np.inf, np.inf, shape, np.float32)
        self._sampler: ParamSampler | None = None
        if param_sampler is not None:
            self._sampler = check_sampler(param_sampler, self.PARAMS, self.ID)
        self._gen: torch.Generator = torch_generator(seed, self.device)
        self._p: dict[str, torch.Tensor] = {
            name: torch.full((num_envs,), spec.default, dtype=dtype, device=self.device)
            for name, spec in self.PARAMS.items()
        }
        if params:
            self._p.update(self._validated_params(params))
        self._derive()
        space = self.action_space
        self._discrete_n: int | None = int(space.n) if isinstance(space, gym.spaces.Discrete) else None
        self._action_shape: tuple[int, ...] = (num_envs, *(() if space.shape is None else space.shape))
        # The pool of initial states: [STATE_DIM, rows] and their observations [rows, *obs_shape]. The fused
        # path needs N rows left before each step, hence at least 2N rows per refill on CPU.
        self._fused: bool = compile or self.device.type != "cpu"
        self._pool_rows: int = max(2 * num_envs, _POOL_MIN_ROWS) if self.device.type == "cpu" else num_envs
        self._pool: torch.Tensor = torch.empty(0)
        self._pool_obs: torch.Tensor = torch.empty(0)
        self._pool_pos: int = 0
        self._pool_pos_t: torch.Tensor = torch.zeros((), dtype=torch.int64, device=self.device)
        self._pool_np: np.ndarray = np.empty((0, 0))
        self._pool_obs_np: np.ndarray = np.empty(0)
        self._compile: bool = compile
        self._fused_fn: Callable[..., tuple[torch.Tensor, ...]] = self._make_fused_fn()
        self._elapsed = torch.zeros(num_envs, dtype=torch.int64, device=self.device)
        if self._sampler is not None:  # construction starts every copy's first episode
            self._resample(torch.arange(num_envs, device=self.device))
        self._state: torch.Tensor = self._draw_initial(num_envs)[0]
        self._pool_pos_t = torch.tensor(self._pool_pos, dtype=torch.int64, device=self.device)
        # The NumPy path's persistent buffers (CPU only): the state [D, N] and step counter [N] as tensors and
        # NumPy views of the same memory. `self._state`/`self._elapsed` are put back into them when replaced.
        self._numpy_path: bool = self.NUMPY_KERNEL and not self._fused
        if self._numpy_path:
            self._state = self._state.clone(memory_format=torch.contiguous_format)
        self._state_buf: torch.Tensor = self._state
        self._elapsed_buf: torch.Tensor = self._elapsed
        self._state_np: np.ndarray
        self._elapsed_np: np.ndarray
        self._bind_views()
        self._done_np: np.ndarray = np.empty(num_envs, dtype=np.bool_)

    def _make_fused_fn(self) -> Callable[..., tuple[torch.Tensor, ...]]:
        if not self._compile:
            return self._fused_step
        key = (type(self), self.num_envs, self.dtype, self.device, self._discrete_n)
        return functools.partial(compiled_copy(NativeVecEnv._fused_step, key), self)

    def _bind_views(self) -> None:
        """(Re)build the NumPy views of torch memory the NumPy path works on (after construction or a copy).

        A subclass with views of its own extends this (calling ``super()._bind_views()`` first).
        """
        cpu = self.device.type == "cpu"
        self._pool_np = self._pool.numpy() if cpu else np.empty((0, 0))
        self._pool_obs_np = self._pool_obs.numpy() if cpu else np.empty(0)
        self._state_np = self._state_buf.numpy() if self._numpy_path else np.empty(0)
        self._elapsed_np = self._elapsed_buf.numpy() if self._numpy_path else np.empty(0)

    def __getstate__(self) -> dict[str, Any]:
        """The state for ``copy.deepcopy`` and ``pickle``: everything but the views of :attr:`_VIEWS`."""
        views = {name for cls in type(self).__mro__ for name in cls.__dict__.get("_VIEWS", ())}
        return {k: v for k, v in self.__dict__.items() if k not in views}

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore a copy and rebuild its views on its own memory (never the original's)."""
        self.__dict__.update(state)
        self._fused_fn = self._make_fused_fn()
        self._bind_views()
        self._derive()

    # ------------------------------------------------------------------ subclass hooks
    def _initial_state(self, n: int) -> torch.Tensor:
        """Draw ``n`` initial states ``[STATE_DIM, n]`` (dtype ``self.dtype``) with :meth:`_uniform`."""
        raise NotImplementedError

    def _uniform(self, *shape: int) -> torch.Tensor:
        """Uniform [0, 1) samples of ``shape`` in ``self.dtype`` from the env's generator."""
        return torch.rand(shape, generator=self._gen, dtype=self.dtype, device=self.device)

    def _dynamics(
        self, state: torch.Tensor, action: torch.Tensor, disturbance: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        """One step of every copy: ``(next_state [D, N], reward [N] float32, terminated [N] bool)``.

        ``disturbance`` is ``[N, *DISTURBANCE_SHAPE]`` in ``self.dtype`` or None (then the result must be
        bit for bit the undisturbed one). Must not modify ``state`` in place and must return a fresh
        ``next_state``.
        """
        raise NotImplementedError

    def _observe(self, state: torch.Tensor) -> torch.Tensor:
        """Observation ``[n, *obs_shape]`` float32 (a fresh contiguous tensor) of states ``[D, n]``."""
        raise NotImplementedError

    def _numpy_dynamics(
        self, state: np.ndarray, action: np.ndarray, disturbance: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """NumPy form of :meth:`_dynamics` for the eager CPU path (only if ``NUMPY_KERNEL``).

        Args:
            state: ``[D, N]`` contiguous, to update in place to the next state (bit for bit as
                :meth:`_dynamics` computes it).
            action: ``[N]`` (Discrete) or ``[N, *shape]`` (Box), already checked.
            disturbance: ``[N, *DISTURBANCE_SHAPE]`` in the state's dtype, or None.

        Returns:
            ``(reward [N] float32, terminated [N] bool)``, fresh arrays (they are handed to the caller).
        """
        raise NotImplementedError

    def _numpy_observe(self, state: np.ndarray) -> np.ndarray:
        """Observation ``[N, *obs_shape]`` float32 of ``state [D, N]``, a fresh C-contiguous array."""
        return self._observe(torch.from_numpy(state)).numpy()

    def _floor(self) -> float:
        """The least return an episode can have under the current parameters and time limit."""
        raise NotImplementedError

    def _derive(self) -> None:
        """Cache quantities derived from ``self._p`` (called whenever parameters change)."""

    # ------------------------------------------------------------------ parameters
    @property
    def params(self) -> dict[str, torch.Tensor]:
        """Physical parameters: name → tensor ``[N]`` (a copy; change them with :meth:`set_params`)."""
        return {k: v.clone() for k, v in self._p.items()}

    def set_params(self, params: Mapping[str, ParamValue]) -> None:
        """Change physical parameters now, without resetting (a float applies to every copy).

        Raises:
            ValueError: unknown name, wrong shape, or a value outside the parameter's range.
        """
        self._p.update(self._validated_params(params))
        self._derive()

    @property
    def param_sampler(self) -> ParamSampler | None:
        """The sampler drawing parameters for each new episode (None: parameters persist)."""
        return self._sampler

    def set_param_sampler(self, sampler: ParamSampler | None) -> None:
        """Draw parameters per episode with ``sampler`` from each copy's next (auto)reset on; None stops.

        The sampler is called with the copies whose episode starts (every copy at :meth:`reset`, the
        finished ones at an autoreset, in copy order) and the env's generator, after ``reset(params=...)``
        (so a sampled name overrides an explicit value). While it is set, each step's
        ``info["final_params"]`` holds the sampled parameters that were in effect during the step (rows of
        finished copies: their finished episode's values), and a fused env steps on the eager torch path.
        Values outside a parameter's range raise a ValueError at the draw (at an autoreset, after the step's
        physics has run).

        Raises:
            ValueError: not a sampler, or a name that is not a parameter of this env (checked before any work).
        """
        new = None if sampler is None else check_sampler(sampler, self.PARAMS, self.ID)
        if self._fused and self.device.type == "cpu":
            # The fused CPU path tracks the pool position on a tensor, the eager path on the host.
            if self._sampler is None and new is not None:
                self._pool_pos = int(self._pool_pos_t)
            elif self._sampler is not None and new is None:
                self._pool_pos_t = torch.tensor(self._pool_pos, dtype=torch.int64, device=self.device)
        self._sampler = new

    def _resample(self, copies: torch.Tensor) -> None:
        """Draw the sampler's parameters for ``copies`` (int64 ``[K]``) and put them in (new tensors)."""
        assert self._sampler is not None
        values = draw_params(self._sampler, copies, self._gen, self.ID)
        new: dict[str, torch.Tensor] = {}
        for name, v in values.items():
            t = v.to(device=self.device, dtype=self.dtype)
            check_range(f"parameter {name!r} (from the param_sampler)", t, self.PARAMS[name])
            new[name] = self._p[name].index_copy(0, copies.to(self.device), t)
        self._p.update(new)
        self._derive()

    def _validated_params(self, params: Mapping[str, ParamValue]) -> dict[str, torch.Tensor]:
        return validated_params(params, self.PARAMS, self.ID, self.num_envs, self.dtype, self.device)

    @property
    def max_episode_steps(self) -> int | None:
        """Steps after which an episode is truncated (Gymnasium's TimeLimit, unless overridden)."""
        return self._limit

    @max_episode_steps.setter
    def max_episode_steps(self, steps: int | None) -> None:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"max_episode_steps must be a positive int, got {steps!r}")
        self._limit = steps

    @property
    def return_floor(self) -> float:
        """The least return an episode can have, known before any data (under the current parameters)."""
        return self._floor()

    # ------------------------------------------------------------------ state
    @property
    def state(self) -> torch.Tensor:
        """Physical state ``[N, STATE_DIM]`` in Gymnasium's ``env.unwrapped.state`` layout (a copy)."""
        return self._state.t().contiguous()

    @state.setter
    def state(self, value: torch.Tensor) -> None:
        t = torch.as_tensor(value)
        if t.shape != (self.num_envs, self.STATE_DIM):
            raise ValueError(f"state must have shape {(self.num_envs, self.STATE_DIM)}, got {tuple(t.shape)}")
        if not (t.is_floating_point() and bool(torch.isfinite(t).all())):
            raise ValueError("state must be a finite floating-point tensor")
        self._state = t.to(device=self.device, dtype=self.dtype).t().contiguous()

    @property
    def elapsed_steps(self) -> torch.Tensor:
        """Steps taken in each copy's current episode ``[N]`` int64 (a copy)."""
        return self._elapsed.clone()

    def observe(self) -> torch.Tensor:
        """The observation ``[N, *obs_shape]`` float32 of the current state (e.g. after setting ``state``)."""
        return self._observe(self._state)

    # ------------------------------------------------------------------ API
    def reset(
        self, *, seed: int | None = None, params: Mapping[str, ParamValue] | None = None
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Reset every copy: ``seed`` reseeds the env's generator, ``params`` updates parameters first.

        Returns:
            ``(obs [N, *obs_shape] float32, {})``.
        """
        cpu_fused = self._fused and self._sampler is None and self.device.type == "cpu"
        if cpu_fused:
            self._pool_pos = int(self._pool_pos_t)
        if seed is not None:
            self._gen.manual_seed(int(seed))
            self._pool_pos = self._pool.shape[-1]  # drop states drawn under the old seed
        if params:
            self.set_params(params)
        if self._sampler is not None:
            self._resample(torch.arange(self.num_envs, device=self.device))
        self._state, obs = self._draw_initial(self.num_envs)
        if cpu_fused:
            self._pool_pos_t = torch.tensor(self._pool_pos, dtype=torch.int64, device=self.device)
        self._elapsed.zero_()
        return obs.clone(), {}

    def _refill(self, rows: int) -> None:
        self._pool = self._initial_state(rows)
        self._pool_obs = self._observe(self._pool)
        self._pool_pos = 0
        if self.device.type == "cpu":  # NumPy views for the NumPy path
            self._pool_np = self._pool.numpy()
            self._pool_obs_np = self._pool_obs.numpy()

    def _take_pool_rows(self, k: int) -> int:
        """Reserve the next ``k`` pool rows (refilling the pool if needed); returns the first one's index."""
        if self._pool_pos + k > self._pool.shape[-1]:
            self._refill(max(k, self._pool_rows))
        i = self._pool_pos
        self._pool_pos = i + k
        return i

    def _draw_initial(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The next ``k`` initial states ``[D, k]`` and their observations ``[k, ...]`` from the pool."""
        i = self._take_pool_rows(k)
        return self._pool[:, i : i + k], self._pool_obs[i : i + k]

    def _fused_step(
        self,
        state: torch.Tensor,
        action: torch.Tensor,
        elapsed: torch.Tensor,
        pool: torch.Tensor,
        pos: torch.Tensor,
        disturbance: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, ...]:
        """A whole step without branches or syncs (what ``compile=True`` fuses and CUDA graphs capture).

        Finished copies take pool rows ``pos, pos + 1, ...`` in copy order, as the eager path does.
        """
        invalid = self._invalid_count(action)
        nxt, reward, terminated = self._dynamics(state, action, disturbance)
        elapsed = elapsed + 1
        truncated = elapsed >= self._limit
        done = terminated | truncated
        final_obs = self._observe(nxt)
        rank = torch.cumsum(done, 0)
        idx = (rank + (pos - 1)).clamp(min=0)
        nxt = torch.where(done, pool[:, idx], nxt)
        # Observing the mixed state costs less in a fused kernel than gathering pool observations.
        obs = self._observe(nxt)
        elapsed = elapsed.masked_fill(done, 0)
        return nxt, obs, reward, terminated, truncated, final_obs, elapsed, pos + rank[-1], invalid

    def _invalid_count(self, action: torch.Tensor) -> torch.Tensor:
        """How many action entries are out of range or non-finite (0-dim int64)."""
        if self._discrete_n is not None:
            return ((action < 0) | (action >= self._discrete_n)).sum()
        return (~torch.isfinite(action)).sum()

    def step(self, action: torch.Tensor, *, disturbance: torch.Tensor | None = None) -> StepResult:
        """Step every copy once; finished copies restart in the same step (see ``robustrl.envs.base``).

        Args:
            action: ``int64 [N]`` for Discrete action spaces, ``float [N, *shape]`` for Box ones.
            disturbance: ``float [N, *DISTURBANCE_SHAPE]`` on the env's device, an external force or torque
                acting during this step only (see the task's ``DISTURBANCE_DOC``); None (or zeros) leaves
                the dynamics bit for bit undisturbed. NaN/inf are rejected when ``validate_actions``.

        Returns:
            ``(obs, reward [N] float32, terminated [N] bool, truncated [N] bool, info)``: ``info["final_obs"]``
            (where no copy finished, possibly the very tensor returned as ``obs``) and, while a parameter
            sampler is set, ``info["final_params"]`` (name -> ``[N]``, the sampled parameters in effect during
            this step; read-only).

        Raises:
            ValueError: a bad action or disturbance (the env is left unchanged).
        """
        if disturbance is not None:
            disturbance = self._checked_disturbance(disturbance)
        if self._fused and self._sampler is None:
            self._check_action(action, values=False)
            return self._step_fused(action, disturbance)
        if self._numpy_path:
            return self._step_numpy(action, disturbance)
        self._check_action(action, values=self.validate_actions)
        state, reward, terminated = self._dynamics(self._state, action, disturbance)
        elapsed = self._elapsed + 1
        truncated = elapsed >= self._limit
        done = terminated | truncated
        final_obs = self._observe(state)
        obs = final_obs
        idx = done.nonzero().view(-1)
        k = idx.numel()
        info: dict[str, Any] = {"final_obs": final_obs}
        if self._sampler is not None:
            info["final_params"] = {name: self._p[name] for name in self._sampler.names}
        if k:
            if self._sampler is not None:
                self._resample(idx)
            init, init_obs = self._draw_initial(k)
            state.index_copy_(1, idx, init)
            obs = final_obs.clone().index_copy_(0, idx, init_obs)
            elapsed.index_fill_(0, idx, 0)
        self._state = state
        self._elapsed = elapsed
        return obs, reward, terminated, truncated, info

    def _checked_disturbance(self, disturbance: torch.Tensor) -> torch.Tensor:
        """The disturbance checked and cast to the state's dtype (the env's device, never moved there)."""
        d = check_disturbance(disturbance, self.disturbance_space, self.num_envs, self.ID, values=self.validate_actions)
        if d.device != self.device:
            raise ValueError(f"{self.ID}: disturbance is on {d.device}, the env on {self.device}")
        return d.detach().to(self.dtype)

    def _step_numpy(self, action: torch.Tensor, disturbance: torch.Tensor | None = None) -> StepResult:
        """The eager CPU step with the subclass's NumPy kernel, in place on persistent buffers."""
        self._check_action(action, values=False)
        a = (action.detach() if action.requires_grad else action).numpy()
        if self.validate_actions and _numpy_invalid(a, self._discrete_n):
            self._raise_invalid(action)
        if self._state is not self._state_buf:  # after reset(), a state assignment or a fused step
            self._state_buf.copy_(self._state)
            self._state = self._state_buf
        if self._elapsed is not self._elapsed_buf:
            self._elapsed_buf.copy_(self._elapsed)
            self._elapsed = self._elapsed_buf
        state = self._state_np
        if disturbance is None:
            reward, terminated = self._numpy_dynamics(state, a)
        else:
            reward, terminated = self._numpy_dynamics(state, a, disturbance.numpy())
        elapsed = self._elapsed_np
        elapsed += 1
        truncated = elapsed >= self._limit
        done = np.logical_or(terminated, truncated, out=self._done_np)
        final_obs = self._numpy_observe(state)
        obs = final_obs
        k = int(np.count_nonzero(done))
        final_params = None if self._sampler is None else {name: self._p[name] for name in self._sampler.names}
        if k:
            idx = done.nonzero()[0]
            if self._sampler is not None:
                self._resample(torch.from_numpy(idx))
            i = self._take_pool_rows(k)
            state[:, idx] = self._pool_np[:, i : i + k]
            obs = final_obs.copy()
            obs[idx] = self._pool_obs_np[i : i + k]
            elapsed[idx] = 0
        final_t = torch.from_numpy(final_obs)
        obs_t = final_t if obs is final_obs else torch.from_numpy(obs)
        info: dict[str, Any] = {"final_obs": final_t}
        if final_params is not None:
            info["final_params"] = final_params
        return obs_t, torch.from_numpy(reward), torch.from_numpy(terminated), torch.from_numpy(truncated), info

    def _step_fused(self, action: torch.Tensor, disturbance: torch.Tensor | None = None) -> StepResult:
        n = self.num_envs
        if self.device.type == "cpu":
            # Make sure N more rows are left; the exact position is read (a sync) only near the end.
            if self._pool_pos + n > self._pool.shape[-1]:
                pos = int(self._pool_pos_t)
                if pos + n > self._pool.shape[-1]:
                    self._refill(max(n, self._pool_rows))
                    pos = 0
                    self._pool_pos_t = torch.zeros((), dtype=torch.int64, device=self.device)
                self._pool_pos = pos
            pool, pos_t = self._pool, self._pool_pos_t
        else:  # a fresh draw per step: nothing to track on the host
            pool = self._initial_state(n)
            pos_t = torch.zeros((), dtype=torch.int64, device=self.device)
        state, obs, reward, terminated, truncated, final_obs, elapsed, new_pos, invalid = self._fused_fn(
            self._state, action, self._elapsed, pool, pos_t, disturbance
        )
        if self.validate_actions and int(invalid):
            self._raise_invalid(action)
        self._state, self._elapsed = state, elapsed
        if self.device.type == "cpu":
            self._pool_pos_t = new_pos
            self._pool_pos += n  # an upper bound of the position
        return obs, reward, terminated, truncated, {"final_obs": final_obs}

    def close(self) -> None:
        """Nothing to release for a native env."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.ID}, num_envs={self.num_envs}, device={self.device})"

    # ------------------------------------------------------------------ checks
    def _check_action(self, action: torch.Tensor, *, values: bool) -> None:
        """Shape/dtype/device checks (free); with ``values`` also range and NaN/inf checks (a sync)."""
        if not isinstance(action, torch.Tensor):
            raise ValueError(f"action must be a torch.Tensor, got {type(action).__name__}")
        if action.shape != self._action_shape:
            raise ValueError(f"action must have shape {self._action_shape}, got {tuple(action.shape)}")
        if action.device != self.device:
            raise ValueError(f"action is on {action.device}, the env on {self.device}")
        n = self._discrete_n
        if n is not None:
            if action.dtype != torch.int64:
                raise ValueError(f"action must be int64 for a Discrete space, got {action.dtype}")
            if values:
                lo, hi = torch.aminmax(action)
                if int(lo) < 0 or int(hi) >= n:
                    self._raise_invalid(action)
            return
        if not action.is_floating_point():
            raise ValueError(f"action must be a floating-point tensor for a Box space, got {action.dtype}")
        # A finite sum proves every entry finite (one reduction); otherwise check properly.
        if values and not math.isfinite(float(action.sum())) and not bool(torch.isfinite(action).all()):
            self._raise_invalid(action)

    def _raise_invalid(self, action: torch.Tensor) -> None:
        if self._discrete_n is not None:
            raise ValueError(f"action values must lie in [0, {self._discrete_n}), got {action.tolist()}")
        raise ValueError("action contains NaN or inf")


def _numpy_invalid(action: np.ndarray, discrete_n: int | None) -> bool:
    """Whether some action entry is out of ``[0, discrete_n)`` (Discrete) or non-finite (Box); one reduction."""
    if discrete_n is not None:
        # Negative int64 values read as uint64 are >= 2**63, so one max checks both ends.
        return action.size > 0 and int(action.view(np.uint64).max()) >= discrete_n
    return not np.isfinite(action.sum()) and not bool(np.isfinite(action).all())
