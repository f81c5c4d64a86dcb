"""Executors: where cells run. Local worker processes, or Ray tasks from a laptop to a cluster.

Every executor runs :func:`robustrl.experiments.worker.run_cell` on a cell's JSON task and the study
folder's path, and hands back its outcome (a plain dict). Nothing else crosses the process boundary: no
closures, no library objects; artefacts (policies, result files) move through the study folder, which
must be visible to every worker (one machine, or a shared filesystem on a cluster).

* :class:`InlineExecutor` (``--workers 0``): in the driver's own process, one cell at a time.
* :class:`LocalExecutor` (``--executor local --workers N``): N spawned worker processes with one torch thread
  each; they die with the driver.
* :class:`RayExecutor` (``--executor ray [--ray-address ADDR]``): one Ray task per cell (1 CPU each, no Ray
  retries: the sweep retries); ``ray.init`` starts a local Ray when no address is given and Ray is not
  already initialised in this process.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
import os
from collections import deque
from typing import Any, Literal, Protocol

from robustrl.experiments.worker import init_worker, run_cell

__all__ = ["Executor", "ExecutorKind", "InlineExecutor", "LocalExecutor", "Outcome", "RayExecutor", "make_executor"]

logger = logging.getLogger(__name__)

ExecutorKind = Literal["local", "ray"]
Outcome = dict[str, Any]
"""What :func:`~robustrl.experiments.worker.run_cell` returns (``cell_hash``, ``ok``, ``rows``, ``error``...)."""


def crashed(cell_hash: str, error: str) -> Outcome:
    """The outcome of a cell whose worker died (no result, the error)."""
    return {"cell_hash": cell_hash, "ok": False, "kind": None, "rows": [], "seconds": 0.0, "host": None,
            "error": error}  # fmt: skip


class Executor(Protocol):
    """Runs cells; the sweep's driver submits at most :attr:`capacity` at once."""

    name: str
    """``inline``, ``local`` or ``ray``."""
    capacity: int
    """Cells that run at once."""

    def submit(self, cell_hash: str, task: str) -> None:
        """Start a cell (its JSON task)."""

    def wait(self, timeout: float) -> list[Outcome]:
        """Outcomes of the cells that finished, waiting up to ``timeout`` seconds for at least one."""

    def close(self, *, wait: bool = True) -> None:
        """Release the workers; ``wait=False`` (the sweep was interrupted) abandons running cells."""


class InlineExecutor:
    """Runs each cell in this process when :meth:`wait` is called (for debugging and overhead measurements)."""

    name = "inline"
    capacity = 1

    def __init__(self, study_dir: str) -> None:
        self.study_dir = study_dir
        self._queue: deque[str] = deque()

    def submit(self, cell_hash: str, task: str) -> None:
        """Queue a cell."""
        self._queue.append(task)

    def wait(self, timeout: float) -> list[Outcome]:
        """Run the next queued cell."""
        return [run_cell(self._queue.popleft(), self.study_dir)] if self._queue else []

    def close(self, *, wait: bool = True) -> None:
        """Forget queued cells."""
        self._queue.clear()


