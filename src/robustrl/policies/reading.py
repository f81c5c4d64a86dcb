"""Reading untrusted policy files: capped zip members, bounded JSON, tensor-only weights, module rebuilding.

Every reader (our format in :mod:`robustrl.policies.io`, :mod:`robustrl.policies.sb3`,
:mod:`robustrl.policies.torchscript`) goes through these helpers, so one set of rules covers every format:

* a zip must start at byte 0 of the file (a truncated file whose directory is gone is not mistaken for an
  archive embedded inside it), hold at most :data:`MAX_MEMBERS` members and no duplicate names;
* every member read is capped by its declared size, by the bytes actually decompressed (counted while
  streaming) and, above :data:`RATIO_CHECK_BYTES`, by its compression ratio (:data:`MAX_COMPRESSION_RATIO`);
* JSON is at most :data:`MAX_JSON_BYTES` and :data:`MAX_JSON_DEPTH` levels deep;
* weights are read by ``torch.load(weights_only=True)`` from an archive rebuilt (uncompressed) from records
  that passed the same caps, so torch never decompresses anything it was not shown to be small; the result
  must be dense, finite, floating-point tensors of at most :data:`MAX_WEIGHTS_BYTES` in all;
* a module is rebuilt only from constructor arguments of the annotated types, checked on the meta device
  against the weights' names, shapes and dtypes before anything is allocated.

Every failure is a :class:`PolicyFileError` (a ``ValueError``) whose message starts with
``policy file '<path>':`` and, for a limit, names the constant that set it.
"""

from __future__ import annotations

import collections.abc
import inspect
import io
import json
import math
import types
import typing
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

MAX_WEIGHTS_BYTES = 1 << 30
"""Largest weights member (``weights.pt``, SB3's ``policy.pth``), and largest total size of its tensors: 1 GiB."""
MAX_JSON_BYTES = 16 << 20
"""Largest JSON member (``policy.json``, SB3's ``data``, TorchScript's ``robustrl.json``), and largest pickled
index (``data.pkl``) inside a weights member: 16 MiB."""
MAX_JSON_DEPTH = 64
"""Deepest nesting of objects and arrays accepted in a JSON member."""
MAX_COMPRESSION_RATIO = 200
"""Largest ``uncompressed / compressed`` size of a member bigger than :data:`RATIO_CHECK_BYTES`."""
RATIO_CHECK_BYTES = 1 << 20
"""Members up to this size (1 MiB) are exempt from :data:`MAX_COMPRESSION_RATIO`."""
MAX_MEMBERS = 1 << 16
"""Most members of any zip (the policy file, or the archive inside a weights member)."""
MAX_SPEC_LENGTH = 64
"""Longest list in a recorded constructor argument (e.g. hidden layer widths)."""

_CHUNK = 1 << 20
_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_LIMIT_PREFIX = "robustrl.policies.reading."


class PolicyFileError(ValueError):
    """A policy file that cannot be read safely: corrupt, truncated, hostile, over a limit, or unsupported.

    Its message is ``policy file '<path>': <reason>``.

    Args:
        path: the file.
        reason: what is wrong with it.
    """

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"policy file {str(path)!r}: {reason}")
        self.path = Path(path)
        """The file."""
        self.reason = reason
        """What is wrong with it."""

    def __reduce__(self) -> tuple[type[PolicyFileError], tuple[Path, str]]:
        return (type(self), (self.path, self.reason))  # picklable across worker processes


def policy_file_error(path: Path, what: str) -> PolicyFileError:
    """The error for a bad policy file: ``policy file '<path>': <what>``."""
    return PolicyFileError(path, what)


def _limit(name: str | None, value: int) -> str:
    return f"the limit of {value} bytes" + (f" ({_LIMIT_PREFIX}{name})" if name else "")


# ------------------------------------------------------------------------------------------------ zips


