"""What the model-error trainers share: the run's uncertainty set, and the learner a run's algorithm names."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from robustrl.agents.common import Agent
from robustrl.agents.train import ALGORITHMS, TrainConfig
from robustrl.defenses.base import TrainingHooks
from robustrl.envs.base import VecEnv
from robustrl.envs.uncertainty import UncertaintySet, uncertainty_set

__all__ = ["expose_state", "make_learner", "run_set"]


def run_set(cfg: TrainConfig, defense: str) -> UncertaintySet:
    """The run's uncertainty set, checked against its env; ValueError naming ``--uncertainty-set``.

    Raises:
        ValueError: no set given, an unknown one, one of another env, or parameters also fixed or randomised
            by ``--env-params`` / ``--env-randomize``.
    """
    if not cfg.uncertainty_set:
        raise ValueError(f"--defense {defense} needs --uncertainty-set NAME (e.g. cartpole-2d-v1, hopper-2d-v1)")
    uset = uncertainty_set(cfg.uncertainty_set)
    if cfg.env.partition("-v")[0] != uset.env_id.partition("-v")[0]:
        raise ValueError(f"--uncertainty-set {uset.name} belongs to {uset.env_id}, not --env {cfg.env}")
    named = {item.partition("=")[0].strip() for item in (*cfg.env_params, *cfg.env_randomize)}
    clash = sorted(named & set(uset.names))
    if clash:
        raise ValueError(
            f"{clash} are set by --uncertainty-set {uset.name}; drop them from --env-params/--env-randomize"
        )
    return uset


def make_learner(cfg: TrainConfig, env: VecEnv, algo_cfg: Any, seed: int) -> Agent:
    """The run's own learner (``cfg.algo``) on ``env``, without defense hooks."""
    agent_cls = ALGORITHMS[cfg.algo][0]
    return agent_cls(env, algo_cfg, seed=seed, hooks=TrainingHooks())  # type: ignore[no-any-return]


def expose_state(owner: object, prefix: str, learner: object) -> None:
    """Make ``learner``'s networks, optimisers, generators and tensors attributes of ``owner`` (``prefix_name``).

    :func:`robustrl.agents.common.learner_state` finds a checkpoint's parts by type among an agent's
    attributes; a trainer's learner holding other learners exposes theirs this way.
    """
    for name, value in vars(learner).items():
        if isinstance(value, nn.Module | torch.optim.Optimizer | torch.Generator | torch.Tensor):
            setattr(owner, f"{prefix}_{name.lstrip('_')}", value)
