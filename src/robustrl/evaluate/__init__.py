"""Evaluation: the shared rollout engine and evaluation under threats."""

from robustrl.evaluate.rollout import ActionTransform, ObsTransform, RolloutResult, StepContext, rollout

__all__ = ["ActionTransform", "ObsTransform", "RolloutResult", "StepContext", "rollout"]
