"""Offline-to-online fine-tuning (RO2O): config checks, the penalty and smoothness terms, a Pendulum run, resume."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch

import robustrl
from robustrl.agents.critics import CriticEnsemble
from robustrl.offline.base import OfflineBuffer
from robustrl.offline.collect import RandomPolicy, collect_episodes
from robustrl.offline.data import OfflineDataset, save_npz
from robustrl.offline.iql import IQL, IQLConfig
from robustrl.offline.losses import ball_noise, policy_smoothness, q_smoothness, uncertainty_penalty
from robustrl.offline.online import OnlineConfig, OnlineFineTuner, OnlineReplay
from robustrl.offline.train import OfflineTrainConfig, train_offline
from robustrl.results import load_result


@pytest.fixture(scope="module")
def random_data() -> OfflineDataset:
    """5 uniform-random Pendulum episodes (1000 transitions): a poor dataset, random = score 0."""
    env = robustrl.make_env("Pendulum-v1", 5, seed=0)
    data = collect_episodes(RandomPolicy(env.observation_space, env.action_space), env, 5, seed=1)
    env.close()
    return dataclasses.replace(data, ref_min_score=float(data.episode_returns().mean()), ref_max_score=-150.0)


@pytest.fixture(scope="module")
def random_file(tmp_path_factory: pytest.TempPathFactory, random_data: OfflineDataset) -> str:
    return str(save_npz(random_data, tmp_path_factory.mktemp("online") / "pendulum-random.npz"))


SMALL = ("hidden=16,16", "batch_size=32")


def test_bad_online_configs_fail_before_work(tmp_path: Path, random_file: str) -> None:
    cases = [({"online_steps": -1}, "online_steps"), ({"online_set": ("beta=1",)}, "--online-steps"),
             ({"algo": "bc", "online_steps": 10}, "not 'bc'"), ({"algo": "cql", "online_steps": 10}, "not 'cql'"),
             ({"online_steps": 10, "online_set": ("beta=-1",)}, "OnlineConfig.beta"),
             ({"online_steps": 10, "online_set": ("offline_ratio=1.5",)}, "offline_ratio"),
             ({"online_steps": 10, "online_set": ("smooth_samples=0",)}, "smooth_samples"),
             ({"online_steps": 10, "online_set": ("nope=1",)}, "unknown OnlineConfig key"),
             ({"online_steps": 10, "online_set": ("num_envs=4",)}, "multiple of OnlineConfig.num_envs"),
             ({"online_steps": 10, "set": ("num_critics=1",)}, "num_critics ≥ 2")]
    for kwargs, msg in cases:
        cfg = dataclasses.replace(OfflineTrainConfig(dataset=random_file, updates=2, out=tmp_path / "x"), **kwargs)
        with pytest.raises(ValueError, match=msg):
            train_offline(cfg)
    assert not (tmp_path / "x").exists()
    with pytest.raises(ValueError, match="OnlineConfig.eval_every"):
        OnlineConfig(eval_every=-1).validate()
    OnlineConfig(offline_ratio=None).validate()


def test_uncertainty_penalty_matches_hand_values() -> None:
    q = torch.tensor([[1.0, 2.0, -1.0], [3.0, 2.0, 1.0], [5.0, 2.0, 3.0]])  # K = 3 critics, B = 3
    # sample std over the critics: (1, 3, 5) → 2, (2, 2, 2) → 0, (−1, 1, 3) → 2; β = 0.5
    torch.testing.assert_close(uncertainty_penalty(q, 0.5), torch.tensor([1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="K ≥ 2"):
        uncertainty_penalty(q[:1], 1.0)


def test_smoothness_is_zero_for_a_constant_critic_and_positive_otherwise() -> None:
    gen = torch.Generator().manual_seed(0)
    feats, actions = torch.randn(8, 3, generator=gen), torch.rand(8, 1, generator=gen) * 2 - 1
    noise = ball_noise(5, 8, 3, 0.1, gen)
    assert noise.shape == (5, 8, 3) and float(noise.abs().max()) <= 0.1
    pert = (feats + noise).flatten(0, 1)

    @torch.no_grad()
    def q_terms(critic: CriticEnsemble) -> torch.Tensor:
        clean = critic.q_values(torch.cat([feats, actions], -1))
        return q_smoothness(clean, critic.q_values(torch.cat([pert, actions.repeat(5, 1)], -1)).unflatten(1, (5, 8)))

    torch.manual_seed(0)
    critic = CriticEnsemble(4, (16, 16), "relu", 2)
    assert float(q_terms(critic)) > 0
    with torch.no_grad():  # a critic whose value ignores the state: the first layer's state weights at 0
        critic.weights[0][:, :3, :].zero_()
    assert float(q_terms(critic)) < 1e-12  # zero up to the float rounding of differently sized matmuls
    with torch.no_grad():  # a constant critic
        critic.weights[0].zero_()
    assert float(q_terms(critic)) < 1e-12
    # hand values: the worst of the perturbed states counts
    q_clean, q_pert = torch.tensor([[1.0], [1.0]]), torch.tensor([[[1.5], [3.0]], [[0.5], [1.0]]])  # [K, n, B]
    assert float(q_smoothness(q_clean, q_pert)) == pytest.approx(max((0.25 + 0.25) / 2, (4.0 + 0.0) / 2))
    a, a_pert = torch.tensor([[0.0, 0.0]]), torch.tensor([[[0.1, 0.2]], [[0.3, 0.0]]])
    assert float(policy_smoothness(a, a_pert)) == pytest.approx(0.09)
    assert float(policy_smoothness(a, a.unsqueeze(0).repeat(3, 1, 1))) == 0.0


@pytest.mark.parametrize("algo", ["iql", "td3bc"])
def test_ro2o_terms_off_is_the_offline_update_and_on_changes_it(random_data: OfflineDataset, algo: str) -> None:
    import copy

    from robustrl.offline.base import RO2OTerms
    from robustrl.offline.td3bc import TD3BC, TD3BCConfig

    env = robustrl.make_env("Pendulum-v1", 1, seed=0)
    if algo == "iql":
        learner: Any = IQL(env.observation_space, env.action_space, random_data, IQLConfig(hidden=(16, 16)), seed=0)
    else:
        learner = TD3BC(env.observation_space, env.action_space, random_data, TD3BCConfig(hidden=(16, 16)), seed=0)
    env.close()
    batch = OfflineBuffer(random_data, env.action_space).sample(32, torch.Generator().manual_seed(0))
    noise = ball_noise(3, 32, 3, 0.05, torch.Generator().manual_seed(1))
    runs = {"plain": None, "off": RO2OTerms(0.0, None, 1.0, 1.0), "beta": RO2OTerms(5.0, None, 0.0, 0.0),
            "smooth": RO2OTerms(0.0, noise, 10.0, 10.0)}  # fmt: skip
    critics = {}
    for name, terms in runs.items():
        clone = copy.deepcopy(learner)
        for _ in range(2):  # TD3+BC's actor steps every second update
            clone.update(batch, terms)
        critics[name] = torch.cat([p.flatten() for p in clone.critics.parameters()])
    torch.testing.assert_close(critics["off"], critics["plain"], rtol=0, atol=0)
    assert not torch.equal(critics["beta"], critics["plain"])
    assert not torch.equal(critics["smooth"], critics["plain"])


def test_the_replay_grows_by_exactly_the_online_steps(random_data: OfflineDataset) -> None:
    env = robustrl.make_env("Pendulum-v1", 2, seed=0)
    cfg = IQLConfig(hidden=(16, 16), batch_size=32)
    learner = IQL(env.observation_space, env.action_space, random_data, cfg, seed=0)
    replay = OnlineReplay(OfflineBuffer(random_data, env.action_space), 100)
    tuner = OnlineFineTuner(learner, replay, env, OnlineConfig(num_envs=2), seed=0)
    for _ in range(50):
        metrics = tuner.step()
    assert replay.offline.size == 1000 and replay.online.size == 100 and replay.size == 1100
    assert tuner.env_steps == 100 and learner.updates == 100
    assert float(replay.online.actions.abs().max()) <= 1.0  # stored in [−1, 1] like the offline actions
    assert {"train/q_smoothness", "train/policy_smoothness"} <= set(metrics)
    assert float(metrics["train/q_smoothness"]) > 0
    b = replay.sample(64, 0.25, torch.Generator().manual_seed(0))
    assert b.obs.shape == (64, 3) and b.actions.shape == (64, 1)
    env.close()


def test_pendulum_run_records_both_phases(tmp_path: Path, random_file: str) -> None:
    out = tmp_path / "run"
    cfg = OfflineTrainConfig(algo="td3bc", dataset=random_file, updates=40, eval_every=20, eval_episodes=2, set=SMALL,
                             online_steps=200, online_set=("eval_every=100",), out=out)
    res = train_offline(cfg)
    assert [(r.phase, r.step, r.env_steps) for r in res.history] == [
        ("offline", 20, 0), ("offline", 40, 0), ("online", 140, 100), ("online", 240, 200)]
    assert res.online_steps == 200 and res.updates == 240
    assert res.offline_return == res.history[1].mean_return and res.final_return == res.history[-1].mean_return
    back = load_result(out / "result.json")
    assert back.online_steps == 200 and [r.phase for r in back.history] == [r.phase for r in res.history]
    assert back.offline_score == pytest.approx(res.offline_score)
    assert back.config["online"]["beta"] == OnlineConfig().beta
    again = train_offline(dataclasses.replace(cfg, out=None))
    assert [r.mean_return for r in again.history] == [r.mean_return for r in res.history]  # seeded


def test_a_run_killed_in_the_online_phase_resumes(tmp_path: Path, random_file: str) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    from robustrl.common.io import read_json

    out = tmp_path / "run"
    argv = [sys.executable, "-m", "robustrl.cli", "train-offline", "--algo", "iql", "--dataset", random_file,
            "--updates", "20", "--eval-every", "20", "--eval-episodes", "2", "--set", *SMALL, "--online-steps", "800",
            "--online-set", "eval_every=200", "--out", str(out)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "ROBUSTRL_NUM_THREADS": "1"})
    deadline = time.monotonic() + 120

    def online_records() -> int:
        try:
            return sum(r["phase"] == "online" for r in read_json(out / "eval.json"))
        except (ValueError, OSError):
            return 0

    while online_records() < 1:
        assert proc.poll() is None, f"train-offline exited with {proc.returncode} before an online checkpoint"
        assert time.monotonic() < deadline, "no online checkpoint within 120 s"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not (out / "result.json").exists()
    cfg = OfflineTrainConfig(algo="iql", dataset=random_file, updates=20, eval_every=20, eval_episodes=2, set=SMALL,
                             online_steps=800, online_set=("eval_every=200",))
    with pytest.raises(ValueError, match="online.beta"):
        train_offline(dataclasses.replace(cfg, out=out, resume=True, online_set=("eval_every=200", "beta=2")))
    done = read_json(out / "eval.json")
    resumed = train_offline(dataclasses.replace(cfg, out=out, resume=True))
    steps = [r.env_steps for r in resumed.history if r.phase == "online"]
    assert steps == list(range(200, 801, 200)) and resumed.online_steps == 800
    assert resumed.updates == 20 + 800
    # the evaluations before the kill are kept as they were
    assert [r.mean_return for r in resumed.history[: len(done)]] == [r["mean_return"] for r in done]
    assert load_result(out / "result.json").online_steps == 800


def test_online_fine_tuning_improves_a_policy_learned_from_random_data(random_file: str) -> None:
    # measured on this dataset (2-core CPU shared, ≈ 7 s): seed 0 −1366 after the offline phase, −979 after 2400
    # online steps (score −7.8 → 26.5); seeds 1 and 2: −1516 → −932, −1162 → −1006
    sets = ("hidden=32,32", "batch_size=64", "learning_rate=3e-3", "gamma=0.97", "alpha=50", "policy_delay=1")
    cfg = OfflineTrainConfig(algo="td3bc", dataset=random_file, updates=100, eval_every=0, eval_episodes=8, set=sets,
                             online_steps=2400, online_set=("num_envs=8", "smooth_samples=4", "beta=0.1"))
    res = train_offline(cfg)
    assert [r.phase for r in res.history] == ["offline", "online"]
    assert res.final_return > res.offline_return + 200
    assert res.final_score > res.offline_score + 10
