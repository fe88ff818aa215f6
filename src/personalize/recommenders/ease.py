"""EASE: the closed-form item-item model of Steck (2019), "Embarrassingly Shallow Autoencoders for Sparse Data".

With ``X`` the binary customer x item purchase matrix, EASE learns the item x
item weights ``B`` that best rebuild ``X`` from itself without an item
explaining itself::

    min_B ||X - X B||^2 + lambda ||B||^2   subject to   diag(B) = 0

whose solution is ``P = (X'X + lambda I)^-1`` and ``B = I - P / diag(P)``
(each column of ``P`` divided by its diagonal entry). A customer's score for
item ``j`` is ``sum_i x_ui B_ij``: a linear model over every past item, so
explanations are exact (past item ``i`` contributes ``B_ij``). ``B`` is dense
(``4 n^2`` bytes for ``n`` items) and inverting costs ``O(n^3)``, which is
why the model refuses catalogs above ``max_items`` (30,000 by default: 3.6 GB
and a few minutes on two cores); use :class:`~personalize.recommenders.ItemKNN`
or :class:`~personalize.recommenders.ALS` for larger ones.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as la
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from personalize import _sets
from personalize.errors import DataError, ParameterError
from personalize.recommenders.base import Recommender
from personalize.recommenders.fallback import DEFAULT_FALLBACK
from personalize.recommenders.topk import NEG

__all__ = ["EASE"]


class EASE(Recommender):
    """Closed-form item-item model (Steck 2019) on who bought what.

    Parameters (keyword-only, stored untouched)
    ----------
    regularization:
        ``lambda``; None (the default) scales it with the data: ``regularization_scale`` times the
        mean number of buyers per bought item (the mean diagonal of ``X'X``), so that the penalty
        weighs the same against the data whatever the number of customers.
    regularization_scale:
        The multiplier of that adaptive default.
    max_items:
        Largest catalog accepted (a DataError above it, saying what it would cost).
    num_threads:
        BLAS threads for the inversion (0 = the BLAS default). Scoring uses one.
    fallback, trending_days, session_neighbors:
        The shared cold-start / top-up chain (see :class:`Recommender`).

    Fitted: ``weights_`` (the dense ``B``, float32) and ``regularization_`` (the ``lambda`` used).
    Items nobody bought in the training data get no score (the fallback chain places them).
    """

    kind = "ease"
    default_exclude = "non_repeatable"

    def __init__(self, *, regularization: float | None = None, regularization_scale: float = 3.0,
                 max_items: int = 30_000, num_threads: int = 0, fallback=DEFAULT_FALLBACK,
                 trending_days: float = 30.0, session_neighbors: int = 20) -> None:
        super().__init__(fallback=fallback, trending_days=trending_days, session_neighbors=session_neighbors)
        self.regularization = regularization
        self.regularization_scale = regularization_scale
        self.max_items = max_items
        self.num_threads = num_threads

    def _validate_params(self) -> None:
        super()._validate_params()
        for name, allow_none in (("regularization", True), ("regularization_scale", False)):
            v = getattr(self, name)
            if v is None and allow_none:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v <= 0:
                raise ParameterError(f"{name} must be a positive number{' or None' if allow_none else ''}, "
                                     f"got {v!r}")
        for name, low in (("max_items", 1), ("num_threads", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
                raise ParameterError(f"{name} must be an integer >= {low}, got {v!r}")

    # ------------------------------------------------------------------ fit
    def _fit(self, ds, X) -> None:
        n = X.shape[1]
        if n > self.max_items:
            gb = 4.0 * n * n / 1e9
            raise DataError(f"EASE inverts a dense item x item matrix: {n:,} items would take {gb:.1f} GB per copy "
                            f"and O(n^3) time, above max_items={self.max_items:,}; raise max_items if the machine "
                            f"can afford it, or use itemknn or als for this catalog", table="items",
                            column="item_id")
        B = X.tocsr().astype(np.float32, copy=True)
        B.data[:] = 1.0
        # float64 while the matrix is small; float32 (half the memory) for large catalogs, where the
        # counts are still exact and the ridge term keeps the system well conditioned
        dtype = np.float64 if n <= _FLOAT64_MAX_ITEMS else np.float32
        G = _gram(B, dtype)
        buyers = np.diag(G).copy()
        lam = self.regularization
        if lam is None:
            lam = float(self.regularization_scale) * (float(buyers[buyers > 0].mean()) if (buyers > 0).any() else 1.0)
        self.regularization_ = float(lam)
        G[np.diag_indices(n)] += self.regularization_
        with threadpool_limits(int(self.num_threads) or None, "blas"):
            P = _spd_inverse(G)  # G's memory, overwritten
        P /= -np.diag(P)[None, :]
        P[np.diag_indices(n)] = 0.0
        self.weights_ = np.ascontiguousarray(P, dtype=np.float32)

    # ------------------------------------------------------------------ scoring
    def _post_state(self) -> None:
        super()._post_state()
        self._bought = self.popularity_ > 0

    def _make_scorer(self, query, cols, width):
        W = self.weights_
        n = self.n_items
        unseen = ~self._bought if cols is None else ~self._bought[cols]

        def score(batch, out, colpos):
            r, j, _w = batch.hist
            U = sp.csr_matrix((np.ones(len(j), np.float32), (r, j)), shape=(len(batch), n))
            S = np.asarray(U @ W, dtype=np.float32)
            ncols = n if cols is None else len(cols)
            out[:, :ncols] = S if cols is None else S[:, cols]
            out[:, :ncols][:, unseen] = NEG

        return score

    def _session_scores(self, hi, hw):
        s = self.weights_[_sets.unique(hi)].sum(axis=0).astype(np.float32)
        s[~self._bought] = NEG
        return s

    def _similar_scores(self, iidx):
        if not self._bought[iidx]:
            return None, self.source
        s = self.weights_[iidx].astype(np.float32, copy=True)
        s[(s <= 0) | ~self._bought] = NEG
        return s, self.source

    def _explain_contrib(self, batch, iidx, hi, hw):
        return self.weights_[hi, iidx].astype(np.float64)

    # ------------------------------------------------------------------ arrays
    def to_arrays(self):
        return {**super().to_arrays(), "model_weights": self.weights_,
                "model_regularization": np.asarray([self.regularization_])}

    def _set_arrays(self, saved):
        super()._set_arrays(saved)
        a = saved.arrays
        self.weights_ = np.ascontiguousarray(a["model_weights"], dtype=np.float32)
        self.regularization_ = float(a["model_regularization"][0])


_FLOAT64_MAX_ITEMS = 8192
_BLOCK = 2048


def _gram(B: sp.csr_matrix, dtype) -> np.ndarray:
    """Dense ``B'B`` built a block of columns at a time (the sparse product of a whole large catalog would
    hold every pair)."""
    n = B.shape[1]
    Bc = B.tocsc()
    Bt = Bc.T.tocsr()
    G = np.empty((n, n), dtype=dtype)
    for lo in range(0, n, _BLOCK):
        hi = min(n, lo + _BLOCK)
        G[:, lo:hi] = (Bt @ Bc[:, lo:hi]).toarray()
    return G


def _spd_inverse(A: np.ndarray) -> np.ndarray:
    """Inverse of the symmetric positive definite ``A`` by Cholesky (LAPACK potrf + potri), in ``A``'s memory."""
    potrf, potri = la.get_lapack_funcs(("potrf", "potri"), (A,))
    c, info = potrf(A, lower=False, overwrite_a=True, clean=False)
    if info != 0:  # cannot happen with lambda > 0 unless the numbers are not finite
        raise DataError("EASE: X'X + lambda I is not positive definite (non-finite weights?)", table="transactions")
    inv, info = potri(c, lower=False, overwrite_c=True)
    if info != 0:
        raise DataError("EASE: the Cholesky factor could not be inverted", table="transactions")
    n = inv.shape[0]
    for lo in range(0, n, _BLOCK):  # potri fills the upper triangle: mirror it, a block at a time
        hi = min(n, lo + _BLOCK)
        inv[lo:hi, :lo] = inv[:lo, lo:hi].T
        blk = inv[lo:hi, lo:hi]
        inv[lo:hi, lo:hi] = np.triu(blk) + np.triu(blk, 1).T
    return inv
