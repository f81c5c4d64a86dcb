"""One Gymnasium env's physical parameters and external forces, set through ``set_attr``.

:class:`PhysicalParams` wraps each sub-env of :class:`robustrl.envs.adapter.GymnasiumVecEnv`: MuJoCo
``mass_scale`` / ``friction_scale`` relative to the nominal model, ``<body>_mass`` and ``world_friction``
(absolute), attributes of the unwrapped env for other ids, parameters pending until the next reset, and
forces/torques written into ``data.xfrc_applied`` for one step (see the adapter's module docstring).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

MUJOCO_SCALES = ("mass_scale", "friction_scale")
"""Parameters of every MuJoCo env: multipliers of the nominal body masses and geom frictions."""
WORLD_FRICTION = "world_friction"
"""MuJoCo parameter: sliding friction of the geoms on the world body (the floor), absolute."""
BODY_MASS_SUFFIX = "_mass"
"""MuJoCo parameter ``<body>_mass``: the absolute mass (kg) of a named body."""


class PhysicalParams(gym.Wrapper[Any, Any, Any, Any]):
    """One Gymnasium env's robustrl hooks, driven through ``set_attr``: parameters, pending ones, forces.

    ``robustrl_params`` applies parameters now; ``robustrl_pending_params`` stores parameters applied at the
    env's next reset (before it resets); ``robustrl_disturbance`` an external force ``[B, 6]`` on the bodies
    named by ``robustrl_disturbance_bodies``, for the next step only. Nominal MuJoCo masses and frictions
    are stored when the wrapper is built, so scales are always relative to the registration's model, never
    compounded.
    """

    def __init__(self, env: gym.Env[Any, Any]) -> None:
        super().__init__(env)
        model = getattr(env.unwrapped, "model", None)
        self._nominal: dict[str, np.ndarray] = {}
        self._bodies: dict[str, int] = {}
        self._world_geoms: np.ndarray = np.empty(0, dtype=np.int64)
        self._scale: dict[str, float] = dict.fromkeys(MUJOCO_SCALES, 1.0)
        self._body_mass: np.ndarray = np.empty(0)
        self._world_friction: float | None = None
        self._pending: dict[str, float] = {}
        self._force_ids: np.ndarray = np.empty(0, dtype=np.int64)
        self._force: np.ndarray | None = None
        if model is not None and hasattr(model, "body_mass") and hasattr(model, "geom_friction"):
            self._nominal = {
                "mass_scale": np.array(model.body_mass, copy=True),
                "friction_scale": np.array(model.geom_friction, copy=True),
            }
            self._body_mass = np.array(model.body_mass, copy=True)
            names = (model.body(i).name for i in range(1, model.nbody))  # 0 is the world body
            self._bodies = {name: i for i, name in enumerate(names, start=1) if name}
            self._world_geoms = np.flatnonzero(np.asarray(model.geom_bodyid) == 0)

    @property
    def robustrl_param_defaults(self) -> dict[str, float]:
        """Parameters this env always has, with their defaults (MuJoCo: scales, floor friction, body masses)."""
        if not self._nominal:
            return {}
        out = dict.fromkeys(MUJOCO_SCALES, 1.0)
        if self._world_geoms.size:
            out[WORLD_FRICTION] = float(self._nominal["friction_scale"][self._world_geoms[0], 0])
        out.update({name + BODY_MASS_SUFFIX: float(self._nominal["mass_scale"][i]) for name, i in self._bodies.items()})
        return out

    @property
    def robustrl_body_names(self) -> list[str]:
        """Named bodies of a MuJoCo model, world body excluded (empty for other envs)."""
        return list(self._bodies)

    @property
    def robustrl_param_names(self) -> list[str]:
        """Names :attr:`robustrl_params` accepts: the MuJoCo ones and the env's numeric attributes."""
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
        mujoco = False
        for name, value in values.items():
            if name in MUJOCO_SCALES or name == WORLD_FRICTION or self._body_id(name) is not None:
                if not self._nominal:
                    raise ValueError(f"parameter {name!r} needs a MuJoCo env")
                if name in MUJOCO_SCALES:
                    self._scale[name] = float(value)
                elif name == WORLD_FRICTION:
                    self._world_friction = float(value)
                else:
                    self._body_mass[self._body_id(name)] = float(value)
                mujoco = True
                continue
            current = getattr(base, name, None)
            if isinstance(current, bool) or not isinstance(current, int | float | np.number):
                raise ValueError(f"unknown parameter {name!r}: not a numeric attribute of {type(base).__name__}")
            setattr(base, name, type(current)(value) if isinstance(current, float) else float(value))
        if mujoco:
            self._apply_mujoco()
        # CartPole derives these in __init__; keep them consistent with the new masses/length.
        if hasattr(base, "polemass_length") and hasattr(base, "total_mass"):
            base.total_mass = base.masspole + base.masscart  # type: ignore[attr-defined]
            base.polemass_length = base.masspole * base.length  # type: ignore[attr-defined]

    def _body_id(self, name: str) -> int | None:
        if not name.endswith(BODY_MASS_SUFFIX):
            return None
        return self._bodies.get(name[: -len(BODY_MASS_SUFFIX)])

    def _apply_mujoco(self) -> None:
        """Write ``<body>_mass · mass_scale`` and ``nominal friction · friction_scale`` into the model."""
        model = self.env.unwrapped.model  # type: ignore[attr-defined]
        model.body_mass[...] = self._body_mass * self._scale["mass_scale"]
        friction = self._nominal["friction_scale"] * self._scale["friction_scale"]
        if self._world_friction is not None:
            friction[self._world_geoms, 0] = self._world_friction * self._scale["friction_scale"]
        model.geom_friction[...] = friction

    @property
    def robustrl_pending_params(self) -> dict[str, float]:
        """Parameters applied at the next reset (a copy); assigning replaces them, None keeps them."""
        return dict(self._pending)

    @robustrl_pending_params.setter
    def robustrl_pending_params(self, values: Mapping[str, float] | None) -> None:
        if values is not None:
            self._pending = dict(values)

    @property
    def robustrl_disturbance_bodies(self) -> list[str]:
        """Bodies that :attr:`robustrl_disturbance` pushes, in its row order."""
        ids = set(self._force_ids.tolist())
        return [name for name, i in self._bodies.items() if i in ids]

    @robustrl_disturbance_bodies.setter
    def robustrl_disturbance_bodies(self, names: Sequence[str]) -> None:
        self._force_ids = np.array([self._bodies[n] for n in names], dtype=np.int64)

    @property
    def robustrl_disturbance(self) -> np.ndarray | None:
        """The force ``[B, 6]`` (force xyz, torque xyz) for the next step only (None: none)."""
        return self._force

    @robustrl_disturbance.setter
    def robustrl_disturbance(self, force: np.ndarray | None) -> None:
        self._force = None if force is None else np.asarray(force, dtype=np.float64)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Apply the pending parameters (if any), then reset the env."""
        if self._pending:
            pending, self._pending = self._pending, {}
            self.robustrl_params = pending
        return self.env.reset(seed=seed, options=options)

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        """Step the env, under the disturbance set for this step if there is one (zeroed afterwards)."""
        force = self._force
        if force is None:
            return self.env.step(action)
        self._force = None
        xfrc = self.env.unwrapped.data.xfrc_applied  # type: ignore[attr-defined]
        xfrc[self._force_ids] = force
        try:
            return self.env.step(action)
        finally:
            xfrc[self._force_ids] = 0.0


@functools.cache
def mujoco_param_defaults(env_id: str) -> dict[str, float]:
    """A MuJoCo id's parameters with their defaults, read from its model (the scales alone if it fails).

    Listing is silent: Python warnings (deprecated ids) and MuJoCo's own (which it would also append to a
    ``MUJOCO_LOG.TXT`` in the working directory) are muted while the model loads, then restored.
    """
    try:
        import mujoco

        previous = mujoco.get_mju_user_warning()
        mujoco.set_mju_user_warning(lambda message: None)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                env = PhysicalParams(gym.make(env_id))
        finally:
            mujoco.set_mju_user_warning(previous)
    except Exception:  # a missing or incompatible mujoco: the scales apply to any model
        return dict.fromkeys(MUJOCO_SCALES, 1.0)
    try:
        return env.robustrl_param_defaults
    finally:
        env.close()
