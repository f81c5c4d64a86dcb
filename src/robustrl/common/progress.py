"""Progress bars for long work: ``tqdm`` that stays readable when its output goes to a log file.

On a terminal the bar redraws in place, so it refreshes every 0.1 s as tqdm does. Redirected to a file
(``robustrl sweep ... > study.log``) every refresh is kept, so there it refreshes at most every
:data:`LOG_INTERVAL_S` seconds: a day-long study writes a few thousand lines, not a million.
``ROBUSTRL_PROGRESS_INTERVAL`` (seconds) sets the file interval.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from tqdm.auto import tqdm

__all__ = ["LOG_INTERVAL_S", "progress_bar"]

LOG_INTERVAL_S = 30.0
"""Seconds between two refreshes of a bar whose stream is not a terminal."""


def _interval(stream: Any) -> float:
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and isatty():
        return 0.1
    raw = os.environ.get("ROBUSTRL_PROGRESS_INTERVAL", "")
    try:
        return float(raw) if raw else LOG_INTERVAL_S
    except ValueError:
        raise ValueError(f"ROBUSTRL_PROGRESS_INTERVAL must be a number of seconds, got {raw!r}") from None


def progress_bar(**kwargs: Any) -> Any:
    """A ``tqdm`` bar with the keyword arguments given; ``mininterval`` follows the stream unless given.

    Example:
        >>> import io
        >>> with progress_bar(total=3, file=io.StringIO()) as bar:  # not a terminal
        ...     bar.mininterval
        30.0
    """
    kwargs.setdefault("mininterval", _interval(kwargs.get("file") or sys.stderr))
    return tqdm(**kwargs)
