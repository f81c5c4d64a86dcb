"""One typed schema per result kind (see ``docs/evaluate.md``, "Results schema").

Every result is a frozen dataclass with a class-level ``kind`` and ``schema_version``; ``to_dict`` /
``from_dict`` are derived from its fields (:mod:`robustrl.results.base`), ``save(path)`` writes it
atomically, ``to_rows()`` gives it in long format (:class:`ResultRow`), and :func:`load_result` reads any
result file by its ``kind`` (older schema versions are upgraded, newer ones and unknown kinds refused).

=====================  ===============  ==============================================================
kind                   schema_version   class
=====================  ===============  ==============================================================
``evaluation``         2                :class:`EvaluationResult` (:class:`ThreatCurve`, :class:`StrongestCurve`)
``dynamics``           2                :class:`DynamicsResult`
``certificate``        2                :class:`Certificate`
``train``              1                :class:`TrainResult` (:class:`EvalRecord`)
=====================  ===============  ==============================================================

This layer imports only :mod:`robustrl.common`, NumPy and the standard library.
"""

from robustrl.results.base import Result, ResultFileError, ResultRow
from robustrl.results.certificate import CERTIFIED_THREAT, Certificate
from robustrl.results.dynamics import DynamicsResult, GridAxis
from robustrl.results.evaluation import CleanRun, EvaluationResult, StrongestCurve, ThreatCurve, threat_label
from robustrl.results.load import RESULT_TYPES, load_result
from robustrl.results.runs import check_finished_run, is_run_folder
from robustrl.results.train import EvalRecord, TrainPoint, TrainResult

__all__ = [
    "CERTIFIED_THREAT",
    "RESULT_TYPES",
    "Certificate",
    "CleanRun",
    "DynamicsResult",
    "EvalRecord",
    "EvaluationResult",
    "GridAxis",
    "Result",
    "ResultFileError",
    "ResultRow",
    "StrongestCurve",
    "ThreatCurve",
    "TrainPoint",
    "TrainResult",
    "check_finished_run",
    "is_run_folder",
    "load_result",
    "threat_label",
]
