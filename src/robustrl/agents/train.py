"""``train(cfg) -> TrainResult``: the one entry point of online training, and ``robustrl train``.

A run is fully described by a :class:`TrainConfig` (common fields), the algorithm's own frozen config
(``PPOConfig``, ``DQNConfig``, ``SACConfig``: the per-env preset, ``--set key=value`` overrides, then the
common fields that also live there, ``num_envs`` and ``total_steps``), the defense's typed config
(``--defense NAME --defense-set key=value``; ``--obs-noise σ`` is short for ``--defense smoothing
--defense-set sigma=σ``) and the env's physical parameters (fixed, or resampled at every episode start).
The same seed gives the same run: the same weights and the same evaluation returns.

Run folder (when ``out`` is given), every file written atomically, all carrying the run's id::

    config.json   resolved TrainConfig + algorithm and defense configs + provenance (written before training)
    policy.zip    the policy (robustrl format, loads with robustrl.load_policy), refreshed at every evaluation
    eval.json     evaluation history, refreshed at every evaluation
    checkpoint.pt learner state for --resume (weights, optimiser, replay buffer, random streams), same times
    result.json   summary written last: its presence marks the run finished
    tb/           TensorBoard event files (with tensorboard=True)

An existing run folder is refused unless ``overwrite`` or ``resume`` (see :mod:`robustrl.agents.run_folder`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from robustrl.agents.common import Agent, learner_state, load_learner_state
from robustrl.agents.dqn import DQN, DQN_PRESETS, DQNConfig
from robustrl.agents.metrics import MetricLogger
from robustrl.agents.ppo import PPO_PRESETS, PPOConfig
from robustrl.agents.recurrent_ppo import make_ppo
from robustrl.agents.run_folder import (
    check_resume_config,
    load_checkpoint,
    new_run_id,
    prepare_run_dir,
    save_checkpoint,
)
from robustrl.agents.sac import SAC, SAC_PRESETS, SACConfig
from robustrl.agents.td3 import TD3, TD3_PRESETS, TD3Config
from robustrl.common.config import apply_overrides, config_to_dict, field_defaults
from robustrl.common.device import check_device
from robustrl.common.io import write_json
from robustrl.common.limits import check_count
from robustrl.common.progress import progress_bar
from robustrl.common.provenance import provenance
from robustrl.common.seeding import check_seed, derive_seed
from robustrl.defenses.registry import DefenseName, defense_hooks, defense_name, resolve_defense
from robustrl.defenses.smoothing import SmoothingConfig, check_sigma, smoothing_transform
from robustrl.envs import NATIVE_ENVS, UniformParamSampler, VecEnv, make_env
from robustrl.envs.episode_stats import EpisodeStats
from robustrl.results import EvalRecord, TrainPoint, TrainResult
from robustrl.rollout import rollout

logger = logging.getLogger(__name__)

Algo = Literal["ppo", "dqn", "sac", "td3"]
AlgoConfig = PPOConfig | DQNConfig | SACConfig | TD3Config

ALGORITHMS: dict[str, tuple[Callable[..., Any], type[Any], dict[str, Any]]] = {
    "ppo": (make_ppo, PPOConfig, PPO_PRESETS),
    "dqn": (DQN, DQNConfig, DQN_PRESETS),
    "sac": (SAC, SACConfig, SAC_PRESETS),
    "td3": (TD3, TD3Config, TD3_PRESETS),
}
"""Learner constructor ``(env, cfg, *, seed, hooks)``, config class and per-env presets by algorithm name (PPO's
constructor builds :class:`~robustrl.agents.recurrent_ppo.RecurrentPPO` when ``lstm_size > 0``)."""

_COMMON_FIELDS = ("num_envs", "total_steps")
_CURVE_POINTS = 100
"""A run's ``train_curve`` keeps between this many and twice this many evenly spaced points."""

__all__ = ["ALGORITHMS", "EvalRecord", "TrainConfig", "TrainResult", "apply_overrides", "make_run_env",
           "resolve_algo_config", "resolve_defense_config", "train"]


