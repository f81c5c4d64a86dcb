"""The pinned suite: config checks, dispatch through robustrl.jobs, each attack's curve and the minimum."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from robustrl import cli
from robustrl.adversarial.learned import AdversaryConfig
from robustrl.adversarial.sarsa import RobustSarsaConfig
from robustrl.adversarial.suite import SA_MDP_V1, SA_MDP_V2, SUITES, SuiteDefinition, evaluate_suite
from robustrl.evaluate.config import EvaluateConfig, plan_evaluation
from robustrl.experiments.stages import STAGES
from robustrl.jobs import evaluate
from robustrl.policies import save_policy
from robustrl.results import load_result

TINY = SuiteDefinition(
    name="sa-mdp-v1",
    threats=SA_MDP_V1.threats,
    learned=(("sa-rl", AdversaryConfig(kind="sa-rl", total_steps=2048)),
             ("pa-ad", AdversaryConfig(kind="pa-ad", total_steps=2048, pgd_steps=3))),
    sarsa=RobustSarsaConfig(total_steps=1024, reg_steps=1, attack_steps=3),
    learned_steps=(("CartPole-v1", 1024),),
)
"""The suite's attacks with tiny training budgets (fast; the pinned budgets are SA_MDP_V1's), 1024 adversary
steps on CartPole."""


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"threat": ("mad",)}, "does not combine with --threat"),
        ({"option": ("steps=3",)}, "does not combine"),
        ({"threat_budgets": ("pgd=0,1",)}, "does not combine"),
        ({"suite": "sa-mdp-v9"}, "--suite must be one of"),
        ({"budgets": (-1.0,)}, "--budgets"),
    ],
)
def test_a_suite_refuses_explicit_threats_and_bad_values(changes: dict, match: str) -> None:
    cfg = EvaluateConfig("p.zip", "CartPole-v1", **{"suite": "sa-mdp-v1", **changes})
    with pytest.raises(ValueError, match=match):
        plan_evaluation(cfg)
    with pytest.raises(ValueError, match=match):
        evaluate(cfg)  # before loading anything: p.zip does not exist


def test_the_cli_and_the_sweep_run_evaluation_through_the_jobs_layer() -> None:
    assert cli.COMMANDS["evaluate"].run == "robustrl.jobs:evaluate"
    assert STAGES["evaluate"].run == "robustrl.jobs:evaluate"
    assert set(SUITES) == {"sa-mdp-v1", "sa-mdp-v2"}
    for suite in SUITES.values():
        described = suite.describe()
        assert set(described["threats"]) == {"random", "critic", "mad"}
        assert set(described["learned"]) == {"sa-rl", "pa-ad"} and described["robust_sarsa"] is not None
    assert SA_MDP_V2.threats == SA_MDP_V1.threats and SA_MDP_V2.sarsa == SA_MDP_V1.sarsa


@pytest.mark.parametrize(("env_id", "steps"), [("CartPole-v1", 200_000), ("Pendulum-v1", 200_000),
                                               ("Hopper-v5", 2_000_000), ("Ant-v5", 2_000_000)])
def test_v2_trains_its_adversaries_longer_on_mujoco(env_id: str, steps: int) -> None:
    learned = dict(SA_MDP_V2.learned_for(env_id))
    assert {label: cfg.total_steps for label, cfg in learned.items()} == {"sa-rl": steps, "pa-ad": steps}
    assert learned["pa-ad"].pgd_steps == 10 and learned["sa-rl"].kind == "sa-rl"
    assert SA_MDP_V2.describe()["learned_steps"]["Hopper-v5"] == 2_000_000
    assert all(cfg.total_steps == 60_000 for _, cfg in SA_MDP_V1.learned_for(env_id))


def test_suite_records_every_attack_and_their_minimum(cartpole_ppo: nn.Module, tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    policy_file = save_policy(cartpole_ppo, tmp_path / "policy.zip", env_id="CartPole-v1")  # type: ignore[arg-type]
    cfg = EvaluateConfig(str(policy_file), "CartPole-v1", suite="sa-mdp-v1", budgets=(0.0, 0.2), episodes=8,
                         env_kwargs={"max_episode_steps": 100}, bootstrap_reps=50, out=str(tmp_path / "eval.json"))
    with caplog.at_level("INFO", logger="robustrl.adversarial.suite"):
        res = evaluate_suite(cfg, definition=TINY)
    # before any training it says what it will train, per budget, and where the adversaries go
    (plan,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("suite ")]
    assert "6 attacks at 1 budget(s) > 0" in plan and "sa-rl 1,024 steps, pa-ad 1,024 steps" in plan
    assert str(tmp_path / "adversaries") in plan
    labels = [c.label for c in res.threats]
    assert labels == ["random", "critic", "mad", "robust-sarsa", "sa-rl", "pa-ad"]
    assert all(c.budgets == (0.0, 0.2) and c.threat_model == "obs/linf" for c in res.threats)
    for c in res.threats:  # budget 0 is the clean run, shared by every attack
        assert np.array_equal(c.returns[0], res.clean.returns)
    (strongest,) = res.strongest
    lowest = min(res.threats, key=lambda c: c.mean[1])
    assert strongest.mean[1] == lowest.mean[1] and strongest.threat[1] == lowest.label
    assert res.provenance["suite"]["name"] == "sa-mdp-v1" and res.config["suite"] == "sa-mdp-v1"
    learned_steps = {c.label: c.options["total_steps"] for c in res.threats if c.label in ("sa-rl", "pa-ad")}
    assert learned_steps == {"sa-rl": 1024, "pa-ad": 1024}  # the definition's CartPole budget
    saved = load_result(tmp_path / "eval.json")
    assert saved.provenance["suite"] == res.provenance["suite"]
    files = sorted(p.name for p in (tmp_path / "adversaries").iterdir())
    assert [f.split("-")[0] for f in files] == ["pa", "robust", "sa"]  # one per learned attack and ε > 0
    # a second run reuses every trained adversary and, same seed, reproduces every return
    again = evaluate_suite(cfg, definition=TINY)
    for c, d in zip(res.threats, again.threats):
        assert np.array_equal(c.returns, d.returns)
        assert all(a["reused"] for a in d.options.get("adversaries", []))
    assert json.loads((tmp_path / "eval.json").read_text())["config"]["threat"] == []


def test_robust_sarsa_reads_a_recurrent_victims_successors_with_the_state_it_acts_on() -> None:
    from robustrl.adversarial.sarsa import next_params
    from robustrl.envs import make_env
    from robustrl.policies import RecurrentActorCriticPolicy
    from robustrl.rollout import collect, start_collect

    env = make_env("CartPole-v1", 4, seed=0, max_episode_steps=12)  # episodes end (truncate) inside the chunks
    torch.manual_seed(0)
    victim = RecurrentActorCriticPolicy(env.observation_space, env.action_space, lstm_size=6)
    state = start_collect(env, seed=0)
    ended = 0
    for _ in range(3):  # the second and third chunks start from a carried, non-zero state
        state0 = None if victim.recurrent_state is None else victim.recurrent_state.clone()
        with torch.no_grad():
            traj = collect(victim, env, 10, state=state, deterministic=False)
            params = next_params(victim, traj, traj.next_obs(clean=True), state.episode_start, state0)
            # inside the chunk the successor of step t is step t+1's observation, acted on with that same state
            seq, _, _ = victim.sequence(traj.obs, torch.cat([state.episode_start[None], traj.done[:-1]]),
                                        victim.initial_state(4) if state0 is None else state0)
            keep = ~traj.done[:-1]
            assert torch.allclose(params[:-1][keep], seq[1:][keep], atol=1e-6)
            # after the chunk: what the victim's carried state gives on the observation it acts on next
            last = ~traj.done[-1]
            assert torch.allclose(params[-1][last], victim.action_params(traj.state.obs.float())[last], atol=1e-6)
        ended += int(traj.done.sum())
        state = traj.state
    env.close()
    assert ended > 0


def test_the_suite_evaluates_a_recurrent_policy(tmp_path: Path) -> None:
    from robustrl.envs import make_env
    from robustrl.policies import RecurrentActorCriticPolicy

    env = make_env("CartPole-v1", 1)
    torch.manual_seed(0)
    victim = RecurrentActorCriticPolicy(env.observation_space, env.action_space, lstm_size=6)
    policy_file = save_policy(victim, tmp_path / "policy.zip", env_id="CartPole-v1")
    cfg = EvaluateConfig(str(policy_file), "CartPole-v1", suite="sa-mdp-v1", budgets=(0.0, 0.2), episodes=4,
                         env_kwargs={"max_episode_steps": 40}, bootstrap_reps=20)
    res = evaluate_suite(cfg, definition=TINY)
    assert [c.label for c in res.threats] == ["random", "critic", "mad", "robust-sarsa", "sa-rl", "pa-ad"]
    assert all(np.isfinite(c.mean).all() for c in res.threats)
