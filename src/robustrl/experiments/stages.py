"""The stages a study runs: which config and entry point each calls, and how to check a config before any work.

A stage is one config-first entry point of robustrl (the same ones ``robustrl.cli.COMMANDS`` lists):

==============  ==================  ==========================================  ======================
stage           TOML table          config → entry point                        result (``to_rows``)
==============  ==================  ==========================================  ======================
``train``       ``[train]``         ``TrainConfig`` → ``jobs.train``             ``TrainResult``
``train_offline`` ``[train_offline]`` ``OfflineTrainConfig`` → ``train_offline``  ``OfflineTrainResult``
``evaluate``    ``[evaluate]``      ``EvaluateConfig`` → ``evaluate``            ``EvaluationResult``
``certify``     ``[certify]``       ``CertifyConfig`` → ``certify``              ``Certificate``
``dynamics``    ``[dynamics]``      ``DynamicsConfig`` → ``evaluate_dynamics``   ``DynamicsResult``
==============  ==================  ==========================================  ======================

Modules are imported only when a config class or entry point is asked for, so a worker imports what its
cell needs. :func:`check_config` validates one resolved config with the entry points' own checks
(``plan_evaluation``, ``plan_certify``, ``plan_dynamics``; for training ``resolve_algo_config`` and friends),
plus that the env exists and has the parameters named, so a study fails at load time rather than part way.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["STAGES", "Stage", "StageName", "check_config", "cost_units", "env_info"]

StageName = Literal["train", "train_offline", "evaluate", "certify", "dynamics"]


@dataclass(frozen=True)
class Stage:
    """One stage: where its config and entry point live and which fields the sweep owns."""

    name: StageName
    """The stage's name (also its TOML table)."""
    config: str
    """``module:ConfigClass``."""
    run: str
    """``module:function`` taking the config and returning a typed result."""
    path_fields: tuple[str, ...]
    """Config fields holding paths, stored relative to the study folder."""
    managed: tuple[str, ...]
    """Fields the sweep sets for every cell (a spec may not set them)."""
    unhashed: tuple[str, ...]
    """Fields that do not change the result (left out of the cell hash)."""
    result_file: str
    """The result file inside the cell's folder (empty: the folder is a training run folder)."""

    @property
    def trains(self) -> bool:
        """Whether the stage trains a policy (its cell folder is a run folder with ``policy.zip``)."""
        return not self.result_file

    def config_class(self) -> type:
        """The config class, imported now."""
        return _resolve(self.config)  # type: ignore[no-any-return]

    def entry_point(self) -> Callable[[Any], Any]:
        """The entry point, imported now."""
        return _resolve(self.run)  # type: ignore[no-any-return]


def _resolve(spec: str) -> Any:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


_RUN = ("out", "overwrite", "resume", "progress")
_EVAL = ("policy", "env", "out", "progress")

STAGES: dict[str, Stage] = {
    "train": Stage(
        "train", "robustrl.agents.train:TrainConfig", "robustrl.jobs:train", ("out",), _RUN, _RUN, "",
    ),
    "train_offline": Stage(
        "train_offline", "robustrl.offline.train:OfflineTrainConfig", "robustrl.offline.train:train_offline",
        ("out",), _RUN, _RUN, "",
    ),
    "evaluate": Stage(
        "evaluate", "robustrl.evaluate.config:EvaluateConfig", "robustrl.jobs:evaluate", ("policy", "out"), _EVAL,
        ("out", "progress"), "result.json",
    ),
    "certify": Stage(
        "certify", "robustrl.certify.config:CertifyConfig", "robustrl.certify:certify", ("policy", "out"), _EVAL,
        ("out", "progress"), "result.json",
    ),
    "dynamics": Stage(
        "dynamics", "robustrl.evaluate.config:DynamicsConfig", "robustrl.evaluate:evaluate_dynamics",
        ("policy", "out"), _EVAL, ("out", "progress"), "result.json",
    ),
}  # fmt: skip
"""Every stage by name, in the order a study lists them (training first)."""

Issue = tuple[str | None, str]
"""A problem with a config: ``(field or None for the whole config, message)``."""


