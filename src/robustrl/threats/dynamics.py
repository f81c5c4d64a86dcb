"""Static dynamics shifts: grids over 1–3 physical parameters, one setting per episode (RRLS-style).

A grid is a tuple of :class:`ParamAxis` (a parameter name and its values). Evaluation runs one env whose
copies cover every grid point: copy ``c`` gets grid point ``c // m`` (``m`` copies per point, points in
C order over the axes; evaluation uses one copy per episode), set through the env's per-copy parameter
tensors; see
:func:`robustrl.evaluate.evaluate_dynamics`. Parameter names are the env's (``length``, ``force_mag`` for
CartPole; ``mass_scale``, ``friction_scale`` for adapter MuJoCo envs; see ``robustrl envs``).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

MAX_AXES = 3
"""A grid has 1 to 3 axes."""


@dataclass(frozen=True)
class ParamAxis:
    """One axis of a dynamics grid."""

    name: str
    """The env's physical parameter (``length``, ``mass_scale``...)."""
    values: tuple[float, ...]
    """Values along the axis, in order."""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"parameter name must be a non-empty string, got {self.name!r}")
        if len(self.values) == 0:
            raise ValueError(f"parameter {self.name!r} needs at least one value")
        if not all(isinstance(v, int | float) and math.isfinite(v) for v in self.values):
            raise ValueError(f"parameter {self.name!r} values must be finite numbers, got {self.values}")


_AXIS = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*=\s*(.+?)\s*$")


def parse_param_axis(text: str) -> ParamAxis:
    """Parse ``NAME=LOW:HIGH:COUNT`` (evenly spaced, ends included) or ``NAME=V1,V2,...``.

    Example:
        >>> parse_param_axis("length=0.25:1.0:4")
        ParamAxis(name='length', values=(0.25, 0.5, 0.75, 1.0))
        >>> parse_param_axis("force_mag=5,10").values
        (5.0, 10.0)
    """
    m = _AXIS.match(text) if isinstance(text, str) else None
    if m is None:
        raise ValueError(f"bad parameter axis {text!r}: expected NAME=LOW:HIGH:COUNT or NAME=V1,V2,...")
    name, spec = m.group(1), m.group(2)
    try:
        if ":" in spec:
            parts = spec.split(":")
            if len(parts) != 3:
                raise ValueError("expected LOW:HIGH:COUNT")
            low, high, count = float(parts[0]), float(parts[1]), int(parts[2])
            if count < 1:
                raise ValueError("COUNT must be ≥ 1")
            values = tuple(float(v) for v in np.linspace(low, high, count)) if count > 1 else (low,)
        else:
            values = tuple(float(v) for v in spec.split(","))
    except ValueError as err:
        raise ValueError(f"bad parameter axis {text!r}: {err}") from err
    return ParamAxis(name, values)


def make_grid(axes: Sequence[ParamAxis | str] | Mapping[str, Sequence[float]]) -> tuple[ParamAxis, ...]:
    """Validate a grid given as axes, ``"NAME=..."`` strings or a mapping ``name -> values``.

    Raises:
        ValueError: no axis, more than three, a repeated name, or bad values.
    """
    if isinstance(axes, Mapping):
        out = tuple(ParamAxis(str(k), tuple(float(v) for v in vals)) for k, vals in axes.items())
    else:
        out = tuple(a if isinstance(a, ParamAxis) else parse_param_axis(a) for a in axes)
    if not 1 <= len(out) <= MAX_AXES:
        raise ValueError(f"a dynamics grid needs 1 to {MAX_AXES} parameters, got {len(out)}")
    names = [a.name for a in out]
    if len(set(names)) != len(names):
        raise ValueError(f"repeated parameter in the grid: {names}")
    return out


def grid_shape(axes: Sequence[ParamAxis]) -> tuple[int, ...]:
    """The grid's shape: the number of values per axis."""
    return tuple(len(a.values) for a in axes)


def grid_points(axes: Sequence[ParamAxis]) -> list[dict[str, float]]:
    """Every grid point as ``{name: value}``, in C order (last axis fastest)."""
    return [dict(zip([a.name for a in axes], combo)) for combo in itertools.product(*(a.values for a in axes))]


def grid_param_tensors(
    axes: Sequence[ParamAxis], copies_per_point: int, *, device: torch.device | str = "cpu"
) -> dict[str, torch.Tensor]:
    """Per-copy parameter tensors ``[G · m]``: copy ``c`` holds grid point ``c // m`` (C order).

    Example:
        >>> t = grid_param_tensors((ParamAxis("a", (1.0, 2.0)), ParamAxis("b", (5.0, 6.0, 7.0))), 2)
        >>> t["a"].tolist()[:6], t["b"].tolist()[:6]
        ([1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [5.0, 5.0, 6.0, 6.0, 7.0, 7.0])
    """
    if copies_per_point < 1:
        raise ValueError(f"copies_per_point must be ≥ 1, got {copies_per_point}")
    points = grid_points(axes)
    return {
        a.name: torch.tensor(
            [p[a.name] for p in points], dtype=torch.float64, device=torch.device(device)
        ).repeat_interleave(copies_per_point)
        for a in axes
    }
