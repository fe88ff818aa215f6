"""Saving and loading recommenders without pickle.

A saved model is a directory::

    meta.json      kind, class, format_version, hyperparameters, the model's own meta, names of its parts
    arrays.npz     numpy arrays only (read back with allow_pickle=False; ids as fixed-width unicode)
    files/<name>   text artifacts in their own format (TwoStage's LightGBM rankers, LightGBM's text model)
    parts/<name>/  a saved sub-model each (TwoStage's generators), in this same layout

What a model's arrays are is the model's business: each class says how it
becomes arrays and files (``to_arrays``, ``to_files``, ``to_meta``,
``parts``) and how it is rebuilt from them (``from_arrays``, given a
:class:`SavedModel`); this module only writes and reads files. Every
file is written to a temporary file and renamed into place, ``meta.json``
last, so a directory with a ``meta.json`` is complete.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from personalize._arrayfiles import read_npz
from personalize._atomic import atomic_write
from personalize._json import to_jsonable
from personalize.errors import BundleError
from personalize.recommenders import kinds

FORMAT_VERSION = 2
_PARTS = "parts"
_FILES = "files"


@dataclass(frozen=True)
class SavedModel:
    """What :func:`load_recommender` read back for a model's ``from_arrays``."""

    arrays: dict[str, np.ndarray]
    meta: dict
    parts: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)


def csr_to_arrays(prefix: str, m: sp.csr_matrix) -> dict[str, np.ndarray]:
    m = m.tocsr()
    return {f"{prefix}_data": m.data, f"{prefix}_indices": m.indices, f"{prefix}_indptr": m.indptr,
            f"{prefix}_shape": np.asarray(m.shape, dtype=np.int64)}


def csr_from_arrays(prefix: str, a) -> sp.csr_matrix:
    shape = tuple(int(x) for x in a[f"{prefix}_shape"])
    return sp.csr_matrix((a[f"{prefix}_data"], a[f"{prefix}_indices"], a[f"{prefix}_indptr"]), shape=shape)


def save_recommender(model, directory) -> None:
    """Write ``model`` (fitted) to ``directory``; see the module docstring for the layout."""
    model._check_fitted()
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    arrays = model.to_arrays()
    for name, arr in arrays.items():
        if not isinstance(arr, np.ndarray) or arr.dtype == object:
            raise BundleError(f"array {name!r} of {type(model).__name__} cannot be saved without pickle "
                              f"(got {type(arr).__name__} {getattr(arr, 'dtype', '')})")
    parts = model.parts()
    for name, part in parts.items():
        save_recommender(part, d / _PARTS / name)
    files = model.to_files()
    if files:
        (d / _FILES).mkdir(exist_ok=True)
    for name, text in files.items():
        atomic_write(d / _FILES / name, lambda fh, text=text: fh.write(text), binary=False)
    meta = {"kind": model.kind, "class": type(model).__name__, "format_version": FORMAT_VERSION,
            "params": to_jsonable(model.get_params()), "model": to_jsonable(model.to_meta()),
            "parts": list(parts), "files": list(files)}
    atomic_write(d / "arrays.npz", lambda fh: np.savez(fh, **arrays))
    atomic_write(d / "meta.json", lambda fh: fh.write(json.dumps(meta, indent=2, sort_keys=True).encode()))


def read_meta(directory) -> dict:
    path = Path(directory) / "meta.json"
    if not path.is_file():
        raise BundleError(f"{directory}: no meta.json (not a saved recommender)")
    try:
        meta = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BundleError(f"{path}: unreadable meta.json ({exc})") from None
    if not isinstance(meta, dict) or "kind" not in meta:
        raise BundleError(f"{path}: meta.json has no 'kind'")
    if meta.get("format_version") != FORMAT_VERSION:
        raise BundleError(f"{path}: recommender format_version {meta.get('format_version')!r} is not supported "
                          f"(this library reads {FORMAT_VERSION}; retrain with `personalize train`)")
    return meta


def load_recommender(directory):
    """Load any recommender saved with ``save``; the class is chosen by meta.json's ``kind``."""
    d = Path(directory)
    meta = read_meta(d)
    cls = kinds.get(meta["kind"])
    if cls is None:
        raise BundleError(f"{d}: unknown recommender kind {meta['kind']!r}; known: {sorted(kinds.registry())}")
    parts = {name: load_recommender(d / _PARTS / name) for name in meta.get("parts") or []}
    path = d / "arrays.npz"
    try:
        arrays = read_npz(path)
        files = {name: (d / _FILES / name).read_text(encoding="utf-8") for name in meta.get("files") or []}
    except (OSError, ValueError) as exc:
        raise BundleError(f"{d}: unreadable model file ({exc})") from None
    saved = SavedModel(arrays, meta.get("model") or {}, parts, files)
    try:
        return cls.from_arrays(saved, params=meta.get("params") or {})
    except KeyError as exc:
        raise BundleError(f"{path}: missing array {exc}") from None
    except TypeError as exc:
        raise BundleError(f"{d}: parameters do not match {cls.__name__} ({exc})") from None
