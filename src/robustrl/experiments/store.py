"""The results store of a study: ``DIR/study.duckdb``, a DuckDB file written by the sweep's driver alone.

Tables (see ``docs/studies.md`` for every column):

* ``meta``: ``key``/``value`` pairs (schema version, study name, the spec text of the latest sweep);
* ``cells``: one row per cell (``cell_hash`` primary key): stage, status (``pending``, ``running``,
  ``done``, ``failed``, ``skipped``), whether it is in the latest spec (``active``), labels and resolved
  config as JSON, attempts, error, timings;
* ``results``: the long rows of each cell's result (``Result.to_rows()``), keyed by
  ``(cell_hash, row_index)``.

Every write is one transaction and idempotent: recording a cell deletes its rows, inserts the new ones and
marks it done, all or nothing, so a kill at any moment leaves each cell either recorded once or not at
all. Workers never open the file: they return rows to the driver (one writer, no concurrent access).

The driver (``StudyStore(path, driver=True)``) holds the study's sweep lock (``study.duckdb.lock``, an OS
file lock, so a second sweep on the same folder is refused) but has the DuckDB file open only while it
works: it lets go after a second without a write. ``robustrl results``, ``report`` and ``sweep
--dry-run`` can therefore read a study while its sweep runs; a reader or the driver that finds the file
busy waits for it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from robustrl.experiments.cells import Study
from robustrl.results import ResultRow

__all__ = ["STORE_FILE", "CellRecord", "Status", "StoredRow", "StudyStore"]

STORE_FILE = "study.duckdb"
"""The store's file name inside the study folder."""
SCHEMA_VERSION = 1
"""Version of the tables written here."""