@functools.cache
def _native_infos() -> dict[str, Any]:
    from robustrl.envs import list_envs

    return {e.id: e for e in list_envs("native")}


@functools.cache
def _gymnasium_infos() -> dict[str, Any]:
    from robustrl.envs import list_envs

    return {e.id: e for e in list_envs("gymnasium")}


def env_info(env_id: str) -> Any | None:
    """The :class:`~robustrl.envs.base.EnvInfo` of ``env_id`` (None: robustrl cannot make it)."""
    native = _native_infos()
    if env_id in native:
        return native[env_id]
    return _gymnasium_infos().get(env_id)


def _check_env(env_id: str) -> list[Issue]:
    if env_info(env_id) is not None:
        return []
    ids = [*_native_infos(), *_gymnasium_infos()]
    close = difflib.get_close_matches(env_id, ids, n=3)
    hint = f"; did you mean {close}?" if close else " (see robustrl envs)"
    return [("env", f"unknown environment id {env_id!r}{hint}")]


def _attempt(issues: list[Issue], fld: str | None, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except (ValueError, KeyError, TypeError) as err:
        issues.append((fld, str(err).strip("'\"")))
        return None


def _positive(issues: list[Issue], cfg: Any, fld: str, *, allow_zero: bool = False) -> None:
    value = getattr(cfg, fld)
    if value is not None and (value < 0 or (value == 0 and not allow_zero)):
        issues.append((fld, f"must be {'≥ 0' if allow_zero else '≥ 1'}, got {value}"))


def _check_train(cfg: Any) -> list[Issue]:
    from robustrl.agents.train import (
        parse_env_params,
        parse_param_ranges,
        resolve_algo_config,
        resolve_defense_config,
    )

    issues = _check_env(cfg.env)
    for fld in ("eval_episodes", "total_steps", "num_envs"):
        _positive(issues, cfg, fld)
    _positive(issues, cfg, "eval_every", allow_zero=True)
    if cfg.stop_at_return is not None and not math.isfinite(cfg.stop_at_return):
        issues.append(("stop_at_return", f"must be a finite number, got {cfg.stop_at_return}"))
    _attempt(issues, "set", lambda: resolve_algo_config(cfg))
    _attempt(issues, "defense_set", lambda: resolve_defense_config(cfg))
    params = _attempt(issues, "env_params", lambda: parse_env_params(cfg.env_params)) or {}
    ranges = _attempt(issues, "env_randomize", lambda: parse_param_ranges(cfg.env_randomize)) or {}
    info = env_info(cfg.env)
    known = set(info.params) if info is not None else set()
    for fld, names in (("env_params", params), ("env_randomize", ranges)):
        unknown = sorted(set(names) - known) if known else []
        if unknown:
            issues.append((fld, f"{cfg.env} has no parameters {unknown} (it has {sorted(known)})"))
    if set(params) & set(ranges):
        issues.append(("env_randomize", f"{sorted(set(params) & set(ranges))} are both fixed and randomised"))
    return issues


_FLAG = re.compile(r"--([a-z][a-z0-9-]*)")


def _field_of(text: str, names: set[str]) -> str | None:
    """The config field a message is about: its ``--flag``, else the first field name it mentions."""
    m = _FLAG.search(text)
    if m is not None and m.group(1).replace("-", "_") in names:
        return m.group(1).replace("-", "_")
    hits = [(m.start(), n) for n in names if (m := re.search(rf"\b{re.escape(n)}\b", text)) is not None]
    return min(hits)[1] if hits else None


def _planned(issues: list[Issue], cfg: Any, plan: Callable[[Any], Any], *, rounds: int = 8) -> Any:
    """Run the entry point's own ``plan_*`` check on ``cfg`` (output path left out: the cell folder comes later).

    The check stops at its first problem; the field it names is reset to its default and the check run
    again, so independent problems of several fields are all reported. Returns the plan (None on problems).
    """
    fields = {f.name: f for f in dataclasses.fields(cfg)}
    cfg = dataclasses.replace(cfg, out=None)
    seen: set[str | None] = set()
    for _ in range(rounds):
        try:
            plan_result = plan(cfg)
        except (ValueError, KeyError, TypeError) as err:
            text = str(err).strip("'\"")
            fld = _field_of(text, set(fields))
            issues.append((fld, text))
            if fld is None or fld in seen or fields[fld].default is dataclasses.MISSING:
                return None
            seen.add(fld)
            default = fields[fld].default
            cfg = dataclasses.replace(cfg, **{fld: default})
            continue
        return None if seen else plan_result
    return None


def _check_evaluate(cfg: Any) -> list[Issue]:
    from robustrl.evaluate.config import plan_evaluation

    issues = _check_env(cfg.env)
    _planned(issues, cfg, plan_evaluation)
    return issues


def _check_certify(cfg: Any) -> list[Issue]:
    from robustrl.certify.config import plan_certify

    issues = _check_env(cfg.env)
    _planned(issues, cfg, plan_certify)
    info = env_info(cfg.env)
    if cfg.floor is None and info is not None and info.return_floor is None:
        issues.append(("floor", f"{cfg.env} declares no return floor: set floor (the least return the task allows)"))
    return issues


def _check_dynamics(cfg: Any) -> list[Issue]:
    from robustrl.evaluate.config import plan_dynamics

    issues = _check_env(cfg.env)
    plan = _planned(issues, cfg, plan_dynamics)
    info = env_info(cfg.env)
    if plan is not None and info is not None and info.params:
        unknown = sorted({a.name for a in plan.axes} - set(info.params))
        if unknown:
            issues.append(("param", f"{cfg.env} has no parameters {unknown} (it has {sorted(info.params)})"))
    return issues


@functools.lru_cache(maxsize=64)
def dataset_facts(dataset: str, root: str | None) -> tuple[str, bool]:
    """The env id a dataset names ("" if it names none) and whether its actions are Discrete, read once.

    Raises:
        ValueError: the dataset cannot be read (unknown id, missing file...).
    """
    from robustrl.offline.data import load_dataset

    data = load_dataset(dataset, root=root)
    return data.env_id, data.discrete


def dataset_env(dataset: str, root: str | None) -> str:
    """The env id a dataset names ("" if it names none); see :func:`dataset_facts`."""
    return dataset_facts(dataset, root)[0]


def _check_train_offline(cfg: Any) -> list[Issue]:
    from robustrl.offline.discrete import DISCRETE_ALGORITHMS
    from robustrl.offline.train import OFFLINE_ALGORITHMS

    issues: list[Issue] = []
    _attempt(issues, None, lambda: dataclasses.replace(cfg, out=None).validate())
    if issues:
        return issues
    facts = _attempt(issues, "dataset", lambda: dataset_facts(cfg.dataset, _text(cfg.root)))
    env = cfg.env or (facts[0] if facts else "")
    if env:
        issues += _check_env(env)
    elif not issues:
        issues.append(("env", f"dataset {cfg.dataset!r} names no env: set env"))
    discrete = bool(facts and facts[1])
    if discrete and cfg.algo not in DISCRETE_ALGORITHMS:
        issues.append(("algo", f"{cfg.algo} needs Box actions; dataset {cfg.dataset!r} has Discrete ones: use "
                               f"{' or '.join(sorted(DISCRETE_ALGORITHMS))}"))  # fmt: skip
        return issues
    _, algo_cls = (DISCRETE_ALGORITHMS if discrete else OFFLINE_ALGORITHMS)[cfg.algo]
    from robustrl.common.config import apply_overrides

    _attempt(issues, "set", lambda: apply_overrides(algo_cls(), list(cfg.set)).validate())
    return issues


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


_CHECKS: dict[str, Callable[[Any], list[Issue]]] = {
    "train": _check_train,
    "train_offline": _check_train_offline,
    "evaluate": _check_evaluate,
    "certify": _check_certify,
    "dynamics": _check_dynamics,
}


def check_config(stage: str, cfg: Any) -> list[Issue]:
    """Problems with the resolved config ``cfg`` of ``stage``, found without running anything.

    Returns:
        ``[(field or None, message), ...]``; empty when the config can run as far as can be told.
    """
    return _CHECKS[stage](cfg)


# --------------------------------------------------------------------------------------------------
# cost model (for --dry-run): work units per cell; seconds per unit are calibrated by finished cells
# --------------------------------------------------------------------------------------------------
DEFAULT_SECONDS_PER_UNIT: dict[str, float] = {
    "train": 1.5e-4,
    "train_offline": 4.0e-3,
    "evaluate": 6.0e-3,
    "certify": 7.0e-4,
    "dynamics": 2.5e-3,
}
"""Seconds per work unit on one core of a 2-core CPU, measured on the CartPole studies of ``examples/studies``
(long episodes of trained policies); a store's finished cells replace them."""
CELL_OVERHEAD_S = 1.0
"""Fixed seconds per cell (loading the policy, making envs), added to every estimate."""

_GRADIENT_STEPS = {"fgsm": 1, "pgd": 10, "mad": 10, "critic": 10}
_TRAIN_STEP_IN_EVAL_UNITS = DEFAULT_SECONDS_PER_UNIT["train"] / DEFAULT_SECONDS_PER_UNIT["evaluate"]
"""One training env step (a suite's adversary or robust-Sarsa training) in evaluate work units."""


def _threat_rollouts(texts: Any, per_budget: int) -> float:
    """Rollouts of the attacks ``texts`` at ``per_budget`` budgets, a gradient attack's counted per step."""
    from robustrl.evaluate.config import parse_threat

    total = 0.0
    for text in texts:
        name, opts = parse_threat(text)
        total += per_budget * (1 + int(opts.get("steps", _GRADIENT_STEPS.get(name, 0))))
    return total


def _suite_units(suite_name: str, env_id: str, episodes: float, per_budget: int) -> float:
    """Work units of a pinned suite: its attacks' rollouts, and its adversaries' training per budget."""
    from robustrl.adversarial.suite import SUITES

    suite = SUITES.get(suite_name)
    if suite is None:
        return episodes
    rollouts = 1.0 + _threat_rollouts([text for _, text in suite.threats], per_budget)
    training = 0.0
    for _, adv in suite.learned_for(env_id):
        rollouts += per_budget * (1 + (adv.pgd_steps if adv.kind == "pa-ad" else 0))
        training += per_budget * adv.total_steps
    if suite.sarsa is not None:
        rollouts += per_budget * (1 + suite.sarsa.attack_steps)
        training += per_budget * suite.sarsa.total_steps
    return episodes * rollouts + training * _TRAIN_STEP_IN_EVAL_UNITS


def cost_units(stage: str, config: dict[str, Any]) -> float:
    """Work units of one cell, proportional to its run time for a given task (see :data:`DEFAULT_SECONDS_PER_UNIT`).

    train: environment steps; train_offline: gradient updates; evaluate: episodes × rollouts, a gradient
    attack's rollout counted once per optimiser step, plus a pinned suite's adversary and robust-Sarsa training
    (its env steps at the train stage's rate); certify: episodes; dynamics: episodes × grid points.
    """
    if stage == "train":
        from robustrl.agents.train import TrainConfig, resolve_algo_config
        from robustrl.common.config import config_from_dict

        try:
            return float(resolve_algo_config(config_from_dict(TrainConfig, dict(config))).total_steps)
        except (ValueError, TypeError):
            return float(config.get("total_steps") or 0)
    if stage == "train_offline":
        return float(config.get("updates") or 0)
    if stage == "evaluate":
        per_budget = len([b for b in config.get("budgets", ()) if b > 0]) or 1
        episodes = float(config.get("episodes", 1))
        if config.get("suite"):
            return _suite_units(str(config["suite"]), str(config.get("env", "")), episodes, per_budget)
        return episodes * (1.0 + _threat_rollouts(config.get("threat", ()), per_budget))
    if stage == "certify":
        return float(config.get("episodes", 1))
    from robustrl.threats.dynamics import grid_shape, make_grid

    points = math.prod(grid_shape(make_grid(tuple(config.get("param", ())))))
    return float(config.get("episodes", 1)) * points


def field_names(stage: str) -> list[str]:
    """The config fields of ``stage`` a spec may set (every field but the managed ones)."""
    st = STAGES[stage]
    return [f.name for f in dataclasses.fields(st.config_class()) if f.name not in st.managed]
