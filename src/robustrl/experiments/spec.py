"""The study spec: a TOML file read with ``tomllib`` and checked as a whole (see ``docs/studies.md``).

Tables (every key is described in ``docs/studies.md``)::

    [study]            name, description, seeds
    [train]            TrainConfig fields shared by every training cell
    [train_offline]    OfflineTrainConfig fields instead (offline learners on datasets; not with [train])
    [grid]             axes over the training config's fields: key = [values...]; cells = methods × axes × seeds
    [[method]]         named variants: name, description, and per-stage overrides (train/train_offline/evaluate/...)
    [[policy]]         existing policy files to evaluate without training: name, path, env, seed
    [evaluate]         EvaluateConfig fields, run on every policy; [evaluate.grid] axes multiply these cells
    [certify]          CertifyConfig fields (and [certify.grid])
    [dynamics]         DynamicsConfig fields (and [dynamics.grid])

:func:`load_spec` parses the file and checks its structure and every value's type against the config
field it sets; :func:`robustrl.experiments.cells.expand` then resolves each cell's config and checks it.
Both collect every problem and raise one :class:`~robustrl.experiments.locate.StudySpecError` naming the
file, line, table, key and config field of each.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from robustrl.experiments.locate import KeyPath, Problem, StudySpecError, TomlLocator, format_path
from robustrl.experiments.stages import STAGES

__all__ = ["MethodSpec", "PolicySource", "StageSpec", "StudySpec", "coerce", "load_spec", "parse_spec"]

TOP_LEVEL = ("study", "train", "train_offline", "grid", "method", "policy", "evaluate", "certify", "dynamics")
"""The tables a spec may have."""
STUDY_KEYS = ("name", "description", "seeds")
"""Keys of ``[study]``."""
METHOD_KEYS = ("name", "description", "train", "train_offline", "evaluate", "certify", "dynamics")
"""Keys of a ``[[method]]`` table."""
POLICY_KEYS = ("name", "path", "env", "seed")
"""Keys of a ``[[policy]]`` table."""
EVAL_STAGES = ("evaluate", "certify", "dynamics")
"""Stages run on every policy (trained or given), in this order."""
TRAIN_STAGES = ("train", "train_offline")
"""Stages that train the policies of a study (at most one per study)."""
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


@dataclass(frozen=True)
class StageSpec:
    """One stage's table: the fields shared by its cells and the axes that multiply them."""

    name: str
    """``train``, ``train_offline``, ``evaluate``, ``certify`` or ``dynamics``."""
    base: dict[str, Any]
    """Config fields set in the stage's table (values already of the field's type)."""
    grid: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    """Axes ``(field, values)`` in file order; every combination is one cell per policy."""


@dataclass(frozen=True)
class MethodSpec:
    """A named variant (a row of the leaderboard): per-stage overrides of the shared tables."""

    name: str
    """Label of its cells (``method`` in the results)."""
    index: int
    """Position among the ``[[method]]`` tables (0-based)."""
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    """``stage -> {field: value}`` applied over the stage's table."""
    description: str = ""
    """Free text shown in the report."""


@dataclass(frozen=True)
class PolicySource:
    """An existing policy file the study evaluates without training it."""

    name: str
    """Label of its cells (``method`` in the results)."""
    index: int
    """Position among the ``[[policy]]`` tables (0-based)."""
    path: Path
    """The file (resolved against the spec's folder)."""
    env: str
    """The environment it acts in."""
    seed: int
    """The run it stands for (``seed`` in the results)."""
    digest: str
    """SHA-256 of the file: a changed file is a changed cell."""


@dataclass(frozen=True)
class StudySpec:
    """A parsed, type-checked study spec (cells come from :func:`robustrl.experiments.cells.expand`)."""

    path: Path
    """The spec file."""
    text: str
    """Its text (saved with the study)."""
    name: str
    """``[study] name``."""
    seeds: tuple[int, ...]
    """Training seeds (one training cell per seed per method and grid point)."""
    description: str = ""
    """``[study] description``."""
    train: StageSpec | None = None
    """``[train]`` or ``[train_offline]`` with ``[grid]`` (None: nothing is trained)."""
    methods: tuple[MethodSpec, ...] = ()
    """``[[method]]`` tables (empty: one method per cell, named after its algorithm and defense)."""
    policies: tuple[PolicySource, ...] = ()
    """``[[policy]]`` tables."""
    stages: tuple[StageSpec, ...] = ()
    """``[evaluate]``, ``[certify]``, ``[dynamics]`` present in the spec, in that order."""

    @property
    def digest(self) -> str:
        """SHA-256 of the spec text."""
        return hashlib.sha256(self.text.encode()).hexdigest()

    @property
    def stage_names(self) -> tuple[str, ...]:
        """Every stage the study runs, training first."""
        return ((self.train.name,) if self.train is not None else ()) + tuple(s.name for s in self.stages)

    def locator(self) -> TomlLocator:
        """Line lookup in the spec text."""
        return TomlLocator(self.text)

    def problem(self, path: KeyPath, message: str, locator: TomlLocator | None = None) -> Problem:
        """A :class:`Problem` at ``path`` of this spec."""
        loc = locator or self.locator()
        return Problem(str(self.path), loc.line(path), format_path(path), message)


