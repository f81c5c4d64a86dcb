"""Evaluation under threats and over dynamics grids (see ``docs/evaluate.md``).

* :func:`evaluate` ``(EvaluateConfig) -> EvaluationResult``: clean and under every threat at every budget;
  :func:`evaluate_policy` is its keyword form.
* :func:`evaluate_dynamics` ``(DynamicsConfig) -> DynamicsResult``: over a grid of physical parameters
  (also callable with the older keyword arguments).
* :func:`load_evaluation`: read an evaluation or dynamics file back.

The result classes live in :mod:`robustrl.results` and the rollout engine in :mod:`robustrl.rollout`;
both are re-exported here for older imports. ``robustrl.evaluate`` is also callable as :func:`evaluate`
(``robustrl.evaluate(cfg)``), the way ``robustrl.rollout`` is callable as the rollout function.

The attribute ``robustrl.evaluate.evaluate`` is the function :func:`evaluate`, not the module of that name:
import from the module with ``from robustrl.evaluate.evaluate import ...``.
"""

import sys
import types
from typing import Any

from robustrl.evaluate.config import DynamicsConfig, EvaluateConfig
from robustrl.evaluate.dynamics import evaluate_dynamics
from robustrl.evaluate.evaluate import evaluate, evaluate_policy, load_evaluation
from robustrl.results import CleanRun, DynamicsResult, EvaluationResult, StrongestCurve, ThreatCurve
from robustrl.rollout import ActionTransform, ObsTransform, RolloutResult, StepContext, rollout

__all__ = [
    "ActionTransform",
    "CleanRun",
    "DynamicsConfig",
    "DynamicsResult",
    "EvaluateConfig",
    "EvaluationResult",
    "ObsTransform",
    "RolloutResult",
    "StepContext",
    "StrongestCurve",
    "ThreatCurve",
    "evaluate",
    "evaluate_dynamics",
    "evaluate_policy",
    "load_evaluation",
    "rollout",
]


class _CallableModule(types.ModuleType):
    """This package, callable as :func:`evaluate`."""

    def __call__(self, cfg: EvaluateConfig, **kwargs: Any) -> EvaluationResult:
        return evaluate(cfg, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
