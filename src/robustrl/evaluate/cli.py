r"""``robustrl evaluate`` and ``robustrl evaluate-dynamics``: the configs the console script parses.

Examples::

    robustrl evaluate --policy pi.zip --env CartPole-v1 --threat pgd mad "pgd[norm=l2]" --budgets 0 0.05 0.1 \
        --episodes 100 --out eval.json
    robustrl evaluate-dynamics --policy pi.zip --env CartPole-v1 --param length=0.25:1.0:4 force_mag=5,10,15 \
        --episodes 20 --out dynamics.json

The subcommands call :func:`robustrl.evaluate.evaluate` and :func:`robustrl.evaluate.evaluate_dynamics`
directly (see :data:`robustrl.cli.COMMANDS`); ``run_evaluate`` and ``run_evaluate_dynamics`` are the same
calls under their older names.
"""

from __future__ import annotations

from robustrl.evaluate.config import DynamicsConfig, EvaluateConfig, parse_value, threat_options
from robustrl.evaluate.dynamics import evaluate_dynamics
from robustrl.evaluate.evaluate import evaluate
from robustrl.results import DynamicsResult, EvaluationResult

__all__ = [
    "DynamicsConfig",
    "EvaluateConfig",
    "parse_value",
    "run_evaluate",
    "run_evaluate_dynamics",
    "threat_options",
]


def run_evaluate(cfg: EvaluateConfig) -> EvaluationResult:
    """:func:`~robustrl.evaluate.evaluate` (saves to ``cfg.out`` when set)."""
    return evaluate(cfg)


def run_evaluate_dynamics(cfg: DynamicsConfig) -> DynamicsResult:
    """:func:`~robustrl.evaluate.evaluate_dynamics` with a config (saves to ``cfg.out`` when set)."""
    return evaluate_dynamics(cfg)
