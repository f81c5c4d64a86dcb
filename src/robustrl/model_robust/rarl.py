"""RARL and QARL: a protagonist and a force adversary trained in alternation on a set's force set.

RARL (Pinto et al., ICML 2017): a zero-sum game; the adversary pushes the set's bodies (a cart force on
CartPole, a pivot torque on Pendulum, body forces on MuJoCo) within ±bound, the protagonist learns to
withstand it. Training alternates ``rounds`` times: the protagonist's learner (the run's algorithm) takes
``total_steps / rounds`` transitions under the frozen adversary, then the adversary (PPO) takes
``adversary_fraction`` as many against the frozen protagonist, rewarded with the protagonist's negated reward.

QARL (Reddi et al., ICLR 2023): the same game with a *quantal-response* adversary: its PPO loss has an
entropy bonus with temperature τ_r (:func:`robustrl.defenses.model_error.temperature`), annealed from
``temperature_start`` (an almost random adversary) to ``temperature_end`` (0: fully rational) over the rounds,
a curriculum of increasingly rational adversaries.

The run itself (run folder, evaluations at nominal parameters and without forces, checkpoints,
``TrainResult``) is :func:`robustrl.agents.train.train`'s, with :class:`ForceGameLearner` as its learner.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from robustrl.agents.common import Metrics
from robustrl.agents.ppo import PPO, PPO_PRESETS, PPOConfig
from robustrl.agents.train import TrainConfig, make_run_env
from robustrl.agents.train import train as train_run
from robustrl.common.seeding import derive_seed
from robustrl.defenses.model_error import NRMDPTrainConfig, PRMDPTrainConfig, QARLConfig, RARLConfig, temperature
from robustrl.envs.base import VecEnv
from robustrl.envs.uncertainty import UncertaintySet
from robustrl.model_robust.common import expose_state, make_learner, run_set
from robustrl.model_robust.force_env import ForceAdversaryEnv, ForcedEnv, MixAdversaryEnv, MixedEnv
from robustrl.results import TrainResult

__all__ = ["ForceGameLearner", "adversary_config", "train_action_robust", "train_qarl", "train_rarl"]

GameConfig = RARLConfig | QARLConfig | PRMDPTrainConfig | NRMDPTrainConfig
"""The games :class:`ForceGameLearner` plays."""


def adversary_config(env_id: str, total_steps: int) -> PPOConfig:
    """The force adversary's PPO: the env's PPO preset, no annealing, no reward scaling, ``total_steps``."""
    base = PPO_PRESETS.get(env_id, PPOConfig())
    return dataclasses.replace(base, total_steps=max(1, total_steps), anneal_lr=False, anneal_clip=False,
                               normalize_reward=False, ent_coef=0.0)


def _seed(seed: int, key: int) -> int:
    out = derive_seed(seed, key)
    assert out is not None
    return out


class ForceGameLearner:
    """An :class:`~robustrl.agents.common.Agent` alternating a protagonist and a force adversary.

    ``iterate()`` is one iteration of the protagonist; when it completes a round, the adversary's phase of
    that round runs too (QARL: at that round's temperature).

    Args:
        env: the protagonist's training env (needs a disturbance; MuJoCo envs are remade with the set's bodies).
        algo_cfg: the protagonist's learner config.
        seed: the run's seed.
        defense: RARL, QARL, PR-MDP or NR-MDP settings.
        uset: the uncertainty set (its force set is used; None for the action-robust games).
        cfg: the run (algorithm and step budget).
        make_env: ``(num_envs, seed) -> VecEnv`` like the training env.
    """

    def __init__(
        self, env: VecEnv, algo_cfg: Any, seed: int, defense: GameConfig, uset: UncertaintySet | None,
        cfg: TrainConfig, make_env: Callable[[int, int], VecEnv],
    ) -> None:
        self.defense = defense
        total = int(algo_cfg.total_steps)
        self.round_steps = max(1, total // defense.rounds)
        """Protagonist transitions per round."""
        adv_seed = _seed(seed, 31)
        if isinstance(defense, PRMDPTrainConfig | NRMDPTrainConfig):
            adv_base = make_env(env.num_envs, _seed(seed, 33))
            self._forced: ForcedEnv | MixedEnv = MixedEnv(env, None, defense.alpha, defense.mix, seed=_seed(seed, 34))
        else:
            assert uset is not None
            if uset.force.bodies:  # MuJoCo: the force enters through the adapter's named bodies
                # remade with the run's own physical parameters (--env-params, --env-randomize) and device
                bodies = list(uset.force.bodies)
                env = make_run_env(cfg, env.num_envs, _seed(seed, 32), env_id=env.env_id, disturbance_bodies=bodies)
                adv_base = make_run_env(cfg, env.num_envs, _seed(seed, 33), env_id=env.env_id,
                                        disturbance_bodies=bodies)
            else:
                adv_base = make_env(env.num_envs, _seed(seed, 33))
            self._forced = ForcedEnv(env, None, uset.force, defense.force_scale, seed=_seed(seed, 34))
        self.agent = make_learner(cfg, self._forced, algo_cfg, seed)  # type: ignore[arg-type]
        self.policy = self.agent.policy
        adv_cfg = adversary_config(env.env_id, int(total * defense.adversary_fraction))
        if isinstance(self._forced, MixedEnv):
            self._adv_env: ForceAdversaryEnv | MixAdversaryEnv = MixAdversaryEnv(
                adv_base, self.policy, self._forced.alpha, self._forced.mix, seed=_seed(seed, 35))  # type: ignore[arg-type]
        else:
            assert uset is not None
            self._adv_env = ForceAdversaryEnv(adv_base, self.policy, uset.force, self._forced.scale,  # type: ignore[arg-type]
                                              seed=_seed(seed, 35))
        self.adversary = PPO(self._adv_env, dataclasses.replace(adv_cfg, num_envs=env.num_envs),  # type: ignore[arg-type]
                             seed=adv_seed)
        self._forced.other = self.adversary.policy
        self.steps = 0
        self.rounds_done = 0
        """Adversary phases completed."""
        expose_state(self, "agent", self.agent)
        expose_state(self, "adversary", self.adversary)

    def temperature(self, round_index: int) -> float:
        """The adversary's entropy coefficient in round ``round_index`` (RARL: 0)."""
        if isinstance(self.defense, QARLConfig):
            return temperature(self.defense, min(round_index, self.defense.rounds - 1))
        return 0.0

    def iterate(self) -> Metrics:
        """One protagonist iteration under the adversary; then the adversary's phase if a round ended."""
        self.agent.steps = self.steps  # a resumed run restores ``steps`` here
        out = self.agent.iterate()
        self.steps = self.agent.steps
        self.rounds_done = max(self.rounds_done, int(self.adversary.steps) // max(1, self._adv_round_steps()))
        while self.rounds_done < min(self.defense.rounds, self.steps // self.round_steps):
            tau = self.temperature(self.rounds_done)
            self.adversary.cfg = dataclasses.replace(self.adversary.cfg, ent_coef=tau)
            target = self.adversary.steps + self._adv_round_steps()
            self.policy.eval()
            try:
                while self.adversary.steps < target:
                    adv = self.adversary.iterate()
            finally:
                self.policy.train()
            self.rounds_done += 1
            out["train/adversary_reward"] = adv["train/rollout_reward"]
            out["train/adversary_temperature"] = tau
        out["train/adversary_steps"] = float(self.adversary.steps)
        return out

    def _adv_round_steps(self) -> int:
        return max(1, int(self.round_steps * self.defense.adversary_fraction))


def _train_game(cfg: TrainConfig, defense: GameConfig, name: str) -> TrainResult:
    defense.validate()
    uset = None if isinstance(defense, PRMDPTrainConfig | NRMDPTrainConfig) else run_set(cfg, name)

    def make(env: VecEnv, algo_cfg: Any, seed: int, make_env: Callable[[int, int], VecEnv]) -> ForceGameLearner:
        return ForceGameLearner(env, algo_cfg, seed, defense, uset, cfg, make_env)

    return train_run(cfg, make_agent=make)


def train_rarl(cfg: TrainConfig, defense: RARLConfig) -> TrainResult:
    """``robustrl train --defense rarl --uncertainty-set SET``: protagonist vs force adversary (RARL).

    Returns:
        The protagonist's :class:`~robustrl.results.TrainResult`.

    Raises:
        ValueError: no or a bad uncertainty set, an env without a disturbance, or a bad config.
    """
    return _train_game(cfg, defense, "rarl")


def train_qarl(cfg: TrainConfig, defense: QARLConfig) -> TrainResult:
    """``robustrl train --defense qarl --uncertainty-set SET``: RARL with a temperature curriculum (QARL).

    Returns:
        The protagonist's :class:`~robustrl.results.TrainResult`.

    Raises:
        ValueError: no or a bad uncertainty set, an env without a disturbance, or a bad config.
    """
    return _train_game(cfg, defense, "qarl")


def train_action_robust(cfg: TrainConfig, defense: PRMDPTrainConfig | NRMDPTrainConfig) -> TrainResult:
    """``robustrl train --defense pr-mdp`` / ``nr-mdp``: protagonist vs an action adversary (Tessler et al. 2019).

    The adversary (PPO) acts in the env's action space; its action replaces the protagonist's with
    probability α (PR-MDP) or is blended in with weight α (NR-MDP), alternating as RARL.

    Returns:
        The protagonist's :class:`~robustrl.results.TrainResult`.

    Raises:
        ValueError: a bad config; NR-MDP on a discrete action space.
    """
    if cfg.uncertainty_set:
        raise ValueError(f"--defense {defense.mix}-mdp perturbs actions, not parameters: drop --uncertainty-set")
    if defense.mix == "nr" and cfg.env in ("CartPole-v1", "Acrobot-v1", "MountainCar-v0"):
        raise ValueError("--defense nr-mdp blends actions: it needs a continuous action space (use pr-mdp)")
    return _train_game(cfg, defense, f"{defense.mix}-mdp")
