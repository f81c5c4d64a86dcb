"""A training run folder is transactional: refused unless --overwrite/--resume, never mixed, result.json
last; tested with real SIGKILLs of `robustrl train` subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from robustrl.agents import TrainConfig, train
from robustrl.agents.run_folder import check_finished_run
from robustrl.policies import read_policy_info

QUICK = TrainConfig(algo="ppo", env="CartPole-v1", total_steps=2048, eval_every=512, eval_episodes=2, num_envs=8,
                    set=("num_steps=16",))


def test_an_existing_run_is_refused_without_overwrite_or_resume(tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = train(replace(QUICK, out=out))
    first_id = check_finished_run(out).run_id
    with pytest.raises(ValueError, match="--overwrite"):
        train(replace(QUICK, out=out, seed=1))
    assert json.loads((out / "config.json").read_text())["train"]["seed"] == 0  # untouched
    second = train(replace(QUICK, out=out, seed=1, overwrite=True))
    assert json.loads((out / "config.json").read_text())["train"]["seed"] == 1
    result = check_finished_run(out)
    assert result.run_id != first_id and result.steps == second.steps == first.steps


def test_folders_with_foreign_files_are_never_cleared(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    for flags in ({}, {"overwrite": True}):
        with pytest.raises(ValueError, match="never deletes"):
            train(replace(QUICK, out=out, **flags))
    assert (out / "thesis.tex").read_text() == "precious"


def test_resume_needs_a_checkpoint_and_the_same_config(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with pytest.raises(ValueError, match="no run to resume"):
        train(replace(QUICK, out=out, resume=True))
    train(replace(QUICK, out=out))
    (out / "result.json").unlink()
    with pytest.raises(ValueError, match="train.seed"):
        train(replace(QUICK, out=out, resume=True, seed=5))
    with pytest.raises(ValueError, match="unfinished"):
        check_finished_run(out)
    res = train(replace(QUICK, out=out, resume=True))
    assert check_finished_run(out).steps == res.steps == 2048


def test_checkpoint_resume_restores_the_learner_exactly(tmp_path: Path) -> None:
    from robustrl.agents.common import learner_state, load_learner_state
    from robustrl.agents.dqn import DQN, DQNConfig
    from robustrl.envs import make_env

    cfg = DQNConfig(num_envs=4, learning_starts=64, batch_size=32)
    a = DQN(make_env("CartPole-v1", 4, seed=0), cfg, seed=0)
    for _ in range(60):
        a.iterate()
    path = tmp_path / "ckpt.pt"
    torch.save(learner_state(a), path)
    b = DQN(make_env("CartPole-v1", 4, seed=0), cfg, seed=9)
    load_learner_state(b, torch.load(path, weights_only=True))
    assert b.steps == a.steps and b.buffer.size == a.buffer.size
    for pa, pb in zip(a.policy.parameters(), b.policy.parameters()):
        assert torch.equal(pa, pb)
    batch_a = a.buffer.sample(8, a._sample_gen)
    batch_b = b.buffer.sample(8, b._sample_gen)  # the replay generator's state came back too
    assert torch.equal(batch_a.obs, batch_b.obs)


def _spawn(out: Path, *extra: str) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "robustrl.cli", "train", "--algo", "dqn", "--env", "CartPole-v1",
            "--total-steps", "60000", "--eval-every", "2000", "--eval-episodes", "2", "--num-envs", "4",
            "--out", str(out), *extra]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "ROBUSTRL_NUM_THREADS": "1"})


def _kill_when(proc: subprocess.Popen[bytes], ready: Path, timeout: float = 120.0, *, not_id: str = "") -> None:
    deadline = time.monotonic() + timeout

    def is_ready() -> bool:
        if not ready.exists():
            return False
        if not_id:  # wait for the new run's config.json
            try:
                return json.loads((ready.parent / "config.json").read_text())["run_id"] != not_id
            except (OSError, ValueError, KeyError):
                return False
        return True

    while not is_ready():
        if proc.poll() is not None:
            pytest.fail(f"robustrl train exited with {proc.returncode} before writing {ready.name}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"{ready.name} did not appear within {timeout} s")
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def _run_ids(out: Path) -> set[str]:
    ids = set()
    for name in ("config.json", "result.json"):
        if (out / name).exists():
            ids.add(json.loads((out / name).read_text())["run_id"])
    if (out / "policy.zip").exists():
        ids.add(read_policy_info(out / "policy.zip").config["run_id"])  # type: ignore[index]
    if (out / "checkpoint.pt").exists():
        ids.add(torch.load(out / "checkpoint.pt", weights_only=True)["run_id"])
    return ids


@pytest.mark.parametrize("stage", ["config.json", "policy.zip", "checkpoint.pt"])
def test_sigkill_leaves_one_unfinished_run_that_resumes(tmp_path: Path, stage: str) -> None:
    out = tmp_path / "run"
    _kill_when(_spawn(out), out / stage)
    assert not (out / "result.json").exists()
    assert len(_run_ids(out)) == 1  # nothing mixed
    with pytest.raises(ValueError, match="unfinished"):
        check_finished_run(out)
    if (out / "checkpoint.pt").exists():
        done = subprocess.run(
            [sys.executable, "-m", "robustrl.cli", "train", "--algo", "dqn", "--env", "CartPole-v1",
             "--total-steps", "60000", "--eval-every", "2000", "--eval-episodes", "2", "--num-envs", "4",
             "--out", str(out), "--resume", "--stop-at-return", "-1"],
            capture_output=True, text=True, env={**os.environ, "ROBUSTRL_NUM_THREADS": "1"}, timeout=300,
        )
        assert done.returncode == 1 and "differs" in done.stderr  # --stop-at-return changed: refused
        leftovers = [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
        assert len(_run_ids(out)) == 1, leftovers


def test_sigkill_during_overwrite_never_leaves_the_old_result(tmp_path: Path) -> None:
    out = tmp_path / "run"
    train(replace(QUICK, out=out))
    old_id = json.loads((out / "result.json").read_text())["run_id"]
    _kill_when(_spawn(out, "--overwrite"), out / "config.json", not_id=old_id)
    assert not (out / "result.json").exists()
    ids = _run_ids(out)
    assert len(ids) == 1 and old_id not in ids


def test_the_report_refuses_run_folders_and_names_unfinished_ones(tmp_path: Path) -> None:
    from robustrl.report.loading import load_result as report_load

    out = tmp_path / "run"
    train(replace(QUICK, out=out))
    with pytest.raises(ValueError, match="training run folder"):
        report_load(out)
    (out / "result.json").unlink()
    with pytest.raises(ValueError, match="unfinished"):
        report_load(out)


def test_train_checks_its_device_before_any_work() -> None:
    with pytest.raises(ValueError, match="--device 'cuda:7'|--device 'tpu'"):
        train(replace(QUICK, device="tpu"))


def test_load_policy_reads_finished_run_folders_and_refuses_unfinished_ones(tmp_path: Path) -> None:
    from robustrl.policies import load_policy

    out = tmp_path / "run"
    train(replace(QUICK, out=out))
    assert load_policy(out).act(torch.zeros(3, 4)).shape == (3,)
    (out / "result.json").unlink()
    with pytest.raises(ValueError, match="unfinished"):
        load_policy(out)


def test_resume_accepts_a_config_written_before_a_field_existed(tmp_path: Path) -> None:
    """A run folder from an older robustrl lacks newer fields: absent means that field's default."""
    out = tmp_path / "run"
    train(replace(QUICK, out=out))
    (out / "result.json").unlink()
    saved = json.loads((out / "config.json").read_text())
    del saved["train"]["obs_noise"], saved["algo"]["lstm_size"]
    (out / "config.json").write_text(json.dumps(saved))
    assert train(replace(QUICK, out=out, resume=True)).steps == 2048
    (out / "result.json").unlink()
    saved["train"].pop("obs_noise", None)
    (out / "config.json").write_text(json.dumps(saved))
    with pytest.raises(ValueError, match="train.obs_noise"):  # absent, and not the default now
        train(replace(QUICK, out=out, resume=True, obs_noise=0.1))
