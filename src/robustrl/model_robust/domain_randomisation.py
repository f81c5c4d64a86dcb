"""Domain randomisation over a named uncertainty set (Tobin et al. 2017; the DR baseline of M2TD3/IWOCS).

The run's learner trains on envs whose parameters are drawn from the set at every episode start: uniformly
over the box, or uniformly over its ``k``-per-dimension grid. Evaluation during training stays at the
nominal parameters; evaluate the result on the set with ``robustrl evaluate --uncertainty-set``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from robustrl.agents.common import Agent
from robustrl.agents.train import TrainConfig
from robustrl.agents.train import train as train_run
from robustrl.defenses.model_error import DomainRandomisationConfig
from robustrl.envs.base import VecEnv
from robustrl.envs.samplers import ChoiceParamSampler, ParamSampler
from robustrl.model_robust.common import make_learner, run_set
from robustrl.results import TrainResult

__all__ = ["train_domain_randomisation"]


def train_domain_randomisation(cfg: TrainConfig, defense: DomainRandomisationConfig) -> TrainResult:
    """``robustrl train --defense domain-randomisation --uncertainty-set SET``.

    Args:
        cfg: the run (any algorithm; run folder, evaluations and checkpoints as for any run).
        defense: box or grid sampling.

    Returns:
        The run's :class:`~robustrl.results.TrainResult`.

    Raises:
        ValueError: no or a bad uncertainty set, or a bad config, before any work.
    """
    defense.validate()
    uset = run_set(cfg, "domain-randomisation")
    sampler: ParamSampler = (
        uset.sampler() if defense.grid_points == 0 else ChoiceParamSampler.grid(uset.grid(defense.grid_points))
    )

    def make(env: VecEnv, algo_cfg: Any, seed: int, make_env: Callable[[int, int], VecEnv]) -> Agent:
        env.set_param_sampler(sampler)  # type: ignore[attr-defined]
        return make_learner(cfg, env, algo_cfg, seed)

    return train_run(cfg, make_agent=make)
