"""The one mechanism behind every result file: JSON derived from the dataclass fields, checked on load.

A result is a frozen dataclass subclassing :class:`Result` with a class-level ``kind`` and
``schema_version``. :meth:`Result.to_dict` and :meth:`Result.from_dict` are derived from its fields' types:

=====================================================  ==============================================
field type                                             JSON
=====================================================  ==============================================
``str``, ``int``, ``bool``, ``None``, ``Literal``      as is (checked against the type on load)
``float``                                              a number; ``inf``, ``-inf``, ``nan`` as strings
``Annotated[np.ndarray, ArraySpec(dtype, ndim)]``      nested lists, read back with that dtype and ndim
``tuple[T, ...]``, ``tuple[A, B]``                     a list
a nested dataclass                                     an object, field by field
``dict[str, Any]``                                     as is (numpy numbers become JSON numbers,
                                                       non-finite floats strings)
=====================================================  ==============================================

A field with ``metadata={"persist": False}`` is not written (an in-memory policy object, say). Loading
checks every value against its type (finite numbers, array shapes), then the class's own checks
(``__post_init__``: budgets increasing, one mean per budget...); every error names the file, where in it,
and the field. Saving never recomputes anything: what is written is exactly the fields.
"""

from __future__ import annotations

import abc
import dataclasses
import enum
import functools
import math
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, NamedTuple, Self, get_args, get_origin

import numpy as np

from robustrl.common.io import write_json

__all__ = [
    "F64",
    "I64",
    "ArraySpec",
    "FloatSpec",
    "MaybeNaN",
    "Result",
    "ResultFileError",
    "ResultRow",
    "check_ci",
    "check_curve",
    "decode",
    "encode",
    "same_encoding",
]

_NONFINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}
_NONFINITE.update({"Infinity": math.inf, "-Infinity": -math.inf, "NaN": math.nan})
"""How non-finite floats are stored (``str(float)``; JavaScript's spellings are read too)."""


class ResultFileError(ValueError):
    """A result (file) that cannot be read: the message names the file, where in it, and the problem."""


@dataclass(frozen=True)
class ArraySpec:
    """How an array field is stored: nested JSON lists read back with ``dtype`` and checked."""

    dtype: Literal["float64", "int64"]
    """The numpy dtype the lists are read back as."""
    ndim: int | None = None
    """Required number of dimensions (None: any)."""
    inf: bool = False
    """Whether ``±inf`` is allowed (NaN never is)."""


@dataclass(frozen=True)
class FloatSpec:
    """How a float field is checked on load (plain ``float``: ``±inf`` allowed, NaN refused)."""

    nan: bool = False
    """Whether NaN is allowed."""


F64 = Annotated[np.ndarray, ArraySpec("float64")]
"""A float64 array of any shape, finite."""
I64 = Annotated[np.ndarray, ArraySpec("int64")]
"""An int64 array of any shape."""
MaybeNaN = Annotated[float, FloatSpec(nan=True)]
"""A float that may be NaN (e.g. a statistic of no data)."""


class ResultRow(NamedTuple):
    """One number of a result in long format (see each result's ``to_rows`` for its metrics)."""

    task: str
    """The environment id."""
    policy: str
    """What was evaluated (a policy file, a class name, an algorithm)."""
    threat: str
    """The condition: ``clean``, a threat label, ``strongest:<threat model>``, ``dynamics[...]``..."""
    budget: float
    """The threat's budget (0 for clean)."""
    seed: int | None
    """The run's seed."""
    metric: str
    """What ``value`` is (``return_mean``, ``certified_return``...)."""
    value: float
    """The number."""
    ci_low: float | None
    """Lower end of its confidence interval (None: the number has none)."""
    ci_high: float | None
    """Upper end of its confidence interval (None: the number has none)."""


class _SchemaError(ValueError):
    """A problem at ``where`` (``threats[1]``; empty at the top), before the file is known."""

    def __init__(self, where: str, msg: str) -> None:
        super().__init__(msg)
        self.where = where
        self.msg = msg


