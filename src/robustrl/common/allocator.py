"""Keep freed memory inside the process, so that large tensors stop costing page faults on every update.

glibc's ``malloc`` serves big blocks by ``mmap`` and gives freed memory at the top of its heap back to the
system once more than a threshold (32 MiB at most, by default) is free. An update that makes and frees a
hundred megabytes of activations (CQL's critic pass over 31 × 256 sampled actions: 16 MiB per layer) then
faults every page in again on the next update: 26,700 minor page faults per CQL update, against 400 with
the thresholds below, and 7.2 against 10.1 updates/s (one thread, the Hopper shapes of
``benchmarks/bench_offline.py``).

:func:`keep_freed_memory` raises both thresholds to :data:`RETAIN_MIB` MiB: blocks up to that size come from the
heap, and up to that much freed memory stays in the process. The ``robustrl`` command and the sweep's workers
call it, as they set one torch thread; importing robustrl does not. ``ROBUSTRL_MALLOC_RETAIN_MIB`` sets the size
(``0`` leaves malloc alone), and a ``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_`` or ``GLIBC_TUNABLES``
of your own is left in force. Other C libraries than glibc are left alone.
"""

from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["RETAIN_MIB", "keep_freed_memory"]

RETAIN_MIB = 256
"""Default size (MiB) of the blocks served from the heap, and of the freed memory kept."""

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
_USER_VARS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")


def _retain_mib() -> int:
    raw = os.environ.get("ROBUSTRL_MALLOC_RETAIN_MIB", "")
    if not raw:
        return RETAIN_MIB
    try:
        mib = int(raw)
    except ValueError:
        mib = -1
    if not 0 <= mib <= 65536:
        raise ValueError(f"ROBUSTRL_MALLOC_RETAIN_MIB must be a whole number of MiB in [0, 65536], got {raw!r}")
    return mib


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds (see the module); whether they were set.

    Raises:
        ValueError: ``ROBUSTRL_MALLOC_RETAIN_MIB`` is not a whole number in [0, 65536].
    """
    mib = _retain_mib()
    if mib == 0 or not sys.platform.startswith("linux") or any(v in os.environ for v in _USER_VARS):
        return False
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return False
    if not hasattr(libc, "gnu_get_libc_version"):  # glibc only (musl has a mallopt that does nothing)
        return False
    size = mib << 20
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, size)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, size))
