"""Churn-specific customer features at a cutoff (purchase rhythm, recent windows, BG/NBD).

Every feature is computed from transactions with ``timestamp < cutoff`` only.
Purchases are counted per customer and calendar day (several orders on one
day are one purchase, as in the BG/NBD papers). Times are in days.

========================  ==========================================================
feature                   definition
========================  ==========================================================
recency_days              cutoff - last purchase day
tenure_days               cutoff - first purchase day
purchases                 distinct purchase days
purchase_rate_30d         purchases per 30 days of tenure
spend_total               sum of ``amount``
spend_per_purchase        spend_total / purchases
spend_last                spend on the last purchase day
spend_first               spend on the first purchase day
spend_max                 largest purchase-day spend
units_per_purchase        units (quantity) per purchase day
gap_mean_days             mean days between consecutive purchase days (NaN if 1 purchase)
gap_std_days              standard deviation of those gaps (NaN with < 2 gaps)
gap_last_days             days between the last two purchase days (NaN if 1 purchase)
gap_max_days              longest gap (NaN if 1 purchase)
overdue_ratio             recency_days / gap_mean_days ("how many usual gaps late")
overdue_days              recency_days - gap_mean_days
recency_share             recency_days / tenure_days (1 for one-time buyers)
purchases_<w>d            purchase days in the last ``w`` days (w in ``windows``)
spend_<w>d                spend in the last ``w`` days
activity_<w>d             purchases_<w>d / (purchase_rate * min(w, tenure)): recent
                          activity relative to the customer's own average
spend_trend               (spend last 91 d - spend 91-182 d before) / their sum (0 if none)
bgnbd_p_alive             BG/NBD P(alive) fitted on every customer at this cutoff
bgnbd_expected            BG/NBD expected purchases in the next ``horizon_days``
bgnbd_p_none              BG/NBD P(no purchase in the next ``horizon_days``)
repeat_items              items bought on >= 2 days (regular re-buys; only with > 1 item)
repeat_items_overdue      of those, how many are past their due date (last purchase of
                          the item + the customer's mean gap for it)
repeat_item_due_days      earliest due date relative to the cutoff (negative = overdue)
repeat_item_next_due_days soonest due date still ahead of the cutoff
========================  ==========================================================

With a feedback table (as known at the cutoff: complaints resolved later are
still open) the satisfaction features are added: ``feedback_responses``,
``last_score_norm``, ``mean_score_norm``, ``score_trend``, ``detractor``,
``complaints``, ``open_complaints``, ``days_since_complaint`` (see
:mod:`personalize.analytics.satisfaction`), ``detractor_answers_91d`` and
``complaints_91d``; with a points ledger ``points_balance``,
``points_expiring_30d``, ``points_next_expiry_days``, ``points_earned_12m``
and ``points_redeemed_12m`` (:mod:`personalize.analytics.points`). Without
those tables the features are exactly the ones above.

BG/NBD columns are NaN when the model cannot be fitted (e.g. no repeat buyer).
Target features (``target_mask``, for propensity models of one category or
item set): ``target_purchases``, ``target_recency_days``, ``target_spend_share``,
``target_purchases_<w>d`` for the two longest windows.
"""

from __future__ import annotations

import warnings
from typing import Any, TYPE_CHECKING

import numpy as np
import pandas as pd

from personalize import _sets
from personalize.analytics._frames import transactions_of
from personalize.analytics.clv import BGNBDModel
from personalize.data.validate import to_timestamp
from personalize.errors import DataError, PersonalizeError

if TYPE_CHECKING:
    from personalize.data import DateLike, History

__all__ = ["churn_features", "cut_transactions", "window_selector", "DEFAULT_WINDOWS", "NS_DAY", "bgnbd_p_none"]

NS_DAY = 86_400_000_000_000
DEFAULT_WINDOWS: tuple[int, ...] = (28, 56, 91, 182)


transactions_frame = transactions_of  # the canonical transactions of a Dataset or a frame


def window_selector(data: History, start: pd.Timestamp | None, end: pd.Timestamp):
    """Selector (a slice for a Dataset, whose rows are time-sorted, else a boolean mask) of the
    transactions rows with ``start <= timestamp < end`` (``start=None``: from the beginning)."""
    tx = transactions_frame(data)
    ts = tx["timestamp"].to_numpy(dtype="datetime64[ns]")
    e = np.datetime64(end.to_datetime64(), "ns")
    if not isinstance(data, pd.DataFrame):
        hi = int(np.searchsorted(ts, e, side="left"))
        lo = 0 if start is None else int(np.searchsorted(ts, np.datetime64(start.to_datetime64(), "ns"),
                                                          side="left"))
        return slice(lo, max(lo, hi))
    mask = ts < e
    if start is not None:
        mask &= ts >= np.datetime64(start.to_datetime64(), "ns")
    return mask


