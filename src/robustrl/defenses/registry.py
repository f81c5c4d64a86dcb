"""Defenses by name: ``robustrl train --defense NAME --defense-set key=value``.

Each entry is a typed config class and a function from that config to :class:`TrainingHooks`.
A new defense is a config, a hooks function and one line here (see ``docs/architecture.md``).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from robustrl.common.config import apply_overrides
from robustrl.defenses.base import TrainingHooks
from robustrl.defenses.smoothing import SmoothingConfig, smoothing_transform

DefenseName = Literal["none", "smoothing"]
"""The defenses ``robustrl train --defense`` accepts."""


@dataclass(frozen=True)
class DefenseSpec:
    """One registered defense."""

    config: type
    """Its frozen config dataclass (with a ``validate()`` method)."""
    hooks: Callable[[Any], TrainingHooks]
    """``config -> TrainingHooks``."""


def _smoothing_hooks(cfg: SmoothingConfig) -> TrainingHooks:
    return TrainingHooks(obs_transform=smoothing_transform(cfg.sigma), clean_critic=cfg.critic_obs == "clean")


DEFENSES: dict[str, DefenseSpec] = {
    "smoothing": DefenseSpec(SmoothingConfig, _smoothing_hooks),
}
"""Every defense by name (``none`` is the absence of one)."""


def resolve_defense(name: str, overrides: Sequence[str] = (), **values: Any) -> Any | None:
    """The typed config of defense ``name`` with ``key=value`` overrides (None for ``none``).

    Raises:
        ValueError: unknown name (with close names), unknown key or bad value, naming it.

    Example:
        >>> resolve_defense("smoothing", ["sigma=0.3"])
        SmoothingConfig(sigma=0.3, critic_obs='clean')
    """
    if name == "none":
        if overrides or values:
            raise ValueError("--defense-set needs a --defense")
        return None
    spec = DEFENSES.get(name)
    if spec is None:
        close = difflib.get_close_matches(str(name), list(DEFENSES), n=3)
        hint = f"; did you mean {close}?" if close else ""
        raise ValueError(f"unknown defense {name!r}{hint} (defenses: none, {', '.join(sorted(DEFENSES))})")
    cfg = apply_overrides(spec.config(**values), list(overrides), what="--defense-set")
    cfg.validate()
    return cfg


def defense_hooks(cfg: Any | None) -> TrainingHooks:
    """The :class:`TrainingHooks` of a resolved defense config (no hooks for None)."""
    if cfg is None:
        return TrainingHooks()
    for spec in DEFENSES.values():
        if isinstance(cfg, spec.config):
            return spec.hooks(cfg)
    raise ValueError(f"{type(cfg).__name__} is not a registered defense config")


def defense_name(cfg: Any | None) -> str:
    """The registry name of a resolved defense config (``none`` for None)."""
    if cfg is None:
        return "none"
    return next(name for name, spec in DEFENSES.items() if isinstance(cfg, spec.config))
