"""The PROTECTED trainer: a sequence of PPO policies, each against the attack the set handles worst.

Iteration 0 trains a PPO policy on clean observations. After each iteration every policy trained so far has
a return vector over the finite attack family (:func:`robustrl.evaluate.protected.return_matrix`, the attack
targeting that policy); iteration ``i`` trains a new policy with its observations perturbed by the family's
attack under which the current set does worst, argmin_a max_{π∈Π̃} J(π, a) (the critic sees the clean
observation), warm-started from the set's best policy against that attack. The set Π̃ is, each time, at most
``set_size`` non-dominated policies chosen for coverage (:func:`robustrl.defenses.protected.select_set`).

The run folder holds ``policy_<i>/`` (each a normal run folder with its ``policy.zip``), ``protected.json``
(options, per-iteration records with the return vectors, the set; rewritten after every iteration: what
``--resume`` continues from) and, last, ``policy.zip`` (the set's policy with the best mean return over the
family, so tools that want one policy work) and ``result.json``. Test-time adaptation over the set is
:func:`robustrl.evaluate.protected.adapt`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from robustrl.agents.common import Agent
from robustrl.agents.run_folder import prepare_sequence_dir, resumable_options
from robustrl.agents.train import ALGORITHMS, TrainConfig, resolve_algo_config
from robustrl.agents.train import train as train_run
from robustrl.common.config import config_to_dict
from robustrl.common.io import write_json
from robustrl.common.seeding import derive_seed
from robustrl.defenses.base import TrainingHooks
from robustrl.defenses.protected import ProtectedConfig, select_set, weakest_attack
from robustrl.envs.base import VecEnv
from robustrl.evaluate.protected import build_attacks, return_matrix
from robustrl.policies.base import Policy
from robustrl.results import TrainResult

__all__ = ["prepare_protected_dir", "train_protected"]

logger = logging.getLogger(__name__)

_PROGRESS = "protected.json"


def prepare_protected_dir(
    run_dir: Path, options: dict[str, Any], *, overwrite: bool, resume: bool
) -> list[dict[str, Any]]:
    """Check a PROTECTED run folder before any work; the finished iterations' records when resuming.

    ``protected.json`` beside ``policy_<i>/``: see :func:`~robustrl.agents.run_folder.prepare_sequence_dir`.
    """
    return prepare_sequence_dir(run_dir, options, what="a PROTECTED", progress=_PROGRESS, overwrite=overwrite,
                                resume=resume)


def _seed(seed: int, key: int) -> int:
    out = derive_seed(seed, key)
    assert out is not None
    return out


def train_protected(cfg: TrainConfig, defense: ProtectedConfig) -> TrainResult:
    """``robustrl train --defense protected``: a small set of non-dominated PPO policies (PROTECTED).

    Args:
        cfg: the run (``algo`` must be ``ppo``); ``total_steps`` (or the preset's) is split evenly over the
            iterations.
        defense: iterations, set size, the attack family, EXP3 settings for test time.

    Returns:
        The :class:`~robustrl.results.TrainResult` of the set's best policy (``steps``: all iterations'
        transitions; ``config["protected"]``: the set, the attacks and every policy's return vector).

    Raises:
        ValueError: another algorithm than PPO, a bad config, a folder that is not a PROTECTED run, or
            ``--resume`` with other options than the run's (before any work).
    """
    if cfg.algo != "ppo":
        raise ValueError(f"--defense protected trains PPO policies; got --algo {cfg.algo}")
    defense.validate()
    for item, threat in zip(defense.attacks, build_attacks(defense.attacks, [], False), strict=True):
        if threat.kind != "obs":  # unknown names fail above, before any work
            raise ValueError(f"ProtectedConfig.attacks: {item!r} is an action threat; the family holds observation "
                             "attacks")
    total = int(resolve_algo_config(cfg).total_steps)
    per_iter = max(1, total // defense.iterations)
    run_dir = Path(cfg.out) if cfg.out is not None else None
    options = {"train": resumable_options(cfg), "defense": config_to_dict(defense)}
    records: list[dict[str, Any]] = []
    if run_dir is not None:
        records = prepare_protected_dir(run_dir, options, overwrite=cfg.overwrite, resume=cfg.resume)
    results: list[TrainResult] = []
    for i in range(len(records)):  # iterations a resumed run finished before it stopped
        assert run_dir is not None
        from robustrl.policies import load_policy
        from robustrl.results import load_result

        done = load_result(run_dir / f"policy_{i}" / "result.json")
        assert isinstance(done, TrainResult)
        results.append(dataclasses.replace(done, policy=load_policy(run_dir / f"policy_{i}")))
        logger.info("protected %d: kept from the interrupted run", i)
    values = np.asarray([r["returns"] for r in records], dtype=np.float64).reshape(len(records),
                                                                                len(defense.attacks))
    members = select_set(values, defense.set_size) if records else []
    agent_cls = ALGORITHMS[cfg.algo][0]
    for i in range(len(records), defense.iterations):
        policies = [r.policy for r in results]
        if i == 0:
            target, start = None, None
        else:
            target = weakest_attack(values, members)
            best = members[int(np.argmax(values[members, target]))]
            start = policies[best] if defense.warm_start else None
        folder = None if run_dir is None else run_dir / f"policy_{i}"
        again = folder is not None and (folder / "checkpoint.pt").is_file() and not (folder / "result.json").exists()
        sub = dataclasses.replace(cfg, defense="none", defense_set=(), total_steps=per_iter, out=folder,
                                  overwrite=not again, resume=again)

        def make(env: VecEnv, algo_cfg: Any, seed: int, more: Callable[[int, int], VecEnv],
                 start: Policy | None = start, target: int | None = target, it: int = i) -> Agent:
            hooks = TrainingHooks()
            if target is not None:
                threat = build_attacks([defense.attacks[target]], [start] if start is not None else [],
                                       defense.normalized and algo_cfg.normalize_obs)[0]
                hooks = TrainingHooks(obs_transform=threat, clean_critic=True)  # type: ignore[arg-type]
            agent = agent_cls(env, algo_cfg, seed=_seed(seed, 40 + it), hooks=hooks)
            if start is not None:
                agent.policy.load_state_dict(start.state_dict())  # type: ignore[attr-defined]
            return agent  # type: ignore[no-any-return]

        res = train_run(sub, make_agent=make)
        assert res.policy is not None
        results.append(res)
        threats = build_attacks(defense.attacks, [res.policy], defense.normalized)
        row = return_matrix([res.policy], cfg.env, threats, defense.eval_episodes, seed=_seed(cfg.seed, 300),
                            device=cfg.device)[0]
        values = np.vstack([values, row[None]])
        members = select_set(values, defense.set_size)
        records.append({"iteration": i, "trained_against": None if target is None else defense.attacks[target],
                        "warm_start_from": None if target is None or start is None else best,
                        "returns": row.tolist(), "set": members})
        logger.info("protected %d: trained against %s; returns %s; set %s", i, records[-1]["trained_against"],
                    np.round(row, 1).tolist(), members)
        if run_dir is not None:  # progress: what a resumed run starts from
            write_json(run_dir / _PROGRESS, {**options, "set": None, "iterations": records})
    chosen_i = members[int(np.argmax(values[members].mean(axis=1)))]
    chosen = results[chosen_i]
    summary = {"set": members, "selected": chosen_i, "attacks": list(defense.attacks),
               "returns": values.tolist(), "policies": [f"policy_{i}/policy.zip" for i in members]}
    out = dataclasses.replace(chosen, steps=sum(r.steps for r in results),
                              run_dir=None if run_dir is None else str(run_dir),
                              config={**chosen.config, "protected": summary})
    if run_dir is not None:
        from robustrl.policies import save_policy

        write_json(run_dir / _PROGRESS, {**options, "set": members, "selected": chosen_i, "iterations": records})
        save_policy(chosen.policy, run_dir / "policy.zip", env_id=cfg.env, config=out.config)  # type: ignore[arg-type]
        out.save(run_dir / "result.json")
    return out
