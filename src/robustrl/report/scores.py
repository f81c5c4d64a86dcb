"""Aggregate robustness over runs × tasks: normalised score matrices, IQM/median/mean, profiles.

Several evaluation files of one env id are *runs* of that *task*; distinct env ids are tasks
(Agarwal et al., "Deep RL at the Edge of the Statistical Precipice", NeurIPS 2021). Each condition
(clean, or the strongest attack at one budget) gives a ``[runs, tasks]`` matrix of normalised scores:

* ``clean`` (default): a run's mean return divided by the task's clean reference, the mean over runs
  of the clean mean return. 1 means "as good as the average clean run". Needs a positive clean return.
* ``minmax``: ``(R − min) / (max − min)`` with per-task ``min``/``max`` given by the user
  (``score_bounds``, e.g. ``{"Pendulum-v1": (-1600, 0)}``): works for negative returns.
* ``none``: raw returns (only meaningful for a single task).

Intervals and profiles come from :mod:`robustrl.stats` (stratified bootstrap over runs within tasks,
explicit seeds).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from robustrl.common.seeding import derive_seed
from robustrl.report.figures import Estimate, aggregate_intervals, make_series, performance_profiles
from robustrl.report.html import Card, Section, cards_html, esc, table_html
from robustrl.report.loading import EvaluationRecord, ThreatCurve
from robustrl.report.sections import FigureSink, fmt, pick_budgets, relative_drop, tone, unit_symbol

logger = logging.getLogger(__name__)

Normalize = Literal["clean", "minmax", "none"]

__all__ = [
    "METRICS",
    "Normalize",
    "ScoreTable",
    "aggregate_section",
    "parse_score_bounds",
    "pool_runs",
    "score_table",
]

METRICS: dict[str, Literal["iqm", "median", "mean"]] = {"IQM": "iqm", "Median": "median", "Mean": "mean"}
"""Displayed name -> ``robustrl.stats.aggregate`` metric."""


@dataclass(frozen=True)
class ScoreTable:
    """Normalised scores per condition, each ``[runs, tasks]``."""

    tasks: tuple[str, ...]
    """Env ids, in first-seen order."""
    runs: int
    """Runs per task used (the smallest count when tasks differ)."""
    scores: Mapping[str, np.ndarray]
    """``condition -> float64 [runs, tasks]``; ``"clean"`` first, then strongest attack per budget."""
    normalization: str
    """How scores were normalised (one sentence, shown on the page)."""
    notes: tuple[str, ...] = ()
    """Warnings to show (e.g. runs dropped to balance tasks)."""


def parse_score_bounds(items: Sequence[str]) -> dict[str, tuple[float, float]]:
    """Parse ``ENV_ID=MIN:MAX`` strings into ``{env_id: (min, max)}``.

    Example:
        >>> parse_score_bounds(["Pendulum-v1=-1600:0"])
        {'Pendulum-v1': (-1600.0, 0.0)}

    """
    out: dict[str, tuple[float, float]] = {}
    for item in items:
        env, sep, rng = item.partition("=")
        lo_s, sep2, hi_s = rng.rpartition(":")
        try:
            lo, hi = float(lo_s), float(hi_s)
        except ValueError:
            lo = hi = math.nan
        if not sep or not sep2 or not env or not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
            raise ValueError(f"score bound {item!r} must read ENV_ID=MIN:MAX with MIN < MAX (e.g. Pendulum-v1=-1600:0)")
        out[env] = (lo, hi)
    return out


def score_table(
    evals: Sequence[EvaluationRecord],
    *,
    normalize: Normalize = "clean",
    score_bounds: Mapping[str, tuple[float, float]] | None = None,
    max_budgets: int = 3,
) -> ScoreTable | None:
    """Build the per-condition ``[runs, tasks]`` score matrices; None when fewer than two scores exist.

    Conditions: ``"clean"`` and, for each budget unit every evaluation has, the strongest attack at up to
    ``max_budgets`` non-zero budgets that every evaluation measured.

    Raises:
        ValueError: ``clean`` normalisation with a non-positive clean reference, or ``minmax`` without
            bounds for a task (the message names the task).

    """
    tasks = tuple(dict.fromkeys(ev.env_id for ev in evals))
    by_task = {t: [ev for ev in evals if ev.env_id == t] for t in tasks}
    runs = min(len(v) for v in by_task.values()) if tasks else 0
    if runs * len(tasks) < 2:
        return None
    notes = []
    if any(len(v) != runs for v in by_task.values()):
        counts = ", ".join(f"{t}: {len(v)}" for t, v in by_task.items())
        notes.append(f"Tasks have different numbers of runs ({counts}); the first {runs} of each are aggregated.")
    grid = [[by_task[t][r] for t in tasks] for r in range(runs)]  # [runs][tasks]

    raw: dict[str, np.ndarray] = {"clean": np.array([[ev.clean.point for ev in row] for row in grid])}
    units = [c.unit for c in evals[0].strongest if all(any(s.unit == c.unit for s in ev.strongest) for ev in evals)]
    for unit in units:
        curves = [[next(s for s in ev.strongest if s.unit == unit) for ev in row] for row in grid]
        ref = curves[0][0].budgets
        common = [b for b in ref if b > 0 and all(np.isclose(c.budgets, b).any() for row in curves for c in row)]
        sym = unit_symbol(unit)
        for j in pick_budgets(np.asarray(common), max_budgets):
            b = common[j]
            raw[f"{sym} = {b:g}"] = np.array(
                [[float(c.mean[np.flatnonzero(np.isclose(c.budgets, b))[0]]) for c in row] for row in curves]
            )

    if normalize == "none":
        return ScoreTable(tasks, runs, raw, "Raw mean returns (not normalised).", tuple(notes))
    if normalize == "clean":
        ref_clean = raw["clean"].mean(axis=0)  # [tasks]
        for t, v in zip(tasks, ref_clean):
            if not v > 0:
                raise ValueError(
                    f"cannot normalise task {t!r} by its clean return ({v:g} <= 0); use normalize='minmax' "
                    f"with score bounds (e.g. --normalize minmax --score-bounds {t}=MIN:MAX)"
                )
        scores = {k: v / ref_clean[None, :] for k, v in raw.items()}
        text = "Score = mean return ÷ the task's mean clean return over runs (1 = as good as clean)."
        return ScoreTable(tasks, runs, scores, text, tuple(notes))
    bounds = dict(score_bounds or {})
    missing = [t for t in tasks if t not in bounds]
    if missing:
        raise ValueError(f"normalize='minmax' needs score bounds for task(s) {missing} (ENV_ID=MIN:MAX)")
    lo = np.array([bounds[t][0] for t in tasks])
    hi = np.array([bounds[t][1] for t in tasks])
    scores = {k: (v - lo[None, :]) / (hi - lo)[None, :] for k, v in raw.items()}
    text = (
        "Score = (mean return − min) ÷ (max − min) with per-task bounds "
        + ", ".join(f"{t}: [{bounds[t][0]:g}, {bounds[t][1]:g}]" for t in tasks)
        + "."
    )
    return ScoreTable(tasks, runs, scores, text, tuple(notes))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def aggregate_section(
    table: ScoreTable,
    sink: FigureSink,
    *,
    confidence: float = 0.95,
    reps: int = 2000,
    seed: int = 0,
) -> tuple[Section, str]:
    """IQM/median/mean intervals and performance profiles of every condition.

    Returns:
        The section and the headline HTML (cards of the IQM per condition).

    """
    from robustrl import stats

    raw = table.normalization.startswith("Raw")

    def num(x: float) -> str:
        return fmt(x) if raw else f"{x:.3f}"

    conditions = list(table.scores)
    estimates: dict[str, dict[str, Estimate]] = {label: {} for label in METRICS}
    for ci, cond in enumerate(conditions):
        ivs = stats.aggregate_all(
            table.scores[cond], METRICS, reps=reps, confidence=confidence, seed=derive_seed(seed, ci)
        )
        for label in METRICS:
            estimates[label][cond] = Estimate(float(ivs[label].point), float(ivs[label].low), float(ivs[label].high))
    n = table.runs * len(table.tasks)
    what = f"{_plural(table.runs, 'run')} × {_plural(len(table.tasks), 'task')}"
    parts = [
        f'<p class="note">{esc(table.normalization)} {esc(what)}; {confidence:.0%} stratified-bootstrap CIs '
        f"({reps} resamples, seed {seed}).</p>"
    ]
    parts += [f'<p class="warning">{esc(n_)}</p>' for n_ in table.notes]
    fig = aggregate_intervals(estimates, title="Aggregate normalised score")
    parts.append(
        sink.add(
            fig,
            "aggregate-intervals",
            alt="aggregate metrics with confidence intervals",
            caption="Bars span the confidence interval, black ticks mark the point estimate.",
        )
    )
    if n >= 2:
        allv = np.concatenate([v.ravel() for v in table.scores.values()])
        hi = max(float(allv.max()) * 1.05, 1e-9)
        taus = np.linspace(min(0.0, float(allv.min())), hi, 81)
        profiles = {}
        for ci, cond in enumerate(conditions):
            prof = stats.performance_profile(
                table.scores[cond], taus, reps=reps, confidence=confidence, seed=derive_seed(seed, 99, ci)
            )
            profiles[cond] = make_series(prof.taus, prof.point, prof.low, prof.high, name=cond)
        fig = performance_profiles(profiles, title="Performance profiles")
        parts.append(
            sink.add(
                fig,
                "performance-profiles",
                alt="performance profiles",
                caption="Fraction of run × task scores above τ; bands: confidence intervals. A curve further right "
                "is better; the gap to the clean curve is what the attack costs.",
            )
        )
    rows = [
        [
            cond,
            *[
                f"{num(estimates[m][cond].point)} [{num(estimates[m][cond].low)}, {num(estimates[m][cond].high)}]"
                for m in METRICS
            ],
        ]
        for cond in conditions
    ]
    parts.append(table_html(["condition", *METRICS], rows, numeric=[False] + [True] * len(METRICS)))
    cards = []
    ref = estimates["IQM"].get("clean")
    for cond in conditions:
        e = estimates["IQM"][cond]
        t = "neutral" if cond == "clean" or ref is None else tone(relative_drop(ref.point, e.point))
        cards.append(Card(f"IQM {cond}", num(e.point), f"CI [{num(e.low)}, {num(e.high)}] · {what}", t))
    headline = f"<h3>Aggregate over {esc(what)}</h3>{cards_html(cards)}"
    section = Section(
        "aggregate",
        "Aggregate over runs and tasks",
        "".join(parts),
        "Interquartile mean, median and mean of normalised scores with bootstrap confidence intervals.",
    )
    return section, headline


def _find(curves: Sequence[ThreatCurve], name: str, unit: str) -> ThreatCurve | None:
    return next((c for c in curves if c.name == name and c.unit == unit), None)


def pool_runs(
    runs: Sequence[EvaluationRecord], *, confidence: float = 0.95, reps: int = 2000, seed: int | None = 0
) -> EvaluationRecord:
    """One record summarising several runs of one task: per budget, the mean over runs of each run's mean.

    Intervals are percentile-bootstrap CIs over runs (``robustrl.stats.bootstrap_ci`` of the run means):
    the uncertainty a reader cares about when comparing training seeds. A threat (or a strongest curve)
    enters only when every run measured it at the same budgets.

    Args:
        runs: evaluations of one env id (at least one).
        confidence: level of the intervals.
        reps: bootstrap resamples.
        seed: seed of the bootstrap (one derived seed per interval).

    Returns:
        An :class:`EvaluationRecord` with ``runs = len(runs)`` and ``path = Path("<n> runs")``.

    """
    from robustrl import stats

    if not runs:
        raise ValueError("pool_runs needs at least one run")
    env_ids = {r.env_id for r in runs}
    if len(env_ids) != 1:
        raise ValueError(f"pool_runs pools runs of one task, got {sorted(env_ids)}")
    counter = iter(range(1 << 30))

    def est(values: Sequence[float]) -> Estimate:
        iv = stats.bootstrap_ci(
            np.asarray(values, dtype=np.float64), "mean", reps=reps, confidence=confidence,
            seed=derive_seed(seed, next(counter)),
        )  # fmt: skip
        return Estimate(float(iv.point), float(iv.low), float(iv.high))

    def pool(members: Sequence[ThreatCurve], name: str) -> ThreatCurve:
        b = members[0].budgets
        per_budget = [est([float(c.mean[j]) for c in members]) for j in range(b.size)]
        which: tuple[str, ...] = ()
        if all(c.which for c in members):
            which = tuple(Counter(c.which[j] for c in members).most_common(1)[0][0] for j in range(b.size))
        return ThreatCurve(
            name, members[0].unit, b,
            np.array([e.point for e in per_budget]), np.array([e.low for e in per_budget]),
            np.array([e.high for e in per_budget]), np.sum([c.episodes for c in members], axis=0), which,
        )  # fmt: skip

    def matching(members: Sequence[ThreatCurve | None]) -> list[ThreatCurve] | None:
        found = [m for m in members if m is not None]
        if len(found) != len(members):
            return None
        b = found[0].budgets
        return found if all(m.budgets.shape == b.shape and np.allclose(m.budgets, b) for m in found) else None

    curves = []
    for c in runs[0].curves:
        members = matching([_find(r.curves, c.name, c.unit) for r in runs])
        if members is not None:
            curves.append(pool(members, c.name))
    strongest = []
    for c in runs[0].strongest:
        members = matching([_find(r.strongest, c.name, c.unit) for r in runs])
        if members is not None:
            strongest.append(pool(members, "strongest"))
    sigmas = {r.smoothing_sigma for r in runs}
    return EvaluationRecord(
        path=Path(f"{len(runs)} runs"),
        env_id=runs[0].env_id,
        policy=", ".join(dict.fromkeys(r.policy for r in runs)),
        clean=est([r.clean.point for r in runs]),
        clean_episodes=sum(r.clean_episodes for r in runs),
        curves=tuple(curves),
        strongest=tuple(strongest),
        confidence=confidence,
        seed=None,
        smoothing_sigma=sigmas.pop() if len(sigmas) == 1 else math.nan,
        runs=len(runs),
    )
