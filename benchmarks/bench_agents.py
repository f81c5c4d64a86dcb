"""Wall-clock time to a return threshold: robustrl's learners vs Stable-Baselines3 with RL-Zoo hyperparameters.

Tasks (threshold on the mean return of a deterministic evaluation):

* ``ppo``: CartPole-v1, 475 — robustrl PPO preset vs SB3 PPO (zoo: n_envs 8, n_steps 32, batch 256,
  gae_lambda 0.8, gamma 0.98, n_epochs 20, ent_coef 0, lr lin 1e-3, clip lin 0.2, 1e5 steps).
* ``dqn``: CartPole-v1, 475 — robustrl DQN preset (HL-Gauss head) vs SB3 DQN (zoo: lr 2.3e-3, batch 64,
  buffer 1e5, learning_starts 1000, gamma 0.99, target_update_interval 10, train_freq 256,
  gradient_steps 128, exploration_fraction 0.16, final eps 0.04, net [256, 256], 5e4 steps).
* ``sac``: Pendulum-v1, −200 — robustrl SAC preset vs SB3 SAC (zoo: lr 1e-3, SB3 defaults otherwise,
  2e4 steps).

Both sides are evaluated the same way, with robustrl's rollout engine on the native env: ``--eval-episodes``
deterministic episodes every ``eval_every`` env steps (the same for both). The clock counts training only
(evaluation time is excluded on both sides) from the first training step. Runs alternate robustrl / SB3 per
seed so that machine load hits both alike; one torch thread. SB3 runs stop at the zoo step budget or
``--sb3-budget-s`` seconds; a run that never reaches the threshold is reported as censored, and a ratio
computed from censored SB3 runs is a lower bound (``ratio_is_lower_bound``).

Usage::

    python benchmarks/bench_agents.py --seeds 3 --out bench_agents.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any

import torch

import robustrl  # noqa: F401  (sets one torch thread)
from robustrl.agents import TrainConfig, resolve_algo_config, train
from robustrl.common.config import config_to_dict
from robustrl.common.io import write_json
from robustrl.common.provenance import provenance
from robustrl.envs import make_env
from robustrl.rollout import rollout

TASKS: dict[str, dict[str, Any]] = {
    "ppo": {
        "env": "CartPole-v1",
        "threshold": 475.0,
        "eval_every": 5_120,
        "sb3": {
            "algo": "PPO",
            "n_envs": 8,
            "n_timesteps": 100_000,
            "kwargs": {"n_steps": 32, "batch_size": 256, "gae_lambda": 0.8, "gamma": 0.98, "n_epochs": 20,
                       "ent_coef": 0.0, "learning_rate": "lin_0.001", "clip_range": "lin_0.2"},
        },
    },
    "dqn": {
        "env": "CartPole-v1",
        "threshold": 475.0,
        "eval_every": 2_560,
        "sb3": {
            "algo": "DQN",
            "n_envs": 1,
            "n_timesteps": 50_000,
            "kwargs": {"learning_rate": 2.3e-3, "batch_size": 64, "buffer_size": 100_000, "learning_starts": 1000,
                       "gamma": 0.99, "target_update_interval": 10, "train_freq": 256, "gradient_steps": 128,
                       "exploration_fraction": 0.16, "exploration_final_eps": 0.04,
                       "policy_kwargs": {"net_arch": [256, 256]}},
        },
    },
    "sac": {
        "env": "Pendulum-v1",
        "threshold": -200.0,
        "eval_every": 1_000,
        "sb3": {"algo": "SAC", "n_envs": 1, "n_timesteps": 20_000, "kwargs": {"learning_rate": 1e-3}},
    },
}


class SB3Actor:
    """Batched ``act`` over an SB3 model's ``predict`` so robustrl's rollout engine can evaluate it."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.observation_space = model.observation_space
        self.action_space = model.action_space

    def act(self, obs: torch.Tensor, *, deterministic: bool = True, generator: Any = None) -> torch.Tensor:
        action, _ = self.model.predict(obs.cpu().numpy(), deterministic=True)
        t = torch.as_tensor(action)
        return t.long() if not t.is_floating_point() else t.float()


def _sb3_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    out = dict(kwargs)
    for key in ("learning_rate", "clip_range"):
        value = out.get(key)
        if isinstance(value, str) and value.startswith("lin_"):
            start = float(value[4:])
            out[key] = lambda progress, s=start: progress * s  # SB3 progress goes 1 → 0
    return out


