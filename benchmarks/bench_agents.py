"""Wall-clock time to a return threshold: robustrl's learners vs Stable-Baselines3 with RL-Zoo hyperparameters.

Tasks (threshold on the mean return of a deterministic evaluation):

* ``ppo``: CartPole-v1, 475 — robustrl PPO preset vs SB3 PPO (zoo: n_envs 8, n_steps 32, batch 256,
  gae_lambda 0.8, gamma 0.98, n_epochs 20, ent_coef 0, lr lin 1e-3, clip lin 0.2, 1e5 steps).
* ``dqn``: CartPole-v1, 475 — robustrl DQN preset (HL-Gauss head) vs SB3 DQN (zoo: lr 2.3e-3, batch 64,
  buffer 1e5, learning_starts 1000, gamma 0.99, target_update_interval 10, train_freq 256,
  gradient_steps 128, exploration_fraction 0.16, final eps 0.04, net [256, 256], 5e4 steps).
* ``ppo-hopper``: Hopper-v5, 2410 (RL-Zoo's 1M return) — robustrl's MuJoCo PPO preset vs SB3 PPO with RL-Zoo's
  Hopper setting (VecNormalize obs + reward, n_envs 1, n_steps 2048, batch 64, 10 epochs, lr 3e-4, 1e6 steps);
  SB3 is evaluated on raw observations through its VecNormalize statistics.
* ``sac``: Pendulum-v1, −200 — robustrl SAC preset vs SB3 SAC (zoo: lr 1e-3, SB3 defaults otherwise,
  2e4 steps).

Both sides are evaluated the same way, with robustrl's rollout engine on the native env: ``--eval-episodes``
deterministic episodes every ``eval_every`` env steps (the same for both). The clock counts training only
(evaluation time is excluded on both sides) from the first training step. Runs alternate robustrl / SB3 per
seed so that machine load hits both alike; one torch thread. SB3 runs stop at the zoo step budget or
``--sb3-budget-s`` seconds; a run that never reaches the threshold is reported as censored, and a ratio
computed from censored SB3 runs is a lower bound (``ratio_is_lower_bound``).

Update-speed rows (``--tasks sac-updates,td3-updates``): gradient updates per second of robustrl's SAC / TD3
update (fused critic ensemble, one backward and one fused Adam step per update) against SB3 2.9.2's
``model.train(gradient_steps, batch_size)`` with the same networks (256-256 ReLU actor and twin critics), batch
256 and Hopper-v5 shapes, on the same replay contents (10k uniform random transitions), one torch thread.
Each side runs ``--update-reps`` timed blocks of ``--update-steps`` updates after a warm-up, alternating
robustrl / SB3; the row reports the median updates/s of each side and their ratio, and the share of robustrl's
update time spent in matrix products (``matmul_share.py``): the ratio divided by it is the ceiling of any
speed-up with the same networks, batch and float32.

Throughput row (``--tasks ppo-hopper-steps``): training env steps per second of robustrl's PPO Hopper-v5
preset against SB3 PPO with the same settings (VecNormalize obs + reward, n_steps 2048 on 1 env, batch 64,
10 epochs, lr 3e-4, 64-64 tanh), each for ``--ppo-steps`` env steps (a whole number of 2048-step rollouts),
no evaluation, one torch thread: the wall-clock of 1M steps extrapolated from it is the row's estimate.

Usage::

    python benchmarks/bench_agents.py --seeds 3 --out bench_agents.json
    python benchmarks/bench_agents.py --tasks sac-updates,td3-updates --out bench_updates.json
    python benchmarks/bench_agents.py --tasks ppo-hopper-steps --ppo-steps 40960 --out bench_ppo_steps.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from typing import Any

import torch
from matmul_share import matmul_share

import robustrl  # noqa: F401
from robustrl.agents import ALGORITHMS, TrainConfig, resolve_algo_config, train
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
    "ppo-hopper": {
        "algo": "ppo",
        "env": "Hopper-v5",
        "threshold": 2410.0,
        "eval_every": 50_000,
        "sb3": {
            "algo": "PPO",
            "n_envs": 1,
            "n_timesteps": 1_000_000,
            "normalize": True,
            "kwargs": {"n_steps": 2048, "batch_size": 64, "n_epochs": 10, "learning_rate": 3e-4, "gamma": 0.99,
                       "gae_lambda": 0.95, "clip_range": 0.2, "ent_coef": 0.0},
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

    def __init__(self, model: Any, vec_normalize: Any = None) -> None:
        self.model = model
        self.vec_normalize = vec_normalize
        self.observation_space = model.observation_space
        self.action_space = model.action_space

    def act(self, obs: torch.Tensor, *, deterministic: bool = True, generator: Any = None) -> torch.Tensor:
        x = obs.cpu().numpy()
        if self.vec_normalize is not None:  # the statistics the model trains under, not updated here
            x = self.vec_normalize.normalize_obs(x)
        action, _ = self.model.predict(x, deterministic=True)
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
    norm = None
    if spec.get("normalize"):
        from stable_baselines3.common.vec_env import VecNormalize

        venv = norm = VecNormalize(venv, norm_obs=True, norm_reward=True, clip_obs=10.0, gamma=spec["kwargs"]["gamma"])
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
                ret = float(rollout(SB3Actor(self.model, norm), eval_env, eval_episodes, seed=1000 + k).returns.mean())
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
    cfg = TrainConfig(algo=task.get("algo", name), env=task["env"], seed=seed, eval_every=task["eval_every"],  # type: ignore[arg-type]
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


UPDATE_TASKS: dict[str, dict[str, Any]] = {
    "sac-updates": {"algo": "sac", "env": "Hopper-v5", "sb3": "SAC", "sb3_kwargs": {"learning_rate": 3e-4}},
    "td3-updates": {"algo": "td3", "env": "Hopper-v5", "sb3": "TD3",
                    "sb3_kwargs": {"learning_rate": 1e-3, "policy_delay": 2, "target_policy_noise": 0.2,
                                   "target_noise_clip": 0.5}},
}
"""Update-speed rows: robustrl's MuJoCo preset (256-256 ReLU, batch 256) against the same SB3 setting."""

