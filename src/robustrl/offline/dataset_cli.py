"""``robustrl dataset collect|corrupt|info``: one config, one entry point returning a :class:`DatasetSummary`.

* ``collect --policy P --env E --episodes N --id NS/NAME-v0`` (or ``--recipe random|medium|expert|medium-replay|
  medium-expert``) writes a Minari dataset (and/or ``--npz FILE``);
* ``corrupt D --element obs|actions|rewards|next_obs|all --mode random|adversarial --rate c --scale ε --id NEW``
  writes the corrupted copy with its mask and config (``--critic POLICY`` for adversarial mode);
* ``info D [--reference R]`` prints size, returns, TQ and SACo.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from robustrl.common.seeding import check_seed
from robustrl.envs import make_env
from robustrl.offline.collect import RECIPES, RandomPolicy, collect_episodes, make_recipe, reference_return
from robustrl.offline.corruption import CorruptionConfig, corrupt
from robustrl.offline.data import OfflineDataset, load_dataset, save_npz, write_minari
from robustrl.offline.measures import state_action_coverage, trajectory_quality
from robustrl.results.offline import DatasetSummary

__all__ = ["DatasetConfig", "dataset", "summarize"]


@dataclass(frozen=True)
class DatasetConfig:
    """Collect, corrupt or describe an offline dataset."""

    action: Literal["collect", "corrupt", "info"]
    """collect: write a dataset from a policy or a recipe; corrupt: write a corrupted copy; info: describe one."""
    source: str = ""
    """The dataset to corrupt or describe: a Minari id or a .npz/.h5 transition file."""
    id: str = ""
    """Minari id of the dataset to write (NAMESPACE/NAME-vN)."""
    npz: Path | None = None
    """Also (or only) write the dataset as a .npz transition file here."""
    root: Path | None = None
    """Minari datasets folder (default: MINARI_DATASETS_PATH, else ~/.minari/datasets)."""
    policy: str = ""
    """collect: the behaviour policy (a policy file or run folder robustrl loads, or 'random'); with --recipe,
    the expert the recipe uses instead of training one."""
    recipe: str = ""
    """collect: a D4RL-like recipe instead of a policy: random, medium, expert, medium-replay, medium-expert."""
    env: str = ""
    """collect: the environment id."""
    episodes: int = 10
    """collect: complete episodes to keep (medium-expert: this many of each)."""
    noise: float = 0.0
    """collect: behaviour noise (ε-greedy for Discrete actions, Gaussian std in half-ranges for Box)."""
    expert_steps: int | None = None
    """collect with a recipe: environment steps of the expert's training (None: the env's recipe budget)."""
    ref_min: float | None = None
    """collect: reference return of score 0 (None: measured, the random policy's mean return)."""
    ref_max: float | None = None
    """collect: reference return of score 100 (None: the behaviour policy's own mean return when it is not random)."""
    element: Literal["obs", "actions", "rewards", "next_obs", "all"] = "obs"
    """corrupt: the element (all: the four at once, independent masks)."""
    mode: Literal["random", "adversarial"] = "random"
    """corrupt: random noise, or adversarial (minimising --critic's Q)."""
    rate: float = 0.3
    """corrupt: c, the probability a transition (or episode, with --trajectory) is corrupted."""
    scale: float = 1.0
    """corrupt: ε, the corruption scale."""
    trajectory: bool = False
    """corrupt: corrupt whole episodes (RDT's trajectory-level protocol)."""
    keep: float = 1.0
    """corrupt: fraction of episodes kept before corrupting (subsampling, e.g. 0.1 or 0.01)."""
    attack_steps: int = 100
    """corrupt --mode adversarial: signed-gradient steps."""
    attack_step_size: float = 0.01
    """corrupt --mode adversarial: step size as a fraction of ε."""
    critic: str = ""
    """corrupt --mode adversarial: a policy with a Q critic pretrained on the clean data (e.g. a train-offline
    run's policy.zip)."""
    reference: str = ""
    """info: the reference dataset of SACo (e.g. the replay of online training); empty: no SACo."""
    decimals: int = 2
    """info: rounding of states and actions before unique state-action pairs are counted."""
    seed: int = 0
    """Seeds collection, corruption masks and noise."""
    progress: bool = False
    """Show progress bars while training behaviour policies."""

    def validate(self) -> None:
        """Raise a ``ValueError`` naming the first bad field."""
        check_seed(self.seed)
        if self.action not in ("collect", "corrupt", "info"):
            raise ValueError(f"dataset action must be collect, corrupt or info, got {self.action!r}")
        if self.action == "collect":
            if not (self.policy or self.recipe):
                raise ValueError("dataset collect needs --policy or --recipe")
            if self.recipe and self.policy == "random":
                raise ValueError("--policy with --recipe names the recipe's expert; 'random' cannot be one")
            if self.recipe and self.policy and self.expert_steps is not None:
                raise ValueError("--expert-steps trains the recipe's expert; it cannot go with --policy")
            if self.recipe and self.recipe not in RECIPES:
                raise ValueError(f"unknown recipe {self.recipe!r}; choose from {list(RECIPES)}")
            if not self.env:
                raise ValueError("dataset collect needs --env")
            if self.episodes < 1:
                raise ValueError(f"episodes must be ≥ 1, got {self.episodes}")
        if self.action in ("corrupt", "info") and not self.source:
            raise ValueError(f"dataset {self.action} needs the dataset: robustrl dataset {self.action} D")
        if self.action in ("collect", "corrupt") and not (self.id or self.npz):
            raise ValueError(f"dataset {self.action} needs --id NAMESPACE/NAME-vN or --npz FILE to write to")
        if self.npz is not None and Path(self.npz).suffix != ".npz":
            raise ValueError(f"--npz must end in .npz, got {str(self.npz)!r}")
        if self.decimals < 0:
            raise ValueError(f"decimals must be ≥ 0, got {self.decimals}")

    def corruption(self) -> CorruptionConfig:
        """The corruption this config describes."""
        return CorruptionConfig(self.element, self.mode, self.rate, self.scale, self.trajectory, self.keep,
                                self.attack_steps, self.attack_step_size, self.seed)  # fmt: skip


def summarize(data: OfflineDataset, name: str, *, reference: OfflineDataset | None = None, decimals: int = 2,
              written: str | None = None) -> DatasetSummary:  # fmt: skip
    """Size, returns, TQ (with reference returns) and SACo (with a reference dataset) of ``data``."""
    returns = data.episode_returns()
    tq = None
    if data.ref_min_score is not None and data.ref_max_score is not None and data.ref_max_score != data.ref_min_score:
        tq = trajectory_quality(returns, ref_min=data.ref_min_score, ref_max=data.ref_max_score)
    saco = None
    if reference is not None:
        saco = state_action_coverage(data.observations, data.actions, reference.observations, reference.actions,
                                     decimals=decimals)  # fmt: skip
    frac = () if data.corrupted is None else tuple(float(x) for x in data.corrupted.mean(0))
    return DatasetSummary(
        dataset=name, env_id=data.env_id, transitions=data.num_transitions, episodes=data.num_episodes,
        return_mean=float(returns.mean()), return_std=float(returns.std()), return_min=float(returns.min()),
        return_max=float(returns.max()), terminations=int(data.terminations.sum()),
        truncations=int(data.truncations.sum()), ref_min_score=data.ref_min_score, ref_max_score=data.ref_max_score,
        tq=tq, saco=saco, corrupted_fraction=frac, written=written, meta=data.meta,
    )  # fmt: skip


def _write(data: OfflineDataset, cfg: DatasetConfig, what: str) -> str:
    if cfg.id:  # check the id and the target before the npz, so nothing is half-written on a bad id
        from robustrl.offline.data import dataset_root

        if (dataset_root(cfg.root) / cfg.id).exists():
            raise ValueError(f"Minari dataset {cfg.id!r} already exists; choose another --id")
    places = []
    if cfg.npz is not None:
        places.append(str(save_npz(data, cfg.npz)))
    if cfg.id:
        places.append(str(write_minari(data, cfg.id, root=cfg.root, description=what)))
    return ", ".join(places)


def _collect(cfg: DatasetConfig) -> OfflineDataset:
    from robustrl.policies import load_policy

    if cfg.recipe:
        expert = load_policy(cfg.policy, env_id=cfg.env) if cfg.policy else None
        return make_recipe(cfg.env, cfg.recipe, cfg.episodes, seed=cfg.seed, expert_steps=cfg.expert_steps,
                           noise=cfg.noise, progress=cfg.progress, expert=expert)  # fmt: skip

    env = make_env(cfg.env, min(cfg.episodes, 16), seed=cfg.seed)
    try:
        rand = RandomPolicy(env.observation_space, env.action_space)
        policy = rand if cfg.policy == "random" else load_policy(cfg.policy, env_id=cfg.env)
        meta = {"policy": cfg.policy, "env_id": cfg.env, "episodes": cfg.episodes, "noise": cfg.noise,
                "seed": cfg.seed}  # fmt: skip
        data = collect_episodes(policy, env, cfg.episodes, noise=cfg.noise, seed=cfg.seed, meta=meta)
    finally:
        env.close()
    ref_min = cfg.ref_min if cfg.ref_min is not None else reference_return(rand, cfg.env, seed=cfg.seed + 1)
    ref_max = cfg.ref_max
    if ref_max is None and cfg.policy != "random":
        ref_max = reference_return(policy, cfg.env, seed=cfg.seed + 2)
    return dataclasses.replace(data, ref_min_score=ref_min, ref_max_score=ref_max)


def dataset(cfg: DatasetConfig) -> DatasetSummary:
    """Run ``robustrl dataset ACTION`` and describe the resulting (or given) dataset.

    Raises:
        ValueError: a bad config, an unreadable dataset, an existing target id.
    """
    cfg.validate()
    if cfg.action == "collect":
        data = _collect(cfg)
        where = _write(data, cfg, f"robustrl collect {cfg.recipe or cfg.policy} on {cfg.env}")
        return summarize(data, cfg.id or str(cfg.npz), written=where)
    data = load_dataset(cfg.source, root=cfg.root)
    if cfg.action == "info":
        ref = load_dataset(cfg.reference, root=cfg.root) if cfg.reference else None
        return summarize(data, cfg.source, reference=ref, decimals=cfg.decimals)
    ccfg = cfg.corruption()
    ccfg.validate()
    policy = None
    if cfg.mode == "adversarial" and cfg.element != "rewards":
        if not cfg.critic:
            raise ValueError("--mode adversarial needs --critic: a policy with a Q critic trained on the clean data")
        from robustrl.policies import load_policy

        critic = Path(cfg.critic)
        if critic.is_dir():  # a finished train-offline run folder: its policy.zip
            if not (critic / "result.json").is_file():
                raise ValueError(f"--critic {cfg.critic!r} is not a finished run folder (no result.json)")
            critic = critic / "policy.zip"
        policy = load_policy(critic, env_id=data.env_id or None)
    new = corrupt(data, ccfg, policy=policy)
    new = dataclasses.replace(new, meta={**new.meta, "corrupted_from": cfg.source})
    where = _write(new, cfg, f"robustrl corrupt {cfg.mode}:{cfg.element} c={cfg.rate} ε={cfg.scale} of {cfg.source}")
    return summarize(new, cfg.id or os.fspath(cfg.npz or ""), written=where)

