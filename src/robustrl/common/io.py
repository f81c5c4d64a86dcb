"""Atomic file writes: a result file is either complete or absent, never half-written.

A write goes to a hidden temporary beside the target, ``.NAME.HOST-PID.XXXXXXXX.tmp``, renamed onto
``NAME`` only once complete. A writer killed mid-write (SIGKILL, OOM killer, node loss) leaves its
temporary behind; the next write of ``NAME`` removes such leftovers (see :func:`remove_stale_temporaries`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import socket
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

STALE_TEMP_AGE_S = 24 * 3600.0
"""Age (seconds since last modification) after which a temporary whose writer cannot be checked is stale."""


def _host_tag() -> str:
    """8 hex digits naming this host, so a pid is only ever judged on the host that issued it."""
    return hashlib.blake2s(socket.gethostname().encode(), digest_size=4).hexdigest()


def _temp_pattern(name: str) -> re.Pattern[str]:
    """Temporaries of ``name``: ours (``.NAME.HOST-PID.XXXX.tmp``) and older pid-less ones (``.NAME.XXXX.tmp``)."""
    return re.compile(rf"\.{re.escape(name)}\.(?:(?P<host>[0-9a-f]{{8}})-(?P<pid>\d+)\.)?[a-z0-9_]+\.tmp")


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (a process of another user counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # another user's process; a pid no process can have
        return True
    return True


def remove_stale_temporaries(path: str | os.PathLike[str], *, max_age_s: float = STALE_TEMP_AGE_S) -> list[Path]:
    """Remove the temporaries of ``path`` left by writers that died mid-write.

    A temporary is stale when it was written on this host by a process that no longer runs (its host tag
    and pid are in its name; checked with ``kill(pid, 0)``, POSIX only), or, when its writer cannot be
    checked (another host on a shared filesystem, a name without a pid, not POSIX), when it has not been
    modified for ``max_age_s`` seconds. Why this is safe: a live writer on this host always keeps its
    temporary (pid reuse can only keep a stale file longer, never remove a live one; an unreaped zombie
    counts as alive); a writer on another host is judged by age only, because its pid means nothing here,
    and a writer that is still writing keeps its file's modification time fresh. The one assumption is one
    pid namespace per host name (true of hosts, and of containers, which get their own host name).
    Temporaries of other names are never touched.

    Args:
        path: the target file whose temporaries to clean.
        max_age_s: age in seconds after which an uncheckable temporary is stale.

    Returns:
        The temporaries removed (best effort: one that vanishes or cannot be removed is skipped).

    """
    target = Path(path)
    pattern = _temp_pattern(target.name)
    host, now = _host_tag(), time.time()
    removed: list[Path] = []
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return removed
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None:
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            if match["host"] == host and os.name == "posix":
                stale = not _pid_alive(int(match["pid"]))
            else:
                stale = now - entry.stat(follow_symlinks=False).st_mtime > max_age_s
            if stale:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


_SPECIAL_FILES = (
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _describe_special(mode: int) -> str | None:
    """What a file that is not a regular file is, from its ``lstat`` mode (None for a regular file)."""
    if stat.S_ISREG(mode):
        return None
    return next((what for is_kind, what in _SPECIAL_FILES if is_kind(mode)), "a special file")


def _check_replaceable(target: Path) -> None:
    """Raise ``ValueError`` unless ``target`` is absent or a regular file (never replace a link or a FIFO)."""
    try:
        mode = os.lstat(target).st_mode
    except FileNotFoundError:
        return
    special = _describe_special(mode)
    if special is not None:
        raise ValueError(
            f"refusing to write {str(target)!r}: it is {special}, not a regular file; "
            "remove it or choose another output path"
        )


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    Temporaries of ``path`` left by writers that died mid-write are removed first
    (:func:`remove_stale_temporaries`).

    Args:
        path: the file to write; missing parent folders are created.

    Yields:
        The temporary path to write (``.NAME.HOST-PID.XXXXXXXX.tmp`` in the same folder).

    Raises:
        ValueError: ``path`` is a symbolic link, FIFO, directory or other non-regular file (checked before
            the block runs and again before the rename; it is never replaced).

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> with atomic_path(d / "x.txt") as tmp:
        ...     _ = tmp.write_text("hello")
        >>> (d / "x.txt").read_text()
        'hello'

    """
    target = Path(path)
    _check_replaceable(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.name}.{_host_tag()}-{os.getpid()}.", suffix=".tmp", dir=target.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are ordinary files
    try:
        yield tmp
        _check_replaceable(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _json_default(obj: Any) -> Any:
    import numpy as np
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().tolist()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "__dataclass_fields__"):
        from robustrl.common.config import config_to_dict

        return config_to_dict(obj)
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")


