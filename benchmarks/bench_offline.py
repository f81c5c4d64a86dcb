"""Gradient updates per second of robustrl's offline learners (IQL, CQL, TD3+BC) against d3rlpy 2.8.1.

Both sides train on the same dataset (``--transitions`` transitions of Hopper-v5 shapes, 11-dim observations
and 3-dim actions, uniform random values), with the same networks (256-256 ReLU actor, critics and value
network; twin critics), batch 256, one torch thread, on the CPU. Each side runs ``--reps`` timed blocks of
``--updates`` updates (minibatch sampling included) after a warm-up, alternating robustrl / d3rlpy so that
machine load hits both alike. Both run in one process with freed memory kept in it, as the ``robustrl``
command runs (:func:`robustrl.common.allocator.keep_freed_memory`). A row reports the median updates/s of
each side and their ratio, and the share of robustrl's update time spent in matrix products (torch
profiler): ``ratio_if_only_matmuls`` is the ratio if everything else took no time, the ceiling of any speed-up
that keeps the networks, batch and float32.

Differences that remain: d3rlpy's IQL actor is a Gaussian (log-likelihood AWR), robustrl's is the RIQL
reference code's deterministic actor (weighted squared error); CQL on both sides samples 10 actions of each
kind and uses a fixed conservative weight 5.

d3rlpy 2.8.1 pins ``gymnasium==1.0.0``, which would downgrade the project's Gymnasium, so it is not a
dependency: install it apart (``pip install --target DIR --no-deps d3rlpy==2.8.1 dataclasses-json marshmallow
typing-inspect structlog colorama gym gym-notices scikit-learn joblib threadpoolctl``) and pass
``--d3rlpy-path DIR``. Without it only robustrl's rows are measured (no ratio).

Usage::

    python benchmarks/bench_offline.py --d3rlpy-path /tmp/d3rlpy_site --out bench_offline.json
    python benchmarks/bench_offline.py --quick
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from matmul_share import matmul_share

from robustrl.common.allocator import keep_freed_memory
from robustrl.common.provenance import provenance
from robustrl.offline.base import OfflineBuffer
from robustrl.offline.cql import CQL, CQLConfig
from robustrl.offline.data import OfflineDataset
from robustrl.offline.iql import IQL, IQLConfig
from robustrl.offline.td3bc import TD3BC, TD3BCConfig

OBS_DIM, ACT_DIM, BATCH = 11, 3, 256


def _dataset(n: int, seed: int) -> OfflineDataset:
    rng = np.random.default_rng(seed)
    obs = rng.standard_normal((n + 1, OBS_DIM)).astype(np.float32)
    done = np.zeros(n, bool)
    done[999::1000] = True
    return OfflineDataset(
        observations=obs[:-1], actions=rng.uniform(-1, 1, (n, ACT_DIM)).astype(np.float32),
        rewards=rng.standard_normal(n).astype(np.float32), next_observations=obs[1:],
        terminations=np.zeros(n, bool), truncations=done, episode_ids=np.r_[0, np.cumsum(done)[:-1]],
    )  # fmt: skip


def _ours(algo: str, data: OfflineDataset) -> Any:
    obs_space = gym.spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float32)
    act_space = gym.spaces.Box(-1.0, 1.0, (ACT_DIM,), np.float32)
    cls, cfg = {"iql": (IQL, IQLConfig()), "cql": (CQL, CQLConfig()), "td3bc": (TD3BC, TD3BCConfig())}[algo]
    learner = cls(obs_space, act_space, data, cfg, seed=0)
    buffer = OfflineBuffer(data, act_space)
    gen = torch.Generator().manual_seed(0)

    def step() -> None:
        learner.update(buffer.sample(BATCH, gen))

    return step


def _d3rlpy(algo: str, data: OfflineDataset) -> Any:
    import d3rlpy

    ds = d3rlpy.dataset.MDPDataset(data.observations, data.actions, data.rewards, data.terminations,
                                   data.truncations)  # fmt: skip
    enc = d3rlpy.models.VectorEncoderFactory(hidden_units=[256, 256])
    common = {"batch_size": BATCH, "actor_encoder_factory": enc, "critic_encoder_factory": enc}
    if algo == "iql":
        cfg = d3rlpy.algos.IQLConfig(value_encoder_factory=enc, n_critics=2, **common)
    elif algo == "cql":
        cfg = d3rlpy.algos.CQLConfig(n_critics=2, n_action_samples=10, conservative_weight=5.0, alpha_threshold=10.0,
                                     alpha_learning_rate=0.0, **common)  # fmt: skip
    else:
        cfg = d3rlpy.algos.TD3PlusBCConfig(n_critics=2, **common)
    learner = cfg.create(device="cpu:0")
    learner.build_with_dataset(ds)

    def step() -> None:
        learner.update(ds.sample_transition_batch(BATCH))

    return step


def _rate(step: Any, updates: int) -> float:
    t0 = time.perf_counter()
    for _ in range(updates):
        step()
    return updates / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algos", default="iql,cql,td3bc")
    parser.add_argument("--updates", type=int, default=300, help="updates per timed block")
    parser.add_argument("--reps", type=int, default=3, help="timed blocks per side")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--transitions", type=int, default=100_000)
    parser.add_argument("--d3rlpy-path", default="", help="folder d3rlpy 2.8.1 was installed into (--target)")
    parser.add_argument("--quick", action="store_true", help="50 updates × 2 blocks, 20k transitions")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.quick:
        args.updates, args.reps, args.transitions = 50, 2, 20_000
    torch.set_num_threads(1)
    kept = keep_freed_memory()  # as the robustrl command runs; one process, so d3rlpy gains from it alike
    if args.d3rlpy_path:
        sys.path.insert(0, args.d3rlpy_path)
    try:
        import d3rlpy

        peer: str | None = d3rlpy.__version__
    except ImportError:
        peer = None
    data = _dataset(args.transitions, 0)
    rows = []
    for algo in args.algos.split(","):
        sides = {"robustrl": _ours(algo, data)}
        if peer is not None:
            sides["d3rlpy"] = _d3rlpy(algo, data)
        rates: dict[str, list[float]] = {k: [] for k in sides}
        for step in sides.values():
            for _ in range(args.warmup):
                step()
        for _ in range(args.reps):
            for name, step in sides.items():
                rates[name].append(_rate(step, args.updates))
        row: dict[str, Any] = {"algo": algo, **{f"{k}_updates_per_s": statistics.median(v) for k, v in rates.items()},
                               "samples": rates}  # fmt: skip
        # the share of robustrl's update spent in matrix products bounds any speed-up that keeps the networks
        row["robustrl_matmul_share"] = matmul_share(sides["robustrl"], args.updates)
        if peer is not None:
            row["ratio_vs_d3rlpy"] = row["robustrl_updates_per_s"] / row["d3rlpy_updates_per_s"]
            row["ratio_if_only_matmuls"] = row["ratio_vs_d3rlpy"] / row["robustrl_matmul_share"]
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "samples"}, default=float), flush=True)
    result = {"config": vars(args) | {"out": str(args.out), "batch_size": BATCH, "hidden": [256, 256],
                                      "obs_dim": OBS_DIM, "act_dim": ACT_DIM, "threads": 1,
                                      "malloc_keeps_freed_memory": kept},
              "provenance": provenance() | {"d3rlpy": peer}, "rows": rows}  # fmt: skip
    text = json.dumps(result, indent=2, default=float)
    if args.out is not None:
        args.out.write_text(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
