"""Interval tables: exact text for Markdown and CSV, missing cells, bad arguments."""

from __future__ import annotations

import pytest

from robustrl.stats import Interval, format_interval, interval_table

RESULTS = {
    "PPO": {"IQM": Interval(0.81234, 0.7, 0.9), "Mean": Interval(0.5, 0.25, 0.75)},
    "SA-PPO": {"IQM": Interval(1.0, 0.95, 1.1)},
}


def test_format_interval() -> None:
    assert format_interval(Interval(0.5, 0.25, 0.75)) == "0.500 [0.250, 0.750]"
    assert format_interval(Interval(-1.0, -2.5, 3.0), digits=0) == "-1 [-2, 3]"
    with pytest.raises(ValueError, match="digits"):
        format_interval(Interval(0, 0, 0), digits=-1)


def test_markdown() -> None:
    assert interval_table(RESULTS, digits=2) == (
        "| algorithm | IQM | Mean |\n"
        "|---|---|---|\n"
        "| PPO | 0.81 [0.70, 0.90] | 0.50 [0.25, 0.75] |\n"
        "| SA-PPO | 1.00 [0.95, 1.10] |  |"
    )


def test_csv() -> None:
    assert interval_table(RESULTS, fmt="csv", row_label="method") == (
        "method,IQM,IQM_low,IQM_high,Mean,Mean_low,Mean_high\nPPO,0.81234,0.7,0.9,0.5,0.25,0.75\nSA-PPO,1.0,0.95,1.1,,,"
    )


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="fmt"):
        interval_table(RESULTS, fmt="html")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one row"):
        interval_table({})
