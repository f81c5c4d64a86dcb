"""IQL and RIQL: implicit Q-learning, and its robust variant for corrupted data.

IQL (Kostrikov, Nair, Levine, ICLR 2022) with the deterministic actor of the RIQL reference code (CORL's
``iql_deterministic``): ``V`` by expectile regression onto the target ``Q``, ``Q`` by regression onto
``r + γ(1 − terminated)·V(s′)``, the actor by ``exp(β·A)``-weighted squared error to the data action.

RIQL (Yang et al., ICLR 2024) is this learner with ``v_target="quantile"`` (the ``α``-quantile over the ``K``
target critics instead of their minimum), ``q_loss="huber"`` (RIQL's Huber loss with parameter ``σ``) and
observation normalisation; :data:`RIQL_PRESETS` are the paper's per-env ``σ``, ``α`` and ``K`` for each
corruption (from the reference code's ``RIQL_config.py``).

The three losses touch disjoint parameters (``V``, the critic ensemble, the actor), so one update is one
backward pass and one fused Adam step.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Literal

import gymnasium as gym
import torch

from robustrl.agents.common import Generators, make_adam, polyak_, seeded_init
from robustrl.agents.critics import CriticEnsemble
from robustrl.offline.base import OfflineBatch, OfflineLearnerConfig, critic_ensemble, set_obs_normalizer
from robustrl.offline.data import OfflineDataset
from robustrl.offline.losses import awr_weights, ensemble_quantile, expectile_loss, huber_loss
from robustrl.policies.actors import DeterministicActorPolicy
from robustrl.policies.features import flat_dim

__all__ = ["IQL", "RIQL_DEFAULT", "RIQL_PRESETS", "IQLConfig", "riql_preset"]


@dataclass(frozen=True)
class IQLConfig(OfflineLearnerConfig):
    """IQL / RIQL hyperparameters (IQL defaults: CORL's locomotion setting)."""

    expectile: float = 0.7
    """τ of the expectile regression of V."""
    beta: float = 3.0
    """Inverse temperature of the advantage weights (small: BC, large: greedy)."""
    max_weight: float = 100.0
    """Clip of the advantage weights exp(β·A)."""
    v_target: Literal["min", "quantile"] = "min"
    """Target Q of V: min over the critics (IQL) or their α-quantile (RIQL)."""
    quantile: float = 0.25
    """α of the quantile target."""
    q_loss: Literal["mse", "huber"] = "mse"
    """Loss of Q on its TD target: squared error (IQL) or RIQL's Huber loss."""
    sigma: float = 1.0
    """σ of RIQL's Huber loss (threshold 1/σ²)."""

    def validate(self) -> None:
        """Raise a ``ValueError`` naming the first bad field."""
        super().validate()
        if not 0.0 < self.expectile < 1.0:
            raise ValueError(f"IQLConfig.expectile must be in (0, 1), got {self.expectile}")
        if not (math.isfinite(self.beta) and self.beta >= 0):
            raise ValueError(f"IQLConfig.beta must be ≥ 0, got {self.beta}")
        if not self.max_weight > 0:
            raise ValueError(f"IQLConfig.max_weight must be > 0, got {self.max_weight}")
        if self.v_target not in ("min", "quantile") or self.q_loss not in ("mse", "huber"):
            raise ValueError("IQLConfig.v_target must be min or quantile, q_loss mse or huber")
        if not 0.0 <= self.quantile <= 1.0:
            raise ValueError(f"IQLConfig.quantile must be in [0, 1], got {self.quantile}")
        if not self.sigma > 0:
            raise ValueError(f"IQLConfig.sigma must be > 0, got {self.sigma}")


RIQL_DEFAULT = IQLConfig(normalize_obs=True, num_critics=5, v_target="quantile", quantile=0.25, q_loss="huber",
                         sigma=1.0)  # fmt: skip
"""RIQL's defaults (K = 5, α = 0.25, σ = 1, observation normalisation)."""

_E = ("halfcheetah", "walker2d", "hopper")
_RIQL_TABLE: dict[tuple[str, str], tuple[tuple[float, ...], tuple[float, ...], tuple[int, ...]]] = {
    # (mode, element): (σ, α, K) for halfcheetah, walker2d, hopper
    ("random", "obs"): ((0.1, 0.1, 0.1), (0.1, 0.25, 0.25), (5, 5, 3)),
    ("random", "actions"): ((0.5, 0.5, 0.1), (0.25, 0.1, 0.25), (3, 5, 5)),
    ("random", "rewards"): ((3.0, 3.0, 1.0), (0.25, 0.1, 0.25), (5, 5, 3)),
    ("random", "next_obs"): ((3.0, 1.0, 1.0), (0.25, 0.25, 0.5), (5, 3, 5)),
    ("adversarial", "obs"): ((0.1, 1.0, 1.0), (0.1, 0.25, 0.25), (5, 5, 5)),
    ("adversarial", "actions"): ((1.0, 1.0, 1.0), (0.1, 0.1, 0.25), (5, 5, 5)),
    ("adversarial", "rewards"): ((1.0, 3.0, 0.1), (0.1, 0.1, 0.25), (5, 5, 5)),
    ("adversarial", "next_obs"): ((1.0, 1.0, 1.0), (0.1, 0.25, 0.5), (5, 5, 5)),
}
RIQL_PRESETS: dict[tuple[str, str, str], IQLConfig] = {
    (env, mode, element): IQLConfig(**{**RIQL_DEFAULT.__dict__, "sigma": s[i], "quantile": a[i], "num_critics": k[i]})
    for (mode, element), (s, a, k) in _RIQL_TABLE.items()
    for i, env in enumerate(_E)
}
"""RIQL's published per-env σ, α, K by ``(env family, corruption mode, element)`` (next_obs is "dynamics")."""


def riql_preset(env_id: str, mode: str | None, element: str | None) -> IQLConfig:
    """RIQL's preset for ``env_id`` (e.g. ``Hopper-v5``) under a corruption, else :data:`RIQL_DEFAULT`."""
    family = env_id.split("-")[0].lower()
    return RIQL_PRESETS.get((family, str(mode), str(element)), RIQL_DEFAULT)


class IQL:
    """An IQL / RIQL learner on a fixed dataset; :meth:`update` is one gradient step of V, Q and the actor.

    Args:
        observation_space: the env's observation space.
        action_space: the env's action box.
        data: the dataset (sets the observation normaliser).
        cfg: hyperparameters.
        seed: seeds the networks' initialisation.
    """

    def __init__(
        self, observation_space: gym.Space, action_space: gym.spaces.Box, data: OfflineDataset, cfg: IQLConfig,
        *, seed: int,
    ) -> None:  # fmt: skip
        cfg.validate()
        self.cfg = cfg
        obs_dim = flat_dim(observation_space)
        act_dim = flat_dim(action_space)
        with seeded_init(Generators(seed, torch.device("cpu")).seed):
            self.policy = DeterministicActorPolicy(
                observation_space, action_space, hidden=cfg.hidden, normalize_obs=cfg.normalize_obs,
                n_critics=cfg.num_critics, critic_scaled_actions=True,
            )  # fmt: skip
            self.critics, self._export = critic_ensemble(self.policy, obs_dim, act_dim, cfg)
            self.value = CriticEnsemble(obs_dim, cfg.hidden, "relu", 1)
        set_obs_normalizer(self.policy, data)
        self.target_critics = copy.deepcopy(self.critics).requires_grad_(False)
        self._critic_params: list[torch.Tensor] = list(self.critics.parameters())
        self._target_params: list[torch.Tensor] = list(self.target_critics.parameters())
        trained = [*self.policy.mu.parameters(), *self.critics.parameters(), *self.value.parameters()]
        self.optimizer = make_adam(trained, cfg.learning_rate)
        self.updates = 0

    def update(self, b: OfflineBatch) -> dict[str, torch.Tensor]:
        """One update on the minibatch ``b``; returns ``train/…`` metrics (tensors, no host sync)."""
        cfg = self.cfg
        n = b.obs.shape[0]
        feats, next_feats = self.policy.features(torch.cat([b.obs, b.next_obs])).split(n)
        x = torch.cat([feats, b.actions], -1)
        with torch.no_grad():
            target_q = self.target_critics.q_values(x)
            q_t = ensemble_quantile(target_q, cfg.quantile) if cfg.v_target == "quantile" else target_q.min(0).values
            next_v = self.value.q_values(next_feats)[0]
            y = b.rewards + cfg.gamma * (1.0 - b.terminated) * next_v
        v = self.value.q_values(feats)[0]
        adv = q_t - v
        v_loss = expectile_loss(adv, cfg.expectile)
        q = self.critics.q_values(x)
        diff = q - y
        q_loss = (huber_loss(diff, cfg.sigma) if cfg.q_loss == "huber" else 0.5 * diff.square()).mean(1).sum()
        pi = self.policy.mu(feats)
        weights = awr_weights(adv, cfg.beta, cfg.max_weight)
        actor_loss = (weights * (pi - b.actions).square().sum(-1)).mean()
        self.optimizer.zero_grad(set_to_none=True)
        (v_loss + q_loss + actor_loss).backward()
        self.optimizer.step()
        polyak_(self._target_params, self._critic_params, cfg.tau)
        self.updates += 1
        return {"train/value_loss": v_loss.detach(), "train/q_loss": q_loss.detach(),
                "train/actor_loss": actor_loss.detach(), "train/adv_weight": weights.mean()}  # fmt: skip

    def sync_policy(self) -> None:
        """Copy the trained critic ensemble into the policy's critics (before saving or evaluating)."""
        self._export()