@dataclass(frozen=True)
class TrainConfig:
    """One online training run: algorithm, env, budget, evaluation, outputs."""

    algo: Algo = "ppo"
    """Learning algorithm (ppo: discrete or continuous; dqn: discrete; sac, td3: continuous)."""
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
    """Stop once an evaluation's mean return reaches this (the smoothed return under a smoothing defense)."""
    out: Path | None = None
    """Run folder for config.json, policy.zip, eval.json, result.json (None: write nothing)."""
    defense: DefenseName = "none"
    """Defense the agent trains with (none, or a name in robustrl.defenses.DEFENSES, e.g. smoothing: Gaussian
    observation noise, for Policy Smoothing)."""
    defense_set: tuple[str, ...] = ()
    """Options of the defense's config as key=value, e.g. sigma=0.2 for smoothing."""
    obs_noise: float = 0.0
    """Short for --defense smoothing --defense-set sigma=σ: Gaussian noise on every observation trained on."""
    env_params: tuple[str, ...] = ()
    """Physical parameters of the training env as name=value, e.g. length=0.7 (see robustrl envs)."""
    env_randomize: tuple[str, ...] = ()
    """Parameters drawn uniformly at every episode start as name=low:high, e.g. length=0.25:1.0."""
    uncertainty_set: str = ""
    """Named uncertainty set of a model-error defense (domain-randomisation, rarl, qarl, iwocs), e.g.
    hopper-2d-v1 or cartpole-2d-v1 (see robustrl.envs.uncertainty)."""
    set: tuple[str, ...] = ()
    """Overrides of the algorithm config (PPOConfig/DQNConfig/SACConfig/TD3Config fields) as key=value, e.g.
    hidden=64,64."""
    overwrite: bool = False
    """Replace the run already in OUT (its files are removed first; other files are never touched)."""
    resume: bool = False
    """Continue the run in OUT from its last checkpoint (the config must be the same)."""
    tensorboard: bool = False
    """Write TensorBoard event files to OUT/tb (needs the tensorboard package)."""
    progress: bool = False
    """Show a progress bar."""
    device: str = "cpu"
    """Torch device of the envs and the networks."""
    backend: Literal["auto", "native", "gymnasium"] = "auto"
    """Env implementation: native batched torch where one exists (auto), or always the Gymnasium adapter."""


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
        if key in ("obs_noise", "critic_obs"):
            raise ValueError(f"set {key} with --defense smoothing --defense-set (or --obs-noise), not --set")
    algo_cfg = apply_overrides(base, cfg.set)
    common: dict[str, Any] = {}
    if cfg.num_envs is not None:
        common["num_envs"] = cfg.num_envs
    if cfg.total_steps is not None:
        common["total_steps"] = cfg.total_steps
    algo_cfg = dataclasses.replace(algo_cfg, **common)
    algo_cfg.validate()
    return algo_cfg  # type: ignore[no-any-return]


def resolve_defense_config(cfg: TrainConfig) -> Any | None:
    """The typed config of the run's defense (None: no defense); ``obs_noise`` > 0 means smoothing at that σ.

    Example:
        >>> resolve_defense_config(TrainConfig(obs_noise=0.2))
        SmoothingConfig(sigma=0.2, critic_obs='clean')
    """
    sigma = check_sigma(cfg.obs_noise, "obs_noise", allow_zero=True)
    if sigma > 0:
        if cfg.defense not in ("none", "smoothing"):
            raise ValueError(f"--obs-noise is the smoothing defense; it does not combine with --defense {cfg.defense}")
        if any(item.partition("=")[0].strip() == "sigma" for item in cfg.defense_set):
            raise ValueError("give the smoothing σ once: --obs-noise or --defense-set sigma=..., not both")
        return resolve_defense("smoothing", cfg.defense_set, sigma=sigma)
    return resolve_defense(cfg.defense, cfg.defense_set)


