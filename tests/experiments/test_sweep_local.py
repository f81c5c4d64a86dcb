"""Real sweeps with the local executor: every cell once, resume after SIGKILL, changed specs, failures."""

from __future__ import annotations

import logging
import time

import duckdb
from studyutil import (
    alive,
    check_exactly_once,
    children,
    finished_files,
    kill,
    launch,
    tiny_spec,
    training_in_progress,
    wait_for,
)

from robustrl.agents.train import TrainConfig, train
from robustrl.experiments.cells import load_study
from robustrl.experiments.cli import ResultsConfig, SweepConfig, run_results, run_sweep


def test_sweep_runs_every_cell_once_then_only_new_cells(tmp_path, caplog):
    spec = tiny_spec(tmp_path / "tiny.toml")
    out = tmp_path / "study"
    with caplog.at_level(logging.INFO, logger="robustrl.experiments.sweep"):
        res = run_sweep(SweepConfig(spec, out, workers=2, progress=True))
    assert (res.ran, res.failed, res.skipped) == (12, 0, 0) and res.complete
    check_exactly_once(out, load_study(spec))
    assert "12 run now" in str(res)
    done = [r.getMessage() for r in caplog.records if r.getMessage().startswith("done: ")]
    assert len(done) == 12 and any(m.startswith("done: train ") and "seed=1" in m for m in done)

    again = run_sweep(SweepConfig(spec, out, workers=0, progress=False))
    assert again.ran == 0 and again.plan.to_run == 0
    assert all(s.calibrated for s in again.plan.stages)  # the estimate now comes from measured cells

    summary = run_results(ResultsConfig(out, reps=200))
    assert {a.group for a in summary.aggregates} == {("ppo",), ("ppo+noise",)}
    assert all(a.runs == 2 and a.tasks == ("CartPole-v1",) for a in summary.aggregates)
    conditions = {(a.condition.stage, a.condition.threat, a.condition.budget) for a in summary.aggregates}
    assert ("evaluate", "uniform", 0.1) in conditions and ("certify", "any:obs/episode_l2", 0.2) in conditions
    assert ("evaluate", "uniform", 0.0) not in conditions  # budget 0 is the clean run, listed once as clean

    train_files = {p: p.stat().st_mtime_ns for p in (out / "artefacts").glob("*/policy.zip")}
    changed = tiny_spec(tmp_path / "changed.toml", budgets="[0.0, 0.2]")
    res = run_sweep(SweepConfig(changed, out, workers=0, progress=False))
    assert res.ran == 4  # the four evaluate cells; training and certificates are unchanged
    assert {p: p.stat().st_mtime_ns for p in (out / "artefacts").glob("*/policy.zip")} == train_files
    check_exactly_once(out, load_study(changed))


def test_sigkill_at_several_points_then_resume(tmp_path):
    spec = tiny_spec(tmp_path / "tiny.toml", steps=8192)
    out = tmp_path / "study"
    study = load_study(spec)

    # 1: kill while a training cell runs: its run folder has config.json but no result.json
    proc = launch(spec, out, log=tmp_path / "1.log")
    wait_for(lambda: bool(training_in_progress(out)), 90, "a training cell to start", proc)
    workers = children(proc.pid)
    kill(proc)
    assert training_in_progress(out), "the kill should leave an unfinished run folder"
    wait_for(lambda: not any(alive(w) for w in workers), 10, "the worker processes to die with their driver")

    # 2: kill again once a few more cells have finished
    done_before = finished_files(out)
    proc = launch(spec, out, log=tmp_path / "2.log")
    wait_for(lambda: finished_files(out) >= done_before + 3, 90, "three more cells", proc)
    kill(proc)

    # 3: kill at once, while the new driver is starting up or syncing the store
    proc = launch(spec, out, log=tmp_path / "3.log")
    time.sleep(1.5)
    kill(proc)

    # 4: run to the end: every cell recorded exactly once
    proc = launch(spec, out, log=tmp_path / "4.log")
    assert proc.wait(timeout=120) == 0, (tmp_path / "4.log").read_text()[-3000:]
    assert "0 failed, 0 skipped" in (tmp_path / "4.log").read_text()
    check_exactly_once(out, study)
    con = duckdb.connect(str(out / "study.duckdb"), read_only=True)
    attempts = dict(con.execute("SELECT cell_hash, attempts FROM cells").fetchall())
    con.close()
    assert set(attempts.values()) <= {0, 1}  # cells done before the last sweep keep their count; none ran twice in it


