"""Metric logging for training runs: an in-memory history, optional TensorBoard (imported lazily).

Keys are namespaced: ``train/…`` for learner statistics, ``eval/…`` for periodic evaluation,
``time/…`` for throughput.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
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
        self._latest: dict[str, Any] = {}
        self._writer = open_tensorboard(tensorboard_dir) if tensorboard_dir is not None else None

    @property
    def latest(self) -> dict[str, float]:
        """The latest value of every metric, as floats."""
        return {key: float(value) for key, value in self._latest.items()}

    def log(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Record ``metrics`` (floats, or scalar tensors) at env step ``step``.

        Tensors stay on their device until read, so logging never synchronises a GPU unless TensorBoard is on.
        """
        self._latest.update(metrics)
        if self._writer is not None:
            for key, value in metrics.items():
                self._writer.add_scalar(key, float(value), step)

    def close(self) -> None:
        """Flush and close TensorBoard files."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
