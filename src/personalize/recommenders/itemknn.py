"""Item-item nearest neighbours (implicit's BM25 / cosine similarity)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from personalize.errors import ParameterError
from personalize.recommenders.base import Recommender
from personalize.recommenders.fallback import DEFAULT_FALLBACK, cosine_weighted, item_item_knn
from personalize.recommenders.io import csr_from_arrays, csr_to_arrays
from personalize.recommenders.topk import NEG

_SIMILARITIES = ("bm25", "cosine")


class ItemKNN(Recommender):
    """Item-based collaborative filtering.

    The item x item similarity keeps the ``neighbors`` most similar items per
    item, computed by implicit's ``BM25Recommender`` (``similarity="bm25"``,
    parameters ``K1``, ``B``) or ``CosineRecommender`` (``"cosine"``). A
    customer's score for item j is the sum over past items i of
    ``weight(i) * sim(i, j)`` where ``weight`` is the purchase count
    (``user_weight="count"``), ``log1p`` of it, or 1 (``"binary"``). Items with
    no positive score are left to the fallback chain.
    """

    kind = "itemknn"

    def __init__(self, *, similarity: str = "bm25", neighbors: int = 100, K1: float = 1.2, B: float = 0.75,
                 user_weight: str = "count", num_threads: int = 0, fallback=DEFAULT_FALLBACK,
                 trending_days: float = 30.0, session_neighbors: int = 20) -> None:
        super().__init__(fallback=fallback, trending_days=trending_days, session_neighbors=session_neighbors)
        self.similarity = similarity
        self.neighbors = neighbors
        self.K1 = K1
        self.B = B
        self.user_weight = user_weight
        self.num_threads = num_threads

    def _validate_params(self) -> None:
        super()._validate_params()
        if self.similarity not in _SIMILARITIES:
            raise ParameterError(f"similarity must be one of {list(_SIMILARITIES)}, got {self.similarity!r}")
        if not (isinstance(self.neighbors, (int, np.integer)) and self.neighbors >= 1):
            raise ParameterError(f"neighbors must be a positive integer, got {self.neighbors!r}")
        if self.user_weight not in ("count", "log1p", "binary"):
            raise ParameterError(f"user_weight must be 'count', 'log1p' or 'binary', got {self.user_weight!r}")

    def _fit(self, ds, X) -> None:
        from implicit.nearest_neighbours import bm25_weight  # heavy import, only when fitting
        n = X.shape[1]
        if X.nnz == 0:
            self.similarity_ = sp.csr_matrix((n, n), dtype=np.float32)
            return
        X = X.tocsr().astype(np.float32)
        if self.similarity == "bm25":  # what implicit's BM25Recommender.fit does, without its COO round trip
            weighted = bm25_weight(X.T, float(self.K1), float(self.B)).T.tocsr().astype(np.float32)
        else:
            weighted = cosine_weighted(X)
        S = item_item_knn(weighted, int(self.neighbors), int(self.num_threads))
        self.similarity_ = S

    def _weights(self, w: np.ndarray) -> np.ndarray:
        if self.user_weight == "log1p":
            return np.log1p(w)
        if self.user_weight == "binary":
            return np.ones_like(w)
        return w

    def _make_scorer(self, query, cols, width):
        S = self.similarity_
        n = self.n_items

        def score(batch, out, colpos):
            out.fill(NEG)
            r, j, w = batch.hist
            if not len(j):
                return
            U = sp.csr_matrix((self._weights(w).astype(np.float32), (r, j)), shape=(len(batch), n))
            R = (U @ S).tocoo()
            rr, jj, vv = R.row, R.col.astype(np.int64), R.data
            keep = vv > 0
            if colpos is not None:
                jj = colpos[jj]
                keep &= jj >= 0
            out[rr[keep], jj[keep]] = vv[keep]

        return score

    def _session_scores(self, hi, hw):
        u = sp.csr_matrix((self._weights(np.asarray(hw, np.float32)), (np.zeros(len(hi), np.int64), hi)),
                          shape=(1, self.n_items))
        v = (u @ self.similarity_).toarray().ravel().astype(np.float32)
        v[v <= 0] = NEG
        return v

    def _similar_scores(self, iidx):
        S = self.similarity_
        s, e = S.indptr[iidx], S.indptr[iidx + 1]
        idx, vals = S.indices[s:e], S.data[s:e]
        keep = vals > 0
        if not keep.any():
            return None, self.source
        out = np.full(self.n_items, NEG, dtype=np.float32)
        out[idx[keep]] = vals[keep]
        return out, self.source

    def _explain_contrib(self, batch, iidx, hi, hw):
        col = np.asarray(self.similarity_[:, [iidx]].todense()).ravel()
        return col[hi] * self._weights(np.asarray(hw, np.float64))

    def to_arrays(self):
        return {**super().to_arrays(), **csr_to_arrays("model_similarity", self.similarity_)}

    def _set_arrays(self, saved):
        super()._set_arrays(saved)
        a = saved.arrays
        self.similarity_ = csr_from_arrays("model_similarity", a)