# --------------------------------------------------------------------------------------------------
# values → config field types
# --------------------------------------------------------------------------------------------------
def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin is tuple:
        return f"a list of {_type_name(get_args(tp)[0])}"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp) if a is not type(None)) + ' (or "none")'
    if tp is float:
        return "a number"
    if tp is int:
        return "a whole number"
    if tp is bool:
        return "true or false"
    if tp is dict or get_origin(tp) is dict:
        return "a table"
    return "a string"


def coerce(value: Any, tp: Any) -> Any:
    """``value`` read from TOML as the config field type ``tp`` (a scalar is a one-item list for a tuple field).

    Raises:
        ValueError: the value does not fit (the message says what was expected).

    Example:
        >>> coerce(1, float), coerce("pgd", tuple[str, ...]), coerce("none", int | None)
        (1.0, ('pgd',), None)
    """
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in get_args(tp) if a is not type(None)]
        if isinstance(value, str) and value.lower() == "none" and len(inner) < len(get_args(tp)):
            if not (len(inner) == 1 and inner[0] is str):
                return None
        for a in inner:
            try:
                return coerce(value, a)
            except ValueError:
                continue
        raise ValueError(f"expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        choices = get_args(tp)
        if any(value == c and type(value) is type(c) for c in choices):
            return value
        close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=3)
        hint = f"; did you mean {close}?" if close else ""
        raise ValueError(f"expected {_type_name(tp)}, got {value!r}{hint}")
    if origin is tuple:
        items = value if isinstance(value, list) else [value]
        inner_tp = get_args(tp)[0]
        try:
            return tuple(coerce(v, inner_tp) for v in items)
        except ValueError as err:
            raise ValueError(f"expected {_type_name(tp)}: {err}") from None
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif tp is dict or origin is dict:
        if isinstance(value, dict):
            return dict(value)
    elif tp is Any:
        return value
    elif isinstance(value, str):  # str, Path
        return value
    raise ValueError(f"expected {_type_name(tp)}, got {value!r}")


# --------------------------------------------------------------------------------------------------
# parsing
# --------------------------------------------------------------------------------------------------
class _Collector:
    """Problems found while parsing, located in the spec text."""

    def __init__(self, path: Path, text: str) -> None:
        self.path, self.locator = path, TomlLocator(text)
        self.problems: list[Problem] = []

    def add(self, where: KeyPath, message: str) -> None:
        self.problems.append(Problem(str(self.path), self.locator.line(where), format_path(where), message))

    def unknown(self, where: KeyPath, key: str, allowed: Sequence[str], what: str) -> None:
        close = difflib.get_close_matches(key, list(allowed), n=3)
        hint = f"; did you mean {close}?" if close else f" (known: {', '.join(allowed)})"
        self.add((*where, key), f"unknown {what} {key!r}{hint}")


def _hints(stage: str) -> tuple[str, dict[str, Any]]:
    cls = STAGES[stage].config_class()
    hints = typing.get_type_hints(cls)
    return cls.__name__, {f.name: hints[f.name] for f in fields(cls)}


def _fields_table(
    col: _Collector, stage: str, table: Mapping[str, Any], where: KeyPath, *, forbid: Sequence[str] = ()
) -> dict[str, Any]:
    """Config fields of ``stage`` from a TOML table, each coerced to its type (problems collected)."""
    cls_name, hints = _hints(stage)
    managed = STAGES[stage].managed
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key in managed or key in forbid:
            reason = "set by the sweep for every cell" if key in managed else "given in [study] seeds"
            col.add((*where, key), f"{cls_name}.{key} is {reason}; remove it from the spec")
            continue
        if key not in hints:
            allowed = [k for k in hints if k not in managed and k not in forbid]
            col.unknown(where, key, allowed, f"{cls_name} field")
            continue
        try:
            out[key] = coerce(value, hints[key])
        except ValueError as err:
            col.add((*where, key), f"{cls_name}.{key}: {err}")
    return out


