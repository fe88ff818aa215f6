"""Durable store of real-time events (purchase, view, add-to-cart, offer exposure and redemption, customer
feedback and loyalty points), the erasure list and worker heartbeats.

An embedded SQLite file in WAL mode with ``synchronous=FULL``: :meth:`EventStore.append`
returns only after the transaction is committed and on disk, so an
acknowledged event survives a crash or restart. Several server processes
share one file (SQLite serializes writers with ``BEGIN IMMEDIATE``; readers
never block). The file is private to its owner (0600).

* **Idempotent appends.** An event with an ``event_id`` that is already stored,
  or without one but with the ``order_id`` + item of an order line already
  stored, is a ``duplicate``: acknowledged again, never stored twice (a client
  retry after a timeout is safe).
* **Ingest sequence.** Every stored event has an increasing ``id``; a bundle
  records the last id it was trained on (``through_id``), and a service
  replays exactly the events after it, whatever their timestamps.
* **Erasure.** :meth:`forget` deletes every event of a customer (with
  ``secure_delete``: the bytes are overwritten, and the WAL is truncated) and
  keeps only a salted SHA-256 of the id in the erasure list, so later events
  for that id are ignored and ``personalize train`` drops the customer from
  every later bundle. The id itself is stored nowhere.
* **Workers.** Each server process writes a heartbeat with the bundle version
  it serves, so a reload can tell which workers follow and which lag.
* **Feedback and points.** A ``feedback`` event is one row of the data
  contract's feedback table (kind, score and scale, item, order, channel,
  category, resolution, text) and a ``points`` event one row of the points
  ledger (delta, reason, expiry); their fields beyond the common columns are
  kept as JSON in ``payload``. They are checked by the same rules as the
  tables (:func:`check_events`), and :meth:`EventStore.feedback_frame` /
  :meth:`EventStore.points_frame` give them back as table rows.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from personalize.errors import DataError

__all__ = ["EVENT_TYPES", "LEDGER_EVENTS", "Event", "EventStore", "Erasures", "Appended", "default_events_path",
           "check_events"]

EVENT_TYPES = ("purchase", "view", "add_to_cart", "exposure", "redemption", "feedback", "points")
#: event types about an offer (they carry ``offer_id``; ``item_id`` is optional for them)
OFFER_EVENTS = ("exposure", "redemption")
#: event types that are rows of the feedback table and the points ledger (``item_id`` optional)
LEDGER_EVENTS = ("feedback", "points")
#: event types that are order lines (an order id + item identifies a retry)
LINE_EVENTS = ("purchase", "view", "add_to_cart")
#: the fields of each ledger event type kept in ``payload``
_PAYLOAD = {"feedback": ("kind", "score", "scale", "channel", "category", "resolved", "resolved_at", "text"),
            "points": ("delta", "reason", "expires_at")}
MAX_ID_LENGTH = 200
EVENTS_FILE = "events.sqlite"

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
CREATE INDEX IF NOT EXISTS events_customer ON events (customer_id);
CREATE TABLE IF NOT EXISTS erasures (hash TEXT PRIMARY KEY, erased_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS workers (pid INTEGER PRIMARY KEY, version TEXT, heartbeat REAL NOT NULL,
                                    started REAL NOT NULL);
"""
_MIGRATIONS = (
    ("event_id", "ALTER TABLE events ADD COLUMN event_id TEXT"),
    ("offer_id", "ALTER TABLE events ADD COLUMN offer_id TEXT"),
    ("payload", "ALTER TABLE events ADD COLUMN payload TEXT"),
)
_POST_MIGRATION = """
CREATE INDEX IF NOT EXISTS events_event_id ON events (event_id);
CREATE INDEX IF NOT EXISTS events_order_line ON events (order_id, item_id);
"""


def default_events_path(models: str | Path) -> Path:
    """``<models>/events.sqlite`` for a model store; beside a single bundle directory otherwise."""
    models = Path(models)
    base = models if not (models / "manifest.json").exists() else models.parent
    return base / EVENTS_FILE


