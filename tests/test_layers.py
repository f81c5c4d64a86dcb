"""The layers of docs/architecture.md hold: lint-imports' contract, and no import cycle between modules."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_import_linter_contract_holds() -> None:
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    if not Path(exe).exists():
        pytest.fail("lint-imports is not installed (it comes with the dev extra: import-linter)")
    proc = subprocess.run([exe, "--config", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_no_two_modules_import_each_other() -> None:
    if importlib.util.find_spec("grimp") is None:
        pytest.fail("grimp is not installed (it comes with import-linter)")
    import grimp

    graph = grimp.build_graph("robustrl")
    cycles = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            if graph.chain_exists(importer=imported, imported=importer):
                chain = graph.find_shortest_chain(importer=imported, imported=importer)
                cycles.append(f"{importer} -> {imported} -> ... -> {' -> '.join(chain or ())}")
    assert not cycles, "import cycles:\n" + "\n".join(cycles[:20])
