"""``load_result(path)``: read any result file by its ``"kind"``."""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from pathlib import Path

from robustrl.common.io import read_json
from robustrl.results.base import Result, ResultFileError
from robustrl.results.certificate import Certificate
from robustrl.results.dynamics import DynamicsResult
from robustrl.results.evaluation import EvaluationResult
from robustrl.results.offline import DatasetSummary, OfflineTrainResult
from robustrl.results.train import TrainResult
from robustrl.results.uncertainty import UncertaintyResult

__all__ = ["RESULT_TYPES", "load_result"]

RESULT_TYPES: dict[str, type[Result]] = {
    cls.kind: cls for cls in (EvaluationResult, DynamicsResult, Certificate, TrainResult, OfflineTrainResult,
                              DatasetSummary, UncertaintyResult)
}
"""Every result kind robustrl writes, by the ``"kind"`` of its files."""


def _either(names: Collection[str]) -> str:
    items = list(names)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def load_result(path: str | os.PathLike[str], *, kinds: Collection[str] | None = None) -> Result:
    """Read a result file written by any result's ``save``: the class is chosen by the file's ``"kind"``.

    Args:
        path: the JSON file.
        kinds: accept only these kinds (default: every kind of :data:`RESULT_TYPES`).

    Returns:
        An :class:`~robustrl.results.EvaluationResult`, :class:`~robustrl.results.DynamicsResult`,
        :class:`~robustrl.results.Certificate` or :class:`~robustrl.results.TrainResult`.

    Raises:
        FileNotFoundError: no such file (named).
        ResultFileError: (a ``ValueError``) not JSON, not an object, an unknown or unexpected kind, a
            newer ``schema_version`` than this robustrl reads, or a missing or malformed field; the message
            names the file, where in it, and the field.

    """
    p = Path(path)
    try:
        data = read_json(p, what="result file")
    except ValueError as err:
        raise ResultFileError(str(err)) from err
    if not isinstance(data, Mapping):
        raise ResultFileError(f"result file {str(p)!r}: expected a JSON object, got {type(data).__name__}")
    accepted = list(RESULT_TYPES) if kinds is None else list(kinds)
    what = "result" if kinds is None else f"{_either(accepted)} result"
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in RESULT_TYPES:
        raise ResultFileError(
            f"result file {str(p)!r} is not a robustrl {what}: unknown kind {kind!r} (kinds: {', '.join(accepted)})"
        )
    if kind not in accepted:
        raise ResultFileError(
            f"result file {str(p)!r} is not a robustrl {what}: its kind is {kind!r} (kinds: {', '.join(accepted)})"
        )
    return RESULT_TYPES[kind].from_dict(data, source=p)