def _valid_id(v: Any, column: str) -> None:
    if not isinstance(v, str) or not v.strip() or len(v) > MAX_ID_LENGTH:
        raise DataError(f"must be a non-empty string of at most {MAX_ID_LENGTH} characters", table="events",
                        column=column)
    if any(ord(ch) < 32 for ch in v):
        raise DataError("must not contain control characters", table="events", column=column)
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        raise DataError("must be valid Unicode text (no lone surrogates)", table="events", column=column) from None


@dataclass(frozen=True)
class Event:
    type: str
    customer_id: str
    item_id: str
    timestamp: _dt.datetime
    quantity: float = 1.0
    price: float | None = None
    order_id: str | None = None
    event_id: str | None = None
    offer_id: str | None = None
    # feedback events
    kind: str | None = None
    score: float | None = None
    scale: str | None = None
    channel: str | None = None
    category: str | None = None
    resolved: bool | None = None
    resolved_at: _dt.datetime | None = None
    text: str | None = None
    # points events
    delta: float | None = None
    reason: str | None = None
    expires_at: _dt.datetime | None = None

    def __post_init__(self) -> None:
        if self.type not in EVENT_TYPES:
            raise DataError(f"unknown event type {self.type!r}; expected one of {', '.join(EVENT_TYPES)}",
                            table="events", column="type")
        if self.type in LEDGER_EVENTS:
            if self.item_id is None:
                object.__setattr__(self, "item_id", "")
            elif self.item_id != "":
                _valid_id(self.item_id, "item_id")
            need = "kind" if self.type == "feedback" else "reason"
            if getattr(self, need) is None:
                raise DataError(f"a {self.type} event needs {need}", table="events", column=need)
            if self.type == "points" and self.delta is None:
                raise DataError("a points event needs delta", table="events", column="delta")
        elif self.type in OFFER_EVENTS:
            if self.offer_id is None:
                raise DataError(f"a {self.type} event needs an offer_id", table="events", column="offer_id")
            if self.item_id is None:
                object.__setattr__(self, "item_id", "")
        else:
            _valid_id(self.item_id, "item_id")
        _valid_id(self.customer_id, "customer_id")
        for name in ("order_id", "event_id", "offer_id", "channel", "category"):
            if getattr(self, name) is not None:
                _valid_id(getattr(self, name), name)
        if self.text is not None and (not isinstance(self.text, str) or len(self.text) > 5000):
            raise DataError("must be text of at most 5000 characters", table="events", column="text")
        if not (isinstance(self.quantity, (int, float)) and math.isfinite(self.quantity) and self.quantity > 0):
            raise DataError(f"must be a positive number, got {self.quantity!r}", table="events", column="quantity")
        if self.price is not None and not (math.isfinite(self.price) and self.price >= 0):
            raise DataError(f"must be a non-negative number, got {self.price!r}", table="events", column="price")


@dataclass(frozen=True)
class Appended:
    """Outcome of one appended event: its id (the stored one for a duplicate) and whether it is new."""

    id: int
    duplicate: bool


class Erasures:
    """The erasure list: salted SHA-256 hashes of forgotten customer ids (never the ids)."""

    def __init__(self, salt: str, hashes: Iterable[str] = ()) -> None:
        self.salt = salt
        self.hashes = set(hashes)

    def digest(self, customer_id: str) -> str:
        return hashlib.sha256((self.salt + "\x1f" + customer_id).encode("utf-8", "surrogatepass")).hexdigest()

    def __contains__(self, customer_id: object) -> bool:
        return bool(self.hashes) and isinstance(customer_id, str) and self.digest(customer_id) in self.hashes

    def __len__(self) -> int:
        return len(self.hashes)

    def mask(self, customer_ids: Sequence[str] | np.ndarray) -> np.ndarray:
        """Which of ``customer_ids`` are erased (hashes every id: only call it when the list is not empty)."""
        if not self.hashes:
            return np.zeros(len(customer_ids), dtype=bool)
        h = self.hashes
        return np.fromiter((self.digest(str(c)) in h for c in customer_ids), dtype=bool, count=len(customer_ids))


def _payload(e: Event) -> str | None:
    fields = _PAYLOAD.get(e.type)
    if not fields:
        return None
    out = {}
    for f in fields:
        v = getattr(e, f)
        if isinstance(v, _dt.datetime):
            v = _utc_naive(v).isoformat(timespec="microseconds")
        if v is not None:
            out[f] = v
    return json.dumps(out, allow_nan=False, ensure_ascii=False)