Status = Literal["pending", "running", "done", "failed", "skipped"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS cells (
    cell_hash VARCHAR PRIMARY KEY,
    stage VARCHAR NOT NULL,
    status VARCHAR NOT NULL,
    active BOOLEAN NOT NULL,
    parent VARCHAR,
    labels VARCHAR NOT NULL,
    config VARCHAR NOT NULL,
    robustrl_version VARCHAR NOT NULL,
    artefact VARCHAR NOT NULL,
    attempts INTEGER NOT NULL,
    error VARCHAR,
    result_kind VARCHAR,
    host VARCHAR,
    created_at TIMESTAMP NOT NULL,
    started_at TIMESTAMP,
    finished_at TIMESTAMP,
    seconds DOUBLE
);
CREATE TABLE IF NOT EXISTS results (
    cell_hash VARCHAR NOT NULL,
    row_index INTEGER NOT NULL,
    task VARCHAR NOT NULL,
    policy VARCHAR NOT NULL,
    threat VARCHAR NOT NULL,
    budget DOUBLE NOT NULL,
    seed BIGINT,
    metric VARCHAR NOT NULL,
    value DOUBLE NOT NULL,
    ci_low DOUBLE,
    ci_high DOUBLE,
    PRIMARY KEY (cell_hash, row_index)
);
"""

_INSERT_ROWS = 500
"""Result rows per INSERT statement."""
READER_WAIT_S = 10.0
"""How long a reader waits for a file that the sweep's driver is writing."""
DRIVER_IDLE_S = 1.0
"""The driver closes the file after this long without an operation (:meth:`StudyStore.release_if_idle`)."""
_LOCK_SUFFIX = ".lock"

logger = logging.getLogger(__name__)

_CELL_COLUMNS = (
    "cell_hash, stage, status, active, parent, labels, config, robustrl_version, artefact, attempts, error, "
    "result_kind, host, started_at, finished_at, seconds"
)


@dataclass(frozen=True)
class CellRecord:
    """A row of the ``cells`` table."""

    cell_hash: str
    """Content hash of the cell."""
    stage: str
    """Its stage."""
    status: Status
    """``pending``, ``running``, ``done``, ``failed`` or ``skipped`` (its training cell failed)."""
    active: bool
    """Whether the latest sweep's spec has the cell."""
    parent: str | None
    """The training cell whose policy it uses."""
    labels: dict[str, Any]
    """Labels (``method``, ``env``, ``seed``, ``algo``, grid axes)."""
    config: dict[str, Any]
    """The resolved config."""
    robustrl_version: str
    """robustrl version of the hash."""
    artefact: str
    """Result file or run folder, relative to the study folder."""
    attempts: int
    """Runs started in the latest sweep that ran it."""
    error: str | None
    """The last error (failed or skipped cells)."""
    result_kind: str | None
    """``kind`` of its result."""
    host: str | None
    """Where it ran."""
    started_at: datetime | None
    """When its last attempt was submitted (UTC)."""
    finished_at: datetime | None
    """When it was recorded (UTC)."""
    seconds: float | None
    """Seconds the entry point ran in the worker."""


@dataclass(frozen=True)
class StoredRow:
    """A result row with the labels of its cell."""

    cell_hash: str
    """The cell."""
    stage: str
    """Its stage."""
    labels: dict[str, Any]
    """Its labels."""
    row: ResultRow
    """The long row."""


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _record(values: Sequence[Any]) -> CellRecord:
    (h, stage, status, active, parent, labels, config, version, artefact, attempts, error, kind, host, started,
     finished, seconds) = values  # fmt: skip
    return CellRecord(
        h, stage, status, bool(active), parent, json.loads(labels), json.loads(config), version, artefact,
        int(attempts), error, kind, host, started, finished, seconds,
    )  # fmt: skip


class StudyStore:
    """The DuckDB file of one study (open it once per process; the sweep's driver is the only writer).

    Args:
        path: the ``study.duckdb`` file, or the study folder holding it.
        read_only: open for reading (waits up to :data:`READER_WAIT_S` for a sweep's driver that is writing).
        driver: the sweep's driver: take the study's sweep lock, and open the file only while working (see the
            module).

    Raises:
        ValueError: the file is in use by another process (another sweep running on it, or a process holding
            it open for longer than a reader waits), was written by a newer robustrl, or (read-only) does not
            exist.
    """

    def __init__(self, path: str | os.PathLike[str], *, read_only: bool = False, driver: bool = False) -> None:
        try:
            import duckdb  # noqa: F401
        except ImportError as err:
            raise ValueError("the study store needs DuckDB: pip install 'robustrl[studies]'") from err

        p = Path(path)
        self.path = p / STORE_FILE if p.is_dir() or p.suffix != ".duckdb" else p
        if read_only and not self.path.is_file():
            raise ValueError(f"no study store {str(self.path)!r}: run robustrl sweep SPEC --out {self.path.parent}")
        if read_only and driver:
            raise ValueError("a read-only store cannot be a sweep's driver")
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.read_only = read_only
        self.driver = driver
        self._con: Any = None
        self._lock: Any = None
        self._last_use = time.monotonic()
        if driver:
            self._lock = _sweep_lock(self.path)
            self.driver = self._lock is not None  # without OS file locks the DuckDB file stays open (and locked)
        try:
            if not self.driver:
                self._con = self._connect(wait_s=READER_WAIT_S)
            if not read_only:
                with self._use() as con:
                    con.execute(_SCHEMA)
                    con.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
            version = self.meta().get("schema_version")
        except BaseException:
            self.close()
            raise
        if version is not None and int(version) > SCHEMA_VERSION:
            self.close()
            raise ValueError(f"study store {str(self.path)!r} has schema {version}, newer than this robustrl reads")

    def _connect(self, *, wait_s: float | None) -> Any:
        """A DuckDB connection; waits for the file while another process has it open (``None``: no limit)."""
        import duckdb

        start = time.monotonic()
        delay, warned = 0.02, start
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=self.read_only)
            except duckdb.Error as err:
                waited = time.monotonic() - start
                if "lock" not in str(err).lower() or (wait_s is not None and waited >= wait_s):
                    raise ValueError(
                        f"study store {str(self.path)!r} cannot be opened ({err}); a sweep may still be running on it"
                    ) from err
                if time.monotonic() - warned >= 30.0:
                    warned = time.monotonic()
                    logger.warning("waiting %.0f s for %s: another process has it open", waited, self.path)
                time.sleep(delay)
                delay = min(2 * delay, 0.5)

    @contextmanager
    def _use(self) -> Iterator[Any]:
        """The open connection; the driver opens one when it has none (kept until :meth:`release_if_idle`)."""
        if self._con is None:
            if not self.driver:
                raise ValueError(f"study store {str(self.path)!r} is closed")
            self._con = self._connect(wait_s=None)
        try:
            yield self._con
        finally:
            self._last_use = time.monotonic()

    def release_if_idle(self, idle_s: float = DRIVER_IDLE_S) -> None:
        """The driver closes the file after ``idle_s`` without an operation, so that readers can open it."""
        if self.driver and self._con is not None and time.monotonic() - self._last_use >= idle_s:
            self._con.close()
            self._con = None

    # ------------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the file and let go of the sweep lock (idempotent)."""
        con, self._con = self._con, None
        if con is not None:
            con.close()
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.close()  # closing the descriptor releases the OS lock

    def __enter__(self) -> StudyStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        with self._use() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    # ------------------------------------------------------------------------------------------------
    def meta(self) -> dict[str, str]:
        """The ``meta`` table as a dict."""
        with self._use() as con:
            try:
                return dict(con.execute("SELECT key, value FROM meta").fetchall())
            except Exception:  # a read-only store written before the table existed
                return {}

    def sync(self, study: Study, *, rerun_failed: bool = True) -> dict[str, CellRecord]:
        """Record the study's cells before a sweep; returns every active cell's record by hash.

        New cells are added as ``pending``; cells of earlier specs stay (``active`` false) with their rows;
        ``running`` cells (left by a killed driver) become ``pending``; with ``rerun_failed``, failed and
        skipped cells of the spec become ``pending`` with their attempts reset.
        """
        from robustrl import __version__

        now = _now()
        with self._transaction() as con:
            meta = {"study": study.spec.name, "spec": study.spec.text, "spec_sha256": study.spec.digest,
                    "spec_path": str(study.spec.path), "robustrl": __version__}  # fmt: skip
            con.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [[k, v] for k, v in meta.items()])
            con.execute("UPDATE cells SET active = false")
            con.executemany(
                "INSERT INTO cells (cell_hash, stage, status, active, parent, labels, config, robustrl_version, "
                "artefact, attempts, created_at) VALUES (?, ?, 'pending', true, ?, ?, ?, ?, ?, 0, ?) "
                "ON CONFLICT (cell_hash) DO UPDATE SET active = true, parent = excluded.parent, "
                "labels = excluded.labels, config = excluded.config, artefact = excluded.artefact",
                [
                    [c.cell_hash, c.stage, c.parent, json.dumps(c.labels, sort_keys=True),
                     json.dumps(c.config, sort_keys=True), __version__, c.result_path, now]
                    for c in study.cells
                ],
            )  # fmt: skip
            con.execute("UPDATE cells SET status = 'pending' WHERE status = 'running'")
            if rerun_failed:
                con.execute(
                    "UPDATE cells SET status = 'pending', attempts = 0, error = NULL "
                    "WHERE active AND status IN ('failed', 'skipped')"
                )
        return {r.cell_hash: r for r in self.records()}

    def mark_running(self, cell_hash: str, attempt: int) -> None:
        """A cell was submitted (its ``attempt``-th run, from 1)."""
        with self._transaction() as con:
            con.execute(
                "UPDATE cells SET status = 'running', attempts = ?, started_at = ?, error = NULL WHERE cell_hash = ?",
                [attempt, _now(), cell_hash],
            )

    def mark_pending(self, cell_hash: str, error: str | None = None) -> None:
        """A cell waits to run (again), keeping its last error."""
        with self._transaction() as con:
            con.execute("UPDATE cells SET status = 'pending', error = ? WHERE cell_hash = ?", [error, cell_hash])

    def record_done(
        self, cell_hash: str, rows: Sequence[Sequence[Any]], *, kind: str | None, seconds: float, host: str | None
    ) -> None:
        """Replace the cell's rows with ``rows`` and mark it done, in one transaction (idempotent)."""
        values = [[cell_hash, i, *_row_values(r)] for i, r in enumerate(rows)]
        with self._transaction() as con:
            con.execute("DELETE FROM results WHERE cell_hash = ?", [cell_hash])
            for start in range(0, len(values), _INSERT_ROWS):  # one statement per chunk: executemany is slow
                chunk = values[start : start + _INSERT_ROWS]
                marks = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(chunk))
                con.execute(f"INSERT INTO results VALUES {marks}", [v for row in chunk for v in row])
            con.execute(
                "UPDATE cells SET status = 'done', error = NULL, result_kind = ?, seconds = ?, host = ?, "
                "finished_at = ? WHERE cell_hash = ?",
                [kind, float(seconds), host, _now(), cell_hash],
            )

    def record_failed(self, cell_hash: str, error: str, *, status: Literal["failed", "skipped"] = "failed") -> None:
        """Mark a cell failed (its attempts spent) or skipped (its training cell failed), with the error."""
        with self._transaction() as con:
            con.execute("DELETE FROM results WHERE cell_hash = ?", [cell_hash])
            con.execute(
                "UPDATE cells SET status = ?, error = ?, finished_at = ? WHERE cell_hash = ?",
                [status, error, _now(), cell_hash],
            )

    # ------------------------------------------------------------------------------------------------
    def records(self, *, active_only: bool = True) -> list[CellRecord]:
        """Cells (of the latest spec unless ``active_only`` is False), in insertion order."""
        where = " WHERE active" if active_only else ""
        with self._use() as con:
            rows = con.execute(f"SELECT {_CELL_COLUMNS} FROM cells{where} ORDER BY created_at, rowid").fetchall()
        return [_record(r) for r in rows]

    def rows(self, *, active_only: bool = True) -> list[StoredRow]:
        """Result rows of done cells, with their cells' labels, ordered by cell then row."""
        where = "WHERE c.status = 'done'" + (" AND c.active" if active_only else "")
        query = (
            "SELECT r.cell_hash, c.stage, c.labels, r.task, r.policy, r.threat, r.budget, r.seed, r.metric, r.value, "
            f"r.ci_low, r.ci_high FROM results r JOIN cells c USING (cell_hash) {where} "
            "ORDER BY c.created_at, c.rowid, r.row_index"
        )
        out = []
        with self._use() as con:
            fetched = con.execute(query).fetchall()
        for h, stage, labels, *row in fetched:
            out.append(StoredRow(h, stage, json.loads(labels), ResultRow(*_nan(row))))
        return out

    def counts(self, *, active_only: bool = True) -> dict[str, int]:
        """Number of cells per status."""
        where = " WHERE active" if active_only else ""
        with self._use() as con:
            return dict(con.execute(f"SELECT status, count(*) FROM cells{where} GROUP BY status").fetchall())

    def export_parquet(self, folder: str | os.PathLike[str]) -> tuple[Path, Path]:
        """Write ``cells.parquet`` and ``results.parquet`` into ``folder`` (each atomically); returns both paths."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for table in ("cells", "results"):
            target = out / f"{table}.parquet"
            fd, tmp = tempfile.mkstemp(prefix=f".{table}.", suffix=".parquet.tmp", dir=out)
            os.close(fd)
            try:
                with self._use() as con:
                    con.execute(f"COPY (SELECT * FROM {table} ORDER BY ALL) TO '{_sql_path(tmp)}' (FORMAT parquet)")
                os.replace(tmp, target)
            finally:
                Path(tmp).unlink(missing_ok=True)
            paths.append(target)
        return paths[0], paths[1]


def _sweep_lock(path: Path) -> Any:
    """The open lock file of the study at ``path``, locked for this process; refused while a sweep holds it."""
    try:
        import fcntl
    except ImportError:  # no POSIX locks: the driver keeps the DuckDB file open instead (DuckDB locks it)
        return None
    lock_path = path.with_name(path.name + _LOCK_SUFFIX)
    f = open(lock_path, "a+")  # held until the store closes
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        holder = f.read().strip() or "another process"
        f.close()
        raise ValueError(f"study store {str(path)!r} is in use by another sweep ({holder}); a sweep may still be "
                         "running on it") from None
    f.seek(0)
    f.truncate()
    f.write(f"pid {os.getpid()}\n")
    f.flush()
    return f


def _row_values(row: Sequence[Any]) -> list[Any]:
    task, policy, threat, budget, seed, metric, value, low, high = row
    return [str(task), str(policy), str(threat), float(budget), None if seed is None else int(seed), str(metric),
            float(value), _float_or_none(low), _float_or_none(high)]  # fmt: skip


def _float_or_none(x: Any) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def _nan(row: Sequence[Any]) -> list[Any]:
    """A stored row back as ``ResultRow`` values (SQL NULL intervals are NaN, as ``to_rows`` gives them)."""
    task, policy, threat, budget, seed, metric, value, low, high = row
    return [task, policy, threat, budget, seed, metric, value, math.nan if low is None else low,
            math.nan if high is None else high]  # fmt: skip


def _sql_path(path: str) -> str:
    return path.replace("'", "''")
