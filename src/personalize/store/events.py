"""Durable store of real-time events (purchase, view, add-to-cart).

An embedded SQLite file in WAL mode with ``synchronous=FULL``: :meth:`EventStore.append`
returns only after the transaction is committed and on disk, so an
acknowledged event survives a crash or restart. Several server processes may
share one file (SQLite serializes writers; readers never block).
"""

from __future__ import annotations

import datetime as _dt
import math
import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from personalize.errors import DataError

__all__ = ["EVENT_TYPES", "Event", "EventStore"]

EVENT_TYPES = ("purchase", "view", "add_to_cart")
MAX_ID_LENGTH = 200

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at TEXT    NOT NULL,
    type        TEXT    NOT NULL,
    customer_id TEXT    NOT NULL,
    item_id     TEXT    NOT NULL,
    quantity    REAL    NOT NULL,
    price       REAL,
    timestamp   TEXT    NOT NULL,
    order_id    TEXT
);
CREATE INDEX IF NOT EXISTS events_received ON events (received_at);
CREATE INDEX IF NOT EXISTS events_time ON events (timestamp);
"""


@dataclass(frozen=True)
class Event:
    type: str
    customer_id: str
    item_id: str
    timestamp: _dt.datetime
    quantity: float = 1.0
    price: float | None = None
    order_id: str | None = None

    def __post_init__(self) -> None:
        if self.type not in EVENT_TYPES:
            raise DataError(f"unknown event type {self.type!r}; expected one of {', '.join(EVENT_TYPES)}",
                            table="events", column="type")
        for name in ("customer_id", "item_id"):
            v = getattr(self, name)
            if not isinstance(v, str) or not v.strip() or len(v) > MAX_ID_LENGTH:
                raise DataError(f"must be a non-empty string of at most {MAX_ID_LENGTH} characters",
                                table="events", column=name)
        if not (isinstance(self.quantity, (int, float)) and math.isfinite(self.quantity) and self.quantity > 0):
            raise DataError(f"must be a positive number, got {self.quantity!r}", table="events", column="quantity")
        if self.price is not None and not (math.isfinite(self.price) and self.price >= 0):
            raise DataError(f"must be a non-negative number, got {self.price!r}", table="events", column="price")


def _utc_naive(ts: _dt.datetime) -> _dt.datetime:
    if ts.tzinfo is not None:
        ts = ts.astimezone(_dt.timezone.utc).replace(tzinfo=None)
    return ts


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc).replace(tzinfo=None)


class EventStore:
    """Append-only event log in an SQLite file (WAL, synchronous=FULL)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30.0)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA busy_timeout=30000")
        self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> "EventStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def append(self, events: Sequence[Event]) -> list[int]:
        """Write ``events`` in one transaction; return their ids once committed (durable)."""
        if not events:
            return []
        received = _now().isoformat(timespec="microseconds")
        rows = [(received, e.type, e.customer_id, e.item_id, float(e.quantity),
                 None if e.price is None else float(e.price),
                 _utc_naive(e.timestamp).isoformat(timespec="microseconds"), e.order_id) for e in events]
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                ids = []
                for r in rows:
                    cur.execute("INSERT INTO events (received_at, type, customer_id, item_id, quantity, price, "
                                "timestamp, order_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", r)
                    ids.append(int(cur.lastrowid))
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        return ids

    def _rows(self, sql: str, args: Iterable[Any]) -> list[dict]:
        with self._lock:
            cur = self._conn.execute(sql, tuple(args))
            cols = [d[0] for d in cur.description]
            return [dict(zip(cols, r)) for r in cur.fetchall()]

    def events(self, *, after_id: int = 0, upto_id: int | None = None, received_after: str | None = None,
               happened_after: str | None = None, type: str | None = None, limit: int | None = None) -> list[dict]:
        """Stored events in id order, filtered by id range, received_at / timestamp (ISO, UTC) and type."""
        sql = "SELECT * FROM events WHERE id > ?"
        args: list[Any] = [after_id]
        for clause, value in (("id <= ?", upto_id), ("timestamp > ?", happened_after),
                              ("received_at > ?", received_after), ("type = ?", type)):
            if value is not None:
                sql += " AND " + clause
                args.append(value)
        sql += " ORDER BY id"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        return self._rows(sql, args)

    def count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def last_id(self) -> int:
        with self._lock:
            v = self._conn.execute("SELECT MAX(id) FROM events").fetchone()[0]
        return int(v or 0)

    @staticmethod
    def purchase_arrays(rows: Iterable[Mapping]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Purchase rows as aligned arrays: (customer ids, item ids, int64 ns timestamps), in store order."""
        rows = [r for r in rows if r["type"] == "purchase"]
        cust = np.array([r["customer_id"] for r in rows], dtype=object)
        item = np.array([r["item_id"] for r in rows], dtype=object)
        ns = pd.to_datetime([r["timestamp"] for r in rows], format="ISO8601").as_unit("ns").asi8 if rows \
            else np.zeros(0, np.int64)
        return cust, item, np.asarray(ns, dtype=np.int64)
