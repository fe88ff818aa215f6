"""The recommender contract every model follows.

A model learns from a :class:`personalize.data.Dataset` and answers on real
customer and item ids::

    m = ALS(factors=64).fit(ds)
    m.recommend(["C1", "C2"], k=10, exclude="purchased", filters=Filters(in_stock=True))
    m.recommend_from_items(["I1", "I7"], k=10)
    m.similar_items("I1", k=10)
    m.explain("C1", "I9")
    m.update_customer("C1", ["I4"])          # real-time purchase event
    m.save("models/als"); load_recommender("models/als")

Shared machinery lives here: id maps, customer histories (with a live overlay
for real-time updates), item attributes for filters, popularity and trending
counts, a co-occurrence neighbour matrix for the session stage, exclusion
modes, vectorized top-k, and the cold-start fallback chain that tops every
answer up to exactly ``k`` rows when ``k`` eligible items exist. Subclasses
implement ``_fit`` and ``_make_scorer`` (and optionally ``_session_scores``,
``_similar_scores``, ``_explain_contrib``, ``_update_model``).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp
from threadpoolctl import ThreadpoolController, threadpool_limits

from personalize.errors import NotFittedError, UnknownIdError
from personalize.recommenders.filters import Filters, ItemCatalog, ParameterError

EXCLUDE_MODES = ("purchased", "non_repeatable")
FALLBACK_SOURCES = ("session", "category_popular", "trending", "popular")
DEFAULT_FALLBACK = FALLBACK_SOURCES

_BATCH = 256          # customers scored per block in batch recommend
_GROUP = 16           # group size of the two-level top-k
_GROUP_MIN = 8192     # catalogs at least this large use the two-level top-k
_NEG = np.float32(-np.inf)

_REGISTRY: dict[str, type["Recommender"]] = {}
_controller: ThreadpoolController | None = None


def _blas_one_thread():
    """Context manager limiting BLAS to one thread (cheap: the controller is built once)."""
    global _controller
    if _controller is None:
        _controller = ThreadpoolController()
    return _controller.limit(limits=1, user_api="blas")


def csr_gather(indptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For CSR ``rows``: (position of the row in ``rows`` for each stored entry, index into data/indices)."""
    rows = np.asarray(rows, dtype=np.int64)
    starts = indptr[rows].astype(np.int64)
    lens = indptr[rows + 1].astype(np.int64) - starts
    total = int(lens.sum())
    r = np.repeat(np.arange(len(rows), dtype=np.int64), lens)
    if total == 0:
        return r, np.zeros(0, dtype=np.int64)
    offs = np.cumsum(lens) - lens
    pos = np.arange(total, dtype=np.int64) - np.repeat(offs, lens) + np.repeat(starts, lens)
    return r, pos


