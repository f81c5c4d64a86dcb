"""The README's Python example runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs(capsys):
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S)
    assert code is not None, "README has no python example"
    exec(compile(code.group(1), str(README), "exec"), {})
    out = capsys.readouterr().out
    assert "strongest obs/linf" in out and "certified E[R]" in out
