"""The sweep's driver: run every cell of a study not yet done, on an executor, recording each in the store.

:func:`sweep` syncs the study's cells into ``DIR/study.duckdb``, then submits cells whose training cell is
done, at most the executor's capacity at once, and records each outcome as it arrives (rows and status in
one transaction). A failing cell is retried up to ``retries`` more times, then recorded as ``failed`` with
its error, and the cells that need its policy as ``skipped``; the other cells go on.

Resume: killed at any moment (SIGKILL included) and started again with the same spec, a sweep runs exactly
the cells not recorded as done (a cell killed part way runs again from scratch; a training cell's folder is
replaced with ``overwrite``), so every cell ends up recorded once. A changed spec runs only its new or
changed cells (new hashes); cells of earlier specs stay in the store, marked inactive.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tqdm.contrib.logging import logging_redirect_tqdm

from robustrl.common.progress import progress_bar
from robustrl.experiments.cells import Cell, Study
from robustrl.experiments.executors import Executor, Outcome
from robustrl.experiments.stages import CELL_OVERHEAD_S, DEFAULT_SECONDS_PER_UNIT, STAGES, cost_units
from robustrl.experiments.store import STORE_FILE, CellRecord, StudyStore

__all__ = ["StagePlan", "SweepPlan", "SweepResult", "plan_sweep", "sweep"]

logger = logging.getLogger(__name__)

_POLL_S = 0.5
"""Seconds the driver waits for an outcome before refreshing the progress display."""


@dataclass(frozen=True)
class StagePlan:
    """One stage of a sweep plan."""

    stage: str
    """The stage."""
    cells: int
    """Cells of the stage in the spec."""
    done: int
    """Of them, recorded as done in the store."""
    seconds: float
    """Estimated cell-seconds of the cells still to run."""
    calibrated: bool
    """Whether the estimate comes from cells of this stage finished in this store (else default rates)."""

    @property
    def to_run(self) -> int:
        """Cells still to run."""
        return self.cells - self.done


@dataclass(frozen=True)
class SweepPlan:
    """What a sweep would run: cells per stage, how many are done, the estimated cost."""

    study: str
    """The study's name."""
    spec: Path
    """The spec file."""
    out: Path
    """The study folder."""
    stages: tuple[StagePlan, ...]
    """Per stage, training first."""
    parallel: int
    """Cells the executor runs at once."""
    note: str = ""
    """Why the store could not be read, if it could not."""
    spec_cells: int | None = None
    """Cells in the whole spec when a selection (``--only``) planned fewer (None: no selection)."""

    @property
    def cells(self) -> int:
        """Cells planned: the spec's, or the selection's."""
        return sum(s.cells for s in self.stages)

    @property
    def to_run(self) -> int:
        """Cells still to run."""
        return sum(s.to_run for s in self.stages)

    @property
    def seconds(self) -> float:
        """Estimated cell-seconds still to run."""
        return sum(s.seconds for s in self.stages)

    @property
    def wall_seconds(self) -> float:
        """Estimated wall-clock seconds on ``parallel`` workers (stages run one after another per policy)."""
        return self.seconds / max(1, self.parallel)

    def __str__(self) -> str:
        chosen = "" if self.spec_cells is None else f" selected by --only (of {self.spec_cells} in the spec)"
        lines = [f"study {self.study!r} ({self.spec}) → {self.out}",
                 f"  {self.cells} cells{chosen} in {len(self.stages)} stages; {self.to_run} to run"]  # fmt: skip
        for s in self.stages:
            how = "measured rate" if s.calibrated else "default rate"
            lines.append(f"  {s.stage:<9} {s.cells:5d} cells  {s.done:5d} done  {s.to_run:5d} to run  "
                         f"≈ {_duration(s.seconds)} ({how})")  # fmt: skip
        lines.append(
            f"  estimated cost: {_duration(self.seconds)} of cell time, ≈ {_duration(self.wall_seconds)} wall "
            f"on {self.parallel} worker{'s' if self.parallel != 1 else ''}"
        )
        if self.note:
            lines.append(f"  note: {self.note}")
        return "\n".join(lines)


