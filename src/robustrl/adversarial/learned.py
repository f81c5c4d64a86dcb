"""Training learned state adversaries (``sa-rl``, ``pa-ad``) against a frozen victim, and their cache.

:func:`train_adversary` runs PPO in the adversary's MDP (:class:`~robustrl.adversarial.env.AdversaryEnv`):
``sa-rl`` (SA-MDP's optimal adversary, Zhang et al. 2020/2021) learns the perturbation itself, ``pa-ad``
(Sun et al. 2022) learns a direction in the victim's policy space that a PGD actor realises. The adversary's
training budget is part of the attack's definition (:class:`AdversaryConfig`), so a trained adversary is a
pure function of (victim, ε, config): :func:`cached_adversary` saves it under a key of the victim's weights
hash, ε, the threat units and the config, and loads it back instead of retraining.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

from torch import nn

from robustrl.adversarial.env import AdversaryEnv
from robustrl.agents.ppo import MUJOCO_PPO, PPO, PPOConfig
from robustrl.common.config import apply_overrides, config_to_dict
from robustrl.common.limits import check_count
from robustrl.common.progress import progress_bar
from robustrl.common.seeding import check_seed, derive_seed
from robustrl.envs import make_env
from robustrl.policies.base import Policy
from robustrl.threats.learned import LearnedAttack, LearnedKind
from robustrl.threats.pgd import SearchConfig
from robustrl.threats.robust_sarsa import SarsaAttack

logger = logging.getLogger(__name__)

ADVERSARY_PPO = PPOConfig(
    num_envs=32, num_steps=64, gamma=0.99, gae_lambda=0.95, learning_rate=1e-3, anneal_clip=False, num_epochs=10
)
"""PPO settings of an adversary on classic control: longer rollouts than the victim's CartPole preset and
γ = 0.99, since the adversary's only signal is how soon the victim's episode ends."""

ADVERSARY_PPO_PRESETS: dict[str, PPOConfig] = {
    env_id: dataclasses.replace(MUJOCO_PPO, normalize_reward=False)
    for env_id in ("Hopper-v5", "Walker2d-v5", "HalfCheetah-v5", "Ant-v5")
}
"""Adversary PPO settings for known env ids (others start from :data:`ADVERSARY_PPO`)."""


def adversary_ppo(env_id: str) -> PPOConfig:
    """The adversary's PPO preset on ``env_id``."""
    return ADVERSARY_PPO_PRESETS.get(env_id, ADVERSARY_PPO)


__all__ = ["ADVERSARY_PPO", "ADVERSARY_PPO_PRESETS", "AdversaryConfig", "CachedAdversary", "adversary_key",
           "adversary_ppo", "cached_adversary", "train_adversary", "victim_hash"]


@dataclass(frozen=True)
class AdversaryConfig:
    """How a learned adversary is trained against a frozen victim (part of an attack suite's definition)."""

    kind: LearnedKind = "sa-rl"
    """sa-rl: the adversary outputs the perturbation; pa-ad: a policy-space direction that a PGD actor realises."""
    total_steps: int = 100_000
    """Environment transitions the adversary trains for."""
    num_envs: int = 0
    """Env copies (0: the PPO preset of the env)."""
    norm: Literal["linf", "l2"] = "linf"
    """Which ℓp ball the perturbation stays in."""
    pgd_steps: int = 10
    """pa-ad: PGD steps of the actor."""
    ppo_set: tuple[str, ...] = ()
    """Overrides of the adversary's PPOConfig as key=value (on top of the adversary preset of the env)."""
    deterministic: bool = False
    """At test time play the adversary's mean action; false samples it (the stochastic policy PPO optimised)."""
    seed: int = 0
    """Seed of the adversary's training."""

    def validate(self) -> None:
        """Raise a ``ValueError`` naming the first bad field."""
        if self.kind not in ("sa-rl", "pa-ad"):
            raise ValueError(f"AdversaryConfig.kind must be 'sa-rl' or 'pa-ad', got {self.kind!r}")
        check_count(self.total_steps, "AdversaryConfig.total_steps")
        if self.num_envs != 0:
            check_count(self.num_envs, "AdversaryConfig.num_envs")
        if self.norm not in ("linf", "l2"):
            raise ValueError(f"AdversaryConfig.norm must be 'linf' or 'l2', got {self.norm!r}")
        check_count(self.pgd_steps, "AdversaryConfig.pgd_steps")
        check_seed(self.seed, "AdversaryConfig.seed")
        self.ppo_config("CartPole-v1")

    def search(self) -> SearchConfig:
        """PA-AD's actor search."""
        return SearchConfig(steps=self.pgd_steps, norm=self.norm)

    def ppo_config(self, env_id: str) -> PPOConfig:
        """The adversary's PPO settings on ``env_id``: :func:`adversary_ppo`, ``ppo_set``, then the budget."""
        base = adversary_ppo(env_id)
        cfg = apply_overrides(base, list(self.ppo_set), what="AdversaryConfig.ppo_set")
        cfg = dataclasses.replace(cfg, total_steps=self.total_steps,
                                  num_envs=self.num_envs or cfg.num_envs, normalize_reward=False)
        cfg.validate()
        return cfg


