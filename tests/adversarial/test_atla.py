"""ATLA / PA-ATLA: the registry entries, the trainer's run folder, and robustness against the suite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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