@dataclass(frozen=True)
class SweepResult:
    """What :func:`sweep` did (or, for a dry run, would do: ``executed`` is False)."""

    plan: SweepPlan
    """The plan it started from."""
    executed: bool
    """False for a dry run."""
    store: Path
    """The DuckDB file."""
    ran: int = 0
    """Cells run in this sweep and recorded done."""
    failed: int = 0
    """Cells recorded failed (their attempts spent)."""
    skipped: int = 0
    """Cells skipped because their training cell failed."""
    retried: int = 0
    """Attempts that failed and were run again."""
    wall_time: float = 0.0
    """Seconds the sweep took."""
    failures: tuple[tuple[str, str], ...] = ()
    """``(cell_hash, first line of the error)`` of each failed cell."""

    @property
    def exit_code(self) -> int:
        """What ``robustrl sweep`` exits with: 0 when every cell ran (or a dry run), 3 when some failed."""
        return 0 if not self.executed or (self.failed == 0 and self.skipped == 0) else 3

    @property
    def complete(self) -> bool:
        """Every planned cell (the spec's, or the selection's) is done."""
        return self.executed and self.failed == 0 and self.skipped == 0

    def __str__(self) -> str:
        if not self.executed:
            return f"dry run (nothing was run)\n{self.plan}"
        already = self.plan.cells - self.plan.to_run
        chosen = "" if self.plan.spec_cells is None else f" selected of {self.plan.spec_cells}"
        text = (
            f"study {self.plan.study!r}: {self.plan.cells} cells{chosen}, {self.ran} run now, {already} done before, "
            f"{self.failed} failed, {self.skipped} skipped, {self.retried} retried, in {self.wall_time:.1f} s "
            f"→ {self.store}"
        )
        for h, err in self.failures:
            text += f"\n  failed {h}: {err}"
        return text + f"\n  next: robustrl results {self.plan.out}   robustrl report {self.plan.out}"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _rates(records: list[CellRecord]) -> dict[str, float]:
    """Seconds per work unit per stage, from cells finished in this store."""
    spent: dict[str, list[float]] = {}
    for r in records:
        if r.status == "done" and r.seconds is not None:
            try:
                units = cost_units(r.stage, r.config)
            except (ValueError, TypeError, KeyError):
                continue
            if units > 0:
                acc = spent.setdefault(r.stage, [0.0, 0.0])
                acc[0] += r.seconds
                acc[1] += units
    return {stage: s / u for stage, (s, u) in spent.items()}


def plan_sweep(
    study: Study, out: str | Path, *, parallel: int = 1, selected: frozenset[str] | None = None
) -> SweepPlan:
    """Cells per stage, how many the store in ``out`` already holds as done, and the estimated cost.

    Reads the store read-only (creates nothing); cost = work units × seconds per unit, the rate measured on
    this store's finished cells of the stage when there are any. ``selected`` (cell hashes, from
    :func:`~robustrl.experiments.cells.select_cells`) plans only those cells.
    """
    folder = Path(out)
    records: list[CellRecord] = []
    note = ""
    if (folder / STORE_FILE).is_file():
        try:
            with StudyStore(folder / STORE_FILE, read_only=True) as store:
                records = store.records(active_only=False)
        except ValueError as err:
            note = str(err)
    status = {r.cell_hash: r.status for r in records}
    rates = _rates(records)
    stages = []
    for stage in STAGES:
        cells = [c for c in study.cells if c.stage == stage and (selected is None or c.cell_hash in selected)]
        if not cells:
            continue
        todo = [c for c in cells if status.get(c.cell_hash) != "done"]
        rate = rates.get(stage)
        seconds = 0.0
        for c in todo:
            units = cost_units(stage, c.config)
            seconds += units * rate if rate is not None else CELL_OVERHEAD_S + units * DEFAULT_SECONDS_PER_UNIT[stage]
        stages.append(StagePlan(stage, len(cells), len(cells) - len(todo), seconds, rate is not None))
    spec_cells = None if selected is None else len(study.cells)
    return SweepPlan(study.spec.name, study.spec.path, folder, tuple(stages), max(1, parallel), note, spec_cells)


