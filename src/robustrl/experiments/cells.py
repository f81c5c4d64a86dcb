"""A study's cells: every stage's resolved config, its content hash and its labels.

:func:`expand` turns a :class:`~robustrl.experiments.spec.StudySpec` into :class:`Cell` objects:

* one ``train`` cell per method × ``[grid]`` point × seed, its ``TrainConfig`` built from ``[train]``, the
  method's ``train`` overrides, the grid point and the seed;
* per policy (each training cell's ``policy.zip``, each ``[[policy]]`` file) one cell per point of each stage's
  grid, its config built from the stage's table, the method's overrides for that stage and the grid point,
  with ``policy``, ``env`` and (unless set) ``seed`` taken from the policy.

Every config is checked (:func:`robustrl.experiments.stages.check_config`) before anything runs. A cell's
hash is the SHA-256 of its stage, its resolved config (without the fields that do not change the result:
output paths, progress bars) and the robustrl version: the same cell always has the same hash, a changed
config or a new robustrl a new one. A cell that uses a trained policy names it by its training cell's
folder, so its hash changes with the training cell's; a ``[[policy]]`` file enters by its content hash.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robustrl.common.config import field_defaults
from robustrl.experiments.locate import KeyPath, Problem, StudySpecError, format_path
from robustrl.experiments.spec import MethodSpec, StageSpec, StudySpec, load_spec
from robustrl.experiments.stages import STAGES, check_config, dataset_env

__all__ = ["ARTEFACTS", "Cell", "Study", "cell_hash", "expand", "load_study", "select_cells"]

ARTEFACTS = "artefacts"
"""Folder of the study holding one sub-folder per cell, named by its hash."""
HASH_CHARS = 20
"""Hex digits of a cell hash (80 bits)."""


@dataclass(frozen=True)
class Cell:
    """One unit of work: a stage's resolved config, with the labels it is grouped by."""

    cell_hash: str
    """Content hash of the stage, the resolved config and the robustrl version."""
    stage: str
    """``train``, ``evaluate``, ``certify`` or ``dynamics``."""
    config: dict[str, Any]
    """The resolved config (``config_to_dict``); paths inside the study are relative to its folder."""
    labels: dict[str, Any]
    """``method``, ``env``, ``seed``, ``algo`` and the value of every grid axis of the cell."""
    parent: str | None = None
    """Hash of the training cell whose policy this cell uses (None: a training cell or a ``[[policy]]`` file)."""

    @property
    def folder(self) -> str:
        """The cell's folder, relative to the study folder (``artefacts/<hash>``)."""
        return f"{ARTEFACTS}/{self.cell_hash}"

    @property
    def result_path(self) -> str:
        """The result file (evaluation stages) or run folder (training), relative to the study folder."""
        name = STAGES[self.stage].result_file
        return f"{self.folder}/{name}" if name else self.folder

    def task(self) -> str:
        """The JSON a worker receives: hash, stage and config (no Python objects travel)."""
        return json.dumps({"cell_hash": self.cell_hash, "stage": self.stage, "config": self.config}, sort_keys=True)


@dataclass(frozen=True)
class Study:
    """A checked spec and its cells, training cells first."""

    spec: StudySpec
    """The spec the cells come from."""
    cells: tuple[Cell, ...]
    """Every cell, each stage's cells after the cells they depend on."""

    def by_hash(self) -> dict[str, Cell]:
        """``{cell_hash: cell}``."""
        return {c.cell_hash: c for c in self.cells}

    def count(self, stage: str) -> int:
        """Number of cells of ``stage``."""
        return sum(c.stage == stage for c in self.cells)


def cell_hash(stage: str, config: Mapping[str, Any], *, policy_digest: str | None = None) -> str:
    """The hash of a cell: stage, config without its unhashed fields, robustrl version.

    Args:
        stage: the stage name.
        config: the resolved config as a JSON-ready dict.
        policy_digest: SHA-256 of a ``[[policy]]`` file, standing for its path.

    Example:
        >>> a = cell_hash("certify", {"sigma": 0.2, "out": "x"})
        >>> a == cell_hash("certify", {"sigma": 0.2, "out": "y"}), a == cell_hash("certify", {"sigma": 0.3})
        (True, False)
    """
    from robustrl import __version__

    # fields at their default value are left out, so a field added to a stage's config later (with a default)
    # keeps the cells of existing studies where they are
    defaults = _defaults(stage)
    skip = STAGES[stage].unhashed
    body = {k: v for k, v in config.items() if k not in skip and (k not in defaults or defaults[k] != v)}
    if policy_digest is not None:
        body["policy"] = f"sha256:{policy_digest}"
    text = json.dumps({"stage": stage, "config": body, "robustrl": __version__}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_CHARS]