def _unpack(row: Mapping) -> dict:
    out = {k: v for k, v in row.items() if k != "payload"}
    if row.get("payload"):
        out.update(json.loads(row["payload"]))
    if out.get("item_id") == "":
        out["item_id"] = None
    return out


def ledger_frame(kind: str, rows: Sequence[Mapping]) -> pd.DataFrame:
    """Ledger event dicts (:meth:`EventStore.ledger_rows`) of one type as canonical table rows, sorted by time."""
    from personalize.data.schema import FEEDBACK, POINTS

    schema = FEEDBACK if kind == "feedback" else POINTS
    cols = list(schema.columns)
    data = {c: [r.get(c) for r in rows] for c in cols}
    df = pd.DataFrame(data, columns=cols)
    times = [c for c, k in schema.columns.items() if k == "time"]
    for c in times:
        df[c] = pd.to_datetime(pd.Series(df[c], dtype="object"), format="ISO8601").astype("datetime64[ns]")
    for c, k in schema.columns.items():
        if k == "float":
            df[c] = pd.to_numeric(df[c], errors="coerce").astype(np.float64)
        elif k == "bool":
            df[c] = df[c].map(lambda v: bool(v) if v is not None and v == v else False).astype(bool)
        elif k in ("id", "str"):
            df[c] = pd.Series(df[c], dtype="object").astype("str")
    if kind == "feedback" and len(df):
        df["resolved"] = df["resolved"].to_numpy(dtype=bool) | df["resolved_at"].notna().to_numpy()
    return df.sort_values("timestamp", kind="stable").reset_index(drop=True)


def ledger_row(e: Event) -> dict:
    """A feedback or points event as a dict of its table's columns (times as naive UTC)."""
    out = {"type": e.type, "customer_id": e.customer_id, "timestamp": _utc_naive(e.timestamp),
           "item_id": e.item_id or None, "order_id": e.order_id}
    for f in _PAYLOAD.get(e.type, ()):
        v = getattr(e, f)
        out[f] = _utc_naive(v) if isinstance(v, _dt.datetime) else v
    return out


def _event_frame(kind: str, events: Sequence[Event]) -> pd.DataFrame:
    rows = [{"customer_id": e.customer_id, "timestamp": _utc_naive(e.timestamp).isoformat(),
             "item_id": e.item_id or None, "order_id": e.order_id,
             **{f: (_utc_naive(getattr(e, f)).isoformat() if isinstance(getattr(e, f), _dt.datetime)
                    else getattr(e, f)) for f in _PAYLOAD[kind]}} for e in events]
    return ledger_frame(kind, rows)


def check_events(events: Sequence[Event], *, now: _dt.datetime | None = None) -> None:
    """Check the feedback and points events of ``events`` by the data contract's rules for those tables
    (:mod:`personalize.data.loyalty`); a :class:`DataError` names the event (its position in ``events``) and the
    field. A points event's effect on the balance is not checked here (the store does not know the balance)."""
    from personalize.data.loyalty import check_feedback, check_points

    ref = pd.Timestamp(now) if now is not None else None
    for kind in LEDGER_EVENTS:
        pos = [i for i, e in enumerate(events) if e.type == kind]
        if not pos:
            continue
        frame = _event_frame(kind, [events[i] for i in pos])
        frame = frame.reset_index(drop=True)
        # the frame is time-sorted: keep the original positions to name the event
        order = np.argsort(pd.to_datetime(pd.Series([_utc_naive(events[i].timestamp) for i in pos])).to_numpy(),
                           kind="stable")
        try:
            if kind == "feedback":
                check_feedback(frame, now=ref)
            else:
                check_points(frame, now=ref, negative="allow")
        except DataError as exc:
            rows = [pos[int(order[r])] for r in exc.rows if isinstance(r, (int, np.integer)) and r < len(order)]
            raise DataError(exc.message, table="events", column=exc.column, rows=rows) from None


def _utc_naive(ts: _dt.datetime) -> _dt.datetime:
    if ts.tzinfo is not None:
        ts = ts.astimezone(_dt.timezone.utc).replace(tzinfo=None)
    return ts


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc).replace(tzinfo=None)


