"""The job entry points that pick which layer runs a config.

``robustrl train`` (and a study's ``[train]`` stage) call :func:`train`: a defense that changes one learner
(smoothing, a regulariser) runs in :func:`robustrl.agents.train.train`; a defense that trains more than one
network (an agent and its adversary, a sequence of agents) names a trainer in the defense registry, which
lives above the learners and is imported only when it runs. ``robustrl evaluate`` (and a study's
``[evaluate]`` stage) call :func:`evaluate`: a pinned attack suite (``--suite``, whose learned adversaries
need the learners) runs in :func:`robustrl.adversarial.suite.evaluate_suite`, anything else in
:func:`robustrl.evaluate.evaluate`.
"""

from __future__ import annotations

import importlib
from typing import Any

from robustrl.adversarial.suite import evaluate_suite
from robustrl.agents.train import TrainConfig, resolve_defense_config
from robustrl.agents.train import train as train_one
from robustrl.defenses.registry import defense_spec
from robustrl.evaluate import evaluate as evaluate_threats
from robustrl.evaluate.config import EvaluateConfig
from robustrl.evaluate.uncertainty import evaluate_uncertainty
from robustrl.policies.base import Policy
from robustrl.results import EvaluationResult, TrainResult
from robustrl.results.uncertainty import UncertaintyResult

__all__ = ["evaluate", "train"]


def train(cfg: TrainConfig) -> TrainResult:
    """Train the run ``cfg`` describes, with whichever trainer its defense needs.

    Raises:
        ValueError: a bad config (from the trainer's own checks, before any work).

    Example:
        >>> res = train(TrainConfig(algo="ppo", env="CartPole-v1", total_steps=2048, eval_every=0,
        ...                         eval_episodes=2))
        >>> res.steps
        2048
    """
    defense = resolve_defense_config(cfg)
    if defense is not None:
        spec = defense_spec(defense)
        if spec.trainer:
            return _resolve(spec.trainer)(cfg, defense)  # type: ignore[no-any-return]
    return train_one(cfg)


def evaluate(cfg: EvaluateConfig, *, policy: Policy | None = None) -> EvaluationResult | UncertaintyResult:
    """Evaluate under ``cfg.threat``, under the pinned suite ``cfg.suite``, or on ``cfg.uncertainty_set``'s grid.

    Raises:
        ValueError: a bad config (a suite with explicit threats, an unknown suite...), before any work.
    """
    if cfg.uncertainty_set:
        return evaluate_uncertainty(cfg, policy=policy)
    if cfg.suite is not None:
        return evaluate_suite(cfg, policy=policy)
    return evaluate_threats(cfg, policy=policy)


def _resolve(spec: str) -> Any:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)