def run_sb3(task: dict[str, Any], seed: int, eval_episodes: int, budget_s: float) -> dict[str, Any]:
    """Train SB3 with the zoo settings until the threshold, the step budget or the time budget."""
    import stable_baselines3 as sb3
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    spec = task["sb3"]
    venv = make_vec_env(task["env"], n_envs=spec["n_envs"], seed=seed)
    model = getattr(sb3, spec["algo"])("MlpPolicy", venv, seed=seed, device="cpu", verbose=0,
                                        **_sb3_kwargs(spec["kwargs"]))
    eval_env = make_env(task["env"], eval_episodes, seed=10_000 + seed)
    record: dict[str, Any] = {"seed": seed, "reached": False, "evals": []}

    class Clock(BaseCallback):
        def _on_training_start(self) -> None:
            self.start = time.perf_counter()
            self.eval_time = 0.0
            self.next_eval = task["eval_every"]

        def _on_step(self) -> bool:
            now = time.perf_counter()
            train_time = now - self.start - self.eval_time
            if self.num_timesteps >= self.next_eval:
                while self.next_eval <= self.num_timesteps:
                    self.next_eval += task["eval_every"]
                k = len(record["evals"])
                ret = float(rollout(SB3Actor(self.model), eval_env, eval_episodes, seed=1000 + k).returns.mean())
                record["evals"].append({"step": self.num_timesteps, "train_time": train_time, "return": ret})
                self.eval_time += time.perf_counter() - now
                if ret >= task["threshold"]:
                    record.update(reached=True, time_to_threshold=train_time, steps_to_threshold=self.num_timesteps)
                    return False
            if train_time > budget_s:
                record["stopped_by_time_budget"] = True
                return False
            return True

    clock = Clock()
    model.learn(total_timesteps=spec["n_timesteps"], callback=clock)
    record["train_time"] = time.perf_counter() - clock.start - clock.eval_time
    record["steps"] = int(model.num_timesteps)
    venv.close()
    return record


def run_robustrl(name: str, task: dict[str, Any], seed: int, eval_episodes: int) -> dict[str, Any]:
    """Train robustrl's preset until the threshold or its step budget."""
    cfg = TrainConfig(algo=name, env=task["env"], seed=seed, eval_every=task["eval_every"],  # type: ignore[arg-type]
                      eval_episodes=eval_episodes, stop_at_return=task["threshold"])
    res = train(cfg)
    record: dict[str, Any] = {
        "seed": seed,
        "reached": res.stopped_early or res.final_return >= task["threshold"],
        "train_time": res.train_time,
        "steps": res.steps,
        "evals": [{"step": h.step, "train_time": h.train_time, "return": h.mean_return} for h in res.history],
    }
    hit = next((h for h in res.history if h.mean_return >= task["threshold"]), None)
    if hit is not None:
        record.update(time_to_threshold=hit.train_time, steps_to_threshold=hit.step)
    return record


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    times = [r["time_to_threshold"] if r["reached"] else r["train_time"] for r in runs]
    return {
        "reached": sum(r["reached"] for r in runs),
        "runs": len(runs),
        "median_time_s": statistics.median(times),
        "times_s": times,
        "median_steps": statistics.median(r.get("steps_to_threshold", r["steps"]) for r in runs),
        "censored": [not r["reached"] for r in runs],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default="ppo,dqn,sac", help="comma-separated subset of ppo,dqn,sac")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per side")
    parser.add_argument("--eval-episodes", type=int, default=32, help="episodes per evaluation")
    parser.add_argument("--sb3-budget-s", type=float, default=600.0, help="training-time cap of one SB3 run")
    parser.add_argument("--out", default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    result: dict[str, Any] = {
        "benchmark": "agents: training wall-clock to a return threshold, robustrl vs Stable-Baselines3 (RL Zoo)",
        "provenance": provenance(),
        "args": vars(args),
        "tasks": {},
    }
    try:
        import stable_baselines3

        result["provenance"]["stable_baselines3"] = stable_baselines3.__version__
    except ImportError:  # pragma: no cover
        sys.exit("stable-baselines3 is needed for the peer side: pip install stable-baselines3")
    for name in args.tasks.split(","):
        task = TASKS[name]
        ours_cfg = resolve_algo_config(TrainConfig(algo=name, env=task["env"]))  # type: ignore[arg-type]
        ours, peer = [], []
        for seed in range(args.seeds):
            ours.append(run_robustrl(name, task, seed, args.eval_episodes))
            print(f"[{name}] robustrl seed {seed}: {_short(ours[-1])}", file=sys.stderr, flush=True)
            peer.append(run_sb3(task, seed, args.eval_episodes, args.sb3_budget_s))
            print(f"[{name}] sb3      seed {seed}: {_short(peer[-1])}", file=sys.stderr, flush=True)
        s_ours, s_peer = _summary(ours), _summary(peer)
        ratio = s_peer["median_time_s"] / s_ours["median_time_s"]
        result["tasks"][name] = {
            "env": task["env"],
            "threshold": task["threshold"],
            "eval_every": task["eval_every"],
            "eval_episodes": args.eval_episodes,
            "robustrl": {"config": config_to_dict(ours_cfg), "summary": s_ours, "runs": ours},
            "sb3": {"config": task["sb3"], "summary": s_peer, "runs": peer},
            "speedup_median_time": ratio,
            "ratio_is_lower_bound": any(s_peer["censored"]),
            "ratio_is_upper_bound": any(s_ours["censored"]),
        }
        print(f"[{name}] speed-up (median SB3 time / median robustrl time): {ratio:.1f}x", file=sys.stderr, flush=True)
    text = json.dumps(result, indent=2, default=float)
    print(text)
    if args.out:
        write_json(args.out, result)
    return result


def _short(rec: dict[str, Any]) -> str:
    if rec["reached"]:
        return f"reached at step {rec['steps_to_threshold']} after {rec['time_to_threshold']:.1f}s of training"
    last = rec["evals"][-1]["return"] if rec["evals"] else float("nan")
    return f"not reached in {rec['steps']} steps / {rec['train_time']:.1f}s (last eval {last:.1f})"


if __name__ == "__main__":
    main()