_FILL = 10_000


def _time_blocks(update: Any, steps: int, reps: int) -> list[float]:
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        update(steps)
        out.append(steps / (time.perf_counter() - t0))
    return out


def bench_updates(name: str, steps: int, reps: int) -> dict[str, Any]:
    """Median gradient updates/s of robustrl's and SB3's update step at the same sizes (one thread)."""
    import numpy as np
    import stable_baselines3 as sb3
    from stable_baselines3.common.logger import Logger

    task = UPDATE_TASKS[name]
    base_cfg: Any = resolve_algo_config(TrainConfig(algo=task["algo"], env=task["env"]))  # type: ignore[arg-type]
    ours_cfg: Any = dataclasses.replace(base_cfg, learning_starts=_FILL)
    agent_cls = ALGORITHMS[task["algo"]][0]
    agent = agent_cls(make_env(task["env"], 1, seed=0), ours_cfg, seed=0)
    agent.collect(_FILL)  # uniform random actions below learning_starts
    venv = make_env(task["env"], 1, seed=0)  # only for its spaces
    import gymnasium as gym

    gym_env = gym.make(task["env"])
    model = getattr(sb3, task["sb3"])(
        "MlpPolicy", gym_env, seed=0, device="cpu", verbose=0, batch_size=ours_cfg.batch_size,
        buffer_size=ours_cfg.buffer_size, learning_starts=0, gamma=ours_cfg.gamma, tau=ours_cfg.tau,
        policy_kwargs={"net_arch": list(ours_cfg.hidden)}, **task["sb3_kwargs"],
    )
    model.set_logger(Logger(folder=None, output_formats=[]))
    buf = agent.buffer
    n = buf.size
    for i in range(0, n, 1000):
        j = min(n, i + 1000)
        for k in range(i, j):
            model.replay_buffer.add(
                buf.obs[k : k + 1].numpy(), buf.next_obs[k : k + 1].numpy(), buf.actions[k : k + 1].numpy(),
                buf.rewards[k : k + 1].numpy(), buf.terminated[k : k + 1].numpy().astype(np.float32), [{}],
            )
    venv.close()

    def sb3_update(g: int) -> None:
        model.train(gradient_steps=g, batch_size=ours_cfg.batch_size)

    def ours_update(g: int) -> None:
        agent.update(g)

    ours_update(20)
    sb3_update(20)
    ours_rates: list[float] = []
    sb3_rates: list[float] = []
    for _ in range(reps):
        ours_rates += _time_blocks(ours_update, steps, 1)
        sb3_rates += _time_blocks(sb3_update, steps, 1)
    o, p = statistics.median(ours_rates), statistics.median(sb3_rates)
    share = matmul_share(ours_update, max(1, steps // 10), 10)
    return {
        "env": task["env"],
        "batch_size": ours_cfg.batch_size,
        "hidden": list(ours_cfg.hidden),
        "update_steps_per_block": steps,
        "robustrl": {"config": config_to_dict(ours_cfg), "updates_per_s": ours_rates, "median": o},
        "sb3": {"algo": task["sb3"], "kwargs": task["sb3_kwargs"], "updates_per_s": sb3_rates, "median": p},
        "speedup_updates_per_s": o / p,
        # the ratio if robustrl spent no time outside matrix products: the ceiling with the same networks
        "robustrl_matmul_share": share,
        "speedup_if_only_matmuls": o / p / share,
    }


def bench_ppo_steps(steps: int) -> dict[str, Any]:
    """Env steps/s of robustrl's PPO Hopper-v5 preset and of SB3 PPO with the same settings."""
    import stable_baselines3 as sb3
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    env_id = "Hopper-v5"
    cfg = resolve_algo_config(TrainConfig(algo="ppo", env=env_id, total_steps=1_000_000))
    agent = ALGORITHMS["ppo"][0](make_env(env_id, cfg.num_envs, seed=0), cfg, seed=0)
    t0 = time.perf_counter()
    while agent.steps < steps:
        agent.iterate()
    ours = agent.steps / (time.perf_counter() - t0)
    venv = VecNormalize(make_vec_env(env_id, n_envs=1, seed=0), norm_obs=True, norm_reward=True, clip_obs=10.0)
    model = sb3.PPO("MlpPolicy", venv, n_steps=2048, batch_size=64, n_epochs=10, learning_rate=3e-4, gamma=0.99,
                    gae_lambda=0.95, clip_range=0.2, seed=0, device="cpu", verbose=0)
    t0 = time.perf_counter()
    model.learn(total_timesteps=steps)
    peer = model.num_timesteps / (time.perf_counter() - t0)
    venv.close()
    return {
        "env": env_id, "steps": steps, "robustrl": {"config": config_to_dict(cfg), "steps_per_s": ours},
        "sb3": {"steps_per_s": peer, "steps": int(model.num_timesteps)}, "speedup_steps_per_s": ours / peer,
        "extrapolated_1M_s": {"robustrl": 1e6 / ours, "sb3": 1e6 / peer},
    }


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
    parser.add_argument("--tasks", default="ppo,dqn,sac",
                        help="comma-separated subset of ppo,dqn,sac,ppo-hopper,sac-updates,td3-updates,"
                             "ppo-hopper-steps")
    parser.add_argument("--ppo-steps", type=int, default=40_960, help="env steps per side (ppo-hopper-steps)")
    parser.add_argument("--update-steps", type=int, default=300, help="updates per timed block (update rows)")
    parser.add_argument("--update-reps", type=int, default=5, help="timed blocks per side (update rows)")
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
        if name == "ppo-hopper-steps":
            row = bench_ppo_steps(args.ppo_steps)
            result["tasks"][name] = row
            ours_s, peer_s = row["robustrl"]["steps_per_s"], row["sb3"]["steps_per_s"]
            print(f"[{name}] robustrl {ours_s:.0f} steps/s, SB3 {peer_s:.0f} steps/s: {ours_s / peer_s:.2f}x",
                  file=sys.stderr, flush=True)
            continue
        if name in UPDATE_TASKS:
            row = bench_updates(name, args.update_steps, args.update_reps)
            result["tasks"][name] = row
            print(f"[{name}] robustrl {row['robustrl']['median']:.0f} updates/s, SB3 {row['sb3']['median']:.0f} "
                  f"updates/s: {row['speedup_updates_per_s']:.2f}x", file=sys.stderr, flush=True)
            continue
        task = TASKS[name]
        ours_cfg = resolve_algo_config(TrainConfig(algo=task.get("algo", name), env=task["env"]))  # type: ignore[arg-type]
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
