"""Saving and loading recommenders without pickle.

A saved model is a directory with ``arrays.npz`` (numpy arrays only, read
back with ``allow_pickle=False``; ids are stored as fixed-width unicode) and
``meta.json`` (``kind``, ``format_version``, hyperparameters and a few
scalars). Each file is written to a temporary file in the same directory and
moved into place with ``os.replace``; ``meta.json`` is written last, so a
directory with a ``meta.json`` is complete.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from personalize._atomic import atomic_write
from personalize.errors import BundleError
from personalize.recommenders.filters import ItemCatalog


FORMAT_VERSION = 1


def _atomic_write(path: Path, write) -> None:
    atomic_write(path, write)


def csr_to_arrays(prefix: str, m: sp.csr_matrix) -> dict[str, np.ndarray]:
    m = m.tocsr()
    return {f"{prefix}_data": m.data, f"{prefix}_indices": m.indices, f"{prefix}_indptr": m.indptr,
            f"{prefix}_shape": np.asarray(m.shape, dtype=np.int64)}


def csr_from_arrays(prefix: str, a) -> sp.csr_matrix:
    shape = tuple(int(x) for x in a[f"{prefix}_shape"])
    return sp.csr_matrix((a[f"{prefix}_data"], a[f"{prefix}_indices"], a[f"{prefix}_indptr"]), shape=shape)


def _merged_history(model) -> tuple[np.ndarray, sp.csr_matrix]:
    """Customer ids and history matrix including customers added or changed by update_customer."""
    X = model.user_items_
    ids = model.customer_ids_
    if not model._hist_live:
        return ids, X
    n_total = model.n_base_customers_ + len(model._new_customers)
    new_ids = np.empty(len(model._new_customers), dtype=object)
    for cid, idx in model._new_customers.items():
        new_ids[idx - model.n_base_customers_] = cid
    ids = np.concatenate([ids, new_ids])
    X = sp.vstack([X, sp.csr_matrix((n_total - X.shape[0], X.shape[1]), dtype=np.float32)]).tocsr()
    live_rows = np.array(sorted(model._hist_live), dtype=np.int64)
    keep = np.ones(n_total, dtype=bool)
    keep[live_rows] = False
    coo = X.tocoo()
    m = keep[coo.row]
    rows, cols, data = [coo.row[m]], [coo.col[m]], [coo.data[m]]
    for r in live_rows:
        li, lw = model._hist_live[int(r)]
        rows.append(np.full(len(li), r, dtype=np.int64))
        cols.append(li)
        data.append(lw)
    X = sp.csr_matrix((np.concatenate(data).astype(np.float32),
                       (np.concatenate(rows), np.concatenate(cols))), shape=(n_total, X.shape[1]))
    X.sort_indices()
    return ids, X


def save_recommender(model, directory) -> None:
    """Write ``model`` (fitted) to ``directory``; see the module docstring for the layout."""
    from personalize.recommenders.base import params_to_json
    model._check_fitted()
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    ids, X = _merged_history(model)
    arrays = {
        "customer_ids": np.asarray(ids, dtype=str),
        "item_ids": np.asarray(model.item_ids_, dtype=str),
        "popularity": model.popularity_,
        "trending": model.trending_,
        **csr_to_arrays("history", X),
        **csr_to_arrays("neighbors", model.neighbors_),
        **{f"catalog_{k}": v for k, v in model.catalog_.to_arrays().items()},
        **{f"model_{k}": v for k, v in model._model_arrays().items()},
    }
    for name, arr in arrays.items():
        if isinstance(arr, np.ndarray) and arr.dtype == object:
            raise BundleError(f"array {name!r} has dtype object and cannot be saved without pickle")
    meta = {
        "kind": model.kind,
        "class": type(model).__name__,
        "format_version": FORMAT_VERSION,
        "params": json.loads(params_to_json(model.get_params())),
        "now": model.now_.isoformat(),
        "n_customers": int(len(ids)),
        "n_items": int(len(model.item_ids_)),
        "model": model._model_meta(),
    }
    _atomic_write(d / "arrays.npz", lambda fh: np.savez(fh, **arrays))
    _atomic_write(d / "meta.json", lambda fh: fh.write(json.dumps(meta, indent=2, sort_keys=True).encode()))


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
        raise BundleError(f"{path}: format_version {meta.get('format_version')!r} is not supported "
                          f"(expected {FORMAT_VERSION})")
    return meta


def load_recommender(directory):
    """Load any recommender saved with ``save``; the class is chosen by meta.json's ``kind``."""
    import personalize.recommenders  # noqa: F401  (registers every model)
    from personalize.recommenders.base import registry
    meta = read_meta(directory)
    cls = registry().get(meta["kind"])
    if cls is None:
        raise BundleError(f"{directory}: unknown recommender kind {meta['kind']!r}; known: {sorted(registry())}")
    params = dict(meta.get("params") or {})
    if "fallback" in params and isinstance(params["fallback"], list):
        params["fallback"] = tuple(params["fallback"])
    try:
        model = cls(**params)
    except TypeError as exc:
        raise BundleError(f"{directory}: parameters do not match {cls.__name__} ({exc})") from None
    path = Path(directory) / "arrays.npz"
    try:
        with np.load(path, allow_pickle=False) as npz:
            a = {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as exc:
        raise BundleError(f"{path}: unreadable arrays ({exc})") from None
    try:
        model.customer_ids_ = a["customer_ids"].astype(object)
        model.item_ids_ = a["item_ids"].astype(object)
        model.user_items_ = csr_from_arrays("history", a)
        model.neighbors_ = csr_from_arrays("neighbors", a)
        model.popularity_ = a["popularity"]
        model.trending_ = a["trending"]
        model.catalog_ = ItemCatalog.from_arrays(model.item_ids_,
                                                 {k[len("catalog_"):]: v for k, v in a.items()
                                                  if k.startswith("catalog_")})
        model.now_ = pd.Timestamp(meta["now"])
        model.n_base_customers_ = len(model.customer_ids_)
        model._load_model_arrays({k[len("model_"):]: v for k, v in a.items() if k.startswith("model_")},
                                 meta.get("model") or {})
    except KeyError as exc:
        raise BundleError(f"{path}: missing array {exc}") from None
    model._post_state()
    return model