def _artefact_ok(root: Path, cell: Cell) -> bool:
    """Whether a done cell's files are still there (a training cell's policy and its completion mark)."""
    if STAGES[cell.stage].trains:
        return (root / cell.folder / "result.json").is_file() and (root / cell.folder / "policy.zip").is_file()
    return (root / cell.result_path).is_file()


def _labels(cell: Cell) -> str:
    """``key=value`` labels of a cell for a log line (``method=sa-reg seed=0``)."""
    return " ".join(f"{k}={v}" for k, v in sorted(cell.labels.items()))


def _first_line(error: str | None) -> str:
    return (error or "unknown error").strip().splitlines()[0][:300]


class _Driver:
    """The sweep loop's state: which cells wait, run, finished."""

    def __init__(self, study: Study, root: Path, store: StudyStore, executor: Executor, retries: int) -> None:
        self.study, self.root, self.store, self.executor, self.retries = study, root, store, executor, retries
        self.cells = study.by_hash()
        self.status: dict[str, str] = {}
        self.attempts: dict[str, int] = {}
        self.waiting: list[str] = []
        self.running: set[str] = set()
        self.result: dict[str, Any] = {"ran": 0, "failed": 0, "skipped": 0, "retried": 0, "failures": []}

    def prepare(self, records: dict[str, CellRecord], rerun_failed: bool, selected: frozenset[str] | None) -> int:
        for c in self.study.cells:
            rec = records[c.cell_hash]
            if rec.status == "done" and not _artefact_ok(self.root, c):
                logger.warning("cell %s (%s) is recorded done but its files are gone: running it again",
                               c.cell_hash, c.stage)  # fmt: skip
                self.store.mark_pending(c.cell_hash, "files missing")
                rec = dataclasses.replace(rec, status="pending")
            self.status[c.cell_hash] = rec.status
            if selected is not None and c.cell_hash not in selected:
                continue  # stays pending in the store for a later run
            if rec.status == "pending" or (rerun_failed and rec.status in ("failed", "skipped")):
                self.status[c.cell_hash] = "pending"
                self.waiting.append(c.cell_hash)
        return len(self.waiting)

    def _finish_failed(self, h: str, error: str, status: Literal["failed", "skipped"]) -> None:
        self.store.record_failed(h, error, status=status)
        self.status[h] = status
        self.result[status] += 1
        if status == "failed":
            self.result["failures"].append((h, _first_line(error)))
            logger.warning("cell %s (%s) failed: %s", h, self.cells[h].stage, _first_line(error))

    def submit_ready(self) -> int:
        """Submit waiting cells whose training cell is done; skip those whose training cell failed."""
        finished = 0
        still: list[str] = []
        for h in self.waiting:
            parent = self.cells[h].parent
            parent_status = self.status.get(parent, "done") if parent is not None else "done"
            if parent_status in ("failed", "skipped"):
                self._finish_failed(h, f"training cell {parent} {parent_status}", "skipped")
                finished += 1
            elif parent_status == "done" and len(self.running) < self.executor.capacity:
                self.attempts[h] = self.attempts.get(h, 0) + 1
                self.store.mark_running(h, self.attempts[h])
                self.executor.submit(h, self.cells[h].task())
                cell = self.cells[h]
                logger.debug("started: %s %s (attempt %d)", cell.stage, _labels(cell), self.attempts[h])
                self.running.add(h)
                self.status[h] = "running"
            else:
                still.append(h)
        self.waiting = still
        return finished

    def receive(self, outcome: Outcome) -> int:
        """Record one outcome; returns 1 when the cell is finished (done or failed), 0 when it runs again."""
        h = outcome["cell_hash"]
        self.running.discard(h)
        if outcome["ok"]:
            self.store.record_done(h, outcome["rows"], kind=outcome["kind"], seconds=outcome["seconds"],
                                   host=outcome["host"])  # fmt: skip
            self.status[h] = "done"
            self.result["ran"] += 1
            logger.info("done: %s %s in %.0f s", self.cells[h].stage, _labels(self.cells[h]), outcome["seconds"])
            return 1
        error = outcome["error"] or "unknown error"
        if self.attempts[h] <= self.retries:
            logger.info("cell %s attempt %d failed, retrying: %s", h, self.attempts[h], _first_line(error))
            self.store.mark_pending(h, error)
            self.status[h] = "pending"
            self.waiting.insert(0, h)
            self.result["retried"] += 1
            return 0
        self._finish_failed(h, error, "failed")
        return 1


