"""Live purchase events: the overlay a fitted (immutable) model reads at query time.

A fitted model never changes after ``fit``/``load``. Purchases that happen
later live in one :class:`LiveEvents` held by whoever serves the model (the
serving runtime; in a notebook, the data scientist), and are passed per call::

    live = LiveEvents.for_model(model)
    live.add("C1", ["I4", "I9"], "2024-03-02T10:00")
    model.recommend("C1", k=10, live=live)      # reflects the purchases at once
    model.recommend("C1", k=10)                  # the model as trained

Items are stored as positions in the item vocabulary the overlay was made
for (the model's, or the bundle's, which is the same), so a model can check
in O(1) that an overlay belongs to it.

Memory stays small and flat however many customers shop: events sit in a
compacted block -- customer ids as one sorted array of UTF-8 bytes, and per
customer a slice of item positions and int64 times (about 12 bytes per event
and 8 plus the id's length per customer, no Python object per customer) --
and a small tail of recent additions that is merged in once it grows. A
million events from hundreds of thousands of customers take tens of MB.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from personalize.errors import ParameterError
from personalize.recommenders.ids import IdMap, id_array

_MIN_TAIL = 10_000


def _locked(method):
    """Run ``method`` under the instance's lock (compaction swaps several arrays at once)."""
    def wrapper(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)
    wrapper.__name__, wrapper.__doc__ = method.__name__, method.__doc__
    return wrapper


def vocabulary_key(item_ids: np.ndarray) -> str:
    """A short fingerprint of an item vocabulary (order matters)."""
    h = hashlib.sha1()
    for chunk in range(0, len(item_ids), 65536):
        h.update("\x1f".join(map(str, item_ids[chunk:chunk + 65536])).encode("utf-8", "surrogatepass"))
        h.update(b"\x1e")
    return f"{len(item_ids)}-{h.hexdigest()[:16]}"


def _one_ns(t) -> int:
    try:
        ts = pd.Timestamp(t)
    except (TypeError, ValueError):
        raise ParameterError(f"unparseable timestamp {t!r}") from None
    if ts is pd.NaT:
        raise ParameterError("timestamps contain missing values")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return int(ts.as_unit("ns").value)


def to_ns(timestamps, n: int) -> np.ndarray:
    """Timestamps (one, or one per item) as int64 ns since the epoch, UTC, naive."""
    if isinstance(timestamps, (str, pd.Timestamp, np.datetime64)) or not isinstance(timestamps, Iterable):
        return np.full(n, _one_ns(timestamps), dtype=np.int64)
    if not isinstance(timestamps, (list, tuple)):
        timestamps = list(timestamps)
    if len(timestamps) != n:
        raise ParameterError(f"timestamps must have one value per item ({len(timestamps)} != {n})")
    if n <= 16:  # the per-event path: no array machinery
        return np.array([_one_ns(t) for t in timestamps], dtype=np.int64)
    ts = pd.to_datetime(list(timestamps), errors="coerce")
    if ts.tz is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    if len(ts) != n:
        raise ParameterError(f"timestamps must have one value per item ({len(ts)} != {n})")
    if ts.isna().any():
        raise ParameterError("timestamps contain missing or unparseable values")
    return ts.as_unit("ns").asi8.astype(np.int64)


def _encode(ids) -> np.ndarray:
    """Customer ids as a numpy bytes array (UTF-8), the compact block's key."""
    return np.char.encode(np.asarray(ids, dtype=str), "utf-8") if len(ids) else np.zeros(0, dtype="S1")


