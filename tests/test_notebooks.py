"""The notebooks in notebooks/: stored without outputs, well-formed, public names only, and executed top to bottom.

Kept in git without outputs (``scripts/strip_notebooks.py`` strips them), so a diff shows code and text only and
no output can go stale; the execution tests (marker ``notebooks``) run each one with nbclient in a kernel of
this interpreter, fail on any error, traceback or stderr output (a warning), and write the executed copy to
``benchmarks/results/notebooks/`` to read. A notebook copied out of the repository finds the data through
``PERSONALIZE_DATA_DIR`` or says where it looked (never a bare ``StopIteration``).
"""

from __future__ import annotations

import ast
import importlib
import json
import re
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
ARTIFACTS = ROOT / "benchmarks" / "results" / "notebooks"
EXPECTED = ("01_quickstart.ipynb", "02_retrain_and_publish.ipynb", "03_campaigns.ipynb",
            "04_customer_value.ipynb")
MAX_BYTES = 100_000          # stripped notebooks are code and text only
CELL_TIMEOUT_S = 300
STRIP = ".venv/bin/python scripts/strip_notebooks.py notebooks/*.ipynb"
#: paths that only exist on one machine; a notebook finds data with personalize.datasets.dataset_path
MACHINE_PATHS = re.compile(r"(/work/|/home/|/root/|/tmp/|[A-Za-z]:\\\\|\.\./shared|shared/data)")


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
    elif out.get("output_type") == "error":
        text = "\n".join(out.get("traceback", []))
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


# ---------------------------------------------------------------------------------------------- as stored
def test_the_expected_notebooks_exist():
    present = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    assert present == sorted(EXPECTED), f"notebooks/ holds {present}; expected {sorted(EXPECTED)} (update EXPECTED " \
                                        "and notebooks/README.md together)"


@pytest.mark.parametrize("name", EXPECTED)
def test_notebook_is_valid_nbformat_4_of_reasonable_size(name):
    nbformat = pytest.importorskip("nbformat")
    path = NOTEBOOKS / name
    assert path.stat().st_size < MAX_BYTES, f"{name} is {path.stat().st_size:,} bytes: outputs left in? ({STRIP})"
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.nbformat == 4 and nb.metadata.get("kernelspec", {}).get("language") == "python"
    assert _code_cells(_load(name)), f"{name} has no code cells"


@pytest.mark.parametrize("name", EXPECTED)
def test_notebook_is_stored_without_outputs(name):
    for i, cell in enumerate(_load(name)["cells"]):
        if cell["cell_type"] != "code":
            continue
        assert not cell.get("outputs") and cell.get("execution_count") is None, \
            f"{name} cell {i} was saved with outputs: the notebooks are kept stripped, run {STRIP}"
    extra = set(_load(name)["metadata"]) - {"kernelspec", "language_info"}
    assert not extra, f"{name} carries editor metadata {sorted(extra)}: run {STRIP}"


@pytest.mark.parametrize("name", EXPECTED)
def test_notebook_has_no_machine_specific_paths(name):
    for i, cell in enumerate(_code_cells(_load(name))):
        hit = MACHINE_PATHS.search(_source(cell))
        assert hit is None, f"{name} code cell {i} names the path {hit.group(0)!r}: find data with " \
                            "personalize.datasets.dataset_path (PERSONALIZE_DATA_DIR or shared/data)"


@pytest.mark.parametrize("name", EXPECTED)
def test_notebook_imports_only_public_names_that_exist(name):
    imports = []
    for i, cell in enumerate(_code_cells(_load(name))):
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


