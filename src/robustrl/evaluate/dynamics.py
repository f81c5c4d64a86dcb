"""Evaluation under static dynamics shifts: a grid of 1–3 physical parameters, one setting per episode.

RRLS-style (Zouitine et al. 2024) static shifts: :func:`evaluate_dynamics` covers the grid with one env
whose copies carry per-copy parameter tensors, so grid points × episodes run batched. The result saves to
JSON with ``"kind": "dynamics"`` (schema in ``docs/evaluate.md``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robustrl.common.io import write_json
from robustrl.common.provenance import provenance
from robustrl.common.seeding import derive_seed
from robustrl.evaluate.evaluate import SCHEMA_VERSION, ThreatArg, as_array, build_threat, mean_ci, resolve_policy
from robustrl.evaluate.rollout import rollout
from robustrl.policies.base import Policy
from robustrl.threats.dynamics import ParamAxis, grid_param_tensors, grid_shape, make_grid
from robustrl.threats.registry import make_threat


@dataclass(frozen=True)
class DynamicsResult:
    """Returns over a grid of physical parameters (see ``docs/evaluate.md`` for the JSON schema)."""

    env_id: str
    """The environment."""
    policy: str
    """The policy file, or the policy's class name."""
    axes: tuple[ParamAxis, ...]
    """The grid's axes (parameter names and values)."""
    episodes: int
    """Episodes per grid point."""
    seed: int
    """Seed (same seed ⇒ same result)."""
    returns: np.ndarray
    """``float64 [*grid_shape, episodes]`` episode returns."""
    lengths: np.ndarray
    """``int64 [*grid_shape, episodes]`` episode lengths."""
    mean: np.ndarray
    """``[*grid_shape]`` mean return per grid point."""
    ci_low: np.ndarray
    """``[*grid_shape]`` bootstrap CI low of the mean."""
    ci_high: np.ndarray
    """``[*grid_shape]`` bootstrap CI high of the mean."""
    config: dict[str, Any] = field(default_factory=dict)
    """The evaluation options."""
    provenance: dict[str, Any] = field(default_factory=dict)
    """Versions, commit and time of the run."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with ``"kind": "dynamics"``."""
        return {
            "kind": "dynamics",
            "schema_version": SCHEMA_VERSION,
            "env_id": self.env_id,
            "policy": self.policy,
            "episodes": self.episodes,
            "seed": self.seed,
            "params": [{"name": a.name, "values": list(a.values)} for a in self.axes],
            "shape": list(grid_shape(self.axes)),
            "mean": self.mean.tolist(),
            "ci_low": self.ci_low.tolist(),
            "ci_high": self.ci_high.tolist(),
            "returns": self.returns.tolist(),
            "lengths": self.lengths.tolist(),
            "config": self.config,
            "provenance": self.provenance,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DynamicsResult:
        """Rebuild from :meth:`to_dict` output."""
        try:
            axes = tuple(ParamAxis(p["name"], tuple(float(v) for v in p["values"])) for p in data["params"])
            return cls(
                env_id=str(data["env_id"]),
                policy=str(data["policy"]),
                axes=axes,
                episodes=int(data["episodes"]),
                seed=int(data["seed"]),
                returns=as_array(data["returns"], np.float64),
                lengths=as_array(data["lengths"], np.int64),
                mean=as_array(data["mean"], np.float64),
                ci_low=as_array(data["ci_low"], np.float64),
                ci_high=as_array(data["ci_high"], np.float64),
                config=dict(data.get("config", {})),
                provenance=dict(data.get("provenance", {})),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"not a valid dynamics result: {err!r}") from err

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the result as JSON atomically; returns the path."""
        return write_json(path, self.to_dict())

    def __str__(self) -> str:
        head = f"{self.env_id}  policy={self.policy}  episodes/point={self.episodes}  seed={self.seed}"
        names = [a.name for a in self.axes]
        rows = [head]
        for idx in np.ndindex(*self.mean.shape):
            point = ", ".join(f"{n}={a.values[i]:g}" for n, a, i in zip(names, self.axes, idx))
            rows.append(f"  {point}: {self.mean[idx]:.2f} [{self.ci_low[idx]:.2f}, {self.ci_high[idx]:.2f}]")
        return "\n".join(rows)


def evaluate_dynamics(
    policy: Policy | str | os.PathLike[str],
    env_id: str,
    grid: Sequence[ParamAxis | str] | Mapping[str, Sequence[float]],
    episodes: int = 20,
    seed: int = 0,
    *,
    threat: ThreatArg | None = None,
    budget: float = 0.0,
    smoothing_sigma: float = 0.0,
    deterministic: bool = True,
    max_copies: int | None = None,
    device: str | torch.device = "cpu",
    env_kwargs: Mapping[str, Any] | None = None,
    confidence: float = 0.95,
    bootstrap_reps: int = 2000,
    progress: bool = False,
) -> DynamicsResult:
    """Evaluate a policy over a grid of static physical-parameter shifts (one setting per episode).

    One env covers the grid: every (grid point, episode) pair is one env copy holding that point's
    parameters (per-copy tensors) and running exactly one episode — the rollout engine's first ``N``
    episodes are the copies' first ones, in copy order — so the whole grid × episodes runs batched. More
    pairs than ``max_copies`` run in chunks of ``max_copies`` copies.

    Args:
        policy: a Policy or a policy file.
        env_id: an id whose env has the grid's parameters (see ``robustrl envs``).
        grid: 1–3 axes: :class:`~robustrl.threats.ParamAxis`, ``"NAME=LOW:HIGH:COUNT"`` strings or a
            mapping ``name -> values``.
        episodes: episodes per grid point.
        seed: seed of the rollouts (same seed ⇒ same result).
        threat: optionally also apply an observation or action threat at ``budget`` in every episode.
        budget: the threat's budget.
        smoothing_sigma: evaluate the Gaussian-smoothed policy.
        deterministic: greedy actions (True) or sampled ones.
        max_copies: most env copies at once (default 16384 native, 8 through the adapter).
        device: where the env runs.
        env_kwargs: extra keyword arguments for :func:`robustrl.make_env`.
        confidence: level of the bootstrap intervals.
        bootstrap_reps: bootstrap resamples.
        progress: show progress bars.

    Returns:
        :class:`DynamicsResult` with ``returns`` shaped ``[*grid_shape, episodes]``.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be ≥ 1, got {episodes}")
    axes = make_grid(grid)
    shape = grid_shape(axes)
    points = int(np.prod(shape))
    pol, pol_name = resolve_policy(policy, env_id, device)
    from robustrl.envs import NATIVE_ENVS, make_env

    cap = max_copies or (16384 if env_id in NATIVE_ENVS else 8)
    if cap < 1:
        raise ValueError(f"max_copies must be ≥ 1, got {max_copies}")
    obs_t: Any = make_threat("none", 0.0, smoothing_sigma=smoothing_sigma) if smoothing_sigma > 0 else None
    act_t: Any = None
    if threat is not None:
        name, opts = (threat, {}) if isinstance(threat, str) else (threat[0], dict(threat[1]))
        built = build_threat(name, budget, opts, False, smoothing_sigma, True, None)
        if built.kind == "obs":
            obs_t = built
        else:
            act_t = built
    # slot s = point · episodes + e is one copy running one episode (grid points in C order)
    all_params = grid_param_tensors(axes, episodes, device=device)
    total = points * episodes
    flat_r = np.zeros(total)
    flat_l = np.zeros(total, dtype=np.int64)
    for ci, start in enumerate(range(0, total, cap)):
        stop = min(start + cap, total)
        params = {k: v[start:stop] for k, v in all_params.items()}
        env = make_env(env_id, stop - start, device=device, seed=seed, params=params, **dict(env_kwargs or {}))
        try:
            res = rollout(
                pol, env, stop - start, seed=derive_seed(seed, ci), obs_transform=obs_t, action_transform=act_t,
                deterministic=deterministic, progress=progress,
            )  # fmt: skip
        finally:
            env.close()
        flat_r[start:stop] = res.returns.numpy()
        flat_l[start:stop] = res.lengths.numpy()
    returns = flat_r.reshape(points, episodes)
    lengths = flat_l.reshape(points, episodes)
    stats = np.array([mean_ci(returns[i], confidence, bootstrap_reps, seed) for i in range(points)])
    config = {
        "threat": None if threat is None else ([threat, {}] if isinstance(threat, str) else list(threat)),
        "budget": budget,
        "smoothing_sigma": smoothing_sigma,
        "deterministic": deterministic,
        "max_copies": cap,
        "device": str(device),
        "env_kwargs": dict(env_kwargs or {}),
        "confidence": confidence,
        "bootstrap_reps": bootstrap_reps,
    }
    return DynamicsResult(
        env_id=env_id,
        policy=pol_name,
        axes=axes,
        episodes=episodes,
        seed=seed,
        returns=returns.reshape(*shape, episodes),
        lengths=lengths.reshape(*shape, episodes),
        mean=stats[:, 0].reshape(shape),
        ci_low=stats[:, 1].reshape(shape),
        ci_high=stats[:, 2].reshape(shape),
        config=config,
        provenance=provenance(),
    )
