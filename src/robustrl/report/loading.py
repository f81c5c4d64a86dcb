"""Reading result files into typed, validated records the report draws from.

A result file is JSON with a ``"kind"``: ``"evaluation"`` (written by
``robustrl.evaluate_policy(...).save(path)``), ``"dynamics"`` (``robustrl.evaluate.evaluate_dynamics(...).save``)
or ``"certificate"`` (``robustrl.certify_policy(...).save``). :func:`load_result` dispatches on the kind and
returns an :class:`EvaluationRecord`, :class:`DynamicsRecord` or :class:`CertificateRecord`; every problem
(missing file, not JSON, unknown kind, missing or malformed field) raises an error that names the file.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robustrl.common.io import read_json
from robustrl.report.figures import Estimate

__all__ = [
    "KINDS",
    "CertificateRecord",
    "DynamicsRecord",
    "EvaluationRecord",
    "Record",
    "ResultFileError",
    "ShiftGrid",
    "ThreatCurve",
    "load_result",
    "load_results",
    "nominal_params",
]


class ResultFileError(ValueError):
    """A result file the report cannot use; the message names the file and the problem."""


@dataclass(frozen=True)
class ThreatCurve:
    """Mean return with its CI at each budget of one threat (or of the strongest attack)."""

    name: str
    """Threat label as the evaluation calls it (``"pgd"``, ``"gaussian"``), or ``"strongest"``."""
    unit: str
    """The threat model; budgets are comparable within one (``"obs/linf"``, ``"obs/episode_l2"``)."""
    budgets: np.ndarray
    """``[K]`` budgets, increasing (0: the clean run)."""
    mean: np.ndarray
    """``[K]`` mean attacked return."""
    low: np.ndarray
    """``[K]`` CI lower ends."""
    high: np.ndarray
    """``[K]`` CI upper ends."""
    episodes: np.ndarray
    """``[K]`` episodes behind each mean."""
    which: tuple[str, ...] = ()
    """For the strongest curve: the threat achieving the minimum at each budget (``"clean"`` at 0)."""


@dataclass(frozen=True)
class ShiftGrid:
    """Mean return over a grid of 1–3 physical parameters (a dynamics shift)."""

    params: tuple[str, ...]
    """Parameter names."""
    values: tuple[np.ndarray, ...]
    """Per parameter, the grid values."""
    mean: np.ndarray
    """Mean return ``[n_1, ..., n_d]``."""
    low: np.ndarray | None
    """CI lower ends on the grid, or None."""
    high: np.ndarray | None
    """CI upper ends on the grid, or None."""
    nominal: tuple[float, ...] | None
    """The env's default value of each parameter, or None when unknown."""


@dataclass(frozen=True)
class EvaluationRecord:
    """One evaluation-under-attack result file (``"kind": "evaluation"``)."""

    path: Path
    """Where it was read from."""
    env_id: str
    """The task (several records with one env id are runs of that task)."""
    policy: str
    """What was evaluated (a path or a class name)."""
    clean: Estimate
    """Clean mean return with its CI."""
    clean_episodes: int
    """Episodes behind the clean estimate."""
    curves: tuple[ThreatCurve, ...]
    """One curve per threat."""
    strongest: tuple[ThreatCurve, ...]
    """The strongest-attack curve (min over threats per budget), one per threat model."""
    confidence: float
    """Confidence level of the CIs (e.g. 0.95)."""
    seed: int | None
    """The evaluation's seed."""
    smoothing_sigma: float = 0.0
    """σ of the Gaussian-smoothed policy that was evaluated (0: not smoothed)."""
    runs: int = 1
    """How many runs this record summarises (> 1: pooled by ``robustrl.report.scores.pool_runs``)."""
    config: Mapping[str, Any] = field(default_factory=dict)
    """The resolved config saved with the result."""
    provenance: Mapping[str, Any] = field(default_factory=dict)
    """Versions, commit, device, time."""
    kind: str = "evaluation"
    """Always ``"evaluation"``."""


