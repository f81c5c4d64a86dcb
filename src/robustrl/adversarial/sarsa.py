"""Robust Sarsa (Zhang et al., NeurIPS 2020): learn the frozen victim's ``Q^π``, then attack with PGD on it.

The victim (sampling its actions) runs in the env through :func:`~robustrl.rollout.collect`; after every
chunk of steps, ``Q`` takes Adam steps on the Sarsa TD loss with targets ``r + γ·(1 − terminated)·Q(s′, a′)``,
``a′ ~ π(·|s′)`` (truncation bootstraps from the final observation; a recurrent victim samples ``a′`` from
the LSTM state it had after the step, recomputed over the chunk, see :func:`next_actions`), plus the
robustness regulariser ``κ·E[max_{ŝ ∈ B_ε(s)} (Q(ŝ, a) − Q(s, a))²]`` whose inner max is a batched PGD search.
The attack itself is :class:`~robustrl.threats.robust_sarsa.SarsaAttack`. The trained ``Q`` is cached like the learned
adversaries (same key: victim hash, ε, units, config).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from robustrl.adversarial.learned import CachedAdversary, adversary_cache_path
from robustrl.common.config import config_to_dict
from robustrl.common.io import atomic_path
from robustrl.common.limits import check_count
from robustrl.common.progress import progress_bar
from robustrl.common.seeding import check_seed, derive_seed, torch_generator
from robustrl.envs import make_env
from robustrl.policies.base import Policy
from robustrl.policies.recurrent import RecurrentActorCriticPolicy
from robustrl.rollout import Trajectory, collect, start_collect
from robustrl.threats import projection as P
from robustrl.threats.objectives import is_discrete
from robustrl.threats.pgd import SearchConfig, prepare, run_search
from robustrl.threats.robust_sarsa import SarsaAttack, SarsaQ

logger = logging.getLogger(__name__)

__all__ = ["RobustSarsaConfig", "cached_sarsa_attack", "next_actions", "next_params", "train_sarsa_q"]


@dataclass(frozen=True)
class RobustSarsaConfig:
    """How robust Sarsa learns the victim's Q and attacks with it."""

    total_steps: int = 50_000
    """Environment transitions of the victim used to learn Q."""
    num_envs: int = 32
    """Env copies collecting together."""
    chunk: int = 16
    """Steps per copy between updates."""
    updates: int = 4
    """Adam steps per chunk."""
    learning_rate: float = 1e-3
    """Adam step size."""
    gamma: float = 0.99
    """Discount of Q."""
    kappa: float = 0.1
    """Weight of the robustness regulariser."""
    reg_steps: int = 3
    """PGD steps of the regulariser's inner max."""
    hidden: tuple[int, ...] = (64, 64)
    """Hidden widths of the Q network."""
    attack_steps: int = 10
    """PGD steps of the attack."""
    norm: Literal["linf", "l2"] = "linf"
    """Which ℓp ball."""
    seed: int = 0
    """Seed of the collection and of Q's initialisation."""

    def validate(self) -> None:
        """Raise a ``ValueError`` naming the first bad field."""
        for name in ("total_steps", "num_envs", "chunk", "updates", "reg_steps", "attack_steps"):
            check_count(getattr(self, name), f"RobustSarsaConfig.{name}")
        if not self.learning_rate > 0 or not 0 <= self.gamma <= 1 or not self.kappa >= 0:
            raise ValueError("RobustSarsaConfig: learning_rate must be > 0, gamma in [0, 1], kappa ≥ 0")
        P.check_norm(self.norm)
        check_seed(self.seed, "RobustSarsaConfig.seed")

    def search(self) -> SearchConfig:
        """The attack's PGD settings."""
        return SearchConfig(steps=self.attack_steps, norm=self.norm)


def _regularizer(q: SarsaQ, victim: Policy, obs: torch.Tensor, act: torch.Tensor, budget: float,
                 cfg: RobustSarsaConfig, scale: torch.Tensor | None, gen: torch.Generator) -> torch.Tensor:
    """``mean max_{ŝ ∈ B(s)} (Q(ŝ, a) − Q(s, a))²`` with the inner max by PGD (the outer gradient flows)."""
    obs, radius, scale, box = prepare(victim, obs, budget, scale)
    with torch.no_grad():
        ref = q(obs, act)
    search = SearchConfig(steps=cfg.reg_steps, norm=cfg.norm)
    u = run_search(lambda x: (q(x, act) - ref).square(), obs, radius, gen, search, box=box, scale=scale)
    return (q(P.apply(obs, u.detach(), scale, box), act) - q(obs, act)).square().mean()


def next_params(victim: RecurrentActorCriticPolicy, traj: Trajectory, nxt: torch.Tensor, start: torch.Tensor,
                state0: torch.Tensor | None) -> torch.Tensor:
    """A recurrent victim's action parameters ``[T, N, A]`` at the successors ``nxt = traj.next_obs(clean=True)``.

    The LSTM state after every step is recomputed over the chunk from ``state0`` (the carried state before
    :func:`~robustrl.rollout.collect`; zeros where it was None or of another batch size) with the episode
    starts ``start [N]`` of the chunk's first step and the ``done`` flags after it, so the successor of step t
    (the next observation, or the final one where an episode ended) is read with the state the victim had
    after step t: exactly what it would act on next, truncated episodes included.
    """
    t_len, n = traj.done.shape
    if state0 is None or state0.shape[1] != n:
        state0 = victim.initial_state(n)
    starts = torch.cat([start.view(1, n), traj.done[:-1]])
    _, _, after = victim.sequence(traj.obs, starts, state0)
    params = victim.action_params_with(nxt.flatten(0, 1).float(), after.transpose(0, 1).flatten(1, 2))
    return params.view(t_len, n, -1)


