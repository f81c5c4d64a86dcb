"""Explicit random generators: nothing in robustrl reads global RNG state."""

from __future__ import annotations

import numpy as np
import torch

MAX_SEED = 2**63 - 1
"""Seeds are whole numbers in ``[0, MAX_SEED]`` (what every generator robustrl uses accepts)."""


def check_seed(seed: object, what: str = "seed") -> int:
    """``int(seed)`` after checking it is a whole number in ``[0, 2**63 − 1]``; names ``what`` otherwise.

    Example:
        >>> check_seed(-1)
        Traceback (most recent call last):
        ...
        ValueError: seed must be a whole number from 0 to 9223372036854775807, got -1
    """
    ok = isinstance(seed, int | np.integer) and not isinstance(seed, bool) and 0 <= int(seed) <= MAX_SEED
    if not ok:
        raise ValueError(f"{what} must be a whole number from 0 to {MAX_SEED}, got {seed!r}")
    return int(seed)  # type: ignore[call-overload]


def torch_generator(seed: int | None, device: torch.device | str = "cpu") -> torch.Generator:
    """Return a ``torch.Generator`` on ``device`` seeded with ``seed`` (fresh entropy when None)."""
    gen = torch.Generator(device=torch.device(device))
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(int(seed))
    return gen


def numpy_generator(seed: int | np.random.Generator | None) -> np.random.Generator:
    """Return a NumPy generator; a generator passed in is returned as is."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def derive_seed(seed: int | None, *keys: int) -> int | None:
    """Derive an independent child seed from ``seed`` and integer ``keys`` (None stays None)."""
    if seed is None:
        return None
    return int(np.random.SeedSequence([int(seed), *map(int, keys)]).generate_state(1)[0])
