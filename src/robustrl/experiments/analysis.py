"""Aggregate a study's results: IQM, median, mean with stratified-bootstrap CIs, probability of improvement.

The long rows of the store are grouped into score matrices the way Agarwal et al. (NeurIPS 2021) define them:

* a **group** is one value of the ``group_by`` labels (default: the method), a row of the leaderboard;
* a **condition** is what was measured: stage, threat, budget, metric, and every label that varies within
  a group and is neither grouped, the env nor the seed (another grid axis, say): conditions are never
  pooled;
* within a group and condition, the **tasks** are the envs and the **runs** are the seeds: a
  ``[runs, tasks]`` matrix, aggregated with :func:`robustrl.stats.aggregate_all` (stratified bootstrap
  over runs within tasks) and compared between groups with
  :func:`robustrl.stats.probability_of_improvement`.

With ``normalize="reference"`` every score becomes ``(v − r0) / |r1 − r0|``, where r0 and r1 are the mean
scores of two reference groups of the same study under the same condition and task (IWOCS's convention for
uncertainty sets: nominal TD3 = 0, M2TD3 = 1); conditions lacking either reference are left out.

Dynamics grids also give two derived conditions per cell: ``dynamics:worst`` (the least mean return over
the grid) and ``dynamics:average`` (the mean over the grid). Non-finite values (a certificate that
certifies nothing is ``-inf``) are left out and counted. Tasks with unequal numbers of runs are cut to
the smallest, lowest seeds first.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from robustrl.experiments.stages import STAGES
from robustrl.experiments.store import StoredRow
from robustrl.stats import Interval, aggregate_all, format_interval, probability_of_improvement

__all__ = ["Aggregate", "Condition", "Improvement", "Normalize", "OutputFormat", "ScoreMatrix", "Statistic",
           "StudySummary", "score_matrices", "summarize"]

OutputFormat = Literal["table", "wide", "json", "csv"]
Normalize = Literal["none", "minmax", "reference"]
Statistic = Literal["iqm", "median", "mean"]
STATISTICS: tuple[Statistic, ...] = ("iqm", "median", "mean")
"""The aggregate statistics of every group and condition."""
_Table = dict[tuple[tuple[str, ...], "Condition"], dict[str, dict[int, list[float]]]]
"""Scores by (group, condition), task, run."""
_DYN = re.compile(r"^(?P<prefix>.*?)dynamics\[(?P<point>.*)\]$")


@dataclass(frozen=True)
class Condition:
    """What a number measures: stage, threat, budget, metric, and the other labels of its cells."""

    stage: str
    """The stage whose rows it is."""
    threat: str
    """``clean``, a threat label, ``strongest:<threat model>``, ``dynamics:worst``..."""
    budget: float
    """The threat's budget."""
    metric: str
    """``return_mean``, ``certified_return``..."""
    extra: tuple[tuple[str, str], ...] = ()
    """Labels that vary within a group (other than the env and the seed), with this condition's values."""

    def label(self, *, stage: bool = True, metric: bool = True) -> str:
        """``stage threat @ budget metric [k=v]`` in one line (without the stage or the metric if asked)."""
        plain = self.threat == "clean" or self.threat.startswith(("dynamics", "uncertainty"))  # budget 0: no threat ran
        at = "" if plain and self.budget == 0 else f" @ {self.budget:g}"
        other = f" [{', '.join(f'{k}={v}' for k, v in self.extra)}]" if self.extra else ""
        parts = [self.stage] * stage + [f"{self.threat}{at}"] + [self.metric] * metric
        return " ".join(parts) + other


@dataclass(frozen=True)
class Aggregate:
    """IQM, median and mean of one group under one condition, over its runs × tasks."""

    group: tuple[str, ...]
    """Values of the ``group_by`` labels."""
    condition: Condition
    """What was measured."""
    tasks: tuple[str, ...]
    """Env ids (the matrix's columns)."""
    runs: int
    """Seeds per task (the matrix's rows)."""
    iqm: Interval
    """Interquartile mean with its CI."""
    median: Interval
    """Median with its CI."""
    mean: Interval
    """Mean with its CI."""
    dropped: int = 0
    """Non-finite scores left out (and scores cut to equalise runs per task)."""


@dataclass(frozen=True)
class Improvement:
    """Probability that a run of group ``x`` beats one of group ``y`` on a task, with its CI."""

    condition: Condition
    """What was measured."""
    x: tuple[str, ...]
    """The first group."""
    y: tuple[str, ...]
    """The second group."""
    probability: Interval
    """``P(X > Y)`` averaged over tasks; above 0.5 means X is better."""


