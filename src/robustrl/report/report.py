"""``report``: result files in, one self-contained HTML page (plus PNG/SVG figures) out.

The page answers "how robust is this policy?" at a glance: headline numbers (clean return with CI,
the strongest attack's return at each budget, certified bounds), figures, tables of the numbers, and
the configs, versions and seeds behind them. Nothing is written until everything has been loaded and
rendered; files are then staged in a temporary folder and renamed into place, ``index.html`` last.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from robustrl.common.io import check_output_path
from robustrl.common.limits import check_count, check_fits
from robustrl.common.seeding import check_seed, derive_seed
from robustrl.report.figures import FigureFiles
from robustrl.report.formatting import Eval, FigureSink
from robustrl.report.html import Section, esc, external_references, page_html
from robustrl.report.loading import Loaded, Reportable, load_results, of_kind, unique_result_files
from robustrl.report.scores import Normalize, aggregate_section, parse_score_bounds, pool_runs, score_table
from robustrl.report.sections import (
    attacks_section,
    certificates_section,
    headline_section,
    numbers_section,
    provenance_section,
    shifts_section,
)
from robustrl.report.uncertainty import uncertainty_section
from robustrl.results import Certificate, DynamicsResult, EvaluationResult
from robustrl.results.uncertainty import UncertaintyResult

logger = logging.getLogger(__name__)

__all__ = ["MAX_DPI", "ReportConfig", "ReportResult", "check_report_options", "report", "run_report"]

FIGURES_DIR = "figures"
"""Sub-folder of the output folder holding the PNG and SVG files."""
MAX_DPI = 1200
"""The largest PNG resolution (print quality is 300–600 dpi)."""
_FIGURE_BYTES_PER_DOT2 = 7.0 * 4.8 * 4 * 3
"""Bytes per dpi² of rendering the largest usual figure (7 × 4.8 in, RGBA, about three copies in flight)."""
_REP_BYTES = 64
"""Memory one bootstrap resample of the aggregate costs (per metric and condition, with the sorted copy)."""


@dataclass(frozen=True)
class ReportConfig:
    """Build a self-contained HTML robustness report from evaluation and certificate JSON files."""

    results: tuple[Path, ...]
    """Result JSON files (kinds: evaluation, dynamics, certificate, uncertainty); evaluations of one env id are runs."""
    out: Path = Path("report")
    """Output folder: index.html and figures/ (PNG + SVG) are written there."""
    title: str = "Robustness report"
    """Page title."""
    seed: int = 0
    """Seed of the bootstrap behind aggregate intervals and profiles."""
    normalize: Normalize = "clean"
    """Aggregate scores per task: clean (÷ mean clean return), minmax (needs --score-bounds) or none."""
    score_bounds: tuple[str, ...] = ()
    """Per-task score range for minmax normalisation, ENV_ID=MIN:MAX (e.g. Pendulum-v1=-1600:0)."""
    confidence: float = 0.95
    """Confidence level of aggregate intervals."""
    reps: int = 2000
    """Bootstrap resamples for aggregate intervals."""
    dpi: int = 110
    """Resolution of the PNG figures."""


@dataclass(frozen=True)
class ReportResult:
    """What :func:`report` wrote."""

    index: Path
    """The HTML page (self-contained: figures embedded)."""
    figures: tuple[FigureFiles, ...]
    """Every figure as PNG and SVG files, in page order."""
    sections: tuple[str, ...]
    """Ids of the page's sections, in order (``summary``, ``attacks``, ...)."""

    def __str__(self) -> str:
        return f"report written to {self.index} ({len(self.figures)} figures; sections: {', '.join(self.sections)})"