@dataclass(frozen=True)
class DynamicsRecord:
    """One dynamics-shift result file (``"kind": "dynamics"``): a grid of 1–3 physical parameters."""

    path: Path
    """Where it was read from."""
    env_id: str
    """The task."""
    policy: str
    """What was evaluated."""
    grid: ShiftGrid
    """The grid and its mean returns."""
    episodes: int
    """Episodes per grid point."""
    confidence: float
    """Confidence level of the CIs."""
    seed: int | None
    """The evaluation's seed."""
    config: Mapping[str, Any] = field(default_factory=dict)
    """The resolved config (threat and budget applied on top of the shift, smoothing σ...)."""
    provenance: Mapping[str, Any] = field(default_factory=dict)
    """Versions, commit, device, time."""
    kind: str = "dynamics"
    """Always ``"dynamics"``."""


@dataclass(frozen=True)
class CertificateRecord:
    """One Policy Smoothing certificate file (``"kind": "certificate"``)."""

    path: Path
    """Where it was read from."""
    env_id: str
    """The task."""
    policy: str
    """What was certified."""
    budgets: np.ndarray
    """``[K]`` total ℓ2 budgets B."""
    bounds: np.ndarray
    """``[K]`` certified lower bounds on the attacked expected return (non-finite: none)."""
    confidence: float
    """Probability that all bounds hold at once."""
    method: str
    """How the probabilities were bounded (``dkw``, ``cp``)."""
    sigma: float
    """Smoothing noise std σ."""
    n: int
    """Sampled smoothed episodes."""
    floor: float | None
    """``v_0``, the least return the task allows."""
    clean: Estimate | None
    """Clean smoothed mean return with its CI."""
    returns: np.ndarray
    """``[n]`` the sampled smoothed returns."""
    seed: int | None
    """The certificate's seed."""
    quantile: float | None = None
    """Level q of ``quantile_bounds`` (None: no percentile certificate)."""
    quantile_bounds: np.ndarray | None = None
    """``[K]`` certified lower bounds on the attacked q-quantile (``-inf`` where none)."""
    config: Mapping[str, Any] = field(default_factory=dict)
    """The resolved config saved with the result."""
    provenance: Mapping[str, Any] = field(default_factory=dict)
    """Versions, commit, device, time."""
    kind: str = "certificate"
    """Always ``"certificate"``."""


Record = EvaluationRecord | DynamicsRecord | CertificateRecord
"""Any loaded result."""


