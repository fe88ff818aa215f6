"""The cold-start / top-up fallback chain and the item statistics it runs on.

Every model answers with exactly ``k`` rows whenever ``k`` eligible items
exist: when the model itself has fewer (a customer it never saw, a narrow
filter, a model that only knows past items), the chain fills the rest, in the
order the model's ``fallback`` parameter gives, always ending in ``popular``:

``session``          co-occurrence neighbours of the customer's known items
``category_popular`` most popular items in the customer's favourite category
``trending``         most customers in the last ``trending_days`` days
``popular``          most customers overall

:class:`ItemStats` holds what the chain needs (fitted once, read-only);
:class:`FallbackView` is one call's view of it, with the popularity orders
restricted to that call's eligible items (built lazily, only for the stages
that run).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from personalize import _sets
from personalize.recommenders.catalog import ItemCatalog
from personalize.recommenders.topk import csr_gather, sorted_pick

FALLBACK_SOURCES = ("session", "category_popular", "trending", "popular")
DEFAULT_FALLBACK = FALLBACK_SOURCES


def distinct_customers(ds, since: pd.Timestamp | None = None) -> np.ndarray:
    """Number of distinct customers who bought each item (at or after ``since``)."""
    n_items = len(ds.item_vocab)
    ci = ds.customer_idx.astype(np.int64)
    ii = ds.item_idx.astype(np.int64)
    if since is not None and len(ci):
        ts = ds.transactions["timestamp"].to_numpy()
        m = ts >= np.datetime64(since, "ns")
        ci, ii = ci[m], ii[m]
    if not len(ci):
        return np.zeros(n_items, dtype=np.float64)
    pairs = _sets.unique(ci * n_items + ii)
    return np.bincount(pairs % n_items, minlength=n_items).astype(np.float64)


def cosine_weighted(X: sp.csr_matrix) -> sp.csr_matrix:
    """Scale each item column of ``X`` to unit length (so item-item dot products are cosines); CSR."""
    X = X.tocsr().astype(np.float32)
    norms = np.sqrt(np.bincount(X.indices, weights=X.data.astype(np.float64) ** 2, minlength=X.shape[1]))
    with np.errstate(divide="ignore"):
        inv = np.where(norms > 0, 1.0 / norms, 0.0)
    W = X.copy()
    W.data = (W.data * inv[W.indices]).astype(np.float32)
    return W


def item_item_knn(weighted: sp.csr_matrix, K: int, num_threads: int = 0) -> sp.csr_matrix:
    """Top-``K`` item-item dot products of the columns of ``weighted`` (implicit's all_pairs_knn)."""
    from implicit.nearest_neighbours import ItemItemRecommender  # heavy import, only when fitting

    model = ItemItemRecommender(K=K, num_threads=num_threads)
    model.fit(weighted.tocsr().astype(np.float64), show_progress=False)
    S = model.similarity.tocsr().astype(np.float32)
    S.sort_indices()
    return S


def cooccurrence_neighbors(X: sp.csr_matrix, K: int) -> sp.csr_matrix:
    """Item x item cosine similarity of binarized purchases, top ``K`` neighbours per item (self excluded)."""
    n = X.shape[1]
    if K <= 0 or X.nnz == 0:
        return sp.csr_matrix((n, n), dtype=np.float32)
    B = X.copy().tocsr()
    B.data = np.ones_like(B.data, dtype=np.float32)
    with threadpool_limits(1, "blas"):
        S = item_item_knn(cosine_weighted(B), K + 1, num_threads=1)
    S.setdiag(0)
    S.eliminate_zeros()
    S.sort_indices()
    return S


class ItemStats:
    """Fitted item statistics of the fallback chain: popularity, trending, co-occurrence neighbours."""

    def __init__(self, popularity: np.ndarray, trending: np.ndarray, neighbors: sp.csr_matrix,
                 catalog: ItemCatalog) -> None:
        self.popularity = np.asarray(popularity, dtype=np.float64)
        self.trending = np.asarray(trending, dtype=np.float64)
        self.neighbors = neighbors
        self.catalog = catalog
        n = len(self.popularity)
        idx = np.arange(n, dtype=np.int64)
        self.pop_order = np.lexsort((idx, -self.popularity))
        t = np.lexsort((idx, -self.trending))
        self.trend_order = t[self.trending[t] > 0]
        pc = catalog.category_codes[self.pop_order]
        self.cat_orders = [self.pop_order[pc == c] for c in range(len(catalog.categories))]

    @classmethod
    def fit(cls, ds, X: sp.csr_matrix, catalog: ItemCatalog, *, now: pd.Timestamp, trending_days: float,
            session_neighbors: int) -> "ItemStats":
        popularity = np.bincount(X.indices, minlength=X.shape[1]).astype(np.float64)
        trending = distinct_customers(ds, since=now - pd.Timedelta(days=float(trending_days)))
        return cls(popularity, trending, cooccurrence_neighbors(X, int(session_neighbors)), catalog)

    def to_arrays(self) -> dict[str, np.ndarray]:
        N = self.neighbors.tocsr()
        return {"popularity": self.popularity, "trending": self.trending, "neighbors_data": N.data,
                "neighbors_indices": N.indices, "neighbors_indptr": N.indptr,
                "neighbors_shape": np.asarray(N.shape, dtype=np.int64)}

    @classmethod
    def from_arrays(cls, a, catalog: ItemCatalog) -> "ItemStats":
        shape = tuple(int(x) for x in a["neighbors_shape"])
        N = sp.csr_matrix((a["neighbors_data"], a["neighbors_indices"], a["neighbors_indptr"]), shape=shape)
        return cls(a["popularity"], a["trending"], N, catalog)

    # ------------------------------------------------------------------ per-customer pieces
    def favourite_category(self, hi: np.ndarray, hw: np.ndarray) -> int:
        """Category code the history ``hi`` (weights ``hw``) buys most; -1 without one."""
        cat = self.catalog
        if not len(hi) or not len(cat.categories):
            return -1
        codes = cat.category_codes[hi]
        ok = codes >= 0
        if not ok.any():
            return -1
        counts = np.bincount(codes[ok], weights=np.asarray(hw, dtype=np.float64)[ok],
                             minlength=len(cat.categories))
        return int(np.argmax(counts))

    def session_scores(self, hi: np.ndarray, hw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Co-occurrence neighbour scores of ``hi`` (weights ``hw``): (items, scores), positive only."""
        N = self.neighbors
        if not len(hi) or N.nnz == 0:
            return np.zeros(0, np.int64), np.zeros(0)
        r, pos = csr_gather(N.indptr, hi)
        if not len(pos):
            return np.zeros(0, np.int64), np.zeros(0)
        items = N.indices[pos].astype(np.int64)
        vals = N.data[pos].astype(np.float64) * np.asarray(hw, dtype=np.float64)[r]
        uniq, inv = np.unique(items, return_inverse=True)
        sums = np.bincount(inv, weights=vals, minlength=len(uniq))
        keep = sums > 0
        return uniq[keep], sums[keep]

    def neighbor_column(self, iidx: int) -> np.ndarray:
        """Similarity of every item to ``iidx`` (dense; the transpose is built once)."""
        csc = getattr(self, "_csc", None)
        if csc is None:
            csc = self._csc = self.neighbors.tocsc()
        return np.asarray(csc[:, [iidx]].todense()).ravel()


class FallbackView:
    """One call's fallback chain: the stats, the chain and the call's eligible items (None = all)."""

    def __init__(self, stats: ItemStats, chain: Sequence[str], cand: np.ndarray | None) -> None:
        self.stats = stats
        self.chain = tuple(chain)
        self.cand = cand
        self._orders: dict = {}

    def _order(self, key) -> np.ndarray:
        o = self._orders.get(key)
        if o is None:
            s = self.stats
            o = s.pop_order if key == "popular" else s.trend_order if key == "trending" else s.cat_orders[key[1]]
            if self.cand is not None:
                o = o[self.cand[o]]
            self._orders[key] = o
        return o

    def top_up(self, chosen: np.ndarray, need: int, excluded: np.ndarray, hi: np.ndarray, hw: np.ndarray,
               chain: Sequence[str] | None = None, category: int | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Fill ``need`` more items from the chain: (items, scores, source codes = 1 + FALLBACK_SOURCES index).

        Never returns ``chosen`` or ``excluded`` items, only eligible ones.
        ``hi``/``hw`` is the customer's history (session and favourite category).
        """
        s = self.stats
        outs_i, outs_s, outs_c = [], [], []
        block = np.concatenate([np.asarray(chosen, np.int64), np.asarray(excluded, np.int64)])
        cand = self.cand
        for stage in (chain if chain is not None else self.chain):
            if need <= 0:
                break
            code = 1 + FALLBACK_SOURCES.index(stage)
            if stage == "session":
                items, scores = s.session_scores(hi, hw)
                keep = ~_sets.isin(items, block)
                if cand is not None:
                    keep &= cand[items]
                items, scores = sorted_pick(items[keep], scores[keep], need)
            else:
                if stage == "category_popular":
                    cat = category if category is not None else s.favourite_category(hi, hw)
                    if cat < 0:
                        continue
                    order, base = self._order(("cat", cat)), s.popularity
                elif stage == "trending":
                    order, base = self._order("trending"), s.trending
                else:
                    order, base = self._order("popular"), s.popularity
                head = order[:need + len(block)]
                if len(block):
                    head = head[~_sets.isin(head, block)]
                items = head[:need]
                scores = base[items]
            if len(items):
                outs_i.append(items)
                outs_s.append(np.asarray(scores, dtype=np.float64))
                outs_c.append(np.full(len(items), code, dtype=np.int64))
                block = np.concatenate([block, items])
                need -= len(items)
        if not outs_i:
            return np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64)
        return np.concatenate(outs_i), np.concatenate(outs_s), np.concatenate(outs_c)
