"""robustrl: train agents, attack them, certify them, and report how robust they are.

The top-level namespace re-exports the entry points a user types first. They are imported lazily so
that ``robustrl --help`` stays fast.

Importing robustrl changes no global state. The ``robustrl`` command runs torch on one CPU thread
(``ROBUSTRL_NUM_THREADS`` overrides), because two threads on two busy cores are many times slower; in your
own scripts call ``torch.set_num_threads(1)`` for the same effect.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "make_env": "robustrl.envs",
    "list_envs": "robustrl.envs",
    "load_policy": "robustrl.policies",
    "save_policy": "robustrl.policies",
    "train": "robustrl.agents",
    "load_result": "robustrl.results",
    "evaluate_policy": "robustrl.evaluate",
    "certify_policy": "robustrl.certify",
}

_SUBPACKAGES = ("rollout", "evaluate", "certify")
"""Subpackages reachable as attributes before their first import; each is also callable as its entry point
(``robustrl.rollout(policy, env, 8)``, ``robustrl.evaluate(cfg)``, ``robustrl.certify(cfg)``)."""

__all__ = ["__version__", *_EXPORTS, *_SUBPACKAGES]


def __getattr__(name: str) -> Any:
    """Import a re-exported entry point on first use."""
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name in _SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'robustrl' has no attribute {name!r}")