def parse_env_params(items: tuple[str, ...] | list[str]) -> dict[str, float]:
    """``("length=0.7", ...)`` → ``{"length": 0.7}``; a malformed item is a ``ValueError`` naming it."""
    out: dict[str, float] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not sep or not name or not math.isfinite(value):
            raise ValueError(f"--env-params expects name=number with a finite number, got {item!r}")
        if name in out:
            raise ValueError(f"--env-params sets {name!r} twice")
        out[name] = value
    return out


def parse_param_ranges(items: tuple[str, ...] | list[str]) -> dict[str, tuple[float, float]]:
    """``("length=0.25:1.0", ...)`` → ``{"length": (0.25, 1.0)}``; a malformed item is a ``ValueError`` naming it."""
    out: dict[str, tuple[float, float]] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        low_text, colon, high_text = text.partition(":")
        try:
            low, high = float(low_text), float(high_text)
        except ValueError:
            low = high = math.nan
        if not sep or not colon or not name or not (math.isfinite(low) and math.isfinite(high)) or low > high:
            raise ValueError(f"--env-randomize expects name=low:high with finite low ≤ high, got {item!r}")
        if name in out:
            raise ValueError(f"--env-randomize sets {name!r} twice")
        out[name] = (low, high)
    return out


def _check(cfg: TrainConfig) -> None:
    check_seed(cfg.seed)
    check_device(cfg.device)
    if cfg.eval_every < 0:
        raise ValueError(f"eval_every must be ≥ 0, got {cfg.eval_every}")
    if cfg.eval_episodes < 1:
        raise ValueError(f"eval_episodes must be ≥ 1, got {cfg.eval_episodes}")
    if cfg.total_steps is not None and cfg.total_steps < 1:
        raise ValueError(f"total_steps must be ≥ 1, got {cfg.total_steps}")
    if cfg.num_envs is not None:
        check_count(cfg.num_envs, "num_envs")
    if cfg.total_steps is not None:
        check_count(cfg.total_steps, "total_steps")
    check_count(cfg.eval_episodes, "eval_episodes")
    if cfg.tensorboard and cfg.out is None:
        raise ValueError("tensorboard=True needs a run folder: pass out")
    if (cfg.overwrite or cfg.resume) and cfg.out is None:
        raise ValueError("--overwrite and --resume need a run folder: pass --out")
    if cfg.stop_at_return is not None and not math.isfinite(cfg.stop_at_return):
        raise ValueError(f"stop_at_return must be a finite number, got {cfg.stop_at_return}")


def _child_seed(seed: int, key: int) -> int:
    child = derive_seed(seed, key)
    assert child is not None
    return child


def make_run_env(
    cfg: TrainConfig, num_envs: int, seed: int | None, *, randomize: bool = True, env_id: str | None = None,
    **extra: Any,
) -> VecEnv:
    """The run's env: ``cfg.env`` (or ``env_id``) with its ``--env-params``, ``--env-randomize`` and backend.

    ``randomize=False`` leaves the ranges out (evaluation at the nominal point); ``extra`` goes to
    :func:`robustrl.make_env` (e.g. ``disturbance_bodies``).
    """
    kwargs: dict[str, Any] = {} if cfg.backend == "auto" else {"backend": cfg.backend}
    kwargs.update(extra)
    params = parse_env_params(cfg.env_params)
    if params:
        kwargs["params"] = params
    ranges = parse_param_ranges(cfg.env_randomize)
    if ranges and randomize:
        overlap = sorted(set(ranges) & set(params))
        if overlap:
            raise ValueError(f"{overlap} are both fixed (--env-params) and randomised (--env-randomize)")
        kwargs["param_sampler"] = UniformParamSampler(ranges)
    return make_env(env_id or cfg.env, num_envs, device=cfg.device, seed=seed, **kwargs)


