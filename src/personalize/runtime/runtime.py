"""What the service does, as library calls over one loaded bundle.

:class:`Runtime` wraps a verified :class:`~personalize.store.Bundle` and
answers recommendations, session recommendations, similar items, profiles,
churn risk and audience exports. The HTTP layer only parses, calls one of
these methods and serializes.

Recommendations read the bundle's precomputed
:class:`~personalize.recommenders.CandidateTable` and filter it with the
request's :class:`~personalize.recommenders.Filters` and exclusion mode; when
fewer than ``k`` candidates survive and the list was cut short, the
recommender itself is asked with the same rules.

Live state has one owner: the runtime's :class:`~personalize.recommenders.LiveEvents`
overlay (``self.live``). Purchase events go there (never into the fitted
models, which stay as published); a customer with live events is answered by
the recommender with the overlay, and that answer is cached until the
customer's next event, in a :class:`LiveRowCache` (an LRU over one
preallocated block of :data:`LIVE_CACHE_SIZE` candidate lists, so a worker's
memory does not creep as it fills).

Privacy rules hold in every answer, in one place:

* **Erased customers** (the store's erasure list, :meth:`set_erasures`) are
  unknown: recommendations get the cold answer, profile and churn risk are
  404, audiences never list them, their live events are dropped.
* **Personalization opt-out** (``consent_personalization`` false in the
  customer table) gets non-personal answers: the popular / trending list,
  with ``source`` ``"<stage>:opt_out"`` saying why.

Feedback and points (:class:`~personalize.runtime.loyalty.LoyaltyDesk`):
feedback and points events update the profile's satisfaction and points
sections and the audience filters at once, and an item a customer rated 1-2
stars is never in her recommendations again, from any path (precomputed,
live, fallback).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from personalize import _sets
from personalize._json import json_scalar
from personalize.churn.scoring import split_reasons
from personalize.customers import audience_columns, audience_mask, audience_page, consent_column, page_of
from personalize.customers.consent import AUDIENCE_CHANNEL, opted_out_ids
from personalize.errors import DataError, MissingComponentError, PersonalizeError, UnknownIdError
from personalize.recommenders import CandidateTable, Filters, LiveEvents, Recommender
from personalize.recommenders.query import resolve_exclude
from personalize.store import Bundle
from personalize.runtime.loyalty import LoyaltyDesk
from personalize.runtime.offers import OfferDesk
from personalize.runtime.relevance import Relevance
from personalize.store.events import Erasures

__all__ = ["Runtime", "Recommendations"]

#: profile sections: response key -> {response field: customer-table column}
_RFM_FIELDS = {"R": "R", "F": "F", "M": "M", "score": "rfm", "recency_days": "recency_days", "orders": "orders",
               "monetary": "monetary"}
_CLV_FIELDS = {"clv": "clv", "clv_simple": "clv_simple", "p_alive": "p_alive",
               "expected_purchases": "expected_purchases", "expected_spend": "expected_spend",
               "status": "clv_status", "note": "clv_note"}
#: customers whose live candidate list is kept (the rest are recomputed on their next request)
LIVE_CACHE_SIZE = 4096
#: suffix of ``source`` for the non-personal answers given to customers who opted out of personalization
OPT_OUT = ":opt_out"
_EMPTY_I = np.zeros(0, dtype=np.int32)
log = logging.getLogger(__name__)


@dataclass
class Recommendations:
    customer_id: str | None
    items: list[dict]
    fallback: bool
    model_version: str
    note: str | None = None


def _utc_now() -> pd.Timestamp:
    """Now, to the second, as the naive UTC time every stored timestamp uses."""
    return pd.Timestamp(int(time.time()) * 1_000_000_000)


def _py(v: Any) -> Any:
    """A customer-table cell as a JSON value; anything else that is not plain JSON becomes its text."""
    v = json_scalar(v)
    return v if v is None or isinstance(v, (str, int, float, bool)) else str(v)


_LOYALTY_FILTERS = ("detractor", "open_complaints", "unhappy", "min_points", "points_expiring_within_days")


def _uses_loyalty(filters: dict, fields: Sequence[str] | None) -> bool:
    """Whether an audience request reads feedback or points columns (then they are made live first)."""
    from personalize.analytics.points import POINTS_COLUMNS
    from personalize.analytics.satisfaction import FEEDBACK_COLUMNS

    cols = set(FEEDBACK_COLUMNS) | set(POINTS_COLUMNS)
    return any(filters.get(k) is not None for k in _LOYALTY_FILTERS) or bool(fields and cols & set(fields)) \
        or filters.get("score") in cols


def _filters(categories: Sequence[str] | None, in_stock: bool | None) -> Filters | None:
    if not categories and not in_stock:
        return None
    return Filters(categories=list(categories) if categories else None, in_stock=True if in_stock else None)


class LiveRowCache:
    """The live candidate lists of the most recently served customers with live events (LRU).

    One block of ``slots`` rows of ``width`` candidates (item position, score, source code), allocated and
    written through when the first row is stored: however many customers come and go, the cache holds the
    same memory (no array or Python object per entry beyond the id and its slot), so a worker's memory
    does not creep as it fills. Reads return copies (a slot is reused once its customer is evicted).
    Not thread-safe by itself: the runtime calls it under its lock.
    """

    def __init__(self, slots: int, width: int) -> None:
        self.slots = int(slots)
        self.width = int(width)
        self._where: OrderedDict[str, tuple[int, int]] = OrderedDict()  # id -> (slot, stamp), oldest first
        self._free: list[int] = []
        self._items: np.ndarray | None = None

    def _allocate(self) -> None:
        shape = (self.slots, self.width)
        self._items = np.empty(shape, np.int32)
        self._scores = np.empty(shape, np.float32)
        self._sources = np.empty(shape, np.int8)
        self._len = np.empty(self.slots, np.int32)
        for a in (self._items, self._scores, self._sources, self._len):
            a.fill(0)  # touch every page now: the block is resident from the start, not as it fills
        self._free = list(range(self.slots - 1, -1, -1))

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, customer_id: object) -> bool:
        return customer_id in self._where

    @property
    def nbytes(self) -> int:
        if self._items is None:
            return 0
        return int(self._items.nbytes + self._scores.nbytes + self._sources.nbytes + self._len.nbytes)

    def get(self, customer_id: str, stamp: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The stored row of ``customer_id`` if it was stored at ``stamp`` (copies), else None."""
        hit = self._where.get(customer_id)
        if hit is None or hit[1] != stamp:
            return None
        self._where.move_to_end(customer_id)
        slot, n = hit[0], int(self._len[hit[0]])
        return self._items[slot, :n].copy(), self._scores[slot, :n].copy(), self._sources[slot, :n].copy()

    def put(self, customer_id: str, stamp: int, items: np.ndarray, scores: np.ndarray, sources: np.ndarray) -> None:
        if self.slots < 1:
            return
        if self._items is None:
            self._allocate()
        hit = self._where.pop(customer_id, None)
        if hit is not None:
            slot = hit[0]
        elif self._free:
            slot = self._free.pop()
        else:
            _, (slot, _) = self._where.popitem(last=False)
        n = min(len(items), self.width)
        self._items[slot, :n] = items[:n]
        self._scores[slot, :n] = scores[:n]
        self._sources[slot, :n] = sources[:n]
        self._len[slot] = n
        self._where[customer_id] = (slot, int(stamp))

    def pop(self, customer_id: str) -> None:
        hit = self._where.pop(customer_id, None)
        if hit is not None:
            self._free.append(hit[0])


