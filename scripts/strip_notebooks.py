"""Strip the outputs of notebooks before committing them: the notebooks are kept in git without outputs, and
``make test`` executes them (``tests/test_notebooks.py`` checks both).

    .venv/bin/python scripts/strip_notebooks.py notebooks/*.ipynb
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from personalize._atomic import atomic_write  # noqa: E402

#: notebook metadata worth keeping (the rest is the editor's: widget state, versions, ...)
KEEP_METADATA = ("kernelspec", "language_info")


def strip(nb) -> bool:
    """Remove outputs, execution counts and editor metadata in place; True when anything changed."""
    before = nbformat.writes(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        for key in ("execution", "collapsed", "scrolled", "ExecuteTime"):
            cell.metadata.pop(key, None)
    nb.metadata = {k: v for k, v in nb.metadata.items() if k in KEEP_METADATA}
    if "language_info" in nb.metadata:
        nb.metadata["language_info"] = {"name": nb.metadata["language_info"].get("name", "python")}
    return nbformat.writes(nb) != before


def main(paths: list[str]) -> int:
    if not paths:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    for path in map(Path, paths):
        nb = nbformat.read(path, as_version=4)
        if strip(nb):
            text = nbformat.writes(nb) + "\n"
            atomic_write(path, lambda fh, text=text: fh.write(text), binary=False)
            print(f"stripped {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
