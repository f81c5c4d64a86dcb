"""The policies package imports only robustrl.common and itself, and its modules import without a circle."""

from __future__ import annotations

import ast
from pathlib import Path

import robustrl.policies

PACKAGE = Path(robustrl.policies.__file__).parent


def robustrl_imports(path: Path) -> set[str]:
    """Every ``robustrl...`` module ``path`` imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("robustrl")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("robustrl"):
            found.add(node.module)
    return found


def graph() -> dict[str, set[str]]:
    """Module name -> the policies modules it imports (the package itself counts as ``robustrl.policies``)."""
    modules = {f"robustrl.policies.{p.stem}": p for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    modules["robustrl.policies"] = PACKAGE / "__init__.py"
    return {name: {m for m in robustrl_imports(path) if m.startswith("robustrl.policies")} for name, path in
            modules.items()}  # fmt: skip


def test_policies_import_only_the_layers_below_and_themselves() -> None:
    for path in PACKAGE.glob("*.py"):
        below = ("robustrl.policies", "robustrl.common", "robustrl.results")  # the layers under policies
        outside = {m for m in robustrl_imports(path) if not m.startswith(below)}
        assert outside == set(), f"{path.name} imports {outside}"


def test_no_module_imports_one_that_imports_it_back() -> None:
    edges = graph()
    for name in edges:
        if name == "robustrl.policies":
            continue
        assert "robustrl.policies" not in edges[name], f"{name} imports the package, which imports every module"
    # depth-first search for a cycle through any module
    state: dict[str, int] = {}

    def visit(name: str, trail: list[str]) -> None:
        state[name] = 1
        for dep in sorted(edges.get(name, ())):
            assert state.get(dep) != 1, f"import cycle: {' -> '.join([*trail, name, dep])}"
            if dep not in state:
                visit(dep, [*trail, name])
        state[name] = 2

    for name in sorted(edges):
        if name not in state:
            visit(name, [])
    assert edges["robustrl.policies.reading"] == set()  # the shared readers depend on nothing in policies
