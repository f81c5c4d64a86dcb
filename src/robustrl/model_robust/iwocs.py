"""IWOCS: robust MDPs solved as a sequence of static RL problems (Zouitine et al. 2024).

Iteration ``i`` trains a policy on one fixed parameter point ψ_i of the uncertainty set (a static MDP,
with the run's learner), then searches the set for the point where that policy does worst, which becomes
ψ_{i+1}. The search is CMA-ES in the set's unit cube (the ``cma`` package; IWOCS) or an exhaustive grid
(IWOCS*); it minimises the policy's mean return over ``search_episodes`` episodes per candidate, every
candidate batched in one env (one copy per candidate × episode). ψ_0 is the nominal point clipped into the
box. Each policy starts from the previous one's weights (``warm_start``).

Which policy acts: the policy of the sequence whose searched worst case is highest is *selected* (recorded
per iteration in ``iwocs.json``). With ``mode_switch=True`` the paper's mode switch is fitted too
(:mod:`robustrl.model_robust.mode_switch`: it identifies online, by one-step prediction error, which
worst-case model the running MDP resembles and acts with that model's policy), saved as ``mode_switch.pt``
and scored beside the selected policy on the set's grid (``iwocs.json``'s ``mode_switch``). The run folder
holds ``policy_<i>/`` (each a normal run folder), ``iwocs.json`` (rewritten after every iteration: what
``--resume`` continues from) and, last, the selected policy's ``policy.zip`` and ``result.json``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from robustrl.agents.common import Agent
from robustrl.agents.run_folder import prepare_sequence_dir, resumable_options
from robustrl.agents.train import TrainConfig
from robustrl.agents.train import train as train_run
from robustrl.common.config import config_to_dict
from robustrl.common.io import write_json
from robustrl.common.seeding import derive_seed
from robustrl.defenses.model_error import IWOCSConfig
from robustrl.envs import make_env
from robustrl.envs.base import VecEnv
from robustrl.envs.uncertainty import UncertaintySet
from robustrl.model_robust.common import make_learner, run_set
from robustrl.policies.base import Policy
from robustrl.results import TrainResult
from robustrl.rollout import rollout

__all__ = ["SearchResult", "point_returns", "train_iwocs", "worst_case_search"]

logger = logging.getLogger(__name__)

Objective = Callable[[np.ndarray], np.ndarray]
"""``unit coordinates [K, d] -> mean returns [K]`` (lower is worse for the policy)."""


class SearchResult(NamedTuple):
    """The outcome of one worst-case search."""

    point: np.ndarray
    """``float64 [d]`` unit-cube coordinates of the worst candidate evaluated."""
    value: float
    """Its mean return."""
    evaluations: int
    """Candidates evaluated."""


def worst_case_search(
    objective: Objective, dim: int, search: str, *, budget: int = 30, grid_points: int = 5, sigma0: float = 0.3,
    seed: int = 0,
) -> SearchResult:
    """The unit-cube point minimising ``objective``: CMA-ES (``search="cma"``) or the full grid (``"grid"``).

    CMA-ES starts at the cube's centre with step ``sigma0``, bounded to ``[0, 1]^d``, and stops after
    ``budget`` evaluations; the result is the best candidate it evaluated. A one-dimensional set is
    searched with one extra coordinate that the objective never sees (``cma`` needs two).

    Example:
        >>> f = lambda u: 1.0 + u[:, 0] - u[:, 1]  # worst at the corner (0, 1)
        >>> worst_case_search(f, 2, "grid", grid_points=3).point.tolist()
        [0.0, 1.0]
    """
    if search == "grid":
        axes = np.meshgrid(*[np.linspace(0.0, 1.0, grid_points)] * dim, indexing="ij")
        cands = np.stack([a.reshape(-1) for a in axes], axis=1)
        values = np.asarray(objective(cands), dtype=np.float64)
        i = int(np.argmin(values))
        return SearchResult(cands[i], float(values[i]), len(cands))
    if search != "cma":
        raise ValueError(f"search must be 'cma' or 'grid', got {search!r}")
    import cma

    pad = 1 if dim == 1 else 0
    opts = {"bounds": [0.0, 1.0], "seed": int(seed) + 1, "maxfevals": int(budget), "verbose": -9}
    es = cma.CMAEvolutionStrategy(np.full(dim + pad, 0.5), sigma0, opts)
    best_x, best_v, count = np.full(dim, 0.5), np.inf, 0
    while not es.stop() and count < budget:
        xs = es.ask()[: budget - count]
        cands = np.clip(np.asarray(xs, dtype=np.float64)[:, :dim], 0.0, 1.0)
        values = np.asarray(objective(cands), dtype=np.float64)
        count += len(cands)
        if len(xs) < es.popsize:
            break
        es.tell(xs, values.tolist())
        i = int(np.argmin(values))
        if values[i] < best_v:
            best_x, best_v = cands[i].copy(), float(values[i])
    if not np.isfinite(best_v):  # budget smaller than one generation: the partial one decides
        i = int(np.argmin(values))
        best_x, best_v = cands[i].copy(), float(values[i])
    return SearchResult(best_x, best_v, count)


def point_returns(
    policy: Policy, uset: UncertaintySet, units: np.ndarray, episodes: int, *, seed: int, device: Any = "cpu",
    env_id: str | None = None,
) -> np.ndarray:
    """``float64 [K]``: mean greedy return of ``policy`` at each unit-cube point ``units [K, d]`` of ``uset``.

    One env holds ``K · episodes`` copies, copy ``k · episodes + e`` at point ``k``; each runs one episode.
    """
    k = len(units)
    points = [uset.from_unit(u) for u in units]
    params = {
        name: torch.tensor([p[name] for p in points], dtype=torch.float64).repeat_interleave(episodes)
        for name in uset.names
    }
    env = make_env(env_id or uset.env_id, k * episodes, seed=seed, device=device, params=params)
    try:
        res = rollout(policy, env, k * episodes, seed=seed)
    finally:
        env.close()
    return res.returns.numpy().reshape(k, episodes).mean(axis=1)


def prepare_iwocs_dir(
    run_dir: Path, options: dict[str, Any], *, overwrite: bool, resume: bool
) -> list[dict[str, Any]]:
    """Check an IWOCS run folder before any work; the finished iterations' records when resuming.

    ``iwocs.json`` beside ``policy_<i>/``: see :func:`~robustrl.agents.run_folder.prepare_sequence_dir`.
    """
    return prepare_sequence_dir(run_dir, options, what="an IWOCS", progress="iwocs.json", overwrite=overwrite,
                                resume=resume, extra_files=("mode_switch.pt",))


def _seed(seed: int, key: int) -> int:
    out = derive_seed(seed, key)
    assert out is not None
    return out


def train_iwocs(cfg: TrainConfig, defense: IWOCSConfig) -> TrainResult:
    """``robustrl train --defense iwocs --uncertainty-set SET``: a sequence of policies on successive worst cases.

    Args:
        cfg: the run; ``total_steps`` (or the preset's) is split evenly over the iterations.
        defense: iterations, search (``cma`` / ``grid``) and its budget.

    Returns:
        The selected policy's :class:`~robustrl.results.TrainResult` (``steps``: all iterations' transitions).

    Raises:
        ValueError: no or a bad uncertainty set, a bad config, a folder that is not an IWOCS run, or
            ``--resume`` with other options than the run's.
    """
    defense.validate()
    uset = run_set(cfg, "iwocs")
    from robustrl.agents.train import resolve_algo_config

    total = int(resolve_algo_config(dataclasses.replace(cfg, uncertainty_set="")).total_steps)
    per_iter = max(1, total // defense.iterations)
    run_dir = Path(cfg.out) if cfg.out is not None else None
    options = {"train": resumable_options(cfg), "defense": config_to_dict(defense), "set": uset.name}
    records: list[dict[str, Any]] = []
    if run_dir is not None:
        records = prepare_iwocs_dir(run_dir, options, overwrite=cfg.overwrite, resume=cfg.resume)
    worst = np.clip(uset.to_unit(uset.nominal), 0.0, 1.0)
    prev: Policy | None = None
    results: list[TrainResult] = []
    for i, rec in enumerate(records):  # iterations a resumed run finished before it stopped
        assert run_dir is not None
        finished = run_dir / f"policy_{i}"
        from robustrl.policies import load_policy
        from robustrl.results import load_result

        done = load_result(finished / "result.json")
        assert isinstance(done, TrainResult)
        prev = load_policy(finished)
        results.append(dataclasses.replace(done, policy=prev))
        worst = np.clip(uset.to_unit(rec["worst_point"]), 0.0, 1.0)
        logger.info("iwocs %d: kept from the interrupted run (worst case %.1f)", i, rec["worst_value"])
    for i in range(len(records), defense.iterations):
        fixed = uset.from_unit(worst)
        folder = None if run_dir is None else run_dir / f"policy_{i}"
        # the iteration that was running when the run stopped continues from its checkpoint
        again = folder is not None and (folder / "checkpoint.pt").is_file() and not (folder / "result.json").exists()
        sub = dataclasses.replace(
            cfg, defense="none", defense_set=(), uncertainty_set="", total_steps=per_iter,
            env_params=(*cfg.env_params, *(f"{k}={v!r}" for k, v in fixed.items())),
            out=folder, overwrite=not again, resume=again,
        )  # fmt: skip

        def make(env: VecEnv, algo_cfg: Any, seed: int, more: Callable[[int, int], VecEnv],
                 start: Policy | None = prev, run: TrainConfig = sub) -> Agent:
            agent = make_learner(run, env, algo_cfg, seed)
            if start is not None and defense.warm_start:
                agent.policy.load_state_dict(start.state_dict())  # type: ignore[attr-defined]
            return agent

        res = train_run(sub, make_agent=make)
        assert res.policy is not None
        prev = res.policy
        policy = res.policy

        def objective(units: np.ndarray, pol: Policy = policy, it: int = i) -> np.ndarray:
            return point_returns(pol, uset, units, defense.search_episodes, seed=_seed(cfg.seed, 500 + it),
                                 device=cfg.device, env_id=cfg.env)

        found = worst_case_search(objective, len(uset.axes), defense.search, budget=defense.search_budget,
                                  grid_points=defense.grid_points, sigma0=defense.sigma0, seed=_seed(cfg.seed, 600 + i))
        records.append({"iteration": i, "trained_on": fixed, "worst_point": uset.from_unit(found.point),
                        "worst_value": found.value, "evaluations": found.evaluations})
        logger.info("iwocs %d: trained on %s, worst case %.1f at %s", i, fixed, found.value, records[-1]["worst_point"])
        results.append(res)
        worst = found.point
        if run_dir is not None:  # progress: what a resumed run starts from
            write_json(run_dir / "iwocs.json", {**options, "selected": None, "iterations": records})
    best = int(np.argmax([r["worst_value"] for r in records]))
    chosen = results[best]
    steps = sum(r.steps for r in results)
    summary: dict[str, Any] = {"selected": best, "iterations": records}
    if defense.mode_switch:
        summary["mode_switch"] = _fit_and_score_switch(cfg, defense, uset, results, records, best, run_dir)
    out = dataclasses.replace(chosen, steps=steps, run_dir=None if run_dir is None else str(run_dir),
                              config={**chosen.config, "iwocs": summary})
    if run_dir is not None:
        from robustrl.policies import save_policy

        write_json(run_dir / "iwocs.json", {**options, **summary})
        save_policy(chosen.policy, run_dir / "policy.zip", env_id=cfg.env, config=out.config)  # type: ignore[arg-type]
        out.save(run_dir / "result.json")
    return out


def _grid_units(uset: UncertaintySet, points: int) -> np.ndarray:
    """``[points^d, d]`` unit-cube coordinates of the set's grid."""
    axes = np.meshgrid(*[np.linspace(0.0, 1.0, points)] * len(uset.axes), indexing="ij")
    return np.stack([a.reshape(-1) for a in axes], 1)


