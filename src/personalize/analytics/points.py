"""Loyalty points: balances, expiring points, activity per period, liability, tiers and the price of a point.

The ledger (``dataset.points``) has one row per change of a customer's
balance: ``earn`` (> 0), ``redeem`` and ``expire`` (< 0) and ``adjust``
(either sign), with an optional ``expires_at`` on the rows that add points.

How points are used and lapse (the *lots* model):

* every row adding points opens a lot that expires at its ``expires_at``, or
  ``validity_days`` after it was earned (``PointsPolicy.validity_days``), or
  never;
* points are usable strictly before their expiry; every row taking points
  (redeem, expire, negative adjust) uses the soonest-expiring points first
  (ties: the oldest); taking more than the balance leaves a deficit that the
  next points added pay back first;
* expiry: ``expiry="ledger"`` trusts the ledger's own ``expire`` rows (the
  balance is the sum of the deltas; a lot past its expiry that the ledger has
  not written off yet is "overdue" and counts as expiring now); ``"lots"``
  writes off what is left of a lot at its expiry (for ledgers without expire
  rows); ``"auto"`` (default) is ``"ledger"`` when the ledger has any expire
  row, else ``"lots"``.

Point in time: ``as_of`` reads the rows strictly before it; a lot expiring at
``as_of`` exactly is still in the balance (and expiring now).

Per-customer columns (:func:`points_columns`, added to
:func:`personalize.analytics.profiles` when the dataset has a ledger):
``points_balance``, ``points_expiring_30d`` (points due to expire in the next
30 days), ``points_next_expiry_days`` (days to the next expiry of points still
held), ``points_earned_12m``, ``points_redeemed_12m``, ``points_expired_12m``
and ``points_liability`` (balance x value per point).
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from personalize.analytics._frames import as_timestamp
from personalize.errors import DataError, PersonalizeError

if TYPE_CHECKING:
    from personalize.data import Dataset, DateLike

__all__ = ["PointsPolicy", "PointsTier", "PointsTierConfig", "PointsPricing", "points_lots", "points_columns",
           "points_balances", "points_activity", "points_liability", "redemption_rate", "points_tiers",
           "points_pricing", "points_report", "DEFAULT_POINT_VALUE", "DEFAULT_EXPIRING_DAYS", "POINTS_COLUMNS"]

_NS_DAY = 86_400_000_000_000
_NEVER = np.iinfo(np.int64).max
DEFAULT_POINT_VALUE = 0.01
DEFAULT_EXPIRING_DAYS = 30.0
POINTS_COLUMNS = ("points_balance", "points_expiring_30d", "points_next_expiry_days", "points_earned_12m",
                  "points_redeemed_12m", "points_expired_12m", "points_liability")


@dataclass(frozen=True)
class PointsPolicy:
    """How points lapse (module docstring): ``validity_days`` for rows without ``expires_at`` (None: never),
    ``expiry`` ``"auto"`` / ``"ledger"`` / ``"lots"``, and the value of one point (currency)."""

    validity_days: float | None = None
    expiry: str = "auto"
    point_value: float = DEFAULT_POINT_VALUE

    def __post_init__(self) -> None:
        if self.expiry not in ("auto", "ledger", "lots"):
            raise PersonalizeError(f"points expiry must be auto, ledger or lots, got {self.expiry!r}")
        if self.validity_days is not None and not self.validity_days > 0:
            raise PersonalizeError(f"points validity_days must be > 0, got {self.validity_days}")
        if not (np.isfinite(self.point_value) and self.point_value >= 0):
            raise PersonalizeError(f"point_value must be a number >= 0, got {self.point_value}")


# --------------------------------------------------------------------------- the lots engine
@dataclass
class Lots:
    """The ledger as of ``as_of``: every lot (customer code, earned, expires, amount, left) and per customer
    the balance and the points written off by the lots model. ``ids[code]`` is the customer id."""

    as_of: pd.Timestamp
    ids: np.ndarray
    lot_cust: np.ndarray
    lot_earned: np.ndarray   # int64 ns
    lot_expires: np.ndarray  # int64 ns (int64 max: never)
    lot_amount: np.ndarray
    lot_left: np.ndarray     # points left as of as_of (0 once expired or used)
    balance: np.ndarray      # per customer
    # points the lots model wrote off: (customer codes, expiry ns, amounts)
    implicit_expired: tuple = field(default_factory=lambda: (np.zeros(0, np.int64), np.zeros(0, np.int64),
                                                             np.zeros(0)))
    mode: str = "ledger"


def _ledger_arrays(points: pd.DataFrame, as_of: pd.Timestamp, policy: PointsPolicy):
    p = points.loc[(points["timestamp"] < as_of).to_numpy()]
    codes, uniq = pd.factorize(p["customer_id"], sort=True)
    ts = p["timestamp"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    delta = p["delta"].to_numpy(dtype=np.float64)
    x = np.full(len(p), _NEVER, np.int64)
    if policy.validity_days is not None:
        x = ts + np.int64(round(policy.validity_days * _NS_DAY))
    if "expires_at" in p.columns:
        e = p["expires_at"].to_numpy(dtype="datetime64[ns]")
        given = ~np.isnat(e)
        x = np.where(given, e.view(np.int64), x)
    reason = p["reason"].astype("object").to_numpy()
    order = np.lexsort((np.arange(len(p)), ts, codes))  # per customer, in time (stable)
    return (codes[order].astype(np.int64), np.asarray(uniq, dtype=object), ts[order], delta[order], x[order],
            reason[order])


def _reference(ts: np.ndarray, delta: np.ndarray, x: np.ndarray, as_of_ns: int, lots_mode: bool):
    """One customer, row by row (the definition). Returns (lot row positions, left, balance, write-offs)."""
    heap: list[tuple[int, int, int]] = []  # (expires, order, lot id)
    left: dict[int, float] = {}
    deficit = 0.0
    written: list[tuple[int, float]] = []

    def lapse(upto: int, inclusive: bool) -> None:
        while heap and (heap[0][0] <= upto if inclusive else heap[0][0] < upto):
            xe, _, lid = heapq.heappop(heap)
            if left[lid] > 0:
                written.append((xe, left[lid]))
                left[lid] = 0.0

    for i in range(len(ts)):
        if lots_mode:
            lapse(int(ts[i]), True)
        d = float(delta[i])
        if d > 0:
            pay = min(d, deficit)
            deficit -= pay
            left[i] = d - pay
            heapq.heappush(heap, (int(x[i]), i, i))
        else:
            need = -d
            while need > 0 and heap:
                xe, o, lid = heap[0]
                take = min(left[lid], need)
                left[lid] -= take
                need -= take
                if left[lid] <= 0:
                    heapq.heappop(heap)
            deficit += need
    if lots_mode:
        lapse(as_of_ns, False)
    pos = np.array(sorted(left), dtype=np.int64)
    lv = np.array([left[k] for k in pos.tolist()], dtype=np.float64)
    return pos, lv, float(lv.sum() - deficit), written


def points_lots(points: pd.DataFrame, as_of: DateLike, *, policy: PointsPolicy | None = None) -> Lots:
    """The lots model of ``points`` (a ledger frame) as of ``as_of`` (see the module docstring)."""
    policy = policy or PointsPolicy()
    cut = as_timestamp(as_of, "as_of")
    codes, ids, ts, delta, x, reason = _ledger_arrays(points, cut, policy)
    lots_mode = policy.expiry == "lots" or (policy.expiry == "auto" and not (reason == "expire").any())
    n = len(ids)
    pos_rows = delta > 0
    balance = np.zeros(n)
    left = np.zeros(len(ts))
    written: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    if len(ts):
        # customers whose lots expire in the order they were earned: soonest-expiring = oldest, so one
        # consumption pointer per customer gives every lot's remaining points (vectorized); the others go
        # row by row (the definition, :func:`_reference`)
        pc, px = codes[pos_rows], x[pos_rows]
        dec = np.zeros(n, bool)
        if len(pc) > 1:
            same = pc[1:] == pc[:-1]
            bad = same & (px[1:] < px[:-1])
            dec[pc[1:][bad]] = True
        fast = ~dec[codes]
        if fast.any():
            left[fast], bal, w = _fast(codes[fast], ts[fast], delta[fast], x[fast], cut.value, lots_mode, n)
            balance += bal
            written.append(w)
        for c in np.flatnonzero(dec):
            rows = np.flatnonzero(codes == c)
            p_, lv, b, wr = _reference(ts[rows], delta[rows], x[rows], cut.value, lots_mode)
            left[rows[p_]] = lv
            balance[c] = b
            if wr:
                written.append((np.full(len(wr), c, np.int64), np.array([w_[0] for w_ in wr], np.int64),
                                np.array([w_[1] for w_ in wr], np.float64)))
    keep = pos_rows
    w_all = (tuple(np.concatenate([w[j] for w in written]) for j in range(3)) if written
             else (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)))
    return Lots(as_of=cut, ids=ids, lot_cust=codes[keep], lot_earned=ts[keep], lot_expires=x[keep],
                lot_amount=delta[keep], lot_left=left[keep], balance=balance, implicit_expired=w_all,
                mode="lots" if lots_mode else "ledger")


def _fast(codes, ts, delta, x, as_of_ns: int, lots_mode: bool, n: int):
    """The pointer form of the lots model for customers whose lots expire in earning order."""
    add = np.where(delta > 0, delta, 0.0)
    take = np.where(delta < 0, -delta, 0.0)
    first = np.r_[True, codes[1:] != codes[:-1]]
    starts = np.flatnonzero(first)
    seg = np.cumsum(first) - 1

    def seg_cumsum(v: np.ndarray) -> np.ndarray:
        c = np.cumsum(v)
        return c - np.r_[0.0, c[starts[1:] - 1]][seg]

    E = seg_cumsum(add)              # points added up to and including each row
    R = seg_cumsum(take)             # points taken up to and including each row
    lot = delta > 0
    li = np.flatnonzero(lot)
    Ek, ak, xk, ck = E[li], add[li], x[li], codes[li]
    Ek_prev = Ek - ak
    total_R = np.bincount(codes, weights=take, minlength=n)
    total_E = np.bincount(codes, weights=add, minlength=n)
    none = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    if not lots_mode:
        ptr = total_R[ck]
        left = np.clip(Ek - np.maximum(ptr, Ek_prev), 0.0, ak)
        return _scatter(left, li, len(ts)), total_E - total_R, none
    # lots model: at each lot's expiry the pointer jumps to the lot's cumulative earnings unless it is past them
    # already; with R(x) the points taken by rows strictly before x, the pointer at t is
    # R(t) + max(0, max over lots expired before t of (E_k - R(x_k))). R(x_k): the last row before x_k.
    _, rank = np.unique(np.concatenate([ts, xk]), return_inverse=True)
    width = np.int64(len(ts) + len(xk) + 1)
    rowkey = codes.astype(np.int64) * width + rank[:len(ts)]
    qkey = ck.astype(np.int64) * width + rank[len(ts):]
    pos = np.searchsorted(rowkey, qkey, side="left") - 1
    valid = (pos >= 0) & (codes[np.maximum(pos, 0)] == ck)
    R_at = np.where(valid, R[np.maximum(pos, 0)], 0.0)
    J = Ek - R_at
    # running max of J within each customer, over lots in order (exclusive and inclusive)
    lot_seg = np.cumsum(np.r_[True, ck[1:] != ck[:-1]]) - 1 if len(ck) else np.zeros(0, np.int64)
    inc = _seg_cummax(J, lot_seg)
    exc = np.r_[-np.inf, inc[:-1]]
    exc[np.r_[True, ck[1:] != ck[:-1]] if len(ck) else np.zeros(0, bool)] = -np.inf
    Q_before = np.maximum(0.0, exc)
    expired = xk < as_of_ns
    # points written off at each expiry, from the pointer just before it
    p_before = R_at + Q_before
    off = np.where(expired, np.clip(Ek - np.maximum(p_before, Ek_prev), 0.0, ak), 0.0)
    gone = off > 0
    written = (ck[gone].astype(np.int64), xk[gone].astype(np.int64), off[gone])
    # the pointer as of as_of: R(as_of) + max(0, max J over lots expired before as_of)
    Qn = np.zeros(n)
    if expired.any():
        np.maximum.at(Qn, ck[expired], J[expired])
    ptr_now = total_R + np.maximum(Qn, 0.0)
    left = np.where(expired, 0.0, np.clip(Ek - np.maximum(ptr_now[ck], Ek_prev), 0.0, ak))
    return _scatter(left, li, len(ts)), total_E - ptr_now, written


def _seg_cummax(v: np.ndarray, seg: np.ndarray) -> np.ndarray:
    if not len(v):
        return v
    s = pd.Series(v)
    return s.groupby(seg, sort=False).cummax().to_numpy()


def _scatter(values: np.ndarray, at: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n)
    out[at] = values
    return out


# --------------------------------------------------------------------------- per-customer columns
def _ledger_of(data, as_of) -> tuple[pd.DataFrame | None, pd.Timestamp]:
    cut = as_timestamp(as_of, "as_of")
    if isinstance(data, pd.DataFrame):
        return data, cut
    return (data.until(cut).points if callable(getattr(data, "until", None)) else getattr(data, "points", None)), cut


def points_columns(points: pd.DataFrame | None, as_of: DateLike, customer_ids: Sequence[str] | np.ndarray | None = None,
                   *, policy: PointsPolicy | None = None, expiring_days: float = DEFAULT_EXPIRING_DAYS,
                   window_days: float = 365.0) -> pd.DataFrame | None:
    """The per-customer points columns (module docstring) of a ledger as of ``as_of``, indexed by customer_id
    (``customer_ids`` when given: customers without a ledger row get 0 points and no expiry)."""
    if points is None:
        return None
    policy = policy or PointsPolicy()
    lots = points_lots(points, as_of, policy=policy)
    cut = lots.as_of
    ids = (pd.Index(np.asarray(customer_ids, dtype=object), dtype="str") if customer_ids is not None
           else pd.Index(lots.ids, dtype="str"))
    n = len(ids)
    where = ids.get_indexer(lots.ids)
    ok = where >= 0

    def per_customer(values: np.ndarray) -> np.ndarray:
        out = np.zeros(n)
        out[where[ok]] = values[ok]
        return out

    bal = per_customer(lots.balance)
    held = lots.lot_left > 0
    horizon = cut.value + int(round(expiring_days * _NS_DAY))
    soon = held & (lots.lot_expires < horizon)
    exp_soon = np.bincount(lots.lot_cust[soon], weights=lots.lot_left[soon], minlength=len(lots.ids))
    nxt = np.full(len(lots.ids), _NEVER, np.int64)
    np.minimum.at(nxt, lots.lot_cust[held], lots.lot_expires[held])
    # a lot past its expiry that the ledger has not written off yet is due now (0 days)
    nxt_days = np.where(nxt < _NEVER, np.maximum(nxt - cut.value, 0) / _NS_DAY, np.nan)
    lo = cut - pd.Timedelta(days=float(window_days))
    p = points.loc[((points["timestamp"] >= lo) & (points["timestamp"] < cut)).to_numpy()]
    pos = ids.get_indexer(p["customer_id"].to_numpy(dtype=object))
    d = p["delta"].to_numpy(dtype=np.float64)
    r = p["reason"].astype("object").to_numpy()
    m = pos >= 0

    def summed(mask: np.ndarray, sign: float) -> np.ndarray:
        k = m & mask
        return sign * np.bincount(pos[k], weights=d[k], minlength=n) + 0.0  # no -0.0

    earned = summed(r == "earn", 1.0)
    redeemed = summed(r == "redeem", -1.0)
    expired = summed(r == "expire", -1.0)
    wc, wx, wa = lots.implicit_expired
    if lots.mode == "lots" and len(wc):
        inwin = wx >= lo.value
        where_w = where[wc[inwin]]
        okw = where_w >= 0
        expired += np.bincount(where_w[okw], weights=wa[inwin][okw], minlength=n)
    nd = np.full(n, np.nan)
    nd[where[ok]] = nxt_days[ok]
    out = pd.DataFrame({"points_balance": bal, "points_expiring_30d": per_customer(exp_soon),
                        "points_next_expiry_days": nd, "points_earned_12m": earned, "points_redeemed_12m": redeemed,
                        "points_expired_12m": expired, "points_liability": bal.clip(min=0) * policy.point_value},
                       index=ids.rename("customer_id"))
    if expiring_days != DEFAULT_EXPIRING_DAYS:
        out = out.rename(columns={"points_expiring_30d": f"points_expiring_{expiring_days:g}d"})
    if window_days != 365.0:
        out = out.rename(columns={c: c.replace("_12m", f"_{window_days:g}d") for c in out.columns if "_12m" in c})
    out.attrs.update(as_of=cut.isoformat(), mode=lots.mode, point_value=policy.point_value)
    return out


def points_balances(data: Dataset | pd.DataFrame, as_of: DateLike, *, policy: PointsPolicy | None = None,
                    expiring_days: float = DEFAULT_EXPIRING_DAYS) -> pd.DataFrame:
    """:func:`points_columns` of every customer in the ledger of ``data`` (a Dataset or a ledger frame)."""
    pts, cut = _ledger_of(data, as_of)
    if pts is None:
        raise DataError("the dataset has no points ledger (load one with --points)", table="points")
    return points_columns(pts, cut, policy=policy, expiring_days=expiring_days)


# --------------------------------------------------------------------------- programme-level numbers
def points_activity(data: Dataset | pd.DataFrame, *, as_of: DateLike | None = None, start: DateLike | None = None,
                    freq: str = "M", policy: PointsPolicy | None = None) -> pd.DataFrame:
    """Points earned, adjusted, redeemed and expired per period (``freq``: D, W, M, Q or Y), the net change,
    the outstanding balance at the end of each period and the members with a balance then."""
    if freq not in ("D", "W", "M", "Q", "Y"):
        raise DataError(f"freq must be D, W, M, Q or Y, got {freq!r}")
    pts, cut = _ledger_of(data, _end_of(data, as_of))
    if pts is None or not len(pts):
        raise DataError("the dataset has no points ledger (load one with --points)", table="points")
    policy = policy or PointsPolicy()
    lots = points_lots(pts, cut, policy=policy)
    p = pts.loc[(pts["timestamp"] < cut).to_numpy()]
    per = p["timestamp"].dt.to_period(freq)
    d = p["delta"].to_numpy(dtype=np.float64)
    r = p["reason"].astype("object").to_numpy()
    frame = pd.DataFrame({"period": per.astype(str).to_numpy(),
                          "earned": np.where(r == "earn", d, 0.0),
                          "adjusted": np.where(r == "adjust", d, 0.0),
                          "redeemed": np.where(r == "redeem", -d, 0.0),
                          "expired": np.where(r == "expire", -d, 0.0)})
    wc, wx, wa = lots.implicit_expired
    if lots.mode == "lots" and len(wc):
        wp = pd.to_datetime(wx).to_period(freq).astype(str)
        frame = pd.concat([frame, pd.DataFrame({"period": np.asarray(wp), "earned": 0.0, "adjusted": 0.0,
                                                "redeemed": 0.0, "expired": wa})], ignore_index=True)
    g = frame.groupby("period", sort=True).sum()
    g["net"] = g["earned"] + g["adjusted"] - g["redeemed"] - g["expired"]
    g["balance_end"] = g["net"].cumsum()
    out = g.reset_index()
    if start is not None:
        first = str(as_timestamp(start, "start").to_period(freq))
        out = out[out["period"] >= first].reset_index(drop=True)
    out.attrs.update(as_of=cut.isoformat(), freq=freq, mode=lots.mode)
    return out


def _end_of(data, as_of) -> pd.Timestamp:
    if as_of is not None:
        return as_timestamp(as_of, "as_of")
    ends = []
    for t in (getattr(data, "transactions", None), getattr(data, "points", None),
              data if isinstance(data, pd.DataFrame) else None):
        if t is not None and "timestamp" in t.columns and len(t):
            ends.append(pd.Timestamp(t["timestamp"].max()))
    if not ends:
        raise DataError("no data to report on", table="points")
    return max(ends).normalize() + pd.Timedelta(days=1)


def redemption_rate(data: Dataset | pd.DataFrame, *, as_of: DateLike | None = None, window_days: float = 365.0,
                    policy: PointsPolicy | None = None) -> dict:
    """Share of the points that left balances in the last ``window_days`` by being redeemed rather than
    expiring: ``redeemed / (redeemed + expired)`` (the rest is breakage); 1.0 (every point will be redeemed:
    the cautious price) when nothing left balances. Also the points earned and redeemed in the window."""
    pts, cut = _ledger_of(data, _end_of(data, as_of))
    if pts is None:
        raise DataError("the dataset has no points ledger (load one with --points)", table="points")
    cols = points_columns(pts, cut, policy=policy, window_days=window_days)
    w = f"_{window_days:g}d" if window_days != 365.0 else "_12m"
    red = float(cols[f"points_redeemed{w}"].sum())
    exp = float(cols[f"points_expired{w}"].sum())
    earned = float(cols[f"points_earned{w}"].sum())
    rate = red / (red + exp) if red + exp > 0 else 1.0
    return {"redemption_rate": rate, "redeemed": red, "expired": exp, "earned": earned,
            "window_days": float(window_days), "as_of": cut.isoformat(), "cautious_default": bool(red + exp == 0)}


def points_liability(data: Dataset | pd.DataFrame, *, as_of: DateLike | None = None,
                     policy: PointsPolicy | None = None, rate: float | None = None) -> dict:
    """Outstanding points x value per point (the liability), and the expected cost: liability x the
    redemption rate (:func:`redemption_rate` unless ``rate`` is given)."""
    policy = policy or PointsPolicy()
    pts, cut = _ledger_of(data, _end_of(data, as_of))
    if pts is None:
        raise DataError("the dataset has no points ledger (load one with --points)", table="points")
    cols = points_columns(pts, cut, policy=policy)
    outstanding = float(cols["points_balance"].clip(lower=0).sum())
    r = rate if rate is not None else redemption_rate(pts, as_of=cut, policy=policy)["redemption_rate"]
    return {"as_of": cut.isoformat(), "outstanding_points": outstanding, "point_value": policy.point_value,
            "liability": outstanding * policy.point_value, "redemption_rate": float(r),
            "expected_cost": outstanding * policy.point_value * float(r),
            "members_with_points": int((cols["points_balance"] > 0).sum()),
            "expiring_30d": float(cols["points_expiring_30d"].sum())}


# --------------------------------------------------------------------------- tiers
@dataclass(frozen=True)
class PointsTier:
    """A tier reached with at least ``min_points`` earned in the window (None: the entry tier)."""

    name: str
    min_points: float | None = None


@dataclass(frozen=True)
class PointsTierConfig:
    """Tier qualification: ``basis="points"`` (points earned, and positive adjustments, in the trailing
    ``window_days``, against ``tiers``) or ``basis="spend"`` (the spend / order tiers of
    :func:`personalize.analytics.membership_tiers` with ``spend_config``)."""

    basis: str = "points"
    tiers: tuple[PointsTier, ...] = (PointsTier("Bronze"), PointsTier("Silver", 500.0), PointsTier("Gold", 1500.0),
                                     PointsTier("Platinum", 5000.0))
    window_days: float = 365.0
    spend_config: Any = None

    def __post_init__(self) -> None:
        if self.basis not in ("points", "spend"):
            raise PersonalizeError(f"tier basis must be 'points' or 'spend', got {self.basis!r}")
        if self.basis == "points":
            if not self.tiers:
                raise PersonalizeError("at least one points tier is required")
            names = [t.name for t in self.tiers]
            if len(set(names)) != len(names):
                raise PersonalizeError(f"tier names must be unique, got {names}")
            if any(t.min_points is None for t in self.tiers[1:]):
                raise PersonalizeError("only the lowest tier may have no min_points")
            mins = [t.min_points for t in self.tiers if t.min_points is not None]
            if any(b < a for a, b in zip(mins, mins[1:])):
                raise PersonalizeError(f"tier min_points must not decrease: {mins}")
        if not self.window_days > 0:
            raise PersonalizeError("tier window_days must be > 0")

    @classmethod
    def from_dict(cls, d: dict) -> "PointsTierConfig":
        """From ``{"basis": "points", "tiers": [{"name": ..., "min_points": ...}], "window_days": ...}`` (a
        spend basis takes the spend tiers' ``{"tiers": [{"name", "min_spend", "min_orders"}], "mode"}``)."""
        basis = str(d.get("basis", "points"))
        if basis == "spend":
            from personalize.analytics.segments import TierConfig

            return cls(basis="spend", window_days=float(d.get("window_days", 365.0)),
                       spend_config=TierConfig.from_dict(d))
        tiers = tuple(PointsTier(str(t["name"]), None if t.get("min_points") is None else float(t["min_points"]))
                      for t in d.get("tiers", [])) or cls.tiers
        return cls(basis="points", tiers=tiers, window_days=float(d.get("window_days", 365.0)))


def points_tiers(data: Dataset, as_of: DateLike, config: PointsTierConfig | None = None) -> pd.DataFrame:
    """Each customer's tier by the configured basis: ``tier``, ``tier_level``, the qualifying amount
    (``qualifying_points`` or ``t12m_spend`` / ``t12m_orders``), ``next_tier`` and the distance to it."""
    cfg = config or PointsTierConfig()
    cut = as_timestamp(as_of, "as_of")
    if cfg.basis == "spend":
        from dataclasses import replace

        from personalize.analytics.segments import TierConfig, membership_tiers

        sc = cfg.spend_config or TierConfig(window_days=cfg.window_days)
        if sc.window_days != cfg.window_days and cfg.spend_config is None:
            sc = replace(sc, window_days=cfg.window_days)
        out = membership_tiers(data, cut, sc)
        out.attrs["basis"] = "spend"
        return out
    pts, cut = _ledger_of(data, cut)
    if pts is None:
        raise DataError("points tiers need a points ledger (load one with --points)", table="points")
    lo = cut - pd.Timedelta(days=float(cfg.window_days))
    p = pts.loc[((pts["timestamp"] >= lo) & (pts["timestamp"] < cut)).to_numpy()]
    gain = np.where(p["reason"].astype("object").isin(["earn", "adjust"]).to_numpy(), p["delta"].to_numpy(), 0.0)
    q = pd.Series(np.clip(gain, 0.0, None)).groupby(p["customer_id"].to_numpy(dtype=object)).sum()
    ids = sorted(set(pts.loc[(pts["timestamp"] < cut).to_numpy(), "customer_id"].astype(str)))
    q = q.reindex(ids, fill_value=0.0)
    vals = q.to_numpy(dtype=np.float64)
    level = np.full(len(vals), -1, np.int64)
    for k, t in enumerate(cfg.tiers):
        level = np.where((t.min_points is None) | (vals >= (t.min_points or 0.0) - 1e-9), k, level)
    names = np.array([t.name for t in cfg.tiers] + [None], dtype=object)
    nxt = level + 1
    has_next = nxt < len(cfg.tiers)
    mins = np.array([t.min_points if t.min_points is not None else 0.0 for t in cfg.tiers] + [np.nan])
    out = pd.DataFrame({"tier": pd.array(names[np.where(level >= 0, level, len(cfg.tiers))], dtype="str"),
                        "tier_level": level, "qualifying_points": vals,
                        "next_tier": pd.array(np.where(has_next, names[np.minimum(nxt, len(cfg.tiers))], None),
                                              dtype="str"),
                        "points_to_next_tier": np.where(has_next, np.maximum(mins[np.minimum(nxt, len(mins) - 1)]
                                                                             - vals, 0.0), np.nan)},
                       index=pd.Index(ids, name="customer_id", dtype="str"))
    out.attrs.update(basis="points", window_days=cfg.window_days, as_of=cut.isoformat())
    return out


# --------------------------------------------------------------------------- the price of a point
@dataclass(frozen=True)
class PointsPricing:
    """What one unit of spend earns and what a point costs: a ``points_multiplier`` offer of value ``m``
    costs ``(m - 1) * points_per_currency * point_value * redemption_rate`` per unit of basket."""

    points_per_currency: float
    point_value: float
    redemption_rate: float

    @property
    def cost_per_currency(self) -> float:
        """Cost of the points one unit of spend earns (multiply by ``value - 1`` and the basket)."""
        return self.points_per_currency * self.point_value * self.redemption_rate

    def to_dict(self) -> dict:
        return {"points_per_currency": self.points_per_currency, "point_value": self.point_value,
                "redemption_rate": self.redemption_rate, "cost_per_currency": self.cost_per_currency}


def points_pricing(data: Dataset, *, as_of: DateLike | None = None, policy: PointsPolicy | None = None,
                   window_days: float = 365.0) -> PointsPricing:
    """Price points from the ledger: points earned per unit of spend on the orders the ledger links
    (``order_id`` of earn rows matching transactions; 1.0 when none match), the policy's value per point,
    and the redemption rate over ``window_days``."""
    policy = policy or PointsPolicy()
    cut = _end_of(data, as_of)
    pts, cut = _ledger_of(data, cut)
    if pts is None or not len(pts):
        raise DataError("the dataset has no points ledger (load one with --points)", table="points")
    rate = redemption_rate(pts, as_of=cut, window_days=window_days, policy=policy)["redemption_rate"]
    ppc = 1.0
    tx = data.until(cut).transactions if callable(getattr(data, "until", None)) else None
    if tx is not None and "order_id" in tx.columns and "order_id" in pts.columns:
        earn = pts.loc[(pts["reason"].astype("object") == "earn").to_numpy() & pts["order_id"].notna().to_numpy()]
        spend = tx.groupby("order_id", sort=False)["amount"].sum()
        linked = earn["order_id"].astype(str).isin(spend.index.astype(str))
        if linked.any():
            e = earn.loc[linked.to_numpy()]
            # orders with a points-multiplier coupon earn more: the base rate is the median per order
            per = e.groupby("order_id")["delta"].sum() / spend.reindex(e["order_id"].unique()).to_numpy()
            per = per[np.isfinite(per.to_numpy()) & (per.to_numpy() > 0)]
            if len(per):
                ppc = float(np.median(per.to_numpy()))
    return PointsPricing(points_per_currency=ppc, point_value=float(policy.point_value), redemption_rate=float(rate))


def points_report(data: Dataset, *, as_of: DateLike | None = None, start: DateLike | None = None, freq: str = "M",
                  policy: PointsPolicy | None = None, expiring_days: float = DEFAULT_EXPIRING_DAYS,
                  tiers: PointsTierConfig | None = None) -> dict:
    """What ``personalize points report`` prints: programme totals, liability, activity per period, points
    expiring soon, tiers (by the configured basis) and the price of a point."""
    policy = policy or PointsPolicy()
    cut = _end_of(data, as_of)
    bal = points_balances(data, cut, policy=policy, expiring_days=expiring_days)
    exp_col = [c for c in bal.columns if c.startswith("points_expiring_")][0]
    liab = points_liability(data, as_of=cut, policy=policy)
    act = points_activity(data, as_of=cut, start=start, freq=freq, policy=policy)
    tier = points_tiers(data, cut, tiers)
    counts = tier["tier"].astype("object").fillna("none").value_counts()
    order = (tier[["tier", "tier_level"]].dropna().drop_duplicates().sort_values("tier_level")["tier"]
             .astype(str).tolist())
    pricing = points_pricing(data, as_of=cut, policy=policy)
    soon = bal[bal[exp_col] > 0].sort_values(exp_col, ascending=False)
    return {"as_of": cut.isoformat(), "members": int(len(bal)),
            "members_with_points": int((bal["points_balance"] > 0).sum()),
            "outstanding_points": float(bal["points_balance"].clip(lower=0).sum()),
            "liability": liab, "expiring": {"days": float(expiring_days), "points": float(bal[exp_col].sum()),
                                            "customers": int((bal[exp_col] > 0).sum()),
                                            "top": soon.head(10).reset_index().to_dict("records")},
            "activity": act, "tiers": {"basis": tier.attrs.get("basis", (tiers or PointsTierConfig()).basis),
                                       "counts": [{"tier": t, "customers": int(counts.get(t, 0))} for t in order]},
            "pricing": pricing.to_dict(), "mode": act.attrs.get("mode")}