class LocalExecutor:
    """``workers`` spawned processes (one torch thread each, ended when the driver dies)."""

    name = "local"

    def __init__(self, study_dir: str, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"workers must be ≥ 1 for worker processes (0 runs cells in this process), got {workers}")
        self.study_dir = study_dir
        self.capacity = workers
        self._futures: dict[cf.Future[Outcome], str] = {}
        self._pool = self._new_pool()

    def _new_pool(self) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(
            max_workers=self.capacity, mp_context=multiprocessing.get_context("spawn"),
            initializer=init_worker, initargs=(os.getpid(),),
        )  # fmt: skip

    def submit(self, cell_hash: str, task: str) -> None:
        """Send a cell to the pool."""
        self._futures[self._pool.submit(run_cell, task, self.study_dir)] = cell_hash

    def wait(self, timeout: float) -> list[Outcome]:
        """Outcomes of finished cells; a dead worker fails the cells that were running (the pool is rebuilt)."""
        if not self._futures:
            return []
        done, _ = cf.wait(list(self._futures), timeout=timeout, return_when=cf.FIRST_COMPLETED)
        out: list[Outcome] = []
        broken = False
        for fut in done:
            h = self._futures.pop(fut)
            try:
                out.append(fut.result())
            except cf.process.BrokenProcessPool as err:
                broken = True
                out.append(crashed(h, f"a worker process died while running the cell ({err})"))
            except Exception as err:  # pickling errors and the like
                out.append(crashed(h, f"{type(err).__name__}: {err}"))
        if broken:
            for fut, h in list(self._futures.items()):
                out.append(crashed(h, "a worker process died while this cell was running"))
                self._futures.pop(fut)
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
        return out

    def close(self, *, wait: bool = True) -> None:
        """Shut the pool down, cancelling queued cells (``wait=False``: without waiting for running ones)."""
        self._pool.shutdown(wait=wait, cancel_futures=True)
        self._futures.clear()


class RayExecutor:
    """One Ray task per cell (``num_cpus=1``, ``max_retries=0``); capacity = the cluster's CPUs.

    Args:
        study_dir: the study folder (on a cluster: a path every node sees).
        address: a Ray cluster address (``ray://...`` or ``HOST:PORT``); None: the Ray already initialised in
            this process, else ``RAY_ADDRESS``, else a new local Ray.
        num_cpus: CPUs of a local Ray started here (None: all).
    """

    name = "ray"

    def __init__(self, study_dir: str, address: str | None = None, num_cpus: int | None = None) -> None:
        try:
            import ray
        except ImportError as err:
            raise ValueError("--executor ray needs Ray: pip install 'robustrl[ray]'") from err
        self._ray = ray
        self.study_dir = study_dir
        self._owns = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if address is None and num_cpus is not None:
                kwargs["num_cpus"] = num_cpus
            ray.init(address=address, **kwargs)
            self._owns = True
        self.capacity = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._remote = ray.remote(num_cpus=1, max_retries=0)(run_cell)
        self._refs: dict[Any, str] = {}

    def submit(self, cell_hash: str, task: str) -> None:
        """Start a Ray task for the cell."""
        self._refs[self._remote.remote(task, self.study_dir)] = cell_hash

    def wait(self, timeout: float) -> list[Outcome]:
        """Outcomes of finished tasks; a task whose worker died gives the cell an error."""
        if not self._refs:
            return []
        ray = self._ray
        ready, _ = ray.wait(list(self._refs), num_returns=1, timeout=timeout)
        if ready:
            ready, _ = ray.wait(list(self._refs), num_returns=len(self._refs), timeout=0)
        out: list[Outcome] = []
        for ref in ready:
            h = self._refs.pop(ref)
            try:
                out.append(ray.get(ref))
            except Exception as err:  # worker crash, node loss: Ray's own errors
                out.append(crashed(h, f"the Ray task failed: {type(err).__name__}: {err}"))
        return out

    def close(self, *, wait: bool = True) -> None:
        """Cancel unfinished tasks; shut down the Ray this executor started."""
        for ref in self._refs:
            try:
                self._ray.cancel(ref, force=True)
            except Exception:  # already finished, or the cluster is gone
                logger.debug("could not cancel a Ray task", exc_info=True)
        self._refs.clear()
        if self._owns:
            self._ray.shutdown()


def make_executor(
    kind: ExecutorKind, study_dir: str, *, workers: int = 2, ray_address: str | None = None,
    ray_num_cpus: int | None = None,
) -> Executor:  # fmt: skip
    """The executor of ``kind`` (``local`` with ``workers == 0`` runs cells in this process)."""
    if kind == "local":
        return InlineExecutor(study_dir) if workers == 0 else LocalExecutor(study_dir, workers)
    if kind == "ray":
        return RayExecutor(study_dir, ray_address, ray_num_cpus)
    raise ValueError(f"executor must be 'local' or 'ray', got {kind!r}")
