"""The share of an update's CPU time spent in matrix products: the ceiling of any speed-up that keeps the math.

Used by ``bench_offline.py`` and ``bench_agents.py`` (run as scripts, so this folder is on ``sys.path``). If a
fraction ``s`` of an update is matrix products (forward and backward, self time in the torch profiler),
removing everything else speeds it up ``1 / s`` times at most, with the same networks, batch and dtype.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

GEMM_OPS = frozenset({"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"})
"""The matrix products of an update (forward and backward)."""


def matmul_share(step: Callable[..., Any], calls: int, *args: Any) -> float:
    """Fraction of the CPU time of ``calls`` calls ``step(*args)`` spent in :data:`GEMM_OPS`."""
    from torch.profiler import profile

    with profile() as prof:
        for _ in range(calls):
            step(*args)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    return sum(e.self_cpu_time_total for e in events if e.key in GEMM_OPS) / total