def padded_width(ncols: int) -> int:
    """Width of a score block: padded to a multiple of the top-k group size for large catalogs."""
    if ncols >= _GROUP_MIN:
        return -(-ncols // _GROUP) * _GROUP
    return ncols


def topk_rows(out: np.ndarray, ncols: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` columns of each row of ``out[:, :ncols]``, sorted by score desc then column asc.

    Columns ``ncols:`` must already hold -inf. Large blocks use a two-level
    selection: the maximum of each of ``width / G`` strided groups, the top
    ``k`` groups, then the top ``k`` of their ``k * G`` members. It is exact:
    every one of the true top ``k`` lies in a group whose maximum is at least
    the k-th score, and at most ``k`` groups have that.
    """
    b, width = out.shape
    k = min(k, ncols)
    if k <= 0:
        return np.zeros((b, 0), dtype=np.int64), np.zeros((b, 0), dtype=np.float32)
    if k >= ncols:
        cand = np.broadcast_to(np.arange(ncols, dtype=np.int64), (b, ncols))
        vals = out[:, :ncols]
    elif width >= _GROUP_MIN and width % _GROUP == 0 and k * _GROUP < width:
        m = width // _GROUP
        gmax = out.reshape(b, _GROUP, m).max(axis=1)
        gi = np.argpartition(-gmax, k - 1, axis=1)[:, :k]
        cand = (gi[:, None, :] + (np.arange(_GROUP, dtype=np.int64) * m)[None, :, None]).reshape(b, -1)
        vals = np.take_along_axis(out, cand, axis=1)
    else:
        cand = np.argpartition(-out[:, :ncols], k - 1, axis=1)[:, :k].astype(np.int64)
        vals = np.take_along_axis(out, cand, axis=1)
    order = np.lexsort((cand, -vals))[:, :k]
    return np.take_along_axis(cand, order, axis=1), np.take_along_axis(vals, order, axis=1)


def _sorted_pick(idx: np.ndarray, scores: np.ndarray, need: int) -> tuple[np.ndarray, np.ndarray]:
    """Top ``need`` of (idx, scores) by score desc, index asc."""
    if idx.size == 0 or need <= 0:
        return idx[:0], scores[:0]
    order = np.lexsort((idx, -scores))[:need]
    return idx[order], scores[order]


class _CallContext:
    """Per-call state: the eligibility mask and fallback orders filtered by it (built lazily)."""

    def __init__(self, model: "Recommender", cand: np.ndarray | None) -> None:
        self.model = model
        self.cand = cand
        self._orders: dict[Any, np.ndarray] = {}

    def order(self, key) -> np.ndarray:
        o = self._orders.get(key)
        if o is None:
            m = self.model
            if key == "popular":
                o = m._pop_order
            elif key == "trending":
                o = m._trend_order
            else:  # ("cat", code)
                o = m._cat_orders[key[1]]
            if self.cand is not None:
                o = o[self.cand[o]]
            self._orders[key] = o
        return o


class Recommender:
    """Base class of every recommender (see the module docstring for the contract).

    Shared keyword-only hyperparameters:

    ``fallback``: the cold-start / top-up chain, a sequence drawn from
    ``("session", "category_popular", "trending", "popular")``, tried in order
    when the model has fewer than ``k`` eligible items for a customer (and for
    customers it has never seen). ``session`` = co-occurrence neighbours of the
    customer's known items (history or the given session items);
    ``category_popular`` = most popular items in the customer's favourite
    category (new items without history rank last but are reachable);
    ``trending`` = most customers in the last ``trending_days`` days;
    ``popular`` = most customers overall. A final ``popular`` stage is always
    implied, so the answer has exactly ``k`` rows whenever ``k`` eligible
    items exist.
    ``trending_days``: window of the trending counts (days before the end of the data).
    ``session_neighbors``: neighbours per item in the co-occurrence matrix (0 disables the session stage).
    """

    kind: ClassVar[str] = ""
    #: what ``exclude="auto"`` means for this model
    default_exclude: ClassVar[str | None] = "non_repeatable"

    def __init__(self, *, fallback: Sequence[str] = DEFAULT_FALLBACK, trending_days: float = 30.0,
                 session_neighbors: int = 20) -> None:
        self.fallback = fallback
        self.trending_days = trending_days
        self.session_neighbors = session_neighbors

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            _REGISTRY[cls.kind] = cls

    # ------------------------------------------------------------------ params
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]

    def get_params(self) -> dict[str, Any]:
        """Hyperparameters as given to ``__init__``."""
        return {name: getattr(self, name) for name in self._param_names()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    @property
    def source(self) -> str:
        """Name written in the ``source`` column for rows this model produced."""
        return self.kind

    def _validate_params(self) -> None:
        chain = tuple(self.fallback) if self.fallback is not None else ()
        bad = [s for s in chain if s not in FALLBACK_SOURCES]
        if bad or isinstance(self.fallback, str):
            raise ParameterError(f"fallback must be a sequence drawn from {list(FALLBACK_SOURCES)}, got "
                                 f"{self.fallback!r}")
        if not (isinstance(self.trending_days, (int, float)) and self.trending_days > 0):
            raise ParameterError(f"trending_days must be a positive number, got {self.trending_days!r}")
        if not (isinstance(self.session_neighbors, (int, np.integer)) and self.session_neighbors >= 0):
            raise ParameterError(f"session_neighbors must be an integer >= 0, got {self.session_neighbors!r}")

    def _chain(self) -> tuple[str, ...]:
        chain = tuple(self.fallback or ())
        return chain if chain and chain[-1] == "popular" else chain + ("popular",)

    # ------------------------------------------------------------------ fit
    def fit(self, dataset) -> "Recommender":
        """Learn from ``dataset`` (a :class:`personalize.data.Dataset`); returns self."""
        self._validate_params()
        X = dataset.interaction_matrix("count")
        self._fit_base(dataset, X)
        with threadpool_limits(1, "blas"):
            self._fit(dataset, X)
        self._post_state()
        return self

    def _fit(self, dataset, X: sp.csr_matrix) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _fit_base(self, ds, X: sp.csr_matrix) -> None:
        X = X.tocsr()
        X.sort_indices()
        self.customer_ids_ = np.asarray(ds.customer_vocab.ids, dtype=object)
        self.item_ids_ = np.asarray(ds.item_vocab.ids, dtype=object)
        self.user_items_ = X.astype(np.float32)
        self.catalog_ = ItemCatalog.from_items(self.item_ids_, ds.items)
        self.popularity_ = np.bincount(X.indices, minlength=X.shape[1]).astype(np.float64)
        last = ds.last_timestamp
        self.now_ = pd.Timestamp(last) if last is not None else pd.Timestamp(0)
        self.trending_ = distinct_customers(ds, since=self.now_ - pd.Timedelta(days=float(self.trending_days)))
        self.neighbors_ = cooccurrence_neighbors(X, int(self.session_neighbors))
        self.n_base_customers_ = len(self.customer_ids_)
        self._new_customers = {}
        self._hist_live = {}

    def _post_state(self) -> None:
        """Rebuild derived lookups from the fitted arrays (after fit and load)."""
        self._cindex = pd.Index(self.customer_ids_, dtype=object)
        self._iindex = pd.Index(self.item_ids_, dtype=object)
        self._new_customers: dict[str, int] = getattr(self, "_new_customers", {})
        self._hist_live: dict[int, tuple[np.ndarray, np.ndarray]] = getattr(self, "_hist_live", {})
        n = len(self.item_ids_)
        idx = np.arange(n, dtype=np.int64)
        self._pop_order = np.lexsort((idx, -self.popularity_))
        t = np.lexsort((idx, -self.trending_))
        self._trend_order = t[self.trending_[t] > 0]
        codes = self.catalog_.category_codes
        ncat = len(self.catalog_.categories)
        po = self._pop_order
        pc = codes[po]
        self._cat_orders = [po[pc == c] for c in range(ncat)]
        self._filter_cache: dict[Filters, np.ndarray] = {}
        self._neighbors_csc: sp.csc_matrix | None = None
        self._source_names = [self.source, *FALLBACK_SOURCES, "cooccurrence"]

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "item_ids_")

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit(dataset) or load a saved model first")

    # ------------------------------------------------------------------ ids
    @property
    def n_items(self) -> int:
        return len(self.item_ids_)

    def _lookup_customers(self, ids: np.ndarray) -> np.ndarray:
        if len(ids) == 1:  # the serving path: a hash lookup, no array machinery
            try:
                pos = self._cindex.get_loc(ids[0])
            except (KeyError, TypeError):
                pos = self._new_customers.get(ids[0], -1)
            if isinstance(pos, (int, np.integer)):
                return np.array([pos], dtype=np.int64)
        idx = self._cindex.get_indexer(ids).astype(np.int64)
        if self._new_customers:
            miss = np.flatnonzero(idx < 0)
            for p in miss:
                idx[p] = self._new_customers.get(ids[p], -1)
        return idx

    def _lookup_items(self, ids, *, strict: bool, what: str = "item") -> np.ndarray:
        arr = np.asarray([ids] if isinstance(ids, str) else list(ids), dtype=object)
        idx = self._iindex.get_indexer(arr).astype(np.int64) if arr.size else np.zeros(0, np.int64)
        if strict and (idx < 0).any():
            unknown = arr[idx < 0][:5].tolist()
            raise UnknownIdError(f"unknown {what} id(s) {unknown}: not in the model's item vocabulary")
        return idx

    def _customer_id_of(self, cidx: int) -> str:
        if cidx < self.n_base_customers_:
            return self.customer_ids_[cidx]
        return next(k for k, v in self._new_customers.items() if v == cidx)

    # ------------------------------------------------------------------ histories
    def _history_coords(self, c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row position in ``c``, item index, weight) of the customers' purchase histories."""
        c = np.asarray(c, dtype=np.int64)
        live = self._hist_live
        if live:
            is_live = np.fromiter((int(x) in live for x in c), dtype=bool, count=len(c))
        else:
            is_live = np.zeros(len(c), dtype=bool)
        X = self.user_items_
        base_rows = np.flatnonzero(~is_live) if is_live.any() else np.arange(len(c))
        r, pos = csr_gather(X.indptr, c[base_rows])
        r = base_rows[r]
        j = X.indices[pos].astype(np.int64)
        w = X.data[pos]
        if is_live.any():
            rs, js, ws = [r], [j], [w]
            for p in np.flatnonzero(is_live):
                li, lw = live[int(c[p])]
                rs.append(np.full(len(li), p, dtype=np.int64))
                js.append(li)
                ws.append(lw)
            r, j, w = np.concatenate(rs), np.concatenate(js), np.concatenate(ws)
        return r, j, w

    def _has_history(self, cidx: np.ndarray) -> np.ndarray:
        """Whether each customer index has any purchase (training history or live events)."""
        c = np.asarray(cidx, dtype=np.int64)
        nnz = np.diff(self.user_items_.indptr)
        has = np.zeros(len(c), dtype=bool)
        base = (c >= 0) & (c < len(nnz))
        has[base] = nnz[c[base]] > 0
        live = self._hist_live
        if live:
            has |= np.fromiter((int(x) in live for x in c), dtype=bool, count=len(c))
        return has

    def _history(self, cidx: int) -> tuple[np.ndarray, np.ndarray]:
        if cidx < 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        live = self._hist_live.get(int(cidx))
        if live is not None:
            return live
        X = self.user_items_
        if cidx >= X.shape[0]:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        s, e = X.indptr[cidx], X.indptr[cidx + 1]
        return X.indices[s:e].astype(np.int64), X.data[s:e]

    def _excluded_mask_coords(self, j: np.ndarray, exclude: str | None) -> np.ndarray:
        if exclude is None:
            return np.zeros(len(j), dtype=bool)
        if exclude == "purchased":
            return np.ones(len(j), dtype=bool)
        return ~self.catalog_.repeatable[j]

    # ------------------------------------------------------------------ arguments
    def _resolve_exclude(self, exclude) -> str | None:
        if isinstance(exclude, str) and exclude == "auto":
            return self.default_exclude
        if exclude is None or exclude in EXCLUDE_MODES:
            return exclude
        raise ParameterError(f"exclude must be 'purchased', 'non_repeatable', None or 'auto', got {exclude!r}")

    @staticmethod
    def _check_k(k) -> int:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ParameterError(f"k must be a positive integer, got {k!r}")
        return int(k)

    def _candidate_mask(self, items, filters) -> np.ndarray | None:
        filters = Filters.coerce(filters)
        mask = None
        if filters is not None and not filters.is_empty():
            mask = self._filter_cache.get(filters)
            if mask is None:
                mask = filters.mask(self.catalog_)
                if len(self._filter_cache) > 64:
                    self._filter_cache.clear()
                self._filter_cache[filters] = mask
        if items is not None:
            idx = self._lookup_items(items, strict=False)
            allowed = np.zeros(self.n_items, dtype=bool)
            allowed[idx[idx >= 0]] = True
            mask = allowed if mask is None else (mask & allowed)
        return mask

    # ------------------------------------------------------------------ recommend
    def recommend(self, customer_ids, k: int = 10, *, exclude: str | None = "auto", items=None,
                  filters: Filters | dict | None = None) -> pd.DataFrame:
        """Top-``k`` items for one customer id or many.

        Returns DataFrame[customer_id, item_id, score, rank, source], customers
        in input order, rank 1..k. ``exclude``: ``"purchased"`` drops every item
        the customer bought, ``"non_repeatable"`` only those not flagged
        ``repeatable`` in the items table, None drops nothing; ``"auto"`` (the
        default) is the model's ``default_exclude``. ``items`` restricts the
        answer to a candidate list; ``filters`` applies business rules.
        Unknown customers get the fallback chain; ``source`` names what
        produced each row.
        """
        self._check_fitted()
        k = self._check_k(k)
        ids = _id_array(customer_ids)
        exclude = self._resolve_exclude(exclude)
        cand = self._candidate_mask(items, filters)
        cidx = self._lookup_customers(ids)
        with _blas_one_thread():
            rows, item, score, src = self._recommend_idx(cidx, k, exclude, cand)
        rank = _ranks(rows)
        names = np.asarray(self._source_names, dtype=object)
        return pd.DataFrame({
            "customer_id": ids[rows],
            "item_id": self.item_ids_[item],
            "score": score.astype(np.float64),
            "rank": rank,
            "source": names[src],
        }, copy=False)

    def _recommend_idx(self, cidx: np.ndarray, k: int, exclude: str | None, cand: np.ndarray | None):
        """Core of :meth:`recommend` on indices: (row, item, score, source code) arrays, grouped by row."""
        n = self.n_items
        ctx = _CallContext(self, cand)
        cols = None if cand is None else np.flatnonzero(cand)
        ncols = n if cols is None else len(cols)
        colpos = None
        if cols is not None:
            colpos = np.full(n, -1, dtype=np.int64)
            colpos[cols] = np.arange(ncols)
        if not ncols or not len(cidx):  # nothing is eligible (or nobody asked)
            z = np.zeros(0, np.int64)
            return z, z, np.zeros(0), z
        # a customer in the vocabulary with no history in the training data (e.g. first purchase after a
        # time split) is cold: the model has no opinion on them, so they get the fallback chain
        cidx = np.where(self._has_history(cidx), cidx, -1)
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []  # (row, item, score, source)
        known = np.flatnonzero(cidx >= 0)
        width = padded_width(ncols)
        scorer = self._make_scorer(cols, width) if known.size else None
        buf = np.empty((min(_BATCH, len(known)), width), dtype=np.float32) if known.size else None
        for start in range(0, len(known), _BATCH):
            chunk = known[start:start + _BATCH]
            c = cidx[chunk]
            r, j, w = self._history_coords(c)
            out = buf[:len(c)]  # one buffer for every block: no page faults per block
            scorer(c, (r, j, w), out, colpos)
            if width > ncols:
                out[:, ncols:] = _NEG
            if exclude is not None and len(j):
                ex = self._excluded_mask_coords(j, exclude)
                er, ej = r[ex], j[ex]
                if colpos is not None:
                    ej = colpos[ej]
                    keep = ej >= 0
                    er, ej = er[keep], ej[keep]
                out[er, ej] = _NEG
            top, vals = topk_rows(out, ncols, k)
            items_top = top if cols is None else cols[top]
            ok = vals > _NEG
            kk = vals.shape[1]
            full = ok.all(axis=1) & (kk >= k)
            if full.any():  # the common case, vectorized: the model filled all k slots
                fr = np.flatnonzero(full)
                parts.append((np.repeat(chunk[fr], kk), items_top[fr].ravel(), vals[fr].ravel().astype(np.float64),
                              np.zeros(len(fr) * kk, np.int64)))
            for p in np.flatnonzero(~full):  # top up from the fallback chain
                it, sc = items_top[p][ok[p]], vals[p][ok[p]].astype(np.float64)
                hi, hw = self._history(int(c[p]))
                excluded = hi[self._excluded_mask_coords(hi, exclude)]
                fi, fs, fsrc = self._top_up(ctx, it, k - len(it), excluded, hi, hw)
                n_p = len(it) + len(fi)
                parts.append((np.full(n_p, chunk[p], np.int64), np.concatenate([it, fi]), np.concatenate([sc, fs]),
                              np.concatenate([np.zeros(len(it), np.int64), fsrc])))
        cold_rows = np.flatnonzero(cidx < 0)
        if len(cold_rows):  # every unknown customer gets the same chain (no history, no session)
            empty = np.zeros(0, np.int64)
            ci, cs, cc = self._top_up(ctx, empty, k, empty, empty, np.zeros(0, np.float32))
            m = len(ci)
            parts.append((np.repeat(cold_rows, m), np.tile(ci, len(cold_rows)), np.tile(cs, len(cold_rows)),
                          np.tile(cc, len(cold_rows))))
        rows = np.concatenate([q[0] for q in parts]).astype(np.int64)
        order = np.argsort(rows, kind="stable")
        item = np.concatenate([q[1] for q in parts]).astype(np.int64)[order]
        score = np.concatenate([q[2] for q in parts]).astype(np.float64)[order]
        src = np.concatenate([q[3] for q in parts]).astype(np.int64)[order]
        return rows[order], item, score, src

    # ------------------------------------------------------------------ fallback chain
    def _favourite_category(self, hi: np.ndarray, hw: np.ndarray) -> int:
        if not len(hi) or not len(self.catalog_.categories):
            return -1
        codes = self.catalog_.category_codes[hi]
        ok = codes >= 0
        if not ok.any():
            return -1
        counts = np.bincount(codes[ok], weights=np.asarray(hw, dtype=np.float64)[ok],
                             minlength=len(self.catalog_.categories))
        return int(np.argmax(counts))

    def _session_neighbor_scores(self, hi: np.ndarray, hw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Co-occurrence neighbour scores of ``hi`` (weights ``hw``): (items, scores), positive only."""
        N = self.neighbors_
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

    def _top_up(self, ctx: _CallContext, chosen: np.ndarray, need: int, excluded: np.ndarray,
                hi: np.ndarray, hw: np.ndarray, chain: Sequence[str] | None = None,
                category: int | None = None):
        """Fill ``need`` more items from the fallback chain: (items, scores, source codes)."""
        outs_i, outs_s, outs_c = [], [], []
        block = np.concatenate([np.asarray(chosen, np.int64), np.asarray(excluded, np.int64)])
        cand = ctx.cand
        for stage in (chain if chain is not None else self._chain()):
            if need <= 0:
                break
            code = 1 + FALLBACK_SOURCES.index(stage)
            if stage == "session":
                items, scores = self._session_neighbor_scores(hi, hw)
                keep = ~np.isin(items, block)
                if cand is not None:
                    keep &= cand[items]
                items, scores = _sorted_pick(items[keep], scores[keep], need)
            else:
                if stage == "category_popular":
                    cat = category if category is not None else self._favourite_category(hi, hw)
                    if cat < 0:
                        continue
                    order = ctx.order(("cat", cat))
                    base = self.popularity_
                elif stage == "trending":
                    order = ctx.order("trending")
                    base = self.trending_
                else:
                    order = ctx.order("popular")
                    base = self.popularity_
                head = order[:need + len(block)]
                if len(block):
                    head = head[~np.isin(head, block)]
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

    # ------------------------------------------------------------------ session / similar / explain
    def recommend_from_items(self, item_ids, k: int = 10, *, items=None,
                             filters: Filters | dict | None = None) -> pd.DataFrame:
        """Top-``k`` items for a shopper known only by ``item_ids`` (session or cart).

        Returns DataFrame[item_id, score, rank, source]. The given items are
        not recommended back; ids unknown to the model are ignored.
        """
        self._check_fitted()
        k = self._check_k(k)
        idx = self._lookup_items(item_ids, strict=False)
        idx = idx[idx >= 0]
        hi, counts = np.unique(idx, return_counts=True)
        hw = counts.astype(np.float32)
        cand = self._candidate_mask(items, filters)
        ctx = _CallContext(self, cand)
        it = np.zeros(0, np.int64)
        sc = np.zeros(0)
        with _blas_one_thread():
            scores = self._session_scores(hi, hw) if len(hi) else None
            if scores is not None:
                scores = np.array(scores, dtype=np.float32, copy=True)
                scores[hi] = _NEG
                if cand is not None:
                    scores[~cand] = _NEG
                top, vals = topk_rows(scores[None, :], len(scores), k)
                ok = vals[0] > _NEG
                it, sc = top[0][ok], vals[0][ok].astype(np.float64)
            src = np.zeros(len(it), np.int64)
            if len(it) < k:
                fi, fs, fc = self._top_up(ctx, it, k - len(it), hi, hi, hw)
                it, sc, src = np.concatenate([it, fi]), np.concatenate([sc, fs]), np.concatenate([src, fc])
        names = np.asarray(self._source_names, dtype=object)
        return pd.DataFrame({
            "item_id": pd.array(self.item_ids_[it], dtype="str"),
            "score": sc.astype(np.float64),
            "rank": np.arange(1, len(it) + 1, dtype=np.int64),
            "source": pd.array(names[src], dtype="str"),
        })

    def similar_items(self, item_ids, k: int = 10, *, filters: Filters | dict | None = None) -> pd.DataFrame:
        """Items most similar to each of ``item_ids``.

        Returns DataFrame[query_item_id, item_id, score, rank, source]; the
        query item itself is never returned. Items without purchase history
        get popular items of their category. Unknown ids raise UnknownIdError.
        """
        self._check_fitted()
        k = self._check_k(k)
        single = isinstance(item_ids, str)
        qids = np.asarray([item_ids] if single else list(item_ids), dtype=object)
        qidx = self._lookup_items(qids, strict=True)
        cand = self._candidate_mask(None, filters)
        ctx = _CallContext(self, cand)
        names = np.asarray(self._source_names, dtype=object)
        parts_q, parts_i, parts_s, parts_c, parts_r = [], [], [], [], []
        with _blas_one_thread():
            for q, qi in zip(qids, qidx):
                scores, source = self._similar_scores(int(qi))
                it, sc = np.zeros(0, np.int64), np.zeros(0)
                if scores is not None:
                    scores = np.array(scores, dtype=np.float32, copy=True)
                    scores[qi] = _NEG
                    if cand is not None:
                        scores[~cand] = _NEG
                    top, vals = topk_rows(scores[None, :], len(scores), k)
                    ok = vals[0] > _NEG
                    it, sc = top[0][ok], vals[0][ok].astype(np.float64)
                code = self._source_names.index(source)
                src = np.full(len(it), code, np.int64)
                if len(it) < k:
                    me = np.array([qi], np.int64)
                    cat = int(self.catalog_.category_codes[qi])
                    fi, fs, fc = self._top_up(ctx, it, k - len(it), me, me, np.ones(1, np.float32),
                                              chain=("category_popular", "popular"), category=cat)
                    it, sc, src = np.concatenate([it, fi]), np.concatenate([sc, fs]), np.concatenate([src, fc])
                parts_q.append(np.full(len(it), q, dtype=object))
                parts_i.append(it)
                parts_s.append(sc)
                parts_c.append(src)
                parts_r.append(np.arange(1, len(it) + 1, dtype=np.int64))
        return pd.DataFrame({
            "query_item_id": pd.array(np.concatenate(parts_q) if parts_q else [], dtype="str"),
            "item_id": pd.array(self.item_ids_[np.concatenate(parts_i)] if parts_i else [], dtype="str"),
            "score": np.concatenate(parts_s) if parts_s else np.zeros(0),
            "rank": np.concatenate(parts_r) if parts_r else np.zeros(0, np.int64),
            "source": pd.array(names[np.concatenate(parts_c)] if parts_c else [], dtype="str"),
        })

    def explain(self, customer_id: str, item_id: str, n: int = 3) -> pd.DataFrame:
        """The customer's past items that contributed most to ``item_id``'s score ("because you bought X").

        Returns DataFrame[item_id, contribution] (at most ``n`` rows, positive
        contributions, largest first); empty for customers without history.
        Unknown item ids raise UnknownIdError.
        """
        self._check_fitted()
        n = self._check_k(n)
        iidx = int(self._lookup_items([item_id], strict=True)[0])
        cidx = int(self._lookup_customers(np.asarray([customer_id], dtype=object))[0])
        hi, hw = self._history(cidx)
        contrib = np.zeros(0)
        if len(hi):
            with _blas_one_thread():
                contrib = np.asarray(self._explain_contrib(cidx, iidx, hi, hw), dtype=np.float64)
        keep = contrib > 0
        it, c = _sorted_pick(hi[keep], contrib[keep], n)
        return pd.DataFrame({"item_id": pd.array(self.item_ids_[it], dtype="str"), "contribution": c})

    # ------------------------------------------------------------------ scores for other components
    def score(self, customer_ids, item_ids) -> np.ndarray:
        """Model score of each (customer, item) pair (aligned arrays); NaN where the model has no opinion.

        Unknown customers or items give NaN. This is what a second-stage
        ranker uses as a feature for candidates from any generator.
        """
        self._check_fitted()
        cust = _id_array(customer_ids)
        its = _id_array(item_ids)
        if len(cust) != len(its):
            raise ParameterError(f"customer_ids and item_ids must have the same length ({len(cust)} != {len(its)})")
        result = np.full(len(cust), np.nan)
        cidx = self._lookup_customers(cust)
        iidx = self._lookup_items(its, strict=False)
        ok = (cidx >= 0) & (iidx >= 0)
        if not ok.any():
            return result
        cols, col_of = np.unique(iidx[ok], return_inverse=True)
        colpos = np.full(self.n_items, -1, dtype=np.int64)
        colpos[cols] = np.arange(len(cols))
        ucust, row_of = np.unique(cidx[ok], return_inverse=True)
        width = padded_width(len(cols))
        pos_ok = np.flatnonzero(ok)
        with _blas_one_thread():
            scorer = self._make_scorer(cols, width)
            for start in range(0, len(ucust), _BATCH):
                c = ucust[start:start + _BATCH]
                out = np.empty((len(c), width), dtype=np.float32)
                scorer(c, self._history_coords(c), out, colpos)
                sel = (row_of >= start) & (row_of < start + len(c))
                vals = out[row_of[sel] - start, col_of[sel]].astype(np.float64)
                vals[~np.isfinite(vals)] = np.nan
                result[pos_ok[sel]] = vals
        return result

    # ------------------------------------------------------------------ real-time updates
    def update_customer(self, customer_id: str, item_ids, timestamps=None) -> None:
        """Record a purchase event: the customer's next recommendations reflect it at once.

        Unknown customers are added (they stop being cold). ``timestamps``
        (one per item, or one for all) default to the model's current time.
        Unknown item ids raise UnknownIdError.
        """
        self._check_fitted()
        idx = self._lookup_items(item_ids, strict=True)
        if not len(idx):
            return
        ts = self._event_times(timestamps, len(idx))
        cid = str(customer_id)
        cidx = int(self._lookup_customers(np.asarray([cid], dtype=object))[0])
        if cidx < 0:
            cidx = self.n_base_customers_ + len(self._new_customers)
            self._new_customers[cid] = cidx
        hi, hw = self._history(cidx)
        add_i, add_c = np.unique(idx, return_counts=True)
        all_i = np.concatenate([hi, add_i])
        all_w = np.concatenate([np.asarray(hw, np.float32), add_c.astype(np.float32)])
        ui, inv = np.unique(all_i, return_inverse=True)
        uw = np.bincount(inv, weights=all_w, minlength=len(ui)).astype(np.float32)
        self._hist_live[cidx] = (ui.astype(np.int64), uw)
        with _blas_one_thread():
            self._update_model(cidx, idx, ts)
        latest = ts.max()
        if latest > self.now_:
            self.now_ = latest

    def _event_times(self, timestamps, n: int) -> pd.DatetimeIndex:
        if timestamps is None:
            return pd.DatetimeIndex([self.now_] * n)
        if isinstance(timestamps, (str, pd.Timestamp, np.datetime64)) or not isinstance(timestamps, Iterable):
            timestamps = [timestamps] * n
        ts = pd.to_datetime(list(timestamps))
        if ts.tz is not None:
            ts = ts.tz_convert("UTC").tz_localize(None)
        if len(ts) != n:
            raise ParameterError(f"timestamps must have one value per item ({len(ts)} != {n})")
        if ts.isna().any():
            raise ParameterError("timestamps contain missing values")
        return ts

    # ------------------------------------------------------------------ hooks with defaults
    def _make_scorer(self, cols: np.ndarray | None, width: int) -> Callable:  # pragma: no cover - abstract
        """Return ``score(c, (r, j, w), out, colpos)`` filling ``out[:, :ncols]`` (-inf = no opinion)."""
        raise NotImplementedError

    def _session_scores(self, hi: np.ndarray, hw: np.ndarray) -> np.ndarray | None:
        """Dense scores for a pseudo-customer with items ``hi`` (weights ``hw``), or None."""
        return None

    def _similar_scores(self, iidx: int) -> tuple[np.ndarray | None, str]:
        """Dense similarity of every item to ``iidx`` (-inf = none) and the source name."""
        N = self.neighbors_
        s, e = N.indptr[iidx], N.indptr[iidx + 1]
        if s == e:
            return None, "cooccurrence"
        out = np.full(self.n_items, _NEG, dtype=np.float32)
        out[N.indices[s:e]] = N.data[s:e]
        return out, "cooccurrence"

    def _explain_contrib(self, cidx: int, iidx: int, hi: np.ndarray, hw: np.ndarray) -> np.ndarray:
        """Contribution of each past item ``hi`` to the score of ``iidx`` (default: co-occurrence)."""
        if self._neighbors_csc is None:
            self._neighbors_csc = self.neighbors_.tocsc()
        col = np.asarray(self._neighbors_csc[:, [iidx]].todense()).ravel()
        col[iidx] = 1.0  # having bought the item itself explains it
        return col[hi] * np.asarray(hw, dtype=np.float64)

    def _update_model(self, cidx: int, items: np.ndarray, ts: pd.DatetimeIndex) -> None:
        """Model-specific reaction to a purchase event (the history is already updated)."""

    # ------------------------------------------------------------------ persistence
    def _model_arrays(self) -> dict[str, np.ndarray]:
        return {}

    def _load_model_arrays(self, arrays: dict[str, np.ndarray], meta: dict) -> None:
        pass

    def _model_meta(self) -> dict:
        return {}

    def save(self, directory) -> None:
        """Write the fitted model to ``directory`` (meta.json + arrays.npz; no pickle)."""
        from personalize.recommenders.io import save_recommender
        save_recommender(self, directory)

    @classmethod
    def load(cls, directory) -> "Recommender":
        """Load a model saved with :meth:`save` (must be of this class)."""
        from personalize.errors import BundleError
        from personalize.recommenders.io import load_recommender
        model = load_recommender(directory)
        if not isinstance(model, cls):
            raise BundleError(f"{directory} holds a {type(model).__name__}, not a {cls.__name__}")
        return model


# ---------------------------------------------------------------------- helpers used by several models
def _id_array(ids) -> np.ndarray:
    """One id or an iterable of ids -> object array of str (ids are strings in every vocabulary)."""
    if isinstance(ids, (str, np.str_)) or np.isscalar(ids):
        return np.array([str(ids)], dtype=object)
    arr = np.asarray(list(ids), dtype=object)
    if any(not isinstance(x, str) for x in arr):
        arr = np.array([str(x) for x in arr], dtype=object)
    return arr


def _ranks(rows: np.ndarray) -> np.ndarray:
    if not len(rows):
        return np.zeros(0, np.int64)
    starts = np.r_[0, np.flatnonzero(np.diff(rows)) + 1]
    lens = np.diff(np.r_[starts, len(rows)])
    return (np.arange(len(rows)) - np.repeat(starts, lens) + 1).astype(np.int64)


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
    pairs = np.unique(ci * n_items + ii)
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
    from implicit.nearest_neighbours import ItemItemRecommender
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


def registry() -> dict[str, type[Recommender]]:
    """kind -> class, for every recommender defined so far."""
    return dict(_REGISTRY)


def params_to_json(params: dict) -> str:
    def conv(v):
        if isinstance(v, tuple):
            return [conv(x) for x in v]
        if isinstance(v, (np.integer,)):
            return int(v)
        if isinstance(v, (np.floating,)):
            return float(v)
        return v
    return json.dumps({k: conv(v) for k, v in params.items()})
