"""Where a key sits in a TOML file, and the error a study spec raises naming file, line, table, key and field.

``tomllib`` reports the line of a syntax error but not where a parsed key came from, so
:class:`TomlLocator` scans the text once (table headers, ``[[array]]`` headers with their index, ``key =``
lines, keys of one-line inline tables) and maps each key path, e.g. ``("method", 1, "train", "obs_noise")``,
to its 1-based line. Best effort: a path it cannot find falls back to its table's header line.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Problem", "StudySpecError", "TomlLocator", "format_path"]

KeyPath = tuple[str | int, ...]
"""A key's place in the document: table names, array-of-tables indices, then the key."""

_BARE = r"[A-Za-z0-9_-]+"
_QUOTED = r'"(?:[^"\\]|\\.)*"|\'[^\']*\''
_KEY = rf"(?:{_BARE}|{_QUOTED})(?:\s*\.\s*(?:{_BARE}|{_QUOTED}))*"
_ARRAY_HEADER = re.compile(rf"^\s*\[\[\s*({_KEY})\s*\]\]")
_TABLE_HEADER = re.compile(rf"^\s*\[\s*({_KEY})\s*\]")
_ASSIGN = re.compile(rf"^\s*({_KEY})\s*=(.*)$")
_INLINE_KEY = re.compile(rf"[{{,]\s*({_KEY})\s*=")


def _split_key(text: str) -> tuple[str, ...]:
    parts = re.findall(rf"{_BARE}|{_QUOTED}", text)
    return tuple(p[1:-1] if p[:1] in "\"'" else p for p in parts)


class TomlLocator:
    """Lines of the keys and tables of a TOML text (1-based).

    Example:
        >>> lines = ["[study]", 'name = "x"', "[[method]]", 'name = "a"', "[[method]]", "train = { obs_noise = 0.2 }"]
        >>> text = chr(10).join(lines)
        >>> loc = TomlLocator(text)
        >>> loc.line(("study", "name")), loc.line(("method", 1, "train", "obs_noise")), loc.line(("method", 1, "x"))
        (2, 6, 5)
    """

    def __init__(self, text: str) -> None:
        self._lines: dict[KeyPath, int] = {}
        arrays: dict[tuple[str, ...], int] = {}
        current: KeyPath = ()
        in_multiline = False
        for number, raw in enumerate(text.splitlines(), start=1):
            if raw.count('"""') % 2 == 1 or raw.count("'''") % 2 == 1:
                in_multiline = not in_multiline
                if not in_multiline:
                    continue
            elif in_multiline:
                continue
            if m := _ARRAY_HEADER.match(raw):
                names = _split_key(m.group(1))
                arrays[names] = arrays.get(names, 0) + 1
                current = (*self._resolve(names[:-1], arrays), names[-1], arrays[names] - 1)
                self._lines.setdefault(current, number)
            elif m := _TABLE_HEADER.match(raw):
                current = self._resolve(_split_key(m.group(1)), arrays)
                self._lines.setdefault(current, number)
            elif m := _ASSIGN.match(raw):
                key = (*current, *_split_key(m.group(1)))
                self._lines.setdefault(key, number)
                value = m.group(2)
                if value.lstrip().startswith("{"):
                    for inner in _INLINE_KEY.finditer(value):
                        self._lines.setdefault((*key, *_split_key(inner.group(1))), number)

    @staticmethod
    def _resolve(names: Sequence[str], arrays: dict[tuple[str, ...], int]) -> KeyPath:
        """A header's path, with the current index of every array of tables it is inside."""
        path: list[str | int] = []
        for i, name in enumerate(names):
            path.append(name)
            prefix = tuple(names[: i + 1])
            if prefix in arrays:
                path.append(arrays[prefix] - 1)
        return tuple(path)

    def line(self, path: KeyPath) -> int | None:
        """The line of ``path``, else of its closest enclosing table or key that has one (None: not found)."""
        for end in range(len(path), 0, -1):
            found = self._lines.get(tuple(path[:end]))
            if found is not None:
                return found
        return None


def format_path(path: KeyPath) -> str:
    """``[table] key`` of a key path, e.g. ``("method", 1, "train", "sigma")`` → ``[[method]] #2 train.sigma``.

    Example:
        >>> format_path(("evaluate", "grid", "budgets")), format_path(("method", 0, "name")), format_path(("study",))
        ('[evaluate.grid] budgets', '[[method]] #1 name', '[study]')
    """
    if not path:
        return "(top level)"
    if len(path) >= 2 and isinstance(path[1], int):
        head = f"[[{path[0]}]] #{path[1] + 1}"
        rest = [str(p) for p in path[2:]]
        return head + (f" {'.'.join(rest)}" if rest else "")
    if len(path) == 1:
        return f"[{path[0]}]"
    if len(path) >= 3 and path[1] == "grid":
        return f"[{path[0]}.grid] {'.'.join(str(p) for p in path[2:])}"
    return f"[{path[0]}] {'.'.join(str(p) for p in path[1:])}"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a study spec."""

    file: str
    """The spec file."""
    line: int | None
    """1-based line of the key (or of its table), when the locator found it."""
    where: str
    """The table and key, as ``[evaluate] threat`` or ``[[method]] #2 train.obs_noise``."""
    message: str
    """What is wrong, naming the config field."""

    def __str__(self) -> str:
        at = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{at}: {self.where}: {self.message}"


class StudySpecError(ValueError):
    """A study spec that cannot run: every problem found, each naming the file, line, table, key and field."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        if len(self.problems) == 1:
            text = f"study spec error: {self.problems[0]}"
        else:
            text = f"study spec has {len(self.problems)} problems:\n" + "\n".join(f"  {p}" for p in self.problems)
        super().__init__(text)

