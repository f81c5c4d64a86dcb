"""Data corruption of offline datasets: the RIQL protocol, and the trajectory mode and subsampling of RDT/ADG.

RIQL (Yang et al., *Towards Robust Offline Reinforcement Learning under Diverse Data Corruption*, ICLR 2024):
each transition's element is corrupted with probability ``c`` (``rate``) at scale ``ε`` (``scale``):

* random — states, actions, next states: ``x + λ ⊙ std(x)``, ``λ ~ U[−ε, ε]^d`` (``std`` per dimension over the
  dataset, before corruption); rewards: replaced by ``U[−30ε, 30ε]``;
* adversarial — ``λ ∈ [−ε, ε]^d`` found by signed-gradient steps that minimise a pretrained critic:
  ``Q(s + λ⊙std, a)`` for states, ``Q(s, a + λ⊙std)`` for actions, ``Q(s′ + λ⊙std, π(s′ + λ⊙std))`` for next
  states; rewards: ``r → −ε·r``.

``element="all"`` corrupts the four elements at once, each on its own random subset at rate ``c``.
``trajectory=True`` draws whole episodes with probability ``c`` and corrupts every transition of them (the
trajectory-level protocol of RDT); ``keep < 1`` first subsamples whole episodes (RDT/ADG's 10 % / 1 % data).
Corrupted actions are not clipped to the action box (as in the reference code).

The new dataset carries the mask (:attr:`OfflineDataset.corrupted`, ``bool [N, 4]``) and
``meta["corruption"]`` (the resolved config), both written with it by :func:`robustrl.offline.data.write_minari`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from robustrl.common.config import config_to_dict
from robustrl.offline.data import ELEMENTS, OfflineDataset

__all__ = ["CorruptionConfig", "adversarial_lambda", "corrupt"]

Element = Literal["obs", "actions", "rewards", "next_obs", "all"]


@dataclass(frozen=True)
class CorruptionConfig:
    """One corruption of a dataset (RIQL's protocol)."""

    element: Element = "obs"
    """What to corrupt: obs, actions, rewards, next_obs, or all four at once (independent masks)."""
    mode: Literal["random", "adversarial"] = "random"
    """random: x + λ⊙std(x), λ ~ U[−ε, ε]^d (rewards ~ U[−30ε, 30ε]); adversarial: λ minimising a critic's Q
    (rewards → −ε·r)."""
    rate: float = 0.3
    """c: probability that a transition (or, with trajectory=True, an episode) is corrupted."""
    scale: float = 1.0
    """ε: the corruption scale."""
    trajectory: bool = False
    """Corrupt whole episodes (each with probability c) instead of single transitions."""
    keep: float = 1.0
    """Fraction of the episodes to keep before corrupting (RDT/ADG subsampling: 0.1, 0.01)."""
    attack_steps: int = 100
    """Signed-gradient steps of the adversarial search (RIQL's reference: 100)."""
    attack_step_size: float = 0.01
    """Step of the adversarial search, as a fraction of ε (RIQL's reference: 0.01)."""
    seed: int = 0
    """Seeds the masks and the random noise."""

    def validate(self) -> None:
        """Raise a ``ValueError`` naming the first bad field."""
        if self.element not in (*ELEMENTS, "all"):
            raise ValueError(f"corruption element must be one of {[*ELEMENTS, 'all']}, got {self.element!r}")
        if self.mode not in ("random", "adversarial"):
            raise ValueError(f"corruption mode must be random or adversarial, got {self.mode!r}")
        if not (math.isfinite(self.rate) and 0.0 <= self.rate <= 1.0):
            raise ValueError(f"corruption rate must be in [0, 1], got {self.rate}")
        if not (math.isfinite(self.scale) and self.scale >= 0):
            raise ValueError(f"corruption scale must be ≥ 0, got {self.scale}")
        if not (math.isfinite(self.keep) and 0.0 < self.keep <= 1.0):
            raise ValueError(f"corruption keep must be in (0, 1], got {self.keep}")
        if self.attack_steps < 1 or not self.attack_step_size > 0:
            raise ValueError("corruption attack_steps must be ≥ 1 and attack_step_size > 0")


def _masks(data: OfflineDataset, cfg: CorruptionConfig, rng: np.random.Generator) -> np.ndarray:
    """``bool [N, 4]``: which element of which transition to corrupt."""
    n = data.num_transitions
    cols = range(len(ELEMENTS)) if cfg.element == "all" else [ELEMENTS.index(cfg.element)]
    mask = np.zeros((n, len(ELEMENTS)), bool)
    _, inverse = np.unique(data.episode_ids, return_inverse=True)
    for j in cols:
        if cfg.trajectory:
            mask[:, j] = (rng.random(int(inverse.max()) + 1) < cfg.rate)[inverse]
        else:
            mask[:, j] = rng.random(n) < cfg.rate
    return mask


def adversarial_lambda(
    objective: Any, x: torch.Tensor, std: torch.Tensor, eps: float, steps: int, step: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``λ ∈ [−ε, ε]^d`` ``[B, d]`` lowering ``objective(x + λ⊙std) -> [B]`` by signed-gradient steps.

    Starts from ``λ ~ U[−ε, ε]^d``; each step is ``λ ← clip(λ − step·ε·sign(∇_λ Σ objective), −ε, ε)`` (the
    reference code takes one fresh Adam step of learning rate ``step·ε`` per iteration, whose first step is
    exactly this signed step).
    """
    lam = (torch.rand(x.shape, generator=generator) * 2 - 1) * eps
    for _ in range(steps):
        lam.requires_grad_(True)
        (grad,) = torch.autograd.grad(objective(x + lam * std).sum(), lam)
        lam = (lam.detach() - step * eps * grad.sign()).clamp(-eps, eps)
    return lam.detach()


def _adversarial(
    data: OfflineDataset, name: str, rows: np.ndarray, std: np.ndarray, cfg: CorruptionConfig, policy: Any
) -> np.ndarray:
    """New values of element ``name`` at ``rows`` found by the adversarial search against the policy's Q."""
    q_sa, q_next = _q_functions(policy)
    obs = torch.as_tensor(data.observations[rows])
    act = torch.as_tensor(data.actions[rows])
    nxt = torch.as_tensor(data.next_observations[rows])
    s = torch.as_tensor(std, dtype=torch.float32)
    gen = torch.Generator().manual_seed(cfg.seed)
    out = []
    for chunk in torch.arange(len(rows)).split(4096):
        o, a, n = obs[chunk], act[chunk], nxt[chunk]
        if name == "obs":
            lam = adversarial_lambda(lambda x, a=a: q_sa(x, a), o, s, cfg.scale, cfg.attack_steps,
                                     cfg.attack_step_size, gen)  # fmt: skip
            out.append(o + lam * s)
        elif name == "actions":
            lam = adversarial_lambda(lambda x, o=o: q_sa(o, x), a, s, cfg.scale, cfg.attack_steps,
                                     cfg.attack_step_size, gen)  # fmt: skip
            out.append(a + lam * s)
        else:
            lam = adversarial_lambda(q_next, n, s, cfg.scale, cfg.attack_steps, cfg.attack_step_size, gen)
            out.append(n + lam * s)
    return torch.cat(out).numpy()


QFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _q_functions(policy: Any) -> tuple[QFn, Callable[[torch.Tensor], torch.Tensor]]:
    """``(Q(s, a), Q(s′, π(s′)))`` of the policy the adversarial search minimises, differentiable in the states.

    A policy with ``critic(obs, action)`` (Box actions; π its deterministic or mean action), or a Q network
    with ``q_values(obs)`` (Discrete actions: ``Q(s, a)`` gathered at the data action, ``Q(s′, π(s′))`` the max).
    """
    if callable(getattr(policy, "critic", None)):
        return policy.critic, lambda x: policy.critic(x, _differentiable_action(policy, x))
    if callable(getattr(policy, "q_values", None)):
        return (lambda x, a: policy.q_values(x).gather(1, a.long().view(-1, 1)).squeeze(1),
                lambda x: policy.q_values(x).amax(1))  # fmt: skip
    raise ValueError(_NO_CRITIC)


_NO_CRITIC = ("adversarial corruption needs a policy with a Q function (critic(obs, action), or q_values(obs) for "
              "Discrete actions): pass critic")  # fmt: skip


def _differentiable_action(policy: Any, obs: torch.Tensor) -> torch.Tensor:
    """``π(obs)`` with gradients into ``obs`` (deterministic actors, or the mean of a squashed Gaussian)."""
    mu = getattr(policy, "mu", None)
    features = getattr(policy, "features", None)
    if mu is not None and features is not None and hasattr(policy, "action_low"):
        from robustrl.policies.actors import unscale_action

        if hasattr(policy, "latent_pi"):  # squashed Gaussian: tanh of the mean
            t = torch.tanh(policy.mu(policy.latent_pi(features(obs))))
        else:
            t = mu(features(obs))
        return unscale_action(t, policy.action_low, policy.action_high)
    return policy.act(obs, deterministic=True)  # type: ignore[no-any-return]


def corrupt(data: OfflineDataset, cfg: CorruptionConfig, *, policy: Any = None) -> OfflineDataset:
    """A corrupted copy of ``data`` (the input is not changed), with its mask and config.

    Args:
        data: the clean dataset.
        cfg: the corruption.
        policy: for ``mode="adversarial"``: a policy with ``critic(obs, action)`` (and an actor, for next
            states), or a Q network with ``q_values(obs)`` (Discrete actions), pretrained on the clean data.

    Raises:
        ValueError: a bad config, or adversarial mode without a critic.
    """
    cfg.validate()
    if cfg.mode == "adversarial" and cfg.element in ("obs", "actions", "next_obs", "all"):
        _q_functions(policy)  # before any work: the policy has a Q function
    if cfg.element in ("actions", "all") and data.discrete:
        raise ValueError("action corruption needs Box actions (the dataset's actions are Discrete)")
    rng = np.random.default_rng(cfg.seed)
    if cfg.keep < 1.0:
        episodes = np.unique(data.episode_ids)
        count = max(1, round(cfg.keep * len(episodes)))
        chosen = rng.choice(episodes, size=count, replace=False)
        data = data.select(np.isin(data.episode_ids, chosen))
    mask = _masks(data, cfg, rng)
    arrays = {"obs": data.observations.copy(), "actions": data.actions.copy(), "rewards": data.rewards.copy(),
              "next_obs": data.next_observations.copy()}  # fmt: skip
    for j, name in enumerate(ELEMENTS):
        rows = np.flatnonzero(mask[:, j])
        if rows.size == 0:
            continue
        x = arrays[name]
        if name == "rewards":
            if cfg.mode == "random":
                x[rows] = rng.uniform(-30 * cfg.scale, 30 * cfg.scale, rows.size)
            else:
                x[rows] = -cfg.scale * x[rows]
            continue
        source = {"obs": data.observations, "actions": data.actions, "next_obs": data.next_observations}[name]
        std = source.std(0).astype(np.float32)
        if cfg.mode == "random":
            lam = rng.uniform(-cfg.scale, cfg.scale, (rows.size, x.shape[1]))
            x[rows] = source[rows] + (lam * std).astype(np.float32)
        else:
            x[rows] = _adversarial(data, name, rows, std, cfg, policy)
    meta = {**data.meta, "corruption": config_to_dict(cfg)}
    old = data.corrupted if data.corrupted is not None else np.zeros_like(mask)
    return dataclasses.replace(
        data, observations=arrays["obs"].astype(np.float32), actions=arrays["actions"],
        rewards=arrays["rewards"].astype(np.float32), next_observations=arrays["next_obs"].astype(np.float32),
        corrupted=old | mask, meta=meta,
    )  # fmt: skip
