"""The ATLA / PA-ATLA trainer: PPO agent and PPO state adversary, trained in alternation.

Each round, the agent takes ``agent_iters`` PPO iterations acting on observations perturbed by the current
adversary (sampling its actions: the stochastic adversary its training optimised; the critic sees the clean
observation), then the adversary takes ``adversary_iters`` PPO iterations in the adversary's MDP
(:class:`~robustrl.adversarial.env.AdversaryEnv`) against the current agent, frozen while it trains. ε ramps
up linearly over the first ``eps_ramp`` of training. The run itself (run folder, evaluations, checkpoints,
``TrainResult``) is :func:`robustrl.agents.train.train`'s, with :class:`AlternatingLearner` as its learner;
``total_steps`` counts the agent's transitions (the adversary's are logged as ``train/adversary_steps``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from robustrl.adversarial.env import AdversaryEnv
from robustrl.adversarial.learned import adversary_ppo
from robustrl.agents.common import Metrics
from robustrl.agents.ppo import PPO, PPOConfig
from robustrl.agents.recurrent_ppo import make_ppo
from robustrl.agents.train import TrainConfig
from robustrl.agents.train import train as train_run
from robustrl.common.config import apply_overrides
from robustrl.common.seeding import derive_seed
from robustrl.defenses.atla import AlternatingConfig
from robustrl.defenses.base import TrainingHooks
from robustrl.envs.base import VecEnv
from robustrl.results import TrainResult
from robustrl.threats.learned import LearnedAttack
from robustrl.threats.pgd import SearchConfig

__all__ = ["AlternatingLearner", "train_atla"]


class AlternatingLearner:
    """An :class:`~robustrl.agents.common.Agent` whose ``iterate()`` is one ATLA round.

    Args:
        env: the agent's training env.
        cfg: the agent's PPO settings.
        seed: the run's seed (the adversary's streams derive from it).
        defense: the ATLA / PA-ATLA settings.
        make_env: ``(num_envs, seed) -> VecEnv`` for the adversary's env (like the training env).
    """

    def __init__(
        self, env: VecEnv, cfg: PPOConfig, seed: int, defense: AlternatingConfig,
        make_env: Callable[[int, int], VecEnv],
    ) -> None:
        self.defense = defense
        normalized = cfg.normalize_obs
        search = SearchConfig(steps=defense.pgd_steps, norm=defense.norm)
        adv_cfg = apply_overrides(adversary_ppo(env.env_id), list(defense.adversary_set), what="adversary_set")
        adv_cfg = dataclasses.replace(adv_cfg, total_steps=max(adv_cfg.total_steps, cfg.total_steps),
                                      anneal_lr=False, anneal_clip=False, normalize_reward=False)
        adv_cfg.validate()
        # the agent's training transform; its adversary is set once the adversary (which needs the agent) exists
        self._attack = LearnedAttack(defense.kind, None, defense.eps_at(0.0), defense.norm, normalized, search,
                                     deterministic=False)
        # PPO or, with lstm_size > 0, recurrent PPO (ATLA's LSTM agent)
        self.agent = make_ppo(env, cfg, seed=seed, hooks=TrainingHooks(obs_transform=self._attack, clean_critic=True))
        self.policy: nn.Module = self.agent.policy
        adv_seed = derive_seed(seed, 21)
        assert adv_seed is not None
        self._adv_env = AdversaryEnv(make_env(adv_cfg.num_envs, adv_seed), self.policy, defense.kind,
                                     max(defense.eps_at(0.0), 1e-12), norm=defense.norm, normalized=normalized,
                                     search=search, seed=adv_seed)
        self.adversary = PPO(self._adv_env, adv_cfg, seed=adv_seed)  # type: ignore[arg-type]
        self._attack.adversary = self.adversary.policy
        self.steps = 0
        self.adversary_steps = torch.zeros((), dtype=torch.int64)
        """The adversary's transitions (a tensor, so a checkpoint restores it)."""
        # what a checkpoint restores (found by type by robustrl.agents.common.learner_state)
        for prefix, learner in (("agent", self.agent), ("adversary", self.adversary)):
            for name, value in vars(learner).items():
                if isinstance(value, nn.Module | torch.optim.Optimizer | torch.Generator | torch.Tensor):
                    setattr(self, f"{prefix}_{name.lstrip('_')}", value)

    @property
    def progress(self) -> float:
        """Fraction of the agent's ``total_steps`` done."""
        return self.agent.steps / self.agent.cfg.total_steps

    def iterate(self) -> Metrics:
        """One round: agent iterations under the adversary, then adversary iterations against the agent."""
        self.agent.steps = self.steps  # a resumed run restores the counters here
        self.adversary.steps = int(self.adversary_steps)
        eps = self.defense.eps_at(self.progress)
        self._attack.budget = eps
        out: Metrics = {}
        for _ in range(self.defense.agent_iters):
            out = self.agent.iterate()
        self.steps = self.agent.steps
        if eps > 0:
            self._adv_env.budget = eps
            self.policy.eval()
            try:
                for _ in range(self.defense.adversary_iters):
                    adv = self.adversary.iterate()
            finally:
                self.policy.train()
            out["train/adversary_reward"] = adv["train/rollout_reward"]
            self.adversary_steps.fill_(self.adversary.steps)
        out["train/adversary_eps"] = eps
        out["train/adversary_steps"] = float(self.adversary.steps)
        return out


def train_atla(cfg: TrainConfig, defense: AlternatingConfig) -> TrainResult:
    """``robustrl train --defense atla`` / ``pa-atla``: a PPO agent trained against a learned adversary.

    Args:
        cfg: the run (``algo`` must be ``ppo``); run folder, evaluations and checkpoints as for any run.
        defense: the :class:`~robustrl.defenses.atla.ATLAConfig` or ``PAATLAConfig``.

    Returns:
        The agent's :class:`~robustrl.results.TrainResult` (its policy is the agent, not the adversary).

    Raises:
        ValueError: another algorithm than PPO, or a bad config (before any work).
    """
    if cfg.algo != "ppo":
        raise ValueError(f"--defense {'atla' if defense.kind == 'sa-rl' else 'pa-atla'} trains a PPO agent; "
                         f"got --algo {cfg.algo}")
    defense.validate()

    def make(env: VecEnv, algo_cfg: Any, seed: int, make_env: Callable[[int, int], VecEnv]) -> AlternatingLearner:
        return AlternatingLearner(env, algo_cfg, seed, defense, make_env)

    return train_run(cfg, make_agent=make)
