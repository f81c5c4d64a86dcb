"""Per-episode parameter samplers: domain randomisation and uncertainty sets drawn at every (auto)reset.

A :class:`ParamSampler` is called by an env with the copies whose episode starts (every copy at
``reset()``, the finished ones at an autoreset) and the env's own ``torch.Generator``; it returns one new
value per copy for each parameter it draws. The values hold for that copy's whole next episode. Set one with
``make_env(..., param_sampler=s)`` or ``env.set_param_sampler(s)`` (``None`` stops sampling; parameters keep
their last values).

Example:
    >>> import torch
    >>> from robustrl.envs import make_env
    >>> sampler = UniformParamSampler({"length": (0.4, 0.6)})
    >>> env = make_env("CartPole-v1", 3, seed=0, param_sampler=sampler)
    >>> _ = env.reset()
    >>> bool(((env.params["length"] >= 0.4) & (env.params["length"] <= 0.6)).all())
    True
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch

from robustrl.envs.base import suggest_ids


@runtime_checkable
class ParamSampler(Protocol):
    """Draws physical parameters for the copies whose episode starts."""

    @property
    def names(self) -> tuple[str, ...]:
        """The parameters it draws (checked against the env's parameters when it is set)."""
        ...

    def __call__(self, copies: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """New values for ``copies``.

        Args:
            copies: ``int64 [K]``, indices of the copies whose next episode starts, in increasing order.
            generator: the env's generator (on the env's device for native envs, CPU for the adapter); the
                only source of randomness, so the same seed gives the same sequence of parameters.

        Returns:
            ``name -> tensor [K]`` (float) for every name in :attr:`names`, on ``generator.device``.
        """
        ...


def _finite(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"parameter {name!r}: expected a number, got {type(value).__name__}")
    if not math.isfinite(float(value)):
        raise ValueError(f"parameter {name!r} must be finite, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class UniformParamSampler:
    """Each parameter independently uniform on ``[low, high]`` per episode (domain randomisation).

    Tobin et al. (2017), "Domain randomization for transferring deep neural networks from simulation to the
    real world"; the uniform boxes of M2TD3 / RRLS uncertainty sets.

    Example:
        >>> s = UniformParamSampler({"masspole": (0.05, 0.5), "length": (0.25, 0.75)})
        >>> v = s(torch.arange(4), torch.Generator().manual_seed(0))
        >>> sorted(v), tuple(v["length"].shape)
        (['length', 'masspole'], (4,))
    """

    ranges: Mapping[str, tuple[float, float]]
    """Parameter name -> ``(low, high)``, finite with ``low <= high`` (``low == high`` fixes the value)."""

    def __post_init__(self) -> None:
        if not isinstance(self.ranges, Mapping) or not self.ranges:
            raise ValueError("UniformParamSampler needs a non-empty mapping name -> (low, high)")
        clean: dict[str, tuple[float, float]] = {}
        for name, bounds in self.ranges.items():
            if not isinstance(bounds, Sequence) or isinstance(bounds, str) or len(bounds) != 2:
                raise ValueError(f"range of {name!r} must be a pair (low, high), got {bounds!r}")
            lo, hi = _finite(name, bounds[0]), _finite(name, bounds[1])
            if lo > hi:
                raise ValueError(f"range of {name!r} must have low <= high, got ({lo}, {hi})")
            clean[str(name)] = (lo, hi)
        object.__setattr__(self, "ranges", clean)

    @property
    def names(self) -> tuple[str, ...]:
        """The parameters it draws, in the order of :attr:`ranges`."""
        return tuple(self.ranges)

    def __call__(self, copies: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """``low + (high - low) · U[0, 1)`` per copy and parameter, float64 ``[K]`` each."""
        k = int(copies.numel())
        out: dict[str, torch.Tensor] = {}
        for name, (lo, hi) in self.ranges.items():
            u = torch.rand(k, generator=generator, dtype=torch.float64, device=generator.device)
            out[name] = u.mul_(hi - lo).add_(lo)
        return out


@dataclass(frozen=True)
class ChoiceParamSampler:
    """One of a fixed list of parameter points per episode, uniformly at random.

    For a finite uncertainty set, or a grid (:meth:`grid`) of the RRLS kind, trained on by sampling.

    Example:
        >>> s = ChoiceParamSampler.grid({"masspole": [0.1, 0.2], "length": [0.5, 1.0]})
        >>> len(s.points), s.points[3]
        (4, {'masspole': 0.2, 'length': 1.0})
    """

    points: Sequence[Mapping[str, float]]
    """The parameter points; all name the same parameters, with finite values."""
    _table: torch.Tensor = field(init=False, repr=False, compare=False)
    """``[len(points), len(names)]`` float64: the points as a matrix (built from ``points``)."""

    def __post_init__(self) -> None:
        if isinstance(self.points, Mapping) or not isinstance(self.points, Sequence) or not self.points:
            raise ValueError("ChoiceParamSampler needs a non-empty sequence of parameter points (mappings)")
        first = self.points[0]
        if not isinstance(first, Mapping) or not first:
            raise ValueError(f"each point must be a non-empty mapping name -> value, got {first!r}")
        names = [str(k) for k in first]
        clean: list[dict[str, float]] = []
        for i, point in enumerate(self.points):
            if not isinstance(point, Mapping) or sorted(map(str, point)) != sorted(names):
                raise ValueError(f"point {i} must name exactly {names}, got {point!r}")
            clean.append({n: _finite(n, point[n]) for n in names})
        object.__setattr__(self, "points", tuple(clean))
        table = torch.tensor([[p[n] for n in names] for p in clean], dtype=torch.float64)
        object.__setattr__(self, "_table", table)

    @classmethod
    def grid(cls, axes: Mapping[str, Iterable[float]]) -> ChoiceParamSampler:
        """Every combination of the values on each axis (the Cartesian product, last axis fastest).

        Args:
            axes: parameter name -> the values it takes.
        """
        if not axes:
            raise ValueError("grid needs at least one axis name -> values")
        names = list(axes)
        values = [list(axes[n]) for n in names]
        return cls([dict(zip(names, combo)) for combo in itertools.product(*values)])

    @property
    def names(self) -> tuple[str, ...]:
        """The parameters each point sets."""
        return tuple(self.points[0])

    def __call__(self, copies: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """A uniformly drawn point per copy; float64 ``[K]`` per parameter."""
        k = int(copies.numel())
        idx = torch.randint(len(self.points), (k,), generator=generator, device=generator.device)
        rows = self._table.to(generator.device)[idx]
        return {name: rows[:, j] for j, name in enumerate(self.names)}


def check_sampler(sampler: object, known: Iterable[str], env_id: str) -> ParamSampler:
    """Check that ``sampler`` is a :class:`ParamSampler` drawing only parameters in ``known``.

    Raises:
        ValueError: not callable, no ``names``, or a name the env does not have (closest names suggested).
    """
    names = getattr(sampler, "names", None)
    if not callable(sampler) or names is None:
        raise ValueError(
            f"param_sampler must be a ParamSampler (callable with a `names` attribute), got {type(sampler).__name__}"
        )
    known = list(known)
    for name in names:
        if name not in known:
            raise ValueError(
                f"param_sampler draws unknown parameter {name!r} for {env_id}{suggest_ids(str(name), known)}"
                f" (parameters: {sorted(known)})"
            )
    return sampler  # type: ignore[return-value]


def draw_params(
    sampler: ParamSampler, copies: torch.Tensor, generator: torch.Generator, env_id: str
) -> dict[str, torch.Tensor]:
    """Call ``sampler`` and check its output: a real tensor ``[K]`` for each of its names.

    Returns:
        ``name -> tensor [K]`` in the order of ``sampler.names`` (values not yet range-checked).
    """
    values = sampler(copies, generator)
    k = int(copies.numel())
    out: dict[str, torch.Tensor] = {}
    for name in sampler.names:
        v = values.get(name) if isinstance(values, Mapping) else None
        if not isinstance(v, torch.Tensor):
            raise ValueError(f"param_sampler gave no tensor for {name!r} ({env_id}); got {type(v).__name__}")
        if v.shape != (k,) or v.dtype.is_complex or v.dtype == torch.bool:
            raise ValueError(
                f"param_sampler must give a real tensor of shape ({k},) for {name!r} ({env_id}), "
                f"got {v.dtype} {tuple(v.shape)}"
            )
        out[name] = v
    return out