@dataclass(frozen=True)
class StudySummary:
    """The aggregates of a study (what ``robustrl results DIR`` prints, in ``fmt``)."""

    study: str
    """The study's name."""
    group_by: tuple[str, ...]
    """The labels rows are grouped by."""
    aggregates: tuple[Aggregate, ...]
    """One per group and condition, conditions in stage order."""
    improvements: tuple[Improvement, ...]
    """Probabilities of improvement between groups, per condition."""
    cells: dict[str, int] = field(default_factory=dict)
    """Cells per status."""
    confidence: float = 0.95
    """Level of every interval."""
    reps: int = 2000
    """Bootstrap resamples."""
    normalize: str = "none"
    """How scores were normalised per task."""
    fmt: OutputFormat = "table"
    """How ``str()`` writes it."""
    statistic: Statistic = "iqm"
    """The statistic the ``wide`` form shows."""
    digits: int = 2
    """Decimals of the Markdown forms."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: settings, cell counts, aggregates and improvements."""

        def iv(x: Interval) -> dict[str, float | None]:
            return {k: (v if math.isfinite(v) else None) for k, v in zip(("point", "low", "high"), x)}

        def cond(c: Condition) -> dict[str, Any]:
            return {"stage": c.stage, "threat": c.threat, "budget": c.budget, "metric": c.metric,
                    "extra": dict(c.extra)}  # fmt: skip

        return {
            "study": self.study, "group_by": list(self.group_by), "confidence": self.confidence, "reps": self.reps,
            "normalize": self.normalize, "cells": dict(self.cells),
            "aggregates": [
                {"group": dict(zip(self.group_by, a.group)), "condition": cond(a.condition), "tasks": list(a.tasks),
                 "runs": a.runs, "dropped": a.dropped, **{s: iv(getattr(a, s)) for s in STATISTICS}}
                for a in self.aggregates
            ],
            "improvements": [
                {"condition": cond(i.condition), "x": dict(zip(self.group_by, i.x)), "y": dict(zip(self.group_by, i.y)),
                 "probability": iv(i.probability)}
                for i in self.improvements
            ],
        }  # fmt: skip

    def to_csv(self) -> str:
        """The aggregates, one line each (probabilities of improvement are in the table and JSON forms)."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        head = [*self.group_by, "stage", "threat", "budget", "metric", "other", "tasks", "runs", "dropped"]
        w.writerow(head + [f"{s}{suffix}" for s in STATISTICS for suffix in ("", "_low", "_high")])
        for a in self.aggregates:
            c = a.condition
            other = ";".join(f"{k}={v}" for k, v in c.extra)
            vals = [x for s in STATISTICS for x in getattr(a, s)]
            w.writerow([*a.group, c.stage, c.threat, c.budget, c.metric, other, " ".join(a.tasks), a.runs, a.dropped,
                        *vals])  # fmt: skip
        return buf.getvalue().rstrip("\n")

    def to_table(self, digits: int = 2) -> str:
        """Markdown tables: the aggregates, then the probabilities of improvement."""
        head = f"study {self.study!r}: " + ", ".join(f"{n} {s}" for s, n in sorted(self.cells.items()))
        note = f"{int(self.confidence * 100)} % stratified-bootstrap CIs ({self.reps} resamples)"
        if self.normalize != "none":
            note += f", scores normalised ({self.normalize})"
        lines = [head, note, ""]
        if not self.aggregates:
            return "\n".join([*lines, "no results yet: run robustrl sweep SPEC --out DIR"])
        cols = [*self.group_by, "condition", "runs × tasks", "IQM", "median", "mean"]
        lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for a in self.aggregates:
            cells = [*a.group, a.condition.label(), f"{a.runs} × {len(a.tasks)}",
                     *(format_interval(getattr(a, s), digits) for s in STATISTICS)]  # fmt: skip
            lines.append("| " + " | ".join(cells) + " |")
        if self.improvements:
            lines += ["", "| condition | X | Y | P(X > Y) |", "|---|---|---|---|"]
            for i in self.improvements:
                p = format_interval(i.probability, digits)
                lines.append(f"| {i.condition.label()} | {'/'.join(i.x)} | {'/'.join(i.y)} | {p} |")
        return "\n".join(lines)

    def to_wide(self, statistic: Statistic | None = None, digits: int | None = None) -> str:
        """Markdown: one row per group, one column per condition (``statistic`` with its CI).

        The probabilities of improvement follow the same way, one row per compared pair, with at least two
        decimals. A stage or metric shared by every condition is left out of the column names and said above
        the table.
        """
        stat = statistic or self.statistic
        head = f"study {self.study!r}: " + ", ".join(f"{n} {s}" for s, n in sorted(self.cells.items()))
        header, rows, shared = self.grid(stat, digits)
        note = f"{stat} with {int(self.confidence * 100)} % stratified-bootstrap CIs ({self.reps} resamples)"
        if shared:
            note += "; " + ", ".join(shared)
        lines = [head, note, ""]
        if not self.aggregates:
            return "\n".join([*lines, "no results yet: run robustrl sweep SPEC --out DIR"])
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        if self.improvements:
            p_header, p_rows = self.improvement_grid(digits)
            lines += ["", "| " + " | ".join(p_header) + " |", "|" + "---|" * len(p_header)]
            lines += ["| " + " | ".join(r) + " |" for r in p_rows]
        return "\n".join(lines)

    def _conditions(self) -> list[Condition]:
        return list(dict.fromkeys(a.condition for a in self.aggregates))

    def grid(self, statistic: Statistic | None = None, digits: int | None = None
             ) -> tuple[list[str], list[list[str]], list[str]]:
        """The wide table's header, rows and the stage/metric that every condition shares.

        The header is the group label, then one name per condition; each row is a group, its cells
        ``statistic`` with its CI ("—" where the group has no score).

        Raises:
            ValueError: an unknown statistic.
        """
        stat = statistic or self.statistic
        if stat not in STATISTICS:
            raise ValueError(f"statistic must be one of {list(STATISTICS)}, got {stat!r}")
        nd = self.digits if digits is None else digits
        conditions = self._conditions()
        shared = [f"{kind} {values.pop()}" for kind, values in (("stage", {c.stage for c in conditions}),
                                                                ("metric", {c.metric for c in conditions}))
                  if len(values) == 1]  # fmt: skip
        cell = {(a.group, a.condition): format_interval(getattr(a, stat), nd) for a in self.aggregates}
        rows = [["/".join(g), *(cell.get((g, c), "—") for c in conditions)]
                for g in dict.fromkeys(a.group for a in self.aggregates)]  # fmt: skip
        return ["/".join(self.group_by), *_column_names(conditions)], rows, shared

    def improvement_grid(self, digits: int | None = None) -> tuple[list[str], list[list[str]]]:
        """Header and rows of the probabilities of improvement, one row per compared pair (≥ 2 decimals)."""
        nd = max(self.digits if digits is None else digits, 2)
        conditions = self._conditions()
        prob = {(i.x, i.y, i.condition): format_interval(i.probability, nd) for i in self.improvements}
        pairs = list(dict.fromkeys((i.x, i.y) for i in self.improvements))
        rows = [[f"{'/'.join(x)} > {'/'.join(y)}", *(prob.get((x, y, c), "—") for c in conditions)] for x, y in pairs]
        return ["P(X > Y)", *_column_names(conditions)], rows

    def __str__(self) -> str:
        if self.fmt == "json":
            return json.dumps(self.to_dict(), indent=2)
        if self.fmt == "csv":
            return self.to_csv()
        if self.fmt == "wide":
            return self.to_wide()
        return self.to_table(self.digits)


def _column_names(conditions: Sequence[Condition]) -> list[str]:
    """Each condition's label without the stage and the metric where every condition shares them."""
    stage, metric = len({c.stage for c in conditions}) > 1, len({c.metric for c in conditions}) > 1
    return [c.label(stage=stage, metric=metric) for c in conditions]


