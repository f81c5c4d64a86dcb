"""The console script with the COMMANDS lines of `robustrl sweep`, `robustrl results` and the `report` dispatch.

Until those lines are in ``robustrl.cli.COMMANDS`` they are added here (exactly as they are to be added), so
the subcommands are tested in-process the way the console script runs them.
"""

from __future__ import annotations

import json

import pytest
from studyutil import tiny_spec

from robustrl import cli
from robustrl.cli import Command

LINES = {
    "sweep": Command(
        "Run a study (TOML spec) on local workers or Ray into DIR/study.duckdb; run it again to resume.",
        "robustrl.experiments.cli:SweepConfig",
        "robustrl.experiments.cli:run_sweep",
        positional=("spec",),
    ),
    "results": Command(
        "Aggregate a study's results: IQM, median, mean with bootstrap CIs, probability of improvement.",
        "robustrl.experiments.cli:ResultsConfig",
        "robustrl.experiments.cli:run_results",
        positional=("study",),
    ),
}


@pytest.fixture
def commands():
    """The console script's table holds the study subcommands as documented."""
    for name, cmd in LINES.items():
        assert cli.COMMANDS[name] == cmd
    assert cli.COMMANDS["report"].run == "robustrl.experiments.report:report_or_study"


def test_sweep_results_report_from_the_command_line(commands, tmp_path, capsys):
    spec = tiny_spec(tmp_path / "tiny.toml")
    out = tmp_path / "study"
    assert cli.main(["sweep", str(spec), "--out", str(out), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "12 cells in 3 stages; 12 to run" in printed and "estimated cost" in printed and not out.exists()

    assert cli.main(["sweep", str(spec), "--out", str(out), "--workers", "0", "--no-progress"]) == 0
    assert "12 run now" in capsys.readouterr().out

    assert cli.main(["results", str(out), "--group-by", "method,seed", "--format", "json", "--reps", "100",
                     "--parquet", str(tmp_path / "pq")]) == 0  # fmt: skip
    data = json.loads(capsys.readouterr().out)
    assert data["group_by"] == ["method", "seed"] and data["cells"] == {"done": 12}
    assert {tuple(a["group"].values()) for a in data["aggregates"]} == {(m, s) for m in ("ppo", "ppo+noise")
                                                                          for s in ("0", "1")}  # fmt: skip
    assert (tmp_path / "pq" / "results.parquet").is_file()

    assert cli.main(["results", str(out), "--format", "wide", "--statistic", "mean", "--digits", "1",
                     "--reps", "100"]) == 0  # fmt: skip
    wide = capsys.readouterr().out.splitlines()
    assert wide[1].startswith("mean with 95 %") and wide[3].startswith("| method | ")
    assert {ln.split(" | ")[0] for ln in wide[5:7]} == {"| ppo", "| ppo+noise"}

    assert cli.main(["report", str(out), "--reps", "100"]) == 0
    assert "sections: summary, leaderboard" in capsys.readouterr().out and (out / "report" / "index.html").is_file()


def test_a_bad_spec_fails_with_every_problem_and_runs_nothing(commands, tmp_path, capsys):
    spec = tmp_path / "bad.toml"
    spec.write_text('[study]\nname = "bad"\n[train]\ntotal_steps = -5\n[evaluate]\nepisodes = "many"\n')
    assert cli.main(["sweep", str(spec), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert f"{spec}:6: [evaluate] episodes: EvaluateConfig.episodes: expected a whole number, got 'many'" in err
    assert not (tmp_path / "o").exists()
    spec.write_text('[study]\nname = "bad"\n[train]\ntotal_steps = -5\n')
    assert cli.main(["sweep", str(spec), "--out", str(tmp_path / "o")]) == 1
    assert f"{spec}:4: [train] total_steps: TrainConfig.total_steps: must be ≥ 1, got -5" in capsys.readouterr().err
