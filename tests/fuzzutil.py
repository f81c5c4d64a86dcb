"""What the fuzzing tests share: Hypothesis settings and a hard per-case time limit.

``ROBUSTRL_FUZZ_EXAMPLES=N`` runs N random examples instead of the default 200 derandomised ones.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from types import FrameType

from hypothesis import HealthCheck, settings

_EXAMPLES = int(os.environ.get("ROBUSTRL_FUZZ_EXAMPLES", "0"))


def fuzz_settings(deadline_ms: int | None) -> settings:
    """200 derandomised examples (or ``ROBUSTRL_FUZZ_EXAMPLES`` random ones), writing no database."""
    return settings(
        max_examples=_EXAMPLES or 200,
        derandomize=not _EXAMPLES,
        deadline=deadline_ms,
        database=None,  # write nothing (no .hypothesis folder)
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
    )


class CaseTimeout(BaseException):
    """Raised by the alarm; a BaseException so that no ``except Exception`` in a loader swallows it."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`CaseTimeout` in the main thread after ``seconds`` (a hang fails instead of stalling)."""

    def expire(signum: int, frame: FrameType | None) -> None:
        raise CaseTimeout(f"case took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
