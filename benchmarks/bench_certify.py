"""Smoothed CartPole episodes per second: certify's batched sampler vs the published scripts' naive loop.

Peer (measured in the same run, same policy, same σ): the loop the Policy Smoothing scripts use — one
Gymnasium ``CartPole-v1`` env, one policy call per step on a single observation, NumPy Gaussian noise.
Ours: :func:`robustrl.certify.sample_smoothed_returns` on the batched native env (all copies at once on
the shared rollout engine). With CUDA, the GPU path is measured too (``--gpu-num-envs`` copies at once).

The policy is a 64×64 tanh ``ActorCriticPolicy`` whose weights implement a balancing linear controller
(so episodes are long, as with a trained policy; the network cost is that of any 64×64 MLP).

Usage:
    python benchmarks/bench_certify.py                    # CPU: naive vs batched
    python benchmarks/bench_certify.py --episodes 20000   # more batched episodes
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import robustrl
from robustrl.certify import sample_smoothed_returns
from robustrl.common.provenance import provenance
from robustrl.policies import ActorCriticPolicy

torch.set_num_threads(1)  # one thread for every clock in this benchmark (robustrl sets none on import)


def balancing_mlp(observation_space: gym.Space[Any], action_space: gym.Space[Any]) -> ActorCriticPolicy:
    """A 64×64 MLP policy whose weights push the cart towards balance: right iff w·obs > 0."""
    pi = ActorCriticPolicy(observation_space, action_space)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        l1, l2 = pi.mlp_extractor.policy_net[0], pi.mlp_extractor.policy_net[2]
        for p in (l1.weight, l1.bias, l2.weight, l2.bias, pi.action_net.weight, pi.action_net.bias):
            p.copy_(1e-4 * torch.randn(p.shape, generator=gen))  # dense, tiny: every unit still computes
        l1.weight[0] = 0.1 * torch.tensor([0.1, 0.5, 5.0, 1.0])
        l2.weight[0, 0] = 5.0
        pi.action_net.weight[0, 0], pi.action_net.weight[1, 0] = -1.0, 1.0
    return pi


def sb3_predictor(pi: ActorCriticPolicy) -> Any:
    """The same weights in a Stable-Baselines3 PPO model (what the published scripts call per step)."""
    from stable_baselines3 import PPO

    model = PPO("MlpPolicy", gym.make("CartPole-v1"), device="cpu", seed=0)
    model.policy.load_state_dict(pi.state_dict())

    def act(noisy: np.ndarray) -> int:
        action, _ = model.predict(noisy.astype(np.float32), deterministic=True)
        return int(action)

    return act


def torch_predictor(pi: ActorCriticPolicy) -> Any:
    """The lean peer: one direct torch call on one observation."""

    def act(noisy: np.ndarray) -> int:
        with torch.no_grad():
            return int(pi.act(torch.as_tensor(noisy, dtype=torch.float32)[None])[0])

    return act


def naive_loop(act: Any, sigma: float, episodes: int, seed: int) -> dict[str, float]:
    """The published scripts' loop: one env, one policy call per step, NumPy noise."""
    env = gym.make("CartPole-v1")
    rng = np.random.default_rng(seed)
    returns, lengths = [], []
    t0, c0 = time.perf_counter(), time.process_time()
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        done, total, steps = False, 0.0, 0
        while not done:
            action = act(obs + rng.normal(0.0, sigma, size=obs.shape))
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            steps += 1
            done = terminated or truncated
        returns.append(total)
        lengths.append(steps)
    dt, cpu_dt = time.perf_counter() - t0, time.process_time() - c0
    env.close()
    return {
        "episodes": episodes,
        "seconds": dt,
        "cpu_seconds": cpu_dt,
        "episodes_per_s": episodes / dt,
        "episodes_per_cpu_s": episodes / cpu_dt,
        "steps_per_s": sum(lengths) / dt,
        "mean_return": float(np.mean(returns)),
        "mean_length": float(np.mean(lengths)),
    }


