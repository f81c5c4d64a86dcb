"""Named, versioned uncertainty sets: boxes of physical parameters with a nominal point and a force set.

An :class:`UncertaintySet` is data only: the env it belongs to, 1–3 parameter intervals (names are the
env's parameters, see ``robustrl envs``), the env's nominal values of those parameters, and the *force set*
a RARL/QARL adversary acts in (the bodies it pushes and the bound on each force component). Everything
else is derived: the evaluation grid (:meth:`UncertaintySet.grid`, 10 points per dimension by default as
RRLS), the uniform sampler of domain randomisation (:meth:`UncertaintySet.sampler`), and the maps between the
box and the unit cube that IWOCS's search uses.

The MuJoCo sets are those of M2TD3 (Tanabe et al., NeurIPS 2022, Table 4 of the appendix), as packaged by
RRLS (Zouitine et al. 2024, ``rrls/envs/*.py``, the ``*ParamsBound`` enums) and used by IWOCS (Zouitine et
al. 2024, "Solving robust MDPs as a sequence of static RL problems"). The bounds below were checked against
RRLS's ``ONE_DIM``/``TWO_DIM``/``THREE_DIM`` tables (Hopper, HalfCheetah, Walker2d, Ant, HumanoidStandup,
InvertedPendulum). Where they could not be verified:

* HalfCheetah 1D: the RRLS revision read gives world friction ``[0.1, 3.0]`` for 1D while 2D/3D use
  ``[0.1, 4.0]``; we keep RRLS's 1D value as read.
* The RARL force sets: only Hopper's (foot, ``x``/``y`` force in ``[-3, 3]``, RRLS ``HopperParamsBound.RARL``)
  was read in the reference code; the others (torso and feet/legs at ±3 N, the pole at ±3 N) follow the RARL
  paper's choice of bodies (Pinto et al., ICML 2017) with RRLS's Hopper bound, and are marked
  ``verified=False``.
* ``world_friction``: RRLS sets the sliding friction of geom 0 (the floor) for Hopper/Walker2d but of every
  geom for HalfCheetah; robustrl's ``world_friction`` is always the floor's (geoms on the world body).

Nominal values are the Gymnasium v5 models' own (read from ``model.body_mass`` / ``geom_friction``); a
nominal point may lie outside its set (Hopper's torso is 3.67 kg, its set ends at 3.0 kg, as in M2TD3).
The classic-control sets are robustrl's own (version 1), on the native envs' parameters.

Example:
    >>> s = uncertainty_set("hopper-2d-v1")
    >>> s.env_id, s.names, s.grid(3)["world_friction"]
    ('Hopper-v5', ('world_friction', 'torso_mass'), (0.1, 1.55, 3.0))
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from robustrl.envs.base import suggest_ids
from robustrl.envs.samplers import UniformParamSampler

__all__ = [
    "DEFAULT_POINTS",
    "UNCERTAINTY_SETS",
    "ForceSet",
    "SetAxis",
    "UncertaintySet",
    "uncertainty_set",
]

DEFAULT_POINTS = 10
"""Grid points per dimension of an uncertainty-set evaluation (RRLS's default)."""


@dataclass(frozen=True)
class SetAxis:
    """One interval of an uncertainty set."""

    name: str
    """The env's physical parameter (``torso_mass``, ``length``...)."""
    low: float
    """Lowest value (inclusive)."""
    high: float
    """Highest value (inclusive)."""
    nominal: float
    """The env's own value of the parameter (may lie outside ``[low, high]``)."""

    def __post_init__(self) -> None:
        vals = (self.low, self.high, self.nominal)
        if not self.name or not all(isinstance(v, float | int) and math.isfinite(v) for v in vals):
            raise ValueError(f"axis {self.name!r} needs a name and finite low, high, nominal, got {vals}")
        if not self.low < self.high:
            raise ValueError(f"axis {self.name!r} needs low < high, got ({self.low}, {self.high})")


@dataclass(frozen=True)
class ForceSet:
    """Where a RARL/QARL force adversary acts and how hard it may push."""

    bodies: tuple[str, ...]
    """MuJoCo bodies pushed (rows of the adapter's disturbance); empty for a native env's own disturbance
    (CartPole: the horizontal force on the cart; Pendulum: a torque at the pivot)."""
    components: tuple[int, ...]
    """Which of a MuJoCo body's 6 wrench components the adversary sets (0, 1, 2: force x, y, z); ``(0,)``
    for a native env's one-dimensional disturbance."""
    bound: float
    """Each component in ``[-bound, bound]`` (N, or N·m for a torque)."""
    verified: bool = True
    """Whether the bodies and bound were checked against the reference code (see the module docstring)."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.bound) and self.bound > 0):
            raise ValueError(f"force bound must be finite and > 0, got {self.bound}")
        if not self.components:
            raise ValueError("a force set needs at least one component")

    @property
    def dim(self) -> int:
        """The adversary's action dimension: bodies × components (components alone for a native env)."""
        return max(1, len(self.bodies)) * len(self.components)


@dataclass(frozen=True)
class UncertaintySet:
    """A named box of physical parameters of one env, with its nominal point and its RARL force set."""

    name: str
    """``<env>-<d>d-v<version>`` (``hopper-2d-v1``)."""
    version: int
    """Bumped whenever a bound changes; saved with every result."""
    env_id: str
    """The env the parameters belong to."""
    axes: tuple[SetAxis, ...]
    """1 to 3 intervals."""
    force: ForceSet
    """The RARL/QARL adversary's force set."""
    source: str
    """Where the bounds come from."""

    def __post_init__(self) -> None:
        if not 1 <= len(self.axes) <= 3:
            raise ValueError(f"set {self.name!r} needs 1 to 3 axes, got {len(self.axes)}")
        names = [a.name for a in self.axes]
        if len(set(names)) != len(names):
            raise ValueError(f"set {self.name!r} repeats a parameter: {names}")

    @property
    def names(self) -> tuple[str, ...]:
        """The parameters, in order."""
        return tuple(a.name for a in self.axes)

    @property
    def low(self) -> np.ndarray:
        """``float64 [d]`` lower bounds."""
        return np.array([a.low for a in self.axes])

    @property
    def high(self) -> np.ndarray:
        """``float64 [d]`` upper bounds."""
        return np.array([a.high for a in self.axes])

    @property
    def nominal(self) -> dict[str, float]:
        """The env's own values of the set's parameters."""
        return {a.name: a.nominal for a in self.axes}

    def grid(self, points: int = DEFAULT_POINTS) -> dict[str, tuple[float, ...]]:
        """``points`` evenly spaced values per axis, both ends included (``name -> values``).

        Example:
            >>> uncertainty_set("cartpole-2d-v1").grid(2)
            {'length': (0.25, 2.5), 'masspole': (0.05, 1.0)}
        """
        if isinstance(points, bool) or not isinstance(points, int) or points < 2:
            raise ValueError(f"points per dimension must be an integer >= 2, got {points!r}")
        return {a.name: tuple(float(v) for v in np.linspace(a.low, a.high, points)) for a in self.axes}

    def sampler(self) -> UniformParamSampler:
        """Uniform over the box at every episode start (domain randomisation)."""
        return UniformParamSampler({a.name: (a.low, a.high) for a in self.axes})

    def from_unit(self, u: np.ndarray) -> dict[str, float]:
        """The point at ``u ∈ [0, 1]^d`` (clipped into the cube): ``low + u · (high − low)``."""
        u = np.clip(np.asarray(u, dtype=np.float64).reshape(len(self.axes)), 0.0, 1.0)
        return {a.name: float(a.low + ui * (a.high - a.low)) for a, ui in zip(self.axes, u)}

    def to_unit(self, point: dict[str, float]) -> np.ndarray:
        """``float64 [d]``: the point's coordinates in the unit cube (inverse of :meth:`from_unit`)."""
        return np.array([(point[a.name] - a.low) / (a.high - a.low) for a in self.axes])

    def check_point(self, point: dict[str, float], what: str = "point") -> None:
        """Raise ValueError naming ``what`` unless ``point`` sets exactly the set's parameters, inside the box."""
        if sorted(point) != sorted(self.names):
            raise ValueError(f"{what} must set exactly {list(self.names)}, got {sorted(point)}")
        for a in self.axes:
            v = point[a.name]
            if not (math.isfinite(v) and a.low <= v <= a.high):
                raise ValueError(f"{what}: {a.name}={v} lies outside [{a.low}, {a.high}] of {self.name}")


_M2TD3 = "M2TD3 (Tanabe et al. 2022) via RRLS rrls/envs"
_ROBUSTRL = "robustrl v1 (classic control)"


def _mujoco(env: str, short: str, axes: list[tuple[str, float, float, float]], force: ForceSet) -> list[UncertaintySet]:
    """The 1D, 2D (and 3D) sets of one MuJoCo env: the first d axes of ``axes``."""
    return [
        UncertaintySet(f"{short}-{d}d-v1", 1, env, tuple(SetAxis(*a) for a in axes[:d]), force, _M2TD3)
        for d in range(1, len(axes) + 1)
    ]


def _unverified(bodies: tuple[str, ...]) -> ForceSet:
    return ForceSet(bodies, (0, 1), 3.0, verified=False)


_SETS: list[UncertaintySet] = [
    *_mujoco("Hopper-v5", "hopper", [
        ("world_friction", 0.1, 3.0, 1.0), ("torso_mass", 0.1, 3.0, 3.6651914291880923),
        ("thigh_mass", 0.1, 4.0, 4.057890510886818),
    ], ForceSet(("foot",), (0, 1), 3.0)),
    *_mujoco("Walker2d-v5", "walker2d", [
        ("world_friction", 0.1, 4.0, 0.7), ("torso_mass", 0.1, 5.0, 3.6651914291880923),
        ("thigh_mass", 0.1, 6.0, 4.057890510886818),
    ], _unverified(("foot", "foot_left"))),
    *_mujoco("Ant-v5", "ant", [
        ("torso_mass", 0.1, 3.0, 0.32724923474893675), ("front_left_leg_mass", 0.01, 3.0, 0.03915775372846671),
        ("front_right_leg_mass", 0.01, 3.0, 0.03915775372846671),
    ], _unverified(("torso",))),
    *_mujoco("HumanoidStandup-v5", "humanoidstandup", [
        ("torso_mass", 0.1, 16.0, 8.907462370478262), ("right_foot_mass", 0.1, 8.0, 1.7671458676442586),
        ("left_thigh_mass", 0.1, 5.0, 4.751750928806242),
    ], _unverified(("torso",))),
    *_mujoco("InvertedPendulum-v5", "invertedpendulum", [
        ("pole_mass", 1.0, 31.0, 5.018591641363306), ("cart_mass", 1.0, 11.0, 10.47197551196598),
    ], _unverified(("pole",))),
    # HalfCheetah's 1D friction range differs from its 2D/3D one in RRLS (see the module docstring)
    UncertaintySet("halfcheetah-1d-v1", 1, "HalfCheetah-v5", (SetAxis("world_friction", 0.1, 3.0, 0.4),),
                   _unverified(("torso", "bfoot", "ffoot")), _M2TD3),
    *_mujoco("HalfCheetah-v5", "halfcheetah", [
        ("world_friction", 0.1, 4.0, 0.4), ("torso_mass", 0.1, 7.0, 6.25020920502092),
        ("bthigh_mass", 0.1, 3.0, 1.5435146443514645),
    ], _unverified(("torso", "bfoot", "ffoot")))[1:],
    *[
        UncertaintySet(f"cartpole-{d}d-v1", 1, "CartPole-v1", axes[:d], ForceSet((), (0,), 3.0), _ROBUSTRL)
        for axes in [(SetAxis("length", 0.25, 2.5, 0.5), SetAxis("masspole", 0.05, 1.0, 0.1),
                      SetAxis("force_mag", 3.0, 20.0, 10.0))]
        for d in (1, 2, 3)
    ],
    *[
        UncertaintySet(f"pendulum-{d}d-v1", 1, "Pendulum-v1", axes[:d], ForceSet((), (0,), 0.5), _ROBUSTRL)
        for axes in [(SetAxis("m", 0.5, 2.0, 1.0), SetAxis("l", 0.5, 1.5, 1.0), SetAxis("g", 5.0, 15.0, 10.0))]
        for d in (1, 2, 3)
    ],
]

UNCERTAINTY_SETS: dict[str, UncertaintySet] = {s.name: s for s in _SETS}
"""Every named set, by name."""


def uncertainty_set(name: str) -> UncertaintySet:
    """The set called ``name``; a ValueError names close matches.

    Example:
        >>> uncertainty_set("halfcheetah-2d-v1").high.tolist()
        [4.0, 7.0]
    """
    found = UNCERTAINTY_SETS.get(name) if isinstance(name, str) else None
    if found is None:
        hint = suggest_ids(str(name), UNCERTAINTY_SETS)
        raise ValueError(f"unknown uncertainty set {name!r}{hint} (sets: {', '.join(sorted(UNCERTAINTY_SETS))})")
    return found
