"""Speed of robustrl.stats against rliable, measured in the same process on the same matrices.

For every matrix shape, metric and number of replicates it times ``robustrl.stats.aggregate`` and
``rliable.library.get_interval_estimates`` (the same metric, the same ``reps``), and reports the ratio
``rliable seconds / robustrl seconds`` with both intervals (they should agree within Monte-Carlo error).
Probability of improvement and performance profiles are compared at ``--side-reps`` replicates
(rliable's probability of improvement costs milliseconds per replicate).

Each timing is the minimum over ``--repeats`` runs; the two libraries alternate so that load from other
processes hits both alike. Wall-clock (``ratio``) and process CPU time (``cpu_ratio``, less sensitive to
other processes on a shared machine) are both reported. Prints one JSON document (config, seed,
provenance, per-case results, a summary listing the cases below 10×).

    python benchmarks/bench_stats.py                      # full: 3 shapes × 4 metrics × {2000, 50000}
    python benchmarks/bench_stats.py --reps 2000 --shapes 10x5
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from robustrl import stats
from robustrl.common.provenance import provenance

METRICS = ("iqm", "median", "mean", "optimality_gap")


def _rliable_metric(name: str) -> Callable[[np.ndarray], np.ndarray]:
    from rliable import metrics

    if name == "all":

        def all_metrics(x: np.ndarray) -> np.ndarray:
            return np.array(
                [
                    metrics.aggregate_iqm(x),
                    metrics.aggregate_median(x),
                    metrics.aggregate_mean(x),
                    metrics.aggregate_optimality_gap(x),
                ]
            )

        return all_metrics
    fn = {
        "iqm": metrics.aggregate_iqm,
        "median": metrics.aggregate_median,
        "mean": metrics.aggregate_mean,
        "optimality_gap": metrics.aggregate_optimality_gap,
    }[name]
    return lambda x: np.array([fn(x)])


def _timed(fn: Callable[[int], Any], reps: int) -> tuple[float, float, Any]:
    """(wall seconds, CPU seconds of this process, result) of ``fn(reps)``."""
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn(reps)
    return time.perf_counter() - w0, time.process_time() - c0, out


def _compare(ours: Callable[[int], Any], theirs: Callable[[int], Any], reps: int, repeats: int) -> dict[str, Any]:
    """After a small untimed call each, alternate the two ``repeats`` times; keep each one's fastest times."""
    wall = {"robustrl": float("inf"), "rliable": float("inf")}
    cpu = dict(wall)
    outs: dict[str, Any] = {}
    ours(min(reps, 100)), theirs(min(reps, 100))  # warm-up: first calls pay one-off costs (lazy imports)
    for _ in range(repeats):
        for name, fn in (("robustrl", ours), ("rliable", theirs)):
            w, c, outs[name] = _timed(fn, reps)
            wall[name], cpu[name] = min(wall[name], w), min(cpu[name], c)
    return {
        "robustrl_s": wall["robustrl"],
        "rliable_s": wall["rliable"],
        "ratio": wall["rliable"] / wall["robustrl"],
        "robustrl_cpu_s": cpu["robustrl"],
        "rliable_cpu_s": cpu["rliable"],
        "cpu_ratio": cpu["rliable"] / max(cpu["robustrl"], 1e-9),
        "robustrl": outs["robustrl"],
        "rliable": outs["rliable"],
    }