def _check_number(name: str, value: float, lo: float, hi: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo < value < hi:
        raise ValueError(f"{name} must be in ({lo}, {hi}), got {value!r}")


def check_report_options(*, seed: int, confidence: float, reps: int, dpi: int) -> None:
    """Check the report's numeric options and size them against memory before anything is loaded or drawn.

    Raises:
        ValueError: naming the option (``--seed``, ``--confidence``, ``--reps``, ``--dpi``) and the limit.
    """
    check_seed(seed, "--seed")
    _check_number("--confidence", confidence, 0.0, 1.0)
    n = check_count(reps, "--reps")
    check_fits(n * _REP_BYTES, f"--reps {n}", hint="2000 resamples are plenty for a 95% interval")
    d = check_count(dpi, "--dpi", maximum=MAX_DPI)
    check_fits(d * d * _FIGURE_BYTES_PER_DOT2, f"--dpi {d}", hint="use a lower resolution")


def build_page(
    records: Sequence[Loaded[Reportable]],
    *,
    title: str = "Robustness report",
    seed: int = 0,
    normalize: Normalize = "clean",
    score_bounds: Mapping[str, tuple[float, float]] | None = None,
    confidence: float = 0.95,
    reps: int = 2000,
    dpi: int = 110,
    notes: Sequence[str] = (),
) -> tuple[str, FigureSink, tuple[str, ...]]:
    """Compute and render the page of loaded records in memory: ``(html, rendered figures, section ids)``.

    Arguments as in :func:`report`, with loaded results (see :func:`~robustrl.report.loading.load_result`)
    instead of paths; ``notes`` are shown at the top of the page (e.g. which repeated files were dropped).
    """
    check_report_options(seed=seed, confidence=confidence, reps=reps, dpi=dpi)
    if not records:
        raise ValueError("no results to report")
    evals = of_kind(records, EvaluationResult)
    certs = of_kind(records, Certificate)
    dynamics = of_kind(records, DynamicsResult)
    uncertain = of_kind(records, UncertaintyResult)
    by_task: dict[str, list[Eval]] = {}
    for ev in evals:
        by_task.setdefault(ev.result.env_id, []).append(ev)
    # a task with several runs is shown once, pooled over its runs
    shown = [
        runs[0] if len(runs) == 1 else pool_runs(runs, confidence=confidence, reps=reps, seed=derive_seed(seed, 7, k))
        for k, runs in enumerate(by_task.values())
    ]
    pooled_runs = [ev for runs in by_task.values() if len(runs) > 1 for ev in runs]
    sink = FigureSink(dpi=dpi)
    extra: list[str] = [f'<p class="note">{esc(note)}</p>' for note in notes]
    sections: list[Section | None] = []
    table = score_table(evals, normalize=normalize, score_bounds=score_bounds) if evals else None
    agg = None
    if table is not None:
        agg, headline = aggregate_section(table, sink, confidence=confidence, reps=reps, seed=seed)
        extra.append(headline)
    sections.append(headline_section(shown, certs, dynamics, extra))
    sections.append(attacks_section(shown, sink))
    sections.append(certificates_section(certs, evals, sink))
    sections.append(shifts_section(dynamics, sink))
    sections.append(uncertainty_section(uncertain, sink))
    sections.append(agg)
    sections.append(numbers_section(shown, pooled_runs))
    sections.append(provenance_section(records))
    kept = [s for s in sections if s is not None]
    from robustrl import __version__

    counts = ", ".join(
        f"{n} {word}{'s' if n != 1 else ''}"
        for n, word in ((len(evals), "evaluation"), (len(dynamics), "dynamics grid"), (len(certs), "certificate"),
                        (len(uncertain), "uncertainty set"))
        if n
    )
    subtitle = (
        f"{counts} · "
        f"tasks: {', '.join(dict.fromkeys(r.result.env_id for r in records))} · "
        f"generated {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} by robustrl {__version__}"
    )
    html = page_html(title, subtitle, kept, footer=f"robustrl {__version__} · report seed {seed}")
    bad = external_references(html)
    if bad:  # pragma: no cover - guards the invariant; tests check it directly
        raise RuntimeError(f"report would reference external resources: {bad[:5]}")
    return html, sink, tuple(s.id for s in kept)


def report(
    results: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    title: str = "Robustness report",
    seed: int = 0,
    normalize: Normalize = "clean",
    score_bounds: Mapping[str, tuple[float, float]] | None = None,
    confidence: float = 0.95,
    reps: int = 2000,
    dpi: int = 110,
) -> ReportResult:
    """Write a self-contained HTML robustness report of evaluation and certificate files.

    Args:
        results: JSON files written by ``robustrl.evaluate_policy(...).save`` (``"kind": "evaluation"``),
            ``robustrl.evaluate.evaluate_dynamics(...).save`` (``"kind": "dynamics"``) or
            ``robustrl.certify_policy(...).save`` (``"kind": "certificate"``). Several evaluations of one
            env id are runs of that task; distinct env ids are tasks.
        out_dir: output folder; ``index.html`` and ``figures/<name>.png|svg`` are (over)written there.
        title: page title.
        seed: seed of the bootstrap behind the aggregate intervals and profiles (same seed, same page).
        normalize: how aggregate scores are normalised per task (see :mod:`robustrl.report.scores`).
        score_bounds: ``{env_id: (min, max)}`` for ``normalize="minmax"``.
        confidence: level of the aggregate intervals.
        reps: bootstrap resamples.
        dpi: PNG resolution.

    Returns:
        :class:`ReportResult` with the page and figure paths.

    A file given twice, or two files with the same content, count once (the page says so).

    Raises:
        FileNotFoundError: a result file is missing (named).
        ValueError: a result file is a directory, not JSON, of an unknown kind or malformed (named), or a bad
            option (``out_dir`` not a folder that can be written, a seed, confidence, reps or dpi out of
            range, or a request too large for memory). Nothing is written then.

    """
    check_report_options(seed=seed, confidence=confidence, reps=reps, dpi=dpi)
    out = check_output_path(out_dir, what="--out", kind="dir", allow_missing_parents=True)
    inputs, notes = unique_result_files(results)
    html, sink, section_ids = build_page(
        load_results(inputs),
        title=title,
        seed=seed,
        normalize=normalize,
        score_bounds=score_bounds,
        confidence=confidence,
        reps=reps,
        dpi=dpi,
        notes=notes,
    )
    out.mkdir(parents=True, exist_ok=True)
    figdir = out / FIGURES_DIR
    figdir.mkdir(exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".report-", dir=out))
    try:
        staged: list[tuple[Path, Path]] = []
        files = []
        for it in sink.items:
            ff = FigureFiles(figdir / f"{it.stem}.png", figdir / f"{it.stem}.svg")
            (stage / ff.png.name).write_bytes(it.png)
            (stage / ff.svg.name).write_bytes(it.svg)
            staged += [(stage / ff.png.name, ff.png), (stage / ff.svg.name, ff.svg)]
            files.append(ff)
        (stage / "index.html").write_text(html, encoding="utf-8")
        for src, dst in [*staged, (stage / "index.html", out / "index.html")]:
            os.replace(src, dst)  # same file system: each rename is atomic; the page comes last
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    logger.info("report: wrote %s with %d figures", out / "index.html", len(files))
    return ReportResult(out / "index.html", tuple(files), section_ids)


def run_report(cfg: ReportConfig) -> ReportResult:
    """CLI entry point: ``robustrl report RESULTS... --out DIR``."""
    return report(
        cfg.results,
        cfg.out,
        title=cfg.title,
        seed=cfg.seed,
        normalize=cfg.normalize,
        score_bounds=parse_score_bounds(cfg.score_bounds),
        confidence=cfg.confidence,
        reps=cfg.reps,
        dpi=cfg.dpi,
    )
