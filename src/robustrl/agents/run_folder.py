"""A training run folder is a transaction: one run's files, ``result.json`` written last as the completion mark.

``robustrl train --out DIR`` refuses a folder that already holds a run unless ``--overwrite`` (the old
run's files are removed first, ``result.json`` before anything else, so a kill never leaves a folder that
looks finished or that mixes two runs) or ``--resume`` (continue from ``checkpoint.pt`` with the same
config). It never deletes a file robustrl did not write: a folder with other files in it is refused even
with ``--overwrite``. Every file carries the run's id, and :func:`check_finished_run` refuses a folder whose
``result.json`` is missing (unfinished or killed) or whose files come from different runs.
"""

from __future__ import annotations

import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import torch

from robustrl.common.config import config_to_dict
from robustrl.common.io import atomic_path, read_json
from robustrl.results.runs import check_finished_run, is_run_folder

__all__ = [
    "RUN_DIRS",
    "RUN_FILES",
    "check_finished_run",
    "check_resume_config",
    "is_run_folder",
    "load_checkpoint",
    "new_run_id",
    "prepare_run_dir",
    "prepare_sequence_dir",
    "resumable_options",
    "save_checkpoint",
]

RUN_FILES = ("result.json", "config.json", "policy.zip", "eval.json", "checkpoint.pt")
"""Files of a run folder; ``result.json`` first because it is removed first and written last."""
RUN_DIRS = ("tb",)
"""Folders of a run folder (TensorBoard event files)."""
_TEMPORARY = re.compile(r"^\..+\.tmp$")
"""Partial files of atomic writes (cleaned by the next write of the same name)."""
_MISSING = object()
_RESUME_IGNORED = ("out", "overwrite", "resume", "progress", "tensorboard")
"""TrainConfig fields that may differ between a run and its resumption."""


def new_run_id() -> str:
    """A fresh random run id (32 hex digits)."""
    return uuid.uuid4().hex


def prepare_run_dir(run_dir: Path, *, overwrite: bool, resume: bool) -> bool:
    """Check ``run_dir`` before any work and clear it when asked; returns True when the run resumes.

    Raises:
        ValueError: the folder holds a run and neither flag is given, holds files robustrl did not write,
            is a file, or ``resume`` is asked without a checkpoint.
    """
    if overwrite and resume:
        raise ValueError("pass --overwrite or --resume, not both")
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"--out {str(run_dir)!r} is a file; a training run needs a folder")
    entries = [p for p in run_dir.iterdir() if not _TEMPORARY.match(p.name)] if run_dir.is_dir() else []
    if not entries:
        if resume:
            raise ValueError(f"--resume: {str(run_dir)!r} holds no run to resume")
        return False
    foreign = sorted(p.name for p in entries if p.name not in RUN_FILES + RUN_DIRS)
    if foreign:
        raise ValueError(
            f"--out {str(run_dir)!r} is not a robustrl run folder (it holds {foreign[:5]}); "
            "robustrl never deletes files it did not write: choose another --out"
        )
    if resume:
        if not (run_dir / "checkpoint.pt").is_file() or not (run_dir / "config.json").is_file():
            raise ValueError(f"--resume: {str(run_dir)!r} has no checkpoint.pt to continue from; use --overwrite")
        return True
    if not overwrite:
        state = "a finished run" if (run_dir / "result.json").exists() else "an unfinished run"
        raise ValueError(
            f"--out {str(run_dir)!r} already holds {state}: pass --overwrite to replace it, "
            "--resume to continue it from its last checkpoint, or choose another folder"
        )
    for name in RUN_FILES:  # result.json first: from here on the folder never looks finished
        (run_dir / name).unlink(missing_ok=True)
    for name in RUN_DIRS:
        if (run_dir / name).is_dir():
            shutil.rmtree(run_dir / name)
    return False


