"""Single customer view: point-in-time profiles.

``profiles(data, as_of)`` returns one row per customer who bought strictly
before ``as_of``, computed from those transactions only (nothing on or after
``as_of`` is read, so appending future transactions never changes a row).

Definitions (times in days, ``as_of`` excluded):

=====================  =====================================================
column                 definition
=====================  =====================================================
first_purchase         time of the first order
last_purchase          time of the last order
recency_days           as_of - last_purchase
tenure_days            as_of - first_purchase
orders                 distinct orders (``order_id`` when given, else one
                       order per customer and timestamp); return lines
                       (quantity < 0) do not make orders
lines                  purchase lines (quantity > 0)
purchase_days          distinct calendar days with an order
monetary               net spend: sum of ``amount`` (return lines subtract)
aov                    monetary / orders (average order value)
items_per_order        units bought (quantity > 0) / orders
ipt_mean_days          mean gap between consecutive purchase days (NaN with
                       one purchase day)
ipt_std_days           population standard deviation of those gaps (NaN
                       with fewer than two gaps)
spend_recent           spend in [as_of - trend_days, as_of)
spend_previous         spend in [as_of - 2 trend_days, as_of - trend_days)
trend                  (recent - previous) / (recent + previous), in [-1, 1];
                       0 when both are 0
discount_share         share of orders with a coupon or a discount > 0 (NaN
                       when the data has neither column)
discount_rate          sum(discount) / sum(amount of purchase lines) (NaN
                       without a ``discount`` column)
return_rate            returned units / bought units before as_of: from the
                       Dataset's netted return lines (``dataset.returns``), or
                       from lines with quantity < 0 in a raw frame (NaN when
                       there are no returns at all)
top_category           category with the most spend (needs items.category)
share_cat__<c>         spend share of each of the ``top_categories`` biggest
                       categories (by population spend), and
                       ``share_cat__other``
share_channel__<c>     order share of each channel (up to 10, rest in
                       ``share_channel__other``; needs ``channel``)
days_to_birthday       days from as_of to the next birthday (0 = today;
                       29 February counts as 28 February in other years;
                       needs customers.birth_date)
age_years              whole years at as_of (needs customers.birth_date)
feedback columns       with a feedback table: feedback_responses, last_score,
                       last_score_scale, last_score_norm, mean_score_norm,
                       score_trend, detractor, complaints, open_complaints,
                       days_since_complaint
                       (:mod:`personalize.analytics.satisfaction`)
points columns         with a points ledger: points_balance,
                       points_expiring_30d, points_next_expiry_days,
                       points_earned_12m, points_redeemed_12m,
                       points_expired_12m, points_liability
                       (:mod:`personalize.analytics.points`)
=====================  =====================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TYPE_CHECKING

import numpy as np
import pandas as pd

from personalize import _sets
from personalize.analytics._frames import as_timestamp, optional_table, transactions_of
from personalize.errors import DataError

if TYPE_CHECKING:
    from personalize.data import DateLike, History

__all__ = ["profiles", "ProfileArrays", "prepare_arrays"]

_NS_DAY = 86_400_000_000_000
_NS_SEC = 1_000_000_000
MAX_CHANNELS = 10


@dataclass
class ProfileArrays:
    """Order-level arrays shared by profiles, tiers and lifecycle (internal, but reusable).

    Customers are coded 0..n-1 in ``ids`` order (sorted ids of the customers
    with at least one order before ``as_of``). Orders are sorted by
    (customer, time) (time at one-second resolution).
    """

    as_of: pd.Timestamp
    ids: np.ndarray            # customer ids (object array of str)
    order_cust: np.ndarray     # int64 customer code of each order
    order_ts: np.ndarray       # int64 ns, first line time of each order
    order_amount: np.ndarray   # float64 net amount of each order
    order_units: np.ndarray    # float64 units bought in the order
    order_lines: np.ndarray    # int64 purchase lines in the order
    order_discounted: np.ndarray | None  # bool: coupon or discount in the order
    starts: np.ndarray         # index of each customer's first order in the order arrays
    counts: np.ndarray         # orders per customer
    # line-level arrays (cut at as_of); row i is frame.iloc[line_pos[i]]
    frame: pd.DataFrame
    line_pos: np.ndarray
    line_order: np.ndarray     # order index of each line (-1 for return lines)
    line_cust: np.ndarray
    line_ts: np.ndarray
    line_amount: np.ndarray
    line_qty: np.ndarray


def _cut(data: History, tx: pd.DataFrame, cutoff: pd.Timestamp):
    """Rows strictly before ``cutoff``: (frame slice, customer codes or None, customer vocabulary or None)."""
    ts = tx["timestamp"].to_numpy(dtype="datetime64[ns]")
    c64 = np.datetime64(cutoff.to_datetime64(), "ns")
    codes = getattr(data, "customer_idx", None) if not isinstance(data, pd.DataFrame) else None
    vocab = getattr(data, "customer_vocab", None) if codes is not None else None
    if codes is not None and len(codes) == len(tx):
        # Dataset: transactions are sorted by time
        pos = int(np.searchsorted(ts, c64, side="left"))
        return tx.iloc[:pos], np.asarray(codes[:pos], dtype=np.int64), vocab
    mask = ts < c64
    sub = tx.loc[mask] if not mask.all() else tx
    return sub, None, None


def _same_as_previous(s: pd.Series) -> np.ndarray | None:
    """Boolean array: row i equals row i-1 (row 0: False), for Arrow-backed strings; else None."""
    dtype = s.dtype
    if not (isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow"):
        return None
    import pyarrow as pa
    import pyarrow.compute as pc

    a = pa.array(s.array)
    if len(a) == 0 or a.null_count:
        return None
    eq = pc.equal(a[1:], a[:-1]).to_numpy(zero_copy_only=False)
    return np.r_[False, eq]


def prepare_arrays(data: History, as_of: DateLike) -> ProfileArrays:
    """Cut ``data`` at ``as_of`` and build the order-level arrays (vectorized)."""
    cutoff = as_timestamp(as_of, "as_of")
    if callable(getattr(data, "until", None)):
        data = data.until(cutoff)  # the Dataset as known at as_of (later returns not yet netted)
    tx = transactions_of(data)
    tx, codes, vocab = _cut(data, tx, cutoff)
    if len(tx) == 0:
        raise DataError(f"no transactions before as_of {cutoff}", table="transactions",
                        column="timestamp")
    ts = tx["timestamp"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    amount = tx["amount"].to_numpy(dtype=np.float64)
    qty = (tx["quantity"].to_numpy(dtype=np.float64) if "quantity" in tx.columns
           else np.ones(len(tx)))
    buy = qty > 0  # return lines (qty < 0) change spend, not orders
    all_buy = bool(buy.all())
    oid = tx["order_id"] if "order_id" in tx.columns else None
    oid_complete = oid is not None and not oid.isna().any()
    # a Dataset's order codes (factorized once for the whole data): no pass over millions of order id strings
    dcodes = data.order_codes() if codes is not None and oid is not None and callable(
        getattr(data, "order_codes", None)) else None
    if dcodes is not None:
        dcodes = dcodes[:len(tx)]  # _cut keeps the first lines of a Dataset's

    # Runs of consecutive rows with the same customer and order id (time-sorted data keeps
    # an order's lines together): ids are hashed once per run instead of once per line.
    heads = run_len = None
    if all_buy and oid_complete and dcodes is None:
        same = _same_as_previous(oid)
        if same is not None and codes is None:
            same_c = _same_as_previous(tx["customer_id"])
            same = None if same_c is None else (same & same_c)
        elif same is not None:
            same[1:] &= codes[1:] == codes[:-1]
        if same is not None:
            heads = np.flatnonzero(~same)
            run_len = np.diff(np.append(heads, len(same)))  # a run's value is repeated over its lines
            del same

    if codes is None:
        cust_ids = tx["customer_id"]
        if cust_ids.isna().any():
            raise DataError("missing customer ids", table="transactions", column="customer_id",
                            rows=np.flatnonzero(cust_ids.isna().to_numpy())[:5].tolist())
        if heads is not None:
            rc, uniq = pd.factorize(cust_ids.iloc[heads], sort=True)
            codes = np.repeat(rc.astype(np.int64), run_len)
        else:
            codes, uniq = pd.factorize(cust_ids, sort=True)
            codes = codes.astype(np.int64)
        ids = np.asarray(uniq, dtype=object)
    else:
        codes, ids = vocab.compact(codes)
    n = len(ids)

    # ---- order keys -----------------------------------------------------
    b_codes, b_ts = (codes, ts) if all_buy else (codes[buy], ts[buy])
    okey = None
    if oid is not None and oid.notna().any():
        if dcodes is not None:
            ocode = dcodes if all_buy else _sets.first_appearance_codes(dcodes[buy])
        elif heads is not None:
            rc, _ = pd.factorize(oid.iloc[heads])
            ocode = np.repeat(rc.astype(np.int64), run_len)
        else:
            ocode = pd.factorize(oid if all_buy else oid[buy])[0].astype(np.int64)
        n_ids = int(ocode.max()) + 1  # distinct order ids (codes are numbered by first appearance)
        miss = ocode < 0
        if not miss.any():
            # usual case: each order id belongs to one customer, so the id alone is the key
            owner = np.empty(n_ids, np.int64)
            owner[ocode] = b_codes
            if np.array_equal(owner[ocode], b_codes):
                okey = ocode
        if okey is None:
            if miss.any():  # no order id: one order per customer and timestamp
                tcode, tuniq = pd.factorize(b_ts[miss])
                ocode[miss] = n_ids + tcode
                width = n_ids + len(tuniq)
            else:
                width = n_ids
            okey, _ = pd.factorize(b_codes * np.int64(width + 1) + ocode)
    else:
        sec = b_ts // _NS_SEC if len(b_ts) else b_ts
        smin = int(sec.min()) if len(sec) else 0
        span = (int(sec.max()) - smin + 1) if len(sec) else 1
        if n * span < 2 ** 62:
            key = b_codes * np.int64(span) + (sec - smin)
        else:  # pragma: no cover - centuries of data
            tcode, tuniq = pd.factorize(b_ts)
            key = b_codes * np.int64(len(tuniq) + 1) + tcode
        okey, _ = pd.factorize(key)
    okey = okey.astype(np.int64, copy=False)
    line_pos = np.arange(len(tx), dtype=np.int64)
    n_orders = int(okey.max()) + 1 if len(okey) else 0
    o_cust = np.empty(n_orders, np.int64)
    o_cust[okey] = b_codes
    o_ts = np.full(n_orders, np.iinfo(np.int64).max)
    np.minimum.at(o_ts, okey, b_ts)
    o_amount = np.bincount(okey, weights=amount if all_buy else amount[buy], minlength=n_orders)
    o_units = np.bincount(okey, weights=qty if all_buy else qty[buy], minlength=n_orders)
    o_lines = np.bincount(okey, minlength=n_orders).astype(np.int64)
    o_disc = None
    disc_line = None
    if "coupon_id" in tx.columns:
        disc_line = tx["coupon_id"].notna().to_numpy()
    if "discount" in tx.columns:
        d = tx["discount"].to_numpy(dtype=np.float64)
        dl = np.nan_to_num(d) > 0
        disc_line = dl if disc_line is None else (disc_line | dl)
    if disc_line is not None:
        o_disc = np.bincount(okey, weights=disc_line[buy].astype(np.float64),
                             minlength=n_orders) > 0
    o_sec = o_ts // _NS_SEC
    s_lo = int(o_sec.min()) if n_orders else 0
    s_span = (int(o_sec.max()) - s_lo + 1) if n_orders else 1
    if n * s_span < 2 ** 62:  # one int64 key sorts faster than a two-key lexsort
        order = np.argsort(o_cust * np.int64(s_span) + (o_sec - s_lo), kind="stable")
    else:  # pragma: no cover - centuries of data
        order = np.lexsort((o_ts, o_cust))
    rank = np.empty(n_orders, np.int64)
    rank[order] = np.arange(n_orders)
    if all_buy:
        line_order = rank[okey]
    else:
        line_order = np.full(len(tx), -1, np.int64)
        line_order[buy] = rank[okey]
    o_cust, o_ts = o_cust[order], o_ts[order]
    o_amount, o_units, o_lines = o_amount[order], o_units[order], o_lines[order]
    if o_disc is not None:
        o_disc = o_disc[order]
    counts = np.bincount(o_cust, minlength=n).astype(np.int64)
    if (counts == 0).any():
        # customers with only return lines before as_of: drop them
        keep_c = counts > 0
        remap = np.cumsum(keep_c) - 1
        line_keep = keep_c[codes]
        codes = remap[codes[line_keep]]
        ts, amount, qty = ts[line_keep], amount[line_keep], qty[line_keep]
        line_pos, line_order = line_pos[line_keep], line_order[line_keep]
        o_cust = remap[o_cust]
        ids = ids[keep_c]
        counts = counts[keep_c]
    starts = np.r_[0, np.cumsum(counts)[:-1]].astype(np.int64)
    return ProfileArrays(as_of=cutoff, ids=ids, order_cust=o_cust, order_ts=o_ts,
                         order_amount=o_amount, order_units=o_units, order_lines=o_lines,
                         order_discounted=o_disc, starts=starts, counts=counts,
                         frame=tx, line_pos=line_pos, line_order=line_order, line_cust=codes, line_ts=ts, line_amount=amount, line_qty=qty)


def _days_to_birthday(birth: pd.Series, as_of: pd.Timestamp) -> tuple[np.ndarray, np.ndarray]:
    """(days to next birthday, age in whole years) for a datetime Series; NaN where unknown."""
    b = pd.to_datetime(birth)
    known = b.notna().to_numpy() & (b < as_of).fillna(False).to_numpy()
    month = b.dt.month.to_numpy(dtype=np.float64, na_value=1.0).astype(np.int64)
    day = b.dt.day.to_numpy(dtype=np.float64, na_value=1.0).astype(np.int64)
    today = as_of.normalize()

    def bday(year: np.ndarray) -> np.ndarray:
        leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
        d = np.where((month == 2) & (day == 29) & ~leap, 28, day)
        ym = (year - 1970).astype("datetime64[Y]").astype("datetime64[M]") + (month - 1)
        return ym.astype("datetime64[D]") + (d - 1)

    year = np.full(len(b), today.year, dtype=np.int64)
    this = bday(year)
    t64 = np.datetime64(today.date(), "D")
    passed = this < t64
    nxt = np.where(passed, bday(year + 1), this)
    days = (nxt - t64).astype(np.int64).astype(np.float64)
    by = b.dt.year.to_numpy(dtype=np.float64, na_value=np.nan)
    age = (today.year - by) - (this > t64).astype(np.float64)  # birthday not reached yet
    days[~known] = np.nan
    age[~known] = np.nan
    return days, age


def _item_category_codes(data: History, frame: pd.DataFrame, items: pd.DataFrame
                         ) -> tuple[np.ndarray, np.ndarray]:
    """(category code of every row of ``frame`` (-1 unknown), category labels)."""
    cat = pd.Series(items["category"].to_numpy(dtype=object),
                    index=pd.Index(items["item_id"].to_numpy(dtype=object)))
    cat = cat[~cat.index.duplicated()]
    ccode_items, labels = pd.factorize(cat)
    labels = np.asarray(labels, dtype=object)
    item_idx = getattr(data, "item_idx", None) if not isinstance(data, pd.DataFrame) else None
    vocab = getattr(data, "item_vocab", None)
    if item_idx is not None and vocab is not None and len(frame) <= len(item_idx):
        # Dataset: rows already carry item codes of the shared vocabulary
        row_item = np.asarray(item_idx[:len(frame)], dtype=np.int64)
        uniq_items = np.asarray(vocab.ids, dtype=object)
    else:
        row_item, uniq = pd.factorize(frame["item_id"])
        row_item = row_item.astype(np.int64, copy=False)
        uniq_items = np.asarray(uniq, dtype=object)
    pos = cat.index.get_indexer(uniq_items)
    per_item = np.where(pos >= 0, ccode_items[np.maximum(pos, 0)], -1).astype(np.int64)
    per_item = np.r_[per_item, -1]  # row_item == -1 (missing item id) -> unknown
    return per_item[row_item], labels


def _share_columns(prefix: str, codes: np.ndarray, labels: np.ndarray, cust: np.ndarray,
                   weights: np.ndarray, n: int, keep: int) -> dict[str, np.ndarray]:
    """Shares per customer of the ``keep`` biggest labels (by total weight), rest as ``other``.

    ``codes`` < 0 rows count in the denominator as ``other`` (unknown label).
    """
    n_lab = len(labels)
    valid = codes >= 0
    tot_by_label = np.bincount(codes[valid], weights=weights[valid], minlength=n_lab)
    top = np.argsort(-tot_by_label, kind="stable")[:keep]
    top = top[tot_by_label[top] > 0]
    slot = np.full(n_lab + 1, len(top), dtype=np.int64)  # everything else -> "other"
    slot[top] = np.arange(len(top))
    k = len(top) + 1
    mat = np.bincount(cust * k + slot[codes], weights=weights, minlength=n * k).reshape(n, k)
    denom = mat.sum(axis=1)
    out = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        share = mat / denom[:, None]
    share[denom <= 0] = np.nan
    for j, lab in enumerate(top):
        out[f"{prefix}{labels[lab]}"] = share[:, j]
    if mat[:, -1].any():
        out[f"{prefix}other"] = share[:, -1]
    return out


def profiles(data: History, as_of: DateLike, *, items: pd.DataFrame | None = None,
             customers: pd.DataFrame | None = None, top_categories: int = 5,
             trend_days: float = 90.0, arrays: ProfileArrays | None = None, shares: bool = True) -> pd.DataFrame:
    """One row per customer with an order strictly before ``as_of`` (see module docstring).

    ``data`` is a Dataset (its items and customers tables are used) or a
    canonical transactions frame (pass ``items`` / ``customers`` for category
    and birthday columns). ``arrays`` reuses :func:`prepare_arrays` output.
    ``shares=False`` leaves out the category and channel columns
    (``share_cat__*``, ``top_category``, ``share_channel__*``): the costliest
    part on millions of lines, for callers that read none of them.
    Returns a frame indexed by ``customer_id`` (sorted); ``attrs["as_of"]``
    holds the cutoff.
    """
    if trend_days <= 0:
        raise DataError(f"trend_days must be > 0, got {trend_days}")
    a = arrays if arrays is not None else prepare_arrays(data, as_of)
    cutoff = a.as_of
    n = len(a.ids)
    c_ns = cutoff.value
    # orders are sorted by (customer, second): take exact extremes within each customer
    first_ts = np.minimum.reduceat(a.order_ts, a.starts)
    last_ts = np.maximum.reduceat(a.order_ts, a.starts)
    orders = a.counts
    monetary = np.bincount(a.line_cust, weights=a.line_amount, minlength=n)
    units = np.bincount(a.order_cust, weights=a.order_units, minlength=n)
    lines = np.bincount(a.order_cust, weights=a.order_lines, minlength=n).astype(np.int64)

    # inter-purchase time on distinct purchase days
    oday = a.order_ts // _NS_DAY
    same_c = a.order_cust[1:] == a.order_cust[:-1]
    gap = np.diff(oday).astype(np.float64)
    gm = same_c & (gap > 0)
    gc = a.order_cust[1:][gm]
    g = gap[gm]
    n_gaps = np.bincount(gc, minlength=n)
    s1 = np.bincount(gc, weights=g, minlength=n)
    s2 = np.bincount(gc, weights=g * g, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        ipt_mean = np.where(n_gaps > 0, s1 / np.maximum(n_gaps, 1), np.nan)
        ipt_var = np.where(n_gaps > 1, s2 / np.maximum(n_gaps, 1) - ipt_mean ** 2, np.nan)
    ipt_std = np.sqrt(np.clip(ipt_var, 0, None))

    # trend
    tw = int(trend_days * _NS_DAY)
    recent_m = a.line_ts >= c_ns - tw
    prev_m = (a.line_ts >= c_ns - 2 * tw) & ~recent_m
    # float64 also when a window has no lines (np.bincount of nothing is int64)
    spend_recent = np.bincount(a.line_cust[recent_m], weights=a.line_amount[recent_m], minlength=n).astype(np.float64)
    spend_prev = np.bincount(a.line_cust[prev_m], weights=a.line_amount[prev_m], minlength=n).astype(np.float64)
    tot = spend_recent + spend_prev
    with np.errstate(invalid="ignore", divide="ignore"):
        trend = np.where(np.abs(tot) > 0, (spend_recent - spend_prev) / np.abs(tot), 0.0)
    trend = np.clip(trend, -1.0, 1.0)

    with np.errstate(invalid="ignore", divide="ignore"):
        cols: dict[str, Any] = {
            "first_purchase": first_ts.view("datetime64[ns]"),
            "last_purchase": last_ts.view("datetime64[ns]"),
            "recency_days": (c_ns - last_ts) / _NS_DAY,
            "tenure_days": (c_ns - first_ts) / _NS_DAY,
            "orders": orders,
            "lines": lines,
            "purchase_days": n_gaps + 1,
            "monetary": monetary,
            "aov": monetary / orders,
            "items_per_order": units / orders,
            "ipt_mean_days": ipt_mean,
            "ipt_std_days": ipt_std,
            "spend_recent": spend_recent,
            "spend_previous": spend_prev,
            "trend": trend,
        }
    # discounts
    if a.order_discounted is not None:
        cols["discount_share"] = np.bincount(a.order_cust, weights=a.order_discounted,
                                             minlength=n) / orders
    else:
        cols["discount_share"] = np.full(n, np.nan)
    frame = a.frame
    identity = len(a.line_pos) == len(frame)  # every row of the cut frame is a line

    def line_col(name: str, dtype=None) -> np.ndarray:
        v = frame[name].to_numpy(dtype=dtype)
        return v if identity else v[a.line_pos]

    if "discount" in frame.columns:
        d = np.nan_to_num(line_col("discount", np.float64))
        buy = a.line_qty > 0
        dsum = np.bincount(a.line_cust, weights=d, minlength=n)
        gross = np.bincount(a.line_cust[buy], weights=a.line_amount[buy], minlength=n)
        with np.errstate(invalid="ignore", divide="ignore"):
            cols["discount_rate"] = np.where(gross > 0, dsum / gross, np.nan)
    else:
        cols["discount_rate"] = np.full(n, np.nan)
    # returns: the Dataset keeps the return lines that cleaning netted away (use those before as_of),
    # a raw frame may still carry them as negative quantities
    rets = getattr(data, "returns", None)
    ret = a.line_qty < 0
    if rets is not None and not ret.any():  # a Dataset: no return lines means no returns (rate 0)
        r = rets[(rets["timestamp"] < cutoff).to_numpy()]
        pos = pd.Index(a.ids).get_indexer(r["customer_id"].to_numpy(dtype=object))
        ok = pos >= 0
        r_units = np.bincount(pos[ok], weights=r["quantity"].to_numpy(dtype=np.float64)[ok], minlength=n)
        gross = units + r_units  # purchase quantities are net of returns made before as_of
        with np.errstate(invalid="ignore", divide="ignore"):
            cols["return_rate"] = np.where(gross > 0, r_units / gross, np.nan)
    elif ret.any():
        r_units = np.bincount(a.line_cust[ret], weights=-a.line_qty[ret], minlength=n)
        with np.errstate(invalid="ignore", divide="ignore"):
            cols["return_rate"] = np.where(units > 0, r_units / units, np.nan)
    else:
        cols["return_rate"] = np.full(n, np.nan)

    # categories and channels
    items_t = optional_table(data, "items", items)
    buy = a.line_order >= 0
    if shares and items_t is not None and "category" in items_t.columns and "item_id" in frame.columns \
            and top_categories >= 0:
        # item codes of the slice the arrays were cut from (the full data's rows differ from the slice's
        # once a slice restores purchases returned after its end)
        sliced = data.until(cutoff) if callable(getattr(data, "until", None)) else data
        ccode, clabels = _item_category_codes(sliced, frame, items_t)
        if not identity:
            ccode = ccode[a.line_pos]
        w = np.where(buy, a.line_amount, 0.0)
        cols.update(_share_columns("share_cat__", ccode, clabels, a.line_cust, w, n,
                                   top_categories))
        # top category per customer: argmax of spend over (customer, category) pairs
        valid = (ccode >= 0) & buy
        if valid.any():
            pair, first_row = pd.factorize(a.line_cust[valid] * np.int64(len(clabels)) + ccode[valid])
            first_row = np.asarray(first_row, dtype=np.int64)
            sp = np.bincount(pair, weights=w[valid], minlength=len(first_row))
            uc, ucat = first_row // len(clabels), first_row % len(clabels)
            best = np.full(n, -np.inf)
            np.maximum.at(best, uc, sp)
            cand = sp == best[uc]
            pick = np.full(n, len(clabels), dtype=np.int64)  # ties: the first category label wins
            np.minimum.at(pick, uc[cand], ucat[cand])
            top = np.r_[clabels, None].astype(object)[pick]
            cols["top_category"] = top
    if shares and "channel" in frame.columns:
        chan = frame["channel"] if identity else frame["channel"].iloc[a.line_pos]
        chcode, chlabels = pd.factorize(chan)
        if (chcode >= 0).any():
            # each order counts once: its lines share a weight of 1 / (lines in the order)
            w = np.where(buy, 1.0 / a.order_lines[np.maximum(a.line_order, 0)], 0.0)
            cols.update(_share_columns("share_channel__", chcode.astype(np.int64), np.asarray(chlabels, dtype=object),
                                       a.line_cust, w, n, MAX_CHANNELS))

    out = pd.DataFrame(cols, index=pd.Index(a.ids, name="customer_id", dtype="str"))
    if "top_category" in out.columns:
        out["top_category"] = out["top_category"].astype("str").where(out["top_category"].notna())

    cust_t = optional_table(data, "customers", customers)
    if cust_t is not None and "birth_date" in cust_t.columns:
        cb = pd.Series(cust_t["birth_date"].to_numpy(), index=pd.Index(cust_t["customer_id"]))
        cb = cb[~cb.index.duplicated()].reindex(out.index)
        days, age = _days_to_birthday(cb, cutoff)
        out["days_to_birthday"] = days
        out["age_years"] = age
    for extra in loyalty_columns(data, cutoff, out.index):
        out = out.join(extra)
    out.attrs["as_of"] = cutoff.isoformat()
    return out


def loyalty_columns(data: History, cutoff: pd.Timestamp, ids: pd.Index) -> list[pd.DataFrame]:
    """The feedback and points columns of ``ids`` as of ``cutoff`` (none for a plain frame or a dataset
    without those tables)."""
    if isinstance(data, pd.DataFrame) or (getattr(data, "feedback", None) is None
                                          and getattr(data, "points", None) is None):
        return []
    from personalize.analytics.points import points_columns
    from personalize.analytics.satisfaction import feedback_columns

    sliced = data.until(cutoff)
    out = [feedback_columns(sliced.feedback, cutoff, ids), points_columns(sliced.points, cutoff, ids)]
    return [o for o in out if o is not None]