def test_failures_are_retried_then_recorded_and_skip_their_dependents(tmp_path):
    good = tmp_path / "good"
    train(TrainConfig(total_steps=256, num_envs=16, eval_every=0, eval_episodes=2, set=("num_steps=16",), out=good))
    (tmp_path / "bad.zip").write_bytes(b"not a policy")
    spec = tmp_path / "fail.toml"
    spec.write_text(f"""
[study]
name = "fail"
[train]
algo = "dqn"
total_steps = 256
eval_every = 0
eval_episodes = 2
[grid]
env = ["CartPole-v1", "Pendulum-v1"]
[[policy]]
name = "good"
path = "{good / 'policy.zip'}"
env = "CartPole-v1"
[[policy]]
name = "bad"
path = "bad.zip"
env = "CartPole-v1"
[evaluate]
threat = ["uniform"]
budgets = [0.0, 0.1]
episodes = 2
bootstrap_reps = 20
""")
    out = tmp_path / "study"
    res = run_sweep(SweepConfig(spec, out, workers=0, retries=2, progress=False))
    # DQN cannot act in Pendulum (continuous actions): that training cell fails, its evaluation is skipped;
    # the corrupt policy file's evaluation fails; everything else finishes
    assert (res.ran, res.failed, res.skipped) == (3, 2, 1)
    assert res.exit_code == 3 and not res.complete  # `robustrl sweep` exits 3
    con = duckdb.connect(str(out / "study.duckdb"), read_only=True)
    cells = con.execute("SELECT stage, status, attempts, error, labels FROM cells ORDER BY stage, status").fetchall()
    con.close()
    failed = [c for c in cells if c[1] == "failed"]
    assert len(failed) == 2 and all(c[2] == 3 for c in failed)  # 1 + 2 retries
    assert any("bad.zip" in c[3] for c in failed) and any("Pendulum" in c[4] for c in failed)
    (skipped,) = [c for c in cells if c[1] == "skipped"]
    assert skipped[0] == "evaluate" and "training cell" in skipped[3]
    assert run_sweep(SweepConfig(spec, out, workers=0, rerun_failed=False, progress=False)).ran == 0


def test_only_runs_a_piece_of_the_study_and_the_whole_study_reuses_it(tmp_path):
    import pytest

    from robustrl.cli import main
    from robustrl.experiments.cells import select_cells

    spec = tiny_spec(tmp_path / "tiny.toml")
    out = tmp_path / "study"
    study = load_study(spec)
    by_hash = study.by_hash()
    piece = select_cells(study, ["method=ppo+noise", "seed=1", "stage=evaluate"])
    # the one evaluate cell of that method and seed, and the training cell it needs
    assert sorted(by_hash[h].stage for h in piece) == ["evaluate", "train"]
    assert all(by_hash[h].labels["method"] == "ppo+noise" and by_hash[h].labels["seed"] == 1 for h in piece)

    plan = run_sweep(SweepConfig(spec, out, workers=0, progress=False, dry_run=True, only=("seed=1",)))
    assert (plan.plan.cells, plan.plan.spec_cells) == (6, 12) and "selected by --only (of 12" in str(plan)
    res = run_sweep(SweepConfig(spec, out, workers=0, progress=False, only=("method=ppo+noise", "seed=1",
                                                                            "stage=evaluate")))
    assert (res.ran, res.failed) == (2, 0) and res.complete and "2 cells selected of 12" in str(res)
    with duckdb.connect(str(out / "study.duckdb"), read_only=True) as con:
        done = {h for (h,) in con.execute("SELECT cell_hash FROM cells WHERE status = 'done'").fetchall()}
        pending = con.execute("SELECT count(*) FROM cells WHERE status = 'pending' AND active").fetchone()
    assert done == piece and pending == (10,)  # the rest of the study is recorded, waiting
    summary = run_results(ResultsConfig(out, reps=50))
    assert {a.group for a in summary.aggregates} == {("ppo+noise",)} and all(a.runs == 1 for a in summary.aggregates)
    whole = run_sweep(SweepConfig(spec, out, workers=0, progress=False))
    assert whole.ran == 10 and whole.plan.spec_cells is None
    check_exactly_once(out, study)

    for only, match in [(["seed"], "expected KEY=VALUE"), (["budgets=1"], "no cell has the label 'budgets'"),
                        (["seed=7"], "matches no cell.*seed: 0, 1"), (["seed=0", "seed=1"], "given twice")]:
        with pytest.raises(ValueError, match=match):
            select_cells(study, only)
    # repeating --only adds items (both must match); a bad item is refused before anything runs
    assert main(["sweep", str(spec), "--out", str(tmp_path / "dry"), "--dry-run", "--only", "seed=0",
                 "--only", "method=ppo"]) == 0
    assert main(["sweep", str(spec), "--out", str(tmp_path / "bad"), "--only", "seed=9"]) == 1
    assert not (tmp_path / "bad").exists()
