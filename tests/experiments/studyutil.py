"""Helpers of the experiments tests. Tiny real studies: CartPole, a few hundred PPO steps, 2 methods × 2 seeds.

``tiny_spec`` writes the spec text (12 cells: 4 train, 4 evaluate, 4 certify, each well under a second);
``launch`` starts ``run_sweep`` in a subprocess (so it can be SIGKILLed); ``check_exactly_once`` asserts
what a finished study must hold: every cell of the spec done once, its rows equal to its result file's
rows, no row twice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import duckdb

from robustrl.experiments.cells import Study, load_study
from robustrl.results import load_result

TINY = """
[study]
name = "tiny"
seeds = [0, 1]

[train]
algo = "ppo"
env = "CartPole-v1"
total_steps = {steps}
num_envs = 16
eval_every = 0
eval_episodes = 4
set = ["num_steps=16", "hidden=16,16"]

[[method]]
name = "ppo"

[[method]]
name = "ppo+noise"
train = {{ obs_noise = 0.2 }}
evaluate = {{ smoothing_sigma = 0.2 }}

[evaluate]
threat = ["uniform"]
budgets = {budgets}
episodes = 4
bootstrap_reps = 50

[certify]
sigma = 0.2
budgets = ["0", "0.2"]
episodes = 200
"""


def tiny_spec(path: Path, *, steps: int = 512, budgets: str = "[0.0, 0.1]") -> Path:
    """Write the tiny study's spec to ``path`` and return it."""
    path.write_text(TINY.format(steps=steps, budgets=budgets))
    return path


def launch(spec: Path, out: Path, *, executor: str = "local", workers: int = 2, ray_address: str | None = None,
           log: Path | None = None) -> subprocess.Popen[bytes]:  # fmt: skip
    """``run_sweep`` of ``spec`` into ``out`` in a new Python process (one torch thread)."""
    args = {"spec": str(spec), "out": str(out), "executor": executor, "workers": workers, "ray_address": ray_address,
            "progress": False}  # fmt: skip
    code = (
        "import json, sys\n"
        "from robustrl.experiments.cli import SweepConfig, run_sweep\n"
        f"print(run_sweep(SweepConfig(**json.loads({json.dumps(json.dumps(args))}))))\n"
    )
    env = {**os.environ, "ROBUSTRL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    sink = open(log, "wb") if log is not None else subprocess.DEVNULL
    return subprocess.Popen([sys.executable, "-c", code], stdout=sink, stderr=subprocess.STDOUT, env=env)


def children(pid: int) -> list[int]:
    """Pids of the live processes whose parent is ``pid`` (Linux /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(entry.name))
    return out


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for(pred: Callable[[], bool], timeout: float, what: str, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Poll ``pred`` every 20 ms; fail naming ``what`` after ``timeout`` seconds (or if ``proc`` ended)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the sweep ended (exit {proc.returncode}) before {what}")
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def kill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the sweep's driver and reap it."""
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def finished_files(out: Path) -> int:
    """Cells whose result file (or training run's result.json) is written."""
    return len(list((out / "artefacts").glob("*/result.json")))


def training_in_progress(out: Path) -> list[Path]:
    """Training run folders that have started (config.json) but not finished (no result.json)."""
    return [p.parent for p in (out / "artefacts").glob("*/config.json") if not (p.parent / "result.json").exists()]


def check_exactly_once(out: Path, study: Study) -> None:
    """Every cell of ``study`` is done exactly once in ``out``'s store; rows match the result files, none twice."""
    con = duckdb.connect(str(out / "study.duckdb"), read_only=True)
    try:
        cells = con.execute("SELECT cell_hash, status, stage FROM cells WHERE active").fetchall()
        assert sorted(h for h, _, _ in cells) == sorted(c.cell_hash for c in study.cells)
        assert {s for _, s, _ in cells} == {"done"}, cells
        total, distinct = con.execute(
            "SELECT count(*), count(DISTINCT (cell_hash, row_index)) FROM results"
        ).fetchone()  # type: ignore[misc]
        assert total == distinct
        dup = con.execute(
            "SELECT count(*) FROM (SELECT cell_hash, threat, budget, metric, count(*) n FROM results "
            "GROUP BY ALL HAVING n > 1)"
        ).fetchone()
        assert dup == (0,)
        for c in study.cells:
            rows = con.execute(
                "SELECT task, threat, budget, seed, metric, value FROM results WHERE cell_hash = ? ORDER BY row_index",
                [c.cell_hash],
            ).fetchall()
            if c.stage == "train":
                assert (out / c.folder / "result.json").is_file() and (out / c.folder / "policy.zip").is_file()
                assert [r[4] for r in rows][:3] == ["return_mean", "return_std", "length_mean"]
                final = json.loads((out / c.folder / "result.json").read_text())["final_return"]
                assert rows[0][5] == final
                continue
            expected = load_result(out / c.result_path).to_rows()
            assert rows == [(r.task, r.threat, r.budget, r.seed, r.metric, r.value) for r in expected]
    finally:
        con.close()


def study_of(spec: Path) -> Study:
    """The checked study of a spec file."""
    return load_study(spec)
