"""Explicit random generators: nothing in robustrl reads global RNG state."""

from __future__ import annotations

import numpy as np
import torch


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
