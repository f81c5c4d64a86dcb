"""Env-steps per second of robustrl's native CartPole against Gymnasium's vector envs, same run, same machine.

CPU section: native CartPole-v1 (eager, which on CPU is the NumPy kernel; eager without value checks, as
the rollout engine runs it; ``compile=True``) against
``gymnasium.envs.classic_control.cartpole.CartPoleVectorEnv`` (NumPy, batched) and
``gymnasium.vector.SyncVectorEnv`` (one Python env per copy) at several ``N``, random actions pre-generated.
Contenders are measured in interleaved rounds; each keeps its best round. Both wall-clock and thread CPU time
are recorded: on a shared machine CPU time is the fairer clock (a descheduled process does not count).

CUDA section (only with CUDA, or on CPU with ``--cuda-smoke``): steps/s at ``N = 2**20`` with a 64×64 MLP
policy in the loop, many steps captured in one CUDA graph and replayed.

Usage:
    python benchmarks/bench_envs.py --out bench_envs.json
    python benchmarks/bench_envs.py --sizes 1024 --rounds 3            # quick
    python benchmarks/bench_envs.py --cuda-smoke --sizes 64 --rounds 1 # CUDA-section logic on CPU
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from robustrl.common.io import write_json
from robustrl.common.provenance import provenance
from robustrl.envs import make_env

torch.set_num_threads(1)  # one thread for every clock in this benchmark (robustrl sets none on import)

log = logging.getLogger("bench_envs")

Stepper = Callable[[int], None]


def _native(n: int, actions: torch.Tensor, **kwargs: Any) -> Stepper:
    env = make_env("CartPole-v1", n, seed=0, **kwargs)
    env.reset()

    def step(t: int) -> None:
        env.step(actions[t])

    return step


def _gym_vector(n: int, actions: np.ndarray) -> Stepper:
    from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv

    env = CartPoleVectorEnv(num_envs=n)
    env.reset(seed=0)

    def step(t: int) -> None:
        env.step(actions[t])

    return step


def _gym_sync(n: int, actions: np.ndarray) -> Stepper:
    import gymnasium as gym

    env = gym.make_vec(
        "CartPole-v1",
        n,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP},
    )
    env.reset(seed=0)

    def step(t: int) -> None:
        env.step(actions[t])

    return step


def _time(step: Stepper, first: int, steps: int) -> tuple[float, float]:
    """(wall seconds, thread CPU seconds) for ``steps`` calls."""
    w0, c0 = time.perf_counter(), time.thread_time()
    for t in range(first, first + steps):
        step(t)
    return time.perf_counter() - w0, time.thread_time() - c0


def _contenders(n: int, compile: bool, sync_max: int) -> dict[str, Callable[[torch.Tensor, np.ndarray], Stepper]]:
    """Factories ``(torch actions, numpy actions) -> stepper`` of every contender at size ``n``."""
    out: dict[str, Callable[[torch.Tensor, np.ndarray], Stepper]] = {
        "native": lambda a, an: _native(n, a),
        "native_no_checks": lambda a, an: _native(n, a, validate_actions=False),
        "gym_CartPoleVectorEnv": lambda a, an: _gym_vector(n, an),
    }
    if compile:
        out["native_compiled"] = lambda a, an: _native(n, a, validate_actions=False, compile=True)
        # Opt-in float32 state: fastest, but not bit-faithful to Gymnasium's float64 maths.
        out["native_compiled_float32"] = lambda a, an: _native(
            n, a, validate_actions=False, compile=True, dtype=torch.float32
        )
    if n <= sync_max:
        out["gym_SyncVectorEnv"] = lambda a, an: _gym_sync(n, an)
    return out


def bench_cpu(sizes: list[int], rounds: int, seconds: float, compile: bool, sync_max: int) -> list[dict[str, Any]]:
    """Interleaved rounds of every contender at every size; steps/s from each contender's best round."""
    out = []
    for n in sizes:
        gen = torch.Generator().manual_seed(n)
        contenders = _contenders(n, compile, sync_max)
        # Calibrate the steps per round on the NumPy vector env (about `seconds` each).
        probe_actions = torch.randint(0, 2, (64, n), generator=gen)
        probe = _gym_vector(n, probe_actions.numpy())
        wall, _ = _time(probe, 0, 64)
        steps = max(20, int(seconds / max(wall / 64, 1e-7)))
        warm = 20
        actions = torch.randint(0, 2, (warm + steps * rounds, n), generator=gen)
        actions_np = actions.numpy()
        steppers: dict[str, Stepper] = {}
        compile_s = None
        for name, make in contenders.items():
            stepper = make(actions, actions_np)
            t0 = time.perf_counter()
            for t in range(warm):  # warm-up (and compilation for native_compiled)
                stepper(t)
            if name == "native_compiled":
                compile_s = time.perf_counter() - t0  # includes Inductor's C++ build (cached afterwards)
            steppers[name] = stepper
        best: dict[str, list[float]] = {k: [float("inf"), float("inf")] for k in steppers}
        for r in range(rounds):
            for name, stepper in steppers.items():
                s = steps if name != "gym_SyncVectorEnv" else max(3, steps // max(1, n // 64))
                wall, cpu = _time(stepper, warm + r * steps, s)
                best[name][0] = min(best[name][0], wall / s)
                best[name][1] = min(best[name][1], cpu / s)
        res: dict[str, Any] = {"num_envs": n, "steps_per_round": steps, "rounds": rounds, "compile_s": compile_s}
        for name, (wall, cpu) in best.items():
            res[name] = {"steps_per_s_wall": n / wall, "steps_per_s_cpu": n / cpu, "us_per_step_cpu": cpu * 1e6}
        peer = res["gym_CartPoleVectorEnv"]["steps_per_s_cpu"]
        res["ratio_cpu_vs_CartPoleVectorEnv"] = {
            k: res[k]["steps_per_s_cpu"] / peer for k in best if k.startswith("native")
        }
        if "gym_SyncVectorEnv" in best:
            sync = res["gym_SyncVectorEnv"]["steps_per_s_cpu"]
            res["ratio_cpu_vs_SyncVectorEnv"] = {
                k: res[k]["steps_per_s_cpu"] / sync for k in best if k.startswith("native")
            }
        log.info("N=%d %s", n, json.dumps(res["ratio_cpu_vs_CartPoleVectorEnv"]))
        out.append(res)
    return out


def policy_rollout_rate(
    n: int, device: str, steps_per_graph: int, replays: int, use_graph: bool, compile: bool
) -> dict[str, Any]:
    """Env-steps/s of CartPole with a 64×64 MLP (argmax action) in the loop.

    On CUDA, ``steps_per_graph`` steps (policy + env) are captured in one CUDA graph and replayed
    ``replays`` times; without a graph the same loop runs eagerly (this is what ``--cuda-smoke`` checks on
    CPU).
    """
    torch.manual_seed(0)  # the benchmark's own MLP weights; the env uses its own generator
    policy = torch.nn.Sequential(
        torch.nn.Linear(4, 64), torch.nn.Tanh(), torch.nn.Linear(64, 64), torch.nn.Tanh(), torch.nn.Linear(64, 2)
    ).to(device)
    env = make_env("CartPole-v1", n, device=device, seed=0, validate_actions=False, compile=compile)
    if device == "cpu":
        env._fused = True  # type: ignore[attr-defined]  # the branch-free path CUDA uses, checked on CPU
    obs, _ = env.reset()
    static_obs = obs.clone()
    episodes = torch.zeros((), dtype=torch.int64, device=device)

    def run_steps() -> None:
        nonlocal episodes
        o = static_obs
        for _ in range(steps_per_graph):
            with torch.no_grad():
                action = policy(o).argmax(dim=1)
            o, _, term, trunc, _ = env.step(action)
            episodes = episodes + (term | trunc).sum()
        static_obs.copy_(o)

    for _ in range(3):  # warm-up (allocator, compilation)
        run_steps()
    graph = None
    graph_error = None
    if use_graph:
        try:
            graph = torch.cuda.CUDAGraph()
            if hasattr(graph, "register_generator_state"):
                graph.register_generator_state(env._gen)  # the env's own generator draws reset states
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                run_steps()
            torch.cuda.current_stream().wait_stream(stream)
            with torch.cuda.graph(graph):
                run_steps()
        except RuntimeError as err:  # report and fall back to the eager loop
            graph, graph_error = None, str(err)
    if device != "cpu":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(replays):
        if graph is not None:
            graph.replay()
        else:
            run_steps()
    if device != "cpu":
        torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    total = n * steps_per_graph * replays
    return {
        "num_envs": n,
        "device": device,
        "cuda_graph": graph is not None,
        "cuda_graph_error": graph_error,
        "compile": compile,
        "steps_per_graph": steps_per_graph,
        "replays": replays,
        "env_steps_per_s": total / wall,
        "goal_env_steps_per_s": 1e9,
        "finished_episodes_counted": int(episodes) > 0,
    }


def main() -> None:
    """Parse options, run the sections, print (and optionally write) the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 64, 1024, 16384])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per size (best kept)")
    parser.add_argument("--seconds", type=float, default=0.3, help="target seconds per round (NumPy peer)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile contender")
    parser.add_argument("--sync-max", type=int, default=16384, help="largest N for SyncVectorEnv")
    parser.add_argument("--cuda-n", type=int, default=2**20)
    parser.add_argument("--cuda-steps", type=int, default=100, help="steps captured per CUDA graph")
    parser.add_argument("--cuda-replays", type=int, default=20)
    parser.add_argument("--cuda-smoke", action="store_true", help="run the CUDA section's loop on CPU, small N")
    parser.add_argument("--skip-cpu", action="store_true")
    parser.add_argument("--out", default=None, help="also write the JSON here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    result: dict[str, Any] = {"config": vars(args), "seed": 0, "provenance": provenance()}
    if not args.skip_cpu:
        result["cpu"] = bench_cpu(args.sizes, args.rounds, args.seconds, not args.no_compile, args.sync_max)
    if torch.cuda.is_available():
        result["cuda"] = [
            policy_rollout_rate(args.cuda_n, "cuda", args.cuda_steps, args.cuda_replays, True, compile=False),
            policy_rollout_rate(args.cuda_n, "cuda", args.cuda_steps, args.cuda_replays, True, compile=True),
        ]
    elif args.cuda_smoke:
        result["cuda_smoke_on_cpu"] = policy_rollout_rate(
            min(args.cuda_n, 256), "cpu", steps_per_graph=10, replays=2, use_graph=False, compile=False
        )
    print(json.dumps(result, indent=2))
    if args.out:
        write_json(args.out, result)


if __name__ == "__main__":
    main()