def point_in_time(data: History, start: pd.Timestamp | None, end: pd.Timestamp):
    """The Dataset slice ``[start, end)`` as known at ``end`` (None for a plain frame).

    Cleaning nets returns against the purchases they cancel; the slice undoes
    returns made at or after ``end``, so a cutoff never sees a later return.
    Purchase lines returned in full after ``end`` come back into the slice
    (``restored_mask`` marks them); :func:`align_mask` fits a mask over the
    full data's rows to the slice.
    """
    if isinstance(data, pd.DataFrame) or not callable(getattr(data, "until", None)):
        return None
    return data.until(end) if start is None else data.between(start, end)


def align_mask(pt: Any, mask: np.ndarray) -> np.ndarray:
    """``mask`` over the rows the slice shares with the full data -> a mask over the slice's rows
    (restored purchase lines, later returned in full, are never marked)."""
    restored = getattr(pt, "restored_mask", None)
    if pt is None or restored is None:
        return mask
    out = np.zeros(len(restored), dtype=bool)
    out[~restored] = mask
    return out


def cut_transactions(data: History, start: pd.Timestamp | None, end: pd.Timestamp) -> pd.DataFrame:
    """Rows with ``start <= timestamp < end`` (``start=None``: from the beginning)."""
    tx = transactions_frame(data)
    sel = window_selector(data, start, end)
    return tx.iloc[sel] if isinstance(sel, slice) else tx.loc[sel]


def bgnbd_p_none(params: dict, x: np.ndarray, tx: np.ndarray, T: np.ndarray, t: float,
                 p_alive: np.ndarray) -> np.ndarray:
    """P(no purchase in (T, T+t]) under BG/NBD: dead, or alive with no purchase.

    Given alive, lambda | history ~ Gamma(r + x, alpha + T), so
    P(0 purchases in t | alive) = ((alpha + T) / (alpha + T + t)) ** (r + x);
    a customer drops out only right after a purchase, so no purchase keeps her alive.
    """
    r, alpha = params["r"], params["alpha"]
    none_alive = np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + T + t)))
    return (1.0 - p_alive) + p_alive * none_alive


def _bgnbd_columns(x, tx, T, horizon_weeks: float) -> tuple[dict[str, np.ndarray], dict | None]:
    n = len(x)
    nan = np.full(n, np.nan)
    out = {"bgnbd_p_alive": nan, "bgnbd_expected": nan.copy(), "bgnbd_p_none": nan.copy()}
    if n == 0 or not (x > 0).any():
        return out, None
    try:
        model = BGNBDModel().fit(frequency=x, recency=tx, T=T)
        p_alive = model.p_alive(frequency=x, recency=tx, T=T)
        expected = model.expected_purchases(horizon_weeks, frequency=x, recency=tx, T=T)
    except PersonalizeError as exc:
        warnings.warn(f"BG/NBD features left empty: {exc}", RuntimeWarning, stacklevel=3)
        return out, None
    out["bgnbd_p_alive"] = p_alive
    out["bgnbd_expected"] = expected
    out["bgnbd_p_none"] = bgnbd_p_none(model.params_, x, tx, T, horizon_weeks, p_alive)
    return out, dict(model.params_)