def _grid_table(
    col: _Collector, stage: str, table: Any, where: KeyPath, *, forbid: Sequence[str] = ()
) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    """Axes ``(field, values)`` of a grid table: each value a non-empty list of the field's type."""
    if not isinstance(table, dict):
        col.add(where, "must be a table of field = [values...]")
        return ()
    cls_name, hints = _hints(stage)
    axes = []
    for key, values in table.items():
        if not isinstance(values, list) or not values:
            col.add((*where, key), f"a grid axis needs a non-empty list of values, got {values!r}")
            continue
        checked = _fields_table(col, stage, {key: values[0]}, where, forbid=forbid)
        if key not in checked:
            continue
        try:
            coerced = tuple(coerce(v, hints[key]) for v in values)
        except ValueError as err:
            col.add((*where, key), f"{cls_name}.{key}: {err}")
            continue
        if len(set(map(repr, coerced))) != len(coerced):
            col.add((*where, key), f"values repeat: {values!r}")
            continue
        axes.append((key, coerced))
    return tuple(axes)


def _stage_table(col: _Collector, stage: str, table: Any) -> StageSpec | None:
    if not isinstance(table, dict):
        col.add((stage,), f"[{stage}] must be a table")
        return None
    body = dict(table)
    grid = body.pop("grid", {})
    base = _fields_table(col, stage, body, (stage,), forbid=("seed",) if stage in TRAIN_STAGES else ())
    axes = _grid_table(col, stage, grid, (stage, "grid"))
    for key, _ in axes:
        if key in base:
            col.add((stage, "grid", key), f"{key} is both set in [{stage}] and a grid axis; keep one")
    return StageSpec(stage, base, axes)


def _text(col: _Collector, where: KeyPath, value: Any, *, required: bool, name: bool = False) -> str:
    if value is None:
        if required:
            col.add(where, "is required")
        return ""
    if not isinstance(value, str) or (name and not _NAME.match(value)):
        what = "a name of letters, digits and _ . + -" if name else "a string"
        col.add(where, f"must be {what}, got {value!r}")
        return ""
    return value


def _study_table(col: _Collector, data: Mapping[str, Any]) -> tuple[str, str, tuple[int, ...]]:
    study = data.get("study")
    if not isinstance(study, dict):
        col.add(("study",), "the spec needs a [study] table with at least name = \"...\"")
        return "", "", (0,)
    for key in study:
        if key not in STUDY_KEYS:
            col.unknown(("study",), key, STUDY_KEYS, "[study] key")
    name = _text(col, ("study", "name"), study.get("name"), required=True, name=True)
    description = _text(col, ("study", "description"), study.get("description"), required=False)
    seeds_raw = study.get("seeds", [0])
    ok = (
        isinstance(seeds_raw, list)
        and seeds_raw
        and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds_raw)
    )
    if not ok:
        col.add(("study", "seeds"), f"must be a non-empty list of whole numbers ≥ 0, got {seeds_raw!r}")
        return name, description, (0,)
    if len(set(seeds_raw)) != len(seeds_raw):
        col.add(("study", "seeds"), f"seeds repeat: {seeds_raw!r}")
    return name, description, tuple(dict.fromkeys(seeds_raw))


def _methods(col: _Collector, raw: Any, stages: Sequence[str]) -> tuple[MethodSpec, ...]:
    if not isinstance(raw, list):
        col.add(("method",), "write methods as [[method]] tables")
        return ()
    out: list[MethodSpec] = []
    seen: dict[str, int] = {}
    for i, table in enumerate(raw):
        where: KeyPath = ("method", i)
        for key in table:
            if key not in METHOD_KEYS:
                col.unknown(where, key, METHOD_KEYS, "[[method]] key")
        name = _text(col, (*where, "name"), table.get("name"), required=True, name=True)
        if name in seen:
            col.add((*where, "name"), f"method {name!r} is already [[method]] #{seen[name] + 1}")
        seen.setdefault(name, i)
        overrides: dict[str, dict[str, Any]] = {}
        for stage in (*TRAIN_STAGES, *EVAL_STAGES):
            if stage not in table:
                continue
            if stage not in stages:
                col.add((*where, stage), f"the study has no [{stage}] table to override")
                continue
            if not isinstance(table[stage], dict):
                col.add((*where, stage), f"must be a table of {stage} config fields")
                continue
            forbid = ("seed",) if stage in TRAIN_STAGES else ()
            overrides[stage] = _fields_table(col, stage, table[stage], (*where, stage), forbid=forbid)
        description = _text(col, (*where, "description"), table.get("description"), required=False)
        out.append(MethodSpec(name, i, overrides, description))
    return tuple(out)


