"""The WocaR-PPO trainer: PPO with a worst-attack critic trained alongside, and no attacker.

:class:`WocaRPPO` is PPO (same collection, GAE, epochs, value loss) with three additions, the maths of
which live in :mod:`robustrl.defenses.wocar`:

1. before each update, the worst-attack critic ``Q_w`` regresses on the rollout's worst-attack Bellman
   targets (reachable actions from the IBP bounds of the current actor over the ε-ball of each successor);
2. the surrogate's advantage becomes ``A + κ_w·std(A)·A_w / std(Q_w)``, ``A_w = Q_w(s, a) − b(s)`` the
   worst-case advantage of the action taken (:func:`~robustrl.defenses.wocar.worst_case_bonus`; PPO then
   standardises each minibatch as usual);
3. the loss gains the importance-weighted smoothness regulariser (a :class:`~robustrl.defenses.TrainingHooks`
   regulariser, so PPO's loop is untouched).

The critic, its target, its optimiser and its random stream are attributes of the learner, so a run's
checkpoint holds them and ``--resume`` continues exactly. The run itself (run folder, evaluations,
checkpoints, ``TrainResult``) is :func:`robustrl.agents.train.train`'s; the saved policy is the plain actor-critic.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import gymnasium as gym
import torch

from robustrl.agents.common import Agent, Generators, Metrics, linear_schedule, make_adam, seeded_init, set_lr
from robustrl.agents.ppo import PPO, PPOConfig, Rollout
from robustrl.agents.train import TrainConfig, resolve_algo_config
from robustrl.agents.train import train as train_run
from robustrl.common.seeding import derive_seed
from robustrl.defenses.base import NO_HOOKS, TrainingHooks
from robustrl.defenses.wocar import (
    WocaRConfig,
    WorstCaseCritic,
    check_wocar_policy,
    fit_worst_case_q,
    wocar_regularizer,
    worst_case_advantage,
    worst_case_bonus,
)
from robustrl.envs.base import VecEnv
from robustrl.policies.features import flat_dim
from robustrl.results import TrainResult

__all__ = ["WocaRPPO", "train_wocar"]


class WocaRPPO(PPO):
    """PPO plus WocaR's worst-attack critic, worst-case advantage and importance-weighted smoothness.

    Args:
        env: the training env (clean observations: WocaR runs no attack).
        cfg: PPO's settings (feed-forward: ``lstm_size`` must be 0); the critic ``Q_w`` takes its widths and
            activation.
        seed: seeds everything (the critic's initialisation and streams derive from it).
        defense: the WocaR settings.

    Raises:
        ValueError: a recurrent config, or observations IBP does not bound (Discrete, images).
    """

    def __init__(self, env: VecEnv, cfg: PPOConfig, *, seed: int, defense: WocaRConfig) -> None:
        defense.validate()
        if cfg.lstm_size:
            raise ValueError("wocar trains a feed-forward PPO agent (lstm_size=0): IBP does not bound an LSTM")
        if not isinstance(env.observation_space, gym.spaces.Box):
            raise ValueError(f"wocar needs Box observations, got {env.observation_space!r}")
        self.defense = defense
        gens = Generators(seed, env.device)
        with seeded_init(derive_seed(seed, 31) or 0):
            self.worst_q = WorstCaseCritic(flat_dim(env.observation_space), env.action_space, tuple(cfg.hidden),
                                           cfg.activation).to(env.device)
        self.worst_q_optimizer = make_adam(self.worst_q.q.parameters(), defense.q_lr, eps=1e-5)
        self._worst_q_gen = gens.make(32)
        self._reg_gen = gens.make(33)
        hooks = NO_HOOKS
        if defense.kappa_s > 0:
            hooks = TrainingHooks(regularizers=(wocar_regularizer(defense, self.worst_q, self._reg_gen),))
        self._pending: dict[str, torch.Tensor] = {}  # this update's worst-case advantages (a dict: not checkpointed)
        super().__init__(env, cfg, seed=seed, hooks=hooks)
        check_wocar_policy(self.policy)

    def _env_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """Discrete indices as they are; Box samples clipped to the action space, flat ``[B, act_dim]``."""
        if self.discrete:
            return actions
        p = self.policy
        return torch.max(torch.min(actions.reshape(actions.shape[0], -1), p.action_high.flatten()),
                         p.action_low.flatten())

    def update(self, roll: Rollout) -> Metrics:
        """Fit ``Q_w`` on the rollout, then PPO's update with the worst-case advantage added."""
        cfg, defense, progress = self.cfg, self.defense, self.progress
        traj = roll.trajectory
        obs, next_obs = traj.obs.flatten(0, 1), traj.next_obs().flatten(0, 1)
        actions = self._env_actions(traj.actions.flatten(0, 1))
        eps = defense.eps_at(progress)
        q_lr = linear_schedule(defense.q_lr, progress) if cfg.anneal_lr else defense.q_lr
        set_lr(self.worst_q_optimizer, max(q_lr, 1e-12))
        fit = fit_worst_case_q(
            self.worst_q, self.worst_q_optimizer, self.policy, obs, actions, traj.rewards.flatten(), next_obs,
            traj.terminated.flatten(), gamma=cfg.gamma, eps=eps, cfg=defense, num_minibatches=cfg.num_minibatches,
            generator=self._worst_q_gen,
        )
        worst_adv, worst_value = worst_case_advantage(self.worst_q.target, self.policy, obs, actions)
        kappa = defense.kappa_w_at(progress)
        self._pending = {"adv": worst_adv.view_as(traj.rewards), "q": worst_value} if kappa > 0 else {}
        try:
            out = super().update(roll)
        finally:
            self._pending = {}
        out.update({
            "train/worst_q_loss": fit["loss"], "train/worst_q_target": fit["target"],
            "train/worst_q_gap": fit["gap"], "train/wocar_eps": eps, "train/kappa_w": kappa,
        })
        return out

    @torch.no_grad()
    def advantages(self, roll: Rollout) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """PPO's GAE advantages plus the worst-case bonus during an update (returns and values unchanged)."""
        advantages, returns, values = super().advantages(roll)
        if self._pending:
            kappa = self.defense.kappa_w_at(self.progress)
            advantages = advantages + worst_case_bonus(self._pending["adv"], self._pending["q"], advantages, kappa)
        return advantages, returns, values


def train_wocar(cfg: TrainConfig, defense: WocaRConfig) -> TrainResult:
    """``robustrl train --algo ppo --defense wocar``: WocaR-PPO (worst-attack critic, no attacker).

    Args:
        cfg: the run (``algo`` must be ``ppo``, feed-forward); run folder, evaluations and checkpoints as for
            any run.
        defense: the :class:`~robustrl.defenses.wocar.WocaRConfig`.

    Returns:
        The agent's :class:`~robustrl.results.TrainResult` (its policy is the plain actor-critic).

    Raises:
        ValueError: another algorithm than PPO, a recurrent PPO, or a bad config (before any work).
    """
    if cfg.algo != "ppo":
        raise ValueError(f"--defense wocar trains a PPO agent (WocaR-PPO); got --algo {cfg.algo}")
    defense.validate()
    if resolve_algo_config(cfg).lstm_size:  # type: ignore[union-attr]
        raise ValueError("--defense wocar trains a feed-forward PPO agent: set lstm_size=0")

    def make(env: VecEnv, algo_cfg: Any, seed: int, make_env: Callable[[int, int], VecEnv]) -> Agent:
        return cast(Agent, WocaRPPO(env, algo_cfg, seed=seed, defense=defense))

    return train_run(cfg, make_agent=make)
