"""Feedback and loyalty points over a loaded bundle, with the events posted since it was published.

:class:`LoyaltyDesk` keeps the bundle's ``feedback`` table (the feedback rows
as of the bundle, free text left out) and ``points_lots`` table (every points
lot with points left at the bundle's end), plus the feedback and points events
received since (``record``). Everything it answers is live:

* the profile's satisfaction and points sections are recomputed, for a
  customer with events since the bundle, from her bundle rows plus her events,
  as of now (an unresolved complaint posted a second ago shows at once);
* an item a customer rated 1-2 stars since the bundle is never recommended to
  her again (:meth:`LoyaltyDesk.dislikes`; the bundle's own ratings are in the
  models, :mod:`personalize.recommenders.feedback`);
* audience filters (detractor, open complaints, points) see the live values
  (:meth:`LoyaltyDesk.overlay`);
* NPS / CSAT by month, channel, segment, tier or lifecycle
  (:meth:`LoyaltyDesk.satisfaction`) include the feedback posted since.

Erased customers are left out by the runtime (their events are never recorded
and their bundle rows never read).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from personalize.analytics.points import POINTS_COLUMNS, PointsPolicy, points_columns
from personalize.analytics.satisfaction import DEFAULT_MIN_RESPONSES, FEEDBACK_COLUMNS, feedback_columns, scores_by
from personalize.data.loyalty import STAR_DISLIKE_MAX
from personalize.data.schema import FEEDBACK, POINTS
from personalize.errors import MissingComponentError

__all__ = ["LoyaltyDesk"]

_FEEDBACK_COLS = list(FEEDBACK.columns)
_POINTS_COLS = list(POINTS.columns)
#: the customer-table values live points events add to
_POINT_BASE = ("points_balance", "points_earned_12m", "points_redeemed_12m")


def _utc_now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC").tz_localize(None)


def _by_customer(table: pd.DataFrame | None) -> tuple[pd.DataFrame | None, np.ndarray | None]:
    if table is None:
        return None, None
    t = table.assign(customer_id=table["customer_id"].astype(str))
    t = t.sort_values(["customer_id", "timestamp" if "timestamp" in t.columns else "earned_at"],
                      kind="stable").reset_index(drop=True)
    return t, t["customer_id"].to_numpy(dtype=object).astype(str)


class LoyaltyDesk:
    """The feedback and points side of one bundle (see the module docstring)."""

    def __init__(self, feedback: pd.DataFrame | None, lots: pd.DataFrame | None, *, points_info: Mapping | None = None,
                 as_of: str | None = None) -> None:
        self.feedback, self._fb_ids = _by_customer(feedback)
        self.lots, self._lot_ids = _by_customer(lots)
        info = dict(points_info or {})
        self.policy = PointsPolicy(expiry=str(info.get("mode") or "auto"),
                                   point_value=float(info.get("point_value", PointsPolicy().point_value)))
        self.as_of = as_of
        self.live_feedback: dict[str, list[dict]] = {}
        self.live_points: dict[str, list[dict]] = {}
        self._dislikes: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ events
    @property
    def has_feedback(self) -> bool:
        return self.feedback is not None or bool(self.live_feedback)

    @property
    def has_points(self) -> bool:
        return self.lots is not None or bool(self.live_points)

    def record(self, kind: str, row: Mapping) -> None:
        """One feedback or points event as a table row (``customer_id``, ``timestamp``, ...)."""
        cid = str(row["customer_id"])
        clean = {c: row.get(c) for c in (_FEEDBACK_COLS if kind == "feedback" else _POINTS_COLS)}
        clean["customer_id"] = cid
        clean["timestamp"] = pd.Timestamp(row["timestamp"])
        with self._lock:
            (self.live_feedback if kind == "feedback" else self.live_points).setdefault(cid, []).append(clean)
            if kind == "feedback" and clean.get("item_id") and clean.get("score") is not None \
                    and (clean.get("scale") or ("stars" if clean.get("kind") in ("rating", "review") else None)) \
                    == "stars" and float(clean["score"]) <= STAR_DISLIKE_MAX:
                self._dislikes.setdefault(cid, set()).add(str(clean["item_id"]))

    def forget(self, customer_id: str) -> None:
        with self._lock:
            self.live_feedback.pop(customer_id, None)
            self.live_points.pop(customer_id, None)
            self._dislikes.pop(customer_id, None)

    def dislikes(self, customer_id: str) -> set[str]:
        """Items the customer rated 1-2 stars since the bundle was published."""
        return self._dislikes.get(customer_id, set())

    def live_customers(self) -> set[str]:
        return set(self.live_feedback) | set(self.live_points)

    # ------------------------------------------------------------------ per customer
    @staticmethod
    def _rows(table: pd.DataFrame | None, ids: np.ndarray | None, customers: list[str]) -> pd.DataFrame | None:
        """The rows of ``customers`` in a table sorted by customer id."""
        if table is None or not customers:
            return None
        q = np.asarray(customers, dtype=object).astype(str)
        lo = np.searchsorted(ids, q, side="left")
        hi = np.searchsorted(ids, q, side="right")
        if not (hi > lo).any():
            return table.iloc[:0]
        pos = np.concatenate([np.arange(a, b) for a, b in zip(lo.tolist(), hi.tolist()) if b > a])
        return table.iloc[pos]

    def _feedback_of(self, customers: list[str]) -> pd.DataFrame:
        base = self._rows(self.feedback, self._fb_ids, customers)
        live = pd.DataFrame([r for c in customers for r in self.live_feedback.get(c, [])], columns=_FEEDBACK_COLS)
        frames = [f for f in (base, live) if f is not None and len(f)]
        if not frames:
            return pd.DataFrame(columns=_FEEDBACK_COLS)
        out = pd.concat([f.reindex(columns=_FEEDBACK_COLS) for f in frames], ignore_index=True)
        out["timestamp"] = pd.to_datetime(out["timestamp"]).astype("datetime64[ns]")
        out["resolved_at"] = pd.to_datetime(out["resolved_at"]).astype("datetime64[ns]")
        out["score"] = pd.to_numeric(out["score"], errors="coerce").astype(np.float64)
        out["resolved"] = out["resolved"].map(lambda v: bool(v) if v is not None and v == v else False).astype(bool)
        out["resolved"] |= out["resolved_at"].notna()
        scale = out["scale"].astype("object")
        starry = out["kind"].astype("object").isin(["rating", "review"]) & scale.isna() & out["score"].notna()
        out["scale"] = scale.mask(starry, "stars")
        return out.sort_values("timestamp", kind="stable").reset_index(drop=True)

    def satisfaction(self, customer_id: str, attrs: Mapping) -> dict | None:
        """The profile's satisfaction section: live when the customer has feedback events since the bundle."""
        if customer_id in self.live_feedback:
            now = _utc_now()
            cols = feedback_columns(self._feedback_of([customer_id]), now, [customer_id]).iloc[0].to_dict()
            return _satisfaction_out(cols, now.isoformat())
        if "feedback_responses" in attrs or "open_complaints" in attrs:
            return _satisfaction_out(attrs, self.as_of)
        return None

    def points(self, customer_id: str, attrs: Mapping) -> dict | None:
        """The profile's points section: live when the customer has points events since the bundle."""
        if customer_id in self.live_points:
            now = _utc_now()
            base = pd.DataFrame([{k: attrs.get(k) for k in _POINT_BASE}], index=[customer_id])
            cols = self._points_now([customer_id], base, now).iloc[0].to_dict()
            return _points_out(cols, now.isoformat())
        if "points_balance" in attrs:
            return _points_out(attrs, self.as_of)
        return None

    def _points_now(self, customers: list[str], base: pd.DataFrame, now: pd.Timestamp) -> pd.DataFrame:
        """The points columns of ``customers`` now: expiries from their bundle lots plus their events (the lots
        model), balances and 12-month sums from the bundle's values (``base``, by customer) plus the events."""
        live = pd.DataFrame([r for c in customers for r in self.live_points.get(c, [])], columns=_POINTS_COLS)
        live["customer_id"] = live["customer_id"].astype("object")
        live["timestamp"] = pd.to_datetime(live["timestamp"]).astype("datetime64[ns]")
        live["expires_at"] = pd.to_datetime(live["expires_at"]).astype("datetime64[ns]")
        live["delta"] = live["delta"].astype(np.float64)
        lots = self._rows(self.lots, self._lot_ids, customers)
        frames = [live]
        if lots is not None and len(lots):
            frames.insert(0, pd.DataFrame({"customer_id": lots["customer_id"].to_numpy(dtype=object),
                                           "timestamp": lots["earned_at"].to_numpy(),
                                           "delta": lots["left"].to_numpy(dtype=np.float64), "reason": "earn",
                                           "order_id": None, "expires_at": lots["expires_at"].to_numpy()}))
        frame = pd.concat(frames, ignore_index=True).sort_values("timestamp", kind="stable")
        cols = points_columns(frame, now, customers, policy=self.policy)
        r = live["reason"].astype("object")
        by = live["customer_id"].to_numpy(dtype=object)
        summed = lambda m: (live["delta"].where(m.to_numpy(), 0.0).groupby(by).sum()  # noqa: E731
                            .reindex(cols.index, fill_value=0.0).to_numpy())
        b = base.reindex(cols.index)
        get = lambda k: pd.to_numeric(b[k], errors="coerce").fillna(0.0).to_numpy() if k in b else 0.0  # noqa: E731
        cols["points_balance"] = get("points_balance") + summed(r.notna())
        cols["points_earned_12m"] = get("points_earned_12m") + summed(r == "earn")
        cols["points_redeemed_12m"] = get("points_redeemed_12m") - summed(r == "redeem")
        cols["points_liability"] = cols["points_balance"].clip(lower=0.0) * self.policy.point_value
        return cols

    def balance(self, customer_id: str, attrs: Mapping) -> float:
        """The customer's points balance now (bundle plus events since)."""
        base = float(attrs.get("points_balance") or 0.0)
        return base + float(sum(float(r.get("delta") or 0.0) for r in self.live_points.get(customer_id, [])))

    # ------------------------------------------------------------------ many customers
    def overlay(self, table: pd.DataFrame) -> pd.DataFrame:
        """``table`` (the customer table) with the live feedback and points columns of the customers who have
        events since the bundle (a copy of those columns only when someone does; one vectorized pass)."""
        fb_cols = [c for c in FEEDBACK_COLUMNS if c in table.columns]
        pt_cols = [c for c in POINTS_COLUMNS if c in table.columns]
        index = pd.Index(table["customer_id"].to_numpy(dtype=object))
        now = _utc_now()
        out = None
        for live, cols in ((self.live_feedback, fb_cols), (self.live_points, pt_cols)):
            who = [c for c in list(live) if c in index] if cols else []
            if not who:
                continue
            if live is self.live_feedback:
                vals = feedback_columns(self._feedback_of(who), now, who)
            else:
                base = table.set_index("customer_id").reindex(who)[[c for c in _POINT_BASE if c in table.columns]]
                vals = self._points_now(who, base, now)
            if out is None:
                out = table.copy(deep=False)
            pos = index.get_indexer(who)
            for c in cols:
                col = out[c].to_numpy(copy=True)
                v = vals[c].to_numpy()
                if col.dtype == bool or str(out[c].dtype) == "boolean":
                    col = pd.array(col, dtype="boolean")
                    col[pos] = pd.array(v.astype(bool), dtype="boolean")
                    out[c] = col
                else:
                    col = col.astype(np.float64) if col.dtype.kind in "iu" else col
                    col[pos] = v
                    out[c] = col
        return table if out is None else out

    def satisfaction_table(self, by: str, *, labels: pd.DataFrame | None, exclude: Iterable[str] | None = None,
                           erased=None, min_responses: int = DEFAULT_MIN_RESPONSES) -> pd.DataFrame:
        """NPS, CSAT and star ratings by ``by`` over the bundle's feedback plus the feedback posted since."""
        if not self.has_feedback:
            raise MissingComponentError("this bundle has no feedback (train with a feedback table: "
                                        "`personalize train --feedback ...`)")
        frames = [] if self.feedback is None else [self.feedback.reindex(columns=_FEEDBACK_COLS)]
        live = [r for rows in self.live_feedback.values() for r in rows]
        if live:
            lf = pd.DataFrame(live, columns=_FEEDBACK_COLS)
            lf["timestamp"] = pd.to_datetime(lf["timestamp"]).astype("datetime64[ns]")
            lf["score"] = pd.to_numeric(lf["score"], errors="coerce").astype(np.float64)
            scale = lf["scale"].astype("object")
            lf["scale"] = scale.mask(lf["kind"].astype("object").isin(["rating", "review"]) & scale.isna()
                                     & lf["score"].notna(), "stars")
            frames.append(lf)
        fb = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        if erased is not None and len(fb):
            fb = fb.loc[~erased(fb["customer_id"].to_numpy(dtype=object))]
        return scores_by(fb, by, labels=labels, min_responses=min_responses)


def _num(v):
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if f != f else f


def _satisfaction_out(v: Mapping, as_of: str | None) -> dict:
    det = v.get("detractor")
    return {"responses": int(_num(v.get("feedback_responses")) or 0), "last_score": _num(v.get("last_score")),
            "last_score_scale": v.get("last_score_scale") if isinstance(v.get("last_score_scale"), str) else None,
            "last_score_norm": _num(v.get("last_score_norm")), "score_trend": _num(v.get("score_trend")),
            "detractor": False if det is None or pd.isna(det) else bool(det),
            "complaints": int(_num(v.get("complaints")) or 0),
            "open_complaints": int(_num(v.get("open_complaints")) or 0),
            "days_since_complaint": _num(v.get("days_since_complaint")), "as_of": as_of}


def _points_out(v: Mapping, as_of: str | None) -> dict:
    return {"balance": _num(v.get("points_balance")) or 0.0, "expiring_30d": _num(v.get("points_expiring_30d")) or 0.0,
            "next_expiry_days": _num(v.get("points_next_expiry_days")),
            "earned_12m": _num(v.get("points_earned_12m")), "redeemed_12m": _num(v.get("points_redeemed_12m")),
            "liability": _num(v.get("points_liability")), "as_of": as_of}
