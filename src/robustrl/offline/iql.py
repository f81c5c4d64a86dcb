"""IQL and RIQL: implicit Q-learning, and its robust variant for corrupted data.

IQL (Kostrikov, Nair, Levine, ICLR 2022) with the deterministic actor of the RIQL reference code (CORL's
``iql_deterministic``): ``V`` by expectile regression onto the target ``Q``, ``Q`` by regression onto
``r + γ(1 − terminated)·V(s′)``, the actor by ``exp(β·A)``-weighted squared error to the data action.

RIQL (Yang et al., ICLR 2024) is this learner with ``v_target="quantile"`` (the ``α``-quantile over the ``K``
target critics instead of their minimum), ``q_loss="huber"`` (RIQL's Huber loss with parameter ``σ``) and
observation normalisation; :data:`RIQL_PRESETS` are the paper's per-env ``σ``, ``α`` and ``K`` for each
corruption (from the reference code's ``RIQL_config.py``).

In the online phase (:class:`~robustrl.offline.base.RO2OTerms`) the ``V`` target also subtracts RO2O's
``β·std_k Q'_k(s, a)`` (the ``Q`` target ``r + γV(s′)`` inherits it), and the critics and the actor add the
smoothness terms on perturbed states.

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
from robustrl.offline.base import OfflineBatch, OfflineLearnerConfig, RO2OTerms, critic_ensemble, set_obs_normalizer
from robustrl.offline.data import OfflineDataset
from robustrl.offline.losses import (
    awr_weights,
    ensemble_quantile,
    expectile_loss,
    huber_loss,
    policy_smoothness,
    q_smoothness,
    uncertainty_penalty,
)
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

    def update(self, b: OfflineBatch, ro2o: RO2OTerms | None = None) -> dict[str, torch.Tensor]:
        """One update on the minibatch ``b`` (with RO2O's terms in the online phase); ``train/…`` metrics."""
        cfg = self.cfg
        n = b.obs.shape[0]
        feats, next_feats = self.policy.features(torch.cat([b.obs, b.next_obs])).split(n)
        x = torch.cat([feats, b.actions], -1)
        with torch.no_grad():
            target_q = self.target_critics.q_values(x)
            q_t = ensemble_quantile(target_q, cfg.quantile) if cfg.v_target == "quantile" else target_q.min(0).values
            if ro2o is not None and ro2o.beta > 0:
                q_t = q_t - uncertainty_penalty(target_q, ro2o.beta)
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
        loss = v_loss + q_loss + actor_loss
        out = {"train/value_loss": v_loss.detach(), "train/q_loss": q_loss.detach(),
               "train/actor_loss": actor_loss.detach(), "train/adv_weight": weights.mean()}  # fmt: skip
        if ro2o is not None and ro2o.noise is not None:
            smooth_q, smooth_pi = self._smoothness(feats.detach(), b.actions, q, pi, ro2o.noise)
            loss = loss + ro2o.q_weight * smooth_q + ro2o.policy_weight * smooth_pi
            out |= {"train/q_smoothness": smooth_q.detach(), "train/policy_smoothness": smooth_pi.detach()}
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        polyak_(self._target_params, self._critic_params, cfg.tau)
        self.updates += 1
        return out

    def _smoothness(
        self, feats: torch.Tensor, actions: torch.Tensor, q: torch.Tensor, pi: torch.Tensor, noise: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """RO2O's Q and policy smoothness at the perturbed states ``features(s) + noise [n, B, F]``."""
        n, b = noise.shape[0], feats.shape[0]
        pert = (feats.unsqueeze(0) + noise).flatten(0, 1)  # [n·B, F]
        q_pert = self.critics.q_values(torch.cat([pert, actions.repeat(n, 1)], -1)).unflatten(1, (n, b))
        return q_smoothness(q, q_pert), policy_smoothness(pi, self.policy.mu(pert).unflatten(0, (n, b)))

    def sync_policy(self) -> None:
        """Copy the trained critic ensemble into the policy's critics (before saving or evaluating)."""
        self._export()
