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

Memory stays small however many customers shop: events sit in a compacted
block -- customer ids as one sorted array of UTF-8 bytes, and per customer a
slice of item positions and int64 times (about 12 bytes per event and 8 plus
the id's length per customer, no Python object per customer) -- and a tail of
recent additions that is merged in once it grows past an eighth of the block.
The tail is arrays too (item, time, customer code and a link to the
customer's previous tail event: 24 bytes per event) plus one dict entry per
customer in it, not a Python object per event. A million events from hundreds
of thousands of customers take tens of MB.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from personalize import _sets
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
        self._reset_tail()
        self.latest_ns: int | None = None
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ the tail
    def _reset_tail(self, capacity: int = 1024) -> None:
        """Recent additions: event ``j`` is item ``_t_item[j]`` at ``_t_ns[j]`` of customer code
        ``_t_code[j]``; ``_t_prev[j]`` is that customer's previous tail event (-1: none), ``_t_head[code]``
        the last. ``_tail`` maps a customer id to its code, ``_tail_ids`` a code to its id (None: forgotten)."""
        self._tail: dict[str, int] = {}
        self._tail_ids: list[str | None] = []
        self._t_item = np.empty(capacity, np.int32)
        self._t_ns = np.empty(capacity, np.int64)
        self._t_code = np.empty(capacity, np.int32)
        self._t_prev = np.empty(capacity, np.int64)
        self._t_head = np.empty(max(capacity // 4, 16), np.int64)
        self._t_count = np.empty(max(capacity // 4, 16), np.int64)
        self._tail_n = 0

    @staticmethod
    def _grown(a: np.ndarray, need: int) -> np.ndarray:
        if need <= len(a):
            return a
        out = np.empty(max(need, 2 * len(a)), a.dtype)
        out[:len(a)] = a
        return out

    def _tail_add(self, customer_id: str, items: np.ndarray, ns: np.ndarray) -> None:
        if not len(items):
            return
        code = self._tail.get(customer_id)
        if code is None:
            code = self._tail[customer_id] = len(self._tail_ids)
            self._tail_ids.append(customer_id)
            self._t_head = self._grown(self._t_head, code + 1)
            self._t_count = self._grown(self._t_count, code + 1)
            self._t_head[code] = -1
            self._t_count[code] = 0
        n, m = self._tail_n, len(items)
        self._t_item = self._grown(self._t_item, n + m)
        self._t_ns = self._grown(self._t_ns, n + m)
        self._t_code = self._grown(self._t_code, n + m)
        self._t_prev = self._grown(self._t_prev, n + m)
        self._t_item[n:n + m] = items
        self._t_ns[n:n + m] = ns
        self._t_code[n:n + m] = code
        self._t_prev[n] = self._t_head[code]
        self._t_prev[n + 1:n + m] = np.arange(n, n + m - 1)
        self._t_head[code] = n + m - 1
        self._t_count[code] += m
        self._tail_n = n + m

    def _tail_positions(self, customer_id: str) -> list[int]:
        """Positions of a customer's tail events, oldest first (empty when none)."""
        code = self._tail.get(customer_id)
        out: list[int] = []
        if code is None:
            return out
        j = int(self._t_head[code])
        prev = self._t_prev
        while j >= 0:
            out.append(j)
            j = int(prev[j])
        out.reverse()
        return out

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
        self._tail_add(customer_id, items, ns)
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
            self._tail_add(str(uniq[codes[s]]), items[s:e], ns[s:e])
        if self._tail_n > max(_MIN_TAIL, len(self._item) // 8):
            self.compact()

    def _merge(self, cust: np.ndarray, items: np.ndarray, ns: np.ndarray, drop: np.ndarray | None = None) -> None:
        """Merge events (bytes ids) into the compacted block; ``drop``: bytes ids to leave out."""
        old = np.repeat(self._cust, np.diff(self._indptr)) if len(self._cust) else self._cust
        c = np.concatenate([old, cust]) if len(old) else cust
        i = np.concatenate([self._item, items.astype(np.int32)])
        t = np.concatenate([self._ns, ns.astype(np.int64)])
        if drop is not None and len(drop):
            keep = ~_sets.isin(c, drop)
            c, i, t = c[keep], i[keep], t[keep]
        uniq, code = np.unique(c, return_inverse=True)
        order = np.lexsort((t, code))
        self._cust = uniq
        self._item, self._ns = i[order], t[order]
        self._indptr = np.r_[0, np.cumsum(np.bincount(code, minlength=len(uniq)))].astype(np.int64)

    @_locked
    def compact(self) -> None:
        """Merge the tail into the compacted block."""
        if not self._tail_n:
            return
        n = self._tail_n
        ids = np.asarray(self._tail_ids, dtype=object)[self._t_code[:n]]
        keep = ids != None  # noqa: E711 - events of a customer forgotten while in the tail
        if keep.any():
            self._merge(_encode(ids[keep]), self._t_item[:n][keep], self._t_ns[:n][keep])
        self._reset_tail()

    @_locked
    def forget(self, customer_id: str) -> bool:
        """Drop every event of ``customer_id`` and the id itself (no copy of it is kept); True if there were any."""
        cid = str(customer_id)
        code = self._tail.pop(cid, None)
        had = code is not None
        if had:  # its tail events stay as anonymous rows until the next compaction drops them
            self._tail_ids[code] = None
            self._t_head[code] = -1
            self._t_count[code] = 0
        pos = self._pos(cid)
        if pos >= 0:
            self._merge(np.zeros(0, dtype=self._cust.dtype), np.zeros(0, np.int32), np.zeros(0, np.int64),
                        drop=_encode([cid]))
        return had or pos >= 0

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
        with self._lock:
            dropped = sum(1 for c in self._tail_ids if c is None)
            if not dropped:
                return int(len(self._item) + self._tail_n)
            return int(len(self._item) + self._t_count[:len(self._tail_ids)].sum())

    @_locked
    def count(self, customer_id: str) -> int:
        """Events recorded for ``customer_id`` (0 if none): a cheap version stamp for caches."""
        p = self._pos(customer_id)
        n = int(self._indptr[p + 1] - self._indptr[p]) if p >= 0 else 0
        code = self._tail.get(customer_id)
        return n + (int(self._t_count[code]) if code is not None else 0)

    @_locked
    def events(self, customer_id: str) -> CustomerEvents | None:
        p = self._pos(customer_id)
        tail = self._tail_positions(customer_id)
        if p < 0 and not tail:
            return None
        items, ns = [], []
        if p >= 0:
            s, e = self._indptr[p], self._indptr[p + 1]
            items.append(self._item[s:e])
            ns.append(self._ns[s:e])
        if tail:
            items.append(self._t_item[tail])
            ns.append(self._t_ns[tail])
        it = np.concatenate(items).astype(np.int64)
        t = np.concatenate(ns)
        order = np.argsort(t, kind="stable")
        return CustomerEvents(it[order], t[order])

    @property
    def nbytes(self) -> int:
        """Approximate memory held by the events arrays and the compacted ids (not the tail's ids)."""
        tail = sum(a.nbytes for a in (self._t_item, self._t_ns, self._t_code, self._t_prev, self._t_head,
                                      self._t_count))
        return int(self._item.nbytes + self._ns.nbytes + self._indptr.nbytes + self._cust.nbytes + tail)