def sweep(
    study: Study,
    out: str | Path,
    executor: Executor,
    *,
    retries: int = 1,
    progress: bool = True,
    rerun_failed: bool = True,
    selected: frozenset[str] | None = None,
) -> SweepResult:
    """Run every cell of ``study`` not yet done in the study folder ``out``; record each in ``out/study.duckdb``.

    Args:
        study: the checked study (:func:`robustrl.experiments.cells.load_study`).
        out: the study folder (created): ``study.duckdb`` and ``artefacts/<cell_hash>/``.
        executor: where cells run (:func:`robustrl.experiments.executors.make_executor`); closed at the end.
        retries: extra attempts of a failing cell before it is recorded failed.
        progress: show a progress bar (cells done / running / failed, ETA).
        rerun_failed: run cells recorded failed or skipped by an earlier sweep again.
        selected: run only these cells (hashes from :func:`~robustrl.experiments.cells.select_cells`, which
            adds the training cells they need); every cell of the study is still recorded, the others stay
            pending for a later sweep.

    Returns:
        :class:`SweepResult`.

    Raises:
        ValueError: ``retries`` < 0, or the store is in use by another sweep (nothing runs then).
    """
    if retries < 0:
        executor.close()
        raise ValueError(f"retries must be ≥ 0, got {retries}")
    root = Path(out).resolve()
    t0 = time.perf_counter()
    interrupted = True
    try:
        plan = plan_sweep(study, root, parallel=executor.capacity, selected=selected)
        with StudyStore(root / STORE_FILE, driver=True) as store:
            records = store.sync(study, rerun_failed=rerun_failed)
            driver = _Driver(study, root, store, executor, retries)
            total = driver.prepare(records, rerun_failed, selected)
            logger.info("sweep %s: %d of %d cells to run on %s (%d at once)", study.spec.name, total,
                        len(study.cells), executor.name, executor.capacity)  # fmt: skip
            bar = progress_bar(total=total, unit="cell", desc=f"sweep {study.spec.name}", disable=not progress,
                               smoothing=0)
            # log lines (a cell done, one failed) print above the bar instead of through it
            redirect = logging_redirect_tqdm() if progress else contextlib.nullcontext()
            drawn = time.monotonic()
            try:
                with redirect:
                    while driver.waiting or driver.running:
                        bar.update(driver.submit_ready())
                        if not driver.running:
                            continue
                        store.release_if_idle()  # readers (results, report) may open the file between writes
                        for outcome in executor.wait(_POLL_S):
                            bar.update(driver.receive(outcome))
                        bar.set_postfix(running=len(driver.running), failed=driver.result["failed"], refresh=False)
                        if progress and time.monotonic() - drawn >= bar.mininterval:  # the clock moves in long cells
                            bar.refresh()
                            drawn = time.monotonic()
            finally:
                bar.close()
        interrupted = False
    finally:
        executor.close(wait=not interrupted)
    r = driver.result
    return SweepResult(plan, True, root / STORE_FILE, r["ran"], r["failed"], r["skipped"], r["retried"],
                       time.perf_counter() - t0, tuple(r["failures"]))  # fmt: skip

