"""Training run folders as readers see them: finished (``result.json`` written last) and of one run only.

:func:`check_finished_run` is what every loader of a run folder calls (``load_policy(DIR)``, the report,
study executors); the writer side is :mod:`robustrl.agents.run_folder`.
"""

from __future__ import annotations

from pathlib import Path

from robustrl.common.io import read_json
from robustrl.results.load import load_result
from robustrl.results.train import TrainResult

__all__ = ["check_finished_run", "is_run_folder"]


def is_run_folder(path: str | Path) -> bool:
    """True when ``path`` is a folder written by ``robustrl train --out`` (it has a ``config.json`` with a run id)."""
    p = Path(path)
    if not p.is_dir() or not (p / "config.json").is_file():
        return False
    try:
        config = read_json(p / "config.json", what="run config")
    except ValueError:
        return False
    return isinstance(config, dict) and "run_id" in config


def check_finished_run(run_dir: str | Path) -> TrainResult:
    """``result.json`` of a finished run folder, after checking the folder holds one whole run.

    Raises:
        FileNotFoundError: no such folder.
        ValueError: the run is unfinished (no ``result.json``: still running, or killed) or its files
            come from different runs.
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"run folder {str(path)!r} does not exist")
    if not (path / "result.json").is_file():
        raise ValueError(
            f"run folder {str(path)!r} is unfinished (no result.json): the run is still going, was killed, "
            "or failed; resume it with robustrl train --resume --out ... or train again with --overwrite"
        )
    result = load_result(path / "result.json", kinds=("train",))
    assert isinstance(result, TrainResult)
    config = read_json(path / "config.json", what="run config") if (path / "config.json").is_file() else {}
    if not isinstance(config, dict) or not result.run_id or config.get("run_id") != result.run_id:
        raise ValueError(f"run folder {str(path)!r} mixes files of different runs (run ids differ)")
    return result
