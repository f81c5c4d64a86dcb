"""Episodes per second under PGD-10 on CartPole: batched rollout engine vs a plain Gymnasium loop.

Ours: :func:`robustrl.rollout` on the native batched CartPole with ``N`` copies and the
``make_threat("pgd", ε, steps=10)`` obs transform (every copy attacked at once). Peer, measured in the same
run with the same policy and the same attack function: one Gymnasium ``CartPole-v1`` env, one observation at
a time — ``pgd(policy, obs[None], ε, ...)`` then ``policy.act`` on that one observation, per step.

The policy is a PPO ``ActorCriticPolicy`` (64×64 tanh) trained here with the test suite's seeded config
(a few seconds). With ε = 0.05 it keeps balancing under attack most of the time, so episodes are long and
both sides run the same kind of episodes (their mean returns are printed).

Usage:
    python benchmarks/bench_attacks.py                       # N = 1024, 8 loop episodes
    python benchmarks/bench_attacks.py --loop-episodes 4 --out bench_attacks.json
    python benchmarks/bench_attacks.py --policy ppo.zip --epsilon 0.1
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass

import gymnasium as gym
import numpy as np
import torch

import robustrl
from robustrl.agents import TrainConfig, train
from robustrl.common.io import write_json
from robustrl.common.provenance import provenance
from robustrl.rollout import rollout
from robustrl.threats import PGDConfig, make_threat, pgd

torch.set_num_threads(1)  # one thread for every clock in this benchmark (robustrl sets none on import)


@dataclass(frozen=True)
class BenchConfig:
    """What the benchmark runs."""

    num_envs: int = 1024
    """Batched copies = batched episodes."""
    loop_episodes: int = 8
    """Episodes of the one-env Gymnasium loop."""
    epsilon: float = 0.05
    """ℓ∞ budget of PGD."""
    steps: int = 10
    """PGD steps."""
    seed: int = 0
    """Seed of training, the env and the attacks."""
    policy: str = ""
    """A saved CartPole policy to attack instead of training one."""


def trained_policy(seed: int) -> torch.nn.Module:
    """The CartPole PPO the tests use (``tests/conftest.py::CARTPOLE_PPO``)."""
    cfg = TrainConfig(
        algo="ppo", env="CartPole-v1", seed=seed, total_steps=200_000, eval_every=5_120, eval_episodes=32,
        stop_at_return=475.0,
    )  # fmt: skip
    return train(cfg).policy


def batched(policy: torch.nn.Module, cfg: BenchConfig) -> dict[str, float]:
    env = robustrl.make_env("CartPole-v1", cfg.num_envs, seed=cfg.seed)
    threat = make_threat("pgd", cfg.epsilon, steps=cfg.steps)
    start = time.perf_counter()
    res = rollout(policy, env, cfg.num_envs, seed=cfg.seed, obs_transform=threat)
    seconds = time.perf_counter() - start
    return {
        "episodes": cfg.num_envs,
        "seconds": seconds,
        "episodes_per_s": cfg.num_envs / seconds,
        "steps_per_s": float(res.lengths.sum()) / seconds,
        "mean_return": float(res.returns.mean()),
    }


def gym_loop(policy: torch.nn.Module, cfg: BenchConfig) -> dict[str, float]:
    env = gym.make("CartPole-v1")
    gen = torch.Generator().manual_seed(cfg.seed)
    pgd_cfg = PGDConfig(steps=cfg.steps)
    returns, steps = [], 0
    start = time.perf_counter()
    for ep in range(cfg.loop_episodes):
        obs, _ = env.reset(seed=cfg.seed + ep)
        total, done = 0.0, False
        while not done:
            adv = pgd(policy, torch.as_tensor(obs)[None], cfg.epsilon, gen, pgd_cfg)
            with torch.no_grad():
                action = int(policy.act(adv)[0])
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            steps += 1
            done = terminated or truncated
        returns.append(total)
    seconds = time.perf_counter() - start
    return {
        "episodes": cfg.loop_episodes,
        "seconds": seconds,
        "episodes_per_s": cfg.loop_episodes / seconds,
        "steps_per_s": steps / seconds,
        "mean_return": float(np.mean(returns)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for name, default in asdict(BenchConfig()).items():
        parser.add_argument("--" + name.replace("_", "-"), type=type(default), default=default)
    parser.add_argument("--out", default=None, help="also write the JSON here")
    args = vars(parser.parse_args())
    out = args.pop("out")
    cfg = BenchConfig(**args)
    policy = robustrl.load_policy(cfg.policy) if cfg.policy else trained_policy(cfg.seed)
    ours = batched(policy, cfg)
    peer = gym_loop(policy, cfg)
    report = {
        "benchmark": "attacks",
        "config": asdict(cfg),
        "seed": cfg.seed,
        "ours": {"name": "rollout engine, batched PGD", **ours},
        "peer": {"name": "Gymnasium loop, one observation at a time", **peer},
        "ratio_episodes_per_s": ours["episodes_per_s"] / peer["episodes_per_s"],
        "ratio_steps_per_s": ours["steps_per_s"] / peer["steps_per_s"],
        "provenance": provenance(),
    }
    print(json.dumps(report, indent=2))
    if out:
        write_json(out, report)


if __name__ == "__main__":
    main()
