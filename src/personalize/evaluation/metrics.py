"""Top-k ranking metrics, vectorized over customers.

Inputs are a ``recommended`` matrix of item indices, shape ``(n_customers, k)``
(row ``u`` = customer ``u``'s list in rank order, ``-1`` pads lists shorter than
``k``) and the ground truth ``relevant``, a boolean CSR matrix of shape
``(n_customers, n_items)`` (or a list of item-index collections). Every
per-customer metric returns a float array of length ``n_customers``; average
it for the reported value. Relevance is binary.

Definitions (``rel_u`` = set of relevant items of customer ``u``, ``R`` =
``|rel_u|``, ``hit_j`` = 1 if the item at rank ``j`` (1-based) is relevant):

* ``precision@k = sum_j hit_j / k`` (padding counts as a miss: k is fixed)
* ``recall@k = sum_j hit_j / R``
* ``hit_rate@k = 1 if any hit_j else 0``
* ``NDCG@k = DCG / IDCG`` with ``DCG = sum_j hit_j / log2(j + 1)`` and
  ``IDCG = sum_{j=1..min(R, k)} 1 / log2(j + 1)`` (the best possible list)
* ``AP@k = sum_j hit_j * precision@j / min(R, k)``; ``MAP@k`` is its mean
* ``catalog coverage = |distinct recommended items| / catalog size``
* ``novelty = mean over recommended items of -log2 p(i)``, ``p(i)`` = share of
  training customers who bought item ``i`` (floored at ``1 / n_customers`` so
  never-bought items are finite).

Customers with ``R = 0`` get 0 for recall, NDCG and AP (evaluation only ever
passes customers with at least one relevant item).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from personalize import _sets

__all__ = ["hit_matrix", "precision_at_k", "recall_at_k", "hit_rate_at_k", "ndcg_at_k", "average_precision_at_k",
           "catalog_coverage", "novelty", "ranking_metrics"]


def _as_csr(relevant, n_rows: int, n_items: int | None = None) -> sp.csr_matrix:
    if sp.issparse(relevant):
        m = sp.csr_matrix(relevant, dtype=bool)
        if m.shape[0] != n_rows:
            raise ValueError(f"relevant has {m.shape[0]} rows but recommended has {n_rows}")
        return m
    if len(relevant) != n_rows:
        raise ValueError(f"relevant has {len(relevant)} rows but recommended has {n_rows}")
    rows, cols = [], []
    for u, items in enumerate(relevant):
        items = _sets.unique(np.asarray(list(items), dtype=np.int64))
        rows.append(np.full(items.size, u, dtype=np.int64))
        cols.append(items)
    r = np.concatenate(rows) if rows else np.array([], dtype=np.int64)
    c = np.concatenate(cols) if cols else np.array([], dtype=np.int64)
    width = n_items if n_items is not None else (int(c.max()) + 1 if c.size else 1)
    return sp.csr_matrix((np.ones(r.size, dtype=bool), (r, c)), shape=(n_rows, width))


def hit_matrix(recommended: np.ndarray, relevant) -> tuple[np.ndarray, np.ndarray]:
    """Boolean ``(n_customers, k)`` hit matrix and the number of relevant items per customer.

    A repeated item in one list only counts at its first rank.
    """
    rec = np.asarray(recommended, dtype=np.int64)
    if rec.ndim != 2:
        raise ValueError(f"recommended must be 2-D (customers x k), got shape {rec.shape}")
    n, k = rec.shape
    width = int(rec.max()) + 1 if rec.size and rec.max() >= 0 else 1
    rel = _as_csr(relevant, n)
    n_rel = np.diff(rel.indptr).astype(np.int64)
    n_items = max(rel.shape[1], width)
    coo = rel.tocoo()
    truth_keys = np.sort(coo.row.astype(np.int64) * n_items + coo.col.astype(np.int64))
    rec_keys = np.arange(n, dtype=np.int64)[:, None] * n_items + rec
    valid = rec >= 0
    if truth_keys.size:
        pos = np.searchsorted(truth_keys, rec_keys)
        pos = np.minimum(pos, truth_keys.size - 1)
        hits = valid & (truth_keys[pos] == rec_keys)
    else:
        hits = np.zeros_like(valid)
    if k > 1 and hits.any():
        # duplicates: only the first occurrence of an item in a row can hit
        order = np.argsort(rec, axis=1, kind="stable")
        srt = np.take_along_axis(rec, order, axis=1)
        dup_sorted = np.zeros_like(valid)
        dup_sorted[:, 1:] = srt[:, 1:] == srt[:, :-1]
        dup = np.zeros_like(valid)
        np.put_along_axis(dup, order, dup_sorted, axis=1)
        hits &= ~dup
    return hits, n_rel


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.zeros(a.shape, dtype=np.float64)
    np.divide(a, b, out=out, where=b > 0)
    return out


def precision_at_k(hits: np.ndarray) -> np.ndarray:
    return hits.sum(axis=1) / hits.shape[1]


def recall_at_k(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    return _safe_div(hits.sum(axis=1).astype(np.float64), n_relevant.astype(np.float64))


def hit_rate_at_k(hits: np.ndarray) -> np.ndarray:
    return hits.any(axis=1).astype(np.float64)


def ndcg_at_k(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    k = hits.shape[1]
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = hits @ discounts
    ideal_cum = np.concatenate([[0.0], np.cumsum(discounts)])
    idcg = ideal_cum[np.minimum(n_relevant, k)]
    return _safe_div(dcg, idcg)


def average_precision_at_k(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    k = hits.shape[1]
    cum = np.cumsum(hits, axis=1)
    prec = cum / np.arange(1, k + 1)
    return _safe_div((prec * hits).sum(axis=1), np.minimum(n_relevant, k).astype(np.float64))


def catalog_coverage(recommended: np.ndarray, catalog_size: int) -> float:
    """Share of the catalog that appears in at least one list."""
    if catalog_size <= 0:
        return 0.0
    rec = np.asarray(recommended)
    return float(_sets.unique(rec[rec >= 0]).size / catalog_size)


def novelty(recommended: np.ndarray, item_buyers: np.ndarray, n_customers: int) -> float:
    """Mean self-information ``-log2 p(i)`` of the recommended items (higher = less obvious)."""
    rec = np.asarray(recommended)
    items = rec[rec >= 0]
    if items.size == 0 or n_customers <= 0:
        return float("nan")
    p = np.maximum(np.asarray(item_buyers, dtype=np.float64)[items], 1.0) / n_customers
    return float(np.mean(-np.log2(np.minimum(p, 1.0))))


def ranking_metrics(recommended: np.ndarray, relevant, *, k: int | None = None) -> dict[str, np.ndarray]:
    """Per-customer recall, precision, NDCG, AP and hit rate at ``k`` (default: the width of ``recommended``)."""
    rec = np.asarray(recommended, dtype=np.int64)
    if k is not None:
        if rec.shape[1] < k:
            rec = np.pad(rec, ((0, 0), (0, k - rec.shape[1])), constant_values=-1)
        rec = rec[:, :k]
    hits, n_rel = hit_matrix(rec, relevant)
    return {"recall": recall_at_k(hits, n_rel), "precision": precision_at_k(hits), "ndcg": ndcg_at_k(hits, n_rel),
            "map": average_precision_at_k(hits, n_rel), "hit_rate": hit_rate_at_k(hits)}
