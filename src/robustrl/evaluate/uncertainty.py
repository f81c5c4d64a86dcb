"""Evaluation on a named uncertainty set: worst case, average, worst point, normalised score (RRLS/IWOCS protocol).

``robustrl evaluate --uncertainty-set NAME`` evaluates the policy on the set's grid (``--grid-points`` per
dimension, 10 by default as RRLS; ``--episodes`` per point), batched over the grid by
:func:`~robustrl.evaluate.dynamics.evaluate_dynamics`. With ``--references REF0 REF1`` the two reference
policies run on the same grid with the same seeds, and the result carries IWOCS's normalised score
``(v − v_ref0) / |v_ref1 − v_ref0|`` of the worst case and of the average. With ``--out FILE`` the policy's
full grid is also written as a dynamics result ``FILE`` with ``.grid.json`` in place of ``.json``, which
``robustrl report`` draws as a heatmap.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from robustrl.common.config import config_to_dict
from robustrl.common.provenance import provenance
from robustrl.envs.uncertainty import uncertainty_set
from robustrl.evaluate.config import DynamicsConfig, EvaluateConfig, check_uncertainty_options
from robustrl.evaluate.dynamics import evaluate_dynamics
from robustrl.policies.base import Policy
from robustrl.results.uncertainty import UncertaintyResult

__all__ = ["evaluate_uncertainty", "grid_path"]


def grid_path(out: str) -> str:
    """Where the policy's grid (a dynamics result) goes beside the result ``out``."""
    p = Path(out)
    stem = p.name[:-5] if p.name.endswith(".json") else p.name
    return str(p.with_name(stem + ".grid.json"))


def evaluate_uncertainty(cfg: EvaluateConfig, *, policy: Policy | None = None) -> UncertaintyResult:
    """Evaluate a policy (and its references) on ``cfg.uncertainty_set``'s grid.

    Args:
        cfg: the evaluation; its ``uncertainty_set``, ``grid_points``, ``references``, ``episodes`` (per grid
            point), ``seed``, ``deterministic``, ``num_envs`` (most env copies at once), ``device``,
            ``smoothing_sigma`` and the policy-loading options are used.
        policy: an already loaded policy instead of loading ``cfg.policy``.

    Returns:
        :class:`~robustrl.results.uncertainty.UncertaintyResult`.

    Raises:
        ValueError: an unknown set, a set of another env, threats given, not two references, a bad grid
            size, or any option evaluate_dynamics refuses, before any rollout.
    """
    check_uncertainty_options(cfg)
    uset = uncertainty_set(cfg.uncertainty_set)
    grid = uset.grid(cfg.grid_points)
    param = tuple(f"{name}=" + ",".join(repr(v) for v in values) for name, values in grid.items())
    dyn = DynamicsConfig(
        policy=cfg.policy, env=cfg.env, param=param, episodes=cfg.episodes, seed=cfg.seed,
        out=None if cfg.out is None else grid_path(cfg.out), smoothing_sigma=cfg.smoothing_sigma,
        deterministic=cfg.deterministic, max_copies=cfg.num_envs, device=cfg.device,
        env_kwargs=dict(cfg.env_kwargs), confidence=cfg.confidence, bootstrap_reps=cfg.bootstrap_reps,
        progress=cfg.progress, trust_code=cfg.trust_code, vec_normalize=cfg.vec_normalize,
    )  # fmt: skip
    dyn.validate()
    refs_cfg = [dataclasses.replace(dyn, policy=r, out=None, vec_normalize=None) for r in cfg.references]
    for r in refs_cfg:
        r.validate()
    main = evaluate_dynamics(dyn, policy=policy)
    refs = [evaluate_dynamics(r) for r in refs_cfg]
    shape = main.shape
    ref_mean = np.stack([r.mean for r in refs]) if refs else np.zeros((0,))
    resolved = dataclasses.replace(cfg, policy=main.policy, trust_code=False)
    result = UncertaintyResult(
        env_id=cfg.env,
        policy=main.policy,
        uncertainty_set=uset.name,
        set_version=uset.version,
        params=main.params,
        episodes=cfg.episodes,
        seed=cfg.seed,
        returns=main.returns.reshape(*shape, cfg.episodes),
        mean=main.mean,
        references=tuple(r.policy for r in refs),
        reference_mean=ref_mean,
        config=config_to_dict(resolved),
        provenance=provenance(),
    )
    if cfg.out is not None:
        result.save(cfg.out)
    return result