# --------------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------------
def encode(value: Any) -> Any:
    """A strict-JSON-ready copy of ``value``: dataclasses by field, arrays as lists, non-finite floats as strings.

    Example:
        >>> encode({"a": np.array([1.0, np.inf]), "b": (1, None)})
        {'a': [1.0, 'inf'], 'b': [1, None]}
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value) if f.metadata.get("persist", True)
        }
    if isinstance(value, np.ndarray):
        return encode(value.tolist())
    if isinstance(value, np.generic):
        return encode(value.item())
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, tuple | list):
        return [encode(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, enum.Enum):
        return encode(value.value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"cannot write a {type(value).__name__} into a result file")


def same_encoding(a: object, b: object) -> bool:
    """``==`` of results and their parts: the same JSON (arrays compare by value, NaN equals NaN).

    Results hold arrays, so the dataclass-generated ``==`` (which compares field tuples) cannot be used.
    """
    if type(a) is not type(b):
        return NotImplemented
    return bool(encode(a) == encode(b))


# --------------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------------
@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, include_extras=True)


def _float(raw: Any, path: str, spec: FloatSpec) -> float:
    if isinstance(raw, str) and raw in _NONFINITE:
        x = _NONFINITE[raw]
    elif isinstance(raw, bool) or not isinstance(raw, int | float):
        raise _SchemaError("", f"field {path!r} must be a number, got {raw!r}")
    else:
        x = float(raw)
    if math.isnan(x) and not spec.nan:
        raise _SchemaError("", f"field {path!r} is NaN")
    return x


def _unstring(raw: Any) -> Any:
    if isinstance(raw, str) and raw in _NONFINITE:
        return _NONFINITE[raw]
    if isinstance(raw, list):
        return [_unstring(x) for x in raw]
    return raw


def _has_bool(values: Any) -> bool:
    if isinstance(values, bool):
        return True
    return isinstance(values, list) and any(_has_bool(v) for v in values)


def _int_array(values: Any, path: str, spec: ArraySpec) -> np.ndarray:
    """Whole numbers read exactly (never through float64), within int64."""
    try:
        arr = np.asarray(values, dtype=object)
        flat = arr.reshape(-1).tolist()
    except (TypeError, ValueError) as err:
        raise _SchemaError("", f"field {path!r} must be an array of whole numbers ({err})") from err
    for v in flat:
        whole = isinstance(v, int) or (isinstance(v, float) and v.is_integer())
        if not whole or not -(2**63) <= int(v) < 2**63:
            raise _SchemaError("", f"field {path!r} must hold whole numbers within int64, got {v!r}")
    if spec.ndim is not None and arr.ndim != spec.ndim:
        raise _SchemaError("", f"field {path!r} must be {spec.ndim}-D, got shape {arr.shape}")
    return np.array([int(v) for v in flat], dtype=np.int64).reshape(arr.shape)


def _array(raw: Any, path: str, spec: ArraySpec) -> np.ndarray:
    if not isinstance(raw, list):
        raise _SchemaError("", f"field {path!r} must be an array of numbers, got {type(raw).__name__}")
    values = _unstring(raw)
    if _has_bool(values):
        raise _SchemaError("", f"field {path!r} must be an array of numbers, not true/false")
    if spec.dtype == "int64":
        return _int_array(values, path, spec)
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise _SchemaError("", f"field {path!r} must be an array of numbers ({err})") from err
    if spec.ndim is not None and arr.ndim != spec.ndim:
        raise _SchemaError("", f"field {path!r} must be {spec.ndim}-D, got shape {arr.shape}")
    if np.isnan(arr).any():
        raise _SchemaError("", f"field {path!r} contains NaN")
    if not spec.inf and np.isinf(arr).any():
        raise _SchemaError("", f"field {path!r} contains inf")
    if spec.dtype == "int64":
        if not np.array_equal(arr, np.round(arr)):
            raise _SchemaError("", f"field {path!r} must hold whole numbers")
        return arr.astype(np.int64)
    return arr


def decode(raw: Any, tp: Any, path: str = "value") -> Any:
    """Read the JSON value ``raw`` as the type ``tp`` (the inverse of :func:`encode`), checking it.

    Args:
        raw: the value from the JSON file.
        tp: the field's type hint (``float``, ``tuple[float, ...]``, an ``Annotated`` array, a dataclass...).
        path: where the value is in the file (``threats[1].mean``), for messages.

    Raises:
        ValueError: the value does not fit the type (the message names ``path``).

    Example:
        >>> decode([1, "inf"], tuple[float, ...])
        (1.0, inf)
    """
    meta: tuple[Any, ...] = ()
    if get_origin(tp) is Annotated:
        tp, *rest = get_args(tp)
        meta = tuple(rest)
    return _decode(raw, tp, meta, path)


def _decode(raw: Any, tp: Any, meta: tuple[Any, ...], path: str) -> Any:
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if raw is None and len(args) < len(get_args(tp)):
            return None
        if len(args) != 1:
            raise TypeError(f"result fields may only be X | None unions, got {tp!r}")
        inner = args[0]
        if get_origin(inner) is Annotated:
            inner, *rest = get_args(inner)
            meta = (*meta, *rest)
        return _decode(raw, inner, meta, path)
    if tp is Any:
        return raw
    if tp is np.ndarray:
        return _array(raw, path, next((m for m in meta if isinstance(m, ArraySpec)), ArraySpec("float64")))
    if tp is float:
        return _float(raw, path, next((m for m in meta if isinstance(m, FloatSpec)), FloatSpec()))
    if tp is bool:
        if not isinstance(raw, bool):
            raise _SchemaError("", f"field {path!r} must be true or false, got {raw!r}")
        return raw
    if tp is int:
        if isinstance(raw, float) and raw.is_integer():
            return int(raw)
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise _SchemaError("", f"field {path!r} must be a whole number, got {raw!r}")
        return raw
    if tp is str:
        if not isinstance(raw, str):
            raise _SchemaError("", f"field {path!r} must be a string, got {raw!r}")
        return raw
    if origin is Literal:
        if raw not in get_args(tp):
            raise _SchemaError("", f"field {path!r} must be one of {list(get_args(tp))}, got {raw!r}")
        return raw
    if origin is tuple:
        if not isinstance(raw, list):
            raise _SchemaError("", f"field {path!r} must be a list, got {type(raw).__name__}")
        items = get_args(tp)
        if len(items) == 2 and items[1] is Ellipsis:
            return tuple(decode(x, items[0], f"{path}[{i}]") for i, x in enumerate(raw))
        if len(raw) != len(items):
            raise _SchemaError("", f"field {path!r} must have {len(items)} entries, got {len(raw)}")
        return tuple(decode(x, a, f"{path}[{i}]") for i, (x, a) in enumerate(zip(raw, items)))
    if tp is dict or origin in (dict, Mapping):
        if not isinstance(raw, Mapping):
            raise _SchemaError("", f"field {path!r} must be an object, got {type(raw).__name__}")
        return dict(raw)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(raw, Mapping):
            raise _SchemaError("", f"field {path!r} must be an object, got {type(raw).__name__}")
        return decode_fields(tp, raw, path)
    raise TypeError(f"unsupported result field type {tp!r}")


def decode_fields(cls: type, data: Mapping[str, Any], where: str = "") -> Any:
    """Build the dataclass ``cls`` from a JSON object: every persisted field read as its type, then checked.

    Args:
        cls: a dataclass whose fields have the types :func:`decode` reads.
        data: the JSON object.
        where: where the object is in the file (empty at the top), for messages.

    Raises:
        ValueError: a missing or malformed field, or the class's own checks failed.
    """
    hints = _hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if not f.init or not f.metadata.get("persist", True):
            continue
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise _SchemaError(where, f"missing field {f.name!r}")
            continue
        values[f.name] = decode(data[f.name], hints[f.name], f"{where}.{f.name}" if where else f.name)
    try:
        return cls(**values)
    except _SchemaError:
        raise
    except (ValueError, TypeError) as err:
        raise _SchemaError(where, str(err)) from err


# --------------------------------------------------------------------------------------------------
# checks shared by the result classes (raise ValueError; loading adds the file and the location)
# --------------------------------------------------------------------------------------------------
def check_ci(low: float, high: float, what: str) -> None:
    """Refuse an interval whose low end exceeds its high end."""
    if low > high:
        raise ValueError(f"field {what!r} must be [low, high] with low <= high, got [{low}, {high}]")


def check_curve(
    name: str, budgets: tuple[float, ...], mean: np.ndarray, ci_low: np.ndarray, ci_high: np.ndarray
) -> None:
    """Refuse a curve unless budgets are ≥ 0 and increasing with one mean and CI per budget, low ≤ high."""
    b = np.asarray(budgets, dtype=np.float64)
    if b.size == 0:
        raise ValueError(f"{name}: no budgets")
    if not np.isfinite(b).all() or (b < 0).any() or (np.diff(b) <= 0).any():
        raise ValueError(f"{name}: budgets must be >= 0 and increasing, got {list(budgets)}")
    for key, arr in (("mean", mean), ("ci_low", ci_low), ("ci_high", ci_high)):
        if arr.shape != b.shape:
            raise ValueError(f"{name}: {key!r} has {arr.size} values for {b.size} budgets")
    if (ci_low > ci_high).any():
        raise ValueError(f"{name}: ci_low exceeds ci_high")


# --------------------------------------------------------------------------------------------------
# the base class
# --------------------------------------------------------------------------------------------------
class Result(abc.ABC):
    """Base of every result kind: JSON (``to_dict``/``from_dict``/``save``) and long-format rows.

    Subclasses are frozen dataclasses that set ``kind`` and ``schema_version``; two results are equal when
    their JSON is (:func:`same_encoding`, installed on every subclass). A subclass whose older files had
    another layout overrides :meth:`upgrade`; a new kind is added to
    :data:`robustrl.results.RESULT_TYPES` so that :func:`~robustrl.results.load_result` reads it.
    """

    kind: ClassVar[str]
    """The ``"kind"`` of its files (what :func:`robustrl.results.load_result` dispatches on)."""
    schema_version: ClassVar[int]
    """Version of the layout written; files of older versions are upgraded on load, newer ones refused."""
    json_properties: ClassVar[tuple[str, ...]] = ()
    """Properties also written to the file, for readers that do not recompute them; checked on load."""

    __eq__ = same_encoding

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # set before @dataclass runs, which then keeps it: its generated == would compare arrays elementwise
        cls.__eq__ = same_encoding  # type: ignore[method-assign,assignment]

    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON-ready dict: ``kind``, ``schema_version``, then every persisted field (and property)."""
        out: dict[str, Any] = {"kind": self.kind, "schema_version": self.schema_version}
        out.update(encode(self))
        for prop in self.json_properties:
            out[prop] = encode(getattr(self, prop))
        return out

    @classmethod
    def upgrade(cls, data: dict[str, Any], version: int) -> dict[str, Any]:
        """Rewrite the dict of a file of an older ``schema_version`` into the current layout (default: as is)."""
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str | os.PathLike[str] | None = None) -> Self:
        """Rebuild a result from :meth:`to_dict` output (or a file's JSON), checking every field.

        Args:
            data: the JSON object.
            source: the file it came from, named in error messages.

        Raises:
            ResultFileError: (a ``ValueError``) another kind, a newer ``schema_version``, or a missing or
                malformed field; the message names the file, the location and the field.
        """
        label = f"result file {os.fspath(source)!r}" if source is not None else "result"
        if not isinstance(data, Mapping):
            raise ResultFileError(f"{label}: expected a JSON object, got {type(data).__name__}")
        if data.get("kind") != cls.kind:
            raise ResultFileError(f"{label} has kind {data.get('kind')!r}, not {cls.kind!r}")
        version = data.get("schema_version", data.get("version"))
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            problem = (
                "missing field 'schema_version'"
                if version is None
                else (f"field 'schema_version' must be a whole number >= 1, got {version!r}")
            )
            raise ResultFileError(f"{label} is not a valid {cls.kind} result: {problem}")
        if version > cls.schema_version:
            raise ResultFileError(
                f"{label} has schema_version {version}, newer than this robustrl reads for kind {cls.kind!r} "
                f"(up to {cls.schema_version}): upgrade robustrl to read it"
            )
        body = dict(data)
        if version < cls.schema_version:
            body = cls.upgrade(body, version)
        try:
            result = decode_fields(cls, body)
            for prop in cls.json_properties:
                if prop in body and encode(body[prop]) != encode(getattr(result, prop)):
                    raise _SchemaError(
                        "",
                        f"field {prop!r} is {body[prop]!r}, but the other fields give "
                        f"{encode(getattr(result, prop))!r}",
                    )
        except _SchemaError as err:
            at = f" (at {err.where})" if err.where else ""
            raise ResultFileError(f"{label} is not a valid {cls.kind} result{at}: {err.msg}") from err
        return typing.cast(Self, result)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_dict` as JSON atomically (complete or absent, never half-written); returns the path."""
        return write_json(path, self.to_dict())

    @abc.abstractmethod
    def to_rows(self) -> list[ResultRow]:
        """The result in long format: one :class:`ResultRow` per number (see the subclass for its metrics)."""