def _item_cycle_columns(item_id, codes, day, n, span, dmin, cut_f) -> dict[str, np.ndarray]:
    """Repeat-item rhythm: for items a customer bought on >= 2 days, the next due date
    (last purchase + her mean gap for that item); min over items, relative to the cutoff."""
    item_id = np.asarray(item_id)
    if item_id.dtype.kind in "iu" and (not len(item_id) or item_id.min() >= 0):
        # codes already (a Dataset's item index): only which lines share an item matters, not the numbering
        icode, n_items = item_id, (int(item_id.max()) + 1 if len(item_id) else 1)
    else:
        icode, _ = pd.factorize(item_id)
        n_items = int(icode.max()) + 1
    # (customer, item, day) keys built in place: at 20M lines every temporary is 160 MB
    key = np.multiply(codes, n_items, dtype=np.int64)
    key += icode
    del icode
    key *= span
    key += day
    key -= dmin
    key = _sets.unique(key)
    pair, d = key // span, key % span + dmin
    del key
    starts = np.flatnonzero(np.r_[True, pair[1:] != pair[:-1]])
    cnt = np.diff(np.r_[starts, len(pair)])
    first, last = d[starts], d[starts + cnt - 1]
    rep = cnt >= 2
    cust = pair[starts][rep] // n_items
    due = last[rep] + (last[rep] - first[rep]) / (cnt[rep] - 1) - cut_f
    due_min = np.full(n, np.inf)
    np.minimum.at(due_min, cust, due)
    overdue = np.bincount(cust, weights=(due < 0).astype(np.float64), minlength=n)
    habits = np.bincount(cust, minlength=n).astype(np.float64)
    # the soonest habit still ahead (due >= 0): the next expected re-buy
    ahead = np.where(due >= 0, due, np.inf)
    next_due = np.full(n, np.inf)
    np.minimum.at(next_due, cust, ahead)
    return {
        "repeat_items": habits,
        "repeat_items_overdue": overdue,
        "repeat_item_due_days": np.where(np.isfinite(due_min), due_min, np.nan),
        "repeat_item_next_due_days": np.where(np.isfinite(next_due), next_due, np.nan),
    }


def purchase_day_columns(codes: np.ndarray, n: int, day: np.ndarray, amount: np.ndarray, qty: np.ndarray,
                         cut_f: float, end_day: int, windows: tuple[int, ...], items: np.ndarray | None = None
                         ) -> tuple[dict[str, np.ndarray], tuple]:
    """The purchase-day features of :func:`churn_features` (recency to spend trend, and the repeat-item
    columns when ``items`` is given): (columns, (purchases, first day, last day, span, first day of all)).

    ``codes``: each line's customer (0 .. n-1, every one with a line), ``day`` its day since the epoch,
    ``amount`` and ``qty``; lines in time order within each customer (sums add in that order).
    ``cut_f``: the cutoff in fractional days, ``end_day`` the last day before it. The Spark path calls
    this on partitions of whole customers (:func:`personalize.spark.features.churn_features`).
    """
    # ---- one purchase per (customer, day) ------------------------------------------------
    dmin = int(day.min())
    span = end_day - dmin + 1
    # the repeat-item columns first, while no other line-length array is held (they are added last)
    item_cols = _item_cycle_columns(items, codes, day, n, span, dmin, cut_f) if items is not None else {}
    key = np.multiply(codes, span, dtype=np.int64)
    key += day
    key -= dmin
    ukey, inv = np.unique(key, return_inverse=True)
    del key
    d_amt = np.bincount(inv, weights=amount, minlength=len(ukey))
    d_qty = np.bincount(inv, weights=qty, minlength=len(ukey))
    del inv
    k_c = ukey // span
    k_d = ukey % span + dmin
    counts = np.bincount(k_c, minlength=n)
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    ends = starts + counts - 1
    first_d, last_d = k_d[starts], k_d[ends]
    purchases = counts.astype(np.float64)

    recency = cut_f - last_d
    tenure = cut_f - first_d
    spend_total = np.bincount(k_c, weights=d_amt, minlength=n)
    units = np.bincount(k_c, weights=d_qty, minlength=n)

    same = k_c[1:] == k_c[:-1]
    gaps = np.diff(k_d).astype(np.float64)[same]
    gc = k_c[1:][same]
    n_gaps = np.bincount(gc, minlength=n).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        g1 = np.bincount(gc, weights=gaps, minlength=n)
        g2 = np.bincount(gc, weights=gaps * gaps, minlength=n)
        gap_mean = np.where(n_gaps > 0, g1 / np.maximum(n_gaps, 1), np.nan)
        gap_std = np.where(n_gaps > 1, np.sqrt(np.clip(g2 / np.maximum(n_gaps, 1) - gap_mean ** 2, 0, None)),
                           np.nan)
        gap_max = np.full(n, np.nan)
        if len(gc):
            gm = np.zeros(n)
            np.maximum.at(gm, gc, gaps)
            gap_max = np.where(n_gaps > 0, gm, np.nan)
        gap_last = np.where(counts > 1, last_d - k_d[np.maximum(ends - 1, 0)], np.nan).astype(np.float64)
        rate = purchases / np.maximum(tenure, 1.0)
        cols: dict[str, np.ndarray] = {
            "recency_days": recency,
            "tenure_days": tenure,
            "purchases": purchases,
            "purchase_rate_30d": 30.0 * rate,
            "spend_total": spend_total,
            "spend_per_purchase": spend_total / purchases,
            "spend_last": d_amt[ends],
            "spend_first": d_amt[starts],
            "spend_max": np.maximum.reduceat(d_amt, starts) if n else np.zeros(0),
            "units_per_purchase": units / purchases,
            "gap_mean_days": gap_mean,
            "gap_std_days": gap_std,
            "gap_last_days": gap_last,
            "gap_max_days": gap_max,
            "overdue_ratio": recency / gap_mean,
            "overdue_days": recency - gap_mean,
            "recency_share": recency / np.maximum(tenure, 1.0),
        }
        for w in windows:
            m = k_d >= cut_f - w
            pw = np.bincount(k_c[m], minlength=n).astype(np.float64)
            cols[f"purchases_{w}d"] = pw
            cols[f"spend_{w}d"] = np.bincount(k_c[m], weights=d_amt[m], minlength=n)
            cols[f"activity_{w}d"] = pw / np.maximum(rate * np.minimum(w, tenure), 1e-9)
        rec_m = k_d >= cut_f - 91
        prev_m = (k_d >= cut_f - 182) & ~rec_m
        s_rec = np.bincount(k_c[rec_m], weights=d_amt[rec_m], minlength=n)
        s_prev = np.bincount(k_c[prev_m], weights=d_amt[prev_m], minlength=n)
        tot = np.abs(s_rec) + np.abs(s_prev)
        cols["spend_trend"] = np.where(tot > 0, (s_rec - s_prev) / np.where(tot > 0, tot, 1.0), 0.0)

    cols.update(item_cols)
    return cols, (purchases, first_d, last_d, span, dmin)