def _finite(obj: Any) -> Any:
    """Replace non-finite floats by strings so the file stays strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def write_json(path: str | os.PathLike[str], data: Any) -> Path:
    """Write ``data`` as indented JSON atomically; tensors, arrays and dataclasses are converted.

    Returns:
        The path written.

    Raises:
        ValueError: ``path`` is a symbolic link, FIFO or other non-regular file (see :func:`atomic_path`).
        TypeError: ``data`` holds an object JSON cannot represent (the old file is kept).

    """
    text = json.dumps(_finite(json.loads(json.dumps(data, default=_json_default))), indent=2)
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n")
    return Path(path)


def read_json(path: str | os.PathLike[str], *, what: str = "file") -> Any:
    """Read a JSON file, raising a ``ValueError`` that names the file when it is missing or corrupt."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{what} {str(p)!r} does not exist")
    try:
        return json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{what} {str(p)!r} is not valid JSON: {err}") from err
    except RecursionError:
        raise ValueError(f"{what} {str(p)!r} is nested too deeply to be a robustrl file") from None
    except ValueError as err:  # e.g. an integer past Python's digit limit
        raise ValueError(f"{what} {str(p)!r} cannot be read as JSON: {err}") from err


_WRITABLE = os.W_OK | os.X_OK


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists (following links; ``.`` at worst)."""
    return next((candidate for candidate in (path, *path.parents) if candidate.exists()), Path("."))


def check_output_path(
    path: str | os.PathLike[str],
    *,
    what: str,
    kind: Literal["file", "dir"],
    allow_missing_parents: bool = False,
) -> Path:
    """Check an output path before any work is done, so that a bad ``--out`` fails at once, not at the end.

    The path must be non-empty; its parent folder must exist (or, with ``allow_missing_parents``, be
    creatable: its nearest existing ancestor a writable folder) and be writable. A file output must not be
    a directory, symbolic link, FIFO or other special file (an existing regular file is fine: it is
    replaced atomically). A folder output must not be a file or special file, and must be writable when it
    exists; a symbolic link to a folder is accepted, since files are written inside it and the link itself
    is never replaced.

    Args:
        path: the output path to check.
        what: how the caller names it in the message (``"--out"``, ``"report folder"``).
        kind: ``"file"`` (written with :func:`atomic_path`) or ``"dir"`` (files are written inside it).
        allow_missing_parents: accept a parent folder that does not exist yet but can be created.

    Returns:
        ``Path(path)``, unchanged.

    Raises:
        ValueError: naming ``what`` and the path, with what is wrong and how to fix it.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> check_output_path(d / "eval.json", what="--out", kind="file") == d / "eval.json"
        True
        >>> check_output_path(d, what="--out", kind="file")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: --out '...' is a directory, but a file is expected: pass a file path inside it, ...

    """
    if kind not in ("file", "dir"):
        raise ValueError(f"kind must be 'file' or 'dir', got {kind!r}")
    raw = os.fspath(path)
    label = f"{what} {raw!r}"
    noun = "file" if kind == "file" else "folder"
    if not raw.strip():
        raise ValueError(f"{what} is empty: pass a {noun} path")
    target = Path(raw)
    if kind == "file" and raw.endswith(("/", os.sep)):
        raise ValueError(f"{label} ends with a path separator, so it names a folder: pass a file path")
    try:
        mode: int | None = os.lstat(target).st_mode
    except OSError:
        mode = None
    if mode is not None and stat.S_ISLNK(mode) and not (kind == "dir" and target.is_dir()):
        raise ValueError(
            f"{label} is a symbolic link (to {os.readlink(target)!r}): pass the real path, or remove the link"
        )
    if mode is not None and kind == "file":
        if stat.S_ISDIR(mode):
            raise ValueError(
                f"{label} is a directory, but a file is expected: pass a file path inside it, "
                f"e.g. {str(target / 'result.json')!r}"
            )
        special = _describe_special(mode)
        if special is not None:
            raise ValueError(f"{label} is {special}, not a regular file: remove it or choose another path")
    if mode is not None and kind == "dir":
        if not target.is_dir():
            raise ValueError(
                f"{label} is {_describe_special(mode) or 'a file'}, but a folder is expected: "
                "remove it or choose another folder"
            )
        if not os.access(target, _WRITABLE):
            raise ValueError(f"{label} is a folder you cannot write to: fix its permissions or choose another")
        return target
    parent = target.parent
    existing = _nearest_existing(parent)
    if not existing.is_dir():
        raise ValueError(f"{label} cannot be created: {str(existing)!r} is a file, not a folder; choose another path")
    if existing != parent and not allow_missing_parents:
        raise ValueError(
            f"{label}: its parent folder {str(parent)!r} does not exist; create it first "
            f"(mkdir -p {str(parent)!r}) or choose another path"
        )
    if not os.access(existing, _WRITABLE):
        raise ValueError(
            f"{label}: folder {str(existing)!r} is not writable, so the {noun} cannot be created there; "
            "fix its permissions or choose another path"
        )
    return target
