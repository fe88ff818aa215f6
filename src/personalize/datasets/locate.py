"""Where the real public datasets are: a folder named by ``PERSONALIZE_DATA_DIR``, or ``shared/data`` beside the
project.

    from personalize.datasets import dataset_path, DatasetNotFound
    path = dataset_path("online_retail")     # .../shared/data/online_retail/online_retail.parquet

The search, in this order:

1. ``PERSONALIZE_DATA_DIR`` (the folder holding ``online_retail/``, ``cdnow/``, ``hillstrom/``). When it is
   set, it is the only place looked at: a typo in it is reported, never hidden by another copy;
2. ``shared/data`` in the working directory or any of its parents (a notebook run from ``notebooks/``);
3. ``shared/data`` beside the source checkout ``personalize`` is imported from (an editable install), so a
   notebook copied anywhere still finds the data of the checkout it runs against.

Nothing is downloaded. When a file is not found, :class:`DatasetNotFound` says which file, every place it
looked and how to point at it.
"""

from __future__ import annotations

import os
from pathlib import Path

from personalize.errors import PersonalizeError

__all__ = ["DATA_DIR_ENV", "DATASETS", "DatasetNotFound", "dataset_path", "data_dir_candidates", "find_dataset"]

#: environment variable naming the folder of the real datasets
DATA_DIR_ENV = "PERSONALIZE_DATA_DIR"
#: dataset name -> its file, relative to the data folder
DATASETS = {
    "online_retail": "online_retail/online_retail.parquet",
    "cdnow": "cdnow/CDNOW_master.txt",
    "cdnow_sample": "cdnow/CDNOW_sample.txt",
    "hillstrom": "hillstrom/hillstrom.csv.gz",
}


class DatasetNotFound(PersonalizeError, FileNotFoundError):
    """A real dataset is not on this machine (the message says where it was looked for)."""


def _checkout_root() -> Path | None:
    """The source checkout this package is imported from (src/personalize/datasets/ -> the root), if any."""
    root = Path(__file__).resolve().parents[3]
    return root if (root / "pyproject.toml").is_file() else None


def data_dir_candidates(start: str | os.PathLike | None = None) -> list[Path]:
    """The folders searched, in order (see the module docstring); the environment variable alone when set."""
    env = os.environ.get(DATA_DIR_ENV, "").strip()
    if env:
        return [Path(env).expanduser()]
    here = Path(start) if start is not None else Path.cwd()
    here = here.resolve()
    out = [p / "shared" / "data" for p in (here, *here.parents)]
    root = _checkout_root()
    if root is not None:
        out.append(root.parent / "shared" / "data")
    return list(dict.fromkeys(out))


def _relative(name: str) -> str:
    if name not in DATASETS:
        raise PersonalizeError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}")
    return DATASETS[name]


def find_dataset(name: str, *, start: str | os.PathLike | None = None) -> Path | None:
    """The file of dataset ``name`` (a key of :data:`DATASETS`), or None when it is in none of the folders."""
    rel = _relative(name)
    for folder in data_dir_candidates(start):
        path = folder / rel
        if path.is_file():
            return path
    return None


def dataset_path(name: str, *, start: str | os.PathLike | None = None) -> Path:
    """The file of dataset ``name``; :class:`DatasetNotFound` naming every place looked at when absent."""
    found = find_dataset(name, start=start)
    if found is not None:
        return found
    rel = _relative(name)
    folders = data_dir_candidates(start)
    if os.environ.get(DATA_DIR_ENV, "").strip():
        where = f"{DATA_DIR_ENV}={folders[0]} has no {rel}"
        hint = f"point {DATA_DIR_ENV} at the folder that holds {rel.split('/')[0]}/"
    else:
        shown = [str(f) for f in folders[:3]] + ([f"... ({len(folders) - 4} more)"] if len(folders) > 4 else []) \
            + ([str(folders[-1])] if len(folders) > 3 else [])
        where = f"no {rel} in {', '.join(shown)}"
        hint = f"set {DATA_DIR_ENV}=/path/to/data (the folder that holds {rel.split('/')[0]}/)"
    raise DatasetNotFound(f"dataset {name!r} not found: {where}; {hint}")