class _Reader:
    """Typed access to one JSON object with errors naming the file and the field."""

    def __init__(self, path: Path, data: Mapping[str, Any], where: str = "") -> None:
        self.path = path
        self.data = data
        self.where = where

    def fail(self, msg: str) -> ResultFileError:
        at = f" (at {self.where})" if self.where else ""
        return ResultFileError(f"result file {str(self.path)!r}{at}: {msg}")

    def sub(self, key: str) -> _Reader:
        value = self.get(key)
        if not isinstance(value, Mapping):
            raise self.fail(f"field {key!r} must be an object")
        return _Reader(self.path, value, f"{self.where}.{key}" if self.where else key)

    def has(self, key: str) -> bool:
        return key in self.data and self.data[key] is not None

    def get(self, key: str) -> Any:
        if key not in self.data:
            raise self.fail(f"missing field {key!r}")
        return self.data[key]

    def opt(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def number(self, key: str, default: float | None = None) -> float:
        if key not in self.data and default is not None:
            return default
        return self._to_float(self.get(key), key)

    def _to_float(self, v: Any, key: str) -> float:
        if isinstance(v, str) and v in ("inf", "-inf", "Infinity", "-Infinity"):
            return float(v.replace("inity", ""))
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise self.fail(f"field {key!r} must be a number, got {v!r}")
        x = float(v)
        if math.isnan(x):
            raise self.fail(f"field {key!r} is NaN")
        return x

    def array(self, key: str, *, ndim: int | None = 1, allow_inf: bool = False) -> np.ndarray:
        raw = self.get(key)
        try:
            arr = np.asarray(_decode_nonfinite(raw), dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise self.fail(f"field {key!r} must be an array of numbers ({err})") from err
        if ndim is not None and arr.ndim != ndim:
            raise self.fail(f"field {key!r} must be {ndim}-D, got shape {arr.shape}")
        if np.isnan(arr).any():
            raise self.fail(f"field {key!r} contains NaN")
        if not allow_inf and np.isinf(arr).any():
            raise self.fail(f"field {key!r} contains inf")
        return arr

    def text(self, key: str, default: str | None = None) -> str:
        if key not in self.data and default is not None:
            return default
        v = self.get(key)
        if not isinstance(v, str):
            raise self.fail(f"field {key!r} must be a string, got {v!r}")
        return v

    def seed(self) -> int | None:
        for container in (self.data, self.data.get("config") or {}):
            v = container.get("seed") if isinstance(container, Mapping) else None
            if isinstance(v, int) and not isinstance(v, bool):
                return v
        return None


def _decode_nonfinite(v: Any) -> Any:
    """``robustrl.common.io.write_json`` stores non-finite floats as strings; turn them back."""
    if isinstance(v, str) and v in ("inf", "-inf", "nan", "Infinity", "-Infinity", "NaN"):
        return float(v)
    if isinstance(v, list):
        return [_decode_nonfinite(x) for x in v]
    return v


def _interval(r: _Reader, mean_key: str, ci_key: str) -> Estimate:
    """An estimate from ``mean`` and a ``[low, high]`` pair."""
    point = r.number(mean_key)
    ci = r.array(ci_key)
    if ci.shape != (2,) or ci[0] > ci[1]:
        raise r.fail(f"field {ci_key!r} must be [low, high] with low <= high, got {ci.tolist()}")
    return Estimate(point, float(ci[0]), float(ci[1]))


def _curve(r: _Reader, name: str, unit: str, budgets_key: str = "budgets") -> tuple[np.ndarray, ...]:
    """``budgets, mean, ci_low, ci_high`` of one curve, all ``[K]``, budgets increasing, low <= high."""
    budgets = r.array(budgets_key)
    if budgets.size == 0:
        raise r.fail(f"{name}: no budgets")
    if (budgets < 0).any() or (np.diff(budgets) <= 0).any():
        raise r.fail(f"{name}: budgets must be >= 0 and increasing, got {budgets.tolist()}")
    out = [budgets]
    for key in ("mean", "ci_low", "ci_high"):
        arr = r.array(key)
        if arr.shape != budgets.shape:
            raise r.fail(f"{name}: {key!r} has {arr.size} values for {budgets.size} budgets")
        out.append(arr)
    if (out[2] > out[3]).any():
        raise r.fail(f"{name}: ci_low exceeds ci_high")
    return tuple(out)


def _items(r: _Reader, key: str) -> list[_Reader]:
    raw = r.get(key)
    if not isinstance(raw, list) or not all(isinstance(x, Mapping) for x in raw):
        raise r.fail(f"field {key!r} must be a list of objects")
    return [_Reader(r.path, x, f"{key}[{i}]") for i, x in enumerate(raw)]


def _confidence(r: _Reader) -> float:
    config = r.opt("config")
    c = config.get("confidence", 0.95) if isinstance(config, Mapping) else 0.95
    if isinstance(c, bool) or not isinstance(c, int | float) or not 0 < c < 1:
        raise r.fail(f"config.confidence must be in (0, 1), got {c!r}")
    return float(c)


def _parse_evaluation(r: _Reader) -> EvaluationRecord:
    """Schema: ``robustrl.evaluate.evaluate.EvaluationResult.to_dict`` (docs/evaluate.md)."""
    episodes = int(r.number("episodes"))
    clean_r = r.sub("clean")
    clean = _interval(clean_r, "mean", "ci")
    curves = []
    for t in _items(r, "threats"):
        label, unit = t.text("label"), t.text("threat_model")
        b, m, lo, hi = _curve(t, f"threat {label!r}", unit)
        n = np.full(b.size, episodes)
        if t.has("returns"):
            rets = t.get("returns")
            if isinstance(rets, list) and len(rets) == b.size and all(isinstance(x, list) for x in rets):
                n = np.array([len(x) for x in rets])
        curves.append(ThreatCurve(label, unit, b, m, lo, hi, n))
    strongest = []
    for s in _items(r, "strongest"):
        unit = s.text("threat_model")
        b, m, lo, hi = _curve(s, f"strongest curve {unit!r}", unit)
        which = s.get("threat")
        if not isinstance(which, list) or len(which) != b.size:
            raise s.fail(f"field 'threat' must list one threat per budget ({b.size})")
        strongest.append(
            ThreatCurve("strongest", unit, b, m, lo, hi, np.full(b.size, episodes), tuple(map(str, which)))
        )
    config = r.opt("config") or {}
    sigma = config.get("smoothing_sigma", 0.0) if isinstance(config, Mapping) else 0.0
    return EvaluationRecord(
        path=r.path,
        env_id=r.text("env_id"),
        policy=r.text("policy", ""),
        clean=clean,
        clean_episodes=len(clean_r.get("returns")) if isinstance(clean_r.opt("returns"), list) else episodes,
        curves=tuple(curves),
        strongest=tuple(strongest),
        confidence=_confidence(r),
        seed=r.seed(),
        smoothing_sigma=float(sigma) if isinstance(sigma, int | float) else 0.0,
        config=config if isinstance(config, Mapping) else {},
        provenance=r.opt("provenance") or {},
    )


def nominal_params(env_id: str, names: Sequence[str]) -> tuple[float, ...] | None:
    """The default value of each physical parameter of ``env_id`` (None when any is unknown).

    Native envs declare their defaults (``robustrl.envs.NATIVE_ENVS[env_id].PARAMS``); adapter MuJoCo
    scales (``mass_scale``, ``friction_scale``) are 1 at nominal.
    """
    from robustrl.envs import NATIVE_ENVS

    specs = getattr(NATIVE_ENVS.get(env_id), "PARAMS", {})
    out = []
    for name in names:
        if name in specs:
            out.append(float(specs[name].default))
        elif name in ("mass_scale", "friction_scale"):
            out.append(1.0)
        else:
            return None
    return tuple(out)


def _parse_dynamics(r: _Reader) -> DynamicsRecord:
    """Schema: ``robustrl.evaluate.evaluate.DynamicsResult.to_dict`` (docs/evaluate.md)."""
    axes = _items(r, "params")
    if not 1 <= len(axes) <= 3:
        raise r.fail(f"a dynamics grid has 1 to 3 parameters, got {len(axes)}")
    names = tuple(a.text("name") for a in axes)
    values = tuple(a.array("values") for a in axes)
    shape = tuple(v.size for v in values)
    grids = {}
    for key in ("mean", "ci_low", "ci_high"):
        arr = r.array(key, ndim=None)
        if arr.shape != shape:
            raise r.fail(f"field {key!r} has shape {arr.shape}, expected {shape} from the parameter values")
        grids[key] = arr
    if (grids["ci_low"] > grids["ci_high"]).any():
        raise r.fail("ci_low exceeds ci_high")
    env_id = r.text("env_id")
    grid = ShiftGrid(names, values, grids["mean"], grids["ci_low"], grids["ci_high"], nominal_params(env_id, names))
    config = r.opt("config") or {}
    return DynamicsRecord(
        path=r.path,
        env_id=env_id,
        policy=r.text("policy", ""),
        grid=grid,
        episodes=int(r.number("episodes")),
        confidence=_confidence(r),
        seed=r.seed(),
        config=config if isinstance(config, Mapping) else {},
        provenance=r.opt("provenance") or {},
    )


def _parse_certificate(r: _Reader) -> CertificateRecord:
    """Schema: ``robustrl.certify.certificate.Certificate.to_dict`` (docs/certify.md)."""
    budgets = r.array("budgets")
    bounds = r.array("bounds", allow_inf=True)
    if bounds.shape != budgets.shape:
        raise r.fail(f"'bounds' has {bounds.size} values for {budgets.size} budgets")
    if (budgets < 0).any():
        raise r.fail(f"'budgets' must be >= 0, got {budgets.tolist()}")
    confidence = r.number("confidence")
    if not 0 < confidence < 1:
        raise r.fail(f"'confidence' must be in (0, 1), got {confidence}")
    config = r.opt("config") or {}
    clean = _interval(r, "clean_return", "clean_return_ci") if r.has("clean_return_ci") else None
    floor = r.number("floor") if r.has("floor") else None
    quantile = r.number("quantile") if r.has("quantile") else None
    qbounds = r.array("quantile_bounds", allow_inf=True) if r.has("quantile_bounds") else None
    if qbounds is not None and qbounds.shape != budgets.shape:
        raise r.fail(f"'quantile_bounds' has {qbounds.size} values for {budgets.size} budgets")
    return CertificateRecord(
        path=r.path,
        env_id=r.text("env_id"),
        policy=str(config.get("policy", "")) if isinstance(config, Mapping) else "",
        budgets=budgets,
        bounds=bounds,
        confidence=confidence,
        method=r.text("method"),
        sigma=r.number("sigma"),
        n=int(r.number("n")),
        floor=floor,
        clean=clean,
        returns=r.array("returns") if r.has("returns") else np.zeros(0),
        seed=r.seed(),
        quantile=quantile,
        quantile_bounds=qbounds,
        config=config if isinstance(config, Mapping) else {},
        provenance=r.opt("provenance") or {},
    )


_PARSERS: dict[str, Callable[[_Reader], Record]] = {
    "evaluation": _parse_evaluation,
    "dynamics": _parse_dynamics,
    "certificate": _parse_certificate,
}
KINDS: tuple[str, ...] = tuple(_PARSERS)
"""The result kinds the report reads."""


def load_result(path: str | os.PathLike[str]) -> Record:
    """Read one result file.

    Args:
        path: a JSON file written by ``EvaluationResult.save``, ``DynamicsResult.save`` or ``Certificate.save``.

    Returns:
        An :class:`EvaluationRecord`, :class:`DynamicsRecord` or :class:`CertificateRecord`.

    Raises:
        FileNotFoundError: the file does not exist (the message names it).
        ResultFileError: (a ``ValueError``) not JSON, not an object, unknown ``kind``, or a missing or
            malformed field; the message names the file and the field.

    """
    p = Path(path)
    try:
        data = read_json(p, what="result file")
    except ValueError as err:
        raise ResultFileError(str(err)) from err
    if not isinstance(data, Mapping):
        raise ResultFileError(f"result file {str(p)!r}: expected a JSON object, got {type(data).__name__}")
    kind = data.get("kind")
    if kind not in _PARSERS:
        raise ResultFileError(
            f"result file {str(p)!r}: unknown kind {kind!r}; the report reads kinds {', '.join(KINDS)}"
        )
    return _PARSERS[kind](_Reader(p, data))


def load_results(paths: Sequence[str | os.PathLike[str]]) -> list[Record]:
    """Read several result files, in order (see :func:`load_result`); at least one is required."""
    if not paths:
        raise ValueError("no result files given")
    return [load_result(p) for p in paths]
