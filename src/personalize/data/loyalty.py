"""The feedback table and the points ledger: the rules the casts cannot see, and point-in-time slices.

**feedback** (one row per survey answer, rating, review or complaint):

* ``kind`` is one of survey, rating, review, complaint (case-insensitive);
* a ``score`` has a ``scale``: ``csat`` (1-5, whole numbers), ``nps`` (0-10,
  whole numbers) or ``stars`` (1-5); ratings and reviews without a scale are
  on ``stars``; a survey or complaint score without a scale is an error, and
  so is a score outside its scale; surveys and ratings need a score;
* ``resolved_at`` (when a complaint was closed) is not before the row's
  ``timestamp``; a row with ``resolved_at`` counts as resolved;
* timestamps (and resolution times) more than the cleaning tolerance in the
  future are refused, as for transactions.

**points** (the loyalty ledger, one row per balance change):

* ``reason`` is one of earn, redeem, expire, adjust; earn rows add points
  (``delta > 0``), redeem and expire rows take them (``delta < 0``), adjust
  rows may do either; a zero delta is refused;
* ``expires_at`` (when the points of an earn row lapse) is not before its
  ``timestamp``;
* with ``CleaningOptions(negative_points="error")`` (the default, the strict
  policy) a row that takes a customer's running balance (the sum of her
  deltas in time order) below zero is refused, naming it.

Every error is a :class:`~personalize.errors.DataError` naming the table, the
column and the rows (positions in the input as read).

**Point in time.** :func:`slice_feedback` keeps the rows given inside a window
and forgets resolutions made at or after its end (a complaint closed after a
cutoff is open before it); :func:`slice_points` keeps the ledger rows inside
the window (a balance needs the slice to start at the beginning of the data).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from personalize.data.schema import FEEDBACK_KINDS, POINTS_REASONS, SCORE_SCALES
from personalize.errors import DataError

__all__ = ["check_feedback", "check_points", "slice_feedback", "slice_points", "STAR_DISLIKE_MAX"]

#: a star rating at or below this (1-2 stars) means the customer does not want the item recommended again
STAR_DISLIKE_MAX = 2.0


def _fail(msg: str, table: str, column: str, mask: np.ndarray, values: pd.Series | None = None) -> None:
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return
    rows = np.flatnonzero(mask)[:5].tolist()
    shown = "" if values is None else f" ({', '.join(repr(v) for v in values[mask].head(3).tolist())})"
    raise DataError(f"{msg}{shown}", table=table, column=column, rows=rows)


def _lower(s: pd.Series) -> pd.Series:
    return s.str.strip().str.lower()


def _future(df: pd.DataFrame, table: str, columns: tuple[str, ...], now, tolerance_days: float) -> None:
    ref = pd.Timestamp(now) if now is not None else pd.Timestamp.now(tz="UTC").tz_localize(None)
    limit = ref + pd.Timedelta(days=tolerance_days)
    for col in columns:
        if col in df.columns:
            _fail(f"timestamps in the future (later than {limit:%Y-%m-%d %H:%M}; tolerance {tolerance_days:g} days)",
                  table, col, (df[col] > limit).fillna(False).to_numpy(dtype=bool))


def check_feedback(fb: pd.DataFrame, *, now=None, tolerance_days: float = 1.0) -> pd.DataFrame:
    """A cast feedback table checked (see the module docstring), normalized and sorted by time (stable)."""
    t = "feedback"
    out = fb.copy()
    if not len(out):
        raise DataError("no data rows", table=t)
    kind = out["kind"]
    _fail("missing kind", t, "kind", kind.isna().to_numpy())
    kind = _lower(kind)
    _fail(f"unknown feedback kind; expected one of {', '.join(FEEDBACK_KINDS)}", t, "kind",
          ~kind.isin(FEEDBACK_KINDS).to_numpy(), out["kind"])
    out["kind"] = kind
    has_score = "score" in out.columns
    score = out["score"] if has_score else pd.Series(np.nan, index=out.index)
    scored = score.notna().to_numpy()
    if "scale" in out.columns:
        scale = _lower(out["scale"])
        given = scale.notna().to_numpy()
        _fail(f"unknown score scale; expected one of {', '.join(SCORE_SCALES)}", t, "scale",
              given & ~scale.isin(list(SCORE_SCALES)).to_numpy(), out["scale"])
    else:
        scale = pd.Series(None, index=out.index, dtype="str")
        given = np.zeros(len(out), bool)
    starry = kind.isin(("rating", "review")).to_numpy()
    scale = scale.mask(scored & ~given & starry, "stars")
    _fail("a survey or complaint score needs its scale (csat, nps or stars)", t, "scale",
          scored & scale.isna().to_numpy())
    _fail("a survey or rating needs a score", t, "score", kind.isin(("survey", "rating")).to_numpy() & ~scored)
    vals = score.to_numpy(dtype=np.float64, na_value=np.nan)
    for name, (lo, hi) in SCORE_SCALES.items():
        on = scored & (scale == name).fillna(False).to_numpy(dtype=bool)
        _fail(f"scores outside their scale ({name} is {lo:g}-{hi:g})", t, "score",
              on & ((vals < lo) | (vals > hi)), score)
        if name in ("csat", "nps"):
            _fail(f"{name} scores must be whole numbers", t, "score", on & (np.mod(vals, 1.0) != 0), score)
    out["scale"] = scale.where(pd.Series(scored, index=out.index), None).astype("str")
    if not has_score:
        out["score"] = np.nan
    _future(out, t, ("timestamp", "resolved_at"), now, tolerance_days)
    if "resolved_at" in out.columns:
        _fail("resolved_at is before the feedback's timestamp", t, "resolved_at",
              (out["resolved_at"] < out["timestamp"]).fillna(False).to_numpy(dtype=bool))
        res = out["resolved"].to_numpy(dtype=bool) if "resolved" in out.columns else np.zeros(len(out), bool)
        out["resolved"] = res | out["resolved_at"].notna().to_numpy()
    elif "resolved" in out.columns:
        out["resolved"] = out["resolved"].astype(bool)
    return out.sort_values("timestamp", kind="stable").reset_index(drop=True)


def check_points(points: pd.DataFrame, *, now=None, tolerance_days: float = 1.0,
                 negative: str = "error") -> pd.DataFrame:
    """A cast points ledger checked (see the module docstring) and sorted by time (stable)."""
    t = "points"
    out = points.copy()
    if not len(out):
        raise DataError("no data rows", table=t)
    reason = out["reason"]
    _fail("missing reason", t, "reason", reason.isna().to_numpy())
    reason = _lower(reason)
    _fail(f"unknown points reason; expected one of {', '.join(POINTS_REASONS)}", t, "reason",
          ~reason.isin(POINTS_REASONS).to_numpy(), out["reason"])
    out["reason"] = reason
    d = out["delta"].to_numpy(dtype=np.float64)
    _fail("a delta of 0 changes nothing", t, "delta", d == 0)
    _fail("earn rows need a positive delta", t, "delta", (reason == "earn").to_numpy() & (d < 0), out["delta"])
    _fail("redeem and expire rows take points: they need a negative delta", t, "delta",
          reason.isin(("redeem", "expire")).to_numpy() & (d > 0), out["delta"])
    _future(out, t, ("timestamp",), now, tolerance_days)
    if "expires_at" in out.columns:
        _fail("expires_at is before the row's timestamp", t, "expires_at",
              (out["expires_at"] < out["timestamp"]).fillna(False).to_numpy(dtype=bool))
    out["_row"] = np.arange(len(out))
    out = out.sort_values("timestamp", kind="stable").reset_index(drop=True)
    if negative == "error":
        bal = out.groupby("customer_id", sort=False)["delta"].cumsum().to_numpy()
        bad = bal < -1e-9
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            rows = np.sort(out["_row"].to_numpy()[bad])[:5].tolist()
            raise DataError(f"points taken beyond the balance: customer {out['customer_id'].iat[first]!r} would be "
                            f"at {bal[first]:g} points on {out['timestamp'].iat[first]} (strict policy; "
                            "negative_points='allow' keeps such rows)", table=t, column="delta", rows=rows)
    return out.drop(columns="_row")


def _window(ts: pd.Series, start, end) -> np.ndarray:
    m = np.ones(len(ts), dtype=bool)
    if start is not None:
        m &= (ts >= start).to_numpy()
    if end is not None:
        m &= (ts < end).to_numpy()
    return m


def slice_feedback(fb: pd.DataFrame | None, start, end) -> pd.DataFrame | None:
    """Feedback given in ``[start, end)`` as known at ``end``: resolutions at or after ``end`` are undone."""
    if fb is None:
        return None
    m = _window(fb["timestamp"], start, end)
    out = fb if m.all() else fb.loc[m].reset_index(drop=True)
    if end is not None and "resolved_at" in out.columns:
        late = (out["resolved_at"] >= end).fillna(False).to_numpy(dtype=bool)
        if late.any():
            out = out.copy()
            out.loc[late, "resolved_at"] = pd.NaT
            if "resolved" in out.columns:
                out.loc[late, "resolved"] = False
    return out


def slice_points(points: pd.DataFrame | None, start, end) -> pd.DataFrame | None:
    """Ledger rows in ``[start, end)``."""
    if points is None:
        return None
    m = _window(points["timestamp"], start, end)
    return points if m.all() else points.loc[m].reset_index(drop=True)
