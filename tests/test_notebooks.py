"""The executed notebooks in notebooks/ are well-formed, run clean and use only public names.

Fast: nothing is executed here (re-run a notebook with
``.venv/bin/jupyter execute --inplace notebooks/NAME.ipynb``). Plain ``json``
is used so no notebook tooling is needed; the stricter nbformat schema check
skips when nbformat is not installed.
"""

from __future__ import annotations

import ast
import importlib
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
EXPECTED = ("01_recommendations_quickstart.ipynb", "02_customer_value.ipynb")
MAX_BYTES = 500_000


def _load(name: str) -> dict:
    return json.loads((NOTEBOOKS / name).read_text(encoding="utf-8"))


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _code_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c.get("cell_type") == "code"]


def _python(source: str) -> str:
    """Cell source without IPython magics / shell escapes (kept as blank lines so line numbers hold)."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def _output_text(out: dict) -> str:
    if out.get("output_type") == "stream":
        text = out.get("text", "")
    else:
        text = out.get("data", {}).get("text/plain", "")
    return "".join(text) if isinstance(text, list) else text


def personalize_imports(source: str) -> list[tuple[str, str | None]]:
    """(module, name) for every ``from personalize... import name`` / ``import personalize...`` in ``source``."""
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and (node.module == "personalize" or node.module.startswith("personalize.")):
            found.extend((node.module, alias.name) for alias in node.names)
        elif isinstance(node, ast.Import):
            found.extend((alias.name, None) for alias in node.names
                         if alias.name == "personalize" or alias.name.startswith("personalize."))
    return found


def test_the_expected_notebooks_exist():
    present = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    for name in EXPECTED:
        assert name in present, f"notebooks/{name} is missing (found {present})"


@pytest.mark.parametrize("name", EXPECTED)
def test_notebook_is_nbformat_4_json_of_reasonable_size(name):
    path = NOTEBOOKS / name
    size = path.stat().st_size
    assert size < MAX_BYTES, f"{name} is {size:,} bytes (limit {MAX_BYTES:,}): shrink figures or outputs"
    nb = _load(name)
    assert nb.get("nbformat") == 4, f"{name}: nbformat {nb.get('nbformat')!r}, expected 4"
    assert isinstance(nb.get("metadata"), dict) and isinstance(nb.get("cells"), list) and nb["cells"]
    assert nb["metadata"].get("kernelspec", {}).get("language") == "python"
    for i, cell in enumerate(nb["cells"]):
        assert cell.get("cell_type") in ("code", "markdown", "raw"), f"{name} cell {i}: {cell.get('cell_type')!r}"
        assert isinstance(cell.get("source"), (str, list)), f"{name} cell {i}: no source"
    assert _code_cells(nb), f"{name} has no code cells"


@pytest.mark.parametrize("name", EXPECTED)
def test_notebook_was_executed_top_to_bottom_without_errors(name):
    nb = _load(name)
    counts = []
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        outputs = cell.get("outputs", [])
        assert outputs, f"{name} cell {i} has no output (not executed?): {_source(cell)[:60]!r}"
        for out in outputs:
            kind = out.get("output_type")
            assert kind != "error", f"{name} cell {i} raised {out.get('ename')}: {out.get('evalue')}"
            assert not (kind == "stream" and out.get("name") == "stderr"), \
                f"{name} cell {i} wrote to stderr (a warning?): {_output_text(out)[:200]!r}"
            text = _output_text(out)
            assert "Traceback (most recent call last)" not in text, f"{name} cell {i} shows a traceback"
            assert str(ROOT) not in text, f"{name} cell {i} output shows a machine-specific path {ROOT}"
        counts.append(cell.get("execution_count"))
    assert counts == list(range(1, len(counts) + 1)), \
        f"{name}: execution counts {counts} are not 1..n: re-run the whole notebook in order"


@pytest.mark.parametrize("name", EXPECTED)
def test_notebook_imports_only_public_names_that_exist(name):
    nb = _load(name)
    imports = []
    for i, cell in enumerate(_code_cells(nb)):
        try:
            imports += personalize_imports(_python(_source(cell)))
        except SyntaxError as exc:  # pragma: no cover - a broken notebook
            pytest.fail(f"{name} code cell {i} is not valid Python: {exc}")
    assert imports, f"{name} imports nothing from personalize"
    for module_name, attr in imports:
        assert not any(part.startswith("_") for part in module_name.split(".")), \
            f"{name} imports the private module {module_name}"
        module = importlib.import_module(module_name)
        if attr is None:
            continue
        assert not attr.startswith("_"), f"{name} imports the private name {module_name}.{attr}"
        assert hasattr(module, attr), f"{name}: 'from {module_name} import {attr}' fails: no such name"
        public = getattr(module, "__all__", None)
        if public is not None:
            assert attr in public, f"{name}: {module_name}.{attr} is not in {module_name}.__all__"


def test_import_parser_finds_every_form():
    src = ("from personalize.recommenders import ALS, Filters as F\nimport personalize\n"
           "import personalize.store as st\nfrom pandas import DataFrame\nfrom .x import y\n"
           "def f():\n    from personalize.analytics import profiles\n")
    assert personalize_imports(src) == [
        ("personalize.recommenders", "ALS"), ("personalize.recommenders", "Filters"),
        ("personalize", None), ("personalize.store", None), ("personalize.analytics", "profiles")]
    assert _python("%matplotlib inline\nx = 1\n!ls") == "\nx = 1\n"


@pytest.mark.parametrize("name", EXPECTED)
def test_notebook_matches_the_nbformat_schema(name):
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
