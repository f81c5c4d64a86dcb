"""train-offline: seeded learning on expert Pendulum data, run folders, determinism, CLI, bad inputs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from robustrl.offline.base import OfflineBuffer
from robustrl.offline.data import OfflineDataset, save_npz
from robustrl.offline.train import OfflineTrainConfig, train_offline
from robustrl.offline.weighting import return_weights
from robustrl.results import load_result


@pytest.fixture(scope="module")
def expert_file(tmp_path_factory: pytest.TempPathFactory, expert_data: OfflineDataset) -> str:
    return str(save_npz(expert_data, tmp_path_factory.mktemp("offline") / "pendulum-expert.npz"))


def test_iql_learns_from_expert_pendulum_data(expert_file: str) -> None:
    # random ≈ −1200, the expert ≈ −116; measured −217 after 1500 updates (seed 0)
    res = train_offline(OfflineTrainConfig(algo="iql", dataset=expert_file, updates=1500, eval_every=0,
                                           eval_episodes=16, set=("hidden=64,64", "normalize_obs=true")))
    assert res.final_return > -450
    assert res.final_score > 70


def test_every_learner_runs_and_is_deterministic(tmp_path: Path, expert_file: str) -> None:
    for algo in ("bc", "iql", "riql", "cql", "td3bc"):
        sets = ("hidden=16,16", "batch_size=32") + (("num_actions=2",) if algo == "cql" else ())
        cfg = OfflineTrainConfig(algo=algo, dataset=expert_file, updates=6, eval_every=3, eval_episodes=2, set=sets)
        a, b = train_offline(cfg), train_offline(cfg)
        assert [r.mean_return for r in a.history] == [r.mean_return for r in b.history]
        assert [r.step for r in a.history] == [3, 6] and a.updates == 6
        for pa, pb in zip(a.policy.state_dict().values(), b.policy.state_dict().values(), strict=True):
            torch.testing.assert_close(pa, pb, rtol=0, atol=0)
    assert a.config["algo"]["num_critics"] == 2


def test_run_folder_result_and_cli(tmp_path: Path, expert_file: str, capsys: pytest.CaptureFixture[str]) -> None:
    from robustrl.cli import main
    from robustrl.policies import load_policy

    out = tmp_path / "run"
    argv = ["train-offline", "--algo", "riql", "--dataset", expert_file, "--updates", "4", "--eval-every", "2",
            "--eval-episodes", "2", "--set", "hidden=16,16", "--out", str(out)]
    assert main(argv) == 0
    assert "riql on" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "config.json", "eval.json", "policy.zip",
                                                    "result.json"]
    res = load_result(out / "result.json")
    assert res.kind == "offline_train" and res.updates == 4 and len(res.history) == 2
    assert res.config["algo"]["q_loss"] == "huber" and res.config["algo"]["num_critics"] == 5
    rows = {r.metric: r for r in res.to_rows()}
    assert rows["normalized_score"].threat == "clean" and rows["return_mean"].policy == "riql"
    pi = load_policy(out / "policy.zip")
    obs = torch.zeros(3, 3)
    assert pi.act(obs).shape == (3, 1) and pi.critic(obs, pi.act(obs)).shape == (3,)
    assert main(argv) == 1  # an existing run is refused without --overwrite
    assert "already holds" in capsys.readouterr().err


def test_bad_inputs_fail_before_work(tmp_path: Path, expert_file: str) -> None:
    cases = [({"algo": "sac"}, "unknown offline algo"), ({"dataset": ""}, "--dataset"),
             ({"updates": 0}, "updates"), ({"eval_every": -1}, "eval_every"),
             ({"overwrite": True, "out": None}, "--out"),
             ({"set": ("expectile=1.5",)}, "expectile"), ({"set": ("nope=1",)}, "unknown IQLConfig key"),
             ({"env": "CartPole-v1"}, "the dataset's are Box"), ({"env": "MountainCarContinuous-v0"}, "dims")]
    for kwargs, msg in cases:
        cfg = dataclasses.replace(OfflineTrainConfig(dataset=expert_file, updates=2, out=tmp_path / "x"), **kwargs)
        with pytest.raises(ValueError, match=msg):
            train_offline(cfg)
    assert not (tmp_path / "x").exists()


def test_return_reweighting_prefers_good_episodes(expert_data: OfflineDataset) -> None:
    w = return_weights(expert_data, 0.1)
    assert w.sum() == pytest.approx(1.0)
    returns = expert_data.episode_returns()
    best, worst = int(returns.argmax()), int(returns.argmin())
    per_episode = np.bincount(expert_data.episode_ids, weights=w)
    assert per_episode[best] > per_episode[worst] * 100
    import gymnasium as gym

    buf = OfflineBuffer(expert_data, gym.spaces.Box(-2.0, 2.0, (1,)), w)
    batch = buf.sample(4096, torch.Generator().manual_seed(0))
    assert float(batch.actions.abs().max()) <= 1.0  # actions rescaled to [−1, 1]


def test_a_killed_run_resumes_to_the_uninterrupted_result(tmp_path: Path, expert_file: str) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    sets = ("hidden=16,16", "batch_size=32")
    argv = [sys.executable, "-m", "robustrl.cli", "train-offline", "--algo", "td3bc", "--dataset", expert_file,
            "--updates", "1500", "--eval-every", "100", "--eval-episodes", "2", "--set", *sets, "--out", str(out)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "ROBUSTRL_NUM_THREADS": "1"})
    deadline = time.monotonic() + 120
    while not (out / "checkpoint.pt").exists():
        assert proc.poll() is None, f"train-offline exited with {proc.returncode} before its first checkpoint"
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not (out / "result.json").exists()
    cfg = OfflineTrainConfig(algo="td3bc", dataset=expert_file, updates=1500, eval_every=100, eval_episodes=2,
                             set=sets)
    with pytest.raises(ValueError, match="train_offline.seed"):
        train_offline(dataclasses.replace(cfg, out=out, resume=True, seed=3))
    resumed = train_offline(dataclasses.replace(cfg, out=out, resume=True))
    whole = train_offline(cfg)
    assert [(r.step, r.mean_return) for r in resumed.history] == [(r.step, r.mean_return) for r in whole.history]
    for pa, pb in zip(resumed.policy.state_dict().values(), whole.policy.state_dict().values(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=0, atol=0)
    assert load_result(out / "result.json").updates == 1500
