"""``train(cfg) -> TrainResult``: the one entry point of online training, and ``robustrl train``.

A run is fully described by a :class:`TrainConfig` (common fields) plus the algorithm's own frozen
config (``PPOConfig``, ``DQNConfig``, ``SACConfig``), resolved from the per-env preset, ``--set key=value``
overrides, and the common fields that also live in the algorithm config (``num_envs``, ``total_steps``,
``obs_noise``). The same seed gives the same run: the same weights and the same evaluation returns.

Run folder (when ``out`` is given), every file written atomically::

    config.json   resolved TrainConfig + algorithm config + provenance (written before training)
    policy.zip    the policy (robustrl format, loads with robustrl.load_policy), refreshed at every evaluation
    eval.json     evaluation history, refreshed at every evaluation
    result.json   summary written at the end
    tb/           TensorBoard event files (with tensorboard=True)
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import logging
import time
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple, get_args, get_origin

import torch
from torch import nn
from tqdm.auto import tqdm

from robustrl.agents.common import Agent, check_obs_noise
from robustrl.agents.dqn import DQN, DQN_PRESETS, DQNConfig
from robustrl.agents.metrics import MetricLogger
from robustrl.agents.ppo import PPO, PPO_PRESETS, PPOConfig
from robustrl.agents.sac import SAC, SAC_PRESETS, SACConfig
from robustrl.common.config import config_to_dict
from robustrl.common.io import write_json
from robustrl.common.provenance import provenance
from robustrl.common.seeding import derive_seed
from robustrl.envs import NATIVE_ENVS, VecEnv, make_env
from robustrl.evaluate.rollout import StepContext, rollout

logger = logging.getLogger(__name__)

Algo = Literal["ppo", "dqn", "sac"]
AlgoConfig = PPOConfig | DQNConfig | SACConfig

ALGORITHMS: dict[str, tuple[type[Any], type[Any], dict[str, Any]]] = {
    "ppo": (PPO, PPOConfig, PPO_PRESETS),
    "dqn": (DQN, DQNConfig, DQN_PRESETS),
    "sac": (SAC, SACConfig, SAC_PRESETS),
}
"""Learner class, config class and per-env presets by algorithm name."""

_COMMON_FIELDS = ("num_envs", "total_steps", "obs_noise")


@dataclass(frozen=True)
class TrainConfig:
    """One online training run: algorithm, env, budget, evaluation, outputs."""

    algo: Algo = "ppo"
    """Learning algorithm (ppo: discrete or continuous; dqn: discrete; sac: continuous)."""
    env: str = "CartPole-v1"
    """Environment id (native batched env where one exists, else the Gymnasium adapter)."""
    total_steps: int | None = None
    """Environment transitions to train for (None: the algorithm's preset for this env)."""
    seed: int = 0
    """Seeds everything: network initialisation, env resets, exploration, noise, evaluation."""
    num_envs: int | None = None
    """Env copies stepped together (None: the algorithm's preset)."""
    eval_every: int = 10_000
    """Environment transitions between evaluations (0: evaluate only at the end)."""
    eval_episodes: int = 32
    """Episodes per evaluation (deterministic policy)."""
    stop_at_return: float | None = None
    """Stop once an evaluation's mean return reaches this (the noisy return when obs_noise > 0)."""
    out: Path | None = None
    """Run folder for config.json, policy.zip, eval.json, result.json (None: write nothing)."""
    obs_noise: float = 0.0
    """σ of Gaussian noise on every observation the agent acts and learns on (train for Policy Smoothing)."""
    set: tuple[str, ...] = ()
    """Overrides of the algorithm config (PPOConfig/DQNConfig/SACConfig fields) as key=value, e.g. hidden=64,64."""
    tensorboard: bool = False
    """Write TensorBoard event files to OUT/tb (needs the tensorboard package)."""
    progress: bool = False
    """Show a progress bar."""
    device: str = "cpu"
    """Torch device of the envs and the networks."""
    backend: Literal["auto", "native", "gymnasium"] = "auto"
    """Env implementation: native batched torch where one exists (auto), or always the Gymnasium adapter."""


class EvalRecord(NamedTuple):
    """One periodic evaluation."""

    step: int
    """Environment transitions collected before it."""
    wall_time: float
    """Seconds since training started (evaluation time included)."""
    train_time: float
    """Seconds spent training so far (evaluation time excluded)."""
    mean_return: float
    """Mean undiscounted return over the evaluation episodes, clean observations."""
    std_return: float
    """Standard deviation of those returns."""
    mean_length: float
    """Mean episode length."""
    noisy_mean_return: float | None
    """Mean return with N(0, obs_noise²) observation noise (None when obs_noise = 0)."""


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` returns."""

    policy: nn.Module
    """The trained policy (meets :class:`~robustrl.policies.base.Policy`; in eval mode)."""
    algo_config: Any
    """The resolved algorithm config (``PPOConfig``, ``DQNConfig`` or ``SACConfig``)."""
    run_dir: Path | None
    """The run folder, when one was written."""
    history: tuple[EvalRecord, ...]
    """Evaluations in order."""
    steps: int
    """Environment transitions collected."""
    wall_time: float
    """Seconds the whole run took."""
    train_time: float
    """Seconds of training, evaluation excluded."""
    stopped_early: bool
    """True when ``stop_at_return`` was reached before ``total_steps``."""

    @property
    def final_return(self) -> float:
        """Mean return of the last evaluation (NaN if none ran)."""
        return self.history[-1].mean_return if self.history else float("nan")

    def __str__(self) -> str:
        last = self.history[-1] if self.history else None
        parts = [f"trained {self.steps} steps in {self.wall_time:.1f}s"]
        if last is not None:
            parts.append(f"eval return {last.mean_return:.1f} ± {last.std_return:.1f}")
            if last.noisy_mean_return is not None:
                parts.append(f"noisy {last.noisy_mean_return:.1f}")
        text = ", ".join(parts)
        if self.stopped_early:
            text += " (target reached)"
        if self.run_dir is not None:
            text += f" → {self.run_dir}"
        return text


def _convert(value: str, tp: Any, key: str) -> Any:
    """Convert the text of a ``--set`` override to the field type ``tp``."""
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if value.lower() in ("none", "null") and len(args) < len(get_args(tp)):
            return None
        return _convert(value, args[0], key)
    if origin is Literal:
        choices = get_args(tp)
        for c in choices:
            if str(c) == value:
                return c
        raise ValueError(f"--set {key}={value}: expected one of {[str(c) for c in choices]}")
    if origin is tuple:
        inner = next(a for a in get_args(tp) if a is not Ellipsis)
        items = [v for v in value.replace(" ", "").split(",") if v]
        return tuple(_convert(v, inner, key) for v in items)
    if tp is bool:
        low = value.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"--set {key}={value}: expected true or false")
    try:
        return tp(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"--set {key}={value}: expected {getattr(tp, '__name__', tp)}") from err


def apply_overrides(cfg: Any, overrides: tuple[str, ...] | list[str]) -> Any:
    """A copy of the config dataclass ``cfg`` with ``key=value`` overrides converted to each field's type.

    Tuples are comma-separated (``hidden=256,256``), optional fields accept ``none``.

    Raises:
        ValueError: malformed item, unknown key (with close names), or a value of the wrong type.

    Example:
        >>> from robustrl.agents.ppo import PPOConfig
        >>> apply_overrides(PPOConfig(), ["hidden=32,32", "target_kl=none"]).hidden
        (32, 32)
    """
    hints = typing.get_type_hints(type(cfg))
    names = [f.name for f in dataclasses.fields(cfg)]
    values: dict[str, Any] = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ValueError(f"--set expects key=value, got {item!r}")
        if key not in names:
            close = difflib.get_close_matches(key, names, n=3)
            hint = f"; did you mean {close}?" if close else ""
            raise ValueError(f"unknown {type(cfg).__name__} key {key!r} in --set{hint} (keys: {', '.join(names)})")
        values[key] = _convert(text.strip(), hints[key], key)
    return dataclasses.replace(cfg, **values)


def resolve_algo_config(cfg: TrainConfig) -> AlgoConfig:
    """The algorithm config of a run: preset for the env, then ``--set`` overrides, then common fields."""
    if cfg.algo not in ALGORITHMS:
        raise ValueError(f"unknown algo {cfg.algo!r}; choose from {sorted(ALGORITHMS)}")
    _, cfg_cls, presets = ALGORITHMS[cfg.algo]
    base = presets.get(cfg.env, cfg_cls())
    for item in cfg.set:
        key = item.partition("=")[0].strip().replace("-", "_")
        if key in _COMMON_FIELDS:
            raise ValueError(f"set {key} with --{key.replace('_', '-')}, not --set")
    algo_cfg = apply_overrides(base, cfg.set)
    common: dict[str, Any] = {"obs_noise": float(cfg.obs_noise)}
    if cfg.num_envs is not None:
        common["num_envs"] = cfg.num_envs
    if cfg.total_steps is not None:
        common["total_steps"] = cfg.total_steps
    algo_cfg = dataclasses.replace(algo_cfg, **common)
    algo_cfg.validate()
    return algo_cfg  # type: ignore[no-any-return]


def _check(cfg: TrainConfig) -> None:
    check_obs_noise(cfg.obs_noise)
    if cfg.eval_every < 0:
        raise ValueError(f"eval_every must be ≥ 0, got {cfg.eval_every}")
    if cfg.eval_episodes < 1:
        raise ValueError(f"eval_episodes must be ≥ 1, got {cfg.eval_episodes}")
    if cfg.total_steps is not None and cfg.total_steps < 1:
        raise ValueError(f"total_steps must be ≥ 1, got {cfg.total_steps}")
    if cfg.num_envs is not None and cfg.num_envs < 1:
        raise ValueError(f"num_envs must be ≥ 1, got {cfg.num_envs}")
    if cfg.tensorboard and cfg.out is None:
        raise ValueError("tensorboard=True needs a run folder: pass out")


def _child_seed(seed: int, key: int) -> int:
    child = derive_seed(seed, key)
    assert child is not None
    return child


def _make(cfg: TrainConfig, num_envs: int, seed: int | None) -> VecEnv:
    kwargs: dict[str, Any] = {} if cfg.backend == "auto" else {"backend": cfg.backend}
    return make_env(cfg.env, num_envs, device=cfg.device, seed=seed, **kwargs)


def gaussian_obs_noise(sigma: float) -> Any:
    """An ``obs_transform`` for :func:`~robustrl.evaluate.rollout` adding ``N(0, σ²I)`` from the rollout's generator."""

    def transform(obs: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        noise = torch.randn(obs.shape, generator=ctx.generator, device=obs.device, dtype=torch.float32)
        return obs.float() + sigma * noise

    return transform


def _evaluate(
    policy: nn.Module, env: VecEnv, episodes: int, *, seed: int, obs_noise: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Clean returns, lengths and (when ``obs_noise > 0``) noisy returns of the deterministic policy."""
    policy.eval()
    res = rollout(policy, env, episodes, seed=seed)  # type: ignore[arg-type]
    noisy = None
    if obs_noise > 0:
        noisy = rollout(
            policy, env, episodes, seed=_child_seed(seed, 1), obs_transform=gaussian_obs_noise(obs_noise)  # type: ignore[arg-type]
        ).returns
    policy.train()
    return res.returns, res.lengths, noisy


def train(cfg: TrainConfig) -> TrainResult:
    """Train an agent online and return the policy with its evaluation history.

    Args:
        cfg: the run (see :class:`TrainConfig`); the algorithm config comes from :func:`resolve_algo_config`.

    Returns:
        :class:`TrainResult`.

    Raises:
        ValueError: bad config values, unknown env id, an algorithm that does not fit the action space,
            or TensorBoard asked for but not installed.

    Example:
        >>> res = train(TrainConfig(algo="ppo", env="CartPole-v1", total_steps=2048, eval_every=0,
        ...                         eval_episodes=2))
        >>> res.steps, len(res.history)
        (2048, 1)
    """
    _check(cfg)
    algo_cfg = resolve_algo_config(cfg)
    agent_cls = ALGORITHMS[cfg.algo][0]
    run_dir = Path(cfg.out) if cfg.out is not None else None
    meta = {
        "train": config_to_dict(cfg),
        "algo": config_to_dict(algo_cfg),
        "algo_class": type(algo_cfg).__name__,
        "provenance": provenance(),
    }
    eval_n = cfg.eval_episodes if cfg.env in NATIVE_ENVS and cfg.backend != "gymnasium" else min(cfg.eval_episodes, 8)
    with contextlib.ExitStack() as stack:
        env = _make(cfg, algo_cfg.num_envs, _child_seed(cfg.seed, 10))
        stack.callback(env.close)
        eval_env = _make(cfg, eval_n, _child_seed(cfg.seed, 11))
        stack.callback(eval_env.close)
        agent: Agent = agent_cls(env, algo_cfg, seed=cfg.seed)  # bad env/algorithm pairs fail here
        metrics = MetricLogger(run_dir / "tb" if (run_dir is not None and cfg.tensorboard) else None)
        stack.callback(metrics.close)
        if run_dir is not None:
            write_json(run_dir / "config.json", meta)
        return _loop(cfg, algo_cfg, agent, eval_env, metrics, run_dir, meta)
    raise AssertionError("unreachable")  # pragma: no cover


def _loop(
    cfg: TrainConfig,
    algo_cfg: AlgoConfig,
    agent: Agent,
    eval_env: VecEnv,
    metrics: MetricLogger,
    run_dir: Path | None,
    meta: dict[str, Any],
) -> TrainResult:
    from robustrl.policies import save_policy

    total = algo_cfg.total_steps
    history: list[EvalRecord] = []
    start = time.perf_counter()
    eval_time = 0.0
    next_eval = cfg.eval_every if cfg.eval_every > 0 else total
    stopped = False
    bar = tqdm(total=total, desc=f"{cfg.algo} {cfg.env}", unit="step", disable=not cfg.progress)

    def do_eval() -> bool:
        nonlocal eval_time
        t0 = time.perf_counter()
        k = len(history)
        returns, lengths, noisy = _evaluate(
            agent.policy, eval_env, cfg.eval_episodes, seed=_child_seed(cfg.seed, 1000 + k),
            obs_noise=algo_cfg.obs_noise,
        )
        eval_time += time.perf_counter() - t0
        now = time.perf_counter() - start
        rec = EvalRecord(
            step=agent.steps,
            wall_time=now,
            train_time=now - eval_time,
            mean_return=float(returns.mean()),
            std_return=float(returns.std(unbiased=False)),
            mean_length=float(lengths.float().mean()),
            noisy_mean_return=None if noisy is None else float(noisy.mean()),
        )
        history.append(rec)
        scalars = {"eval/return": rec.mean_return, "eval/return_std": rec.std_return, "eval/length": rec.mean_length}
        if rec.noisy_mean_return is not None:
            scalars["eval/noisy_return"] = rec.noisy_mean_return
        metrics.log(agent.steps, scalars)
        logger.info(
            "step %d: eval return %.1f ± %.1f%s", agent.steps, rec.mean_return, rec.std_return,
            "" if rec.noisy_mean_return is None else f" (noisy {rec.noisy_mean_return:.1f})",
        )
        bar.set_postfix(eval=f"{rec.mean_return:.1f}")
        if run_dir is not None:
            save_policy(agent.policy, run_dir / "policy.zip", env_id=cfg.env, config=meta)  # type: ignore[arg-type]
            write_json(run_dir / "eval.json", [r._asdict() for r in history])
        target = rec.mean_return if rec.noisy_mean_return is None else rec.noisy_mean_return
        return cfg.stop_at_return is not None and target >= cfg.stop_at_return

    try:
        while agent.steps < total:
            before = agent.steps
            t_iter = time.perf_counter()
            train_metrics = agent.iterate()
            dt = time.perf_counter() - t_iter
            train_metrics["time/steps_per_second"] = (agent.steps - before) / max(dt, 1e-9)
            metrics.log(agent.steps, train_metrics)
            bar.update(agent.steps - before)
            if agent.steps >= next_eval or agent.steps >= total:
                while next_eval <= agent.steps:
                    next_eval += cfg.eval_every if cfg.eval_every > 0 else total
                if do_eval():
                    stopped = agent.steps < total
                    break
    finally:
        bar.close()
    wall = time.perf_counter() - start
    agent.policy.eval()
    result = TrainResult(
        policy=agent.policy,
        algo_config=algo_cfg,
        run_dir=run_dir,
        history=tuple(history),
        steps=agent.steps,
        wall_time=wall,
        train_time=wall - eval_time,
        stopped_early=stopped,
    )
    if run_dir is not None:
        write_json(
            run_dir / "result.json",
            {
                "steps": result.steps,
                "wall_time": result.wall_time,
                "train_time": result.train_time,
                "stopped_early": result.stopped_early,
                "final_return": result.final_return,
                "last_train_metrics": metrics.latest,
            },
        )
    return result
