"""Reading result files for the report: :mod:`robustrl.results` parses and checks them; this keeps their path.

A result file is JSON with a ``"kind"``: ``"evaluation"`` (``robustrl.evaluate.evaluate``), ``"dynamics"``
(``robustrl.evaluate.evaluate_dynamics``) or ``"certificate"`` (``robustrl.certify.certify``).
:func:`load_result` reads one with :func:`robustrl.results.load_result` (every problem — missing file, not
JSON, unknown kind, a missing or malformed field — raises an error naming the file) and pairs the typed
result with where it came from (:class:`Loaded`); the report's sections draw from the result itself.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar, cast

from robustrl.results import Certificate, DynamicsResult, EvaluationResult, ResultFileError
from robustrl.results import load_result as _load_any
from robustrl.results.runs import check_finished_run, is_run_folder
from robustrl.results.uncertainty import UncertaintyResult

__all__ = [
    "KINDS",
    "Loaded",
    "Reportable",
    "ResultFileError",
    "load_result",
    "load_results",
    "nominal_params",
    "of_kind",
    "unique_result_files",
]

Reportable = EvaluationResult | DynamicsResult | Certificate | UncertaintyResult
"""The result kinds a report shows."""
KINDS: tuple[str, ...] = (EvaluationResult.kind, DynamicsResult.kind, Certificate.kind, UncertaintyResult.kind)
"""The result kinds the report reads."""

R = TypeVar("R", bound=Reportable, covariant=True)


@dataclass(frozen=True, eq=False)
class Loaded(Generic[R]):
    """A result and where it came from."""

    path: Path
    """The file it was read from (``Path("<n> runs")`` for runs pooled by ``report.scores.pool_runs``)."""
    result: R
    """The typed result."""
    runs: int = 1
    """How many runs it summarises (> 1: pooled)."""


def load_result(path: str | os.PathLike[str]) -> Loaded[Reportable]:
    """Read one result file for the report.

    Args:
        path: a JSON file written by ``EvaluationResult.save``, ``DynamicsResult.save`` or ``Certificate.save``.

    Returns:
        :class:`Loaded` with the :class:`~robustrl.results.EvaluationResult`,
        :class:`~robustrl.results.DynamicsResult` or :class:`~robustrl.results.Certificate`.

    Raises:
        FileNotFoundError: the file does not exist (the message names it).
        ResultFileError: (a ``ValueError``) not JSON, not an object, another kind, or a missing or
            malformed field; the message names the file and the field.

    """
    p = Path(path)
    if is_run_folder(p):
        check_finished_run(p)  # an unfinished or mixed run folder is refused as such
        raise ResultFileError(
            f"{str(p)!r} is a training run folder: the report reads evaluation, dynamics and certificate files; "
            f"evaluate its policy first (robustrl evaluate --policy {str(p / 'policy.zip')!r} ... --out eval.json)"
        )
    if p.is_dir():
        raise ResultFileError(
            f"result file {str(p)!r} is a directory: pass the result JSON files in it (e.g. {str(p / '*.json')!r})"
        )
    try:
        result = _load_any(p, kinds=KINDS)
    except RecursionError:  # json nests deeper than Python's recursion limit
        raise ResultFileError(f"result file {str(p)!r} is not a valid result: its JSON is nested too deeply") from None
    return Loaded(p, cast(Reportable, result))


def load_results(paths: Sequence[str | os.PathLike[str]]) -> list[Loaded[Reportable]]:
    """Read several result files, in order (see :func:`load_result`); at least one is required."""
    if not paths:
        raise ValueError("no result files given")
    return [load_result(p) for p in paths]


def _digest(path: Path) -> str | None:
    """SHA-256 of a file's bytes (None when it cannot be read: loading it reports why)."""
    try:
        with path.open("rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except OSError:
        return None


def unique_result_files(paths: Sequence[str | os.PathLike[str]]) -> tuple[list[Path], list[str]]:
    """The files of ``paths`` with repeats dropped, and a note for each one dropped.

    A file given twice (the same resolved path, e.g. ``a.json`` and ``./a.json`` or a link to it) or two
    files with the same bytes (a copy) would count one run twice, shrinking the report's intervals; the
    first is kept.

    Returns:
        ``(files, notes)``: the kept files in order, and sentences such as ``"b.json: the same file as
        a.json (counted once)"``.
    """
    kept: list[Path] = []
    notes: list[str] = []
    by_path: dict[Path, Path] = {}
    by_hash: dict[str, Path] = {}
    for raw in paths:
        p = Path(raw)
        resolved = p.resolve()
        if resolved in by_path:
            first = by_path[resolved]
            again = "given more than once" if first == p else f"the same file as {first}"
            notes.append(f"{p}: {again} (counted once)")
            continue
        digest = _digest(p) if p.is_file() else None
        if digest is not None and digest in by_hash:
            notes.append(f"{p}: the same content as {by_hash[digest]} (counted once)")
            by_path[resolved] = by_hash[digest]
            continue
        by_path[resolved] = p
        if digest is not None:
            by_hash[digest] = p
        kept.append(p)
    return kept, notes


def of_kind(items: Sequence[Loaded[Reportable]], cls: type[R]) -> list[Loaded[R]]:
    """The items whose result is a ``cls``, in order."""
    return [cast(Loaded[R], it) for it in items if isinstance(it.result, cls)]


def nominal_params(env_id: str, names: Sequence[str]) -> tuple[float, ...] | None:
    """The default value of each physical parameter of ``env_id`` (None when any is unknown).

    Native envs declare their defaults (``robustrl.envs.NATIVE_ENVS[env_id].PARAMS``); adapter MuJoCo
    scales (``mass_scale``, ``friction_scale``) are 1 at nominal.
    """
    from robustrl.envs import NATIVE_ENVS

    specs = getattr(NATIVE_ENVS.get(env_id), "PARAMS", {})
    out = []
    for name in names:
        if name in specs:
            out.append(float(specs[name].default))
        elif name in ("mass_scale", "friction_scale"):
            out.append(1.0)
        else:
            return None
    return tuple(out)