#: the feedback and points columns churn_features adds when the data has those tables
FEEDBACK_FEATURES = ("feedback_responses", "last_score_norm", "mean_score_norm", "score_trend", "detractor",
                     "complaints", "open_complaints", "days_since_complaint", "detractor_answers_91d",
                     "complaints_91d")
POINTS_FEATURES = ("points_balance", "points_expiring_30d", "points_next_expiry_days", "points_earned_12m",
                   "points_redeemed_12m")


def loyalty_features(pt, cut: pd.Timestamp, ids: np.ndarray) -> dict[str, np.ndarray]:
    """Satisfaction and points features of ``ids`` from a Dataset slice cut at ``cut`` (empty without the tables)."""
    out: dict[str, np.ndarray] = {}
    fb, pts = getattr(pt, "feedback", None), getattr(pt, "points", None)
    if fb is not None:
        from personalize.analytics.satisfaction import detractor_answers, feedback_columns

        f = feedback_columns(fb, cut, ids)
        for c in FEEDBACK_FEATURES[:8]:
            out[c] = f[c].to_numpy(dtype=np.float64)
        recent = fb.loc[(fb["timestamp"] >= cut - pd.Timedelta(days=91)).to_numpy()
                        & (fb["timestamp"] < cut).to_numpy()]
        pos = pd.Index(ids).get_indexer(recent["customer_id"].to_numpy(dtype=object))
        ok = pos >= 0
        det = detractor_answers(recent) & ok
        comp = (recent["kind"].astype("object") == "complaint").to_numpy() & ok
        out["detractor_answers_91d"] = np.bincount(pos[det], minlength=len(ids)).astype(np.float64)
        out["complaints_91d"] = np.bincount(pos[comp], minlength=len(ids)).astype(np.float64)
    if pts is not None:
        from personalize.analytics.points import points_columns

        p = points_columns(pts, cut, ids)
        for c in POINTS_FEATURES:
            out[c] = p[c].to_numpy(dtype=np.float64)
    return out