def open_zip(path: Path) -> zipfile.ZipFile:
    """Open ``path`` as a zip and check its layout (no embedded archive, member count, unique names).

    Raises:
        PolicyFileError: the file is not a readable zip, or its layout is refused.
    """
    with path.open("rb") as f:
        head = f.read(8)
    try:
        zf = zipfile.ZipFile(path)
    except Exception as err:  # zipfile raises BadZipFile, OSError, EOFError, ValueError... on hostile bytes
        raise policy_file_error(
            path,
            f"is not a zip archive (first bytes {head!r}); expected a robustrl policy, an SB3 .zip or a "
            f"TorchScript module (it may be truncated or corrupt: {type(err).__name__}: {err})",
        ) from err
    try:
        check_zip_layout(zf, path, "")
    except PolicyFileError:
        zf.close()
        raise
    return zf


def check_zip_layout(zf: zipfile.ZipFile, path: Path, what: str) -> None:
    """Refuse a zip that does not start at byte 0, has more than :data:`MAX_MEMBERS` members or duplicate names.

    Args:
        zf: the open archive.
        path: the policy file (for messages).
        what: how to name the archive in messages (``""`` for the file itself, ``"member 'weights.pt'"``).

    Raises:
        PolicyFileError: the layout is refused.
    """
    subject = f"{what} " if what else ""
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise policy_file_error(
            path, f"{subject}has {len(infos)} zip members, more than {MAX_MEMBERS} ({_LIMIT_PREFIX}MAX_MEMBERS)"
        )
    start = min((info.header_offset for info in infos), default=0)
    if start != 0:
        raise policy_file_error(
            path,
            f"{subject}is a truncated or corrupt zip archive: the only zip directory found belongs to an archive "
            f"embedded at byte {start} (the file's own directory is missing)",
        )
    dups = sorted(name for name, n in Counter(info.filename for info in infos).items() if n > 1)
    if dups:
        raise policy_file_error(path, f"{subject}has duplicate zip members {dups[:5]} (refused: which one counts?)")


def _check_declared(info: zipfile.ZipInfo, path: Path, what: str, max_bytes: int, limit_name: str | None) -> None:
    if info.file_size > max_bytes:
        raise policy_file_error(
            path, f"{what} declares {info.file_size} bytes, more than {_limit(limit_name, max_bytes)}"
        )
    if info.file_size > RATIO_CHECK_BYTES and info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1):
        raise policy_file_error(
            path,
            f"{what} expands from {info.compress_size} to {info.file_size} bytes, a compression ratio above "
            f"{MAX_COMPRESSION_RATIO} ({_LIMIT_PREFIX}MAX_COMPRESSION_RATIO, for members over "
            f"{RATIO_CHECK_BYTES} bytes): refused as a zip bomb",
        )


def _read_capped(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path, what: str, max_bytes: int, limit_name: str | None
) -> bytes:
    """One member's bytes: declared size and ratio checked first, then the decompressed bytes counted."""
    _check_declared(info, path, what, max_bytes, limit_name)
    chunks: list[bytes] = []
    total = 0
    try:
        with zf.open(info) as f:
            while chunk := f.read(_CHUNK):
                total += len(chunk)
                if total > max_bytes or total > info.file_size:
                    raise policy_file_error(
                        path,
                        f"{what} decompresses to more than its declared {info.file_size} bytes or "
                        f"{_limit(limit_name, max_bytes)}",
                    )
                chunks.append(chunk)
    except PolicyFileError:
        raise
    except Exception as err:  # bad CRC, truncation, unsupported or corrupt compression, encryption...
        raise policy_file_error(path, f"{what} is corrupt or truncated ({type(err).__name__}: {err})") from err
    return b"".join(chunks)


def read_member(zf: zipfile.ZipFile, name: str, path: Path, *, max_bytes: int, limit_name: str | None = None) -> bytes:
    """Read one zip member, capped (declared size, streamed size, ratio); corruption is a ``PolicyFileError``.

    Args:
        zf: the open archive.
        name: the member.
        path: the policy file (for messages).
        max_bytes: the largest size accepted.
        limit_name: the constant that set ``max_bytes`` (named in the message).

    Raises:
        PolicyFileError: the member is missing, over a limit, corrupt or truncated.
    """
    try:
        info = zf.getinfo(name)
    except KeyError as err:
        raise policy_file_error(path, f"the zip has no member {name!r}") from err
    return _read_capped(zf, info, path, f"member {name!r}", max_bytes, limit_name)


