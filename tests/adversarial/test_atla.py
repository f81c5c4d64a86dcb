"""ATLA / PA-ATLA: the registry entries, the trainer's run folder, and robustness against the suite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import robustrl
from robustrl.agents.train import TrainConfig
from robustrl.defenses.atla import ATLAConfig, PAATLAConfig
from robustrl.defenses.registry import DEFENSES, resolve_defense
from robustrl.jobs import train


def test_atla_and_pa_atla_are_registered_trainers_with_typed_configs() -> None:
    assert DEFENSES["atla"].trainer == DEFENSES["pa-atla"].trainer == "robustrl.adversarial.atla:train_atla"
    cfg = resolve_defense("pa-atla", ["eps=0.1", "eps_ramp=0.5"])
    assert isinstance(cfg, PAATLAConfig) and cfg.kind == "pa-ad" and cfg.eps_at(0.25) == pytest.approx(0.05)
    assert ATLAConfig().kind == "sa-rl" and ATLAConfig(eps_ramp=0.0).eps_at(0.0) == 0.05
    with pytest.raises(ValueError, match="eps must be"):
        resolve_defense("atla", ["eps=0"])
    with pytest.raises(ValueError, match="eps_ramp"):
        resolve_defense("atla", ["eps_ramp=2"])


def test_atla_refuses_other_learners_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="trains a PPO agent"):
        train(TrainConfig(algo="dqn", defense="atla", out=tmp_path / "run"))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("defense", ["atla", "pa-atla"])
def test_atla_trains_agent_and_adversary_in_a_run_folder(defense: str, tmp_path: Path) -> None:
    cfg = TrainConfig(defense=defense, defense_set=("eps=0.1", "eps_ramp=0", "adversary_set=num_envs=8"),
                      total_steps=4096, eval_every=0, eval_episodes=4, seed=0, out=tmp_path / "run")
    res = train(cfg)
    assert res.steps == 4096
    metrics = res.last_train_metrics
    assert metrics["train/adversary_eps"] == pytest.approx(0.1)
    assert metrics["train/adversary_steps"] == 2 * 8 * 64  # one adversary iteration per agent iteration
    assert metrics["train/adversary_reward"] <= 0  # the adversary is paid the victim's reward negated
    meta = json.loads((tmp_path / "run" / "config.json").read_text())
    assert meta["defense"]["name"] == defense and meta["defense"]["eps"] == 0.1
    assert (tmp_path / "run" / "result.json").is_file()
    loaded = robustrl.load_policy(tmp_path / "run" / "policy.zip")
    assert loaded.observation_space.shape == (4,)  # the agent, not the adversary (whose actions are 4-d)
    assert int(loaded.action_space.n) == 2  # type: ignore[attr-defined]


def test_a_checkpoint_restores_both_learners_exactly() -> None:
    from robustrl.adversarial.atla import AlternatingLearner
    from robustrl.agents.common import learner_state, load_learner_state
    from robustrl.agents.ppo import PPOConfig

    cfg = PPOConfig(num_envs=8, num_steps=16, total_steps=4096)
    defense = ATLAConfig(eps=0.1, eps_ramp=0.0, adversary_set=("num_envs=8", "num_steps=16"))

    def make() -> AlternatingLearner:
        return AlternatingLearner(robustrl.make_env("CartPole-v1", 8, seed=1), cfg, 0, defense,
                                  lambda n, s: robustrl.make_env("CartPole-v1", n, seed=s))

    first = make()
    first.iterate()
    state = learner_state(first)
    assert {"agent_optimizer", "adversary_optimizer", "adversary_policy", "adversary_steps", "steps"} <= set(state)
    second = make()
    load_learner_state(second, state)
    assert second.steps == first.steps == 128
    for a, b in zip(first.adversary.policy.parameters(), second.adversary.policy.parameters()):
        assert a.data.equal(b.data)
    m1, m2 = first.iterate(), second.iterate()  # the counters carry on (the episodes in flight do not)
    assert m1["train/adversary_steps"] == m2["train/adversary_steps"] == 256


def test_atla_trains_an_lstm_agent(tmp_path: Path) -> None:
    from robustrl.policies import RecurrentActorCriticPolicy

    cfg = TrainConfig(defense="atla", defense_set=("eps=0.1", "eps_ramp=0", "adversary_set=num_envs=8"),
                      total_steps=4096, num_envs=16, eval_every=0, eval_episodes=4, seed=0, out=tmp_path / "run",
                      set=("lstm_size=8", "num_steps=128"))
    res = train(cfg)
    assert res.steps == 4096 and res.last_train_metrics["train/adversary_steps"] > 0
    loaded = robustrl.load_policy(tmp_path / "run" / "policy.zip")
    assert isinstance(loaded, RecurrentActorCriticPolicy) and loaded.lstm_size == 8


def test_the_adversary_env_restarts_a_recurrent_victims_state_with_each_episode() -> None:
    from robustrl.adversarial.env import AdversaryEnv
    from robustrl.policies import RecurrentActorCriticPolicy

    env = robustrl.make_env("CartPole-v1", 4, seed=0)
    torch.manual_seed(0)
    victim = RecurrentActorCriticPolicy(env.observation_space, env.action_space, lstm_size=6)
    adv = AdversaryEnv(env, victim, "sa-rl", 0.1, seed=0)
    adv.reset(seed=0)
    assert victim.recurrent_state is not None and not bool(victim.recurrent_state.any())
    ended = torch.zeros(4, dtype=torch.bool)
    for _ in range(200):
        _, _, terminated, truncated, _ = adv.step(torch.zeros(4, 4))
        done = terminated | truncated
        state = victim.recurrent_state
        assert not bool(state[:, done].any())  # copies whose episode just ended start the next one from zero
        assert bool(state[:, ~done].abs().sum(0).gt(0).all())
        ended |= done
        if ended.all():
            break
    assert bool(ended.all())
