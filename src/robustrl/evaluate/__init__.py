"""Evaluation: the shared rollout engine and evaluation under threats (see ``docs/evaluate.md``)."""

from robustrl.evaluate.dynamics import DynamicsResult, evaluate_dynamics
from robustrl.evaluate.evaluate import (
    EvaluationResult,
    StrongestCurve,
    ThreatCurve,
    evaluate_policy,
    load_evaluation,
)
from robustrl.evaluate.rollout import ActionTransform, ObsTransform, RolloutResult, StepContext, rollout

__all__ = [
    "ActionTransform",
    "DynamicsResult",
    "EvaluationResult",
    "ObsTransform",
    "RolloutResult",
    "StepContext",
    "StrongestCurve",
    "ThreatCurve",
    "evaluate_dynamics",
    "evaluate_policy",
    "load_evaluation",
    "rollout",
]
