"""The DuckDB store: idempotent writes, resume states, one writer, Parquet export read back by another reader."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time

import duckdb
import pyarrow.parquet as pq
import pytest
from studyutil import tiny_spec

from robustrl.experiments.cells import load_study
from robustrl.experiments.store import StudyStore
from robustrl.results import ResultRow


@pytest.fixture
def study(tmp_path):
    return load_study(tiny_spec(tmp_path / "tiny.toml"))


def rows(n: int, value: float = 1.0) -> list[ResultRow]:
    return [ResultRow("CartPole-v1", "p", "clean", float(i), 0, "return_mean", value + i, math.nan, math.nan)
            for i in range(n)]  # fmt: skip


def test_sync_adds_cells_pending_and_keeps_them_once(tmp_path, study):
    with StudyStore(tmp_path / "s") as store:
        first = store.sync(study)
        again = store.sync(study)
        assert list(first) == list(again) == [c.cell_hash for c in study.cells]
        assert {r.status for r in again.values()} == {"pending"}
        assert store.counts() == {"pending": 12}
        rec = again[study.cells[4].cell_hash]
        assert rec.parent == study.cells[4].parent and rec.labels == study.cells[4].labels
        assert rec.config == study.cells[4].config and rec.artefact == study.cells[4].result_path


def test_record_done_is_an_idempotent_replace(tmp_path, study):
    h = study.cells[0].cell_hash
    with StudyStore(tmp_path / "s") as store:
        store.sync(study)
        store.mark_running(h, 1)
        store.record_done(h, rows(3), kind="train", seconds=1.5, host="here")
        store.record_done(h, rows(3, 5.0), kind="train", seconds=2.0, host="here")
        got = [r.row for r in store.rows()]
        assert got == rows(3, 5.0)  # replaced, not appended; NULL intervals read back as NaN
        rec = store.records()[0]
        assert (rec.status, rec.attempts, rec.seconds, rec.result_kind, rec.host) == ("done", 1, 2.0, "train", "here")
        store.record_failed(h, "boom")
        assert store.rows() == [] and store.records()[0].error == "boom"


def test_a_killed_drivers_running_cells_become_pending_and_failures_rerun(tmp_path, study):
    a, b = study.cells[0].cell_hash, study.cells[1].cell_hash
    with StudyStore(tmp_path / "s") as store:
        store.sync(study)
        store.mark_running(a, 1)
        store.record_failed(b, "err")
    with StudyStore(tmp_path / "s") as store:
        kept = store.sync(study, rerun_failed=False)
        assert kept[a].status == "pending" and kept[b].status == "failed"
        again = store.sync(study, rerun_failed=True)
        assert again[b].status == "pending" and again[b].attempts == 0 and again[b].error is None


def test_cells_of_an_older_spec_stay_inactive(tmp_path, study):
    newer = load_study(tiny_spec(tmp_path / "new.toml", budgets="[0.0, 0.3]"))
    with StudyStore(tmp_path / "s") as store:
        store.sync(study)
        store.record_done(study.cells[5].cell_hash, rows(2), kind="evaluation", seconds=1.0, host=None)
        store.sync(newer)
        active = {r.cell_hash for r in store.records()}
        assert active == {c.cell_hash for c in newer.cells}
        assert study.cells[5].cell_hash not in active  # an evaluate cell of the old budgets
        assert len(store.records(active_only=False)) == 16  # 12 + the 4 new evaluate cells
        assert store.rows() == [] and len(store.rows(active_only=False)) == 2


def test_parquet_export_reads_back_with_pyarrow(tmp_path, study):
    with StudyStore(tmp_path / "s") as store:
        store.sync(study)
        store.record_done(study.cells[0].cell_hash, rows(4), kind="train", seconds=1.0, host=None)
        cells_path, results_path = store.export_parquet(tmp_path / "export")
    cells = pq.read_table(cells_path).to_pylist()
    results = pq.read_table(results_path).to_pylist()
    assert len(cells) == 12 and {c["cell_hash"] for c in cells} == {c.cell_hash for c in study.cells}
    assert [r["value"] for r in results] == [1.0, 2.0, 3.0, 4.0] and results[0]["ci_low"] is None
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == ["cells.parquet", "results.parquet"]


def test_a_second_process_cannot_open_the_store_while_a_sweep_holds_it(tmp_path, study):
    path = tmp_path / "s" / "study.duckdb"
    with StudyStore(path) as store:
        store.sync(study)
        code = (
            "import sys\nfrom robustrl.experiments.store import StudyStore\n"
            f"try:\n    StudyStore({str(path)!r}, read_only=True)\nexcept ValueError as e:\n    print(e)\n"
        )
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "cannot be opened" in proc.stdout and "a sweep may still be running" in proc.stdout
    with pytest.raises(ValueError, match="no study store"):
        StudyStore(tmp_path / "nothing", read_only=True)


def test_schema_has_the_documented_columns(tmp_path, study):
    with StudyStore(tmp_path / "s") as store:
        store.sync(study)
    con = duckdb.connect(str(tmp_path / "s" / "study.duckdb"), read_only=True)
    cols = {t: [r[0] for r in con.execute(f"DESCRIBE {t}").fetchall()] for t in ("cells", "results", "meta")}
    pk = con.execute("SELECT constraint_column_names FROM duckdb_constraints() WHERE constraint_type = 'PRIMARY KEY' "
                     "AND table_name = 'results'").fetchone()  # fmt: skip
    meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
    con.close()
    assert cols["cells"][:4] == ["cell_hash", "stage", "status", "active"]
    assert {"config", "labels", "error", "attempts", "seconds", "started_at", "finished_at"} <= set(cols["cells"])
    assert cols["results"] == ["cell_hash", "row_index", "task", "policy", "threat", "budget", "seed", "metric",
                               "value", "ci_low", "ci_high"]  # fmt: skip
    assert pk == (["cell_hash", "row_index"],)
    assert meta["study"] == "tiny" and meta["schema_version"] == "1" and "[[method]]" in meta["spec"]


def _in_other_process(code: str) -> str:
    head = "import sys\nfrom robustrl.experiments.store import StudyStore\n"
    proc = subprocess.run([sys.executable, "-c", head + code], capture_output=True, text=True, timeout=120)
    return proc.stdout + proc.stderr


def test_a_running_sweeps_store_is_readable_between_its_writes_and_refuses_a_second_sweep(tmp_path, study):
    path = tmp_path / "s" / "study.duckdb"
    with StudyStore(path, driver=True) as store:
        records = store.sync(study)
        first = next(iter(records))
        store.record_done(first, rows(2), kind="evaluate", seconds=1.0, host="h")
        store.release_if_idle(0.0)  # the driver between two cells
        read = _in_other_process(
            f"with StudyStore({str(path)!r}, read_only=True) as s:\n    print('done', s.counts().get('done'))\n"
        )
        assert "done 1" in read
        second = _in_other_process(
            f"try:\n    StudyStore({str(path)!r}, driver=True)\nexcept ValueError as e:\n    print(e)\n"
        )
        assert "in use by another sweep" in second and f"pid {os.getpid()}" in second
        # the driver opens the file again by itself for its next write
        store.mark_running(first, 2)
        assert store.records()[0].attempts == 2
    # the sweep lock goes with the store: another driver may start now
    StudyStore(path, driver=True).close()


def test_a_driver_waits_for_a_reader_that_holds_the_file(tmp_path, study):
    path = tmp_path / "s" / "study.duckdb"
    with StudyStore(path, driver=True) as store:
        first = next(iter(store.sync(study)))
        store.release_if_idle(0.0)
        reader = subprocess.Popen(
            [sys.executable, "-c", "import time, duckdb\n"
             f"con = duckdb.connect({str(path)!r}, read_only=True)\nprint('open', flush=True)\ntime.sleep(1.5)\n"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert reader.stdout is not None and reader.stdout.readline().strip() == "open"
        t0 = time.monotonic()
        store.mark_pending(first, "again")  # waits until the reader lets go
        waited = time.monotonic() - t0
        reader.wait(timeout=60)
        assert waited > 0.3
        assert any(r.error == "again" for r in store.records())