class EventStore:
    """Append-only event log in an SQLite file (WAL, synchronous=FULL), plus erasures and worker heartbeats."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        memory = str(path) == ":memory:"
        if not memory:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30.0)
            self._conn.execute("PRAGMA busy_timeout=30000")
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA secure_delete=ON")
            self._conn.executescript(_SCHEMA)
            cols = {r[1] for r in self._conn.execute("PRAGMA table_info(events)")}
            for col, sql in _MIGRATIONS:
                if col not in cols:
                    self._conn.execute(sql)
            self._conn.executescript(_POST_MIGRATION)
        except sqlite3.Error as exc:
            raise DataError(f"event store {path} is not usable: {exc}") from None
        if not memory:
            for p in (self.path, self.path.with_name(self.path.name + "-wal"),
                      self.path.with_name(self.path.name + "-shm")):
                try:
                    os.chmod(p, 0o600)
                except OSError:
                    pass

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> "EventStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ writing
    def append(self, events: Sequence[Event]) -> list[Appended]:
        """Store ``events`` in one transaction (duplicates are acknowledged, not stored twice); returns once
        committed (durable). Feedback and points events must pass :func:`check_events` (a DataError otherwise,
        and nothing is stored)."""
        if not events:
            return []
        check_events(events)
        received = _now().isoformat(timespec="microseconds")
        out: list[Appended] = []
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                for e in events:
                    if e.event_id is not None:
                        row = cur.execute("SELECT id FROM events WHERE event_id = ?", (e.event_id,)).fetchone()
                    elif e.order_id is not None and e.type in LINE_EVENTS:
                        row = cur.execute("SELECT id FROM events WHERE order_id = ? AND item_id = ? AND type = ? "
                                          "AND customer_id = ? AND event_id IS NULL",
                                          (e.order_id, e.item_id, e.type, e.customer_id)).fetchone()
                    else:
                        row = None
                    if row is not None:
                        out.append(Appended(int(row[0]), True))
                        continue
                    cur.execute("INSERT INTO events (received_at, type, customer_id, item_id, quantity, price, "
                                "timestamp, order_id, event_id, offer_id, payload) "
                                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                (received, e.type, e.customer_id, e.item_id, float(e.quantity),
                                 None if e.price is None else float(e.price),
                                 _utc_naive(e.timestamp).isoformat(timespec="microseconds"), e.order_id,
                                 e.event_id, e.offer_id, _payload(e)))
                    out.append(Appended(int(cur.lastrowid), False))
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        return out

    # ------------------------------------------------------------------ erasure
    def erasures(self) -> Erasures:
        """The erasure list (the salt is created with the store)."""
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key = 'erasure_salt'").fetchone()
            if row is None:
                self._conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('erasure_salt', ?)",
                                   (secrets.token_hex(16),))
                row = self._conn.execute("SELECT value FROM meta WHERE key = 'erasure_salt'").fetchone()
            hashes = [r[0] for r in self._conn.execute("SELECT hash FROM erasures")]
        return Erasures(row[0], hashes)

    def forget(self, customer_ids: Iterable[str]) -> dict[str, int]:
        """Erase customers: delete their events, add their salted hashes to the erasure list.

        Returns ``{"customers": n, "events_deleted": m}``. Idempotent.
        """
        er = self.erasures()
        ids = [str(c) for c in customer_ids]
        for c in ids:
            _valid_id(c, "customer_id")
        deleted = 0
        now = _now().isoformat(timespec="seconds")
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                for c in ids:
                    deleted += cur.execute("DELETE FROM events WHERE customer_id = ?", (c,)).rowcount
                    cur.execute("INSERT OR IGNORE INTO erasures (hash, erased_at) VALUES (?, ?)", (er.digest(c), now))
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            # the deleted rows' bytes are zeroed (secure_delete); the WAL still holds the old pages until a
            # checkpoint copies the new ones into the database and truncates it
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return {"customers": len(ids), "events_deleted": int(deleted)}

    # ------------------------------------------------------------------ workers
    def heartbeat(self, pid: int, version: str | None) -> None:
        now = time.time()
        with self._lock:
            self._conn.execute("INSERT INTO workers (pid, version, heartbeat, started) VALUES (?, ?, ?, ?) "
                               "ON CONFLICT(pid) DO UPDATE SET version = excluded.version, "
                               "heartbeat = excluded.heartbeat", (pid, version, now, now))

    def workers(self, *, alive_within: float = 5.0) -> list[dict]:
        """Server processes with a heartbeat in the last ``alive_within`` seconds: pid, version, seconds ago."""
        now = time.time()
        with self._lock:
            self._conn.execute("DELETE FROM workers WHERE heartbeat < ?", (now - 3600,))
            rows = self._conn.execute("SELECT pid, version, heartbeat FROM workers WHERE heartbeat >= ? ORDER BY pid",
                                      (now - alive_within,)).fetchall()
        return [{"pid": int(p), "version": v, "seconds_ago": round(now - h, 3)} for p, v, h in rows]

    def leave(self, pid: int) -> None:
        with self._lock:
            self._conn.execute("DELETE FROM workers WHERE pid = ?", (pid,))

    # ------------------------------------------------------------------ reading
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

    def purchases_after(self, after_id: int = 0, upto_id: int | None = None
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """Stored purchases with ``after_id < id <= upto_id`` as arrays (customer ids, item ids, int64 ns),
        and the last id read.

        A million rows in about a second: SQLite concatenates each column into one string (ids never
        hold control characters, so U+001F separates them) instead of handing out a million tuples.
        The rows come in no particular order (a customer's events are ordered by time when replayed).
        """
        sql = ("SELECT group_concat(customer_id, char(31)), group_concat(item_id, char(31)), "
               "group_concat(timestamp, char(31)), max(id), count(*) FROM events WHERE id > ? AND type = 'purchase'")
        args: list[Any] = [after_id]
        if upto_id is not None:
            sql += " AND id <= ?"
            args.append(upto_id)
        with self._lock:
            cust, item, ts, last, n = self._conn.execute(sql, args).fetchone()
        if not n:
            return (np.zeros(0, dtype=object), np.zeros(0, dtype=object), np.zeros(0, np.int64),
                    int(after_id if upto_id is None else max(after_id, 0)))
        ns = pd.to_datetime(pd.Series(ts.split("\x1f"), dtype="str"), format="ISO8601").to_numpy(
            dtype="datetime64[ns]")
        return (np.array(cust.split("\x1f"), dtype=object), np.array(item.split("\x1f"), dtype=object),
                ns.astype(np.int64), int(last))

    def offer_events_after(self, after_id: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
        """Stored exposures and redemptions after ``after_id``: (customer ids, offer ids, types, int64 ns, last id)."""
        with self._lock:
            rows = self._conn.execute("SELECT id, customer_id, offer_id, type, timestamp FROM events WHERE id > ? "
                                      "AND type IN ('exposure', 'redemption') ORDER BY id", (after_id,)).fetchall()
        if not rows:
            empty = np.zeros(0, dtype=object)
            return empty, empty, empty, np.zeros(0, np.int64), int(after_id)
        ids, cust, offer, typ, ts = zip(*rows)
        ns = pd.to_datetime(pd.Series(ts, dtype="str"), format="ISO8601").to_numpy(dtype="datetime64[ns]")
        return (np.array(cust, dtype=object), np.array(offer, dtype=object), np.array(typ, dtype=object),
                ns.astype(np.int64), int(ids[-1]))

    def exposures_frame(self, *, upto_id: int | None = None) -> pd.DataFrame:
        """Stored offer exposures as canonical exposure rows (for training on them): customer_id, offer_id,
        exposed_at, converted, randomized (False: the service's own targeting, not an experiment).

        An exposure is ``converted`` when the customer redeemed the same offer after it and before the
        next exposure to it.
        """
        sql = "SELECT customer_id, offer_id, type, timestamp FROM events WHERE type IN ('exposure', 'redemption')"
        args: list[Any] = []
        if upto_id is not None:
            sql += " AND id <= ?"
            args.append(upto_id)
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY id", args).fetchall()
        cols = ["customer_id", "offer_id", "exposed_at", "converted", "randomized"]
        if not rows:
            return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(cols, ("object", "object", "datetime64[ns]",
                                                                             "bool", "bool"))})
        df = pd.DataFrame(rows, columns=["customer_id", "offer_id", "type", "at"])
        df["at"] = pd.to_datetime(df["at"].astype("str"), format="ISO8601")
        exp = df[df["type"] == "exposure"].sort_values("at", kind="stable").reset_index(drop=True)
        red = df[df["type"] == "redemption"].sort_values("at", kind="stable")
        converted = np.zeros(len(exp), bool)
        if len(exp) and len(red):
            exp["_row"] = np.arange(len(exp))
            hit = pd.merge_asof(red, exp[["customer_id", "offer_id", "at", "_row"]], on="at",
                                by=["customer_id", "offer_id"], direction="backward")
            rows_hit = hit["_row"].dropna().to_numpy(np.int64)
            converted[rows_hit] = True
        return pd.DataFrame({"customer_id": exp["customer_id"].to_numpy(dtype=object),
                             "offer_id": exp["offer_id"].to_numpy(dtype=object), "exposed_at": exp["at"].to_numpy(),
                             "converted": converted, "randomized": np.zeros(len(exp), bool)})

    def ledger_rows(self, *, after_id: int = 0, upto_id: int | None = None, type: str | None = None) -> list[dict]:
        """Stored feedback and points events after ``after_id`` (in id order) as dicts with the payload fields."""
        sql = ("SELECT id, type, customer_id, item_id, timestamp, order_id, payload FROM events WHERE id > ? "
               "AND type IN ('feedback', 'points')")
        args: list[Any] = [after_id]
        if upto_id is not None:
            sql += " AND id <= ?"
            args.append(upto_id)
        if type is not None:
            sql += " AND type = ?"
            args.append(type)
        return [_unpack(r) for r in self._rows(sql + " ORDER BY id", args)]

    def feedback_frame(self, *, upto_id: int | None = None, after_id: int = 0) -> pd.DataFrame:
        """Stored feedback events as rows of the feedback table (canonical columns, sorted by time)."""
        return ledger_frame("feedback", self.ledger_rows(after_id=after_id, upto_id=upto_id, type="feedback"))

    def points_frame(self, *, upto_id: int | None = None, after_id: int = 0) -> pd.DataFrame:
        """Stored points events as rows of the points ledger (canonical columns, sorted by time)."""
        return ledger_frame("points", self.ledger_rows(after_id=after_id, upto_id=upto_id, type="points"))

    def count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def last_id(self) -> int:
        with self._lock:
            v = self._conn.execute("SELECT MAX(id) FROM events").fetchone()[0]
        return int(v or 0)

    @staticmethod
    def unpack(row: Mapping) -> dict:
        """A stored event row (from :meth:`events`) with its payload fields (feedback and points) spread out."""
        return _unpack(row)

    @staticmethod
    def purchase_arrays(rows: Iterable[Mapping]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Purchase rows (dicts from :meth:`events`) as aligned arrays: (customer ids, item ids, int64 ns)."""
        rows = [r for r in rows if r["type"] == "purchase"]
        cust = np.array([r["customer_id"] for r in rows], dtype=object)
        item = np.array([r["item_id"] for r in rows], dtype=object)
        ns = pd.to_datetime([r["timestamp"] for r in rows], format="ISO8601").as_unit("ns").asi8 if rows \
            else np.zeros(0, np.int64)
        return cust, item, np.asarray(ns, dtype=np.int64)

    def purchases_frame(self, *, upto_id: int | None = None) -> pd.DataFrame:
        """Stored purchases as canonical transaction rows (for training on them): customer_id, item_id,
        timestamp, quantity, price, order_id."""
        sql = "SELECT customer_id, item_id, timestamp, quantity, price, order_id FROM events WHERE type = 'purchase'"
        args: list[Any] = []
        if upto_id is not None:
            sql += " AND id <= ?"
            args.append(upto_id)
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY id", args).fetchall()
        df = pd.DataFrame(rows, columns=["customer_id", "item_id", "timestamp", "quantity", "price", "order_id"])
        df["timestamp"] = pd.to_datetime(df["timestamp"].astype("str"), format="ISO8601")
        return df
