"""IWOCS's mode switch: find online which worst-case model the running MDP resembles, act with its policy.

IWOCS (Zouitine et al. 2024) ends with a sequence of policies ``π_i``, each trained on one parameter point
``ψ_i`` of the uncertainty set. Its mode switch identifies, while acting, which of the ``ψ_i`` the current
MDP is closest to and lets that model's policy act. robustrl identifies the model by one-step prediction:

* :func:`fit_mode_switch` collects ``fit_steps`` transitions of each ``π_i`` at its ``ψ_i`` and fits a
  small MLP ``f_i(s, a) → s′ − s`` (inputs and targets standardised, full-batch Adam);
* :class:`ModeSwitchPolicy` keeps, per env copy, the running mean squared error of every ``f_i`` on the
  transitions of the current episode. Until ``warmup`` transitions are seen the ``default`` policy acts
  (IWOCS's selected one); then, at every step, the policy of the model with the lowest error. Errors and
  the choice are reset where an episode starts (the rollout's ``start_episodes`` hook).

The predictors are saved as plain tensors (``mode_switch.pt``, read with ``weights_only=True``); the
switch is not part of the paper's reference code, which we did not have: this is our realisation of it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
from torch import nn

from robustrl.envs import make_env
from robustrl.policies.base import Policy
from robustrl.rollout import collect, start_collect

__all__ = ["ModeSwitchConfig", "ModeSwitchPolicy", "TransitionPredictor", "fit_mode_switch", "load_predictors"]


@dataclass(frozen=True)
class ModeSwitchConfig:
    """How the mode switch's one-step predictors are fitted and used."""

    fit_steps: int = 4096
    """Transitions collected per model (16 env copies) to fit its predictor."""
    hidden: int = 64
    """Width of the predictors' two hidden layers."""
    fit_iters: int = 300
    """Full-batch Adam steps per predictor."""
    lr: float = 3e-3
    """Adam learning rate."""
    warmup: int = 5
    """Transitions of an episode before the first switch (the default policy acts until then)."""

    def validate(self) -> None:
        """ValueError naming a bad option."""
        for name in ("fit_steps", "hidden", "fit_iters"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"mode switch {name} must be an integer ≥ 1, got {v!r}")
        if isinstance(self.warmup, bool) or not isinstance(self.warmup, int) or self.warmup < 0:
            raise ValueError(f"mode switch warmup must be an integer ≥ 0, got {self.warmup!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"mode switch lr must be a finite number > 0, got {self.lr!r}")


def _action_features(action: torch.Tensor, space: gym.Space[Any]) -> torch.Tensor:
    """``[N, A]`` float features of actions: one-hot for Discrete, flattened otherwise."""
    if isinstance(space, gym.spaces.Discrete):
        return nn.functional.one_hot(action.long().reshape(-1), int(space.n)).float()
    return action.reshape(action.shape[0], -1).float()


class TransitionPredictor(nn.Module):
    """``f(s, a) → s′ − s`` with standardised inputs and targets (statistics kept as buffers)."""

    x_mean: torch.Tensor
    x_std: torch.Tensor
    y_mean: torch.Tensor
    y_std: torch.Tensor

    def __init__(self, obs_dim: int, act_dim: int, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(obs_dim + act_dim, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
            nn.Linear(hidden, obs_dim),
        )  # fmt: skip
        self.register_buffer("x_mean", torch.zeros(obs_dim + act_dim))
        self.register_buffer("x_std", torch.ones(obs_dim + act_dim))
        self.register_buffer("y_mean", torch.zeros(obs_dim))
        self.register_buffer("y_std", torch.ones(obs_dim))

    def error(self, x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """``[N]`` mean squared error in standardised target units of ``x = [s, a]`` against ``s′ − s``."""
        pred = self.net((x - self.x_mean) / self.x_std)
        return (pred - (delta - self.y_mean) / self.y_std).square().mean(-1)

    def fit(self, x: torch.Tensor, delta: torch.Tensor, iters: int, lr: float, seed: int) -> float:
        """Fit on ``x [M, D]``, ``delta [M, obs_dim]``; returns the final training error."""
        with torch.no_grad():
            self.x_mean.copy_(x.mean(0))
            self.x_std.copy_(x.std(0).clamp_min(1e-6))
            self.y_mean.copy_(delta.mean(0))
            self.y_std.copy_(delta.std(0).clamp_min(1e-6))
            gen = torch.Generator().manual_seed(seed)
            for p in self.net.parameters():  # seeded initialisation, independent of the global RNG
                bound = 1.0 / math.sqrt(p.shape[-1]) if p.dim() > 1 else 0.1
                p.copy_(torch.empty(p.shape).uniform_(-bound, bound, generator=gen))
        opt = torch.optim.Adam(self.net.parameters(), lr=lr)
        loss = torch.zeros(())
        for _ in range(iters):
            loss = self.error(x, delta).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return float(loss.detach())


def _point_env(env_id: str, point: Mapping[str, float], n: int, seed: int, device: Any) -> Any:
    params = {k: torch.full((n,), float(v), dtype=torch.float64) for k, v in point.items()}
    return make_env(env_id, n, seed=seed, device=device, params=params)


def fit_mode_switch(
    policies: Sequence[Policy],
    points: Sequence[Mapping[str, float]],
    env_id: str,
    config: ModeSwitchConfig = ModeSwitchConfig(),
    *,
    seed: int = 0,
    device: Any = "cpu",
) -> list[TransitionPredictor]:
    """One predictor per ``(policy, point)``: fitted on the policy's own transitions at that point.

    Raises:
        ValueError: a bad config, or ``policies`` and ``points`` of different lengths or empty.
    """
    config.validate()
    if len(policies) != len(points) or not policies:
        raise ValueError(f"mode switch needs one point per policy, got {len(policies)} policies, {len(points)} points")
    copies = 16
    predictors = []
    for i, (policy, point) in enumerate(zip(policies, points)):
        env = _point_env(env_id, point, copies, seed + 7919 * i, device)
        try:
            traj = collect(policy, env, max(1, config.fit_steps // copies), state=start_collect(env, seed=seed + i))
        finally:
            env.close()
        obs = traj.obs.flatten(0, 1).flatten(1).float()
        nxt = traj.next_obs().flatten(0, 1).flatten(1).float()
        act = _action_features(traj.actions.flatten(0, 1), policy.action_space)
        pred = TransitionPredictor(obs.shape[1], act.shape[1], config.hidden)
        pred.fit(torch.cat([obs, act], 1).cpu(), (nxt - obs).cpu(), config.fit_iters, config.lr, seed + i)
        predictors.append(pred.eval())
    return predictors


class ModeSwitchPolicy:
    """Acts with the policy whose model predicts the current episode's transitions best (see the module doc).

    Args:
        policies: the sequence ``π_i``.
        predictors: ``f_i``, one per policy (:func:`fit_mode_switch`).
        default: index of the policy acting during warm-up (IWOCS's selected one).
        warmup: transitions of an episode before the first switch.
    """

    def __init__(
        self, policies: Sequence[Policy], predictors: Sequence[TransitionPredictor], default: int = 0, warmup: int = 5
    ) -> None:
        if len(policies) != len(predictors) or not policies:
            raise ValueError(f"one predictor per policy needed, got {len(policies)} and {len(predictors)}")
        if not 0 <= default < len(policies):
            raise ValueError(f"default must index one of the {len(policies)} policies, got {default}")
        self.policies = list(policies)
        self.predictors = list(predictors)
        self.default = default
        self.warmup = warmup
        self.observation_space = policies[0].observation_space
        self.action_space = policies[0].action_space
        self.errors: torch.Tensor | None = None
        """``float64 [N, K]`` summed prediction errors in each copy's episode."""
        self.counts: torch.Tensor | None = None
        """``int64 [N]`` transitions scored in each copy's episode."""
        self.prev: tuple[torch.Tensor, torch.Tensor] | None = None
        self.chosen: torch.Tensor | None = None
        """``int64 [N]`` the policy each copy acted with at the last step."""

    def start_episodes(self, episode_start: torch.Tensor) -> None:
        """Forget the errors of the copies where ``episode_start [N]`` is True (all for a new batch size)."""
        n = int(episode_start.shape[0])
        if self.errors is None or self.errors.shape[0] != n:
            self.errors = torch.zeros(n, len(self.policies), dtype=torch.float64)
            self.counts = torch.zeros(n, dtype=torch.int64)
            self.prev = None
            return
        assert self.counts is not None
        start = episode_start.cpu()
        self.errors[start] = 0.0
        self.counts[start] = 0
        if self.prev is not None:
            keep = ~start
            self.prev = (self.prev[0], self.prev[1]) if bool(keep.all()) else self._mask_prev(keep)

    def _mask_prev(self, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.prev is not None
        obs, act = self.prev
        return obs, torch.where(keep.view(-1, 1), act, torch.full_like(act, math.nan))

    @torch.no_grad()
    def act(
        self, obs: torch.Tensor, *, deterministic: bool = True, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Score the last transition of every copy, then act with each copy's best-predicting policy."""
        n = obs.shape[0]
        if self.errors is None or self.errors.shape[0] != n:
            self.start_episodes(torch.ones(n, dtype=torch.bool))
        assert self.errors is not None and self.counts is not None
        flat = obs.reshape(n, -1).float().cpu()
        if self.prev is not None:
            p_obs, p_act = self.prev
            valid = ~torch.isnan(p_act).any(1)
            x = torch.cat([p_obs, torch.nan_to_num(p_act)], 1)
            errs = torch.stack([f.error(x, flat - p_obs) for f in self.predictors], 1).double()
            self.errors += torch.where(valid.view(-1, 1), errs, torch.zeros_like(errs))
            self.counts += valid.long()
        chosen = torch.where(
            self.counts >= max(self.warmup, 1), self.errors.argmin(1), torch.full((n,), self.default, dtype=torch.int64)
        )
        actions = torch.stack([pi.act(obs, deterministic=deterministic, generator=generator) for pi in self.policies])
        index = chosen.to(actions.device).view(1, n, *([1] * (actions.dim() - 2))).expand(1, *actions.shape[1:])
        action = actions.gather(0, index).squeeze(0)
        self.prev = (flat, _action_features(action, self.action_space).cpu())
        self.chosen = chosen
        return action


def save_predictors(predictors: Sequence[TransitionPredictor], path: Path, config: ModeSwitchConfig) -> None:
    """Write the predictors' tensors and the config to ``path`` (no pickled objects)."""
    from robustrl.common.io import atomic_path

    payload = {
        "config": dataclasses.asdict(config),
        "shapes": [[p.net[0].in_features, p.net[-1].out_features] for p in predictors],
        "states": [p.state_dict() for p in predictors],
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_predictors(path: Path) -> tuple[list[TransitionPredictor], ModeSwitchConfig]:
    """Read what :func:`save_predictors` wrote (``weights_only=True``: tensors, numbers and strings only)."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    config = ModeSwitchConfig(**payload["config"])
    out = []
    for (d_in, d_out), state in zip(payload["shapes"], payload["states"]):
        pred = TransitionPredictor(d_out, d_in - d_out, config.hidden)
        pred.load_state_dict(state)
        out.append(pred.eval())
    return out, config