@functools.cache
def _defaults(stage: str) -> dict[str, Any]:
    """The JSON-ready default of every field of ``stage``'s config that has one (as the cell configs are stored)."""
    return {k: json.loads(json.dumps(v, default=_json_ready))
            for k, v in field_defaults(STAGES[stage].config_class()).items()}  # fmt: skip


def _json_ready(value: Any) -> Any:
    return sorted(value) if isinstance(value, set | frozenset) else str(value)


@dataclass(frozen=True)
class _Root:
    """A policy the evaluation stages run on."""

    labels: dict[str, Any]
    env: str
    seed: int
    policy: str
    method: MethodSpec | None
    parent: str | None
    digest: str | None
    source: int | None = None


class _Builder:
    """Builds cells, collecting problems (deduplicated) instead of stopping at the first."""

    def __init__(self, spec: StudySpec) -> None:
        self.spec = spec
        self.locator = spec.locator()
        self.problems: dict[tuple[str, str], tuple[KeyPath, str, int]] = {}
        self.cells: list[Cell] = []
        self.seen: dict[str, dict[str, Any]] = {}

    def problem(self, where: KeyPath, message: str, context: str = "") -> None:
        """Note a problem; the same one in several cells is reported once, naming the first cell."""
        key = (format_path(where), message)
        _, first, n = self.problems.get(key, (where, context, 0))
        self.problems[key] = (where, first, n + 1)

    def report(self) -> list[Problem]:
        out = []
        for (_, message), (where, context, n) in self.problems.items():
            if context:
                more = f" and {n - 1} more cell{'s' if n > 2 else ''}" if n > 1 else ""
                message += f" (cell {context}{more})"
            out.append(self.spec.problem(where, message, self.locator))
        return out

    def merge(self, layers: Sequence[tuple[Mapping[str, Any], KeyPath]]) -> tuple[dict[str, Any], dict[str, KeyPath]]:
        """Fields of the layers (later ones win), with the key path each final value came from."""
        values: dict[str, Any] = {}
        origin: dict[str, KeyPath] = {}
        for layer, prefix in layers:
            for key, value in layer.items():
                values[key] = value
                origin[key] = (*prefix, key)
        return values, origin

    def build(
        self,
        stage: str,
        values: dict[str, Any],
        origin: dict[str, KeyPath],
        labels: dict[str, Any],
        *,
        parent: str | None = None,
        digest: str | None = None,
        checked: tuple[str, ...] = (),
    ) -> Cell | None:
        """Resolve, check and hash one cell (None when its config has problems).

        ``parent`` is the training cell it depends on, ``digest`` the content hash of its ``[[policy]]`` file,
        ``checked`` fields already checked elsewhere (a trained policy's env).
        """
        from robustrl.common.config import config_from_dict, config_to_dict

        cls = STAGES[stage].config_class()
        table: KeyPath = (stage,)
        missing = [
            f.name for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and f.name not in values
        ]  # fmt: skip
        if missing:
            for name in missing:
                self.problem(table, f"{cls.__name__}.{name} is required: set it in [{stage}]")
            return None
        try:
            cfg: Any = config_from_dict(cls, values)
        except (TypeError, ValueError) as err:
            self.problem(table, f"{cls.__name__}: {err}")
            return None
        issues = [(f, m) for f, m in check_config(stage, cfg) if f not in checked]
        for fld, message in issues:
            where = origin.get(fld, table) if fld is not None else table
            name = f"{cls.__name__}.{fld}" if fld is not None else cls.__name__
            self.problem(where, f"{name}: {message}", ", ".join(f"{k}={v}" for k, v in labels.items()))
        if issues:
            return None
        config = config_to_dict(cfg)
        h = cell_hash(stage, config, policy_digest=digest)
        if h in self.seen:
            first = ", ".join(f"{k}={v}" for k, v in self.seen[h].items())
            this = ", ".join(f"{k}={v}" for k, v in labels.items())
            self.problem(table, f"two {stage} cells have the same config ({first}) and ({this}): make them differ")
            return None
        self.seen[h] = labels
        cell = Cell(h, stage, config, labels, parent)
        st = STAGES[stage]
        config["out"] = cell.result_path
        for managed in ("progress", "overwrite", "resume"):
            if managed in st.managed:
                config[managed] = False
        self.cells.append(cell)
        return cell


