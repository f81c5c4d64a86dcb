"""A study with a [train_offline] stage: learners × datasets × seeds through the real sweep, then resumed."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from robustrl.experiments.cells import load_study
from robustrl.experiments.cli import ResultsConfig, SweepConfig, run_results, run_sweep
from robustrl.experiments.locate import StudySpecError
from robustrl.offline.corruption import CorruptionConfig, corrupt
from robustrl.offline.data import OfflineDataset, save_npz


def _spec(path: Path, clean: Path, noisy: Path, *, extra: str = "") -> Path:
    path.write_text(f"""
[study]
name = "offline-tiny"
seeds = [0, 1]

[train_offline]
updates = 40
eval_every = 20
eval_episodes = 2
set = ["hidden=32,32"]

[grid]
algo = ["bc", "iql"]
dataset = ["{clean}", "{noisy}"]

[evaluate]
threat = ["uniform"]
budgets = [0.0, 0.1]
episodes = 2
{extra}""")
    return path


@pytest.fixture
def datasets(tmp_path: Path, expert_data: OfflineDataset) -> tuple[Path, Path]:
    clean = save_npz(expert_data, tmp_path / "clean.npz")
    noisy = save_npz(corrupt(expert_data, CorruptionConfig(element="rewards", rate=0.3, scale=1.0)),
                     tmp_path / "noisy.npz")
    return clean, noisy


def test_offline_study_trains_every_learner_on_every_dataset_then_resumes(tmp_path, datasets):
    spec = _spec(tmp_path / "offline.toml", *datasets)
    study = load_study(spec)
    stages = [c.stage for c in study.cells]
    assert stages.count("train_offline") == 8 and stages.count("evaluate") == 8  # 2 algos × 2 datasets × 2 seeds
    train_cells = [c for c in study.cells if c.stage == "train_offline"]
    assert {c.labels["env"] for c in train_cells} == {"Pendulum-v1"}  # from the datasets, none set
    assert {c.labels["method"] for c in train_cells} == {"bc", "iql"}

    out = tmp_path / "study"
    res = run_sweep(SweepConfig(spec, out, workers=0, progress=False))
    assert (res.ran, res.failed) == (16, 0) and res.complete
    for cell in train_cells:
        assert (out / cell.folder / "policy.zip").is_file() and (out / cell.folder / "result.json").is_file()
    with duckdb.connect(str(out / "study.duckdb"), read_only=True) as con:
        threats = {r[0] for r in con.execute(
            "SELECT DISTINCT r.threat FROM results r JOIN cells c USING (cell_hash) WHERE c.stage = 'train_offline'"
        ).fetchall()}
    assert threats == {"clean", "random:rewards"}  # each offline row names its dataset's corruption

    again = run_sweep(SweepConfig(spec, out, workers=0, progress=False))
    assert again.ran == 0 and again.plan.to_run == 0
    summary = run_results(ResultsConfig(out, reps=50, stage=("train_offline",)))
    assert {a.group for a in summary.aggregates} == {("bc",), ("iql",)}


def test_offline_study_problems_are_found_before_any_work(tmp_path, datasets):
    clean, _ = datasets
    spec = _spec(tmp_path / "bad.toml", clean, tmp_path / "missing.npz",
                 extra='\n[train]\nalgo = "ppo"\nenv = "CartPole-v1"\n')
    with pytest.raises(StudySpecError, match="not both"):
        load_study(spec)
    spec = _spec(tmp_path / "bad2.toml", clean, tmp_path / "missing.npz")
    with pytest.raises(StudySpecError, match="missing.npz"):
        load_study(spec)
    assert not (tmp_path / "study").exists()
