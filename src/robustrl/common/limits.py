"""Size every request before running it: refuse what cannot fit, with the limit in the message.

A request (``num_envs=10**12``, a budget grid of 10⁹ points, 10¹² bootstrap resamples) is checked against
the memory it would need *before* any work starts, so it fails in milliseconds with a message naming the
option, instead of minutes later in the allocator. The budget is the memory this machine has available
(``MemAvailable``), capped by ``ROBUSTRL_MAX_MEMORY`` (bytes, or with a K/M/G/T suffix) when set.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

_SUFFIX = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
MAX_COUNT = 2**40
"""No count (episodes, copies, grid points, resamples) may exceed this, whatever the memory."""


def _parse_bytes(text: str) -> int:
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = t[-1:] if t[-1:] in _SUFFIX and t[-1:] != "" else ""
    number = t[: len(t) - len(unit)] if unit else t
    try:
        value = float(number) * _SUFFIX[unit]
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"ROBUSTRL_MAX_MEMORY must be a positive size such as 8G, got {text!r}")
    return int(value)


def available_memory() -> int:
    """Bytes this process may plan to use: ``MemAvailable`` (Linux) or physical memory, capped by the env var."""
    avail = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
                break
    except OSError:
        pass
    if avail <= 0:
        try:
            avail = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
        except (ValueError, OSError, AttributeError):
            avail = 8 * 2**30
    cap = os.environ.get("ROBUSTRL_MAX_MEMORY")
    return min(avail, _parse_bytes(cap)) if cap else avail


def format_bytes(n: float) -> str:
    """``1.5 GiB``-style text."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


def check_count(value: float, what: str, *, minimum: int = 1, maximum: int = MAX_COUNT) -> int:
    """``int(value)`` after checking it is a whole number in ``[minimum, maximum]``; names ``what`` otherwise.

    Example:
        >>> check_count(64, "--episodes")
        64
        >>> check_count(2**41, "--episodes")
        Traceback (most recent call last):
        ...
        ValueError: --episodes=2199023255552 is too large (the limit is 1099511627776)
    """
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{what} must be a whole number, got {value!r}")
    if value != int(value):
        raise ValueError(f"{what} must be a whole number, got {value!r}")
    if value < minimum:
        raise ValueError(f"{what} must be ≥ {minimum}, got {value!r}")
    if value > maximum:
        raise ValueError(f"{what}={value!r} is too large (the limit is {maximum})")
    return int(value)


def check_fits(nbytes: float, what: str, *, hint: str = "") -> None:
    """Raise a ``ValueError`` when a request needs more than :func:`available_memory`.

    Args:
        nbytes: the estimated bytes the request allocates.
        what: the request, as the user wrote it (``--num-envs 1000000000``).
        hint: how to make it fit.
    """
    budget = available_memory()
    if not math.isfinite(nbytes) or nbytes > budget:
        shown = "an unbounded amount" if not math.isfinite(nbytes) else f"about {format_bytes(nbytes)}"
        extra = f"; {hint}" if hint else ""
        raise ValueError(
            f"{what} needs {shown} of memory but {format_bytes(budget)} is available "
            f"(set ROBUSTRL_MAX_MEMORY to change the limit){extra}"
        )
