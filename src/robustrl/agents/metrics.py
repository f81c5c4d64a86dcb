"""Metric logging for training runs: an in-memory history, optional TensorBoard (imported lazily).

Keys are namespaced: ``train/…`` for learner statistics, ``eval/…`` for periodic evaluation,
``time/…`` for throughput.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def open_tensorboard(log_dir: Path) -> Any:
    """A ``torch.utils.tensorboard.SummaryWriter`` writing to ``log_dir``.

    Raises:
        ValueError: the ``tensorboard`` package is not installed (only raised when TensorBoard is asked for).
    """
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:
        raise ValueError(
            "tensorboard=True needs the 'tensorboard' package (pip install tensorboard), "
            f"which could not be imported: {err}"
        ) from err
    return SummaryWriter(log_dir=str(log_dir))


class MetricLogger:
    """Keeps the latest value of every metric and forwards scalars to TensorBoard when asked.

    Args:
        tensorboard_dir: where TensorBoard event files go (None: no TensorBoard).
    """

    def __init__(self, tensorboard_dir: Path | None = None) -> None:
        self.latest: dict[str, float] = {}
        self._writer = open_tensorboard(tensorboard_dir) if tensorboard_dir is not None else None

    def log(self, step: int, metrics: dict[str, float]) -> None:
        """Record ``metrics`` at env step ``step``."""
        self.latest.update(metrics)
        if self._writer is not None:
            for key, value in metrics.items():
                self._writer.add_scalar(key, value, step)

    def close(self) -> None:
        """Flush and close TensorBoard files."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