def train_adversary(
    victim: Policy,
    env_id: str,
    budget: float,
    cfg: AdversaryConfig,
    *,
    normalized: bool = False,
    device: str = "cpu",
    env_kwargs: dict[str, Any] | None = None,
    progress: bool = False,
) -> nn.Module:
    """Train a ``cfg.kind`` adversary of the frozen ``victim`` on ``env_id`` at budget ε = ``budget``.

    Args:
        victim: the attacked policy (not modified).
        env_id: the victim's env.
        budget: per-step ε in attack units (> 0).
        cfg: the adversary's training settings.
        normalized: attack units are the victim's normalised units (its ``obs_norm`` std).
        device: torch device of the env and the adversary.
        env_kwargs: extra keyword arguments of :func:`robustrl.make_env`.
        progress: show a progress bar.

    Returns:
        The adversary (an ``ActorCriticPolicy`` with Box actions in ``[-1, 1]^d``), in eval mode.

    Raises:
        ValueError: a bad config or budget, a victim without an observation normaliser when ``normalized``.
    """
    cfg.validate()
    if not budget > 0:
        raise ValueError(f"a learned adversary needs a budget > 0, got {budget}")
    ppo_cfg = cfg.ppo_config(env_id)
    seed = derive_seed(cfg.seed, 7)
    assert seed is not None
    env = make_env(env_id, ppo_cfg.num_envs, device=device, seed=seed, **dict(env_kwargs or {}))
    adv_env = AdversaryEnv(env, victim, cfg.kind, budget, norm=cfg.norm, normalized=normalized,
                           search=cfg.search(), seed=seed)
    was_training = getattr(victim, "training", False)
    if isinstance(victim, nn.Module):
        victim.eval()
    t0 = time.perf_counter()
    try:
        learner = PPO(adv_env, ppo_cfg, seed=cfg.seed)  # type: ignore[arg-type]
        with progress_bar(total=ppo_cfg.total_steps, desc=f"{cfg.kind} adversary ε={budget:g}", unit="step",
                  disable=not progress) as bar:
            while learner.steps < ppo_cfg.total_steps:
                before = learner.steps
                metrics = learner.iterate()
                bar.update(learner.steps - before)
        logger.info("%s adversary ε=%g: %d steps in %.1f s, last rollout reward %.3f", cfg.kind, budget,
                    learner.steps, time.perf_counter() - t0, float(metrics["train/rollout_reward"]))
    finally:
        adv_env.close()
        if isinstance(victim, nn.Module) and was_training:
            victim.train()
    learner.policy.eval()
    return learner.policy