def label_text(value: Any) -> str:
    """A label value as text (lists joined by commas).

    Example:
        >>> label_text(["pgd", "mad"]), label_text(0.1), label_text(True)
        ('pgd,mad', '0.1', 'true')
    """
    if isinstance(value, list | tuple):
        return ",".join(label_text(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def derived_rows(rows: Sequence[StoredRow]) -> list[StoredRow]:
    """``rows`` plus, for each dynamics cell, its ``dynamics:worst`` and ``dynamics:average`` rows."""
    out = list(rows)
    points: dict[tuple[str, str, str], list[StoredRow]] = {}
    for r in rows:
        m = _DYN.match(r.row.threat)
        if r.stage == "dynamics" and m is not None:
            points.setdefault((r.cell_hash, m["prefix"], r.row.metric), []).append(r)
    nan = math.nan
    for (_, prefix, metric), members in points.items():
        first = members[0]
        values = np.array([m.row.value for m in members], dtype=np.float64)
        for name, value in (("worst", float(values.min())), ("average", float(values.mean()))):
            row = first.row._replace(threat=f"{prefix}dynamics:{name}", metric=metric, value=value, ci_low=nan,
                                     ci_high=nan)  # fmt: skip
            out.append(StoredRow(first.cell_hash, first.stage, first.labels, row))
    return out


def _keys(rows: Sequence[StoredRow]) -> list[str]:
    return list(dict.fromkeys(k for r in rows for k in r.labels))


def _matrix(
    values: Mapping[str, Mapping[int, list[float]]], tasks: Sequence[str]
) -> tuple[np.ndarray, int, int] | None:
    """``[runs, tasks]`` of finite scores (lowest seeds first), runs, dropped; None when a task has none."""
    columns, dropped = [], 0
    for t in tasks:
        col = []
        for seed in sorted(values[t]):
            finite = [v for v in values[t][seed] if math.isfinite(v)]
            dropped += len(values[t][seed]) - len(finite)
            if finite:
                col.append(float(np.mean(finite)))
        if not col:
            return None
        columns.append(col)
    runs = min(len(c) for c in columns)
    dropped += sum(len(c) - runs for c in columns)
    return np.array([c[:runs] for c in columns], dtype=np.float64).T, runs, dropped


@dataclass(frozen=True)
class ScoreMatrix:
    """The scores of one group under one condition: ``[runs, tasks]``."""

    group: tuple[str, ...]
    """Values of the ``group_by`` labels."""
    condition: Condition
    """What was measured."""
    tasks: tuple[str, ...]
    """Env ids, the columns."""
    scores: np.ndarray
    """``float64 [runs, tasks]`` finite scores, runs in seed order."""
    dropped: int = 0
    """Scores left out (non-finite, or beyond the smallest number of runs of a task)."""


def score_matrices(
    rows: Sequence[StoredRow],
    *,
    group_by: Sequence[str] = ("method",),
    metrics: Sequence[str] = ("return_mean", "certified_return"),
    stages: Sequence[str] = (),
    normalize: Normalize = "none",
    score_bounds: Mapping[str, tuple[float, float]] | None = None,
    references: Sequence[str] = (),
) -> list[ScoreMatrix]:
    """The ``[runs, tasks]`` score matrix of every group and condition, conditions in stage order.

    A threat's evaluation row at budget 0 is the clean run; it is kept once, as ``clean``.

    Args:
        rows: :meth:`robustrl.experiments.store.StudyStore.rows`.
        group_by: labels forming a group (``method``, ``env``, ``algo``, a grid axis...).
        metrics: metrics kept (empty: all).
        stages: stages kept (empty: all).
        normalize: ``none`` (raw values), ``minmax`` (``(v − min) / (max − min)`` per task, from
            ``score_bounds``) or ``reference`` (``(v − r0) / |r1 − r0|`` per condition and task, r0 and r1
            the mean scores of the two ``references`` groups).
        score_bounds: ``{env_id: (min, max)}`` for ``minmax``.
        references: the two groups (``/``-joined group values) scoring 0 and 1 for ``reference``.

    Raises:
        ValueError: an unknown group-by label or stage, a task without score bounds, or references that are
            not two groups of the study.
    """
    unknown_stages = sorted(set(stages) - set(STAGES))
    if unknown_stages:
        raise ValueError(f"unknown stages {unknown_stages} (stages: {', '.join(STAGES)})")
    if normalize not in ("none", "minmax", "reference"):
        raise ValueError(f"normalize must be 'none', 'minmax' or 'reference', got {normalize!r}")
    if normalize == "reference" and (len(references) != 2 or references[0] == references[1]):
        raise ValueError(f"normalize=reference needs two different reference groups, got {list(references)}")
    if normalize != "reference" and references:
        raise ValueError("references are used only with normalize=reference")
    group_by = tuple(group_by)
    if not group_by:
        raise ValueError("group_by needs at least one label")
    available = _keys(rows)
    missing = [k for k in group_by if k not in available]
    if missing and rows:
        raise ValueError(f"cannot group by {missing}: the cells have the labels {available}")
    kept = [
        r for r in derived_rows(rows)
        if (not stages or r.stage in stages) and (not metrics or r.row.metric in metrics)
        # an attack at budget 0 repeats the clean row; an uncertainty set's rows are budget-free
        and not (r.stage == "evaluate" and r.row.budget == 0 and r.row.threat != "clean"
                 and not r.row.threat.startswith("uncertainty"))
    ]  # fmt: skip
    bounds = dict(score_bounds or {})
    if normalize == "minmax":
        lacking = sorted({r.row.task for r in kept} - set(bounds))
        if lacking:
            raise ValueError(f"normalize=minmax needs score bounds for {lacking} (ENV_ID=MIN:MAX)")
    values_in: dict[tuple[tuple[str, ...], str], set[str]] = {}
    for r in kept:
        group = tuple(label_text(r.labels.get(k, "")) for k in group_by)
        for k, v in r.labels.items():
            values_in.setdefault((group, k), set()).add(label_text(v))
    varying = {k for (_, k), vals in values_in.items() if len(vals) > 1} - set(group_by) - {"seed", "env"}
    threat_order: dict[str, int] = {}
    groups: dict[tuple[str, ...], int] = {}
    table: _Table = {}
    for r in kept:
        group = tuple(label_text(r.labels.get(k, "")) for k in group_by)
        extra = tuple((k, label_text(v)) for k, v in sorted(r.labels.items()) if k in varying)
        cond = Condition(r.stage, r.row.threat, float(r.row.budget), r.row.metric, extra)
        threat_order.setdefault(r.row.threat, len(threat_order))
        groups.setdefault(group, len(groups))
        value = float(r.row.value)
        if normalize == "minmax":
            lo, hi = bounds[r.row.task]
            value = (value - lo) / (hi - lo)
        seed_label = r.labels.get("seed", r.row.seed)
        run = int(seed_label) if isinstance(seed_label, int) else 0
        table.setdefault((group, cond), {}).setdefault(r.row.task, {}).setdefault(run, []).append(value)
    if normalize == "reference":
        table = _normalised_to_references(table, tuple(tuple(g.split("/")) for g in references), list(groups))
    stage_order = {s: i for i, s in enumerate(STAGES)}

    def order(key: tuple[tuple[str, ...], Condition]) -> tuple[Any, ...]:
        c = key[1]
        return (stage_order.get(c.stage, 99), threat_order[c.threat], c.budget, c.metric, c.extra, groups[key[0]])

    out = []
    for key in sorted(table, key=order):
        tasks = tuple(table[key])
        built = _matrix(table[key], tasks)
        if built is not None:
            out.append(ScoreMatrix(key[0], key[1], tasks, built[0], built[2]))
    return out


def _normalised_to_references(
    table: _Table, refs: tuple[tuple[str, ...], ...], groups: list[tuple[str, ...]]
) -> _Table:
    """Every value as ``(v − r0) / |r1 − r0|`` per condition and task.

    A condition and task where a reference has no finite score, or both score the same, is left out.
    """
    missing = [ref for ref in refs if ref not in groups]
    if missing and groups:
        raise ValueError(f"references {['/'.join(m) for m in missing]} are not groups of the study "
                         f"(groups: {['/'.join(g) for g in groups]})")  # fmt: skip

    def mean(cells: Mapping[int, list[float]]) -> float:
        runs = [float(np.mean(f)) for f in ([v for v in vs if math.isfinite(v)] for vs in cells.values()) if f]
        return float(np.mean(runs)) if runs else math.nan

    out: _Table = {}
    for (group, cond), tasks in table.items():
        for task, cells in tasks.items():
            r0, r1 = (mean(table.get((ref, cond), {}).get(task, {})) for ref in refs)
            if not (math.isfinite(r0) and math.isfinite(r1)) or r0 == r1:
                continue
            scale = abs(r1 - r0)
            out.setdefault((group, cond), {})[task] = {run: [(v - r0) / scale for v in vs] for run, vs in cells.items()}
    return out


def summarize(
    rows: Sequence[StoredRow],
    *,
    study: str = "",
    group_by: Sequence[str] = ("method",),
    metrics: Sequence[str] = ("return_mean", "certified_return"),
    stages: Sequence[str] = (),
    normalize: Normalize = "none",
    score_bounds: Mapping[str, tuple[float, float]] | None = None,
    references: Sequence[str] = (),
    baseline: str | None = None,
    confidence: float = 0.95,
    reps: int = 2000,
    seed: int = 0,
    cells: Mapping[str, int] | None = None,
    fmt: OutputFormat = "table",
    statistic: Statistic = "iqm",
    digits: int = 2,
) -> StudySummary:
    """Aggregate the stored rows of a study per group and condition (see :func:`score_matrices`).

    Args:
        rows: :meth:`robustrl.experiments.store.StudyStore.rows`.
        study: the study's name (for the output).
        group_by: labels forming a group.
        metrics: metrics kept (empty: all).
        stages: stages kept (empty: all).
        normalize: ``none``, ``minmax`` (with ``score_bounds``) or ``reference`` (with ``references``).
        score_bounds: ``{env_id: (min, max)}`` for ``minmax``.
        references: the groups scoring 0 and 1 for ``reference``.
        baseline: compare every group with this one (``/``-joined group values); None: every pair.
        confidence: interval level.
        reps: bootstrap resamples.
        seed: seed of every bootstrap (same seed, same intervals).
        cells: cells per status, reported with the result.
        fmt: how ``str()`` writes the summary.
        statistic: the statistic of the ``wide`` form.
        digits: decimals of the Markdown forms.

    Returns:
        :class:`StudySummary`.

    Raises:
        ValueError: a bad option, an unknown group-by label, stage or baseline, or a task without score bounds.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if reps < 1:
        raise ValueError(f"reps must be ≥ 1, got {reps}")
    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {list(STATISTICS)}, got {statistic!r}")
    if isinstance(digits, bool) or not isinstance(digits, int) or not 0 <= digits <= 10:
        raise ValueError(f"digits must be an integer in [0, 10], got {digits!r}")
    matrices = score_matrices(rows, group_by=group_by, metrics=metrics, stages=stages, normalize=normalize,
                              score_bounds=score_bounds, references=references)  # fmt: skip
    groups = list(dict.fromkeys(m.group for m in matrices))
    if baseline is not None and tuple(baseline.split("/")) not in groups:
        raise ValueError(f"baseline {baseline!r} is not a group (groups: {['/'.join(g) for g in groups]})")
    aggregates = []
    for m in matrices:
        ivs = aggregate_all(m.scores, STATISTICS, reps=reps, confidence=confidence, seed=seed)
        aggregates.append(Aggregate(m.group, m.condition, m.tasks, m.scores.shape[0], ivs["iqm"], ivs["median"],
                                    ivs["mean"], m.dropped))  # fmt: skip
    by_key = {(m.group, m.condition): (m.tasks, m.scores) for m in matrices}
    improvements = _improvements(by_key, groups, baseline, confidence, reps, seed)
    how: str = normalize
    if normalize == "reference":
        raw = {(m.group, m.condition) for m in score_matrices(rows, group_by=group_by, metrics=metrics, stages=stages)}
        lost = len({c for _, c in raw} - {m.condition for m in matrices})
        how = f"{references[0]} = 0, {references[1]} = 1" + (
            f"; {lost} conditions without two distinct reference scores left out" if lost else "")
    return StudySummary(study, tuple(group_by), tuple(aggregates), tuple(improvements), dict(cells or {}),
                        confidence, reps, how, fmt, statistic, digits)  # fmt: skip


def _improvements(
    matrices: Mapping[tuple[tuple[str, ...], Condition], tuple[tuple[str, ...], np.ndarray]],
    groups: list[tuple[str, ...]],
    baseline: str | None,
    confidence: float,
    reps: int,
    seed: int,
) -> list[Improvement]:
    conditions = list(dict.fromkeys(c for _, c in matrices))
    if baseline is not None:
        base = tuple(baseline.split("/"))
        pairs = [(g, base) for g in groups if g != base]
    else:
        pairs = [(a, b) for i, a in enumerate(groups) for b in groups[i + 1 :]]
    out = []
    for cond in conditions:
        for a, b in pairs:
            if (a, cond) not in matrices or (b, cond) not in matrices:
                continue
            (ta, xa), (tb, xb) = matrices[(a, cond)], matrices[(b, cond)]
            common = [t for t in ta if t in tb]
            if not common:
                continue
            x = xa[:, [ta.index(t) for t in common]]
            y = xb[:, [tb.index(t) for t in common]]
            iv = probability_of_improvement(x, y, reps=reps, confidence=confidence, seed=seed)
            out.append(Improvement(cond, a, b, iv))
    return out