class Runtime:
    """One loaded bundle plus the live overlay of events received since it was published."""

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self.version = bundle.version
        self.manifest = bundle.manifest
        self.model: Recommender | None = bundle.get("recommender")
        self.popular: Recommender | None = bundle.get("popular")
        cands = bundle.get("candidates")
        if cands is None and self.model is None:
            raise PersonalizeError(f"bundle {bundle.version} has neither a recommender nor candidates")
        self.cands: CandidateTable | None = cands
        self.relevance = Relevance.from_candidates(cands)
        vocab = cands.item_ids if cands is not None else self.model.item_ids_
        self.live = LiveEvents(self.model.item_map_ if self.model is not None else vocab)
        self._cache = LiveRowCache(LIVE_CACHE_SIZE, cands.n if cands is not None else 0)
        self._lock = threading.Lock()
        self.update_failures = 0
        self._tls = threading.local()
        self.customers = self._prepare_customers(bundle.get("customers"))
        self._cust_row = pd.Index(self.customers["customer_id"]) if self.customers is not None else None
        self.churn_model = bundle.get("churn")
        self.churn_info: dict = dict(((self.manifest.get("extra") or {}).get("churn")) or {})
        self.has_churn = self.customers is not None and "churn_risk" in self.customers.columns
        self.as_of = self.churn_info.get("as_of") or self._data_end(self.manifest)
        self.opted_out = opted_out_ids(self.customers)
        self.desk = OfferDesk(bundle.get("offers"), bundle.get("coupons"))
        self.loyalty = LoyaltyDesk(bundle.get("feedback"), bundle.get("points_lots"),
                                   points_info=(self.manifest.get("extra") or {}).get("points"), as_of=self.as_of)
        self.erasures = Erasures("", ())
        self._erased_rows = np.zeros(len(self.customers) if self.customers is not None else 0, dtype=bool)
        self._row_digests: np.ndarray | None = None  # 8-byte prefixes of every table id's salted hash, sorted
        self._row_digest_order: np.ndarray | None = None
        self._row_salt: str | None = None

    # ------------------------------------------------------------------ privacy
    def set_erasures(self, erasures: Erasures) -> None:
        """Adopt the store's erasure list: those customers are unknown from now on, in every answer."""
        self.erasures = erasures
        for h in erasures.hashes:
            self._erase_row_by_digest(h)

    def _erase_row_by_digest(self, digest: str) -> None:
        if self.customers is None or not len(self.customers):
            return
        if self._row_digests is None or self._row_salt != self.erasures.salt:
            ids = self.customers["customer_id"].to_numpy(dtype=object)
            prefixes = np.fromiter((int(self.erasures.digest(str(c))[:16], 16) for c in ids), dtype=np.uint64,
                                   count=len(ids))
            self._row_digest_order = np.argsort(prefixes, kind="stable")
            self._row_digests = prefixes[self._row_digest_order]
            self._row_salt = self.erasures.salt
        key = np.uint64(int(digest[:16], 16))
        lo = int(np.searchsorted(self._row_digests, key, side="left"))
        hi = int(np.searchsorted(self._row_digests, key, side="right"))
        for p in self._row_digest_order[lo:hi]:
            if self.erasures.digest(str(self.customers["customer_id"].iat[int(p)])) == digest:
                self._erased_rows[int(p)] = True

    def is_erased(self, customer_id: str) -> bool:
        return customer_id in self.erasures

    def forget(self, customer_id: str) -> None:
        """Drop a customer's live state (the erasure list itself comes through :meth:`set_erasures`)."""
        self.live.forget(customer_id)
        self.desk.live.forget(customer_id)
        self.loyalty.forget(customer_id)
        with self._lock:
            self._cache.pop(customer_id)

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _data_end(manifest: dict) -> str | None:
        """Midnight after the last transaction day: the ``as_of`` of the customer table."""
        last = (manifest.get("data") or {}).get("last_timestamp")
        if not last:
            return None
        try:
            return (pd.Timestamp(last).normalize() + pd.Timedelta(days=1)).isoformat()
        except (TypeError, ValueError):
            return None

    def _scratch(self) -> np.ndarray:
        """An all-False boolean array over the catalog, one per thread (callers restore it to all-False)."""
        flag = getattr(self._tls, "flag", None)
        if flag is None:
            flag = self._tls.flag = np.zeros(len(self.cands.item_ids), dtype=bool)
        return flag

    @staticmethod
    def _prepare_customers(df: pd.DataFrame | None) -> pd.DataFrame | None:
        if df is None:
            return None
        if "customer_id" not in df:
            raise PersonalizeError("customers table in bundle has no customer_id column")
        df = df.assign(customer_id=df["customer_id"].astype(str))
        return df.sort_values("customer_id", kind="stable").reset_index(drop=True)

    def _live_row(self, customer_id: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Candidates (items, scores, sources) and purchases of a customer with live events (cached)."""
        t = self.cands
        stamp = self.live.count(customer_id)
        with self._lock:
            hit = self._cache.get(customer_id, stamp)
        if hit is not None:
            return (*hit, self._bought(customer_id))
        items, scores, sources = t.cold_items, t.cold_scores, t.cold_sources
        if self.model is not None:
            try:
                df = self.model.recommend(customer_id, k=t.n, exclude="none", live=self.live)
            except Exception as exc:  # noqa: BLE001 - the event is stored; keep serving the fitted list
                log.warning("live scoring failed (%s); serving the published list", type(exc).__name__)
                self.update_failures += 1
                pos = t.customer_pos.get(customer_id)
                if pos is not None:
                    items, scores, sources = t.items[pos], t.scores[pos], t.sources[pos]
            else:
                pos = t.item_index.get_indexer(df["item_id"].astype(str))
                ok = pos >= 0
                items = pos[ok].astype(np.int32)
                scores = df["score"].to_numpy(dtype=np.float32)[ok]
                names = df["source"].astype(str).to_numpy()[ok]
                with self._lock:
                    for s in pd.unique(names):
                        if s not in t.source_names:
                            t.source_names.append(s)
                sources = pd.Index(t.source_names).get_indexer(names).astype(np.int8)
        with self._lock:
            self._cache.put(customer_id, stamp, items, scores, sources)
        return items, scores, sources, self._bought(customer_id)

    def _bought(self, customer_id: str) -> np.ndarray:
        """Items the customer bought: in the training data and since (live)."""
        t = self.cands
        pos = t.customer_pos.get(customer_id)
        base = t.bought(pos) if pos is not None else _EMPTY_I
        ev = self.live.events(customer_id)
        if ev is None or not len(ev.items):
            return base
        return _sets.union1d(base, ev.items).astype(np.int32)

    def _row(self, customer_id: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool, bool]:
        """(items, scores, sources, bought, known, full) for a customer."""
        t = self.cands
        if customer_id in self.live:
            items, scores, sources, bought = self._live_row(customer_id)
            return items, scores, sources, bought, True, bool(items.size >= t.n)
        pos = t.customer_pos.get(customer_id)
        if pos is None:
            return t.cold_items, t.cold_scores, t.cold_sources, _EMPTY_I, False, bool(t.cold_items.size >= t.n)
        items = t.items[pos]
        bought = t.bought(pos)
        return items, t.scores[pos], t.sources[pos], bought, bought.size > 0, bool(items[-1] >= 0)

    def _frame_items(self, df: pd.DataFrame, k: int) -> list[dict]:
        df = df.head(k)
        return [{"item_id": str(i), "score": float(s), "rank": r + 1, "source": str(src)}
                for r, (i, s, src) in enumerate(zip(df["item_id"].tolist(), df["score"].tolist(),
                                                    df["source"].tolist()))]

    # ------------------------------------------------------------------ recommendations
    def recommend(self, customer_id: str, k: int = 10, *, categories: Sequence[str] | None = None,
                  in_stock: bool | None = None, exclude: str = "purchased") -> Recommendations:
        """Top-``k`` items for a customer; unknown customers get the fallback list (``fallback=True``). Items the
        customer rated 1-2 stars are never among them."""
        blocked = self._disliked(customer_id)
        if not blocked:
            return self._recommend(customer_id, k, categories=categories, in_stock=in_stock, exclude=exclude)
        rec = self._recommend(customer_id, k + len(blocked), categories=categories, in_stock=in_stock,
                              exclude=exclude)
        items = [dict(it, rank=r + 1) for r, it in enumerate(i for i in rec.items if i["item_id"] not in blocked)]
        return dataclasses.replace(rec, items=items[:k])

    def _disliked(self, customer_id: str) -> set[str]:
        """Items the customer rated 1-2 stars: since the bundle (live) and, for the answers the model does not
        filter itself (opted out of personalization: the non-personal list), in the bundle's data."""
        if self.is_erased(customer_id):
            return set()
        out = self.loyalty.dislikes(customer_id)
        disliked = getattr(self.model, "disliked_", None) if self.model is not None else None
        if disliked is not None and customer_id in self.opted_out:
            row = self.model.customer_map_.lookup(np.array([customer_id], dtype=object))[0]
            if row >= 0:
                cols = disliked.indices[disliked.indptr[row]:disliked.indptr[row + 1]]
                out = out | {str(i) for i in self.model.item_ids_[cols].tolist()}
        return out

    def _recommend(self, customer_id: str, k: int = 10, *, categories: Sequence[str] | None = None,
                   in_stock: bool | None = None, exclude: str = "purchased") -> Recommendations:
        exclude = resolve_exclude(exclude)
        if k < 1:
            raise PersonalizeError(f"k must be at least 1, got {k}")
        self._check_categories(categories)
        filters = _filters(categories, in_stock)
        if self.is_erased(customer_id):
            return self._narrow(self._cold(None, k, filters, customer_id), k, filters, ())
        if customer_id in self.opted_out:
            return self._narrow(self._cold(OPT_OUT, k, filters, customer_id), k, filters, (), suffix=OPT_OUT)
        if self.cands is None:
            return self._recommend_live(customer_id, k, filters, exclude, known=None)
        rec = self._recommend_known(customer_id, k, filters, exclude)
        if filters is None or len(rec.items) >= k:
            return rec
        bought = self._bought(customer_id) if exclude != "none" else ()
        return self._narrow(rec, k, filters, bought, exclude)

    def _check_categories(self, categories: Sequence[str] | None) -> None:
        """A category the catalog does not have is a mistake (422 listing some), not an empty list."""
        if not categories or self.cands is None:
            return
        known = self.cands.catalog.category_index
        unknown = [c for c in categories if c not in known]
        if unknown:
            sample = sorted(map(str, self.cands.catalog.categories))[:20]
            raise DataError(f"unknown category {unknown[0]!r}" + (f" (and {len(unknown) - 1} more)"
                                                                  if len(unknown) > 1 else "")
                            + f"; categories: {sample}", column="category")

    def _narrow(self, rec: Recommendations, k: int, filters, bought, exclude: str = "purchased", *,
                suffix: str = "") -> Recommendations:
        """Fill a filtered list that came back short from the fallback chain (popular / trending items passing
        the filters), and say so when even that leaves fewer than ``k``."""
        if filters is None or len(rec.items) >= k or self.cands is None:
            return rec
        t = self.cands
        have = {it["item_id"] for it in rec.items}
        skip = np.zeros(len(t.item_ids_list), bool)
        if len(bought):
            skip[np.asarray(bought, np.int64)] = True
            if exclude == "non_repeatable":
                skip &= ~t.catalog.repeatable
        ok = t.catalog.mask(filters)
        pool = np.flatnonzero(ok & ~skip)
        fill = [{"item_id": t.item_ids_list[i], "score": float(sc), "rank": 0, "source": t.source_names[src] + suffix}
                for i, sc, src in zip(t.cold_items.tolist(), t.cold_scores.tolist(), t.cold_sources.tolist())
                if ok[i] and not skip[i] and t.item_ids_list[i] not in have]
        if len(rec.items) + len(fill) < k:   # the fallback list is short too: the rest of the matching catalog
            listed = have | {f["item_id"] for f in fill}
            fill += [{"item_id": t.item_ids_list[i], "score": 0.0, "rank": 0, "source": "catalog" + suffix}
                     for i in pool.tolist() if t.item_ids_list[i] not in listed][:k]
        fill = fill[:k - len(rec.items)]
        for j, it in enumerate(fill):
            it["rank"] = len(rec.items) + j + 1
        items = rec.items + self.relevance.apply(fill, k)
        note = None if len(items) >= k else (f"only {len(items)} item(s) match the filters"
                                             + (" and are not excluded" if len(bought) else ""))
        return Recommendations(rec.customer_id, items, rec.fallback, rec.model_version, note)

    def _recommend_known(self, customer_id: str, k: int, filters, exclude: str) -> Recommendations:
        t = self.cands
        items, scores, sources, bought, known, full = self._row(customer_id)
        mask = items >= 0
        if exclude != "none" and bought.size:
            flag = self._scratch()  # boolean lookup table over the catalog: O(n) instead of np.isin's sort
            flag[bought] = True
            hit = flag[items]
            flag[bought] = False
            if exclude == "non_repeatable":
                hit &= ~t.catalog.repeatable[items]
            mask &= ~hit
        if filters is not None:
            mask &= t.catalog.mask(filters)[items]
        sel = np.flatnonzero(mask)[:k]
        if sel.size < k and full and self.model is not None:
            return self._recommend_live(customer_id, k, filters, exclude, known=known)
        names = t.source_names
        ids = t.item_ids_list
        out = [{"item_id": ids[i], "score": float(s), "rank": r + 1, "source": names[src]}
               for r, (i, s, src) in enumerate(zip(items[sel].tolist(), scores[sel].tolist(),
                                                   sources[sel].tolist()))]
        return Recommendations(customer_id, self.relevance.apply(out, k), not known, self.version)

    def _cold(self, suffix: str | None, k: int, filters, customer_id: str) -> Recommendations:
        """The answer for a shopper the service may not personalize for: the popular / trending list."""
        if self.cands is not None:
            t = self.cands
            items = t.cold_items
            mask = t.catalog.mask(filters)[items] if filters is not None else np.ones(len(items), bool)
            sel = np.flatnonzero(mask)[:k]
            out = [{"item_id": t.item_ids_list[i], "score": float(sc), "rank": r + 1,
                    "source": t.source_names[src] + (suffix or "")}
                   for r, (i, sc, src) in enumerate(zip(items[sel].tolist(), t.cold_scores[sel].tolist(),
                                                        t.cold_sources[sel].tolist()))]
            if len(out) == k or self.popular is None:
                return Recommendations(customer_id, self.relevance.apply(out, k), True, self.version)
        model = self.popular or self.model
        df = model.recommend("\x00__anonymous__", k=k, exclude="none", filters=filters)
        items = self._frame_items(df, k)
        for it in items:
            it["source"] += suffix or ""
        return Recommendations(customer_id, self.relevance.apply(items, k), True, self.version)

    def _recommend_live(self, customer_id, k, filters, exclude, *, known) -> Recommendations:
        df = self.model.recommend(customer_id, k=k, exclude=exclude, filters=filters, live=self.live)
        if known is None:
            known = bool(self.cands is not None and customer_id in self.cands.customer_pos) or \
                customer_id in self.live
        return Recommendations(customer_id, self.relevance.apply(self._frame_items(df, k), k), not known,
                               self.version)

    def recommend_from_items(self, item_ids: Sequence[str], k: int = 10, *, categories: Sequence[str] | None = None,
                             in_stock: bool | None = None) -> Recommendations:
        """Recommendations for an anonymous session or cart; unknown item ids are ignored."""
        self._check_categories(categories)
        known = [i for i in dict.fromkeys(item_ids) if self.knows_item(i)]
        if known and self.model is not None:
            df = self.model.recommend_from_items(known, k=k + len(known), filters=_filters(categories, in_stock))
            df = df[~df["item_id"].astype(str).isin(known)] if len(df) else df
            return Recommendations(None, self.relevance.apply(self._frame_items(df, k), k), False, self.version)
        rec = self.recommend("\x00__anonymous__", k, categories=categories, in_stock=in_stock, exclude="none")
        return Recommendations(None, rec.items, True, self.version)

    def knows_item(self, item_id: str) -> bool:
        """Whether the served bundle knows ``item_id`` (events for other items are stored but not applied)."""
        if self.cands is not None:
            return item_id in self.cands.item_index
        return True

    def similar_items(self, item_id: str, k: int = 10) -> list[dict]:
        """Items similar to ``item_id``; raises :class:`UnknownIdError` for an item the bundle does not know."""
        if not self.knows_item(item_id) or self.model is None:
            raise UnknownIdError(f"unknown item_id {item_id!r}")
        df = self.model.similar_items(item_id, k=k + 1)
        df = df[df["item_id"].astype(str) != item_id].head(k)
        raw = df["score"].to_numpy(np.float64)
        q = self._similarity_quantiles()
        rel = np.clip((np.searchsorted(q, raw, "left") + np.searchsorted(q, raw, "right")) / 2.0 / (len(q) - 1),
                      0.0, 1.0) if q is not None else 1.0 - np.arange(len(raw)) / max(k, 1)
        return [{"item_id": str(i), "score": round(float(v), 6), "raw_score": float(s), "rank": r + 1}
                for r, (i, s, v) in enumerate(zip(df["item_id"].tolist(), raw.tolist(), rel.tolist()))]

    def _similarity_quantiles(self) -> np.ndarray | None:
        """Quantiles of the model's top-20 similarities over a sample of 100 items (computed once): similar-item
        scores as percentiles, like recommendation scores (:mod:`personalize.runtime.relevance`)."""
        q = getattr(self, "_sim_q", False)
        if q is not False:
            return q
        ids = self.cands.item_ids_list if self.cands is not None else []
        vals = []
        for j in np.random.default_rng(0).choice(len(ids), min(100, len(ids)), replace=False).tolist() if ids else []:
            try:
                vals.append(self.model.similar_items(ids[j], k=21)["score"].to_numpy(np.float64)[1:])
            except PersonalizeError:
                continue
        v = np.concatenate(vals) if vals else np.zeros(0)
        v = v[np.isfinite(v)]
        self._sim_q = np.quantile(v, np.linspace(0.0, 1.0, 257)) if v.size else None
        return self._sim_q

    # ------------------------------------------------------------------ events
    def record_purchase(self, customer_id: str, item_ids: Sequence[str], timestamps: Sequence | None = None) -> bool:
        """Add a purchase to the live overlay (their next recommendations reflect it). True if any item is known."""
        if self.is_erased(customer_id):
            return False
        if timestamps is not None and not isinstance(timestamps, (str, pd.Timestamp)):
            timestamps = list(timestamps)
        return bool(self.live.add(customer_id, list(item_ids), timestamps).any())

    def replay(self, customer_ids: np.ndarray, item_ids: np.ndarray, ns: np.ndarray) -> int:
        """Bulk-add stored purchases (aligned arrays: customer ids, item ids, int64 ns); returns how many applied."""
        idx = self.live.items.lookup(np.asarray(item_ids, dtype=object))
        ok = idx >= 0
        self.live.add_codes(np.asarray(customer_ids, dtype=object)[ok], idx[ok], np.asarray(ns)[ok])
        return int(ok.sum())

    def record_offer_event(self, customer_id: str, offer_id: str, timestamp, *, exposure: bool) -> bool:
        """An exposure (counts against caps and the cooldown at once) or a redemption; True if the offer is known."""
        if self.is_erased(customer_id):
            return False
        return self.desk.record(customer_id, offer_id, pd.Timestamp(timestamp).value, exposure=exposure)

    def offer_event_reason(self, offer_id: str) -> str | None:
        """Why an offer event cannot count here (``no_offers_in_bundle``, ``unknown_offer``); None when it does."""
        if self.desk.offers is None:
            return "no_offers_in_bundle"
        return None if offer_id in self.desk.offers.catalog.index else "unknown_offer"

    def record_ledger(self, kind: str, row: dict) -> bool:
        """A feedback or points event (as a table row): the profile, audiences and recommendations reflect it at
        once. False for an erased customer."""
        if self.is_erased(str(row["customer_id"])):
            return False
        self.loyalty.record(kind, row)
        return True

    def replay_ledger(self, rows) -> int:
        """Bulk-add stored feedback and points events (dicts of :meth:`EventStore.ledger_rows`)."""
        return sum(self.record_ledger(r["type"], r) for r in rows)

    def points_balance(self, customer_id: str) -> float:
        """The customer's points balance now (bundle plus the points events since)."""
        attrs = {}
        if self._cust_row is not None:
            pos = self._cust_row.get_indexer([customer_id])[0]
            if pos >= 0 and "points_balance" in self.customers.columns:
                attrs = {"points_balance": _py(self.customers["points_balance"].iat[pos])}
        return self.loyalty.balance(customer_id, attrs)

    def satisfaction(self, *, by: str = "overall", min_responses: int = 30) -> list[dict]:
        """NPS, CSAT and star ratings per group of ``by`` over the bundle's feedback and the feedback posted since
        (erased customers left out); segment, tier and lifecycle are the customer table's."""
        labels = None
        if by in ("segment", "tier", "lifecycle"):
            if self.customers is None or by not in self.customers.columns:
                raise MissingComponentError(f"bundle {self.version} has no {by} labels in its customer table")
            labels = self.customers.set_index("customer_id")[[by]]
        erased = self.erasures.mask if len(self.erasures) else None
        table = self.loyalty.satisfaction_table(by, labels=labels, erased=erased, min_responses=min_responses)
        return [{k: _py(v) for k, v in r.items()} for r in table.to_dict(orient="records")]

    def replay_offer_events(self, customer_ids, offer_ids, types, ns) -> int:
        n = 0
        for c, o, t, v in zip(customer_ids, offer_ids, types, ns):
            if not self.is_erased(c):
                n += self.desk.record(str(c), str(o), int(v), exposure=t == "exposure")
        return n

    # ------------------------------------------------------------------ offers and coupons
    def _who(self, customer_id: str) -> tuple[str | None, bool, str]:
        """(the id whose policy state applies, or None for an unknown one; personalize?; the answer's source).

        An erased customer is unknown. One who refused personalization gets the average customer's
        ranking, under her own consent, suppression, caps and cooldown (``cold:opt_out``).
        """
        if self.is_erased(customer_id):
            return None, False, "cold"
        if customer_id in self.opted_out:
            return customer_id, False, "cold" + OPT_OUT
        return customer_id, True, "personalized"

    def next_best_offer(self, customer_id: str, *, n: int = 3, channel: str = "web",
                        now: pd.Timestamp | None = None) -> dict:
        """Top ``n`` offers by expected value with their reasons; an empty list when none pays or is allowed."""
        who, personal, source = self._who(customer_id)
        out = self.desk.next_best(who, n=n, channel=channel, now=now or _utc_now(), source=source,
                                  personal=personal)
        return {"customer_id": customer_id, "channel": channel, "model_version": self.version, **out}

    def coupon(self, customer_id: str, *, channel: str = "web", now: pd.Timestamp | None = None) -> dict:
        """The customer's best coupon level (None: no coupon pays or may be given)."""
        who, personal, source = self._who(customer_id)
        out = self.desk.coupon(who, channel=channel, now=now or _utc_now(), source=source, personal=personal)
        return {"customer_id": customer_id, "channel": channel, "model_version": self.version, **out}

    def coupon_plan(self, *, channel: str = "email", budget: float | None = None) -> tuple[pd.DataFrame, list, dict]:
        """The budgeted coupon plan over the bundle's customers (erased and opted-out customers left out):
        ``(plan rows, profit vs budget curve, totals)`` (:meth:`OfferDesk.plan`)."""
        ids = self.desk._need("coupons").customer_ids
        drop = self._excluded_rows(ids)
        excluded = frozenset(ids[drop].tolist()) if drop is not None else frozenset()
        return self.desk.plan(channel=channel, budget=budget, now=_utc_now(), excluded_ids=excluded)

    def _excluded_rows(self, customer_ids: np.ndarray) -> np.ndarray | None:
        """Rows (of ``customer_ids``) an export must leave out: erased, or opted out of personalization."""
        out = np.zeros(len(customer_ids), bool)
        if len(self.erasures):
            out |= self.erasures.mask(customer_ids)
        if self.opted_out:
            out |= pd.Index(customer_ids).isin(list(self.opted_out))
        return out if out.any() else None

    # ------------------------------------------------------------------ profile
    def profile(self, customer_id: str) -> dict:
        """Everything the bundle knows about one customer; :class:`UnknownIdError` when nothing."""
        if self.is_erased(customer_id):
            raise UnknownIdError(f"unknown customer_id {customer_id!r}")
        attrs: dict[str, Any] = {}
        if self._cust_row is not None:
            pos = self._cust_row.get_indexer([customer_id])[0]
            if pos >= 0:
                row = self.customers.iloc[pos]
                attrs = {c: _py(row[c]) for c in self.customers.columns if c != "customer_id"}
        in_model = False
        purchased_items = 0
        if self.cands is not None:
            in_model = customer_id in self.cands.customer_pos or customer_id in self.live
            purchased_items = int(self._bought(customer_id).size)
        if not attrs and not in_model and customer_id not in self.loyalty.live_customers():
            raise UnknownIdError(f"unknown customer_id {customer_id!r}")

        def section(fields: dict[str, str]) -> dict | None:
            if not any(col in attrs for col in fields.values()):
                return None
            out = {key: attrs.get(col) for key, col in fields.items()}
            for key in ("R", "F", "M"):
                if isinstance(out.get(key), float):
                    out[key] = int(out[key])
            return out if any(v is not None for v in out.values()) else None

        churn = None
        if attrs.get("churn_risk") is not None:
            churn = {"probability": attrs["churn_risk"], "band": attrs.get("churn_band"),
                     "reasons": split_reasons(attrs.get("churn_reasons"))}
        return {"customer_id": customer_id, "known_to_recommender": in_model, "distinct_items_bought": purchased_items,
                "updated_since_publish": customer_id in self.live or customer_id in self.loyalty.live_customers(),
                "as_of": self.as_of,
                "segment": attrs.get("segment"), "lifecycle": attrs.get("lifecycle"), "tier": attrs.get("tier"),
                "rfm": section(_RFM_FIELDS), "clv": section(_CLV_FIELDS), "churn": churn,
                "satisfaction": self.loyalty.satisfaction(customer_id, attrs),
                "points": self.loyalty.points(customer_id, attrs), "attributes": attrs}

    # ------------------------------------------------------------------ churn
    def churn_unavailable_reason(self) -> str:
        why = self.churn_info.get("reason")
        return (f"bundle {self.version} has no churn model"
                + (f": {why}" if why else " (it was published without one)"))

    def churn_risk(self, customer_id: str) -> dict:
        """Churn probability, band and top reasons of one customer as of the bundle's data end.

        :class:`MissingComponentError` when the bundle was published without a
        churn model; :class:`UnknownIdError` for a customer it does not know or
        did not score (no purchase before the scoring date).
        """
        if not self.has_churn:
            raise MissingComponentError(self.churn_unavailable_reason())
        pos = self._cust_row.get_indexer([customer_id])[0]
        if pos < 0 or self.is_erased(customer_id):
            raise UnknownIdError(f"unknown customer_id {customer_id!r}")
        row = self.customers.iloc[pos]
        p = _py(row["churn_risk"])
        if p is None:
            raise UnknownIdError(f"customer {customer_id!r} has no churn score: no purchase before "
                                 f"{self.churn_info.get('as_of') or 'the scoring date'}")
        band = _py(row["churn_band"]) if "churn_band" in row.index else None
        reasons = split_reasons(row["churn_reasons"]) if "churn_reasons" in row.index else []
        horizon = self.churn_info.get("horizon_days")
        if horizon is None and self.churn_model is not None:
            horizon = getattr(self.churn_model, "horizon_days_", None)
        return {"customer_id": customer_id, "probability": p, "band": band, "reasons": reasons,
                "model_version": self.version, "as_of": self.churn_info.get("as_of"), "horizon_days": horizon}

    # ------------------------------------------------------------------ audiences
    def audience_columns(self) -> list[str]:
        """Score columns an audience export may include (never personal attributes such as age or region)."""
        return audience_columns(self.customers)

    def audience(self, *, consent: str, fields: Sequence[str] | None = None, cursor: str | None = None,
                 limit: int = 10_000, offer_id: str | None = None, coupon_level: str | None = None,
                 budget: float | None = None, **filters) -> tuple[pd.DataFrame, str | None]:
        """One page of an audience, ordered by customer_id: (frame[customer_id, fields...], next cursor or None).

        Only customers who consented to ``consent`` are included; the filters
        are those of :func:`personalize.customers.audience_mask`. ``cursor`` is
        the last customer_id of the previous page.

        ``offer_id``: only customers the offer may reach through the consent's
        channel (validity, rules, caps and cooldown included) and for whom it
        pays (EV > 0), with ``p_accept`` and ``expected_value``.
        ``coupon_level``: only customers the coupon plan gives that level, the
        plan being made over the filtered audience under ``budget`` (None: no
        budget), with ``expected_cost`` and ``expected_incremental_profit``.
        """
        consent_column(consent)
        if self.customers is None:
            raise MissingComponentError(f"bundle {self.version} has no customer table: nobody can be exported")
        if (filters.get("min_churn_risk") is not None or filters.get("max_churn_risk") is not None) \
                and not self.has_churn:
            raise MissingComponentError(self.churn_unavailable_reason() + "; cannot filter by churn risk")
        if budget is not None and coupon_level is None:
            raise PersonalizeError("budget applies to a coupon audience: give coupon_level too")
        if offer_id is not None and coupon_level is not None:
            raise PersonalizeError("give offer_id or coupon_level, not both")
        table = self.customers[~self._erased_rows] if self._erased_rows.any() else self.customers
        if _uses_loyalty(filters, fields):
            table = self.loyalty.overlay(table)  # live feedback and points columns
        if offer_id is None and coupon_level is None:
            return audience_page(table, consent=consent, fields=fields, cursor=cursor, limit=limit, **filters)
        available = audience_columns(table)
        fields = list(fields) if fields else []
        bad = [f for f in fields if f not in available]
        if bad:
            raise DataError(f"unknown audience field(s) {bad}; available: {available}", column="fields")
        mask = audience_mask(table, consent=consent, **filters)
        ids = table["customer_id"].to_numpy(dtype=object)
        if self.opted_out:  # a targeted offer is personalization: never for those who refused it
            mask &= ~pd.Index(ids).isin(list(self.opted_out))
        channel, now = AUDIENCE_CHANNEL[consent], _utc_now()
        if offer_id is not None:
            target = self.desk.offer_audience(offer_id, channel=channel, now=now)
        else:
            coupons = self.desk._need("coupons")
            if coupon_level not in coupons.ladder.levels:
                raise DataError(f"unknown coupon level {coupon_level!r}; levels: {list(coupons.ladder.levels)}",
                                column="coupon_level")
            pos = pd.Index(ids).get_indexer(coupons.customer_ids)
            excluded = pos < 0
            excluded[~excluded] = ~mask[pos[~excluded]]
            plan = self.desk.coupon_plan(coupons.customer_ids, channel=channel, budget=budget, now=now,
                                         excluded=excluded)
            target = plan.loc[plan["level"] == coupon_level,
                              ["customer_id", "expected_cost", "expected_incremental_profit"]]
        where = pd.Index(target["customer_id"].to_numpy(dtype=object)).get_indexer(ids)
        mask &= where >= 0
        frame = table[["customer_id", *fields]].reset_index(drop=True)
        extra = target.drop(columns="customer_id").reset_index(drop=True)
        page, nxt = page_of(frame, mask, cursor=cursor, limit=limit)
        rows = pd.Index(target["customer_id"].to_numpy(dtype=object)).get_indexer(
            page["customer_id"].to_numpy(dtype=object))
        for c in extra.columns:
            page[c] = extra[c].to_numpy()[rows]
        return page, nxt

    def customer_summary(self):
        """Aggregates of the customer table for a dashboard (:func:`personalize.customers.customer_summary`):
        segment sizes and value, lifecycle and tier mix, churn risk, CLV by tier; erased customers left out."""
        from personalize.customers import customer_summary

        if self.customers is None:
            raise MissingComponentError(f"bundle {self.version} has no customer table")
        table = self.customers[~self._erased_rows] if self._erased_rows.any() else self.customers
        return customer_summary(table)

    # ------------------------------------------------------------------ campaigns
    def _campaign_data(self):
        exp = self.bundle.get("campaign_exposures")
        if exp is None:
            raise MissingComponentError(f"bundle {self.version} has no campaigns (train with exposures that "
                                        f"carry a campaign_id: `personalize train --exposures ...`)")
        if len(self.erasures):
            exp = exp.loc[~self.erasures.mask(exp["customer_id"].to_numpy(dtype=object))].reset_index(drop=True)
        return exp

    def campaigns(self) -> list[dict]:
        """Every campaign of the bundle: exposures, customers, arms, first and last exposure."""
        exp = self._campaign_data()
        out = []
        for cid, g in exp.groupby("campaign_id", sort=True):
            arms = sorted(g["offer_id"].dropna().astype(str).unique().tolist())
            out.append({"campaign_id": str(cid), "exposures": int(len(g)), "customers": int(g["customer_id"].nunique()),
                        "arms": arms, "control": bool(g["offer_id"].isna().any()),
                        "randomized": bool(g["randomized"].fillna(False).astype(bool).all())
                        if "randomized" in g.columns else None,
                        "first_exposure": g["exposed_at"].min().isoformat(),
                        "last_exposure": g["exposed_at"].max().isoformat()})
        return out

    def campaign_readout(self, campaign_id: str, *, alpha: float = 0.05, cuped: Sequence[str] | None = None,
                         bootstrap: int = 0) -> dict:
        """The readout of one campaign (:func:`personalize.experiments.readout`), erased customers left out."""
        from personalize.data import CampaignData
        from personalize.experiments import readout

        exp = self._campaign_data()
        known = exp["campaign_id"].astype(str)
        if campaign_id not in set(known.unique()):
            raise UnknownIdError(f"unknown campaign_id {campaign_id!r}; campaigns: "
                                 f"{sorted(known.unique().tolist())[:10]}")
        exp = exp.loc[(known == campaign_id).to_numpy()].reset_index(drop=True)
        feats = self.bundle.get("campaign_features")
        if feats is not None:
            feats = feats.loc[(feats["campaign_id"].astype(str) == campaign_id).to_numpy()]
            feats = feats.set_index(["campaign_id", "customer_id"])
        data = CampaignData(exp, features=feats)
        return readout(data, campaign_id=campaign_id, cuped=list(cuped) if cuped else None, alpha=alpha,
                       n_bootstrap=bootstrap).to_dict()

    # ------------------------------------------------------------------ info
    def info(self) -> dict:
        return {"version": self.version, "manifest": self.manifest, "live_customers": len(self.live)}