def victim_hash(victim: Policy | str | Path) -> str:
    """SHA-256 of the victim: its file's bytes, or its parameters and buffers for a policy object."""
    h = hashlib.sha256()
    if isinstance(victim, str | Path):
        with open(victim, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()
    if not isinstance(victim, nn.Module):
        raise ValueError(f"cannot key an adversary by a {type(victim).__name__}: pass the victim's file")
    for name, tensor in sorted(victim.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def adversary_key(victim_sha: str, env_id: str, budget: float, normalized: bool, cfg: Any) -> str:
    """The cache key: a hash of the victim's hash, the env, ε, the units and the adversary config."""
    text = json.dumps({"victim": victim_sha, "env": env_id, "budget": float(budget), "normalized": normalized,
                       "adversary": config_to_dict(cfg)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def adversary_cache_path(
    cache_dir: str | Path | None,
    name: str,
    victim: Policy,
    victim_sha: str | None,
    env_id: str,
    budget: float,
    normalized: bool,
    cfg: Any,
) -> tuple[Path | None, str | None]:
    """Where an adversary is cached, and the victim's hash.

    Returns ``(cache_dir/<stem>-<key>.<suffix>, sha)`` for ``name = "<stem>.<suffix>"``, or ``(None, None)``
    without a cache folder (then nothing is hashed).
    """
    if cache_dir is None:
        return None, None
    sha = victim_sha or victim_hash(victim)
    stem, _, suffix = name.rpartition(".")
    return Path(cache_dir) / f"{stem}-{adversary_key(sha, env_id, budget, normalized, cfg)}.{suffix}", sha


class CachedAdversary(NamedTuple):
    """A trained adversary as an attack, where it is stored, and whether it was loaded rather than trained."""

    attack: LearnedAttack | SarsaAttack
    """The rollout ``obs_transform``."""
    path: Path | None
    """Its file (None: no cache folder)."""
    reused: bool
    """Loaded from the cache instead of trained."""


def cached_adversary(
    victim: Policy,
    env_id: str,
    budget: float,
    cfg: AdversaryConfig,
    *,
    cache_dir: str | Path | None,
    victim_sha: str | None = None,
    normalized: bool = False,
    device: str = "cpu",
    env_kwargs: dict[str, Any] | None = None,
    progress: bool = False,
) -> CachedAdversary:
    """The ``cfg.kind`` adversary of ``victim`` at ε, from ``cache_dir`` if trained before, else trained and saved.

    Args:
        victim: the attacked policy.
        env_id: its env.
        budget: ε in attack units.
        cfg: the adversary's training settings.
        cache_dir: folder of trained adversaries (None: train, keep nothing).
        victim_sha: the victim's :func:`victim_hash` (default: hashed from ``victim``'s weights).
        normalized: attack units are the victim's normalised units.
        device: torch device.
        env_kwargs: extra keyword arguments of :func:`robustrl.make_env`.
        progress: show a progress bar while training.

    Returns:
        :class:`CachedAdversary`. The file is ``cache_dir/<kind>-<key>.zip`` (robustrl policy format, written
        atomically), with the key's inputs in its metadata.
    """
    from robustrl.policies import load_policy, save_policy

    cfg.validate()

    def attack(adversary: Any) -> LearnedAttack:
        return LearnedAttack(cfg.kind, adversary, float(budget), cfg.norm, normalized, cfg.search(),
                             cfg.deterministic)

    path, sha = adversary_cache_path(cache_dir, f"{cfg.kind}.zip", victim, victim_sha, env_id, budget, normalized, cfg)
    if path is not None and path.is_file():
        logger.info("reusing the %s adversary %s", cfg.kind, path)
        return CachedAdversary(attack(load_policy(path, device=device)), path, True)
    adv = train_adversary(victim, env_id, budget, cfg, normalized=normalized, device=device,
                          env_kwargs=env_kwargs, progress=progress)
    if path is not None:
        meta = {"victim_sha256": sha, "env": env_id, "budget": float(budget), "normalized": normalized,
                "adversary": config_to_dict(cfg)}
        save_policy(adv, path, config=meta)  # type: ignore[arg-type]
    return CachedAdversary(attack(adv), path, False)
