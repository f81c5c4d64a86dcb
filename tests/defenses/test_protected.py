"""PROTECTED: EXP3 maths, EXP3 on a toy bandit, the trainer's run folder and resume, switching-attack adaptation."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from robustrl.agents.train import TrainConfig
from robustrl.common.io import read_json, write_json
from robustrl.defenses.protected import (
    exp3,
    exp3_probabilities,
    exp3_update,
    non_dominated,
    normalise_returns,
    regret,
    select_set,
    weakest_attack,
)
from robustrl.defenses.registry import resolve_defense
from robustrl.evaluate.protected import AdaptConfig, adapt, adapt_policies, attack_schedule
from robustrl.jobs import train
from robustrl.policies import load_policy
from robustrl.results import TrainResult, load_result
from robustrl.threats.registry import make_threat


def test_exp3_maths_on_hand_computed_values():
    # weights (1, 3), gamma 0.2: 0.8 * (1/4, 3/4) + 0.1
    assert np.allclose(exp3_probabilities(np.log([1.0, 3.0]), 0.2), [0.3, 0.7])
    # a shift of every log weight changes nothing; huge ones do not overflow
    assert np.allclose(exp3_probabilities(np.array([1000.0, 1000.0 + math.log(3)]), 0.2), [0.3, 0.7])
    # reward 0.5 at p = 0.25: estimate 2, eta 0.1 -> +0.2 on the played arm only
    assert np.allclose(exp3_update(np.zeros(3), np.array([0.25, 0.5, 0.25]), 0, 0.5, 0.1), [0.2, 0.0, 0.0])
    # log weights (1, 0), reward 0.5 at p = 0.5, eta 2: (3, 0); fixed share 0.5: 0.5 * (e^3, 1) / (e^3 + 1) + 0.25
    lw = exp3_update(np.array([1.0, 0.0]), np.array([0.5, 0.5]), 0, 0.5, 2.0, share=0.5)
    w = np.exp(lw)
    e3 = math.exp(3.0)
    assert np.allclose(w / w.sum(), [0.5 * e3 / (e3 + 1) + 0.25, 0.5 / (e3 + 1) + 0.25])
    # regret against the best fixed arm of each prefix
    table = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    assert regret(table, np.array([1, 0, 0, 0])).tolist() == [1.0, 1.0, 2.0, 1.0]
    assert regret(table, np.array([0, 1, 1, 0])).tolist() == [0.0, -1.0, -1.0, -2.0]
    assert normalise_returns(np.array([-5.0, 10.0, 30.0]), 0.0, 20.0).tolist() == [0.0, 0.5, 1.0]
    with pytest.raises(ValueError, match="high > low"):
        normalise_returns(np.zeros(2), 1.0, 1.0)


def test_set_selection_on_hand_made_return_vectors():
    v = np.array([[500.0, 100.0, 90.0], [300.0, 300.0, 100.0], [200.0, 250.0, 300.0], [250.0, 250.0, 80.0]])
    assert non_dominated(v) == [0, 1, 2]  # row 3 is below row 1 everywhere
    assert non_dominated(np.array([[1.0, 2.0], [1.0, 2.0]])) == [0]
    assert select_set(v, 1) == [2]  # the best mean
    assert select_set(v, 2) == [0, 2]  # covers (500, 250, 300)
    assert select_set(v, 10) == [0, 1, 2]
    assert weakest_attack(v, [0]) == 2 and weakest_attack(v, [0, 2]) == 1


def test_exp3_on_a_toy_bandit_finds_the_best_arm_with_sublinear_regret():
    k, means = 3, np.array([0.3, 0.5, 0.8])
    avg = {}
    for t_max in (250, 1000, 4000):
        gamma = min(1.0, math.sqrt(k * math.log(k) / ((math.e - 1) * t_max)))  # Auer et al.'s tuning
        regrets, best_share = [], []
        for s in range(3):
            table = (np.random.default_rng(100 + s).random((t_max, k)) < means).astype(float)
            run = exp3(table, gamma, gamma / k, np.random.default_rng(s))
            regrets.append(regret(table, run.arms)[-1])
            best_share.append((run.arms[t_max // 2:] == 2).mean())
            assert np.allclose(run.probs.sum(axis=1), 1.0) and (run.probs >= gamma / k - 1e-12).all()
        assert np.mean(regrets) <= 2.63 * math.sqrt(t_max * k * math.log(k))  # EXP3's bound (Auer et al. 2002)
        avg[t_max] = np.mean(regrets) / t_max
        if t_max == 4000:
            assert np.mean(best_share) > 0.9
    assert avg[250] > avg[1000] > avg[4000]
    assert avg[4000] < 0.4 * avg[250]  # linear regret would keep the average constant


def test_config_rejects_bad_values_naming_the_field():
    for key, field in [("iterations=0", "iterations"), ("exp3_gamma=0", "exp3_gamma"), ("exp3_eta=-1", "exp3_eta"),
                       ("exp3_share=1", "exp3_share"), ("attacks=pgd", "attacks"),
                       ("attacks=pgd:0.1,pgd:0.1", "attacks")]:
        with pytest.raises(ValueError, match=field):
            resolve_defense("protected", [key])
    cfg = resolve_defense("protected", ["attacks=none:0,pgd:0.05"])
    assert cfg.attack_list() == [("none", 0.0), ("pgd", 0.05)]
    with pytest.raises(ValueError, match="unknown threat"):
        train(TrainConfig(defense="protected", defense_set=("attacks=nosuch:0.1",), total_steps=256))
    with pytest.raises(ValueError, match="action threat"):
        train(TrainConfig(defense="protected", defense_set=("attacks=action_noise:0.1",), total_steps=256))
    with pytest.raises(ValueError, match="PPO"):
        train(TrainConfig(algo="dqn", defense="protected", total_steps=256))


def _run(tmp_path, **kw):
    base = TrainConfig(algo="ppo", env="CartPole-v1", total_steps=4096, num_envs=16, eval_every=0, eval_episodes=2,
                       defense="protected", out=tmp_path / "run",
                       defense_set=("iterations=2", "set_size=2", "attacks=none:0,uniform:0.5", "eval_episodes=4"))
    return train(dataclasses.replace(base, **kw))


def test_trainer_writes_a_loadable_policy_set_and_resumes(tmp_path):
    res = _run(tmp_path)
    run = tmp_path / "run"
    saved = read_json(run / "protected.json")
    assert [r["iteration"] for r in saved["iterations"]] == [0, 1]
    assert saved["iterations"][0]["trained_against"] is None
    assert saved["iterations"][1]["trained_against"] in ("none:0", "uniform:0.5")
    members = saved["set"]
    assert members and set(members) <= {0, 1} and saved["selected"] in members
    for i in (0, 1):
        pol = load_policy(run / f"policy_{i}" / "policy.zip", env_id="CartPole-v1")
        assert pol.act(torch.zeros(3, 4)).shape == (3,)
    assert isinstance(res, TrainResult) and res.steps == 4096
    again = load_result(run / "result.json")
    assert again.config["protected"]["set"] == members
    assert len(again.config["protected"]["returns"]) == 2
    assert load_policy(run / "policy.zip").act(torch.zeros(1, 4)).shape == (1,)

    # interrupted after iteration 0: drop iteration 1 and the final files, then resume
    first = saved["iterations"][0]
    write_json(run / "protected.json", {**saved, "set": None, "selected": None, "iterations": [first]})
    for name in ("result.json", "policy.zip"):
        (run / name).unlink()
    import shutil

    shutil.rmtree(run / "policy_1")
    _run(tmp_path, resume=True)
    resumed = read_json(run / "protected.json")
    assert resumed["iterations"][0] == first  # kept, not retrained
    assert resumed["iterations"][1]["returns"] == saved["iterations"][1]["returns"]  # same seed, same policy
    assert resumed["set"] == members and (run / "policy_1" / "policy.zip").is_file()
    with pytest.raises(ValueError, match="differs"):
        _run(tmp_path, resume=True, seed=1)
    with pytest.raises(ValueError, match="already holds"):
        _run(tmp_path)

    # the test-time adaptation reads the run folder
    out = adapt(AdaptConfig(run=run, attacks=("none:0",), episodes=12, num_envs=12, out=tmp_path / "a.json"))
    assert out.arms.shape == (12,) and len(out.policies) == len(members)
    assert read_json(tmp_path / "a.json")["choice_frequencies"] == out.choice_frequencies.tolist()
    from robustrl.cli import main

    assert main(["adapt", "--run", str(run), "--attacks", "none:0", "uniform:0.5", "--switch-every", "6",
                 "--episodes", "12", "--num-envs", "12", "--out", str(tmp_path / "b.json")]) == 0
    assert read_json(tmp_path / "b.json")["schedule"] == [0] * 6 + [1] * 6


class Linear:
    """CartPole controller: push right when ``obs · w > 0`` (uses only the dimensions where w ≠ 0)."""

    def __init__(self, w):
        self.w = torch.tensor(w, dtype=torch.float32)

    def act(self, obs, *, deterministic=True, generator=None):
        return (obs.float() @ self.w > 0).long()


def _noise_on(dim):
    scale = torch.full((4,), 1e-6)
    scale[dim] = 1.0
    return make_threat("uniform", 1.0, scale=scale)  # ±1 uniform noise on one observation dimension


def test_online_selection_follows_a_switching_attack():
    # policy 0 ignores the cart velocity (dim 1), policy 1 the pole angle (dim 2)
    policies = [Linear([0.0, 0.0, 1.0, 1.0]), Linear([0.0, 0.5, 0.0, 1.0])]
    attacks = [_noise_on(1), _noise_on(2)]
    res = adapt_policies(policies, "CartPole-v1", attacks, attack_schedule(300, 2, 150), return_range=(0.0, 500.0),
                         gamma=0.1, eta=0.5, seed=0)
    first, second = res.returns[:150].mean(axis=0), res.returns[150:].mean(axis=0)
    assert first[0] > first[1] + 100 and second[1] > second[0] + 100  # the construction holds
    assert res.phase_preferred() == [0, 1]
    assert (res.arms[75:150] == 0).mean() > 0.75 and (res.arms[225:] == 1).mean() > 0.75
    # switching beats every fixed policy of the set: negative regret against the best one in hindsight
    assert res.mean_return > res.returns.mean(axis=0).max() and res.regret_return < 0
    assert res.choice_frequencies.sum() == pytest.approx(1.0)

    static = adapt_policies(policies, "CartPole-v1", attacks, attack_schedule(150, 1, 0), return_range=(0.0, 500.0),
                            gamma=0.1, eta=0.5, seed=0)
    assert static.best_fixed == 0 and static.choice_frequencies[0] > 0.7
    assert static.regret[-1] < 0.25 * 150
    with pytest.raises(ValueError, match="schedule"):
        adapt_policies(policies, "CartPole-v1", attacks, np.array([0, 2]), return_range=(0.0, 500.0))
