"""Learning curves of a study's training cells (or of run folders), beside published reference returns.

Reads each run folder's ``config.json`` (env, algo, defense, seed) and ``eval.json`` (the evaluation history;
runs still training are drawn up to their last evaluation), draws one panel per env with one thin line per seed
and the median over seeds per learner (the algorithm, with its defense and ``+lstm`` where it has them), and
dashed horizontal lines at the reference returns. Writes a PNG and the curves as JSON (the small table to
commit). ``--training-returns`` draws the training episodes' returns instead (``result.json``'s
``train_curve``: runs that never evaluated, such as a study's ``eval_every = 0`` cells, have one).

    python benchmarks/plot_learning_curves.py runs/mujoco_ppo --out docs/figures/mujoco_ppo_curves.png

``--with CURVES.json`` adds the curves an earlier call wrote (run folders are not kept from one machine to the
next); a run found again in a folder (same algo, env and seed) replaces its earlier record.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import EngFormatter

RL_ZOO_1M: dict[tuple[str, str], float] = {
    ("ppo", "Hopper-v5"): 2410, ("ppo", "Walker2d-v5"): 3479, ("ppo", "HalfCheetah-v5"): 5819, ("ppo", "Ant-v5"): 1327,
    ("sac", "Hopper-v5"): 2326, ("sac", "Walker2d-v5"): 3863, ("sac", "HalfCheetah-v5"): 9535, ("sac", "Ant-v5"): 4616,
    ("td3", "Hopper-v5"): 3606, ("td3", "Walker2d-v5"): 4718, ("td3", "HalfCheetah-v5"): 9656, ("td3", "Ant-v5"): 5813,
}  # fmt: skip
"""RL-Zoo's published single-run returns at 1M steps (the issue's targets), by (algo, env)."""


def run_folders(paths: list[Path], *, training_returns: bool = False) -> list[Path]:
    """Run folders under ``paths`` (a study folder's artefacts, or run folders themselves) with curves to draw."""
    found: list[Path] = []
    for p in paths:
        candidates = [p] if (p / "config.json").is_file() else sorted(p.glob("**/config.json"))
        found += [c if c.is_dir() else c.parent for c in candidates]
    return [f for f in found if (f / ("result.json" if training_returns else "eval.json")).is_file()]


def learner(config: dict[str, Any]) -> str:
    """``ppo``, ``ppo+sa-reg``, ``ppo+atla+lstm``...: the algorithm with its defense and recurrence."""
    name = config["train"]["algo"]
    defense = (config.get("defense") or {}).get("name", "none")
    if defense != "none":
        name += f"+{defense}"
    if (config.get("algo") or {}).get("lstm_size"):
        name += "+lstm"
    return str(name)


def load_curves(folders: list[Path], *, training_returns: bool = False) -> list[dict[str, Any]]:
    """One record per run: algo (the learner's label), env, seed, finished, steps and mean returns."""
    out = []
    for f in folders:
        config = json.loads((f / "config.json").read_text())
        cfg = config["train"]
        if training_returns:
            hist = json.loads((f / "result.json").read_text()).get("train_curve", [])
            train_time = math.nan
        else:
            hist = json.loads((f / "eval.json").read_text())
            train_time = hist[-1]["train_time"] if hist else math.nan
        if not hist:
            continue
        out.append({
            "algo": learner(config), "env": cfg["env"], "seed": cfg["seed"], "finished": (f / "result.json").is_file(),
            "steps": [r["step"] for r in hist], "returns": [r["mean_return"] for r in hist], "train_time": train_time,
        })  # fmt: skip
    return sorted(out, key=lambda r: (r["env"], r["algo"], r["seed"]))


def load_curves_json(path: Path) -> list[dict[str, Any]]:
    """The records of a curves JSON this script wrote; a clear error for anything else."""
    try:
        records = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise SystemExit(f"--with {str(path)!r}: not a readable curves JSON ({err})") from err
    keys = {"algo", "env", "seed", "steps", "returns"}
    if not isinstance(records, list) or not all(isinstance(r, dict) and keys <= set(r) for r in records):
        raise SystemExit(f"--with {str(path)!r}: expected a list of records with {sorted(keys)}")
    return records


def merge_curves(earlier: list[list[dict[str, Any]]], found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Earlier records and the ones found now, one per (algo, env, seed), a later source winning."""
    merged: dict[tuple[str, str, int], dict[str, Any]] = {}
    for record in [r for records in earlier for r in records] + found:
        merged[(record["algo"], record["env"], record["seed"])] = record
    return sorted(merged.values(), key=lambda r: (r["env"], r["algo"], r["seed"]))


def plot(curves: list[dict[str, Any]], out: Path, *, ylabel: str = "deterministic evaluation return") -> None:
    """One panel per env: seeds thin, the median over the seeds' common steps thick, references dashed."""
    envs = sorted({c["env"] for c in curves})
    fig, axes = plt.subplots(1, len(envs), figsize=(4.2 * len(envs), 3.4), squeeze=False)
    colours = {"ppo": "tab:blue", "sac": "tab:orange", "td3": "tab:green"}
    spare = iter(["tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:gray"])
    for ax, env in zip(axes[0], envs):
        for algo in sorted({c["algo"] for c in curves if c["env"] == env}):
            runs = [c for c in curves if c["env"] == env and c["algo"] == algo]
            colour = colours.get(algo) or colours.setdefault(algo, next(spare, "tab:gray"))
            for r in runs:
                ax.plot(r["steps"], r["returns"], color=colour, lw=0.8, alpha=0.45)
            n = min(len(r["steps"]) for r in runs)
            if len(runs) > 1 and n > 0:
                med = np.median(np.array([r["returns"][:n] for r in runs]), axis=0)
                ax.plot(runs[0]["steps"][:n], med, color=colour, lw=2.2, label=f"{algo} median of {len(runs)}")
            else:
                ax.plot([], [], color=colour, lw=2.2, label=f"{algo} ({len(runs)} run)")
            ref = RL_ZOO_1M.get((algo, env))
            if ref is not None:
                ax.axhline(ref, color=colour, ls="--", lw=1.0, label=f"RL-Zoo {algo} at 1M: {ref:.0f}")
        ax.set_title(env)
        ax.set_xlabel("environment steps")
        ax.set_ylabel(ylabel)
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))  # 250k, 1M
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="*", type=Path, help="study folders or run folders")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write (the JSON goes beside it)")
    parser.add_argument("--with", dest="earlier", type=Path, action="append", default=[],
                        help="curves JSON written by an earlier call, drawn too (repeatable)")
    parser.add_argument("--training-returns", action="store_true",
                        help="draw result.json's train_curve (the training episodes' returns) instead of eval.json")
    args = parser.parse_args(argv)
    tr = args.training_returns
    curves = merge_curves([load_curves_json(p) for p in args.earlier],
                          load_curves(run_folders(args.paths, training_returns=tr), training_returns=tr))  # fmt: skip
    if not curves:
        what = "a train_curve in result.json" if tr else "eval.json"
        raise SystemExit(f"no run folders with {what} under {[str(p) for p in args.paths]}")
    plot(curves, args.out, ylabel="training episode return (last 100)" if tr else "deterministic evaluation return")
    args.out.with_suffix(".json").write_text(json.dumps(curves, indent=1) + "\n")
    for c in curves:
        state = "finished" if c["finished"] else "running"
        print(f"{c['algo']} {c['env']} seed {c['seed']}: {c['returns'][-1]:.0f} at {c['steps'][-1]} steps ({state})")
    return curves


if __name__ == "__main__":
    main()