def test_strip_script_removes_outputs_and_is_idempotent(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        strip_notebooks = importlib.import_module("strip_notebooks")
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    nb = nbformat.read(NOTEBOOKS / EXPECTED[-1], as_version=4)
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="hello")]
    nb.cells[1].execution_count = 3
    nb.metadata["widgets"] = {"state": {}}
    path = tmp_path / "x.ipynb"
    nbformat.write(nb, path)
    assert strip_notebooks.main([str(path)]) == 0
    again = nbformat.read(path, as_version=4)
    assert again.cells[1].outputs == [] and again.cells[1].execution_count is None
    assert "widgets" not in again.metadata
    assert strip_notebooks.strip(again) is False


# ---------------------------------------------------------------------------------------------- executed
@pytest.fixture(scope="module")
def kernel(tmp_path_factory, monkeypatch_module):
    """A kernel spec that runs this very interpreter (never another 'python3' kernel installed on the machine)."""
    pytest.importorskip("nbclient", reason="nbclient is not installed: pip install -e '.[test]'")
    pytest.importorskip("ipykernel", reason="ipykernel is not installed: pip install -e '.[test]'")
    home = tmp_path_factory.mktemp("jupyter")
    spec = home / "kernels" / "personalize-tests"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "personalize tests", "language": "python"}))
    monkeypatch_module.setenv("JUPYTER_PATH", str(home))
    return "personalize-tests"


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def _execute(nb, kernel_name: str, cwd: Path):
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    client = NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name=kernel_name,
                            resources={"metadata": {"path": str(cwd)}})
    try:
        client.execute()
    except CellExecutionError as exc:
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # no terminal colours in the failure message
        pytest.fail(f"executing the notebook failed:\n{text[-3000:]}", pytrace=False)
    return nb


def _check_clean(name: str, nb) -> None:
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            text = _output_text(out)
            assert out.get("output_type") != "error", f"{name} cell {i} raised {out.get('ename')}"
            assert not (out.get("output_type") == "stream" and out.get("name") == "stderr"), \
                f"{name} cell {i} wrote to stderr (a warning?): {text[:300]!r}"
            assert "Traceback (most recent call last)" not in text, f"{name} cell {i} shows a traceback"
            # the one place a path may show: the notice that the real data was not found names where it looked
            shown = "\n".join(line for line in text.splitlines() if "PERSONALIZE_DATA_DIR" not in line)
            assert str(ROOT) not in shown, f"{name} cell {i} output shows the machine-specific path {ROOT}"


@pytest.mark.notebooks
@pytest.mark.parametrize("name", EXPECTED)
def test_notebook_runs_top_to_bottom_without_errors_or_warnings(name, kernel):
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    t0 = time.perf_counter()
    _execute(nb, kernel, NOTEBOOKS)
    seconds = time.perf_counter() - t0
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, ARTIFACTS / name)
    print(f"{name}: executed in {seconds:.1f} s -> {ARTIFACTS / name}")
    _check_clean(name, nb)
    counts = [c.execution_count for c in nb.cells if c.cell_type == "code"]
    assert counts == list(range(1, len(counts) + 1)), f"{name}: a cell did not run ({counts})"
    assert all(c.outputs for c in nb.cells if c.cell_type == "code"), f"{name}: a code cell shows nothing"


@pytest.mark.notebooks
def test_a_notebook_copied_out_of_the_repo_says_where_the_data_is(kernel, tmp_path, monkeypatch):
    """The first cells of the quickstart, run from a folder outside the repository with PERSONALIZE_DATA_DIR
    pointing at a folder without the data: a clear message naming the setting, then the synthetic fallback."""
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(NOTEBOOKS / EXPECTED[0], as_version=4)
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    nb.cells = nb.cells[:code[1] + 1]          # setup + load
    empty = tmp_path / "no-data-here"
    empty.mkdir()
    monkeypatch.setenv("PERSONALIZE_DATA_DIR", str(empty))
    _execute(nb, kernel, tmp_path)
    text = "".join(_output_text(o) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "StopIteration" not in text
    assert f"PERSONALIZE_DATA_DIR={empty} has no online_retail/online_retail.parquet" in text, text
    assert "synthetic (make_retail)" in text, text
