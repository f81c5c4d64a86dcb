"""What runs in a worker: one cell, from its JSON task to the rows of its result.

:func:`run_cell` is the only function an executor sends to a worker (a local process or a Ray task). It gets
the cell as JSON and the study folder's path, calls the stage's entry point with the resolved config
(paths made absolute), writes the result where the config says (inside the cell's folder), and returns a
plain dict: the long rows, the result's kind, the seconds it took, or the error. It never touches the
DuckDB file. A training cell whose folder already holds files (a killed attempt) runs with
``overwrite=True``, so the run folder is replaced whole.

:func:`init_worker` prepares a local worker process: one torch thread, and death with its driver
(``PR_SET_PDEATHSIG`` on Linux, plus a watchdog thread), so a killed sweep leaves no worker writing into a
cell folder that the next sweep runs again.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from robustrl.experiments.stages import STAGES

__all__ = ["init_worker", "result_rows", "run_cell"]

_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def _one_thread() -> None:
    """One torch thread, and freed memory kept in the process, as the ``robustrl`` command runs."""
    import torch

    from robustrl.common.allocator import keep_freed_memory

    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)
    keep_freed_memory()


def _die_with(parent_pid: int) -> None:
    """End this process when ``parent_pid`` (the driver) dies."""
    if os.name == "posix":
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, 9)  # PR_SET_PDEATHSIG = 1, SIGKILL = 9 (Linux; elsewhere the watchdog below)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="robustrl-driver-watch", daemon=True).start()


def init_worker(parent_pid: int) -> None:
    """Initialiser of a local worker process: one CPU thread everywhere, and exit when the driver dies."""
    for name in _THREAD_VARS:
        os.environ[name] = "1"
    _die_with(parent_pid)
    _one_thread()


def result_rows(stage: str, result: Any, cfg: Any) -> tuple[str, list[tuple[Any, ...]]]:
    """``(kind, rows)`` of an entry point's result (a training result without ``to_rows`` is converted first)."""
    if not callable(getattr(result, "to_rows", None)):
        result = _as_train_result(result, cfg)
    return str(getattr(result, "kind", stage)), [tuple(r) for r in result.to_rows()]


def _as_train_result(res: Any, cfg: Any) -> Any:
    """A :class:`robustrl.results.TrainResult` of ``agents.train``'s own result type (adapter)."""
    from robustrl.results import EvalRecord, TrainResult

    history = tuple(EvalRecord(**r._asdict()) for r in res.history)
    return TrainResult(
        env_id=cfg.env, algo=cfg.algo, seed=cfg.seed, steps=res.steps, wall_time=res.wall_time,
        train_time=res.train_time, stopped_early=res.stopped_early, history=history,
        run_dir=None if res.run_dir is None else str(res.run_dir),
    )  # fmt: skip


def _absolute(study_dir: Path, value: Any) -> Any:
    if isinstance(value, str) and value and not os.path.isabs(value):
        return str(study_dir / value)
    return value


def _relative(study_dir: Path, value: Any) -> Any:
    prefix = str(study_dir) + os.sep
    return value[len(prefix) :] if isinstance(value, str) and value.startswith(prefix) else value


def run_cell(task: str, study_dir: str) -> dict[str, Any]:
    """Run one cell and return its outcome (never raises for a failing cell: the error is returned).

    Args:
        task: :meth:`robustrl.experiments.cells.Cell.task` JSON (``cell_hash``, ``stage``, ``config``).
        study_dir: absolute path of the study folder (shared by driver and workers).

    Returns:
        ``{"cell_hash", "ok", "kind", "rows", "seconds", "host", "error"}``; ``rows`` are tuples of
        :class:`~robustrl.results.ResultRow` fields, paths inside the study written relative to it.
    """
    t0 = time.perf_counter()
    outcome: dict[str, Any] = {"cell_hash": None, "ok": False, "kind": None, "rows": [], "seconds": 0.0,
                               "host": socket.gethostname(), "error": None}  # fmt: skip
    try:
        data = json.loads(task)
        outcome["cell_hash"] = data["cell_hash"]
        _one_thread()
        from robustrl.common.config import config_from_dict

        stage = STAGES[data["stage"]]
        root = Path(study_dir)
        config = dict(data["config"])
        for name in stage.path_fields:
            config[name] = _absolute(root, config.get(name))
        if stage.trains:
            run_dir = Path(config["out"])
            config["overwrite"] = run_dir.is_dir() and any(run_dir.iterdir())
        else:
            Path(config["out"]).parent.mkdir(parents=True, exist_ok=True)
        cfg: Any = config_from_dict(stage.config_class(), config)
        result = stage.entry_point()(cfg)
        kind, rows = result_rows(stage.name, result, cfg)
        outcome.update(ok=True, kind=kind, rows=[(r[0], _relative(root, r[1]), *r[2:]) for r in rows])
    except Exception as err:  # a failing cell is an outcome, not a crash of the sweep
        outcome["error"] = f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=8)}"
    outcome["seconds"] = time.perf_counter() - t0
    return outcome