def _fit_and_score_switch(
    cfg: TrainConfig, defense: IWOCSConfig, uset: UncertaintySet, results: list[TrainResult],
    records: list[dict[str, Any]], best: int, run_dir: Path | None,
) -> dict[str, Any]:
    """Fit the mode switch over the sequence, save it, and score it and the selected policy on the grid."""
    from robustrl.model_robust.mode_switch import ModeSwitchConfig, ModeSwitchPolicy, fit_mode_switch, save_predictors

    switch_cfg = ModeSwitchConfig(fit_steps=defense.switch_fit_steps, warmup=defense.switch_warmup)
    policies = [r.policy for r in results]
    assert all(p is not None for p in policies)
    predictors = fit_mode_switch(policies, [r["trained_on"] for r in records], cfg.env, switch_cfg,  # type: ignore[arg-type]
                                 seed=_seed(cfg.seed, 700), device=cfg.device)
    if run_dir is not None:
        save_predictors(predictors, run_dir / "mode_switch.pt", switch_cfg)
    switch = ModeSwitchPolicy(policies, predictors, default=best, warmup=defense.switch_warmup)  # type: ignore[arg-type]
    units = _grid_units(uset, defense.grid_points)
    kw = {"seed": _seed(cfg.seed, 800), "device": cfg.device, "env_id": cfg.env}
    on_switch = point_returns(switch, uset, units, defense.search_episodes, **kw)  # type: ignore[arg-type]
    on_selected = point_returns(policies[best], uset, units, defense.search_episodes, **kw)  # type: ignore[arg-type]
    logger.info("iwocs mode switch: grid worst %.1f (selected policy %.1f)", on_switch.min(), on_selected.min())
    return {"grid_points": defense.grid_points, "worst": float(on_switch.min()), "average": float(on_switch.mean()),
            "selected_worst": float(on_selected.min()), "selected_average": float(on_selected.mean())}
