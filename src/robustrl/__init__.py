"""robustrl: train agents, attack them, certify them, and report how robust they are.

The top-level namespace re-exports the entry points a user types first. They are imported lazily so
that ``robustrl --help`` stays fast.

Torch runs on one CPU thread by default (two threads on two busy cores are many times slower); set the
environment variable ``ROBUSTRL_NUM_THREADS`` to change that.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import torch

__version__ = "0.1.0"

torch.set_num_threads(int(os.environ.get("ROBUSTRL_NUM_THREADS", "1")))

_EXPORTS = {
    "make_env": "robustrl.envs",
    "list_envs": "robustrl.envs",
    "load_policy": "robustrl.policies",
    "save_policy": "robustrl.policies",
    "rollout": "robustrl.evaluate",
    "evaluate_policy": "robustrl.evaluate",
    "certify_policy": "robustrl.certify",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    """Import a re-exported entry point on first use."""
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'robustrl' has no attribute {name!r}")