def _grid_points(stage: StageSpec | None) -> list[dict[str, Any]]:
    axes = stage.grid if stage is not None else ()
    return [dict(zip([k for k, _ in axes], combo)) for combo in itertools.product(*[v for _, v in axes])]


def _label_value(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _default_method(cfg_values: Mapping[str, Any]) -> str:
    """``algo`` or ``algo+defense`` of a training config (the method of a study without ``[[method]]``)."""
    algo = str(cfg_values.get("algo", "ppo"))
    if "dataset" in cfg_values:  # offline: the learner, and its reweighting
        reweight = str(cfg_values.get("reweight", "none"))
        return algo if reweight == "none" else f"{algo}+reweight-{reweight}"
    defense = str(cfg_values.get("defense", "none"))
    if defense == "none" and float(cfg_values.get("obs_noise", 0.0) or 0.0) > 0:
        defense = "smoothing"
    return algo if defense == "none" else f"{algo}+{defense}"


def _train_roots(b: _Builder) -> list[_Root]:
    spec = b.spec
    assert spec.train is not None
    roots: list[_Root] = []
    methods: Sequence[MethodSpec | None] = spec.methods or (None,)
    kind = spec.train.name
    grid_keys = {k for k, _ in spec.train.grid}
    defaults = {f.name: f.default for f in dataclasses.fields(STAGES[kind].config_class())}
    for method in methods:
        own = method.overrides.get(kind, {}) if method is not None else {}
        for key in sorted(set(own) & grid_keys):
            index = method.index if method is not None else 0
            b.problem(("method", index, kind, key), f"{key} is also a [grid] axis; set it in one place")
        for point in _grid_points(spec.train):
            for seed in spec.seeds:
                layers: list[tuple[Mapping[str, Any], KeyPath]] = [(spec.train.base, (kind,))]
                if method is not None:
                    layers.append((own, ("method", method.index, kind)))
                layers += [(point, ("grid",)), ({"seed": seed}, ("study", "seeds"))]
                values, origin = b.merge(layers)
                full = {**defaults, **values}
                env = full["env"] or _dataset_env(full)
                name = method.name if method is not None else _default_method(full)
                labels = {"method": name, "env": env, "seed": seed, "algo": full["algo"],
                          **{k: _label_value(v) for k, v in point.items()}}  # fmt: skip
                cell = b.build(kind, values, origin, labels)
                # a training cell with problems still gets its evaluation cells checked (under a dummy hash of its own)
                parent = cell.cell_hash if cell is not None else f"{len(roots):0{HASH_CHARS}x}"
                roots.append(_Root(labels, env, seed, f"{ARTEFACTS}/{parent}/policy.zip", method, parent, None))
    return roots


def _dataset_env(values: Mapping[str, Any]) -> str:
    """The env an offline training cell evaluates in when it sets none: its dataset's.

    "" if the dataset cannot be read (the cell's own check reports why).
    """
    if not values.get("dataset"):
        return ""
    try:
        root = values.get("root")
        return dataset_env(str(values["dataset"]), None if root is None else str(root))
    except ValueError:
        return ""


def expand(spec: StudySpec) -> Study:
    """Every cell of ``spec``, each config resolved and checked.

    Raises:
        StudySpecError: (a ``ValueError``) every problem of every cell, naming file, line, table, key and field.
    """
    b = _Builder(spec)
    roots = _train_roots(b) if spec.train is not None else []
    for src in spec.policies:
        labels = {"method": src.name, "env": src.env, "seed": src.seed, "algo": ""}
        roots.append(_Root(labels, src.env, src.seed, str(src.path), None, None, src.digest, src.index))
    for stage in spec.stages:
        grid_keys = {k for k, _ in stage.grid}
        for root in roots:
            method = root.method
            own = method.overrides.get(stage.name, {}) if method is not None else {}
            for key in sorted(set(own) & grid_keys):
                where = ("method", method.index if method is not None else 0, stage.name, key)
                b.problem(where, f"{key} is also a [{stage.name}.grid] axis; set it in one place")
            for point in _grid_points(stage):
                layers: list[tuple[Mapping[str, Any], KeyPath]] = [({"seed": root.seed}, ("study", "seeds"))]
                layers.append((stage.base, (stage.name,)))
                if root.method is not None:
                    layers.append((own, ("method", root.method.index, stage.name)))
                layers.append((point, (stage.name, "grid")))
                values, origin = b.merge(layers)
                values.update(policy=root.policy, env=root.env)
                if root.source is not None:
                    origin["env"] = ("policy", root.source, "env")
                labels = {**root.labels, **{k: _label_value(v) for k, v in point.items()}}
                # a trained policy's env was checked with its training cell
                checked = ("env",) if root.parent is not None else ()
                b.build(stage.name, values, origin, labels, parent=root.parent, digest=root.digest, checked=checked)
    if b.problems:
        raise StudySpecError(b.report())
    return Study(spec, tuple(b.cells))


def load_study(path: str | Path) -> Study:
    """:func:`~robustrl.experiments.spec.load_spec` then :func:`expand`: a study checked as a whole.

    Raises:
        FileNotFoundError: no such spec file.
        StudySpecError: (a ``ValueError``) every problem found.
    """
    return expand(load_spec(path))


def _label_text(value: Any) -> str:
    return json.dumps(value) if isinstance(value, bool) or value is None else str(value)


def select_cells(study: Study, only: Sequence[str]) -> frozenset[str]:
    """The hashes of the cells chosen by ``only`` (``KEY=V1,V2`` items), with the training cells they need.

    A cell is chosen when, for every item, its label ``KEY`` (``method``, ``env``, ``seed``, ``algo``, a grid
    axis, or ``stage``) is one of the listed values, compared as text (``seed=0,1``, ``budget=0.05``). The
    training cell of every chosen cell is chosen too, so ``--only stage=evaluate`` still trains what it
    evaluates. Cell hashes do not depend on the selection: a later run of the whole study reuses these cells.

    Raises:
        ValueError: an item that is not ``KEY=V1[,V2...]``, a key no cell has (the known keys are listed), a
            key given twice, or a selection that matches no cell (the values present are listed).
    """
    keys = sorted({"stage", *(k for c in study.cells for k in c.labels)})
    wanted: dict[str, set[str]] = {}
    for item in only:
        key, sep, text = item.partition("=")
        key = key.strip()
        values = {v.strip() for v in text.split(",") if v.strip()}
        if not sep or not key or not values:
            raise ValueError(f"--only {item!r}: expected KEY=VALUE[,VALUE...] (keys: {', '.join(keys)})")
        if key not in keys:
            raise ValueError(f"--only {item!r}: no cell has the label {key!r}; the labels are {', '.join(keys)}")
        if key in wanted:
            raise ValueError(f"--only {item!r}: {key} is given twice; list its values in one item ({key}=A,B)")
        wanted[key] = values

    def value(c: Cell, key: str) -> str | None:
        if key == "stage":
            return c.stage
        return _label_text(c.labels[key]) if key in c.labels else None

    chosen = {c.cell_hash for c in study.cells if all(value(c, k) in v for k, v in wanted.items())}
    if not chosen:
        present = {k: sorted({t for c in study.cells if (t := value(c, k)) is not None}) for k in wanted}
        listed = "; ".join(f"{k}: {', '.join(v)}" for k, v in present.items())
        raise ValueError(f"--only {' '.join(only)} matches no cell of the study ({listed})")
    by_hash = study.by_hash()
    for h in list(chosen):
        parent = by_hash[h].parent
        while parent is not None and parent in by_hash:
            chosen.add(parent)
            parent = by_hash[parent].parent
    return frozenset(chosen)
