"""Studies at scale: one TOML spec, a local or Ray executor, a DuckDB results store, resume after a kill.

See ``docs/studies.md``. The pieces, in the order a sweep uses them:

* :func:`load_study` (:mod:`~robustrl.experiments.spec`, :mod:`~robustrl.experiments.cells`): the spec read
  and checked as a whole, expanded into :class:`Cell` objects (a stage's resolved config, its hash, labels);
* :func:`make_executor` (:mod:`~robustrl.experiments.executors`): local worker processes or Ray tasks;
* :func:`robustrl.experiments.sweep.sweep`: runs the cells not yet done, retries failures, records
  each in :class:`StudyStore` (``DIR/study.duckdb``, :mod:`~robustrl.experiments.store`);
* :func:`summarize` (:mod:`~robustrl.experiments.analysis`): IQM, median, mean with stratified-bootstrap CIs
  and probabilities of improvement over seeds and tasks;
* :func:`study_report` (:mod:`~robustrl.experiments.report`): the study's HTML page.

The command-line configs are :class:`SweepConfig` / :func:`run_sweep` (``robustrl sweep``),
:class:`ResultsConfig` / :func:`run_results` (``robustrl results``) and :func:`report_or_study`
(``robustrl report DIR``). Names are imported on first use, so a worker imports only what its cell needs.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Cell": "cells",
    "Study": "cells",
    "expand": "cells",
    "load_study": "cells",
    "StudySpec": "spec",
    "load_spec": "spec",
    "parse_spec": "spec",
    "Problem": "locate",
    "StudySpecError": "locate",
    "STAGES": "stages",
    "STORE_FILE": "store",
    "StudyStore": "store",
    "InlineExecutor": "executors",
    "LocalExecutor": "executors",
    "RayExecutor": "executors",
    "make_executor": "executors",
    "SweepPlan": "sweep",
    "SweepResult": "sweep",
    "plan_sweep": "sweep",
    "StudySummary": "analysis",
    "summarize": "analysis",
    "ResultsConfig": "cli",
    "SweepConfig": "cli",
    "run_results": "cli",
    "run_sweep": "cli",
    "StudyReportConfig": "report",
    "report_or_study": "report",
    "study_report": "report",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import an exported name on first use."""
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'robustrl.experiments' has no attribute {name!r}")
