"""Physical parameters of the native envs: their specs, and validation of values given for ``N`` copies."""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import torch

from robustrl.envs.base import ParamValue

__all__ = ["Constraint", "ParamSpec", "check_range", "param_tensor", "validated_params"]

Constraint = Literal["positive", "nonnegative", "finite"]

@dataclass(frozen=True)
class ParamSpec:
    """One physical parameter of a native env."""

    default: float
    """Gymnasium's value."""
    doc: str
    """What it is, with its unit."""
    constraint: Constraint = "positive"
    """Allowed range: ``positive`` (> 0), ``nonnegative`` (>= 0) or any ``finite`` value."""


def validated_params(
    params: Mapping[str, ParamValue],
    specs: Mapping[str, ParamSpec],
    env_id: str,
    n: int,
    dtype: torch.dtype,
    device: torch.device,
) -> dict[str, torch.Tensor]:
    """``{name: tensor [n]}`` for ``params`` given as floats or ``[n]`` tensors; a ValueError names a bad one.

    Unknown names are refused with the close matches among ``specs`` (the env ``env_id``'s parameters).
    """
    if not isinstance(params, Mapping):
        raise ValueError(f"params must be a mapping name -> value, got {type(params).__name__}")
    out: dict[str, torch.Tensor] = {}
    for name, value in params.items():
        spec = specs.get(name)
        if spec is None:
            close = difflib.get_close_matches(str(name), list(specs), n=3)
            hint = f"; did you mean {close}?" if close else ""
            raise ValueError(f"unknown parameter {name!r} for {env_id}{hint} (parameters: {sorted(specs)})")
        out[name] = param_tensor(name, value, spec, n, dtype, device)
    return out


def param_tensor(
    name: str, value: ParamValue, spec: ParamSpec, n: int, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """A validated parameter tensor ``[n]``; raises ValueError naming ``name``."""
    if isinstance(value, torch.Tensor):
        if value.dim() == 0:
            t = value.to(device=device, dtype=dtype).expand(n).clone()
        elif value.shape == (n,):
            if value.dtype.is_complex or value.dtype == torch.bool:
                raise ValueError(f"parameter {name!r} must be real-valued, got {value.dtype}")
            t = value.detach().to(device=device, dtype=dtype).clone()
        else:
            raise ValueError(
                f"parameter {name!r} must be a float or a tensor of shape ({n},), got {tuple(value.shape)}"
            )
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(float(value)):
            raise ValueError(f"parameter {name!r} must be finite, got {value!r}")
        t = torch.full((n,), float(value), dtype=dtype, device=device)
    else:
        raise ValueError(f"parameter {name!r} must be a float or a tensor [num_envs], got {type(value).__name__}")
    check_range(f"parameter {name!r}", t, spec)
    return t


def check_range(what: str, t: torch.Tensor, spec: ParamSpec) -> None:
    """Raise a ValueError starting with ``what`` unless every value of ``t`` is finite and in ``spec``'s range."""
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{what} must be finite")
    if spec.constraint == "positive" and not bool((t > 0).all()):
        raise ValueError(f"{what} must be > 0, got min {float(t.min())}")
    if spec.constraint == "nonnegative" and not bool((t >= 0).all()):
        raise ValueError(f"{what} must be >= 0, got min {float(t.min())}")
