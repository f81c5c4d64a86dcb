"""The study page: ``robustrl report DIR`` on a study folder writes ``DIR/report/index.html``.

Built from the store alone, with the report's own figure and HTML helpers (:mod:`robustrl.report`):

* **summary**: cells done / failed, methods, tasks, seeds, and the headline: each group's IQM under the
  headline condition (the strongest attack at the largest budget, else the largest certified budget, else
  the clean return);
* **leaderboard**: IQM, median and mean with stratified-bootstrap CIs per group under every condition,
  and an interval plot of the headline condition;
* **curves**: per threat model, the strongest attack's return vs budget, one curve per group (IQM over
  seeds and tasks with its CI band); the certified return vs budget; return vs a 1-D dynamics parameter;
* **profiles**: performance profiles (fraction of runs × tasks above each score) under the headline
  condition, with bootstrap bands;
* **improvement**: probability of improvement between groups;
* **cells**: every cell with its status, time, labels and a link to its result in ``artefacts/``;
* **provenance**: the spec and versions.

The page is self-contained (CSS inline, figures as ``data:`` URIs, no scripts); its only links are relative
ones to the cells' result files inside the study folder.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from robustrl.experiments.analysis import Aggregate, Condition, StudySummary, label_text, score_matrices, summarize
from robustrl.experiments.stages import STAGES
from robustrl.experiments.store import STORE_FILE, CellRecord, StoredRow, StudyStore
from robustrl.report import ReportConfig, ReportResult, run_report
from robustrl.report.figures import (
    Estimate,
    FigureFiles,
    aggregate_intervals,
    make_series,
    performance_profiles,
    return_vs_budget,
)
from robustrl.report.formatting import FigureSink
from robustrl.report.html import (
    Card,
    Section,
    cards_html,
    esc,
    external_references,
    json_details,
    page_html,
    table_html,
)
from robustrl.stats import format_interval, performance_profile

__all__ = ["StudyReportConfig", "is_study", "report_or_study", "study_report"]

logger = logging.getLogger(__name__)

FIGURES_DIR = "figures"
"""Sub-folder of the output folder holding the PNG and SVG files."""
_DYN_POINT = re.compile(r"^(?P<prefix>.*?)dynamics\[(?P<name>[^=,\]]+)=(?P<value>[^,\]]+)\]$")


@dataclass(frozen=True)
class StudyReportConfig:
    """Write the HTML page of a study folder: leaderboard with CIs, profiles, robustness curves, cells."""

    study: Path
    """The study folder (holding study.duckdb)."""
    out: Path | None = None
    """Output folder for index.html and figures/ (default: STUDY/report)."""
    title: str | None = None
    """Page title (default: the study's name)."""
    group_by: tuple[str, ...] = ("method",)
    """Labels forming a leaderboard row (method, env, algo or a grid axis)."""
    seed: int = 0
    """Seed of the bootstrap behind intervals and profiles."""
    confidence: float = 0.95
    """Level of the intervals."""
    reps: int = 2000
    """Bootstrap resamples."""
    dpi: int = 110
    """Resolution of the PNG figures."""


def is_study(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a study folder (it holds ``study.duckdb``)."""
    return (Path(path) / STORE_FILE).is_file()


def report_or_study(cfg: ReportConfig) -> ReportResult:
    """``robustrl report``: the study page when given one study folder, else the single-run report.

    With one study folder and the default ``--out`` (``report``), the page goes to ``STUDY/report``.
    """
    if len(cfg.results) == 1 and is_study(cfg.results[0]):
        folder = Path(cfg.results[0])
        out = None if Path(cfg.out) == Path("report") else Path(cfg.out)
        title = None if cfg.title == "Robustness report" else cfg.title
        return study_report(StudyReportConfig(folder, out, title, seed=cfg.seed, confidence=cfg.confidence,
                                              reps=cfg.reps, dpi=cfg.dpi))  # fmt: skip
    return run_report(cfg)


# --------------------------------------------------------------------------------------------------
# sections
# --------------------------------------------------------------------------------------------------
def _group(g: Sequence[str]) -> str:
    return " / ".join(g)


def _estimate(a: Aggregate) -> Estimate:
    return Estimate(a.iqm.point, a.iqm.low, a.iqm.high)


def headline_condition(summary: StudySummary) -> Condition | None:
    """The condition the page leads with (None: no results).

    The strongest attack at the largest budget, else the largest certified budget, else a dynamics grid's
    worst case, else the clean return.
    """
    conds = list(dict.fromkeys(a.condition for a in summary.aggregates))

    def largest(pred: Callable[[Condition], bool]) -> Condition | None:
        hits = [c for c in conds if pred(c)]
        return max(hits, key=lambda c: c.budget) if hits else None

    picks: tuple[Callable[[Condition], bool], ...] = (
        lambda c: c.stage == "evaluate" and c.threat.startswith("strongest:") and c.budget > 0,
        lambda c: c.stage == "certify" and c.metric == "certified_return" and c.budget > 0,
        lambda c: c.stage == "dynamics" and c.threat.endswith("dynamics:worst"),
        lambda c: c.threat == "clean" and c.metric == "return_mean",
    )
    for pick in picks:
        found = largest(pick)
        if found is not None:
            return found
    return conds[0] if conds else None


def _first_line(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    return lines[0] if lines else ""


def _summary_section(summary: StudySummary, records: Sequence[CellRecord], head: Condition | None) -> Section:
    counts = summary.cells
    total = sum(counts.values())
    done, failed = counts.get("done", 0), counts.get("failed", 0) + counts.get("skipped", 0)
    envs = sorted({str(r.labels.get("env")) for r in records})
    seeds = {r.labels.get("seed") for r in records}
    cards = [
        Card("Cells done", f"{done} / {total}", f"{failed} failed or skipped" if failed else "all recorded",
             "good" if done == total else ("bad" if failed else "warn")),
        Card("Groups", str(len({a.group for a in summary.aggregates})), ", ".join(summary.group_by)),
        Card("Tasks", str(len(envs)), ", ".join(envs)),
        Card("Seeds", str(len(seeds)), "runs per task"),
    ]  # fmt: skip
    parts = [cards_html(cards)]
    if head is not None:
        best = sorted((a for a in summary.aggregates if a.condition == head), key=lambda a: -a.iqm.point)
        heads = [Card(_group(a.group), f"{a.iqm.point:.1f}", f"IQM [{a.iqm.low:.1f}, {a.iqm.high:.1f}] · "
                      f"{a.runs} runs × {len(a.tasks)} tasks", "good" if i == 0 else "neutral")
                 for i, a in enumerate(best)]  # fmt: skip
        parts.append(f"<h3>{esc(head.label())}</h3>" + cards_html(heads))
    if failed:
        bad = [r for r in records if r.status in ("failed", "skipped")]
        items = "".join(f"<li><code>{esc(r.cell_hash)}</code> {esc(r.stage)} {esc(r.status)}: "
                        f"{esc(_first_line(r.error))}</li>" for r in bad[:20])  # fmt: skip
        parts.append(f'<div class="warning">{len(bad)} cells did not finish:<ul>{items}</ul></div>')
    lead = "What the study ran and, up front, each group under the headline condition."
    return Section("summary", "Summary", "".join(parts), lead)


def _leaderboard_section(summary: StudySummary, head: Condition | None, sink: FigureSink) -> Section | None:
    if not summary.aggregates:
        return None
    header = [*summary.group_by, "condition", "runs × tasks", "IQM", "median", "mean"]
    rows = [[*a.group, a.condition.label(), f"{a.runs} × {len(a.tasks)}",
             *(format_interval(getattr(a, s), 2) for s in ("iqm", "median", "mean"))]
            for a in summary.aggregates]  # fmt: skip
    headline_rows = [r for r, a in zip(rows, summary.aggregates) if a.condition == head]
    parts = []
    if head is not None and headline_rows:
        parts.append(table_html(header, headline_rows, numeric=[False] * (len(header) - 3) + [True] * 3,
                                table_id="leaderboard-table"))  # fmt: skip
        est = {
            stat: {_group(a.group): Estimate(*getattr(a, stat)) for a in summary.aggregates if a.condition == head}
            for stat in ("iqm", "median", "mean")
        }
        fig = aggregate_intervals({k.upper() if k == "iqm" else k: v for k, v in est.items()}, xlabel="return",
                                  title=head.label())  # fmt: skip
        caption = f"Point estimate (tick) and {summary.confidence:.0%} stratified-bootstrap CI (bar) per group."
        parts.append(sink.add(fig, "leaderboard", alt="aggregate intervals per group", caption=caption))
    grid_header, grid_rows, shared = summary.grid("iqm", 2)
    if len(grid_header) > 2:  # more than one condition: each group across all of them, one column each
        keys = len(grid_header) - 1
        title = "IQM of every group under every condition" + (f" ({', '.join(shared)})" if shared else "")
        grid = table_html(grid_header, grid_rows, numeric=[False] + [True] * keys, table_id="conditions-table")
        parts.append(f'<h3>{esc(title)}</h3><div class="scroll">{grid}</div>')  # wide: scrolls inside its card
    full = table_html(header, rows, numeric=[False] * (len(header) - 3) + [True] * 3)
    parts.append(f"<details><summary>Every condition ({len(rows)} rows)</summary>{full}</details>")
    lead = (f"IQM, median and mean over seeds (runs) and envs (tasks), {summary.confidence:.0%} stratified-bootstrap "
            f"CIs ({summary.reps} resamples).")  # fmt: skip
    return Section("leaderboard", "Leaderboard", "".join(parts), lead)


def _dyn_point(a: Aggregate) -> tuple[str, str, float] | None:
    """``(parameter, threat prefix, value)`` of a one-parameter dynamics condition."""
    m = _DYN_POINT.match(a.condition.threat)
    return None if m is None else (m["name"], m["prefix"], float(m["value"]))


def _curve_figure(
    aggs: Sequence[Aggregate], sink: FigureSink, stem: str, *, xlabel: str, title: str, caption: str,
    x_of: Callable[[Aggregate], float] | None = None,
) -> str:  # fmt: skip
    """One line per group: IQM with its CI band against the budget (or ``x_of``)."""
    curves = {}
    for g in dict.fromkeys(a.group for a in aggs):
        pts = sorted(((x_of(a) if x_of else a.condition.budget), a) for a in aggs if a.group == g)
        xs = [p[0] for p in pts]
        iqm = [p[1].iqm for p in pts]
        curves[_group(g)] = make_series(xs, [i.point for i in iqm], [i.low for i in iqm], [i.high for i in iqm],
                                        name=_group(g))  # fmt: skip
    fig = return_vs_budget(curves, xlabel=xlabel, ylabel="return (IQM over runs × tasks)", title=title)
    return sink.add(fig, stem, alt=title, caption=caption)


def _tag(extra: tuple[tuple[str, str], ...]) -> str:
    return "".join(f" {k}={v}" for k, v in extra)


def _curves_section(summary: StudySummary, sink: FigureSink) -> Section | None:
    aggs = summary.aggregates
    parts = []
    band = f"lines: IQM over seeds × envs, bands: {summary.confidence:.0%} stratified-bootstrap CI."
    evals = [a for a in aggs if a.condition.stage == "evaluate" and a.condition.metric == "return_mean"]
    models = dict.fromkeys(a.condition.threat for a in evals if a.condition.threat.startswith("strongest:"))
    for model in models:
        unit = model.partition(":")[2]
        for extra in dict.fromkeys(a.condition.extra for a in evals if a.condition.threat == model):
            sel = [a for a in evals if a.condition.extra == extra and a.condition.threat in (model, "clean")]
            caption = f"Return under the strongest attack of {unit} at each budget (0: clean); {band}"
            parts.append(_curve_figure(sel, sink, f"curve-{model}{_tag(extra)}", xlabel=f"budget ({unit})",
                                       title=f"strongest attack, {unit}{_tag(extra)}", caption=caption))  # fmt: skip
    cert = [a for a in aggs if a.condition.stage == "certify" and a.condition.metric == "certified_return"]
    for extra in dict.fromkeys(a.condition.extra for a in cert):
        sel = [a for a in cert if a.condition.extra == extra]
        caption = f"Certified lower bound on the expected return under any ℓ2 attack of total budget B; {band}"
        parts.append(_curve_figure(sel, sink, f"certified{_tag(extra)}", xlabel="total ℓ2 budget B",
                                   title=f"certified return{_tag(extra)}", caption=caption))  # fmt: skip
    dyn = [(a, p) for a in aggs if a.condition.stage == "dynamics" and (p := _dyn_point(a)) is not None]
    value = {id(a): p[2] for a, p in dyn}
    for name, prefix, extra in dict.fromkeys((p[0], p[1], a.condition.extra) for a, p in dyn):
        sel = [a for a, p in dyn if p[:2] == (name, prefix) and a.condition.extra == extra]
        caption = f"Return over a grid of {name} (one value per episode); {band}"
        parts.append(_curve_figure(sel, sink, f"dynamics-{name}{_tag(extra)}", xlabel=name,
                                   title=f"{prefix}return vs {name}{_tag(extra)}", caption=caption,
                                   x_of=lambda a: value[id(a)]))  # fmt: skip
    if not parts:
        return None
    return Section("curves", "Robustness curves", "".join(parts), "How each group's return falls as the budget grows.")


def _profiles_section(
    rows: Sequence[StoredRow], summary: StudySummary, head: Condition | None, sink: FigureSink, seed: int
) -> Section | None:
    if head is None:
        return None
    found = score_matrices(rows, group_by=summary.group_by, metrics=(head.metric,), stages=(head.stage,))
    mats = [m for m in found if m.condition == head]
    if not mats:
        return None
    lo = min(float(m.scores.min()) for m in mats)
    hi = max(float(m.scores.max()) for m in mats)
    taus = np.linspace(lo - 0.05 * (hi - lo + 1), hi + 0.05 * (hi - lo + 1), 60)
    profiles = {}
    for m in mats:
        prof = performance_profile(m.scores, taus, reps=summary.reps, confidence=summary.confidence, seed=seed)
        profiles[_group(m.group)] = make_series(prof.taus, prof.point, prof.low, prof.high, name=_group(m.group))
    fig = performance_profiles(profiles, xlabel=f"return τ ({head.label()})", title="performance profiles")
    caption = (f"Fraction of runs × tasks with a return above τ, {summary.confidence:.0%} stratified-bootstrap "
               "bands; a curve above another is better everywhere.")  # fmt: skip
    return Section("profiles", "Performance profiles", sink.add(fig, "profiles", alt="performance profiles",
                                                                caption=caption), head.label())  # fmt: skip


def _improvement_section(summary: StudySummary, head: Condition | None) -> Section | None:
    if not summary.improvements:
        return None
    header = ["condition", "X", "Y", "P(X > Y)"]
    rows = [[i.condition.label(), _group(i.x), _group(i.y), format_interval(i.probability, 2)]
            for i in summary.improvements]  # fmt: skip
    first = [r for r, i in zip(rows, summary.improvements) if i.condition == head] or rows[:10]
    body = table_html(header, first, numeric=[False, False, False, True])
    body += f"<details><summary>Every condition ({len(rows)} rows)</summary>{table_html(header, rows)}</details>"
    lead = "Probability that a run of X beats a run of Y on a task (ties ½), averaged over tasks; > 0.5: X better."
    return Section("improvement", "Probability of improvement", body, lead)


def _link(study: Path, out: Path, record: CellRecord) -> str:
    target = study / record.artefact
    if STAGES[record.stage].trains:
        target = target / "result.json"
    return Path(os.path.relpath(target, out)).as_posix()


def _cells_section(records: Sequence[CellRecord], study: Path, out: Path) -> Section:
    keys = list(dict.fromkeys(k for r in records for k in r.labels))
    head = ["cell", "stage", *keys, "status", "attempts", "seconds", "result"]
    rows = []
    for r in records:
        labels = "".join(f"<td>{esc(label_text(r.labels.get(k, '')))}</td>" for k in keys)
        exists = (study / r.artefact).exists()
        link = (f'<a href="{esc(_link(study, out, r))}">{esc(r.result_kind or r.stage)}</a>'
                if r.status == "done" and exists else "—")  # fmt: skip
        secs = "—" if r.seconds is None else f"{r.seconds:.1f}"
        tone = {"done": "good", "failed": "bad", "skipped": "warn"}.get(r.status, "")
        rows.append(f'<tr id="cell-{esc(r.cell_hash)}"><td><code>{esc(r.cell_hash)}</code></td><td>{esc(r.stage)}</td>'
                    f'{labels}<td class="{tone}">{esc(r.status)}</td><td class="num">{r.attempts}</td>'
                    f'<td class="num">{secs}</td><td>{link}</td></tr>')  # fmt: skip
    th = "".join(f"<th>{esc(h)}</th>" for h in head)
    table = f'<table id="cells-table"><thead><tr>{th}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
    return Section("cells", "Cells", table, "Every cell of the spec, its labels, and a link to its result file.")


def _provenance_section(meta: dict[str, str], records: Sequence[CellRecord]) -> Section:
    import duckdb

    from robustrl import __version__

    hosts = ", ".join(sorted({r.host for r in records if r.host}))
    rows = [["study", meta.get("study", "")], ["spec", meta.get("spec_path", "")],
            ["spec sha256", meta.get("spec_sha256", "")[:16]], ["robustrl", __version__],
            ["duckdb", duckdb.__version__], ["hosts", hosts]]  # fmt: skip
    body = table_html(["what", "value"], rows, table_id="provenance-table")
    body += f"<details><summary>The spec</summary><pre>{esc(meta.get('spec', ''))}</pre></details>"
    body += json_details("Resolved configs of the cells", {r.cell_hash: r.config for r in records})
    return Section("provenance", "Spec and versions", body, "What produced these numbers.")


def _local_link(ref: str) -> bool:
    """A relative link into the study folder (no scheme, not absolute) — never a tag or an event handler.

    ``external_references`` reports tags as ``<script`` and handlers as ``onload=``: those are never links.

    Example:
        >>> [_local_link(r) for r in ("cells/a.json", "https://x.org", "<script", "onload=", "/etc/passwd")]
        [True, False, False, False, False]
    """
    if not ref or ref.startswith("<") or ref.endswith("=") or "://" in ref:
        return False
    return not ref.startswith(("/", "\\", "//")) and ":" not in ref.split("/")[0]


# --------------------------------------------------------------------------------------------------
# the page
# --------------------------------------------------------------------------------------------------
def study_report(cfg: StudyReportConfig) -> ReportResult:
    """Write the study page ``index.html`` and its figures (PNG + SVG), atomically, the page last.

    Raises:
        ValueError: no study store in ``cfg.study`` (or a sweep holds it), bad options, or no cells.
    """
    study = Path(cfg.study)
    if not 0 < cfg.confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {cfg.confidence}")
    if cfg.reps < 1:
        raise ValueError(f"reps must be ≥ 1, got {cfg.reps}")
    out = Path(cfg.out) if cfg.out is not None else study / "report"
    if out.exists() and not out.is_dir():
        raise ValueError(f"report output folder {str(out)!r} exists and is not a folder")
    with StudyStore(study / STORE_FILE, read_only=True) as store:
        rows, records, counts, meta = store.rows(), store.records(), store.counts(), store.meta()
    if not records:
        raise ValueError(f"study {str(study)!r} has no cells yet: run robustrl sweep SPEC --out {study}")
    summary = summarize(rows, study=meta.get("study", study.name), group_by=cfg.group_by, confidence=cfg.confidence,
                        reps=cfg.reps, seed=cfg.seed, cells=counts)  # fmt: skip
    head = headline_condition(summary)
    sink = FigureSink(dpi=cfg.dpi)
    sections = [
        _summary_section(summary, records, head),
        _leaderboard_section(summary, head, sink),
        _curves_section(summary, sink),
        _profiles_section(rows, summary, head, sink, cfg.seed),
        _improvement_section(summary, head),
        _cells_section(records, study.resolve(), out.resolve()),
        _provenance_section(meta, records),
    ]
    kept = [s for s in sections if s is not None]
    from robustrl import __version__

    title = cfg.title or f"Study {summary.study}"
    subtitle = (f"{len(records)} cells · {sum(counts.get(s, 0) for s in ('done',))} done · generated "
                f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} by robustrl {__version__}")  # fmt: skip
    html = page_html(title, subtitle, kept, footer=f"robustrl {__version__} · bootstrap seed {cfg.seed}")
    bad = [ref for ref in external_references(html) if not _local_link(ref)]
    if bad:  # pragma: no cover - guards the invariant; the tests check it
        raise RuntimeError(f"study page would load external resources: {bad[:5]}")
    files = _write(out, html, sink)
    logger.info("study report: wrote %s with %d figures", out / "index.html", len(files))
    return ReportResult(out / "index.html", tuple(files), tuple(s.id for s in kept))


def _write(out: Path, html: str, sink: FigureSink) -> list[FigureFiles]:
    """Stage the figures and the page in a temporary folder, then rename each into place, the page last."""
    out.mkdir(parents=True, exist_ok=True)
    figdir = out / FIGURES_DIR
    figdir.mkdir(exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".report-", dir=out))
    files = []
    try:
        moves = []
        for it in sink.items:
            ff = FigureFiles(figdir / f"{it.stem}.png", figdir / f"{it.stem}.svg")
            (stage / ff.png.name).write_bytes(it.png)
            (stage / ff.svg.name).write_bytes(it.svg)
            moves += [(stage / ff.png.name, ff.png), (stage / ff.svg.name, ff.svg)]
            files.append(ff)
        (stage / "index.html").write_text(html, encoding="utf-8")
        for src, dst in [*moves, (stage / "index.html", out / "index.html")]:
            os.replace(src, dst)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return files

