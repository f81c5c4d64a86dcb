"""Defenses: what a learner composes to become robust (see ``docs/architecture.md``).

Smoothing (:mod:`robustrl.defenses.smoothing`) is the one home of Policy Smoothing's Gaussian noise, used by
training, evaluation and certification alike.
"""

from robustrl.defenses.base import NO_HOOKS, Minibatch, Regularizer, TrainingHooks
from robustrl.defenses.registry import DEFENSES, DefenseSpec, defense_hooks, resolve_defense
from robustrl.defenses.smoothing import (
    SmoothedPolicy,
    SmoothingConfig,
    check_sigma,
    smoothing_noise,
    smoothing_transform,
)

__all__ = [
    "DEFENSES",
    "NO_HOOKS",
    "DefenseSpec",
    "Minibatch",
    "Regularizer",
    "SmoothedPolicy",
    "SmoothingConfig",
    "TrainingHooks",
    "check_sigma",
    "defense_hooks",
    "resolve_defense",
    "smoothing_noise",
    "smoothing_transform",
]
