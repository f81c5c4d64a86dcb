"""One ``torch.compile`` per configuration of a function (the native envs' fused step).

Dynamo keys its cache (and its recompilation limit) on the code object; a copy of the code per
configuration keeps envs of different classes or sizes from evicting each other's kernels, while envs
with the same configuration share one compilation.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Hashable
from typing import Any

import torch

_COMPILED: dict[Hashable, Callable[..., Any]] = {}


def compiled_copy(base: Callable[..., Any], key: Hashable) -> Callable[..., Any]:
    """``torch.compile`` of a copy of ``base``'s code, one per ``key`` (built on first use, then shared)."""
    fn = _COMPILED.get(key)
    if fn is None:
        name = f"{base.__name__}_{len(_COMPILED)}"
        code = base.__code__.replace(co_name=name, co_qualname=name)
        raw = types.FunctionType(code, base.__globals__, name, base.__defaults__, base.__closure__)  # type: ignore[attr-defined]
        fn = torch.compile(raw, dynamic=False)
        _COMPILED[key] = fn
    return fn
