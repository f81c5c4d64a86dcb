"""Observation defenses vs vanilla PPO on CartPole: training cost relative to vanilla PPO (same run), sa-mdp-v1 minimum.

For each seed, trains vanilla PPO and each defense (default: sa-reg, ATLA, PA-ATLA; any registered defense taking
``eps`` via ``--defenses``) with the same agent-step budget, times each training,
times the suite's adversary training on the vanilla policy, and evaluates every policy with
``robustrl evaluate --suite sa-mdp-v1`` at ε. Prints (and with --out writes) JSON with the resolved settings,
the per-seed numbers and the training-time ratios to vanilla PPO measured in this run.

Usage:
    python benchmarks/bench_defenses.py --quick                  # 1 seed, 60k steps, 32 episodes
    python benchmarks/bench_defenses.py --seeds 0 1 2 3 4 --steps 100000 --out bench_defenses.json
    python benchmarks/bench_defenses.py --quick --defenses sa-reg wocar
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from robustrl.adversarial.learned import AdversaryConfig, train_adversary
from robustrl.adversarial.suite import evaluate_suite
from robustrl.agents.train import TrainConfig
from robustrl.common.io import write_json
from robustrl.common.provenance import provenance
from robustrl.evaluate.config import EvaluateConfig
from robustrl.jobs import train

torch.set_num_threads(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--steps", type=int, default=60_000)
    parser.add_argument("--eps", type=float, default=0.05)
    parser.add_argument("--episodes", type=int, default=32)
    parser.add_argument("--defenses", nargs="+", default=["sa-reg", "atla", "pa-atla"],
                        help="defenses to compare with vanilla PPO (each gets --defense-set eps=EPS)")
    parser.add_argument("--quick", action="store_true", help="one seed")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    seeds = args.seeds[:1] if args.quick else args.seeds
    rows = []
    for seed in seeds:
        times: dict[str, float] = {}
        for defense in ("none", *args.defenses):
            sets = () if defense == "none" else (f"eps={args.eps}",)
            t0 = time.perf_counter()
            res = train(TrainConfig(total_steps=args.steps, eval_every=0, eval_episodes=16, seed=seed,
                                    defense=defense, defense_set=sets))
            times[defense] = time.perf_counter() - t0
            if defense == "none":
                for kind in ("sa-rl", "pa-ad"):
                    t0 = time.perf_counter()
                    train_adversary(res.policy, "CartPole-v1", args.eps, AdversaryConfig(kind=kind, total_steps=60_000))
                    times[f"adversary:{kind}"] = time.perf_counter() - t0
            ev = evaluate_suite(EvaluateConfig("policy", "CartPole-v1", suite="sa-mdp-v1", budgets=(args.eps,),
                                               episodes=args.episodes, bootstrap_reps=200, seed=seed),
                                policy=res.policy)
            rows.append({"seed": seed, "defense": defense, "clean": float(ev.clean.mean),
                         "attacks": {c.label: float(c.mean[0]) for c in ev.threats},
                         "suite_min": float(ev.strongest[0].mean[-1]), "train_s": times[defense]})
        for defense in args.defenses:
            rows.append({"seed": seed, "defense": defense, "train_time_ratio_to_ppo": times[defense] / times["none"]})
        rows.append({"seed": seed, "adversary_train_s": {k: v for k, v in times.items() if k.startswith("adv")}})
    out = {"config": vars(args), "rows": rows, "provenance": provenance()}
    print(json.dumps(out, indent=1))
    if args.out:
        write_json(args.out, out)


if __name__ == "__main__":
    main()
