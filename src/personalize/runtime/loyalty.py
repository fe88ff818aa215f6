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
    def _rows(self, table: pd.DataFrame | None, ids: np.ndarray | None, customer_id: str) -> pd.DataFrame | None:
        if table is None:
            return None
        lo = int(np.searchsorted(ids, customer_id, side="left"))
        hi = int(np.searchsorted(ids, customer_id, side="right"))
        return table.iloc[lo:hi]

    def _feedback_of(self, customer_id: str) -> pd.DataFrame:
        base = self._rows(self.feedback, self._fb_ids, customer_id)
        live = pd.DataFrame(self.live_feedback.get(customer_id, []), columns=_FEEDBACK_COLS)
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
            cols = feedback_columns(self._feedback_of(customer_id), now, [customer_id]).iloc[0].to_dict()
            return _satisfaction_out(cols, now.isoformat())
        if "feedback_responses" in attrs or "open_complaints" in attrs:
            return _satisfaction_out(attrs, self.as_of)
        return None

    def points(self, customer_id: str, attrs: Mapping) -> dict | None:
        """The profile's points section: live when the customer has points events since the bundle."""
        if customer_id in self.live_points:
            now = _utc_now()
            cols = self._points_now(customer_id, attrs, now)
            return _points_out(cols, now.isoformat())
        if "points_balance" in attrs:
            return _points_out(attrs, self.as_of)
        return None

    def _points_now(self, customer_id: str, attrs: Mapping, now: pd.Timestamp) -> dict:
        live = pd.DataFrame(self.live_points.get(customer_id, []), columns=_POINTS_COLS)
        live["timestamp"] = pd.to_datetime(live["timestamp"]).astype("datetime64[ns]")
        live["expires_at"] = pd.to_datetime(live["expires_at"]).astype("datetime64[ns]")
        live["delta"] = live["delta"].astype(np.float64)
        lots = self._rows(self.lots, self._lot_ids, customer_id)
        frames = [live]
        if lots is not None and len(lots):
            frames.insert(0, pd.DataFrame({"customer_id": customer_id, "timestamp": lots["earned_at"].to_numpy(),
                                           "delta": lots["left"].to_numpy(dtype=np.float64), "reason": "earn",
                                           "order_id": None, "expires_at": lots["expires_at"].to_numpy()}))
        frame = pd.concat(frames, ignore_index=True).sort_values("timestamp", kind="stable")
        cols = points_columns(frame, now, [customer_id], policy=self.policy).iloc[0].to_dict()
        d = live["delta"].to_numpy()
        r = live["reason"].astype("object").to_numpy()
        base = lambda k: float(attrs.get(k) or 0.0)  # noqa: E731
        cols["points_balance"] = base("points_balance") + float(d.sum())
        cols["points_earned_12m"] = base("points_earned_12m") + float(d[r == "earn"].sum())
        cols["points_redeemed_12m"] = base("points_redeemed_12m") - float(d[r == "redeem"].sum())
        cols["points_liability"] = max(cols["points_balance"], 0.0) * self.policy.point_value
        return cols

    def balance(self, customer_id: str, attrs: Mapping) -> float:
        """The customer's points balance now (bundle plus events since)."""
        base = float(attrs.get("points_balance") or 0.0)
        return base + float(sum(float(r.get("delta") or 0.0) for r in self.live_points.get(customer_id, [])))

    # ------------------------------------------------------------------ many customers
    def overlay(self, table: pd.DataFrame) -> pd.DataFrame:
        """``table`` (the customer table) with the live feedback and points columns of the customers who have
        events since the bundle (a copy only when someone does)."""
        who = [c for c in self.live_customers()]
        if not who:
            return table
        pos = pd.Index(table["customer_id"].to_numpy(dtype=object)).get_indexer(who)
        rows = {c: p for c, p in zip(who, pos.tolist()) if p >= 0}
        if not rows:
            return table
        fb_cols = [c for c in FEEDBACK_COLUMNS if c in table.columns]
        pt_cols = [c for c in POINTS_COLUMNS if c in table.columns]
        out = table.copy()
        now = _utc_now()
        for cid, p in rows.items():
            attrs = table.iloc[p].to_dict()
            if cid in self.live_feedback and fb_cols:
                vals = feedback_columns(self._feedback_of(cid), now, [cid]).iloc[0]
                for c in fb_cols:
                    out.iat[p, out.columns.get_loc(c)] = vals[c]
            if cid in self.live_points and pt_cols:
                vals = self._points_now(cid, attrs, now)
                for c in pt_cols:
                    out.iat[p, out.columns.get_loc(c)] = vals[c]
        return out

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