@dataclass(frozen=True)
class CustomerEvents:
    """One customer's live purchases: item positions and int64 ns timestamps, in time order."""

    items: np.ndarray
    ns: np.ndarray

    @property
    def timestamps(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(self.ns.astype("datetime64[ns]"))


class LiveEvents:
    """Purchases since the model was fitted, per customer (see the module docstring).

    Safe to share between threads (one lock; reads and appends are short).
    """

    def __init__(self, item_ids) -> None:
        self.items = item_ids if isinstance(item_ids, IdMap) else IdMap(np.asarray(item_ids, dtype=object), "item")
        self.key = vocabulary_key(self.items.ids)
        # compacted block: customer ids (sorted bytes) and their events [indptr[c], indptr[c + 1])
        self._cust = np.zeros(0, dtype="S1")
        self._indptr = np.zeros(1, np.int64)
        self._item = np.zeros(0, np.int32)
        self._ns = np.zeros(0, np.int64)
        # recent additions: customer id -> [(items, ns), ...]
        self._tail: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        self._tail_n = 0
        self.latest_ns: int | None = None
        self._lock = threading.RLock()

    @classmethod
    def for_model(cls, model) -> "LiveEvents":
        """An empty overlay for ``model``'s item vocabulary."""
        model._check_fitted()
        return cls(model.item_map_)

    # ------------------------------------------------------------------ writing
    def add(self, customer_id: str, item_ids, timestamps=None) -> np.ndarray:
        """Record purchases of ``customer_id``; returns which items were known (unknown ones are ignored).

        ``timestamps``: one value for all items or one per item (default: now, UTC).
        """
        ids = id_array(item_ids)
        idx = self.items.lookup(ids)
        ok = idx >= 0
        if ok.any():
            if timestamps is None:
                timestamps = pd.Timestamp.now(tz="UTC")
            ns = to_ns(timestamps, len(ids))[ok]
            self._append(str(customer_id), idx[ok].astype(np.int32), ns)
        return ok

    @_locked
    def _append(self, customer_id: str, items: np.ndarray, ns: np.ndarray) -> None:
        top = int(ns.max())
        self.latest_ns = top if self.latest_ns is None else max(self.latest_ns, top)
        self._tail.setdefault(customer_id, []).append((items, ns))
        self._tail_n += len(items)
        if self._tail_n > max(_MIN_TAIL, len(self._item) // 8):
            self.compact()

    @_locked
    def add_codes(self, customer_ids: np.ndarray, items: np.ndarray, ns: np.ndarray) -> None:
        """Bulk append (replay): customer ids (object array), item positions and int64 ns, aligned."""
        if not len(items):
            return
        items = np.asarray(items, dtype=np.int32)
        ns = np.asarray(ns, dtype=np.int64)
        top = int(ns.max())
        self.latest_ns = top if self.latest_ns is None else max(self.latest_ns, top)
        if len(items) >= _MIN_TAIL:  # a replay: straight into the compacted block
            self._merge(_encode(customer_ids), items, ns)
            return
        codes, uniq = pd.factorize(pd.Series(np.asarray(customer_ids, dtype=object)))
        order = np.argsort(codes, kind="stable")
        codes, items, ns = codes[order], items[order], ns[order]
        starts = np.r_[0, np.flatnonzero(np.diff(codes)) + 1]
        ends = np.r_[starts[1:], len(codes)]
        for s, e in zip(starts.tolist(), ends.tolist()):
            self._tail.setdefault(str(uniq[codes[s]]), []).append((items[s:e], ns[s:e]))
        self._tail_n += len(codes)
        if self._tail_n > max(_MIN_TAIL, len(self._item) // 8):
            self.compact()

    def _merge(self, cust: np.ndarray, items: np.ndarray, ns: np.ndarray, drop: np.ndarray | None = None) -> None:
        """Merge events (bytes ids) into the compacted block; ``drop``: bytes ids to leave out."""
        old = np.repeat(self._cust, np.diff(self._indptr)) if len(self._cust) else self._cust
        c = np.concatenate([old, cust]) if len(old) else cust
        i = np.concatenate([self._item, items.astype(np.int32)])
        t = np.concatenate([self._ns, ns.astype(np.int64)])
        if drop is not None and len(drop):
            keep = ~np.isin(c, drop)
            c, i, t = c[keep], i[keep], t[keep]
        uniq, code = np.unique(c, return_inverse=True)
        order = np.lexsort((t, code))
        self._cust = uniq
        self._item, self._ns = i[order], t[order]
        self._indptr = np.r_[0, np.cumsum(np.bincount(code, minlength=len(uniq)))].astype(np.int64)

    @_locked
    def compact(self) -> None:
        """Merge the tail into the compacted block."""
        if not self._tail:
            return
        cust, items, ns = [], [], []
        for cid, chunks in self._tail.items():
            for it, t in chunks:
                cust.append(np.full(len(it), cid, dtype=object))
                items.append(it)
                ns.append(t)
        self._merge(_encode(np.concatenate(cust)), np.concatenate(items), np.concatenate(ns))
        self._tail = {}
        self._tail_n = 0

    @_locked
    def forget(self, customer_id: str) -> bool:
        """Drop every event of ``customer_id`` and the id itself (no copy of it is kept); True if there were any."""
        cid = str(customer_id)
        had = self._tail.pop(cid, None)
        if had is not None:
            self._tail_n -= sum(len(it) for it, _ in had)
        pos = self._pos(cid)
        if pos >= 0:
            self._merge(np.zeros(0, dtype=self._cust.dtype), np.zeros(0, np.int32), np.zeros(0, np.int64),
                        drop=_encode([cid]))
        return had is not None or pos >= 0

    # ------------------------------------------------------------------ reading
    def _pos(self, customer_id: str) -> int:
        if not len(self._cust):
            return -1
        key = customer_id.encode("utf-8", "surrogatepass")
        p = int(np.searchsorted(self._cust, key))
        return p if p < len(self._cust) and self._cust[p] == key else -1

    def __contains__(self, customer_id: object) -> bool:
        if not isinstance(customer_id, str):
            return False
        with self._lock:
            return customer_id in self._tail or self._pos(customer_id) >= 0

    def __len__(self) -> int:
        """Number of customers with live events."""
        with self._lock:
            extra = sum(1 for c in self._tail if self._pos(c) < 0)
            return len(self._cust) + extra

    @property
    def n_events(self) -> int:
        return int(len(self._item) + self._tail_n)

    @_locked
    def count(self, customer_id: str) -> int:
        """Events recorded for ``customer_id`` (0 if none): a cheap version stamp for caches."""
        p = self._pos(customer_id)
        n = int(self._indptr[p + 1] - self._indptr[p]) if p >= 0 else 0
        return n + sum(len(it) for it, _ in self._tail.get(customer_id, ()))

    @_locked
    def events(self, customer_id: str) -> CustomerEvents | None:
        p = self._pos(customer_id)
        tail = self._tail.get(customer_id)
        if p < 0 and tail is None:
            return None
        items, ns = [], []
        if p >= 0:
            s, e = self._indptr[p], self._indptr[p + 1]
            items.append(self._item[s:e])
            ns.append(self._ns[s:e])
        for it, ts in tail or ():
            items.append(it)
            ns.append(ts)
        it = np.concatenate(items).astype(np.int64)
        t = np.concatenate(ns)
        order = np.argsort(t, kind="stable")
        return CustomerEvents(it[order], t[order])

    @property
    def nbytes(self) -> int:
        """Approximate memory held by the events arrays and the compacted ids (not the small tail's ids)."""
        tail = sum(it.nbytes + ts.nbytes for chunks in self._tail.values() for it, ts in chunks)
        return int(self._item.nbytes + self._ns.nbytes + self._indptr.nbytes + self._cust.nbytes + tail)