def _scores(runs: int, tasks: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(0.2, 1.5, size=tasks) + rng.normal(0.0, 0.3, size=(runs, tasks))


def bench_aggregate(shape: tuple[int, int], metric: str, reps: int, repeats: int, seed: int) -> dict[str, Any]:
    """One ``aggregate`` (or ``aggregate_all`` for ``metric="all"``) against rliable."""
    from rliable import library as rly

    scores = _scores(*shape, seed)
    func = _rliable_metric(metric)

    def ours(reps: int) -> Any:
        if metric == "all":
            res = stats.aggregate_all(scores, METRICS, reps=reps, seed=seed)
            return {k: list(v) for k, v in res.items()}
        return list(stats.aggregate(scores, metric, reps=reps, seed=seed))

    def theirs(reps: int) -> Any:
        np.random.seed(seed)  # noqa: NPY002  (rliable ignores random_state and uses the global RNG)
        point, ci = rly.get_interval_estimates({"a": scores}, func, reps=reps)
        p, c = point["a"], ci["a"]
        if metric == "all":
            return {m: [float(p[i]), float(c[0, i]), float(c[1, i])] for i, m in enumerate(METRICS)}
        return [float(p[0]), float(c[0, 0]), float(c[1, 0])]

    row = _compare(ours, theirs, reps, repeats)
    row.update(kind="aggregate", shape=list(shape), metric=metric, reps=reps)
    row["robustrl_us_per_rep"] = 1e6 * row["robustrl_s"] / reps
    row["rliable_us_per_rep"] = 1e6 * row["rliable_s"] / reps
    return row


def bench_poi(shape: tuple[int, int], reps: int, repeats: int, seed: int) -> dict[str, Any]:
    """``probability_of_improvement`` against rliable's ``StratifiedIndependentBootstrap`` route."""
    from rliable import library as rly
    from rliable import metrics

    x = _scores(*shape, seed)
    y = _scores(*shape, seed + 1)

    def ours(reps: int) -> Any:
        return list(stats.probability_of_improvement(x, y, reps=reps, seed=seed))

    def theirs(reps: int) -> Any:
        np.random.seed(seed)  # noqa: NPY002
        point, ci = rly.get_interval_estimates(
            {"xy": [x, y]}, lambda a, b: np.array([metrics.probability_of_improvement(a, b)]), reps=reps
        )
        return [float(point["xy"][0]), float(ci["xy"][0, 0]), float(ci["xy"][1, 0])]

    row = _compare(ours, theirs, reps, repeats)
    row.update(kind="probability_of_improvement", shape=list(shape), reps=reps)
    return row


def bench_profile(shape: tuple[int, int], reps: int, repeats: int, seed: int, n_taus: int = 51) -> dict[str, Any]:
    """``performance_profile`` (run scores) against ``create_performance_profile``."""
    from rliable import library as rly

    scores = _scores(*shape, seed)
    taus = np.linspace(scores.min(), scores.max(), n_taus)

    def ours(reps: int) -> Any:
        prof = stats.performance_profile(scores, taus, reps=reps, seed=seed)
        return {"max_abs_point": float(np.abs(prof.point).max()), "mean_width": float((prof.high - prof.low).mean())}

    def theirs(reps: int) -> Any:
        np.random.seed(seed)  # noqa: NPY002
        point, ci = rly.create_performance_profile({"a": scores}, taus, reps=reps)
        return {"max_abs_point": float(np.abs(point["a"]).max()), "mean_width": float((ci["a"][1] - ci["a"][0]).mean())}

    row = _compare(ours, theirs, reps, repeats)
    row.update(kind="performance_profile", shape=list(shape), reps=reps, n_taus=n_taus)
    return row


def breakdown(shape: tuple[int, int], seed: int, loops: int = 300) -> dict[str, float]:
    """Microseconds per replicate of each step of one chunk (best of 7 × ``loops``): where the time goes."""
    from robustrl.stats.bootstrap import Strata, _TaskSums, _trimmed_kernel, chunk_size
    from robustrl.stats.metrics import iqm_cuts

    rng = np.random.default_rng(seed)
    strata = Strata(_scores(*shape, seed))
    c = chunk_size(strata.size, 50_000)
    keys_buf = np.empty((c, strata.tasks, strata.runs), dtype=np.intp)
    keys = strata.draw(rng, c, keys_buf)
    iqm_kernel = _trimmed_kernel(strata, c, *iqm_cuts(strata.size))
    sums = _TaskSums(strata.flat, c, strata.tasks, strata.runs)

    def fresh_sums() -> None:
        sums._keys = None
        sums(keys)

    steps: dict[str, Callable[[], Any]] = {
        "rng.integers uint16": lambda: rng.integers(0, strata.runs, size=keys.shape, dtype=np.uint16),
        "draw (integers + offsets + cast)": lambda: strata.draw(rng, c, keys_buf),
        "iqm kernel": lambda: iqm_kernel(keys),
        "per-task sums kernel (mean, median)": fresh_sums,
    }
    out = {}
    for name, fn in steps.items():
        best = float("inf")
        for _ in range(7):
            t0 = time.perf_counter()
            for _ in range(loops):
                fn()
            best = min(best, (time.perf_counter() - t0) / loops)
        out[name] = 1e6 * best / c
    return out


def _shape(text: str) -> tuple[int, int]:
    runs, _, tasks = text.lower().partition("x")
    return int(runs), int(tasks)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="10x5,50x20,100x50", help="runs x tasks, comma-separated")
    parser.add_argument("--reps", default="2000,50000", help="bootstrap replicates, comma-separated")
    parser.add_argument("--metrics", default=",".join((*METRICS, "all")), help="metrics ('all' = aggregate_all)")
    parser.add_argument("--side-reps", type=int, default=2000, help="replicates for PoI and profiles (0 = skip)")
    parser.add_argument("--repeats", type=int, default=1, help="timings per case (minimum reported)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="also write the JSON here")
    parser.add_argument("--breakdown", default="100x50", help="shape to time step by step ('' = skip)")
    args = parser.parse_args(argv)
    shapes = [_shape(s) for s in args.shapes.split(",")]
    reps_list = [int(r) for r in args.reps.split(",")]
    metrics = args.metrics.split(",")
    results = []
    for shape in shapes:
        for reps in reps_list:
            for metric in metrics:
                row = bench_aggregate(shape, metric, reps, args.repeats, args.seed)
                print(
                    f"{shape} {metric:15s} reps={reps:6d} ratio {row['ratio']:6.1f} cpu_ratio {row['cpu_ratio']:6.1f} "
                    f"({row['robustrl_us_per_rep']:.2f} vs {row['rliable_us_per_rep']:.1f} us/rep)",
                    file=sys.stderr,
                )
                results.append(row)
        if args.side_reps:
            for fn in (bench_poi, bench_profile):
                row = fn(shape, args.side_reps, args.repeats, args.seed)
                print(
                    f"{shape} {row['kind']} reps={args.side_reps} "
                    f"ratio {row['ratio']:.1f} cpu_ratio {row['cpu_ratio']:.1f}",
                    file=sys.stderr,
                )
                results.append(row)
    agg = [r for r in results if r["kind"] == "aggregate"]
    steps = breakdown(_shape(args.breakdown), args.seed) if args.breakdown else {}
    doc = {
        "benchmark": "robustrl.stats vs rliable.library (same process, same matrices, same reps)",
        "config": vars(args),
        "seed": args.seed,
        "provenance": provenance(),
        "summary": {
            key: {
                "min": min(r[key] for r in agg),
                "geomean": float(np.exp(np.mean(np.log([r[key] for r in agg])))),
                "below_10x": [
                    f"{r['shape'][0]}x{r['shape'][1]} {r['metric']} reps={r['reps']}" for r in agg if r[key] < 10
                ],
            }
            for key in ("ratio", "cpu_ratio")
        }
        if agg
        else {},
        "results": results,
        "breakdown_us_per_rep": {"shape": args.breakdown, **steps},
    }
    text = json.dumps(doc, indent=2)
    print(text)
    if args.out:
        from robustrl.common.io import write_json

        write_json(args.out, doc)
    return doc


if __name__ == "__main__":
    main()
