"""Frozen config dataclasses: field docstrings become CLI help; configs round-trip through JSON.

A config is a ``@dataclass(frozen=True)`` whose fields each carry a one-line docstring written on the
line after the field (the attribute-docstring convention). :func:`add_config_arguments` turns such a
class into ``argparse`` options, :func:`config_from_namespace` builds the instance back.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import difflib
import enum
import functools
import inspect
import itertools
import textwrap
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

C = TypeVar("C")


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """Return ``{field: docstring}`` read from the attribute docstrings in the class source."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for prev, node in itertools.pairwise(body):
            if (
                isinstance(prev, ast.AnnAssign)
                and isinstance(prev.target, ast.Name)
                and isinstance(node, ast.Expr)
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
            ):
                docs[prev.target.id] = " ".join(node.value.value.split())
    return docs


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    if get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _scalar_parser(tp: Any, name: str) -> tuple[Any, list[str] | None]:
    """Return (callable converting a string, choices) for a scalar annotation."""
    if get_origin(tp) is Literal:
        choices = [str(c) for c in get_args(tp)]
        kinds = {type(c) for c in get_args(tp)}
        conv = kinds.pop() if len(kinds) == 1 else str
        return conv, choices
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp, [m.value for m in tp]
    if tp in (int, float, str):
        return tp, None
    if tp is Path:
        return Path, None
    raise TypeError(f"config field {name!r}: unsupported type {tp!r} for the command line")


def _parse_bool(text: str) -> bool:
    low = text.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def add_config_arguments(
    parser: argparse.ArgumentParser,
    cls: type,
    *,
    positional: tuple[str, ...] = (),
    skip: tuple[str, ...] = (),
) -> None:
    """Add one ``--field-name`` option per field of the config dataclass ``cls``.

    Args:
        parser: the parser to extend.
        cls: a dataclass whose fields have attribute docstrings.
        positional: fields taken as positional arguments instead of options.
        skip: fields not exposed on the command line.

    """
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.init:
            continue
        tp, optional = _unwrap_optional(hints[f.name])
        has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        default = (
            f.default
            if f.default is not dataclasses.MISSING
            else (f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        )
        help_text = docs.get(f.name, "")
        if has_default and default is not None and not isinstance(default, bool):
            shown = " ".join(map(str, default)) if isinstance(default, tuple | list) else default
            help_text += f" (default: {shown})"
        kwargs: dict[str, Any] = {"help": help_text, "dest": f.name}
        origin = get_origin(tp)
        if tp is bool:
            kwargs.update(type=_parse_bool, nargs="?", const=True, metavar="BOOL")
            if f.name not in positional:
                flag = "--" + f.name.replace("_", "-")
                parser.add_argument(flag, default=default, **kwargs)
                parser.add_argument(
                    "--no-" + f.name.replace("_", "-"),
                    dest=f.name,
                    action="store_false",
                    help=argparse.SUPPRESS,
                )
                continue
        elif origin in (tuple, list):
            inner = [a for a in get_args(tp) if a is not Ellipsis]
            conv, choices = _scalar_parser(inner[0] if inner else str, f.name)
            kwargs.update(type=conv, nargs="*" if has_default else "+")
            if f.name not in positional and (f.name in ("set", "only") or f.name.endswith("_set")):
                kwargs["action"] = _ExtendOnRepeat  # KEY=VALUE lists: repeating the flag adds items
            if choices:
                kwargs["choices"] = choices
        else:
            conv, choices = _scalar_parser(tp, f.name)
            kwargs["type"] = conv
            if choices:
                kwargs["choices"] = choices
            if optional:
                kwargs["metavar"] = f.name.upper()
        if f.name in positional:
            kwargs.pop("dest")
            if has_default:
                kwargs["nargs"] = "?" if kwargs.get("nargs") is None else "*"
                kwargs["default"] = default
            parser.add_argument(f.name, **kwargs)
        else:
            flag = "--" + f.name.replace("_", "-")
            if has_default:
                kwargs["default"] = default
            else:
                kwargs["required"] = True
            parser.add_argument(flag, **kwargs)


class _ExtendOnRepeat(argparse.Action):
    """A list option given twice keeps both lists (``--x a --x b`` is ``--x a b``); the first replaces the default.

    Used for the ``KEY=VALUE`` lists (``set``, ``*_set``, the sweep's ``only``); other list options keep
    argparse's rule, the last occurrence wins.
    """

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:  # fmt: skip
        current: Any = getattr(namespace, self.dest, None)
        fresh = current is self.default or current is None  # argparse stores the default object itself
        setattr(namespace, self.dest, list(values) if fresh else [*current, *values])


def config_from_namespace(cls: type[C], ns: argparse.Namespace) -> C:
    """Build a config instance from parsed arguments (lists become tuples where the field is a tuple)."""
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if not f.init or not hasattr(ns, f.name):
            continue
        value = getattr(ns, f.name)
        tp, _ = _unwrap_optional(hints[f.name])
        if isinstance(value, list) and get_origin(tp) is tuple:
            value = tuple(value)
        values[f.name] = value
    return cls(**values)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a (possibly nested) config dataclass; enums become their values."""

    def conv(v: Any) -> Any:
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, enum.Enum):
            return v.value
        if isinstance(v, tuple | list):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, Path):
            return str(v)
        return v

    return conv(cfg)  # type: ignore[no-any-return]


def field_defaults(cls: type) -> dict[str, Any]:
    """The JSON-ready default (as :func:`config_to_dict` writes it) of every field of ``cls`` that has one.

    Example:
        >>> @dataclasses.dataclass
        ... class C:
        ...     a: int
        ...     b: tuple[int, ...] = (1, 2)
        >>> field_defaults(C)
        {'b': [1, 2]}
    """
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = config_to_dict(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = config_to_dict(f.default_factory())
    return out


def config_from_dict(cls: type[C], data: dict[str, Any]) -> C:
    """Rebuild a config from :func:`config_to_dict` output; unknown keys raise a ``ValueError``."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {sorted(unknown)}")
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for key, value in data.items():
        tp, _ = _unwrap_optional(hints[key])
        if dataclasses.is_dataclass(tp) and isinstance(value, dict):
            value = config_from_dict(tp, value)  # type: ignore[arg-type]
        elif get_origin(tp) is tuple and isinstance(value, list):
            value = tuple(value)
        elif isinstance(tp, type) and issubclass(tp, enum.Enum) and value is not None:
            value = tp(value)
        values[key] = value
    return cls(**values)


