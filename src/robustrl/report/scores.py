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

import dataclasses
import logging
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from robustrl.common.seeding import derive_seed
from robustrl.report.figures import Estimate, aggregate_intervals, make_series, performance_profiles
from robustrl.report.formatting import Eval, FigureSink, fmt, pick_budgets, relative_drop, tone, unit_symbol
from robustrl.report.html import Card, Section, cards_html, esc, table_html
from robustrl.report.loading import Loaded
from robustrl.results import CleanRun, EvaluationResult, StrongestCurve, ThreatCurve

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
    evals: Sequence[Eval],
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
    results = [ev.result for ev in evals]
    tasks = tuple(dict.fromkeys(ev.env_id for ev in results))
    by_task = {t: [ev for ev in results if ev.env_id == t] for t in tasks}
    runs = min(len(v) for v in by_task.values()) if tasks else 0
    if runs * len(tasks) < 2:
        return None
    notes = []
    if any(len(v) != runs for v in by_task.values()):
        counts = ", ".join(f"{t}: {len(v)}" for t, v in by_task.items())
        notes.append(f"Tasks have different numbers of runs ({counts}); the first {runs} of each are aggregated.")
    grid = [[by_task[t][r] for t in tasks] for r in range(runs)]  # [runs][tasks]

    raw: dict[str, np.ndarray] = {"clean": np.array([[ev.clean.mean for ev in row] for row in grid])}
    units = [
        c.threat_model
        for c in results[0].strongest
        if all(any(s.threat_model == c.threat_model for s in ev.strongest) for ev in results)
    ]
    for unit in units:
        curves = [[next(s for s in ev.strongest if s.threat_model == unit) for ev in row] for row in grid]
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


def _find_threat(res: EvaluationResult, label: str, unit: str) -> ThreatCurve | None:
    return next((c for c in res.threats if c.label == label and c.threat_model == unit), None)


def _find_strongest(res: EvaluationResult, unit: str) -> StrongestCurve | None:
    return next((c for c in res.strongest if c.threat_model == unit), None)


def _matching(members: Sequence[ThreatCurve | StrongestCurve | None]) -> list[Any] | None:
    """The members when every run has the curve at the same budgets, else None."""
    found = [m for m in members if m is not None]
    if len(found) != len(members):
        return None
    b = found[0].budgets
    return found if all(len(m.budgets) == len(b) and np.allclose(m.budgets, b) for m in found) else None


def pool_runs(runs: Sequence[Eval], *, confidence: float = 0.95, reps: int = 2000, seed: int | None = 0) -> Eval:
    """One evaluation summarising several runs of one task: per budget, the mean over runs of each run's mean.

    Intervals are percentile-bootstrap CIs over runs (``robustrl.stats.bootstrap_ci`` of the run means):
    the uncertainty a reader cares about when comparing training seeds. A threat (or a strongest curve)
    enters only when every run measured it at the same budgets. The pooled result's episode returns are
    the runs' episodes side by side (so ``episodes`` is their total); its ``seed`` is the first run's and
    its ``config`` lists every run's file and seed.

    Args:
        runs: evaluations of one env id (at least one).
        confidence: level of the intervals.
        reps: bootstrap resamples.
        seed: seed of the bootstrap (one derived seed per interval).

    Returns:
        A :class:`~robustrl.report.loading.Loaded` evaluation with ``runs = len(runs)`` and
        ``path = Path("<n> runs")``.

    """
    from robustrl import stats

    if not runs:
        raise ValueError("pool_runs needs at least one run")
    env_ids = {r.result.env_id for r in runs}
    if len(env_ids) != 1:
        raise ValueError(f"pool_runs pools runs of one task, got {sorted(env_ids)}")
    results = [r.result for r in runs]
    counter = iter(range(1 << 30))

    def est(values: Sequence[float]) -> Estimate:
        iv = stats.bootstrap_ci(
            np.asarray(values, dtype=np.float64), "mean", reps=reps, confidence=confidence,
            seed=derive_seed(seed, next(counter)),
        )  # fmt: skip
        return Estimate(float(iv.point), float(iv.low), float(iv.high))

    def pooled(members: Sequence[ThreatCurve | StrongestCurve]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        per_budget = [est([float(c.mean[j]) for c in members]) for j in range(len(members[0].budgets))]
        return (
            np.array([e.point for e in per_budget]),
            np.array([e.low for e in per_budget]),
            np.array([e.high for e in per_budget]),
        )

    curves = []
    for c in results[0].threats:
        members = _matching([_find_threat(r, c.label, c.threat_model) for r in results])
        if members is not None:
            mean, low, high = pooled(members)
            returns = np.concatenate([m.returns for m in members], axis=1)
            lengths = np.concatenate([m.lengths for m in members], axis=1)
            curves.append(dataclasses.replace(c, returns=returns, lengths=lengths, mean=mean, ci_low=low, ci_high=high))
    strongest = []
    for s in results[0].strongest:
        found = _matching([_find_strongest(r, s.threat_model) for r in results])
        if found is not None:
            mean, low, high = pooled(found)
            which = tuple(Counter(m.threat[j] for m in found).most_common(1)[0][0] for j in range(len(s.budgets)))
            strongest.append(dataclasses.replace(s, mean=mean, ci_low=low, ci_high=high, threat=which))
    sigmas = {r.smoothing_sigma for r in results}
    clean = est([r.clean.mean for r in results])
    summary = EvaluationResult(
        env_id=results[0].env_id,
        policy=", ".join(dict.fromkeys(r.policy for r in results)),
        episodes=sum(r.episodes for r in results),
        seed=results[0].seed,
        clean=CleanRun(np.concatenate([r.clean.returns for r in results]), clean.point, (clean.low, clean.high)),
        threats=tuple(curves),
        strongest=tuple(strongest),
        confidence=confidence,
        smoothing_sigma=sigmas.pop() if len(sigmas) == 1 else 0.0,
        config={"pooled_runs": [str(r.path) for r in runs], "seeds": [r.seed for r in results]},
    )
    return Loaded(Path(f"{len(runs)} runs"), summary, runs=len(runs))
