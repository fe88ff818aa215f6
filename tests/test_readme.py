"""The README's Python examples marked `<!-- runs in tests/test_readme.py -->` run as written, and do something."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
MARK = "<!-- runs in tests/test_readme.py -->"


def _blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(re.escape(MARK) + r"\s*```python\n(.*?)```", text, flags=re.S)


def test_the_readme_marks_its_runnable_examples():
    assert _blocks(), "no README example is marked to run"


@pytest.mark.parametrize("n", range(len(_blocks())))
def test_readme_example_runs(n, tmp_path, monkeypatch):
    code = _blocks()[n]
    if "../shared/data" in code and not SHARED.is_dir():
        pytest.skip("the shared datasets are not on this machine")
    code = code.replace("../shared/data", str(SHARED))
    monkeypatch.chdir(tmp_path)
    # evaluate every top-level expression statement, so an example that returns nothing useful fails
    ns: dict = {}
    results = []
    for stmt in _statements(code):
        try:
            results.append(eval(compile(stmt, "<README>", "eval"), ns))
        except SyntaxError:
            exec(compile(stmt, "<README>", "exec"), ns)
    frames = [r for r in results if isinstance(r, pd.DataFrame)]
    assert frames and all(len(f) for f in frames), "an example returned an empty frame"


def _statements(code: str) -> list[str]:
    import ast

    tree = ast.parse(code)
    lines = code.splitlines()
    return ["\n".join(lines[node.lineno - 1:node.end_lineno]) for node in tree.body]
