"""The import graph of robustrl.envs: no cycles (function-level imports included), only common and itself."""

from __future__ import annotations

import ast
from pathlib import Path

import robustrl.envs

ENVS_DIR = Path(robustrl.envs.__path__[0])


def _imports(path: Path) -> set[str]:
    """Every robustrl module a file imports, anywhere in it (``from robustrl.x import y`` counts robustrl.x)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m == "robustrl" or m.startswith("robustrl.")}


def _graph() -> dict[str, set[str]]:
    modules = {f"robustrl.envs.{p.stem}": p for p in ENVS_DIR.glob("*.py") if p.stem != "__init__"}
    return {name: {m for m in _imports(p) if m in modules} for name, p in modules.items()}


def test_envs_imports_only_common_and_itself() -> None:
    for path in ENVS_DIR.glob("*.py"):
        for module in _imports(path):
            assert module.startswith(("robustrl.common", "robustrl.envs")), f"{path.name} imports {module}"


def test_envs_import_graph_has_no_cycle() -> None:
    graph = _graph()
    assert "robustrl.envs.registry" in graph["robustrl.envs.cli"]  # the graph is read (sanity)

    def reachable(start: str) -> set[str]:
        seen: set[str] = set()
        todo = list(graph[start])
        while todo:
            m = todo.pop()
            if m not in seen:
                seen.add(m)
                todo.extend(graph[m])
        return seen

    for module in graph:
        assert module not in reachable(module), f"{module} imports a module that imports it back"
