"""``train_offline(cfg) -> OfflineTrainResult``: the entry point of offline training (``robustrl train-offline``).

A run is an :class:`OfflineTrainConfig` (dataset, learner, budget, evaluation) plus the learner's own frozen
config: the algorithm's defaults (RIQL: the paper's per-env σ, α, K for the dataset's corruption, read from the
dataset's stored corruption config), then ``--set key=value`` overrides. The policy is evaluated every
``eval_every`` updates in the real env through :func:`robustrl.rollout.rollout`; the normalised score uses the
dataset's own reference returns (random = 0, expert = 100). With ``online_steps > 0`` the same learner is
then fine-tuned online for that many env transitions (:mod:`robustrl.offline.online`, RO2O-style), evaluated
every ``OnlineConfig.eval_every`` env steps and at the end; the history holds both phases (``phase``), so the
result shows the score before fine-tuning (:attr:`~robustrl.results.OfflineTrainResult.offline_score`) and after.

Run folder (``out``), every file written atomically: ``config.json`` (before training), ``policy.zip`` (loads
with :func:`robustrl.load_policy`, critics included), ``eval.json`` and ``checkpoint.pt`` (learner state) at
every evaluation, ``result.json`` last (:class:`~robustrl.results.OfflineTrainResult`). An existing run folder
is refused unless ``overwrite`` (see :mod:`robustrl.agents.run_folder`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import torch

from robustrl.agents.common import learner_state, load_learner_state
from robustrl.agents.run_folder import (
    check_resume_config,
    load_checkpoint,
    new_run_id,
    prepare_run_dir,
    save_checkpoint,
)
from robustrl.common.config import apply_overrides, config_to_dict, field_defaults
from robustrl.common.io import write_json
from robustrl.common.limits import check_count
from robustrl.common.progress import progress_bar
from robustrl.common.provenance import provenance
from robustrl.common.seeding import check_seed, derive_seed
from robustrl.envs import make_env
from robustrl.offline.base import OfflineBuffer
from robustrl.offline.bc import BC, BCConfig
from robustrl.offline.cql import CQL, CQLConfig
from robustrl.offline.data import OfflineDataset, load_dataset
from robustrl.offline.discrete import DISCRETE_ALGORITHMS
from robustrl.offline.iql import IQL, IQLConfig, riql_preset
from robustrl.offline.online import OnlineConfig, OnlineFineTuner, OnlineReplay, check_online_algo
from robustrl.offline.td3bc import TD3BC, TD3BCConfig
from robustrl.offline.weighting import return_weights
from robustrl.policies.features import flat_dim
from robustrl.results.offline import OfflineEvalRecord, OfflineTrainResult
from robustrl.rollout import rollout

logger = logging.getLogger(__name__)

OfflineAlgo = Literal["bc", "iql", "riql", "cql", "td3bc"]
OFFLINE_ALGORITHMS: dict[str, tuple[type[Any], type[Any]]] = {
    "bc": (BC, BCConfig), "iql": (IQL, IQLConfig), "riql": (IQL, IQLConfig), "cql": (CQL, CQLConfig),
    "td3bc": (TD3BC, TD3BCConfig),
}  # fmt: skip
"""Learner class and config class by algorithm name (RIQL is IQL with RIQL's config)."""

__all__ = ["OFFLINE_ALGORITHMS", "OfflineTrainConfig", "resolve_offline_config", "resolve_online_config",
           "train_offline"]  # fmt: skip


@dataclass(frozen=True)
class OfflineTrainConfig:
    """One offline training run: dataset, learner, budget, evaluation, outputs."""

    algo: OfflineAlgo = "iql"
    """Offline learner: bc, iql, riql (IQL + obs normalisation + Huber Q loss + quantile V target), cql, td3bc."""
    dataset: str = ""
    """Minari dataset id (NAMESPACE/NAME-vN, under MINARI_DATASETS_PATH or --root) or a .npz/.h5 transition file."""
    root: Path | None = None
    """Minari datasets folder (default: MINARI_DATASETS_PATH, else ~/.minari/datasets)."""
    env: str = ""
    """Environment to evaluate in (default: the dataset's own env id)."""
    updates: int = 100_000
    """Gradient updates to train for."""
    eval_every: int = 10_000
    """Updates between evaluations (0: evaluate only at the end)."""
    eval_episodes: int = 10
    """Episodes per evaluation (deterministic policy, in the real env)."""
    seed: int = 0
    """Seeds the networks, the minibatches and the evaluation."""
    set: tuple[str, ...] = ()
    """Overrides of the learner config (IQLConfig/CQLConfig/TD3BCConfig/BCConfig fields) as key=value."""
    reweight: Literal["none", "return"] = "none"
    """Trajectory reweighting for mixed datasets: none (uniform transitions) or return (episodes sampled by return)."""
    reweight_temperature: float = 0.1
    """Temperature of return reweighting, in units of the dataset's return range (small: only the best episodes)."""
    online_steps: int = 0
    """After the offline updates, fine-tune online for this many env transitions (RO2O; 0: offline only)."""
    online_set: tuple[str, ...] = ()
    """Overrides of the online phase's OnlineConfig (beta, smooth_eps, smooth_weight, offline_ratio...) as key=value."""
    out: Path | None = None
    """Run folder for config.json, policy.zip, eval.json, checkpoint.pt, result.json (None: write nothing)."""
    overwrite: bool = False
    """Replace the run already in OUT (its files are removed first; other files are never touched)."""
    resume: bool = False
    """Continue the unfinished run in OUT from its last checkpoint (same options; ends as the uninterrupted run)."""
    progress: bool = False
    """Show a progress bar."""

    def validate(self) -> None:
        """Raise a ``ValueError`` naming the first bad field."""
        if self.algo not in OFFLINE_ALGORITHMS:
            raise ValueError(f"unknown offline algo {self.algo!r}; choose from {sorted(OFFLINE_ALGORITHMS)}")
        if not self.dataset:
            raise ValueError("pass --dataset: a Minari dataset id or a .npz/.h5 transition file")
        check_seed(self.seed)
        check_count(self.updates, "updates")
        check_count(self.eval_episodes, "eval_episodes")
        if self.eval_every < 0:
            raise ValueError(f"eval_every must be ≥ 0, got {self.eval_every}")
        if self.reweight not in ("none", "return"):
            raise ValueError(f"reweight must be none or return, got {self.reweight!r}")
        if not (math.isfinite(self.reweight_temperature) and self.reweight_temperature > 0):
            raise ValueError(f"reweight_temperature must be > 0, got {self.reweight_temperature}")
        if self.online_steps < 0:
            raise ValueError(f"online_steps must be ≥ 0, got {self.online_steps}")
        if self.online_set and self.online_steps == 0:
            raise ValueError("--online-set configures the online phase: pass --online-steps N > 0")
        if self.online_steps > 0:
            check_count(self.online_steps, "online_steps")
        if (self.overwrite or self.resume) and self.out is None:
            raise ValueError("--overwrite and --resume need a run folder: pass --out")


def corruption_of(data: OfflineDataset) -> tuple[str, float, dict[str, Any]]:
    """``("clean", 0, {})`` or ``("MODE:ELEMENT", ε, config)`` from the dataset's stored corruption config."""
    cfg = data.meta.get("corruption")
    if not isinstance(cfg, dict):
        return "clean", 0.0, {}
    return f"{cfg.get('mode')}:{cfg.get('element')}", float(cfg.get("scale", 0.0)), cfg


def resolve_offline_config(cfg: OfflineTrainConfig, data: OfflineDataset, env_id: str) -> Any:
    """The learner config: the algorithm's defaults (RIQL: its per-env preset), then ``--set`` overrides."""
    _, cfg_cls = learner_for(cfg.algo, data)
    if cfg.algo == "riql":
        _, _, corruption = corruption_of(data)
        base = riql_preset(env_id, corruption.get("mode"), corruption.get("element"))
    else:
        base = cfg_cls()
    algo_cfg = apply_overrides(base, cfg.set)
    algo_cfg.validate()
    return algo_cfg


def learner_for(algo: str, data: OfflineDataset) -> tuple[type[Any], type[Any]]:
    """Learner and config classes of ``algo`` for the dataset's kind of actions (Box or Discrete).

    Raises:
        ValueError: an algorithm that needs Box actions on a dataset of Discrete ones.
    """
    if not data.discrete:
        return OFFLINE_ALGORITHMS[algo]
    if algo not in DISCRETE_ALGORITHMS:
        raise ValueError(f"--algo {algo} needs Box actions; this dataset's actions are Discrete: use "
                         f"{' or '.join(sorted(DISCRETE_ALGORITHMS))}")  # fmt: skip
    return DISCRETE_ALGORITHMS[algo]


def resolve_online_config(cfg: OfflineTrainConfig, num_critics: int) -> OnlineConfig | None:
    """The online phase's config (``--online-set`` over its defaults), checked; None: offline only."""
    if cfg.online_steps == 0:
        return None
    online = apply_overrides(OnlineConfig(), cfg.online_set, what="--online-set")
    online.validate()
    check_online_algo(cfg.algo, num_critics, online)
    if cfg.online_steps % online.num_envs:
        raise ValueError(f"online_steps ({cfg.online_steps}) must be a multiple of OnlineConfig.num_envs "
                         f"({online.num_envs})")  # fmt: skip
    return online


def _evaluate(policy: Any, env: Any, episodes: int, seed: int) -> torch.Tensor:
    policy.eval()
    with torch.no_grad():
        returns = rollout(policy, env, episodes, seed=seed).returns
    policy.train()
    return returns


def train_offline(cfg: OfflineTrainConfig) -> OfflineTrainResult:
    """Train an offline learner on a dataset and return the policy with its evaluation history.

    Raises:
        ValueError: a bad config, an unreadable dataset, an algorithm for Box actions on Discrete ones, or a
            dataset that does not fit the env.
    """
    cfg.validate()
    data = load_dataset(cfg.dataset, root=cfg.root)
    env_id = cfg.env or data.env_id
    if not env_id:
        raise ValueError(f"dataset {cfg.dataset!r} names no env: pass --env")
    algo_cfg = resolve_offline_config(cfg, data, env_id)
    if data.discrete and cfg.online_steps > 0:
        raise ValueError("--online-steps fine-tunes Box-action learners only; this dataset's actions are Discrete")
    online_cfg = resolve_online_config(cfg, algo_cfg.num_critics)
    corruption, scale, _ = corruption_of(data)
    run_dir = Path(cfg.out) if cfg.out is not None else None
    meta: dict[str, Any] = {
        "run_id": new_run_id(), "train_offline": config_to_dict(cfg), "algo": config_to_dict(algo_cfg),
        "algo_class": type(algo_cfg).__name__, "dataset_meta": data.meta, "provenance": provenance(),
    }  # fmt: skip
    sections: tuple[str, ...] = ("train_offline", "algo")
    if online_cfg is not None:
        meta["online"] = config_to_dict(online_cfg)
        sections += ("online",)
    checkpoint = None
    if run_dir is not None and prepare_run_dir(run_dir, overwrite=cfg.overwrite, resume=cfg.resume):
        defaults = {"train_offline": field_defaults(type(cfg)), "algo": field_defaults(type(algo_cfg)),
                    "online": field_defaults(OnlineConfig)}  # fmt: skip
        meta["run_id"] = check_resume_config(run_dir, meta, sections=sections, defaults=defaults)
        checkpoint = load_checkpoint(run_dir / "checkpoint.pt")
    eval_env = make_env(env_id, min(cfg.eval_episodes, 16), seed=_child(cfg.seed, 11))
    try:
        space = eval_env.action_space
        if not isinstance(space, gym.spaces.Box | gym.spaces.Discrete):
            raise ValueError(f"the offline learners need a Box or Discrete action space; {env_id} has {space!r}")
        if isinstance(space, gym.spaces.Discrete) != data.discrete:
            kind = "Discrete" if data.discrete else "Box"
            raise ValueError(f"{env_id}'s actions are {space}, the dataset's are {kind}: pass the dataset's --env")
        obs_dim = flat_dim(eval_env.observation_space)
        if data.observations.shape[1] != obs_dim:
            raise ValueError(f"dataset observations have {data.observations.shape[1]} dims, {env_id} has {obs_dim}")
        weights = return_weights(data, cfg.reweight_temperature) if cfg.reweight == "return" else None
        buffer = OfflineBuffer(data, space, weights)
        learner = learner_for(cfg.algo, data)[0](eval_env.observation_space, space, data, algo_cfg, seed=cfg.seed)
        if run_dir is not None and checkpoint is None:
            write_json(run_dir / "config.json", meta)
        online = None
        if online_cfg is not None:
            online_env = make_env(env_id, online_cfg.num_envs, seed=_child(cfg.seed, 12))
            replay = OnlineReplay(buffer, cfg.online_steps)
            online = OnlineFineTuner(learner, replay, online_env, online_cfg, seed=_child(cfg.seed, 13))
        try:
            return _loop(cfg, data, env_id, corruption, scale, learner, buffer, eval_env, run_dir, meta, checkpoint,
                         online)  # fmt: skip
        finally:
            if online is not None:
                online.env.close()
    finally:
        eval_env.close()


def _loop(
    cfg: OfflineTrainConfig, data: OfflineDataset, env_id: str, corruption: str, scale: float, learner: Any,
    buffer: OfflineBuffer, eval_env: Any, run_dir: Path | None, meta: dict[str, Any],
    checkpoint: dict[str, Any] | None = None, online: OnlineFineTuner | None = None,
) -> OfflineTrainResult:  # fmt: skip
    from robustrl.policies import save_policy

    gen = torch.Generator().manual_seed(_child(cfg.seed, 3))
    algo_cfg = learner.cfg
    history: list[OfflineEvalRecord] = []
    if checkpoint is not None:  # continue exactly where the last checkpoint left off
        load_learner_state(learner, checkpoint["learner"])
        gen.set_state(checkpoint["sample_generator"])
        history = [OfflineEvalRecord(**r) for r in checkpoint["history"]]
        if online is not None and "online" in checkpoint:
            online.load_state_dict(checkpoint["online"])
        logger.info("resuming %s at update %d", run_dir, learner.updates)
    eval_time = 0.0
    start = time.perf_counter()
    step_eval = cfg.eval_every if cfg.eval_every > 0 else cfg.updates
    has_refs = data.ref_min_score is not None and data.ref_max_score is not None
    last: dict[str, Any] = {}

    def record(metrics: dict[str, Any], phase: Literal["offline", "online"]) -> float:
        """Evaluate, append to the history, refresh the run folder's files; returns the mean return."""
        nonlocal eval_time, last
        last = {k: float(v) for k, v in metrics.items()}
        t0 = time.perf_counter()
        learner.sync_policy()
        returns = _evaluate(learner.policy, eval_env, cfg.eval_episodes, _child(cfg.seed, 1000 + len(history)))
        eval_time += time.perf_counter() - t0
        mean = float(returns.mean())
        rec = OfflineEvalRecord(
            step=learner.updates, wall_time=time.perf_counter() - start, mean_return=mean,
            std_return=float(returns.std(unbiased=False)),
            normalized_score=float(data.normalized_score(mean)) if has_refs else None, phase=phase,
            env_steps=online.env_steps if online is not None and phase == "online" else 0,
        )  # fmt: skip
        history.append(rec)
        logger.info("%s update %d: eval return %.1f (score %s)", phase, rec.step, mean, rec.normalized_score)
        if run_dir is not None:
            save_policy(learner.policy, run_dir / "policy.zip", env_id=env_id, config=meta)
            records = [dataclasses.asdict(r) for r in history]
            write_json(run_dir / "eval.json", records)
            state = {"run_id": meta["run_id"], "learner": learner_state(learner), "sample_generator": gen.get_state(),
                     "history": records}  # fmt: skip
            if online is not None and phase == "online":
                state["online"] = online.state_dict()
            save_checkpoint(run_dir / "checkpoint.pt", state)
        return mean

    with progress_bar(total=cfg.updates, initial=learner.updates, desc=f"{cfg.algo} {cfg.dataset}", unit="update",
              disable=not cfg.progress) as bar:  # fmt: skip
        while learner.updates < cfg.updates:
            metrics = learner.update(buffer.sample(algo_cfg.batch_size, gen))
            bar.update(1)
            if learner.updates % step_eval == 0 or learner.updates == cfg.updates:
                bar.set_postfix(eval=f"{record(metrics, 'offline'):.1f}")
    if online is not None:
        ocfg = online.cfg
        online_eval = ocfg.eval_every if ocfg.eval_every > 0 else cfg.online_steps
        with progress_bar(total=cfg.online_steps, initial=online.env_steps, desc=f"{cfg.algo} online", unit="step",
                  disable=not cfg.progress) as bar:  # fmt: skip
            while online.env_steps < cfg.online_steps:
                before = online.env_steps
                metrics = online.step()
                bar.update(online.env_steps - before)
                if online.env_steps // online_eval > before // online_eval or online.env_steps == cfg.online_steps:
                    bar.set_postfix(eval=f"{record(metrics, 'online'):.1f}")
    wall = time.perf_counter() - start
    learner.policy.eval()
    result = OfflineTrainResult(
        env_id=env_id, algo=cfg.algo, dataset=cfg.dataset, corruption=corruption, corruption_scale=scale,
        seed=cfg.seed, updates=learner.updates, wall_time=wall, train_time=wall - eval_time,
        history=tuple(history), online_steps=online.env_steps if online is not None else 0,
        config={k: v for k, v in meta.items() if k not in ("provenance", "run_id")},
        provenance=meta["provenance"], last_train_metrics=last,
        run_dir=str(run_dir) if run_dir is not None else None, run_id=meta["run_id"], policy=learner.policy,
    )  # fmt: skip
    if run_dir is not None:
        result.save(run_dir / "result.json")
    return result


def _child(seed: int, key: int) -> int:
    child = derive_seed(seed, key)
    assert child is not None
    return child