def _policies(col: _Collector, raw: Any, base_dir: Path) -> tuple[PolicySource, ...]:
    if not isinstance(raw, list):
        col.add(("policy",), "write policy files as [[policy]] tables")
        return ()
    out: list[PolicySource] = []
    for i, table in enumerate(raw):
        where: KeyPath = ("policy", i)
        for key in table:
            if key not in POLICY_KEYS:
                col.unknown(where, key, POLICY_KEYS, "[[policy]] key")
        name = _text(col, (*where, "name"), table.get("name"), required=True, name=True)
        env = _text(col, (*where, "env"), table.get("env"), required=True)
        text = _text(col, (*where, "path"), table.get("path"), required=True)
        seed = table.get("seed", 0)
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            col.add((*where, "seed"), f"must be a whole number ≥ 0, got {seed!r}")
            seed = 0
        if not text:
            continue
        path = Path(text).expanduser()
        path = path if path.is_absolute() else (base_dir / path)
        if not path.is_file():
            col.add((*where, "path"), f"no policy file {str(path)!r}")
            continue
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        out.append(PolicySource(name, i, path.resolve(), env, seed, digest))
    return tuple(out)


def parse_spec(text: str, path: str | Path = "<study>") -> StudySpec:
    """Parse and type-check a study spec's text (relative ``[[policy]]`` paths are read from ``path``'s folder).

    Raises:
        StudySpecError: (a ``ValueError``) every problem found, each with file, line, table, key and field.
    """
    p = Path(path)
    col = _Collector(p, text)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        m = re.search(r"line (\d+)", str(err))
        raise StudySpecError([Problem(str(p), int(m.group(1)) if m else None, "(syntax)", str(err))]) from None
    for key in data:
        if key not in TOP_LEVEL:
            col.unknown((), key, TOP_LEVEL, "table")
    name, description, seeds = _study_table(col, data)
    present = [s for s in (*TRAIN_STAGES, *EVAL_STAGES) if s in data]
    trainers = [s for s in TRAIN_STAGES if s in data]
    if len(trainers) > 1:
        col.add(("train_offline",), "a study trains online ([train]) or offline ([train_offline]), not both")
    kind = trainers[0] if trainers else "train"
    train = _stage_table(col, kind, data[kind]) if trainers else None
    if "grid" in data:
        if train is None:
            col.add(("grid",), "[grid] multiplies training cells: add a [train] or [train_offline] table")
        else:
            axes = _grid_table(col, kind, data["grid"], ("grid",), forbid=("seed",))
            for key, _ in axes:
                if key in train.base:
                    col.add(("grid", key), f"{key} is both set in [{kind}] and a grid axis; keep one")
            train = StageSpec(kind, train.base, axes)
    stages = tuple(s for s in (_stage_table(col, n, data[n]) for n in EVAL_STAGES if n in data) if s is not None)
    methods = _methods(col, data["method"], present) if "method" in data else ()
    if methods and train is None:
        col.add(("method",), "[[method]] variants are of training: add a [train] table, or use [[policy]] files")
    policies = _policies(col, data["policy"], p.parent) if "policy" in data else ()
    if train is None and not policies:
        col.add(("study",), "nothing to run: add a [train] table (policies to train) or [[policy]] files")
    elif not (train is not None or stages):
        col.add(("study",), "the [[policy]] files need a stage: add [evaluate], [certify] or [dynamics]")
    labels = [k for k, _ in (train.grid if train else ())]
    for st in stages:
        for key, _ in st.grid:
            if key in labels:
                col.add((st.name, "grid", key), f"axis {key!r} is already an axis of another grid; name axes once")
            labels.append(key)
    if col.problems:
        raise StudySpecError(col.problems)
    return StudySpec(p, text, name, seeds, description, train, methods, policies, stages)


def load_spec(path: str | Path) -> StudySpec:
    """Read and type-check the study spec file ``path``.

    Raises:
        FileNotFoundError: no such file.
        StudySpecError: (a ``ValueError``) every problem found in it.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"study spec {str(p)!r} does not exist")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise StudySpecError([Problem(str(p), None, "(file)", f"not UTF-8 text: {err}")]) from None
    return parse_spec(text, p)
