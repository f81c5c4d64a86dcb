"""``robustrl sweep`` and ``robustrl results``: the configs the console script parses, and their entry points.

Examples::

    robustrl sweep examples/studies/quick.toml --out runs/quick --dry-run
    robustrl sweep examples/studies/quick.toml --out runs/quick --workers 2
    robustrl sweep examples/studies/quick.toml --out runs/quick --executor ray --ray-address HOST:6379
    robustrl results runs/quick --group-by method,env --format csv

``robustrl report DIR`` on a study folder writes the study page: see :mod:`robustrl.experiments.report`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from robustrl.experiments.analysis import Normalize, OutputFormat, Statistic, StudySummary, summarize
from robustrl.experiments.cells import load_study, select_cells
from robustrl.experiments.executors import ExecutorKind, make_executor
from robustrl.experiments.store import STORE_FILE, StudyStore
from robustrl.experiments.sweep import SweepResult, plan_sweep, sweep
from robustrl.report.scores import parse_score_bounds

__all__ = ["ResultsConfig", "SweepConfig", "run_results", "run_sweep", "split_list"]


@dataclass(frozen=True)
class SweepConfig:
    """Run a study: every cell of a TOML spec not yet done, on local workers or Ray, into DIR/study.duckdb."""

    spec: Path
    """The study spec (TOML; see docs/studies.md)."""
    out: Path
    """The study folder: study.duckdb and artefacts/<cell_hash>/ (run the same command again to resume)."""
    executor: ExecutorKind = "local"
    """Where cells run: local worker processes, or Ray tasks."""
    workers: int = 2
    """Local worker processes, one torch thread each (0: run cells in this process)."""
    ray_address: str | None = None
    """Ray cluster address (default: RAY_ADDRESS, else start a local Ray)."""
    ray_num_cpus: int | None = None
    """CPUs of a local Ray started by the sweep (default: all)."""
    retries: int = 1
    """Extra attempts of a failing cell before it is recorded as failed."""
    rerun_failed: bool = True
    """Run cells that failed in an earlier sweep again."""
    dry_run: bool = False
    """Print the number of cells and stages and the estimated cost; run nothing."""
    progress: bool = True
    """Show the progress display (cells done / running / failed, ETA)."""
    only: tuple[str, ...] = ()
    """Run only the cells whose labels match KEY=V1,V2 (method, seed, env, algo, stage or a grid axis; several
    items must all match), with the training cells they need; the rest stay pending. Repeatable."""


def run_sweep(cfg: SweepConfig) -> SweepResult:
    """Check the whole spec, then run it (or, with ``dry_run``, only plan it).

    Raises:
        FileNotFoundError: no spec file.
        ValueError: a problem in the spec (every one, with file, line, table, key and field), a bad option,
            or a study folder in use by another sweep. Nothing runs then.
    """
    if cfg.workers < 0:
        raise ValueError(f"workers must be ≥ 0, got {cfg.workers}")
    if cfg.retries < 0:
        raise ValueError(f"retries must be ≥ 0, got {cfg.retries}")
    if cfg.ray_num_cpus is not None and cfg.ray_num_cpus < 1:
        raise ValueError(f"ray_num_cpus must be ≥ 1, got {cfg.ray_num_cpus}")
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} is a file; a study needs a folder")
    study = load_study(cfg.spec)
    selected = select_cells(study, cfg.only) if cfg.only else None
    if cfg.dry_run:
        parallel = cfg.workers if cfg.executor == "local" else (cfg.ray_num_cpus or 1)
        plan = plan_sweep(study, out, parallel=max(1, parallel), selected=selected)
        return SweepResult(plan, False, out / STORE_FILE)
    StudyStore(out / STORE_FILE, driver=True).close()  # a folder another sweep runs on fails here, before start-up
    executor = make_executor(cfg.executor, str(out.resolve()), workers=cfg.workers, ray_address=cfg.ray_address,
                             ray_num_cpus=cfg.ray_num_cpus)  # fmt: skip
    return sweep(study, out, executor, retries=cfg.retries, progress=cfg.progress, rerun_failed=cfg.rerun_failed,
                 selected=selected)


@dataclass(frozen=True)
class ResultsConfig:
    """Aggregate a study's results: IQM, median, mean with stratified-bootstrap CIs, probability of improvement."""

    study: Path
    """The study folder (holding study.duckdb)."""
    format: OutputFormat = "table"
    """Output: Markdown tables (one row per group and condition), wide Markdown (one row per group, one column
    per condition), JSON, or CSV (aggregates only)."""
    statistic: Statistic = "iqm"
    """The statistic the wide table shows (iqm, median or mean)."""
    digits: int = 2
    """Decimals in the Markdown tables."""
    group_by: tuple[str, ...] = ("method",)
    """Labels forming a group, comma-separated (method, env, algo, seed or any grid axis)."""
    metric: tuple[str, ...] = ("return_mean", "certified_return")
    """Metrics to aggregate (comma-separated; empty: all)."""
    stage: tuple[str, ...] = ()
    """Stages to aggregate: train, evaluate, certify, dynamics (comma-separated; empty: all)."""
    normalize: Normalize = "none"
    """Per-task scores: raw values, (v - min) / (max - min) with --score-bounds, or (v - r0) / |r1 - r0| with
    --references (r0, r1: the two reference groups' mean scores under the same condition)."""
    score_bounds: tuple[str, ...] = ()
    """Per-task score range for minmax, ENV_ID=MIN:MAX (e.g. Pendulum-v1=-1600:0)."""
    references: tuple[str, ...] = ()
    """For --normalize reference: the groups scoring 0 and 1, comma-separated (e.g. td3,m2td3)."""
    baseline: str | None = None
    """Compare every group with this one (default: every pair of groups)."""
    confidence: float = 0.95
    """Level of the confidence intervals."""
    reps: int = 2000
    """Bootstrap resamples."""
    seed: int = 0
    """Seed of the bootstrap (same seed, same intervals)."""
    parquet: Path | None = None
    """Also export the cells and results tables as Parquet files into this folder."""


def split_list(items: tuple[str, ...]) -> tuple[str, ...]:
    """Items given once or comma-separated (``("method,env",)`` → ``("method", "env")``).

    Example:
        >>> split_list(("method,env", "seed"))
        ('method', 'env', 'seed')
    """
    return tuple(part.strip() for item in items for part in item.split(",") if part.strip())


def run_results(cfg: ResultsConfig) -> StudySummary:
    """Read the study's store (read-only) and aggregate it.

    Raises:
        ValueError: no store in ``cfg.study`` (or a sweep holds it), or a bad option.
    """
    bounds = parse_score_bounds(cfg.score_bounds)
    with StudyStore(Path(cfg.study) / STORE_FILE, read_only=True) as store:
        rows = store.rows()
        counts = store.counts()
        name = store.meta().get("study", Path(cfg.study).name)
        if cfg.parquet is not None:
            store.export_parquet(cfg.parquet)
    return summarize(
        rows, study=name, group_by=split_list(cfg.group_by), metrics=split_list(cfg.metric),
        stages=split_list(cfg.stage), normalize=cfg.normalize, score_bounds=bounds,
        references=split_list(cfg.references), baseline=cfg.baseline,
        confidence=cfg.confidence, reps=cfg.reps, seed=cfg.seed, cells=counts, fmt=cfg.format,
        statistic=cfg.statistic, digits=cfg.digits,
    )  # fmt: skip
