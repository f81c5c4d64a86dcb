"""The robustness report: figures over plain arrays, and one self-contained HTML page of result files.

* :func:`report` / ``robustrl report RESULTS... --out DIR``: evaluation and certificate JSON files in,
  ``index.html`` (figures embedded, CSS inline, no scripts, no external URLs) plus PNG/SVG figures out.
* :mod:`robustrl.report.figures`: one function per figure, each returning a matplotlib ``Figure``, and
  :func:`save_figure` (PNG + SVG, atomically).
* :func:`load_result`: read a result file with :func:`robustrl.results.load_result`, keeping its path
  (:class:`Loaded`); errors name the file and the field.
"""

from robustrl.report.figures import (
    Estimate,
    FigureFiles,
    Series,
    aggregate_intervals,
    certificate_vs_attack,
    dynamics_shift,
    make_series,
    performance_profiles,
    return_vs_budget,
    save_figure,
)
from robustrl.report.loading import KINDS, Loaded, ResultFileError, load_result, load_results
from robustrl.report.report import ReportConfig, ReportResult, check_report_options, report, run_report

__all__ = [
    "KINDS",
    "Estimate",
    "FigureFiles",
    "Loaded",
    "ReportConfig",
    "ReportResult",
    "ResultFileError",
    "Series",
    "aggregate_intervals",
    "certificate_vs_attack",
    "check_report_options",
    "dynamics_shift",
    "load_result",
    "load_results",
    "make_series",
    "performance_profiles",
    "report",
    "return_vs_budget",
    "run_report",
    "save_figure",
]
