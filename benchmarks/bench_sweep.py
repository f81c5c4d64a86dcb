"""Sweep overhead and parallel efficiency: the store and executors against the same entry points in a plain loop.

Peer (measured in the same run, same cells): a plain Python loop calling ``train(cfg)`` / ``evaluate(cfg)`` on
each cell's resolved config, in this process, one torch thread. Ours:

* ``inline`` (``--workers 0``): the sweep's driver and the DuckDB store around the same calls in this process —
  the per-cell overhead of the store and the driver (goal: < 5 % for cells of a few seconds);
* ``local1`` (``--executor local --workers 1``): plus a spawned worker process (JSON in, rows out); its
  overhead splits into the driver and IPC (sweep time − seconds the entry points ran in the worker) and the
  worker's own slower compute (a fresh process: first-call costs of torch, caches);
* ``local2`` and ``ray2`` (2 local workers; Ray with 2 CPUs): parallel efficiency ``t_loop / (2 · t_sweep)``
  on 2 cores.

Worker start-up (spawning, importing torch and robustrl; ``ray.init``) is a fixed cost per sweep, timed
apart: before the sweep's clock starts, the workers run one failing task per stage (imports done).

Each configuration sweeps the study into a fresh folder, so every cell runs. The study: PPO on CartPole
(``--train-steps`` steps, a few seconds a cell) × seeds, each policy evaluated under uniform noise.

Usage:
    python benchmarks/bench_sweep.py            # 8 training + 8 evaluation cells, ≈ 3 s per training cell
    python benchmarks/bench_sweep.py --quick    # 4 + 4, shorter training
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from robustrl.common.config import config_from_dict
from robustrl.common.provenance import provenance
from robustrl.experiments.cells import Study, load_study
from robustrl.experiments.executors import make_executor
from robustrl.experiments.stages import STAGES
from robustrl.experiments.store import StudyStore
from robustrl.experiments.sweep import sweep

torch.set_num_threads(1)  # one thread for every clock in this benchmark (robustrl sets none on import)

SPEC = """
[study]
name = "bench"
seeds = {seeds}
[train]
algo = "ppo"
env = "CartPole-v1"
total_steps = {steps}
num_envs = 16
eval_every = 0
eval_episodes = 16
set = ["num_steps=32"]
[evaluate]
threat = ["uniform"]
budgets = [0.0, 0.1]
episodes = 32
bootstrap_reps = 500
"""


def plain_loop(study: Study, folder: Path) -> float:
    """Seconds to call each cell's entry point on its config in this process, in order."""
    t0 = time.perf_counter()
    for cell in study.cells:
        stage = STAGES[cell.stage]
        config = dict(cell.config)
        for name in stage.path_fields:
            config[name] = str(folder / config[name])
        if cell.stage != "train":
            Path(config["out"]).parent.mkdir(parents=True, exist_ok=True)
        stage.entry_point()(config_from_dict(stage.config_class(), config))
    return time.perf_counter() - t0


def warm_tasks(study: Study, folder: Path) -> list[str]:
    """One failing task per stage: a worker running them imports what the cells need, then answers an error."""
    out = []
    for stage in dict.fromkeys(c.stage for c in study.cells):
        cell = next(c for c in study.cells if c.stage == stage)
        config = dict(cell.config)
        if stage == "train":
            config.update(env="NoSuchEnv-v0", out=str(folder / "warm" / "train"))
        else:
            config.update(policy=str(folder / "warm" / "missing.zip"), out=str(folder / "warm" / stage / "r.json"))
        out.append(json.dumps({"cell_hash": f"warm-{stage}", "stage": stage, "config": config}))
    return out


def cell_seconds(folder: Path) -> float:
    """Seconds the entry points ran inside the workers, summed over the study's cells (from the store)."""
    with StudyStore(folder, read_only=True) as store:
        return sum(r.seconds or 0.0 for r in store.records())


def timed_sweep(study: Study, folder: Path, kind: str, workers: int = 0) -> tuple[float, float]:
    """``(start-up s, sweep s)``: workers started and warmed first (imports done), then the sweep timed."""
    t0 = time.perf_counter()
    executor = make_executor(kind, str(folder), workers=workers)  # type: ignore[arg-type]
    if workers or kind == "ray":
        tasks = warm_tasks(study, folder) * executor.capacity
        for i, task in enumerate(tasks):
            executor.submit(f"warm-{i}", task)
        got = 0
        while got < len(tasks):
            got += len(executor.wait(60))
    startup = time.perf_counter() - t0
    t1 = time.perf_counter()
    res = sweep(study, folder, executor, progress=False)
    elapsed = time.perf_counter() - t1
    assert res.complete and res.ran == len(study.cells), res
    return startup, elapsed


def main() -> None:
    """Run the benchmark and print JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="4 + 4 cells, 32k training steps")
    parser.add_argument("--train-steps", type=int, default=None, help="PPO steps per training cell")
    parser.add_argument("--seeds", type=int, default=None, help="training cells (one per seed)")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray measurement")
    args = parser.parse_args()
    logging.disable(logging.INFO)
    seeds = args.seeds or (4 if args.quick else 8)
    steps = args.train_steps or (32768 if args.quick else 65536)
    root = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    spec = root / "bench.toml"
    spec.write_text(SPEC.format(seeds=list(range(seeds)), steps=steps))
    study = load_study(spec)
    n = len(study.cells)

    plain_loop(load_study(spec), root / "warmup")  # torch, env and network code paths warm
    loop = plain_loop(study, root / "loop")
    _, inline = timed_sweep(study, root / "inline", "local", workers=0)
    start1, local1 = timed_sweep(study, root / "local1", "local", workers=1)
    start2, local2 = timed_sweep(study, root / "local2", "local", workers=2)
    results: dict[str, Any] = {
        "cells": n,
        "loop_s": loop,
        "seconds_per_cell": loop / n,
        "inline_s": inline,
        "inline_overhead_pct": 100 * (inline - loop) / loop,
        "inline_overhead_per_cell_s": (inline - loop) / n,
        "local1_startup_s": start1,
        "local1_s": local1,
        "local1_overhead_pct": 100 * (local1 - loop) / loop,
        "local1_overhead_per_cell_s": (local1 - loop) / n,
        "local1_cell_seconds": cell_seconds(root / "local1"),
        "local1_driver_ipc_per_cell_s": (local1 - cell_seconds(root / "local1")) / n,
        "local2_startup_s": start2,
        "local2_s": local2,
        "local2_efficiency": loop / (2 * local2),
        "local2_efficiency_with_startup": loop / (2 * (local2 + start2)),
    }
    if not args.no_ray:
        import ray

        t0 = time.perf_counter()
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        results["ray_init_s"] = time.perf_counter() - t0
        try:
            start_r, ray2 = timed_sweep(study, root / "ray2", "ray")
        finally:
            ray.shutdown()
        results.update(ray2_startup_s=start_r, ray2_s=ray2, ray2_efficiency=loop / (2 * ray2))
    out = {
        "benchmark": "sweep",
        "config": {"seeds": seeds, "train_steps": steps, "spec": SPEC.format(seeds=list(range(seeds)), steps=steps)},
        "results": results,
        "provenance": provenance(),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
