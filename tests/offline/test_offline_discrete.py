"""Offline learners on Discrete actions: BC, discrete CQL, IQL and RIQL learn CartPole from a noisy expert's data."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

import robustrl
from robustrl.offline import OfflineTrainConfig, train_offline
from robustrl.offline.base import OfflineBuffer
from robustrl.offline.collect import RandomPolicy, collect_episodes
from robustrl.offline.data import save_npz
from robustrl.offline.discrete import DiscreteCQL, DiscreteCQLConfig


class Balancer:
    """Push toward the side the pole falls to: solves CartPole (return 500)."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (4,))
    action_space = gym.spaces.Discrete(2)

    def act(self, obs: torch.Tensor, *, deterministic: bool = True, generator: Any = None) -> torch.Tensor:
        return (obs[:, 2] + 0.5 * obs[:, 3] > 0).long()


@pytest.fixture(scope="module")
def cartpole_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    env = robustrl.make_env("CartPole-v1", 8, seed=0)
    data = collect_episodes(Balancer(), env, 8, noise=0.3, seed=0, meta={"recipe": "noisy-expert"})
    env.close()
    data = dataclasses.replace(data, env_id="CartPole-v1", ref_min_score=22.0, ref_max_score=500.0)
    path = tmp_path_factory.mktemp("data") / "cartpole.npz"
    save_npz(data, path)
    return str(path)


@pytest.mark.parametrize("algo", ["bc", "cql", "iql", "riql"])
def test_discrete_learners_learn_cartpole_from_a_noisy_expert(cartpole_file: str, algo: str, tmp_path: Path) -> None:
    cfg = OfflineTrainConfig(algo=algo, dataset=cartpole_file, updates=1500, eval_every=0, eval_episodes=8, seed=0,
                             set=("hidden=64,64", "learning_rate=1e-3"), out=tmp_path / algo)  # fmt: skip
    res = train_offline(cfg)
    assert res.history[-1].mean_return > 400, res.history  # the data's own return is far lower (ε = 0.3)
    pi = robustrl.load_policy(tmp_path / algo / "policy.zip")
    obs = torch.tensor([[0.0, 0.0, 0.05, 0.0], [0.0, 0.0, -0.05, 0.0]])
    assert pi.act(obs).tolist() == [1, 0]  # the expert's choice at a clearly tilted pole


def test_discrete_cql_penalty_lowers_unseen_actions(cartpole_file: str) -> None:
    from robustrl.offline.data import load_dataset

    data = load_dataset(cartpole_file)
    space = gym.spaces.Discrete(2)
    buffer = OfflineBuffer(data, space)
    gen = torch.Generator().manual_seed(0)
    gaps = {}
    for alpha in (0.0, 5.0):
        cfg = DiscreteCQLConfig(hidden=(64, 64), cql_alpha=alpha)
        learner = DiscreteCQL(Balancer.observation_space, space, data, cfg, seed=0)
        for _ in range(300):
            learner.update(buffer.sample(256, gen))
        with torch.no_grad():
            q = learner.policy.q_values(buffer.obs)
            seen = q.gather(1, buffer.actions.view(-1, 1)).squeeze(1)
            gaps[alpha] = float((torch.logsumexp(q, 1) - seen).mean())
    assert gaps[5.0] < gaps[0.0]  # the penalty pushes the log-sum-exp down toward the data actions' values


def test_box_only_learners_and_online_phase_refuse_discrete_data(cartpole_file: str) -> None:
    with pytest.raises(ValueError, match="--algo td3bc needs Box actions.*use bc or cql or iql or riql"):
        train_offline(OfflineTrainConfig(algo="td3bc", dataset=cartpole_file, updates=2))
    with pytest.raises(ValueError, match="--online-steps fine-tunes Box-action learners only"):
        train_offline(OfflineTrainConfig(algo="iql", dataset=cartpole_file, updates=2, online_steps=8))


def test_random_data_buffer_checks_the_action_range() -> None:
    env = robustrl.make_env("CartPole-v1", 2, seed=0)
    data = collect_episodes(RandomPolicy(env.observation_space, env.action_space), env, 2, seed=0)
    env.close()
    with pytest.raises(ValueError, match="not in Discrete\\(1\\)"):
        OfflineBuffer(data, gym.spaces.Discrete(1))
    assert OfflineBuffer(data, gym.spaces.Discrete(2)).actions.dtype == torch.int64


def test_adversarial_corruption_against_a_q_network_lowers_q_more_than_random(cartpole_file: str) -> None:
    from robustrl.offline.corruption import CorruptionConfig, corrupt
    from robustrl.offline.data import load_dataset

    data = load_dataset(cartpole_file)
    critic = train_offline(OfflineTrainConfig(algo="cql", dataset=cartpole_file, updates=300, eval_every=0,
                                              eval_episodes=1, set=("hidden=32,32",))).policy  # fmt: skip
    for element in ("obs", "next_obs"):
        q = {}
        for mode in ("random", "adversarial"):
            cfg = CorruptionConfig(element, mode, 1.0, 1.0, attack_steps=20, attack_step_size=0.1, seed=0)
            out = corrupt(data, cfg, policy=critic)
            with torch.no_grad():
                if element == "next_obs":
                    q[mode] = float(critic.q_values(torch.as_tensor(out.next_observations)).amax(1).mean())
                else:
                    values = critic.q_values(torch.as_tensor(out.observations))
                    q[mode] = float(values.gather(1, torch.as_tensor(out.actions).view(-1, 1)).mean())
        assert q["adversarial"] < q["random"], (element, q)
    with pytest.raises(ValueError, match="q_values\\(obs\\) for Discrete actions"):
        corrupt(data, CorruptionConfig("obs", "adversarial"), policy=Balancer())


def test_a_study_checks_discrete_datasets_against_the_discrete_learners(cartpole_file: str, tmp_path: Path) -> None:
    from robustrl.experiments.cells import load_study
    from robustrl.experiments.locate import StudySpecError

    def spec(algo: str, set_: str) -> Path:
        path = tmp_path / f"{algo}.toml"
        path.write_text(f'[study]\nname = "d"\nseeds = [0]\n\n[train_offline]\nalgo = "{algo}"\n'
                        f'dataset = "{cartpole_file}"\nupdates = 4\nset = ["{set_}"]\n')  # fmt: skip
        return path

    # num_actions is a field of the Box CQL only: on Discrete actions it is unknown, and α = 1 is Discrete's default
    assert load_study(spec("cql", "cql_alpha=2.0")).cells
    with pytest.raises(StudySpecError, match="num_actions"):
        load_study(spec("cql", "num_actions=4"))
    with pytest.raises(StudySpecError, match="td3bc needs Box actions"):
        load_study(spec("td3bc", "alpha=2.5"))