def next_actions(victim: Policy, traj: Trajectory, nxt: torch.Tensor, start: torch.Tensor,
                 state0: torch.Tensor | None, gen: torch.Generator) -> torch.Tensor:
    """Sarsa's ``a′ ~ π(·|s′)`` at the successors ``nxt [T, N, ...]`` of ``traj``, flattened to ``[T·N, ...]``."""
    if isinstance(victim, RecurrentActorCriticPolicy):
        params = next_params(victim, traj, nxt, start, state0).flatten(0, 1)
        return victim.actions_from_params(params, deterministic=False, generator=gen)
    return victim.act(nxt.flatten(0, 1).float(), deterministic=False, generator=gen)


def train_sarsa_q(
    victim: Policy,
    env_id: str,
    budget: float,
    cfg: RobustSarsaConfig,
    *,
    normalized: bool = False,
    device: str = "cpu",
    env_kwargs: dict[str, Any] | None = None,
    progress: bool = False,
) -> SarsaQ:
    """Learn ``Q^π`` of the frozen ``victim`` on ``env_id`` by robust Sarsa at radius ε = ``budget``.

    Raises:
        ValueError: a bad config or budget, or a victim without a Box observation space.
    """
    cfg.validate()
    if not budget > 0:
        raise ValueError(f"robust Sarsa needs a budget > 0, got {budget}")
    seed = derive_seed(cfg.seed, 9)
    assert seed is not None
    env = make_env(env_id, cfg.num_envs, device=device, seed=seed, **dict(env_kwargs or {}))
    discrete = is_discrete(victim)
    space = env.action_space
    act_dim = int(space.n) if discrete else int(np.prod(space.shape or (1,)))  # type: ignore[attr-defined]
    obs_dim = int(np.prod(env.observation_space.shape or (1,)))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        q = SarsaQ(obs_dim, act_dim, discrete, cfg.hidden).to(env.device)
    opt = torch.optim.Adam(q.parameters(), lr=cfg.learning_rate)
    gen = torch_generator(derive_seed(seed, 1), env.device)
    scale = P.observation_scale(victim) if normalized else None
    state = start_collect(env, seed=seed)
    steps = 0
    try:
        with progress_bar(total=cfg.total_steps, desc=f"robust sarsa ε={budget:g}", unit="step",
                          disable=not progress) as bar:
            while steps < cfg.total_steps:
                state0 = getattr(victim, "recurrent_state", None)
                with torch.no_grad():
                    traj = collect(victim, env, cfg.chunk, state=state, deterministic=False)
                    successors = traj.next_obs(clean=True)
                    next_act = next_actions(victim, traj, successors, state.episode_start, state0, gen)
                state = traj.state
                steps += cfg.chunk * cfg.num_envs
                bar.update(cfg.chunk * cfg.num_envs)
                obs = traj.clean_obs.flatten(0, 1)
                acts = traj.actions.flatten(0, 1)
                nxt = successors.flatten(0, 1)
                alive = (~traj.terminated.flatten()).float()
                rewards = traj.rewards.flatten().float()
                for _ in range(cfg.updates):
                    with torch.no_grad():
                        target = rewards + cfg.gamma * alive * q(nxt, next_act)
                    loss = (q(obs, acts) - target).square().mean()
                    if cfg.kappa > 0:
                        loss = loss + cfg.kappa * _regularizer(q, victim, obs, acts, budget, cfg, scale, gen)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
        logger.info("robust sarsa ε=%g: %d steps, last loss %.4f", budget, steps, float(loss.detach()))
    finally:
        env.close()
    q.eval()
    return q


def cached_sarsa_attack(
    victim: Policy,
    env_id: str,
    budget: float,
    cfg: RobustSarsaConfig,
    *,
    cache_dir: str | Path | None,
    victim_sha: str | None = None,
    normalized: bool = False,
    device: str = "cpu",
    env_kwargs: dict[str, Any] | None = None,
    progress: bool = False,
) -> CachedAdversary:
    """The robust-Sarsa attack of ``victim`` at ε, its Q loaded from ``cache_dir`` or trained and saved there.

    The file ``cache_dir/robust-sarsa-<key>.pt`` holds tensors and numbers only (read with
    ``torch.load(weights_only=True)``), written atomically.
    """
    cfg.validate()
    path, _ = adversary_cache_path(cache_dir, "robust-sarsa.pt", victim, victim_sha, env_id, budget, normalized, cfg)
    if path is not None:
        if path.is_file():
            data = torch.load(path, map_location=device, weights_only=True)
            q = SarsaQ(int(data["obs_dim"]), int(data["act_dim"]), bool(data["discrete"]), tuple(data["hidden"]))
            q.load_state_dict(data["state_dict"])
            q.to(device).eval()
            return CachedAdversary(SarsaAttack(q, float(budget), cfg.search(), normalized), path, True)
    q = train_sarsa_q(victim, env_id, budget, cfg, normalized=normalized, device=device, env_kwargs=env_kwargs,
                      progress=progress)
    if path is not None:
        with atomic_path(path) as tmp:
            torch.save({"state_dict": q.state_dict(), "obs_dim": q.obs_dim, "act_dim": q.act_dim,
                        "discrete": q.discrete, "hidden": list(q.hidden), "config": config_to_dict(cfg)}, tmp)
    return CachedAdversary(SarsaAttack(q, float(budget), cfg.search(), normalized), path, False)
