"""The recommender contract every model follows.

A model learns from a :class:`personalize.data.Dataset` and answers on real
customer and item ids::

    m = ALS(factors=64).fit(ds)
    m.recommend(["C1", "C2"], k=10, exclude="purchased", filters=Filters(in_stock=True))
    m.recommend("C1", k=10, live=live)       # with purchases since the fit (a LiveEvents overlay)
    m.recommend_from_items(["I1", "I7"], k=10)
    m.similar_items("I1", k=10)
    m.explain("C1", "I9")
    m.save("models/als"); load_recommender("models/als")

A fitted model is immutable: nothing after ``fit`` (or ``load``) changes its
arrays. Purchases made since live in a :class:`~personalize.recommenders.live.LiveEvents`
overlay owned by the caller and passed per call.

The jobs around the model live in their own modules: id maps (``ids``),
histories and the per-call batch (``history``), the item catalog and filters
(``catalog``, ``filters``), the fallback chain (``fallback``), top-k
(``topk``), hyperparameters (``params``), the call context (``query``) and
saving (``io``). This class ties them together. Subclasses implement
``_fit`` and ``_make_scorer`` (and optionally ``_session_scores``,
``_similar_scores``, ``_explain_contrib``) and say how they become arrays
(``to_arrays`` / ``from_arrays``, extending the base's).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from personalize import _sets
from personalize.errors import BundleError, NotFittedError, ParameterError
from personalize.recommenders import io, kinds
from personalize.recommenders.catalog import ItemCatalog
from personalize.recommenders.fallback import DEFAULT_FALLBACK, FALLBACK_SOURCES, FallbackView, ItemStats
from personalize.recommenders.feedback import disliked_matrix, item_ratings, rows_of
from personalize.recommenders.filters import Filters
from personalize.recommenders.history import Batch, Histories
from personalize.recommenders.ids import IdMap, id_array
from personalize.recommenders.live import CustomerEvents, LiveEvents, vocabulary_key
from personalize._params import Params
from personalize.recommenders.query import Query, check_k, resolve_exclude
from personalize.recommenders.topk import BATCH, NEG, blas_one_thread, padded_width, ranks, sorted_pick, \
    top_of_vector, topk_rows

if TYPE_CHECKING:
    from personalize.data import Dataset

#: a scorer fills ``out[:, :ncols]`` for the customers of a batch (-inf = no opinion)
Scorer = Callable[[Batch, np.ndarray, "np.ndarray | None"], None]


class SharedFit:
    """What several models fitted on the same dataset can share: the interaction matrix, the id arrays,
    the histories, the item catalog and the fallback chain's item statistics (computed once, on first use).

    Everything it hands out is read-only fitted state, so models may hold the same objects.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self._cache: dict = {}

    def _get(self, key, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def matrix(self) -> sp.csr_matrix:
        return self._get("X", lambda: self.dataset.interaction_matrix("count"))

    def customer_ids(self) -> np.ndarray:
        return self._get("cids", lambda: np.asarray(self.dataset.customer_vocab.ids, dtype=object))

    def item_ids(self) -> np.ndarray:
        return self._get("iids", lambda: np.asarray(self.dataset.item_vocab.ids, dtype=object))

    def histories(self) -> Histories:
        return self._get("hist", lambda: Histories(self.matrix()))

    def catalog(self) -> ItemCatalog:
        return self._get("catalog", lambda: ItemCatalog.from_items(self.item_ids(), self.dataset.items))

    def item_stats(self, *, now: pd.Timestamp, trending_days: float, session_neighbors: int) -> ItemStats:
        return self._get(("stats", float(trending_days), int(session_neighbors)),
                         lambda: ItemStats.fit(self.dataset, self.histories().matrix, self.catalog(), now=now,
                                               trending_days=trending_days, session_neighbors=session_neighbors))


def fit_together(models: dict[str, "Recommender"], dataset: Dataset) -> dict[str, "Recommender"]:
    """Fit every model of ``{name: model}`` on ``dataset``, computing what they share only once.

    Same result as calling ``fit`` on each (the models are changed in place and returned).
    """
    shared = SharedFit(dataset)
    for model in models.values():
        model._fit_from(dataset, shared)
    return models


class Customers:
    """The customers of one call resolved against the model: fitted rows and live events."""

    def __init__(self, cidx: np.ndarray, events: dict[int, CustomerEvents], now_ns: int | None) -> None:
        self.cidx = cidx
        self.events = events
        self.now_ns = now_ns

    def batch(self, histories: Histories, rows: np.ndarray) -> Batch:
        """The :class:`Batch` of the call's rows ``rows`` (positions in the call)."""
        pos = {int(r): p for p, r in enumerate(rows.tolist())} if self.events else {}
        ev = {pos[r]: e for r, e in self.events.items() if r in pos}
        return histories.batch(self.cidx[rows], ev, self.now_ns)


class Recommender(Params):
    """Base class of every recommender (see the module docstring for the contract).

    Shared keyword-only hyperparameters:

    ``fallback``: the cold-start / top-up chain, a sequence drawn from
    ``("session", "category_popular", "trending", "popular")``, tried in order
    when the model has fewer than ``k`` eligible items for a customer (and for
    customers it has never seen); see :mod:`personalize.recommenders.fallback`.
    A final ``popular`` stage is always implied, so the answer has exactly
    ``k`` rows whenever ``k`` eligible items exist.
    ``trending_days``: window of the trending counts (days before the end of the data).
    ``session_neighbors``: neighbours per item in the co-occurrence matrix (0 disables the session stage).
    """

    kind: ClassVar[str] = ""
    #: what ``exclude="auto"`` means for this model
    default_exclude: ClassVar[str] = "non_repeatable"

    def __init__(self, *, fallback: Sequence[str] = DEFAULT_FALLBACK, trending_days: float = 30.0,
                 session_neighbors: int = 20) -> None:
        self.fallback = fallback
        self.trending_days = trending_days
        self.session_neighbors = session_neighbors

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            kinds.register(cls)

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
    def fit(self, dataset: Dataset) -> "Recommender":
        """Learn from ``dataset`` (a :class:`personalize.data.Dataset`); returns self."""
        return self._fit_from(dataset, None)

    def _fit_from(self, dataset: Dataset, shared: "SharedFit | None") -> "Recommender":
        """:meth:`fit`, reusing what ``shared`` already computed on the same dataset (see :func:`fit_together`)."""
        self._validate_params()
        shared = shared if shared is not None else SharedFit(dataset)
        X = shared.matrix()
        self._fit_base(dataset, X, shared)
        with threadpool_limits(1, "blas"):
            self._fit(dataset, X)
        self._post_state()
        return self

    def _fit(self, dataset: Dataset, X: sp.csr_matrix) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _fit_base(self, ds: Dataset, X: sp.csr_matrix, shared: "SharedFit | None" = None) -> None:
        shared = shared if shared is not None else SharedFit(ds)
        self.customer_ids_ = shared.customer_ids()
        self.item_ids_ = shared.item_ids()
        self.histories_ = shared.histories()
        self.catalog_ = shared.catalog()
        last = ds.last_timestamp
        self.now_ = pd.Timestamp(last) if last is not None else pd.Timestamp(0)
        self.item_stats_ = shared.item_stats(now=self.now_, trending_days=self.trending_days,
                                             session_neighbors=self.session_neighbors)
        self._fit_feedback(ds)

    def _fit_feedback(self, ds: Dataset) -> None:
        """Items rated 1-2 stars by each customer (never recommended to them) and items' mean star ratings."""
        self.disliked_ = disliked_matrix(ds, self.customer_ids_, self.item_ids_)
        rated = item_ratings(ds, self.item_ids_)
        if rated is not None:
            self.catalog_ = self.catalog_.with_ratings(*rated)

    def _post_state(self) -> None:
        """Derived lookups from the fitted arrays (after fit and load); never changes fitted state."""
        self.customer_map_ = IdMap(self.customer_ids_, "customer")
        self.item_map_ = IdMap(self.item_ids_, "item")
        self._vocab_key: str | None = None
        self._source_names = [self.source, *FALLBACK_SOURCES, "cooccurrence"]

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "item_ids_")

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit(dataset) or load a saved model first")

    # ------------------------------------------------------------------ fitted state shared by every model
    @property
    def n_items(self) -> int:
        return len(self.item_ids_)

    @property
    def popularity_(self) -> np.ndarray:
        """Distinct customers who bought each item (the ``popular`` fallback's score)."""
        return self.item_stats_.popularity

    @property
    def trending_(self) -> np.ndarray:
        return self.item_stats_.trending

    @property
    def user_items_(self) -> sp.csr_matrix:
        return self.histories_.matrix

    # ------------------------------------------------------------------ call context
    def _query(self, customers, k, exclude, items, filters, live) -> Query:
        return Query(customers=customers, k=check_k(k), exclude=resolve_exclude(exclude, self.default_exclude),
                     candidates=self._candidate_mask(items, filters), filters=Filters.coerce(filters),
                     live=self._check_live(live))

    def _check_live(self, live: LiveEvents | None) -> LiveEvents | None:
        if live is None:
            return None
        if not isinstance(live, LiveEvents):
            raise ParameterError(f"live must be a LiveEvents overlay or None, got {type(live).__name__}")
        if live.items.ids is not self.item_ids_:
            if self._vocab_key is None:  # computed once per model
                self._vocab_key = vocabulary_key(self.item_ids_)
            if live.key != self._vocab_key:
                raise ParameterError("live events were recorded for another item vocabulary than this model's "
                                     "(make the overlay with LiveEvents.for_model(model))")
        return live

    def _resolve(self, ids: np.ndarray, live: LiveEvents | None) -> Customers:
        """Fitted rows of ``ids`` and the live events of those who have any."""
        cidx = self.customer_map_.lookup(ids)
        events: dict[int, CustomerEvents] = {}
        if live is not None and len(live):
            for p, cid in enumerate(ids.tolist()):
                if cid in live:
                    ev = live.events(cid)
                    if ev is not None and len(ev.items):
                        events[p] = ev
        # live purchases move the model's clock (repurchase recency) for every customer of the call
        return Customers(cidx, events, live.latest_ns if live is not None else None)

    def _candidate_mask(self, items, filters) -> np.ndarray | None:
        filters = Filters.coerce(filters)
        mask = None
        if filters is not None and not filters.is_empty():
            mask = self.catalog_.mask(filters)
        if items is not None:
            idx = self.item_map_.lookup(id_array(items))
            allowed = np.zeros(self.n_items, dtype=bool)
            allowed[idx[idx >= 0]] = True
            mask = allowed if mask is None else (mask & allowed)
        return mask

    def _excluded(self, j: np.ndarray, exclude: str) -> np.ndarray:
        """Which history items ``j`` the exclusion mode drops."""
        if exclude == "none":
            return np.zeros(len(j), dtype=bool)
        if exclude == "purchased":
            return np.ones(len(j), dtype=bool)
        return ~self.catalog_.repeatable[j]

    # ------------------------------------------------------------------ recommend
    def recommend(self, customer_ids, k: int = 10, *, exclude: str | None = "auto", items=None,
                  filters: Filters | dict | None = None, live: LiveEvents | None = None) -> pd.DataFrame:
        """Top-``k`` items for one customer id or many.

        Returns DataFrame[customer_id, item_id, score, rank, source], customers
        in input order, rank 1..k. ``exclude``: ``"purchased"`` drops every item
        the customer bought, ``"non_repeatable"`` only those not flagged
        ``repeatable`` in the items table, ``"none"`` (or None) drops nothing;
        ``"auto"`` (the default) is the model's ``default_exclude``. ``items``
        restricts the answer to a candidate list; ``filters`` applies business
        rules; ``live`` adds the purchases recorded since the model was fitted.
        Unknown customers get the fallback chain; ``source`` names what
        produced each row.
        """
        ids = id_array(customer_ids)
        rows, item, score, src = self.recommend_indices(ids, k, exclude=exclude, items=items, filters=filters,
                                                        live=live)
        names = np.asarray(self._source_names, dtype=object)
        return pd.DataFrame({
            "customer_id": ids[rows],
            "item_id": self.item_ids_[item],
            "score": score.astype(np.float64),
            "rank": ranks(rows),
            "source": names[src],
        }, copy=False)

    def recommend_indices(self, customer_ids, k: int = 10, *, exclude: str | None = "auto", items=None,
                          filters: Filters | dict | None = None, live: LiveEvents | None = None):
        """:meth:`recommend` as arrays, for bulk callers (e.g. the candidate table): ``(row, item, score, source)``
        -- the position in ``customer_ids``, the index in ``item_ids_``, the score and the index in
        ``source_names_`` -- grouped by row in input order, best first."""
        self._check_fitted()
        ids = id_array(customer_ids)
        query = self._query(ids, k, exclude, items, filters, live)
        with blas_one_thread():
            return self._recommend_core(query, self._resolve(ids, query.live))

    @property
    def source_names_(self) -> list[str]:
        """What each source code of :meth:`recommend_indices` means (the ``source`` of :meth:`recommend`)."""
        self._check_fitted()
        return list(self._source_names)

    def _recommend_core(self, query: Query, customers: Customers):
        """Core of :meth:`recommend` on indices: (row, item, score, source code) arrays, grouped by row."""
        n = self.n_items
        k, exclude, cand = query.k, query.exclude, query.candidates
        view = FallbackView(self.item_stats_, self._chain(), cand)
        cols = None if cand is None else np.flatnonzero(cand)
        ncols = n if cols is None else len(cols)
        colpos = None
        if cols is not None:
            colpos = np.full(n, -1, dtype=np.int64)
            colpos[cols] = np.arange(ncols)
        cidx = customers.cidx
        disliked = getattr(self, "disliked_", None)
        if not ncols or not len(cidx):  # nothing is eligible (or nobody asked)
            z = np.zeros(0, np.int64)
            return z, z, np.zeros(0), z
        # a customer with no purchase, in the training data or live, is cold: the model has no opinion on
        # them (e.g. in the vocabulary but first buying after a time split), so they get the fallback chain
        warm = self.histories_.has_history(cidx)
        if customers.events:
            warm[np.fromiter(customers.events, np.int64, len(customers.events))] = True
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []  # (row, item, score, source)
        known = np.flatnonzero(warm)
        width = padded_width(ncols)
        scorer = self._make_scorer(query, cols, width) if known.size else None
        buf = np.empty((min(BATCH, len(known)), width), dtype=np.float32) if known.size else None
        for start in range(0, len(known), BATCH):
            chunk = known[start:start + BATCH]
            batch = customers.batch(self.histories_, chunk)
            r, j, _w = batch.hist
            out = buf[:len(chunk)]  # one buffer for every block: no page faults per block
            scorer(batch, out, colpos)
            if width > ncols:
                out[:, ncols:] = NEG
            if exclude != "none" and len(j):
                ex = self._excluded(j, exclude)
                er, ej = r[ex], j[ex]
                if colpos is not None:
                    ej = colpos[ej]
                    keep = ej >= 0
                    er, ej = er[keep], ej[keep]
                out[er, ej] = NEG
            if disliked is not None:  # rated 1-2 stars: never again, whatever the exclusion mode
                dr, dj = rows_of(disliked, cidx[chunk])
                if colpos is not None:
                    dj = colpos[dj]
                    dr, dj = dr[dj >= 0], dj[dj >= 0]
                out[dr, dj] = NEG
            top, vals = topk_rows(out, ncols, k)
            items_top = top if cols is None else cols[top]
            ok = vals > NEG
            kk = vals.shape[1]
            full = ok.all(axis=1) & (kk >= k)
            if full.any():  # the common case, vectorized: the model filled all k slots
                fr = np.flatnonzero(full)
                parts.append((np.repeat(chunk[fr], kk), items_top[fr].ravel(), vals[fr].ravel().astype(np.float64),
                              np.zeros(len(fr) * kk, np.int64)))
            short = np.flatnonzero(~full)
            if not query.top_up and len(short):  # the model's own items only, vectorized
                own = ok[short]
                parts.append((np.repeat(chunk[short], own.sum(1)), items_top[short][own],
                              vals[short][own].astype(np.float64), np.zeros(int(own.sum()), np.int64)))
                short = short[:0]
            for p in short:  # top up from the fallback chain
                it, sc = items_top[p][ok[p]], vals[p][ok[p]].astype(np.float64)
                hi, hw = batch.history(int(p))
                excluded = hi[self._excluded(hi, exclude)]
                if disliked is not None:
                    excluded = _sets.union1d(excluded, rows_of(disliked, cidx[chunk[p:p + 1]])[1])
                fi, fs, fsrc = view.top_up(it, k - len(it), excluded, hi, hw)
                n_p = len(it) + len(fi)
                parts.append((np.full(n_p, chunk[p], np.int64), np.concatenate([it, fi]), np.concatenate([sc, fs]),
                              np.concatenate([np.zeros(len(it), np.int64), fsrc])))
        cold_rows = np.flatnonzero(~warm) if query.top_up else np.zeros(0, np.int64)
        if len(cold_rows) and disliked is not None:  # cold, but rated items 1-2 stars: their own top-up
            dr, dj = rows_of(disliked, cidx[cold_rows])
            empty = np.zeros(0, np.int64)
            for r in _sets.unique(dr):
                ci, cs, cc = view.top_up(empty, k, _sets.unique(dj[dr == r]), empty, np.zeros(0, np.float32))
                parts.append((np.full(len(ci), cold_rows[r], np.int64), ci, cs, cc))
            cold_rows = _sets.setdiff1d(cold_rows, cold_rows[_sets.unique(dr)])
        if len(cold_rows):  # every cold customer gets the same chain (no history, no session)
            empty = np.zeros(0, np.int64)
            ci, cs, cc = view.top_up(empty, k, empty, empty, np.zeros(0, np.float32))
            m = len(ci)
            parts.append((np.repeat(cold_rows, m), np.tile(ci, len(cold_rows)), np.tile(cs, len(cold_rows)),
                          np.tile(cc, len(cold_rows))))
        if not parts:
            z = np.zeros(0, np.int64)
            return z, z, np.zeros(0), z
        rows = np.concatenate([q[0] for q in parts]).astype(np.int64)
        order = np.argsort(rows, kind="stable")
        item = np.concatenate([q[1] for q in parts]).astype(np.int64)[order]
        score = np.concatenate([q[2] for q in parts]).astype(np.float64)[order]
        src = np.concatenate([q[3] for q in parts]).astype(np.int64)[order]
        return rows[order], item, score, src

    # ------------------------------------------------------------------ session / similar / explain
    def recommend_from_items(self, item_ids, k: int = 10, *, items=None,
                             filters: Filters | dict | None = None) -> pd.DataFrame:
        """Top-``k`` items for a shopper known only by ``item_ids`` (session or cart).

        Returns DataFrame[item_id, score, rank, source]. The given items are
        not recommended back; ids unknown to the model are ignored.
        """
        self._check_fitted()
        k = check_k(k)
        idx = self.item_map_.lookup(id_array(item_ids))
        idx = idx[idx >= 0]
        hi, counts = np.unique(idx, return_counts=True)
        hw = counts.astype(np.float32)
        cand = self._candidate_mask(items, filters)
        view = FallbackView(self.item_stats_, self._chain(), cand)
        it, sc = np.zeros(0, np.int64), np.zeros(0)
        with blas_one_thread():
            scores = self._session_scores(hi, hw) if len(hi) else None
            if scores is not None:
                it, sc = top_of_vector(scores, k, hi, cand)
            src = np.zeros(len(it), np.int64)
            if len(it) < k:
                fi, fs, fc = view.top_up(it, k - len(it), hi, hi, hw)
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
        k = check_k(k)
        qids = id_array(item_ids)
        qidx = self.item_map_.lookup_strict(qids)
        cand = self._candidate_mask(None, filters)
        view = FallbackView(self.item_stats_, self._chain(), cand)
        names = np.asarray(self._source_names, dtype=object)
        parts_q, parts_i, parts_s, parts_c, parts_r = [], [], [], [], []
        with blas_one_thread():
            for q, qi in zip(qids, qidx):
                scores, source = self._similar_scores(int(qi))
                it, sc = np.zeros(0, np.int64), np.zeros(0)
                me = np.array([qi], np.int64)
                if scores is not None:
                    it, sc = top_of_vector(scores, k, me, cand)
                src = np.full(len(it), self._source_names.index(source), np.int64)
                if len(it) < k:
                    cat = int(self.catalog_.category_codes[qi])
                    fi, fs, fc = view.top_up(it, k - len(it), me, me, np.ones(1, np.float32),
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

    def explain(self, customer_id: str, item_id: str, n: int = 3, *, live: LiveEvents | None = None) -> pd.DataFrame:
        """The customer's past items that contributed most to ``item_id``'s score ("because you bought X").

        Returns DataFrame[item_id, contribution] (at most ``n`` rows, positive
        contributions, largest first); empty for customers without history.
        Unknown item ids raise UnknownIdError.
        """
        self._check_fitted()
        n = check_k(n, "n")
        iidx = int(self.item_map_.lookup_strict([item_id])[0])
        batch = self._resolve(id_array([customer_id]), self._check_live(live)).batch(self.histories_,
                                                                                      np.zeros(1, np.int64))
        hi, hw = batch.history(0)
        contrib = np.zeros(0)
        if len(hi):
            with blas_one_thread():
                contrib = np.asarray(self._explain_contrib(batch, iidx, hi, hw), dtype=np.float64)
        keep = contrib > 0
        it, c = sorted_pick(hi[keep], contrib[keep], n)
        return pd.DataFrame({"item_id": pd.array(self.item_ids_[it], dtype="str"), "contribution": c})

    # ------------------------------------------------------------------ scores for other components
    def score(self, customer_ids, item_ids, *, live: LiveEvents | None = None) -> np.ndarray:
        """Model score of each (customer, item) pair (aligned arrays); NaN where the model has no opinion.

        Unknown customers or items give NaN. This is what a second-stage
        ranker (or an offer model's affinity feature) uses for candidates
        from any generator.
        """
        self._check_fitted()
        cust = id_array(customer_ids)
        its = id_array(item_ids)
        if len(cust) != len(its):
            raise ParameterError(f"customer_ids and item_ids must have the same length ({len(cust)} != {len(its)})")
        result = np.full(len(cust), np.nan)
        ucust, row_of = np.unique(cust, return_inverse=True)
        resolved = self._resolve(ucust, self._check_live(live))
        iidx = self.item_map_.lookup(its)
        warm = self.histories_.has_history(resolved.cidx)
        if resolved.events:
            warm[np.fromiter(resolved.events, np.int64, len(resolved.events))] = True
        ok = warm[row_of] & (iidx >= 0)
        if not ok.any():
            return result
        cols, col_of = np.unique(iidx[ok], return_inverse=True)
        colpos = np.full(self.n_items, -1, dtype=np.int64)
        colpos[cols] = np.arange(len(cols))
        rows_ok = row_of[ok]
        users, user_of = np.unique(rows_ok, return_inverse=True)
        width = padded_width(len(cols))
        pos_ok = np.flatnonzero(ok)
        query = Query(customers=ucust, k=1, exclude="none", candidates=None)
        with blas_one_thread():
            scorer = self._make_scorer(query, cols, width)
            for start in range(0, len(users), BATCH):
                block = users[start:start + BATCH]
                out = np.empty((len(block), width), dtype=np.float32)
                scorer(resolved.batch(self.histories_, block), out, colpos)
                sel = (user_of >= start) & (user_of < start + len(block))
                vals = out[user_of[sel] - start, col_of[sel]].astype(np.float64)
                vals[~np.isfinite(vals)] = np.nan
                result[pos_ok[sel]] = vals
        return result

    # ------------------------------------------------------------------ hooks with defaults
    def _make_scorer(self, query: Query, cols: np.ndarray | None, width: int) -> Scorer:  # pragma: no cover
        """Return ``score(batch, out, colpos)`` filling ``out[:, :ncols]`` for the batch (-inf = no opinion).

        ``cols`` are the eligible items (None = all) and ``colpos`` maps an item
        to its column (-1 = not eligible).
        """
        raise NotImplementedError

    def _session_scores(self, hi: np.ndarray, hw: np.ndarray) -> np.ndarray | None:
        """Dense scores for a pseudo-customer with items ``hi`` (weights ``hw``), or None."""
        return None

    def _similar_scores(self, iidx: int) -> tuple[np.ndarray | None, str]:
        """Dense similarity of every item to ``iidx`` (-inf = none) and the source name."""
        N = self.item_stats_.neighbors
        s, e = N.indptr[iidx], N.indptr[iidx + 1]
        if s == e:
            return None, "cooccurrence"
        out = np.full(self.n_items, NEG, dtype=np.float32)
        out[N.indices[s:e]] = N.data[s:e]
        return out, "cooccurrence"

    def _explain_contrib(self, batch: Batch, iidx: int, hi: np.ndarray, hw: np.ndarray) -> np.ndarray:
        """Contribution of each past item ``hi`` to the score of ``iidx`` (default: co-occurrence)."""
        col = self.item_stats_.neighbor_column(iidx)
        col[iidx] = 1.0  # having bought the item itself explains it
        return col[hi] * np.asarray(hw, dtype=np.float64)

    # ------------------------------------------------------------------ arrays (see personalize.recommenders.io)
    def to_arrays(self) -> dict[str, np.ndarray]:
        """The fitted state as numpy arrays (subclasses add theirs to the base's)."""
        return {"customer_ids": self.customer_map_.to_array(), "item_ids": self.item_map_.to_array(),
                **(io.csr_to_arrays("disliked", self.disliked_) if getattr(self, "disliked_", None) is not None
                   else {}),
                **io.csr_to_arrays("history", self.histories_.matrix),
                **self.item_stats_.to_arrays(),
                **{f"catalog_{k}": v for k, v in self.catalog_.to_arrays().items()}}

    def to_meta(self) -> dict[str, Any]:
        """Scalars that go into meta.json beside the hyperparameters."""
        return {"now": self.now_.isoformat(), "n_customers": int(len(self.customer_ids_)),
                "n_items": int(len(self.item_ids_))}

    def parts(self) -> dict[str, "Recommender"]:
        """Sub-models saved as their own bundles (TwoStage's generators)."""
        return {}

    def to_files(self) -> dict[str, str]:
        """Text artifacts saved as files in their own format (e.g. LightGBM text models)."""
        return {}

    @classmethod
    def from_arrays(cls, saved: io.SavedModel, *, params: dict) -> "Recommender":
        """Rebuild a fitted model from what :meth:`to_arrays`, :meth:`to_files`, :meth:`to_meta` and
        :meth:`parts` saved."""
        params = dict(params)
        if isinstance(params.get("fallback"), list):
            params["fallback"] = tuple(params["fallback"])
        model = cls(**params)
        model._set_arrays(saved)
        model._post_state()
        return model

    def _set_arrays(self, saved: io.SavedModel) -> None:
        a, meta = saved.arrays, saved.meta
        self.customer_ids_ = a["customer_ids"].astype(object)
        self.item_ids_ = a["item_ids"].astype(object)
        self.histories_ = Histories(io.csr_from_arrays("history", a))
        self.catalog_ = ItemCatalog.from_arrays(self.item_ids_, {k[len("catalog_"):]: v for k, v in a.items()
                                                                 if k.startswith("catalog_")})
        self.item_stats_ = ItemStats.from_arrays(a, self.catalog_)
        self.disliked_ = io.csr_from_arrays("disliked", a) if "disliked_indptr" in a else None
        self.now_ = pd.Timestamp(meta["now"])

    def save(self, directory) -> None:
        """Write the fitted model to ``directory`` (meta.json + arrays.npz; no pickle)."""
        io.save_recommender(self, directory)

    @classmethod
    def load(cls, directory) -> "Recommender":
        """Load a model saved with :meth:`save` (must be of this class)."""
        model = io.load_recommender(directory)
        if not isinstance(model, cls):
            raise BundleError(f"{directory} holds a {type(model).__name__}, not a {cls.__name__}")
        return model