def _evaluate(
    policy: nn.Module, env: VecEnv, episodes: int, *, seed: int, obs_noise: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Clean returns, lengths and (when ``obs_noise > 0``) noisy returns of the deterministic policy."""
    policy.eval()
    res = rollout(policy, env, episodes, seed=seed)  # type: ignore[arg-type]
    noisy = None
    if obs_noise > 0:
        noisy = rollout(
            policy, env, episodes, seed=_child_seed(seed, 1), obs_transform=smoothing_transform(obs_noise)  # type: ignore[arg-type]
        ).returns
    policy.train()
    return res.returns, res.lengths, noisy


AgentFactory = Callable[[VecEnv, Any, int, Callable[[int, int], VecEnv]], Agent]
"""``(env, algo_cfg, seed, make_env) -> Agent``: a learner built by a defense's trainer instead of the algorithm's
own class; ``make_env(num_envs, seed)`` makes more envs like the training env (closed with the run)."""


def train(cfg: TrainConfig, *, make_agent: AgentFactory | None = None) -> TrainResult:
    """Train an agent online and return the policy with its evaluation history.

    Args:
        cfg: the run (see :class:`TrainConfig`); the algorithm config comes from :func:`resolve_algo_config`.
        make_agent: build the learner with this instead (a trainer above the learners, e.g. ATLA's
            alternating agent/adversary learner, reuses the run folder, evaluation and checkpoints here).

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
    if cfg.uncertainty_set and make_agent is None:
        raise ValueError(
            "--uncertainty-set is read by the model-error defenses (--defense domain-randomisation, rarl, qarl, "
            "iwocs), which run through robustrl train (robustrl.jobs.train)"
        )
    algo_cfg = resolve_algo_config(cfg)
    defense = resolve_defense_config(cfg)
    agent_cls = ALGORITHMS[cfg.algo][0]
    run_dir = Path(cfg.out) if cfg.out is not None else None
    meta: dict[str, Any] = {
        "run_id": new_run_id(),
        "train": config_to_dict(cfg),
        "algo": config_to_dict(algo_cfg),
        "algo_class": type(algo_cfg).__name__,
        "defense": {"name": defense_name(defense), **(config_to_dict(defense) if defense is not None else {})},
        "provenance": provenance(),
    }
    checkpoint = None
    if run_dir is not None and prepare_run_dir(run_dir, overwrite=cfg.overwrite, resume=cfg.resume):
        defaults = {"train": field_defaults(TrainConfig), "algo": field_defaults(type(algo_cfg))}
        if defense is not None:
            defaults["defense"] = field_defaults(type(defense))
        meta["run_id"] = check_resume_config(run_dir, meta, defaults=defaults)
        checkpoint = load_checkpoint(run_dir / "checkpoint.pt")
        if checkpoint.get("run_id") != meta["run_id"]:
            raise ValueError(f"--resume: checkpoint.pt in {str(run_dir)!r} belongs to another run than config.json")
    parse_env_params(cfg.env_params)  # bad env options fail before any work
    parse_param_ranges(cfg.env_randomize)
    eval_n = cfg.eval_episodes if cfg.env in NATIVE_ENVS and cfg.backend != "gymnasium" else min(cfg.eval_episodes, 8)
    with contextlib.ExitStack() as stack:
        env = EpisodeStats(make_run_env(cfg, algo_cfg.num_envs, _child_seed(cfg.seed, 10)))  # training returns
        stack.callback(env.close)
        eval_env = make_run_env(cfg, eval_n, _child_seed(cfg.seed, 11), randomize=False)  # evaluate at nominal params
        stack.callback(eval_env.close)
        if make_agent is None:
            agent: Agent = agent_cls(env, algo_cfg, seed=cfg.seed, hooks=defense_hooks(defense))  # bad pairs fail here
        else:
            def more_envs(n: int, s: int) -> VecEnv:
                return stack.enter_context(contextlib.closing(make_run_env(cfg, n, s)))  # type: ignore[type-var]

            agent = make_agent(env, algo_cfg, cfg.seed, more_envs)
        if checkpoint is not None:
            load_learner_state(agent, checkpoint["learner"])
        metrics = MetricLogger(run_dir / "tb" if (run_dir is not None and cfg.tensorboard) else None)
        stack.callback(metrics.close)
        if run_dir is not None and checkpoint is None:
            write_json(run_dir / "config.json", meta)
        sigma = defense.sigma if isinstance(defense, SmoothingConfig) else 0.0
        return _loop(cfg, algo_cfg, sigma, agent, eval_env, metrics, run_dir, meta, checkpoint, env)
    raise AssertionError("unreachable")  # pragma: no cover


def _loop(
    cfg: TrainConfig,
    algo_cfg: AlgoConfig,
    smoothing_sigma: float,
    agent: Agent,
    eval_env: VecEnv,
    metrics: MetricLogger,
    run_dir: Path | None,
    meta: dict[str, Any],
    checkpoint: dict[str, Any] | None,
    stats: EpisodeStats,
) -> TrainResult:
    from robustrl.policies import save_policy

    total = algo_cfg.total_steps
    history: list[EvalRecord] = []
    curve: list[TrainPoint] = []
    seen_episodes, ticks, stride = 0, 0, 1  # iterations that ended episodes; every stride-th is a curve point
    eval_time = 0.0
    next_eval = cfg.eval_every if cfg.eval_every > 0 else total
    earlier = 0.0  # seconds of the run before a resumption
    if checkpoint is not None:
        history = [EvalRecord(**r) for r in checkpoint["history"]]
        curve = [TrainPoint(**p) for p in checkpoint.get("train_curve", ())]
        ticks, stride = checkpoint.get("train_curve_ticks", 0), checkpoint.get("train_curve_stride", 1)
        next_eval = int(checkpoint["next_eval"])
        earlier, eval_time = float(checkpoint["wall_time"]), float(checkpoint["eval_time"])
    start = time.perf_counter() - earlier
    stopped = False
    bar = progress_bar(total=total, initial=agent.steps, desc=f"{cfg.algo} {cfg.env}", unit="step",
                       disable=not cfg.progress)

    def do_eval() -> bool:
        nonlocal eval_time
        t0 = time.perf_counter()
        k = len(history)
        returns, lengths, noisy = _evaluate(
            agent.policy, eval_env, cfg.eval_episodes, seed=_child_seed(cfg.seed, 1000 + k),
            obs_noise=smoothing_sigma,
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
            records = [dataclasses.asdict(r) for r in history]
            write_json(run_dir / "eval.json", records)
            save_checkpoint(run_dir / "checkpoint.pt", {
                "run_id": meta["run_id"], "learner": learner_state(agent), "history": records,
                "train_curve": [dataclasses.asdict(p) for p in curve], "train_curve_ticks": ticks,
                "train_curve_stride": stride,
                "next_eval": next_eval, "wall_time": time.perf_counter() - start, "eval_time": eval_time,
            })
        target = rec.mean_return if rec.noisy_mean_return is None else rec.noisy_mean_return
        return cfg.stop_at_return is not None and target >= cfg.stop_at_return

    try:
        while agent.steps < total:
            before = agent.steps
            t_iter = time.perf_counter()
            train_metrics = agent.iterate()
            dt = time.perf_counter() - t_iter
            train_metrics["time/steps_per_second"] = (agent.steps - before) / max(dt, 1e-9)
            recent = stats.recent() if stats.finished > seen_episodes else None  # episodes ended in this iteration
            if recent is not None:
                seen_episodes = stats.finished
                train_metrics["train/episode_return"], train_metrics["train/episode_length"] = recent
                ticks += 1
                if ticks % stride == 0:  # evenly spaced: at twice the points, every other one goes
                    curve.append(TrainPoint(agent.steps, *recent))
                    if len(curve) >= 2 * _CURVE_POINTS:
                        curve, stride = curve[1::2], 2 * stride
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
        env_id=cfg.env,
        algo=cfg.algo,
        seed=cfg.seed,
        steps=agent.steps,
        wall_time=wall,
        train_time=wall - eval_time,
        stopped_early=stopped,
        history=tuple(history),
        train_curve=tuple(curve),
        config={k: v for k, v in meta.items() if k not in ("provenance", "run_id")},
        provenance=meta["provenance"],
        last_train_metrics=metrics.latest,
        run_dir=str(run_dir) if run_dir is not None else None,
        run_id=meta["run_id"],
        policy=agent.policy,
        algo_config=algo_cfg,
    )
    if run_dir is not None:
        result.save(run_dir / "result.json")  # last: its presence marks the run finished
    return result