def check_resume_config(
    run_dir: Path, meta: dict[str, Any], sections: tuple[str, ...] = ("train", "algo", "defense"),
    defaults: dict[str, dict[str, Any]] | None = None,
) -> str:
    """The run id of ``run_dir`` after checking its config equals ``meta`` (the resumed run's) in ``sections``.

    The first section is the run's own config, whose output and display options (``out``, ``overwrite``,
    ``resume``, ``progress``, ``tensorboard``) may differ. A field the saved config lacks (it was written by
    an older robustrl) counts as equal when the new value is that field's default in ``defaults[section]``.

    Raises:
        ValueError: naming the fields that differ.
    """
    saved = read_json(run_dir / "config.json", what="run config")
    if not isinstance(saved, dict) or "run_id" not in saved:
        raise ValueError(f"{str(run_dir / 'config.json')!r} is not a robustrl run config")
    diffs = []
    for section in sections:
        old, new = dict(saved.get(section, {})), dict(meta.get(section, {}))
        if section == sections[0]:
            for key in _RESUME_IGNORED:
                old.pop(key, None)
                new.pop(key, None)
        fallback = (defaults or {}).get(section, {})
        diffs += [f"{section}.{k}" for k in sorted(set(old) | set(new))
                  if old.get(k, fallback.get(k, _MISSING)) != new.get(k)]  # fmt: skip
    if diffs:
        raise ValueError(f"--resume: the config differs from the run's in {diffs}; resume with the same options")
    return str(saved["run_id"])


def resumable_options(cfg: Any) -> dict[str, Any]:
    """The options of a run's config that a resumed run must repeat (output and display options may differ)."""
    return {k: v for k, v in config_to_dict(cfg).items() if k not in _RESUME_IGNORED}


SEQUENCE_MEMBER = re.compile(r"policy_\d+")
"""The per-iteration run folders of a sequence run (IWOCS, PROTECTED): ``policy_<i>/``."""


def prepare_sequence_dir(
    run_dir: Path, options: dict[str, Any], *, what: str, progress: str, overwrite: bool, resume: bool,
    extra_files: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """Check the folder of a run that trains a sequence of policies, before any work.

    The folder holds ``progress`` (the options and per-iteration records, rewritten after each iteration),
    ``policy_<i>/`` run folders, and last ``policy.zip`` and ``result.json``. ``options`` maps sections to dicts
    (compared key by key on resume) or to plain values (compared whole). ``extra_files`` are more files of
    the run's own (written last, removed by ``overwrite``).

    Returns:
        The finished iterations' records when resuming, else ``[]`` (an ``overwrite`` has then cleared the folder).

    Raises:
        ValueError: files robustrl did not write, a run there without ``--overwrite``/``--resume``, nothing to
            resume, or ``--resume`` with other options than the run's (naming them).
    """
    if overwrite and resume:
        raise ValueError("pass --overwrite or --resume, not both")
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"--out {str(run_dir)!r} is a file; a training run needs a folder")
    entries = sorted(run_dir.iterdir()) if run_dir.is_dir() else []
    mine = {progress, "policy.zip", "result.json", *extra_files}
    members = [p for p in entries if p.is_dir() and SEQUENCE_MEMBER.fullmatch(p.name)]
    foreign = [p.name for p in entries if p.name not in mine and p not in members]
    if foreign:
        raise ValueError(f"--out {str(run_dir)!r} is not {what} run folder (it holds {foreign[:5]}); robustrl never "
                         "deletes files it did not write: choose another --out")
    if resume:
        if not (run_dir / progress).is_file():
            raise ValueError(f"--resume: {str(run_dir)!r} holds no {what} run to resume (no {progress})")
        saved = read_json(run_dir / progress, what=f"{what} progress")
        diffs = []
        for section, value in options.items():
            old = saved.get(section)
            if isinstance(value, dict):
                old = old if isinstance(old, dict) else {}
                diffs += [f"{section}.{k}" for k in sorted(set(old) | set(value)) if old.get(k) != value.get(k)]
            elif old != value:
                diffs.append(section)
        if diffs:
            raise ValueError(f"--resume: the config differs from the run's in {diffs}; resume with the same options")
        return list(saved.get("iterations", []))
    if entries and not overwrite:
        raise ValueError(f"--out {str(run_dir)!r} already holds {what} run: pass --overwrite to replace it, "
                         "--resume to continue it, or choose another folder")
    for name in ("result.json", *extra_files, "policy.zip", progress):  # result.json first: never half finished
        (run_dir / name).unlink(missing_ok=True)
    for p in members:
        shutil.rmtree(p)
    return []


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write a checkpoint atomically (tensors, numbers, strings and containers of them only)."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True`` (no unpickling of arbitrary objects).

    Raises:
        ValueError: not a readable checkpoint.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a corrupt file
        raise ValueError(f"checkpoint {str(path)!r} cannot be read: {err}") from err
    if not isinstance(state, dict) or "learner" not in state:
        raise ValueError(f"checkpoint {str(path)!r} is not a robustrl training checkpoint")
    return state