def batched(
    pi: ActorCriticPolicy, sigma: float, episodes: int, num_envs: int, seed: int, device: str
) -> dict[str, Any]:
    """certify's sampler: all copies at once on the shared rollout engine."""
    pi = pi.to(device)
    env = robustrl.make_env("CartPole-v1", num_envs, device=device, seed=seed)
    if device != "cpu":
        torch.cuda.synchronize()
    t0, c0 = time.perf_counter(), time.process_time()
    res = sample_smoothed_returns(pi, env, episodes, sigma=sigma, seed=seed)
    if device != "cpu":
        torch.cuda.synchronize()
    dt, cpu_dt = time.perf_counter() - t0, time.process_time() - c0
    env.close()
    return {
        "episodes": episodes,
        "num_envs": num_envs,
        "device": device,
        "seconds": dt,
        "cpu_seconds": cpu_dt,
        "episodes_per_s": episodes / dt,
        "episodes_per_cpu_s": episodes / cpu_dt,
        "steps_per_s": float(res.lengths.sum()) / dt,
        "mean_return": float(res.returns.mean()),
        "mean_length": float(res.lengths.double().mean()),
    }


def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest of repeated identical runs (the least disturbed by other load on the machine)."""
    out = dict(min(runs, key=lambda r: r["seconds"]))
    out["repeats"] = len(runs)
    out["seconds_all"] = [r["seconds"] for r in runs]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sigma", type=float, default=0.2)
    parser.add_argument("--naive-episodes", type=int, default=50)
    parser.add_argument("--episodes", type=int, default=10_000)
    parser.add_argument("--num-envs", type=int, default=1024)
    parser.add_argument("--gpu-num-envs", type=int, default=1 << 20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    probe = robustrl.make_env("CartPole-v1", 1)
    pi = balancing_mlp(probe.observation_space, probe.action_space)
    probe.close()
    sb3_act, torch_act = sb3_predictor(pi), torch_predictor(pi)
    batched(pi, args.sigma, args.num_envs, args.num_envs, args.seed, "cpu")  # warm-up
    runs: dict[str, list[dict[str, Any]]] = {"sb3": [], "torch": [], "cpu": []}
    for _ in range(args.repeats):  # interleaved, so that load from other processes hits all alike
        runs["sb3"].append(naive_loop(sb3_act, args.sigma, args.naive_episodes, args.seed))
        runs["torch"].append(naive_loop(torch_act, args.sigma, args.naive_episodes, args.seed))
        runs["cpu"].append(batched(pi, args.sigma, args.episodes, args.num_envs, args.seed, "cpu"))
    naive, lean, cpu = best(runs["sb3"]), best(runs["torch"]), best(runs["cpu"])
    out: dict[str, Any] = {
        "benchmark": "certify smoothed-episode sampler",
        "config": vars(args),
        "seed": args.seed,
        "policy": "ActorCriticPolicy 64x64 tanh (balancing controller weights)",
        "naive_sb3_predict": naive,
        "naive_torch_call": lean,
        "cpu": cpu,
        "cpu_speedup_vs_naive_sb3": cpu["episodes_per_s"] / naive["episodes_per_s"],
        "cpu_steps_speedup_vs_naive_sb3": cpu["steps_per_s"] / naive["steps_per_s"],
        "cpu_speedup_vs_naive_torch": cpu["episodes_per_s"] / lean["episodes_per_s"],
        "cpu_speedup_vs_naive_sb3_process_time": cpu["episodes_per_cpu_s"] / naive["episodes_per_cpu_s"],
        "cpu_speedup_vs_naive_torch_process_time": cpu["episodes_per_cpu_s"] / lean["episodes_per_cpu_s"],
    }
    if torch.cuda.is_available():
        batched(pi, args.sigma, args.gpu_num_envs, args.gpu_num_envs, args.seed, "cuda")  # warm-up
        gpu = best([batched(pi, args.sigma, args.gpu_num_envs, args.gpu_num_envs, args.seed + r, "cuda")
                    for r in range(args.repeats)])
        out["gpu"] = gpu
        out["gpu_speedup_vs_naive_sb3"] = gpu["episodes_per_s"] / naive["episodes_per_s"]
    out["provenance"] = provenance()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
