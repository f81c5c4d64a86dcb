"""Plain-text tables of intervals: algorithms × metrics, as Markdown or CSV (no plotting).

Example:
    >>> from robustrl.stats import Interval
    >>> print(interval_table({"PPO": {"IQM": Interval(0.81234, 0.7, 0.9)}, "SA-PPO": {"IQM": Interval(1, 0.95, 1.1)}}))
    | algorithm | IQM |
    |---|---|
    | PPO | 0.812 [0.700, 0.900] |
    | SA-PPO | 1.000 [0.950, 1.100] |
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from typing import Literal

from robustrl.stats.bootstrap import Interval

__all__ = ["format_interval", "interval_table"]


def format_interval(iv: Interval, digits: int = 3) -> str:
    """``"point [low, high]"`` with ``digits`` decimals.

    Example:
        >>> format_interval(Interval(0.5, 0.25, 0.75), digits=2)
        '0.50 [0.25, 0.75]'
    """
    if digits < 0:
        raise ValueError(f"digits must be >= 0, got {digits}")
    return f"{iv.point:.{digits}f} [{iv.low:.{digits}f}, {iv.high:.{digits}f}]"


def interval_table(
    results: Mapping[str, Mapping[str, Interval]],
    *,
    digits: int = 3,
    fmt: Literal["markdown", "csv"] = "markdown",
    row_label: str = "algorithm",
) -> str:
    """A table with one row per outer key (algorithm) and one column per metric.

    Args:
        results: ``{algorithm: {metric: Interval}}``, e.g. one :func:`~robustrl.stats.aggregate_all`
            result per algorithm. Metrics missing for an algorithm are left blank.
        digits: decimals shown (Markdown only; CSV keeps full precision).
        fmt: ``"markdown"`` (cells ``point [low, high]``) or ``"csv"`` (columns ``metric``,
            ``metric_low``, ``metric_high`` per metric).
        row_label: header of the first column.

    Returns:
        The table as text (CSV lines end in a newline character; no trailing empty line).
    """
    if fmt not in ("markdown", "csv"):
        raise ValueError(f"fmt must be 'markdown' or 'csv', got {fmt!r}")
    if not results:
        raise ValueError("results must hold at least one row")
    columns: list[str] = []
    for row in results.values():
        columns += [m for m in row if m not in columns]
    if fmt == "markdown":
        lines = [f"| {row_label} | " + " | ".join(columns) + " |", "|" + "---|" * (len(columns) + 1)]
        for name, row in results.items():
            cells = [format_interval(row[m], digits) if m in row else "" for m in columns]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        return "\n".join(lines)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    header: list[object] = [row_label]
    header += [f"{m}{suffix}" for m in columns for suffix in ("", "_low", "_high")]
    writer.writerow(header)
    for name, row in results.items():
        record: list[object] = [name]
        for m in columns:
            record += list(row[m]) if m in row else ["", "", ""]
        writer.writerow(record)
    return buf.getvalue().rstrip("\n")