def check_members(zf: zipfile.ZipFile, path: Path) -> None:
    """Check every member's declared size and compression ratio, and their total, without reading any.

    Used before handing a whole archive to a reader that is not ours (``torch.jit.load``); the total is
    capped by :data:`MAX_WEIGHTS_BYTES`.

    Raises:
        PolicyFileError: a member or the total is over a limit.
    """
    max_total = MAX_WEIGHTS_BYTES
    total = 0
    for info in zf.infolist():
        _check_declared(info, path, f"member {info.filename!r}", max_total, "MAX_WEIGHTS_BYTES")
        total += info.file_size
    if total > max_total:
        limit = _limit("MAX_WEIGHTS_BYTES", max_total)
        raise policy_file_error(path, f"its members declare {total} bytes in all, more than {limit}")


# ------------------------------------------------------------------------------------------------ JSON


def _json_depth(obj: Any) -> int:
    """Nesting depth of parsed JSON (a scalar is 0), computed without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(obj, 1)] if isinstance(obj, dict | list) else []
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_JSON_DEPTH:
            break
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return deepest


def read_json_member(zf: zipfile.ZipFile, name: str, path: Path) -> Any:
    """Read and parse a JSON zip member (at most :data:`MAX_JSON_BYTES`, :data:`MAX_JSON_DEPTH` levels).

    Raises:
        PolicyFileError: the member is missing, over a limit, not UTF-8 JSON, or nested too deeply.
    """
    raw = read_member(zf, name, path, max_bytes=MAX_JSON_BYTES, limit_name="MAX_JSON_BYTES")
    too_deep = f"member {name!r} nests JSON deeper than {MAX_JSON_DEPTH} levels ({_LIMIT_PREFIX}MAX_JSON_DEPTH)"
    try:
        data = json.loads(raw.decode("utf-8"))
    except RecursionError as err:
        raise policy_file_error(path, too_deep) from err
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError, integers past Python's digit limit
        raise policy_file_error(path, f"member {name!r} is not valid JSON ({err})") from err
    if _json_depth(data) > MAX_JSON_DEPTH:
        raise policy_file_error(path, too_deep)
    return data


# --------------------------------------------------------------------------------------------- weights


def _repack_torch_archive(raw: bytes, path: Path, member: str) -> io.BytesIO:
    """Rebuild the zip inside a weights member, uncompressed, from records that pass every cap.

    ``torch.load`` then reads exactly the bytes checked here: it cannot be led to decompress a record
    (torch's reader inflates deflated records) or to parse a different directory than Python's zipfile.
    """
    what = f"member {member!r}"
    if not raw.startswith(b"PK\x03\x04"):
        raise policy_file_error(
            path,
            f"{what} is not a tensor-only torch file (not torch's zip serialization; files in the legacy "
            "pre-1.6 format are not read)",
        )
    try:
        inner = zipfile.ZipFile(io.BytesIO(raw))
    except Exception as err:  # hostile bytes: any zipfile error
        raise policy_file_error(
            path, f"{what} is not a tensor-only torch file (its archive is corrupt: {type(err).__name__}: {err})"
        ) from err
    out = io.BytesIO()
    with inner, zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as rebuilt:
        check_zip_layout(inner, path, what)
        infos = inner.infolist()
        declared = sum(info.file_size for info in infos)
        if declared > MAX_WEIGHTS_BYTES + MAX_JSON_BYTES:  # the tensors' records plus the pickled index
            raise policy_file_error(
                path,
                f"{what} declares {declared} bytes in all, more than the limit of "
                f"{MAX_WEIGHTS_BYTES + MAX_JSON_BYTES} bytes ({_LIMIT_PREFIX}MAX_WEIGHTS_BYTES + MAX_JSON_BYTES)",
            )
        for info in infos:
            if info.filename.endswith("data.pkl"):
                cap, cap_name = MAX_JSON_BYTES, "MAX_JSON_BYTES"
            else:
                cap, cap_name = MAX_WEIGHTS_BYTES, "MAX_WEIGHTS_BYTES"
            data = _read_capped(inner, info, path, f"record {info.filename!r} of {what}", cap, cap_name)
            rebuilt.writestr(info.filename, data)
    out.seek(0)
    return out


def read_weights(zf: zipfile.ZipFile, member: str, path: Path) -> dict[str, torch.Tensor]:
    """Read a weights member: a state dict of dense, finite, floating-point CPU tensors.

    The member (at most :data:`MAX_WEIGHTS_BYTES`) must be a ``torch.save`` zip; its records are capped and
    rebuilt uncompressed, then read with ``torch.load(weights_only=True)``.

    Args:
        zf: the open policy archive.
        member: the weights member (``weights.pt``, ``policy.pth``).
        path: the policy file (for messages).

    Returns:
        The state dict, on the CPU.

    Raises:
        PolicyFileError: the member is not such a state dict (unpicklable objects, sparse, quantized,
            complex, integer or boolean tensors, NaN/inf, more than :data:`MAX_WEIGHTS_BYTES` of tensors).
    """
    raw = read_member(zf, member, path, max_bytes=MAX_WEIGHTS_BYTES, limit_name="MAX_WEIGHTS_BYTES")
    buf = _repack_torch_archive(raw, path, member)
    del raw  # keep one copy of the bytes alive, not two
    try:
        state = torch.load(buf, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types (UnpicklingError, RuntimeError...) on bad input
        raise policy_file_error(
            path, f"member {member!r} is not a tensor-only torch file ({type(err).__name__}: {err})"
        ) from err
    finally:
        buf.close()
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise policy_file_error(path, f"member {member!r} is not a state dict of named tensors")
    total = 0
    for name, tensor in state.items():
        if tensor.layout != torch.strided or tensor.is_quantized:
            raise policy_file_error(
                path,
                f"weight {name!r} in {member!r} is a {'quantized' if tensor.is_quantized else tensor.layout} "
                "tensor; only dense tensors are read",
            )
        if tensor.dtype not in _FLOAT_DTYPES:
            raise policy_file_error(
                path,
                f"weight {name!r} in {member!r} has dtype {tensor.dtype}; weights must be real floating point "
                "(float16, bfloat16, float32, float64)",
            )
        total += tensor.numel() * tensor.element_size()
        if total > MAX_WEIGHTS_BYTES:  # views may repeat one storage (stride 0): count what they address
            raise policy_file_error(
                path, f"the tensors of {member!r} address more than {_limit('MAX_WEIGHTS_BYTES', MAX_WEIGHTS_BYTES)}"
            )
    for name, tensor in state.items():
        if not bool(torch.isfinite(tensor).all()):
            raise policy_file_error(path, f"weight {name!r} in {member!r} contains NaN or infinite values")
    return state


# ------------------------------------------------------------------------------------------ rebuilding


def _conforms(value: Any, hint: Any) -> bool:
    """Whether a JSON value fits a constructor annotation (bool, int, float, str, Literal, Sequence, Optional)."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if origin is typing.Union or origin is types.UnionType:
        return any(_conforms(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin is Literal:
        return any(type(value) is type(arg) and value == arg for arg in typing.get_args(hint))
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if hint is str:
        return isinstance(value, str)
    if origin in (collections.abc.Sequence, list, tuple):
        (item,) = typing.get_args(hint)[:1] or (Any,)
        return isinstance(value, list) and len(value) <= MAX_SPEC_LENGTH and all(_conforms(v, item) for v in value)
    return False


def _hint_text(hint: Any) -> str:
    """A constructor annotation in words, for messages."""
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        return " or ".join(_hint_text(arg) for arg in typing.get_args(hint))
    if origin is Literal:
        return "one of " + ", ".join(repr(arg) for arg in typing.get_args(hint))
    if origin in (collections.abc.Sequence, list, tuple):
        (item,) = typing.get_args(hint)[:1] or (Any,)
        return f"a list of {_hint_text(item)} at most {MAX_SPEC_LENGTH} long ({_LIMIT_PREFIX}MAX_SPEC_LENGTH)"
    if hint is type(None):
        return "null"
    if hint is float:
        return "a finite number"
    return f"a {getattr(hint, '__name__', hint)}"


def _check_args(cls: type[nn.Module], args: dict[str, Any], path: Path) -> None:
    """Refuse recorded constructor arguments that are unknown or not of the annotated type."""
    params = inspect.signature(cls.__init__).parameters
    hints = typing.get_type_hints(cls.__init__)
    for key, value in args.items():
        if key in ("observation_space", "action_space"):
            continue  # built by space_from_json / parse_sb3_space, never taken from the spec
        if key == "self" or key not in params:
            known = [k for k in params if k not in ("self", "observation_space", "action_space")]
            raise policy_file_error(
                path,
                f"cannot build {cls.__name__} from the recorded arguments: unknown argument {key!r} "
                f"(known: {', '.join(known)})",
            )
        hint = hints.get(key, Any)
        if not _conforms(value, hint):
            raise policy_file_error(
                path,
                f"cannot build {cls.__name__} from the recorded arguments: {key}={value!r:.80} is not "
                f"{_hint_text(hint)}",
            )


def build_module(
    cls: type[nn.Module],
    args: dict[str, Any],
    state: dict[str, torch.Tensor],
    path: Path,
    device: str | torch.device,
    *,
    derived: frozenset[str] = frozenset(),
) -> nn.Module:
    """Build ``cls(**args)`` and load ``state`` strictly, checking arguments, names, shapes and dtypes first.

    The check runs on a skeleton built on the meta device, so a file asking for huge layers allocates
    nothing; any mismatch is a ``PolicyFileError`` listing the differences. A weight whose dtype differs
    from the module's is refused, never cast.

    Args:
        cls: the module class.
        args: its constructor arguments (each must fit the constructor's annotation).
        state: the weights read from the file.
        path: the file (for error messages).
        device: where the module goes.
        derived: entries the file may lack (buffers the constructor derives from the spaces); they keep
            the freshly built module's values.

    Returns:
        The module, in eval mode on ``device``.

    Raises:
        PolicyFileError: the arguments or the weights do not fit ``cls``.
    """
    _check_args(cls, args, path)
    try:
        with torch.device("meta"):
            skeleton = cls(**args)
    except Exception as err:  # any failure to build from untrusted arguments is a bad file
        raise policy_file_error(
            path, f"cannot build {cls.__name__} from the recorded arguments ({type(err).__name__}: {err})"
        ) from err
    reference = skeleton.state_dict()
    expected = {k: tuple(v.shape) for k, v in reference.items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    got.update({k: expected[k] for k in derived if k in expected and k not in got})
    if expected != got:
        missing = sorted(set(expected) - set(got))
        extra = sorted(set(got) - set(expected))
        wrong = [f"{k}: {got[k]} != {expected[k]}" for k in expected if k in got and got[k] != expected[k]]
        raise policy_file_error(
            path,
            f"weights do not fit {cls.__name__}: missing {missing[:5]}, unexpected {extra[:5]}, "
            f"wrong shapes {wrong[:5]}",
        )
    for key, tensor in state.items():
        if tensor.dtype != reference[key].dtype:
            raise policy_file_error(
                path,
                f"weight {key!r} has dtype {tensor.dtype}, but {cls.__name__} stores it as "
                f"{reference[key].dtype} (refused rather than cast)",
            )
    module = cls(**args)
    own = module.state_dict()
    module.load_state_dict({**{k: own[k] for k in derived if k in own and k not in state}, **state}, strict=True)
    return module.to(device).eval()