def churn_features(data: History, cutoff: DateLike, *, horizon_days: float = 90.0,
                   windows: tuple[int, ...] = DEFAULT_WINDOWS, bgnbd: bool = True,
                   target_mask: np.ndarray | None = None) -> pd.DataFrame:
    """Features of every customer who bought before ``cutoff`` (see module docstring).

    ``data``: a Dataset or canonical transactions frame. ``cutoff``: features
    use rows with ``timestamp < cutoff``. ``target_mask``: optional boolean
    array aligned with the transactions rows of ``data`` marking purchases of
    a propensity target (category / items); adds the target features.
    Returns a float64 frame indexed by ``customer_id`` (sorted);
    ``attrs["bgnbd_params"]`` holds the fitted BG/NBD parameters (weeks) or None.
    """
    cut = to_timestamp(cutoff, "cutoff")
    if horizon_days <= 0:
        raise DataError(f"horizon_days must be > 0, got {horizon_days}")
    windows = tuple(sorted(int(w) for w in windows))
    if any(w <= 0 for w in windows):
        raise DataError(f"windows must be positive numbers of days, got {windows}")
    full = transactions_frame(data)
    sel = window_selector(data, None, cut)
    tx = full.iloc[sel] if isinstance(sel, slice) else full.loc[sel]
    pt = point_in_time(data, None, cut)
    if pt is not None:
        tx = pt.transactions  # as known at the cutoff: returns made later not netted yet
    if len(tx) == 0:
        raise DataError(f"no transactions before cutoff {cut}", table="transactions", column="timestamp")
    if target_mask is not None:
        target_mask = np.asarray(target_mask, dtype=bool)
        if target_mask.shape != (len(full),):
            raise DataError(f"target_mask must have one entry per transaction ({len(full)}), "
                            f"got shape {target_mask.shape}")
        tmask = align_mask(pt, target_mask[sel])
    cust = tx["customer_id"]
    if cust.isna().any():
        raise DataError("missing customer ids", table="transactions", column="customer_id",
                        rows=np.flatnonzero(cust.isna().to_numpy())[:5].tolist())
    cidx = getattr(pt, "customer_idx", None)
    if cidx is not None and len(cidx) == len(tx) and pt.customer_vocab.is_sorted and (cidx >= 0).all():
        # the Dataset's codes over its sorted vocabulary: the order factorize(sort=True) gives, without a pass
        # over millions of id strings
        codes, ids = pt.customer_vocab.compact(np.asarray(cidx, np.int64))
    else:
        codes, uniq = pd.factorize(cust, sort=True)
        codes = codes.astype(np.int64)
        ids = np.asarray(uniq, dtype=object)
    n = len(ids)
    day = tx["timestamp"].to_numpy(dtype="datetime64[ns]").view(np.int64) // NS_DAY
    amount = tx["amount"].to_numpy(np.float64)
    qty = tx["quantity"].to_numpy(np.float64) if "quantity" in tx.columns else np.ones(len(tx))
    cut_f = cut.value / NS_DAY                      # cutoff in (fractional) days since epoch
    end_day = int(np.ceil(cut_f)) - 1               # last calendar day before the cutoff

    iidx = getattr(pt, "item_idx", None)
    if iidx is not None and len(iidx) == len(tx) and (iidx >= 0).all():
        items = np.asarray(iidx, np.int64) if len(iidx) and iidx.min() != iidx.max() else None
    else:
        items = tx["item_id"].to_numpy() if "item_id" in tx.columns and tx["item_id"].nunique() > 1 else None
    cols, (purchases, first_d, last_d, span, dmin) = purchase_day_columns(codes, n, day, amount, qty, cut_f, end_day,
                                                                         windows, items)

    if pt is not None:
        cols.update(loyalty_features(pt, cut, ids))

    params = None
    if bgnbd:
        x = purchases - 1.0
        t_x = (last_d - first_d) / 7.0
        T = (end_day - first_d) / 7.0
        bg, params = _bgnbd_columns(x, t_x, T, horizon_days / 7.0)
        cols.update(bg)

    if target_mask is not None:
        tm = tmask
        tcodes, tday = codes[tm], day[tm]
        tkey = _sets.unique(tcodes * span + (tday - dmin))
        tc, td = tkey // span, tkey % span + dmin
        t_cnt = np.bincount(tc, minlength=n).astype(np.float64)
        t_last = np.full(n, -np.inf)
        np.maximum.at(t_last, tc, td.astype(np.float64))
        t_spend = np.bincount(codes[tm], weights=amount[tm], minlength=n)
        with np.errstate(invalid="ignore", divide="ignore"):
            cols["target_purchases"] = t_cnt
            cols["target_recency_days"] = np.where(t_cnt > 0, cut_f - t_last, np.nan)
            cols["target_spend_share"] = np.where(np.abs(cols["spend_total"]) > 0, t_spend / np.abs(cols["spend_total"]), 0.0)
        for w in windows[-2:]:
            m = td >= cut_f - w
            cols[f"target_purchases_{w}d"] = np.bincount(tc[m], minlength=n).astype(np.float64)

    out = pd.DataFrame({k: np.asarray(v, dtype=np.float64) for k, v in cols.items()},
                       index=pd.Index(ids, name="customer_id", dtype="str"))
    out.attrs["cutoff"] = cut.isoformat()
    out.attrs["bgnbd_params"] = params
    return out
