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
in O(1) that an overlay belongs to it. Storage is columnar: a compacted
block sorted by (customer, time) plus a small tail of recent additions that
is merged in once it grows, so a million events cost about 16 bytes each
plus one dictionary entry per customer, and a customer's events are one
slice away.
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


def to_ns(timestamps, n: int) -> np.ndarray:
    """Timestamps (one, or one per item) as int64 ns since the epoch, UTC, naive."""
    if isinstance(timestamps, (str, pd.Timestamp, np.datetime64)) or not isinstance(timestamps, Iterable):
        timestamps = [timestamps] * n
    ts = pd.to_datetime(list(timestamps), errors="coerce")
    if ts.tz is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    if len(ts) != n:
        raise ParameterError(f"timestamps must have one value per item ({len(ts)} != {n})")
    if ts.isna().any():
        raise ParameterError("timestamps contain missing or unparseable values")
    return ts.as_unit("ns").asi8.astype(np.int64)


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
        self._codes: dict[str, int] = {}
        self._ids: list[str | None] = []
        # compacted block: events of customer code c are [indptr[c], indptr[c + 1])
        self._indptr = np.zeros(1, np.int64)
        self._item = np.zeros(0, np.int32)
        self._ns = np.zeros(0, np.int64)
        self._tail: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
        self._tail_n = 0
        self._counts: dict[int, int] = {}
        self.latest_ns: int | None = None
        self._lock = threading.RLock()

    @classmethod
    def for_model(cls, model) -> "LiveEvents":
        """An empty overlay for ``model``'s item vocabulary."""
        model._check_fitted()
        live = cls(model.item_map_)
        return live

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
            ns = to_ns(timestamps, len(ids))
            self.add_codes(np.full(int(ok.sum()), str(customer_id), dtype=object), idx[ok], ns[ok])
        return ok

    @_locked
    def add_codes(self, customer_ids: np.ndarray, items: np.ndarray, ns: np.ndarray) -> None:
        """Bulk append (replay): customer ids (object array), item positions and int64 ns, aligned."""
        if not len(items):
            return
        items = np.asarray(items, dtype=np.int32)
        ns = np.asarray(ns, dtype=np.int64)
        uniq, inv = np.unique(np.asarray(customer_ids, dtype=object), return_inverse=True)
        codes = np.empty(len(uniq), dtype=np.int64)
        for p, cid in enumerate(uniq.tolist()):
            code = self._codes.get(cid)
            if code is None:
                code = self._codes[cid] = len(self._ids)
                self._ids.append(cid)
            codes[p] = code
        cc = codes[inv]
        order = np.argsort(cc, kind="stable")
        cc, items, ns = cc[order], items[order], ns[order]
        starts = np.r_[0, np.flatnonzero(np.diff(cc)) + 1]
        ends = np.r_[starts[1:], len(cc)]
        for s, e in zip(starts.tolist(), ends.tolist()):
            c = int(cc[s])
            self._tail.setdefault(c, []).append((items[s:e], ns[s:e]))
            self._counts[c] = self._counts.get(c, 0) + (e - s)
        self._tail_n += len(cc)
        top = int(ns.max())
        self.latest_ns = top if self.latest_ns is None else max(self.latest_ns, top)
        if self._tail_n > max(_MIN_TAIL, len(self._item) // 8):
            self.compact()

    @_locked
    def compact(self) -> None:
        """Merge the tail into the compacted block (also drops the events of forgotten customers)."""
        n_codes = len(self._ids)
        old_c = np.repeat(np.arange(len(self._indptr) - 1, dtype=np.int64), np.diff(self._indptr))
        parts_c, parts_i, parts_t = [old_c], [self._item], [self._ns]
        for c, chunks in self._tail.items():
            for it, ts in chunks:
                parts_c.append(np.full(len(it), c, np.int64))
                parts_i.append(it)
                parts_t.append(ts)
        c = np.concatenate(parts_c)
        i = np.concatenate(parts_i).astype(np.int32)
        t = np.concatenate(parts_t).astype(np.int64)
        alive = np.array([x is not None for x in self._ids], dtype=bool)
        keep = alive[c] if len(c) else np.zeros(0, bool)
        c, i, t = c[keep], i[keep], t[keep]
        order = np.lexsort((t, c))
        self._item, self._ns = i[order], t[order]
        self._indptr = np.r_[0, np.cumsum(np.bincount(c, minlength=n_codes))].astype(np.int64)
        self._tail = {}
        self._tail_n = 0

    @_locked
    def forget(self, customer_id: str) -> bool:
        """Drop every event of ``customer_id`` and the id itself; True if there were any."""
        code = self._codes.pop(str(customer_id), None)
        if code is None:
            return False
        self._ids[code] = None
        self._tail_n -= sum(len(it) for it, _ in self._tail.pop(code, []))
        self._counts.pop(code, None)
        if code < len(self._indptr) - 1:  # clear its compacted slice at the next compaction
            self.compact()
        return True

    # ------------------------------------------------------------------ reading
    def __contains__(self, customer_id: object) -> bool:
        return customer_id in self._codes

    def __len__(self) -> int:
        """Number of customers with live events."""
        return len(self._codes)

    @property
    def n_events(self) -> int:
        return int(sum(self._counts.values()))

    @_locked
    def customers(self) -> list[str]:
        return list(self._codes)

    @_locked
    def count(self, customer_id: str) -> int:
        """Events recorded for ``customer_id`` (0 if none): a cheap version stamp for caches."""
        code = self._codes.get(customer_id)
        return 0 if code is None else self._counts.get(code, 0)

    @_locked
    def events(self, customer_id: str) -> CustomerEvents | None:
        code = self._codes.get(customer_id)
        if code is None:
            return None
        items, ns = [], []
        if code < len(self._indptr) - 1:
            s, e = self._indptr[code], self._indptr[code + 1]
            items.append(self._item[s:e])
            ns.append(self._ns[s:e])
        for it, ts in self._tail.get(code, ()):
            items.append(it)
            ns.append(ts)
        it = np.concatenate(items).astype(np.int64) if items else np.zeros(0, np.int64)
        t = np.concatenate(ns) if ns else np.zeros(0, np.int64)
        order = np.argsort(t, kind="stable")
        return CustomerEvents(it[order], t[order])

    @property
    def nbytes(self) -> int:
        """Approximate memory held by the events arrays (not the id dictionary)."""
        tail = sum(it.nbytes + ts.nbytes for chunks in self._tail.values() for it, ts in chunks)
        return int(self._item.nbytes + self._ns.nbytes + self._indptr.nbytes + tail)