def _convert(value: str, tp: Any, key: str, what: str) -> Any:
    """Convert the text of a ``--set`` override to the field type ``tp``."""
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if value.lower() in ("none", "null") and len(args) < len(get_args(tp)):
            return None
        return _convert(value, args[0], key, what)
    if origin is Literal:
        choices = get_args(tp)
        for c in choices:
            if str(c) == value:
                return c
        raise ValueError(f"{what} {key}={value}: expected one of {[str(c) for c in choices]}")
    if origin is tuple:
        inner = next(a for a in get_args(tp) if a is not Ellipsis)
        items = [v for v in value.replace(" ", "").split(",") if v]
        return tuple(_convert(v, inner, key, what) for v in items)
    if tp is bool:
        low = value.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{what} {key}={value}: expected true or false")
    try:
        return tp(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{what} {key}={value}: expected {getattr(tp, '__name__', tp)}") from err


def apply_overrides(cfg: C, overrides: tuple[str, ...] | list[str], *, what: str = "--set") -> C:
    """A copy of the config dataclass ``cfg`` with ``key=value`` overrides converted to each field's type.

    Tuples are comma-separated (``hidden=256,256``), optional fields accept ``none``.

    Raises:
        ValueError: malformed item, unknown key (with close names), or a value of the wrong type.

    Example:
        >>> from robustrl.agents.ppo import PPOConfig
        >>> apply_overrides(PPOConfig(), ["hidden=32,32", "target_kl=none"]).hidden
        (32, 32)
    """
    hints = typing.get_type_hints(type(cfg))
    names = [f.name for f in dataclasses.fields(cfg)]  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ValueError(f"{what} expects key=value, got {item!r}")
        if key not in names:
            close = difflib.get_close_matches(key, names, n=3)
            hint = f"; did you mean {close}?" if close else ""
            raise ValueError(f"unknown {type(cfg).__name__} key {key!r} in {what}{hint} (keys: {', '.join(names)})")
        values[key] = _convert(text.strip(), hints[key], key, what)
    return dataclasses.replace(cfg, **values)  # type: ignore[type-var]
