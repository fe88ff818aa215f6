"""Seeded synthetic retail purchase histories with known ground truth.

:func:`make_retail` builds a :class:`personalize.data.Dataset` (and
:func:`make_retail_frames` the canonical tables it is built from) from a
generative model whose hidden parameters are returned in a
:class:`RetailTruth`, so every model in the project can be checked against
what is *really* in the data:

* **Item choice.** Each customer ``c`` and item ``i`` has a latent factor
  vector; a line picks an item from ``softmax(personalization * u_c . v_i +
  log popularity_i + category_preference[c, category(i)])``. Collaborative
  filtering therefore has signal far beyond popularity
  (:meth:`RetailTruth.true_top_items`).
* **Purchase timing.** Pareto/NBD-like: every customer places orders as a
  Poisson process with a gamma-distributed rate ``purchase_rate`` (orders per
  day) until an exponential dropout with a gamma-distributed hazard
  ``churn_hazard`` (per day). Customers who sign up inside the window place a
  first order on their signup day; the others are members alive at ``start``.
* **Replenishment.** Consumable ("repeatable") items have a true cycle in days
  (``item_cycle_days``). A customer who buys a consumable for the first time
  adopts it with probability 0.6 and then re-buys it about every cycle
  (per-customer speed x per-purchase jitter, lognormal sd 0.1 and 0.12),
  continuing after each re-buy with probability 0.8, until dropout. Re-buys
  falling on the same day form one replenishment order, which picks up other
  items too (those extra lines do not start new habits). Durables are seldom
  bought twice: a non-consumable line repeating an earlier purchase of the
  customer is drawn again once.
* **Orders** have several lines (a repeated item is merged into one line),
  quantities, a channel (web / store / app, mostly the customer's usual one)
  and, for store orders, a ``store_id`` (mostly the home store of the
  customer's region).
* **Offers and campaigns.** A catalog with all five offer kinds and
  randomized campaigns with a control group. A customer *converts* when she
  orders anything in the ``response_window_days`` after an exposure. A
  treated customer who would have ordered anyway redeems the coupon on that
  order (with a probability growing with her discount sensitivity); one who
  would not have ordered is persuaded with probability ``offer_response[c, o]
  = 1 - exp(-coupon_response * sensitivity_c * incentive_{c,o})`` and places
  an extra coupon order. The incentive depends on the offer's kind and value,
  the customer's typical basket (a spend threshold out of reach is worth
  little), her channel mix (free shipping), her loyalty (points) and how much
  of her preference falls on targeted items, so the true uplift differs by
  customer and by discount level (:meth:`RetailTruth.true_uplift`).
* **Feedback and loyalty points** (``feedback=True``, ``points=True``): a
  feedback table (post-order CSAT, relationship NPS, star ratings and reviews
  of bought items, complaints with resolutions) from a latent satisfaction
  tied to the dropout hazard, with bad experiences (mostly unresolved
  complaints) in the weeks before many dropouts; and a points ledger (earn,
  redeem, expire, goodwill adjust) where visits are three times as frequent in
  the 14 days before a member's points expire. Both come from their own random
  streams, after everything else: the other tables are identical with or
  without them (:mod:`personalize.datasets._loyalty` has the details).
* **Defects** (``defects=True``): exact duplicate lines, returns (negative
  quantity rows 1-30 days after a purchase, order id ``"R" + order``), guest
  orders (missing ``customer_id``) and zero-price gift lines. All are *added*
  to the clean data from a separate random stream: the clean rows are the
  same as with ``defects=False``, and ``truth.defects`` counts each kind, so a
  Dataset's cleaning report can be checked against it.

Time: internally "raw" time is continuous days since ``start``; every event is
mapped onto a shop clock (08:00-21:00) by a monotone map that fixes
midnights, so "before midnight of day d" means the same on both clocks.

Scale: the cost is about ``n_customers x n_items`` for the choice model plus
the number of lines. With the defaults (``orders_per_year=5``,
``lines_per_order=2.5``, ``days=365``) customers average about 20 lines
(``truth.summary()`` reports the figure), so
``make_retail_frames(n_customers=1_000_000)`` gives about 20 million lines.
Raise ``orders_per_year`` or ``days`` for more lines per customer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from threadpoolctl import threadpool_limits

from personalize import _sets
from personalize.data import CleaningOptions, Dataset
from personalize.errors import PersonalizeError, UnknownIdError

__all__ = ["RetailTruth", "make_retail", "make_retail_frames", "DEFAULT_DEFECT_RATES"]

DAY_S = 86_400
_OPEN_H, _HOURS = 8.0, 13.0  # shop clock: events fall between 08:00 and 21:00
_TRUTH_HORIZON_DAYS = 365.0  # replenishment plans are kept this long past the end
_LIFETIME_CAP_DAYS = 36_500.0  # dropout times are capped at 100 years after acquisition

# name, P(item is consumable), median price, median cycle (days), median margin
_CATEGORIES: tuple[tuple[str, float, float, float, float], ...] = (
    ("grocery", 0.85, 4.0, 10.0, 0.25),
    ("beverages", 0.8, 3.5, 14.0, 0.30),
    ("household", 0.75, 7.0, 30.0, 0.35),
    ("personal_care", 0.7, 8.0, 35.0, 0.45),
    ("baby", 0.6, 12.0, 14.0, 0.35),
    ("pet", 0.6, 15.0, 21.0, 0.35),
    ("beauty", 0.45, 18.0, 45.0, 0.55),
    ("home", 0.1, 28.0, 60.0, 0.45),
    ("apparel", 0.05, 30.0, 90.0, 0.55),
    ("electronics", 0.03, 70.0, 120.0, 0.20),
    ("toys", 0.05, 20.0, 90.0, 0.40),
    ("sports", 0.1, 35.0, 60.0, 0.40),
    ("office", 0.4, 9.0, 45.0, 0.40),
    ("garden", 0.2, 22.0, 60.0, 0.40),
    ("kitchen", 0.15, 24.0, 60.0, 0.40),
    ("books", 0.0, 14.0, 90.0, 0.30),
)
_BRAND_STEMS = ("Acme", "Nordic", "Green Valley", "Urban", "Sunny", "Blue Ocean", "Prime",
                "Evergreen", "Golden", "Pure", "Fresh Farm", "Everyday", "Luxe", "Basic",
                "Northwind", "Harbor")
_REGIONS = ("north", "south", "east", "west", "central")
_REGION_P = np.array([0.22, 0.24, 0.18, 0.2, 0.16])
_CHANNELS = ("web", "store", "app")
_CHANNEL_P = np.array([0.45, 0.40, 0.15])
_P_USUAL_CHANNEL = 0.75

DEFAULT_DEFECT_RATES: Mapping[str, float] = {
    "duplicate": 0.005,  # share of clean lines duplicated exactly
    "return": 0.02,  # share of clean lines returned 1-30 days later (if still inside the window)
    "guest": 0.03,  # guest orders per clean order
    "zero_price": 0.003,  # zero-price gift lines per clean order
}

_P_ADOPT, _P_KEEP, _CYCLE_JITTER, _CYCLE_SPEED_SD = 0.6, 0.8, 0.12, 0.1
#: a would-have-bought-anyway customer redeems a coupon she got with probability 1 - exp(-this x sensitivity)
_REDEEM_SCALE = 2.0
#: share of customers on the global suppression list
_SUPPRESSED_SHARE = 0.01
_QTY_EXTRA = 0.3  # quantity = 1 + Poisson(0.3)
_CHUNK_CELLS = 600_000  # customers x items per block of the choice model (cache-sized)


# --------------------------------------------------------------------------- helpers
def _to_clock(t: np.ndarray) -> np.ndarray:
    """Raw days -> shop-clock days (monotone, fixes midnights)."""
    d = np.floor(t)
    return d + (_OPEN_H + _HOURS * (t - d)) / 24.0


def _from_clock(x: np.ndarray) -> np.ndarray:
    """Shop-clock days -> raw days (inverse of :func:`_to_clock`; clamps outside hours)."""
    d = np.floor(x)
    return d + np.clip(((x - d) * 24.0 - _OPEN_H) / _HOURS, 0.0, 1.0)


def _clock_seconds(t: np.ndarray) -> np.ndarray:
    return np.floor(_to_clock(t) * DAY_S).astype(np.int64)


def _ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, e)`` for every pair, vectorized."""
    lens = (ends - starts).astype(np.int64)
    total = int(lens.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    out = np.ones(total, dtype=np.int64)
    nz = lens > 0
    s, ln = starts[nz].astype(np.int64), lens[nz]
    heads = np.cumsum(ln) - ln
    out[0] = s[0]
    out[heads[1:]] = s[1:] - (s[:-1] + ln[:-1] - 1)
    return np.cumsum(out)


def _id_strings(prefix: str, n: int, width: int, first: int = 0) -> pa.Array:
    """``prefix`` + zero-padded numbers ``first .. first+n-1``, built straight into Arrow buffers."""
    nums = np.arange(first, first + n, dtype=np.int64)
    head = np.frombuffer(prefix.encode(), dtype=np.uint8)
    size = len(head) + width
    buf = np.empty((n, size), dtype=np.uint8)
    buf[:, :len(head)] = head
    for k in range(width):
        buf[:, size - 1 - k] = 48 + (nums // 10 ** k) % 10
    offsets = np.arange(0, (n + 1) * size, size, dtype=np.int64)
    return pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(buf.ravel()))


def _str_col(values: pa.Array) -> pd.Series:
    return pd.Series(pd.array(values, dtype="str"), copy=False)


def _take_str(vocab: Sequence[str | None] | pa.Array, codes: np.ndarray) -> pd.Series:
    arr = vocab if isinstance(vocab, pa.Array) else pa.array(list(vocab), type=pa.large_string())
    return _str_col(arr.take(pa.array(codes)))


def _width(n: int, minimum: int) -> int:
    return max(minimum, len(str(max(n, 0))))


def _seconds_to_ts(start64: np.datetime64, sec: np.ndarray) -> np.ndarray:
    return start64 + sec.astype("timedelta64[s]").astype("timedelta64[ns]")


# --------------------------------------------------------------------------- truth
@dataclass(eq=False)
class RetailTruth:
    """The hidden parameters behind a synthetic retail dataset.

    Per-customer arrays are aligned with ``customer_ids`` and per-item arrays
    with ``item_ids`` (both sorted, like the Dataset vocabularies); per-offer
    columns with ``offer_ids``. Rates and hazards are per day. Methods take
    real ids and timestamps; ``customer_ids=None`` means every customer.
    """

    start: pd.Timestamp
    end: pd.Timestamp  # exclusive: the data covers [start, end)
    customer_ids: np.ndarray
    item_ids: np.ndarray
    categories: np.ndarray  # category names
    item_category: np.ndarray  # index into categories
    item_price: np.ndarray
    customer_factors: np.ndarray  # (n_customers, n_factors) float32
    item_factors: np.ndarray  # (n_items, n_factors) float32
    personalization: float  # weight of the factor affinity in the item logits
    item_popularity: np.ndarray  # base choice probability (softmax of the log popularity)
    category_preference: np.ndarray  # (n_customers, n_categories) additive logits
    item_cycle_days: np.ndarray  # true re-buy cycle; NaN for non-consumables
    purchase_rate: np.ndarray  # organic orders per day while alive
    churn_hazard: np.ndarray  # dropout hazard per day
    acquired_at: np.ndarray  # datetime64[ns]: start for existing members, else signup day
    dropout_time: np.ndarray  # datetime64[ns], capped at 100 years after acquisition
    alive_at_end: np.ndarray  # bool
    discount_sensitivity: np.ndarray
    offer_ids: np.ndarray
    offer_response: np.ndarray  # (n_customers, n_offers) persuasion probability
    uplift: np.ndarray  # (n_customers, n_offers) true uplift of an exposure at `end`
    response_window_days: float
    exposure_truth: pd.DataFrame | None  # per exposure row: base_rate, uplift of its arm
    defects: dict[str, int | float]
    n_lines: int  # clean transaction lines (before defects)
    n_orders: int  # clean orders
    params: dict[str, Any]
    _t0: np.ndarray = field(repr=False)  # raw days of acquisition
    _death: np.ndarray = field(repr=False)  # raw days of dropout
    # planned re-buys, sorted by (customer, time): raw seconds of the re-buy and of the
    # purchase that started the habit (a re-buy is known at `a` if its habit started before)
    _plan_cust: np.ndarray = field(repr=False)
    _plan_sec: np.ndarray = field(repr=False)
    _plan_origin: np.ndarray = field(repr=False)
    _item_bias: np.ndarray = field(repr=False)
    # feedback=True: latent satisfaction per customer (higher = happier; correlated -0.75 with the log dropout
    # hazard), item quality (star ratings), and the time of the bad experience that made a customer leave (NaT)
    satisfaction: np.ndarray | None = None
    item_quality: np.ndarray | None = None
    dropout_trigger: np.ndarray | None = None
    # points=True: programme members, the expiry of each member's opening balance (NaT: none) and the visit-rate
    # boost in the window before points expire
    points_member: np.ndarray | None = None
    opening_points_expiry: np.ndarray | None = None
    points_expiry_boost: float | None = None

    # ----------------------------------------------------------------- ids
    def customer_index(self, customer_ids: Sequence[str] | np.ndarray | None = None) -> np.ndarray:
        """Row positions of ``customer_ids`` (all customers when None)."""
        if customer_ids is None:
            return np.arange(len(self.customer_ids))
        return self._index(self.customer_ids, customer_ids, "customer")

    def item_index(self, item_ids: Sequence[str] | np.ndarray) -> np.ndarray:
        return self._index(self.item_ids, item_ids, "item")

    @staticmethod
    def _index(vocab: np.ndarray, ids: Sequence[str] | np.ndarray | str, what: str) -> np.ndarray:
        ids = np.atleast_1d(np.asarray(ids, dtype=object)).astype(str)
        if len(vocab) == 0:
            if len(ids):
                raise UnknownIdError(f"unknown {what} id(s): {list(ids[:5])}")
            return np.zeros(0, dtype=np.int64)
        # customer and item ids are generated in sorted order; offers keep their catalog order
        order = np.argsort(vocab, kind="stable") if what == "offer" else None
        if order is None:
            pos = np.minimum(np.searchsorted(vocab, ids), len(vocab) - 1)
        else:
            pos = order[np.minimum(np.searchsorted(vocab[order], ids), len(vocab) - 1)]
        bad = vocab[pos] != ids
        if bad.any():
            raise UnknownIdError(f"unknown {what} id(s): {list(ids[bad][:5])}")
        return pos.astype(np.int64)

    def _raw(self, when: Any) -> float:
        x = (pd.Timestamp(when) - self.start) / pd.Timedelta(days=1)
        return float(_from_clock(np.array([x]))[0])

    # ----------------------------------------------------------------- preferences
    def true_scores(self, customer_ids: Sequence[str] | np.ndarray | None = None) -> np.ndarray:
        """True item logits (n, n_items) float32; higher = more likely to be chosen."""
        rows = self.customer_index(customer_ids)
        s = self.personalization * (self.customer_factors[rows] @ self.item_factors.T)
        s += self._item_bias[None, :]
        s += self.category_preference[rows][:, self.item_category]
        return s.astype(np.float32, copy=False)

    def true_item_probabilities(self, customer_ids: Sequence[str] | np.ndarray | None = None
                                ) -> np.ndarray:
        """P(a non-replenishment line of the customer is each item), shape (n, n_items)."""
        s = self.true_scores(customer_ids).astype(np.float64)
        s -= s.max(axis=1, keepdims=True)
        np.exp(s, out=s)
        s /= s.sum(axis=1, keepdims=True)
        return s

    def true_top_items(self, customer_ids: Sequence[str] | np.ndarray | None = None, k: int = 10
                       ) -> np.ndarray:
        """Item ids (n, k) of each customer's ``k`` highest true preferences, best first."""
        rows = self.customer_index(customer_ids)
        k = max(1, min(int(k), len(self.item_ids)))
        out = np.empty((len(rows), k), dtype=np.int64)
        step = max(1, 2_000_000 // max(len(self.item_ids), 1))
        for lo in range(0, len(rows), step):
            s = self.true_scores(self.customer_ids[rows[lo:lo + step]])
            part = np.argpartition(-s, k - 1, axis=1)[:, :k]
            order = np.argsort(-np.take_along_axis(s, part, axis=1), axis=1, kind="stable")
            out[lo:lo + step] = np.take_along_axis(part, order, axis=1)
        return self.item_ids[out]

    # ----------------------------------------------------------------- lifecycle
    def alive_at(self, as_of: Any, customer_ids: Sequence[str] | np.ndarray | None = None
                 ) -> np.ndarray:
        """True where the customer was acquired before ``as_of`` and had not dropped out."""
        rows = self.customer_index(customer_ids)
        a = self._raw(as_of)
        return (self._t0[rows] <= a) & (self._death[rows] > a)

    def _known_plans(self, rows: np.ndarray, a: np.ndarray) -> np.ndarray:
        """Mask of planned re-buys known at ``a`` of each row's customer and not before ``a``.

        Rows must name distinct customers. Returns a mask over the plan arrays.
        """
        a_of = np.full(len(self.customer_ids), -1, dtype=np.int64)
        a_of[rows] = np.floor(np.clip(a, 0.0, None) * DAY_S).astype(np.int64)
        ca = a_of[self._plan_cust]
        return (ca >= 0) & (self._plan_origin < ca) & (self._plan_sec >= ca)

    def _by_distinct(self, rows: np.ndarray) -> list[np.ndarray]:
        """Split row positions into groups in which every customer appears once."""
        order = np.argsort(rows, kind="stable")
        r = rows[order]
        first = np.r_[True, r[1:] != r[:-1]] if len(r) else np.zeros(0, bool)
        start = np.maximum.accumulate(np.where(first, np.arange(len(r)), 0))
        rank = np.empty(len(r), dtype=np.int64)
        rank[order] = np.arange(len(r)) - start
        return [np.flatnonzero(rank == k) for k in range(int(rank.max()) + 1 if len(r) else 0)]

    def _next_planned(self, rows: np.ndarray, a: np.ndarray) -> np.ndarray:
        """Raw day of each row's next re-buy known at ``a`` (inf when none)."""
        out = np.full(len(rows), np.inf)
        for g in self._by_distinct(rows):
            idx = np.flatnonzero(self._known_plans(rows[g], a[g]))
            cust, first = np.unique(self._plan_cust[idx], return_index=True)
            nxt = np.full(len(self.customer_ids), np.inf)
            nxt[cust] = self._plan_sec[idx[first]] / DAY_S
            out[g] = nxt[rows[g]]
        return out

    def _no_purchase_prob(self, rows: np.ndarray, a: np.ndarray, h: float) -> np.ndarray:
        """P(no order in [a, a+h) | latent state at a) per row (raw days); NaN if not acquired."""
        lam, mu = self.purchase_rate[rows], self.churn_hazard[rows]
        alive = (self._t0[rows] <= a) & (self._death[rows] > a)
        d = np.clip(self._next_planned(rows, a) - a, 0.0, h)
        s = lam + mu
        # dropout before the next known re-buy without an organic order in between, or
        # the whole horizon survived without one
        p = mu / s * -np.expm1(-s * d) + np.where(d >= h, np.exp(-s * h), 0.0)
        p = np.where(alive, p, 1.0)
        return np.where(self._t0[rows] > a, np.nan, p)

    def true_churn_probability(self, as_of: Any, horizon_days: float,
                               customer_ids: Sequence[str] | np.ndarray | None = None
                               ) -> np.ndarray:
        """P(no order in [as_of, as_of + horizon)) given each customer's true latent state.

        The state: alive or not at ``as_of``, purchase rate, dropout hazard and the
        re-buys planned by habits started before ``as_of`` (exact for horizons ending
        up to a year after the data's end; orders caused by future campaigns are not
        included). 1.0 for customers who dropped out, NaN for those not yet acquired.
        """
        rows = self.customer_index(customer_ids)
        return self._no_purchase_prob(rows, np.full(len(rows), self._raw(as_of)),
                                      float(horizon_days))

    def true_expected_orders(self, as_of: Any, horizon_days: float,
                             customer_ids: Sequence[str] | np.ndarray | None = None
                             ) -> np.ndarray:
        """Expected number of orders in [as_of, as_of + horizon) given the latent state.

        Organic orders ``lam (1 - exp(-mu h)) / mu`` plus each re-buy planned at
        ``as_of`` weighted by the probability of still being alive then. Habits started
        by purchases inside the horizon add a little more and are not counted; re-buys
        on one day count once each. 0 for customers not alive at ``as_of``.
        """
        rows = self.customer_index(customer_ids)
        a, h = self._raw(as_of), float(horizon_days)
        lam, mu = self.purchase_rate[rows], self.churn_hazard[rows]
        alive = (self._t0[rows] <= a) & (self._death[rows] > a)
        organic = lam * -np.expm1(-mu * h) / np.where(mu > 0, mu, 1.0)
        organic = np.where(mu > 0, organic, lam * h)
        everyone = np.arange(len(self.customer_ids))
        known = self._known_plans(everyone, np.full(len(everyone), a))
        known &= self._plan_sec < np.floor((a + h) * DAY_S)
        cust = self._plan_cust[known]
        w = np.exp(-self.churn_hazard[cust] * (self._plan_sec[known] / DAY_S - a))
        repl = np.bincount(cust, weights=w, minlength=len(self.customer_ids))[rows]
        return np.where(alive, organic + repl, 0.0)

    # ----------------------------------------------------------------- offers
    def true_uplift(self, at: Any = None, *, window_days: float | None = None,
                    customer_ids: Sequence[str] | np.ndarray | None = None,
                    offer_ids: Sequence[str] | None = None) -> np.ndarray:
        """True uplift (n, n_offers) in P(order within the window) of an exposure at ``at``.

        ``P(alive at at) * P(no order in the window | state) * offer_response``;
        ``at`` defaults to the data's end (then it equals ``self.uplift``).
        """
        rows = self.customer_index(customer_ids)
        cols = (np.arange(len(self.offer_ids)) if offer_ids is None
                else self._index(self.offer_ids, offer_ids, "offer"))
        a = np.full(len(rows), self._raw(self.end if at is None else at))
        w = self.response_window_days if window_days is None else float(window_days)
        p_none = self._no_purchase_prob(rows, a, w)
        alive = (self._t0[rows] <= a) & (self._death[rows] > a)
        return self.offer_response[rows][:, cols] * np.where(alive, p_none, 0.0)[:, None]

    def true_baseline(self, at: Any = None, *, window_days: float | None = None,
                      customer_ids: Sequence[str] | np.ndarray | None = None) -> np.ndarray:
        """True P(an order within the window after ``at``) without any offer (0 for the churned)."""
        rows = self.customer_index(customer_ids)
        a = np.full(len(rows), self._raw(self.end if at is None else at))
        w = self.response_window_days if window_days is None else float(window_days)
        alive = (self._t0[rows] <= a) & (self._death[rows] > a)
        return np.where(alive, 1.0 - np.nan_to_num(self._no_purchase_prob(rows, a, w), nan=1.0), 0.0)

    def anyway_redeem_rate(self, customer_ids: Sequence[str] | np.ndarray | None = None) -> np.ndarray:
        """True share of a customer's would-have-bought-anyway orders on which she redeems a coupon she got."""
        return -np.expm1(-_REDEEM_SCALE * self.discount_sensitivity[self.customer_index(customer_ids)])

    def summary(self) -> dict[str, Any]:
        """Headline numbers: sizes, lines per customer, share alive, mean uplift by offer."""
        n = len(self.customer_ids)
        return {
            "n_customers": n,
            "n_items": len(self.item_ids),
            "n_orders": self.n_orders,
            "n_lines": self.n_lines,
            "lines_per_customer": self.n_lines / max(n, 1),
            "alive_at_end_share": float(self.alive_at_end.mean()) if n else 0.0,
            "mean_uplift_at_end": ({str(o): float(u) for o, u in
                                    zip(self.offer_ids, self.uplift.mean(axis=0))} if n else {}),
            "defects": dict(self.defects),
        }


# --------------------------------------------------------------------------- model
class _Sampler:
    """Inverse-CDF sampling from every row of a weight matrix, CDF built once."""

    def __init__(self, w: np.ndarray) -> None:
        self.n_col = w.shape[1]
        cdf = w.astype(np.float64).ravel()
        np.cumsum(cdf, out=cdf)  # one monotone array: row r spans (end[r-1], end[r]]
        self.cdf = cdf
        self.ends = cdf[self.n_col - 1::self.n_col]
        self.starts = np.concatenate([[0.0], self.ends[:-1]])

    def draw(self, local_rows: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Column drawn from row ``local_rows[j]`` with uniform ``u[j]``."""
        needle = self.starts[local_rows] + u * (self.ends - self.starts)[local_rows]
        pos = np.searchsorted(self.cdf, needle, side="right")
        return np.clip(pos - local_rows.astype(np.int64) * self.n_col, 0, self.n_col - 1)


class _Model:
    """Latent state of customers and items, and the vectorized choice sampler."""

    def __init__(self, p: dict[str, Any]) -> None:
        self.p = p
        self.seed = int(p["seed"])
        self.n_c, self.n_i, self.n_g = p["n_customers"], p["n_items"], p["n_categories"]
        self.k = p["n_factors"]
        self.days = float(p["days"])
        self._items()
        self._customers()
        # the item logits as one matmul: [scale*U | catpref] @ [V | onehot(cat)]^T + bias
        onehot = np.zeros((self.n_i, self.n_g), dtype=np.float32)
        onehot[np.arange(self.n_i), self.item_cat] = 1.0
        self.item_side = np.ascontiguousarray(np.hstack([self.V, onehot]).T)
        self.cust_side = np.hstack([np.float32(p["personalization"]) * self.U, self.catpref])
        self.bias32 = self.item_bias.astype(np.float32)

    def rng(self, *stream: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, *stream])

    def _items(self) -> None:
        rng = self.rng(1)
        n_i, n_g, k = self.n_i, self.n_g, self.k
        base = [_CATEGORIES[g % len(_CATEGORIES)] for g in range(n_g)]
        self.cat_names = np.array([b[0] if g < len(_CATEGORIES)
                                   else f"{b[0]}_{g // len(_CATEGORIES) + 1}"
                                   for g, b in enumerate(base)], dtype=object)
        cons_p, med_price, med_cycle, med_margin = (np.array([b[j] for b in base])
                                                    for j in (1, 2, 3, 4))
        weight = rng.dirichlet(np.full(n_g, 3.0))
        cat = np.concatenate([np.arange(n_g), rng.choice(n_g, n_i - n_g, p=weight)])
        rng.shuffle(cat)
        self.item_cat = cat.astype(np.int64)
        # items of a category share a centre in factor space: similar items are near
        centers = rng.normal(0.0, 1.0, (n_g, k))
        self.V = ((0.6 * centers[self.item_cat] + 0.8 * rng.normal(0.0, 1.0, (n_i, k)))
                  / math.sqrt(k)).astype(np.float32)
        self.item_bias = rng.normal(0.0, 1.0, n_i)
        pop = np.exp(self.item_bias - self.item_bias.max())
        self.item_popularity = pop / pop.sum()
        price = med_price[self.item_cat] * np.exp(rng.normal(0.0, 0.45, n_i))
        self.price = np.where(price >= 2.0, np.round(price) - 0.01, np.round(price, 2)).clip(0.49)
        self.margin = np.round(np.clip(med_margin[self.item_cat] + rng.normal(0.0, 0.08, n_i),
                                       0.05, 0.8), 3)
        self.repeatable = rng.random(n_i) < cons_p[self.item_cat]
        cycle = med_cycle[self.item_cat] * np.exp(rng.normal(0.0, 0.35, n_i))
        self.cycle = np.where(self.repeatable, np.clip(np.round(cycle, 1), 5.0, 180.0), np.nan)
        self.in_stock = rng.random(n_i) < 0.95
        n_brands = np.maximum(2, np.round(np.sqrt(np.bincount(self.item_cat, minlength=n_g))))
        brand_k = (rng.random(n_i) * n_brands[self.item_cat]).astype(np.int64)
        stems = len(_BRAND_STEMS)
        self.brand = np.array([
            f"{_BRAND_STEMS[(g * 5 + b) % stems]} {str(self.cat_names[g]).split('_')[0].title()}"
            + (f" {b // stems + 1}" if b >= stems else "")
            for g, b in zip(self.item_cat.tolist(), brand_k.tolist())], dtype=object)
        self.item_id_arr = _id_strings("I", n_i, _width(n_i - 1, 5))
        self.item_ids = np.array(self.item_id_arr.to_pylist(), dtype=object)

    def _customers(self) -> None:
        rng = self.rng(2)
        p, n_c = self.p, self.n_c
        self.U = rng.normal(0.0, 1.0, (n_c, self.k)).astype(np.float32)
        self.catpref = rng.normal(0.0, p["category_spread"], (n_c, self.n_g)).astype(np.float32)
        self.lam = rng.gamma(1.2, p["orders_per_year"] / 365.0 / 1.2, n_c)
        self.mu = rng.gamma(2.0, 1.0 / p["mean_lifetime_days"] / 2.0, n_c)
        self.is_new = rng.random(n_c) < p["new_customer_share"]
        self.signup = np.where(self.is_new, rng.integers(0, int(self.days), n_c),
                               -rng.integers(1, 3 * 365 + 1, n_c)).astype(np.float64)
        self.t0 = np.where(self.is_new, self.signup, 0.0)
        life = rng.exponential(1.0, n_c) / self.mu
        self.death = self.t0 + np.minimum(life, _LIFETIME_CAP_DAYS)
        self.first_u = rng.random(n_c)  # time of day of the signup-day order
        self.sens = rng.gamma(0.7, 1.0 / 0.7, n_c)
        self.region = rng.choice(len(_REGIONS), n_c, p=_REGION_P)
        self.dom_channel = rng.choice(3, n_c, p=_CHANNEL_P).astype(np.int8)
        n_s = p["n_stores"]
        store_region = np.arange(n_s) % len(_REGIONS)
        home = rng.integers(0, n_s, n_c)
        for r in range(len(_REGIONS)):
            stores = np.flatnonzero(store_region == r)
            m = self.region == r
            if len(stores) and m.any():
                home[m] = stores[rng.integers(0, len(stores), int(m.sum()))]
        self.home_store = home.astype(np.int16)
        age = np.clip(rng.normal(42.0, 14.0, n_c), 18.0, 85.0)
        self.birth_offset = -np.round(age * 365.25 + rng.integers(0, 365, n_c))
        self.consent = rng.random((n_c, 3)) < np.array([0.7, 0.4, 0.85])
        self.cust_id_arr = _id_strings("C", n_c, _width(n_c - 1, 6))

    # ----------------------------------------------------------------- choice
    def block_size(self, n_cols: int) -> int:
        return int(max(64, _CHUNK_CELLS // max(n_cols, 1)))

    def weights(self, rows: np.ndarray | slice, cols: np.ndarray | None = None) -> np.ndarray:
        """Unnormalized choice weights (rows, cols) float32, row max 1."""
        side = self.item_side if cols is None else self.item_side[:, cols]
        w = self.cust_side[rows] @ side
        w += self.bias32[None, :] if cols is None else self.bias32[cols][None, :]
        w -= w.max(axis=1, keepdims=True)
        np.exp(w, out=w)
        return w

    def sample_items(self, cust: np.ndarray, rng: np.random.Generator,
                     cols: np.ndarray | None = None) -> np.ndarray:
        """One item per entry of ``cust`` from that customer's choice model (restricted to cols)."""
        out = np.empty(len(cust), dtype=np.int64)
        if len(cust) == 0:
            return out
        u = rng.random(len(cust))
        order = np.argsort(cust, kind="stable")
        uc, first = np.unique(cust[order], return_index=True)
        bounds = np.append(first, len(order))
        step = self.block_size(self.n_i if cols is None else len(cols))
        for a in range(0, len(uc), step):
            b = min(a + step, len(uc))
            sel = order[bounds[a]:bounds[b]]
            local = np.searchsorted(uc[a:b], cust[sel])
            picked = _Sampler(self.weights(uc[a:b], cols)).draw(local, u[sel])
            out[sel] = picked if cols is None else cols[picked]
        return out


def _merge_lines(order: np.ndarray, item: np.ndarray, qty: np.ndarray, n_items: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge repeated (order, item) lines, summing quantity; result sorted by (order, item)."""
    key = order.astype(np.int64) * n_items + item
    srt = np.argsort(key, kind="stable")
    key = key[srt]
    start = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else np.zeros(0, int)
    q = np.add.reduceat(qty[srt], start) if len(start) else qty[:0]
    k = key[start]
    return k // n_items, k % n_items, q


# --------------------------------------------------------------------------- orders
def _block(m: _Model, a: int, b: int, bi: int, elig: np.ndarray | None):
    """Orders, lines and replenishment plans of customers [a, b)."""
    p, rng, days = m.p, m.rng(3, bi), m.days
    rows = np.arange(a, b)
    t0, death, lam = m.t0[a:b], m.death[a:b], m.lam[a:b]
    active = np.clip(np.minimum(death, days) - t0, 0.0, None)
    n_ord = rng.poisson(lam * active)
    o_cust = np.repeat(rows, n_ord)
    o_t = np.repeat(t0, n_ord) + rng.random(len(o_cust)) * np.repeat(active, n_ord)
    first_t = t0 + m.first_u[a:b]
    first = m.is_new[a:b] & (first_t < death) & (first_t < days)
    o_cust = np.concatenate([o_cust, rows[first]])
    o_t = np.concatenate([o_t, first_t[first]])
    n_disc = len(o_cust)
    l_order = np.repeat(np.arange(n_disc), 1 + rng.poisson(p["lines_per_order"] - 1.0, n_disc))

    w = m.weights(slice(a, b))
    tot = w.sum(axis=1, dtype=np.float64)
    exp_price = (w @ m.price.astype(np.float32)) / tot
    em = None if elig is None else (w @ elig) / tot[:, None].astype(np.float32)
    sampler = _Sampler(w)
    del w
    l_item = sampler.draw(o_cust[l_order] - a, rng.random(len(l_order)))
    l_qty = 1.0 + rng.poisson(_QTY_EXTRA, len(l_item)).astype(np.float64)
    l_order, l_item, l_qty = _merge_lines(l_order, l_item, l_qty, m.n_i)

    # replenishment chains from the first purchase of each (customer, consumable)
    rep = m.repeatable[l_item]
    rc, ri, rt = o_cust[l_order[rep]], l_item[rep], o_t[l_order[rep]]
    key = (rc.astype(np.int64) - a) * m.n_i + ri
    srt = np.argsort((key << 32) | np.floor(rt * DAY_S).astype(np.int64))
    key = key[srt]
    firsts = srt[np.r_[True, key[1:] != key[:-1]]] if len(key) else srt
    adopt = firsts[rng.random(len(firsts)) < _P_ADOPT]
    rc, ri, t = rc[adopt], ri[adopt], rt[adopt]
    origin = t.copy()  # the purchase that started the habit
    speed = np.exp(rng.normal(0.0, _CYCLE_SPEED_SD, len(rc)))
    limit = days + _TRUTH_HORIZON_DAYS
    ev_c, ev_i, ev_t, ev_o = [], [], [], []
    while len(rc):
        t = t + m.cycle[ri] * speed * np.exp(rng.normal(0.0, _CYCLE_JITTER, len(rc)))
        ok = t < limit
        keep = ok & (rng.random(len(rc)) < _P_KEEP)
        ev_c.append(rc[ok])
        ev_i.append(ri[ok])
        ev_t.append(t[ok])
        ev_o.append(origin[ok])
        rc, ri, t, speed, origin = rc[keep], ri[keep], t[keep], speed[keep], origin[keep]
    ec = np.concatenate(ev_c) if ev_c else np.zeros(0, np.int64)
    ei = np.concatenate(ev_i) if ev_i else np.zeros(0, np.int64)
    et = np.concatenate(ev_t) if ev_t else np.zeros(0)
    eo = np.concatenate(ev_o) if ev_o else np.zeros(0)
    e_sec = np.floor(et * DAY_S).astype(np.int64)
    srt = np.argsort(((ec.astype(np.int64) - a) << 32) | e_sec)
    ec, ei, et, e_sec = ec[srt], ei[srt], et[srt], e_sec[srt]
    plan = (ec.astype(np.int32), e_sec.astype(np.uint32),
            np.floor(eo[srt] * DAY_S).astype(np.uint32))
    real = et < np.minimum(m.death[ec], days)  # re-buys that happen (sorted by customer, time)
    ec, ei, et = ec[real], ei[real], et[real]
    dkey = ec.astype(np.int64) * 1_000_000 + np.floor(et).astype(np.int64)
    new_o = np.r_[True, dkey[1:] != dkey[:-1]] if len(dkey) else np.zeros(0, bool)
    r_order = np.cumsum(new_o) - 1
    r_cust, r_t = ec[new_o], et[new_o]
    # a replenishment trip picks up other items too (these do not start new habits)
    n_extra = rng.poisson(p["lines_per_order"] - 1.0, len(r_cust))
    x_order = np.repeat(np.arange(len(r_cust)), n_extra)
    x_item = sampler.draw(r_cust[x_order] - a, rng.random(len(x_order)))

    o_cust = np.concatenate([o_cust, r_cust])
    o_t = np.concatenate([o_t, r_t])
    l_order = np.concatenate([l_order, r_order + n_disc, x_order + n_disc])
    l_item = np.concatenate([l_item, ei, x_item])
    l_qty = np.concatenate([l_qty, 1.0 + rng.poisson(_QTY_EXTRA, len(ei) + len(x_order))])
    # durables are seldom bought twice: a non-consumable the customer already bought
    # is drawn again once (the new draw may still repeat, at the choice probabilities)
    cust = o_cust[l_order]
    key = (cust.astype(np.int64) - a) * m.n_i + l_item
    srt = np.argsort((key << 32) | np.floor(o_t[l_order] * DAY_S).astype(np.int64))
    ks = key[srt]
    again = srt[np.r_[False, ks[1:] == ks[:-1]]] if len(ks) else srt
    again = again[~m.repeatable[l_item[again]]]
    l_item[again] = sampler.draw(cust[again] - a, rng.random(len(again)))
    del sampler
    l_order, l_item, l_qty = _merge_lines(l_order, l_item, l_qty, m.n_i)

    orders = (o_cust.astype(np.int32), o_t,
              np.concatenate([np.zeros(n_disc, np.int8), np.ones(len(r_cust), np.int8)]))
    lines = (l_order.astype(np.int32), l_item.astype(np.int32), l_qty.astype(np.float32))
    return orders, lines, plan, exp_price, em


@dataclass
class _Tables:
    """Orders and lines during generation; lines are sorted by order index."""

    o_cust: np.ndarray  # int32
    o_t: np.ndarray  # float64 raw days
    o_kind: np.ndarray  # int8: 0 organic, 1 replenishment, 2 coupon
    o_channel: np.ndarray  # int8
    l_order: np.ndarray  # int32
    l_item: np.ndarray  # int32
    l_qty: np.ndarray  # float32
    l_coupon: np.ndarray  # int16, -1 = none
    l_disc: np.ndarray  # float32

    def line_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        cnt = np.bincount(self.l_order, minlength=len(self.o_cust))
        end = np.cumsum(cnt)
        return end - cnt, end


def _generate_orders(m: _Model, elig: np.ndarray | None):
    step = m.block_size(m.n_i)
    parts_o, parts_l, parts_p = [], [], []
    exp_price = np.zeros(m.n_c)
    elig_mass = None if elig is None else np.zeros((m.n_c, elig.shape[1]), np.float32)
    offset = 0
    for bi, a in enumerate(range(0, m.n_c, step)):
        b = min(a + step, m.n_c)
        o, ln, plan, ep, em = _block(m, a, b, bi, elig)
        parts_o.append(o)
        parts_l.append((ln[0] + offset, ln[1], ln[2]))
        parts_p.append(plan)
        offset += len(o[0])
        exp_price[a:b] = ep
        if elig_mass is not None:
            elig_mass[a:b] = em
    cat = lambda parts, j: np.concatenate([x[j] for x in parts])  # noqa: E731
    o_cust, o_t, o_kind = cat(parts_o, 0), cat(parts_o, 1), cat(parts_o, 2)
    del parts_o
    l_order, l_item, l_qty = cat(parts_l, 0), cat(parts_l, 1), cat(parts_l, 2)
    del parts_l
    # blocks are in customer order: plans stay sorted by (customer, time)
    plan = tuple(np.concatenate([x[j] for x in parts_p]) for j in range(3))
    rng = m.rng(4)
    usual = rng.random(len(o_cust)) < _P_USUAL_CHANNEL
    channel = np.where(usual, m.dom_channel[o_cust],
                       rng.integers(0, 3, len(o_cust), dtype=np.int8)).astype(np.int8)
    tables = _Tables(o_cust, o_t, o_kind, channel, l_order, l_item, l_qty,
                     np.full(len(l_order), -1, np.int16), np.zeros(len(l_order), np.float32))
    return tables, plan, exp_price, elig_mass


# --------------------------------------------------------------------------- offers
def _offer_spec(m: _Model) -> tuple[list[tuple], np.ndarray]:
    """The offer catalog's shape and which items each offer applies to."""
    rng = m.rng(6)
    cons = np.bincount(m.item_cat, weights=m.repeatable, minlength=m.n_g)
    target_cat = int(np.argmax(cons))
    others = [g for g in range(m.n_g) if g != target_cat] or [target_cat]
    g2 = others[int(rng.integers(0, len(others)))]
    cand = np.flatnonzero(m.item_cat == g2)
    target_items = np.sort(rng.choice(cand, size=min(5, len(cand)), replace=False))
    spec = [  # id, kind, value (None: set from the basket size), target category, items
        ("PCT05", "percent_off", 5.0, None, None),
        ("PCT10", "percent_off", 10.0, None, None),
        ("PCT20", "percent_off", 20.0, None, None),
        ("AMT", "amount_off", None, None, None),
        ("SPEND_A", "spend_get_off", None, None, None),
        ("SPEND_B", "spend_get_off", None, None, None),
        ("PTS2", "points_multiplier", 2.0, None, None),
        ("FREESHIP", "free_shipping", 4.95, None, None),
        ("CAT15", "percent_off", 15.0, target_cat, None),
        ("ITEMS25", "percent_off", 25.0, None, target_items),
    ]
    elig = np.ones((m.n_i, len(spec)), dtype=np.float32)
    for j, (_, _, _, tc, ti) in enumerate(spec):
        if tc is not None:
            elig[:, j] = m.item_cat == tc
        if ti is not None:
            elig[:, j] = 0.0
            elig[ti, j] = 1.0
    return spec, elig


def _round_to(x: float, step: float) -> float:
    return float(max(step, step * round(x / step)))


def _offers_and_response(m: _Model, spec: list[tuple], elig: np.ndarray, aov: np.ndarray,
                         online: np.ndarray, elig_mass: np.ndarray, start_ts: pd.Timestamp
                         ) -> tuple[pd.DataFrame, np.ndarray]:
    med = float(np.median(aov)) if len(aov) else 10.0
    min_spend = _round_to(1.6 * med, 5.0)
    loyalty = np.minimum(1.0, m.lam * 365.0 / 12.0)
    resp = np.zeros((m.n_c, len(spec)), dtype=np.float32)
    rows = []
    for j, (oid, kind, value, tc, ti) in enumerate(spec):
        ms, unit_cost = 0.0, 0.10
        if oid == "AMT":
            value = _round_to(0.1 * med, 1.0)
            ms = _round_to(3.0 * value, 5.0)
        elif oid == "SPEND_A":
            value, ms = _round_to(0.1 * min_spend, 1.0), min_spend
        elif oid == "SPEND_B":
            value, ms = _round_to(0.25 * min_spend, 1.0), min_spend
        elif kind == "points_multiplier":
            unit_cost = round(0.01 * (value - 1.0) * med, 2)
        elif kind == "free_shipping":
            unit_cost = 3.5
        n_elig = int(elig[:, j].sum())
        # targeted offers: how much the customer likes the targeted items vs. a uniform taste
        tf = (np.minimum(1.5, elig_mass[:, j] * m.n_i / max(n_elig, 1)) if n_elig < m.n_i
              else 1.0)
        reach = np.minimum(1.0, aov / ms) ** 2 if ms > 0 else 1.0  # thresholds out of reach
        if kind == "percent_off":
            x = value / 100.0 * tf
        elif kind == "amount_off":
            x = np.minimum(value / aov, 0.5) * tf * reach
        elif kind == "spend_get_off":
            x = value / ms * reach
        elif kind == "points_multiplier":
            x = 0.05 * (value - 1.0) * loyalty
        else:  # free_shipping
            x = np.minimum(value / aov, 0.5) * online
        resp[:, j] = -np.expm1(-m.p["coupon_response"] * m.sens * x)
        rows.append((oid, kind, float(value), float(ms),
                     None if tc is None else str(m.cat_names[tc]),
                     None if ti is None else "|".join(m.item_ids[ti]), float(unit_cost)))
    n = len(rows)
    end = start_ts + pd.Timedelta(days=m.p["days"])
    col = lambda j: [r[j] for r in rows]  # noqa: E731
    df = pd.DataFrame({
        "offer_id": pd.Series(col(0), dtype="str"),
        "kind": pd.Series(col(1), dtype="str"),
        "value": np.array(col(2), dtype=np.float64),
        "min_spend": np.array(col(3), dtype=np.float64),
        "target_category": pd.Series(col(4), dtype="str"),
        "target_items": pd.Series(col(5), dtype="str"),
        "unit_cost": np.array(col(6), dtype=np.float64),
        "eligibility": pd.Series(["{}"] * n, dtype="str"),
        "valid_from": np.full(n, start_ts.to_datetime64()).astype("datetime64[ns]"),
        # open-ended, except free shipping: a seasonal offer that ended with the data (shows "expired")
        "valid_to": np.where(np.array(col(1)) == "free_shipping", end.to_datetime64(),
                             np.datetime64("NaT")).astype("datetime64[ns]"),
        "per_customer_cap": np.ones(n, dtype=np.int64),
    })
    return df, resp


def _apply_coupons(m: _Model, elig: np.ndarray, offers_df: pd.DataFrame, T: _Tables,
                   red_order: np.ndarray, red_offer: np.ndarray) -> np.ndarray:
    """Redeem offer ``red_offer[r]`` on order ``red_order[r]`` where eligible (in place).

    Returns whether each redemption happened (eligible spend > 0 and >= min_spend).
    """
    if len(red_order) == 0:
        return np.zeros(0, bool)
    ls, le = T.line_bounds()
    s, e = ls[red_order], le[red_order]
    li = _ranges(s, e)
    rid = np.repeat(np.arange(len(red_order)), e - s)
    off = red_offer[rid]
    ok_line = elig[T.l_item[li], off] > 0
    gross = T.l_qty[li].astype(np.float64) * m.price[T.l_item[li]]
    eg = np.bincount(rid, weights=np.where(ok_line, gross, 0.0), minlength=len(red_order))
    kinds = offers_df["kind"].to_numpy(dtype=object)[off]
    value = offers_df["value"].to_numpy()[off]
    min_spend = offers_df["min_spend"].to_numpy()
    ok = (eg > 0) & (eg >= min_spend[red_offer] - 1e-9)
    ok_line &= ok[rid]
    d = np.zeros(len(li))
    pct = kinds == "percent_off"
    d[pct] = gross[pct] * value[pct] / 100.0
    fixed = (kinds == "amount_off") | (kinds == "spend_get_off")
    egl = eg[rid]
    share = np.divide(gross, egl, out=np.zeros_like(gross), where=egl > 0)
    d[fixed] = np.minimum(value[fixed], egl[fixed]) * share[fixed]
    T.l_disc[li[ok_line]] = np.round(d[ok_line], 2)
    T.l_coupon[li[ok_line]] = off[ok_line]
    return ok


def _campaigns(m: _Model, campaign_days: np.ndarray, offers_df: pd.DataFrame, elig: np.ndarray,
               response: np.ndarray, T: _Tables, start_ts: pd.Timestamp):
    """Randomized exposures, coupon redemptions and persuaded coupon orders."""
    p, rng = m.p, m.rng(7)
    n_off = len(offers_df)
    W = float(p["response_window_days"])
    n_o0 = len(T.o_cust)
    keys = (T.o_cust.astype(np.int64) << 32) | np.floor(T.o_t * DAY_S).astype(np.int64)
    by_ct = np.argsort(keys)
    keys = keys[by_ct]
    redeem_p = -np.expm1(-_REDEEM_SCALE * m.sens)

    ex, red_o, red_a, pers = [], [], [], []
    n_rows = 0
    for k, day in enumerate(campaign_days):
        sel = np.flatnonzero((m.signup < day) & (rng.random(m.n_c) < p["campaign_share"]))
        n = len(sel)
        arm = np.where(rng.random(n) < p["control_share"], -1, rng.integers(0, n_off, n))
        e = day + rng.random(n)
        base = sel.astype(np.int64) << 32
        i0 = np.searchsorted(keys, base | np.floor(e * DAY_S).astype(np.int64))
        i1 = np.searchsorted(keys, base | np.floor((e + W) * DAY_S).astype(np.int64))
        organic = i1 > i0
        treated = arm >= 0
        alive = m.death[sel] > e
        u1, u2, u3 = rng.random(n), rng.random(n), rng.random(n)
        redeem = treated & organic & (u1 < redeem_p[sel])
        red_o.append(by_ct[i0[redeem]])
        red_a.append(arm[redeem])
        persuaded = treated & ~organic & alive & (u2 < response[sel, np.maximum(arm, 0)])
        idx = np.flatnonzero(persuaded)
        t_p = e[idx] + u3[idx] * np.minimum(W, m.death[sel[idx]] - e[idx])
        pers.append((idx + n_rows, sel[idx], arm[idx], t_p))
        ex.append((sel, e, arm, np.full(n, k), i0, i1, persuaded))
        n_rows += n
    cat = lambda parts, j, dt: (np.concatenate([x[j] for x in parts]).astype(dt)  # noqa: E731
                                if parts else np.zeros(0, dt))
    _apply_coupons(m, elig, offers_df, T, np.concatenate(red_o).astype(np.int64),
                   np.concatenate(red_a).astype(np.int64))

    # persuaded customers place an extra coupon order
    p_row, p_c = cat(pers, 0, np.int64), cat(pers, 1, np.int64)
    p_o, p_t = cat(pers, 2, np.int64), cat(pers, 3, np.float64)
    n_p = len(p_c)
    n_l = 1 + rng.poisson(p["lines_per_order"] - 1.0, n_p)
    c_order = np.repeat(np.arange(n_p), n_l)
    c_item = m.sample_items(p_c[c_order], rng)
    firsts = (np.cumsum(n_l) - n_l).astype(np.int64)
    for j in range(n_off):  # a targeted offer's order contains at least one targeted item
        cols = np.flatnonzero(elig[:, j] > 0)
        if len(cols) < m.n_i and (p_o == j).any():
            c_item[firsts[p_o == j]] = m.sample_items(p_c[p_o == j], rng, cols)
    c_qty = 1.0 + rng.poisson(_QTY_EXTRA, len(c_item)).astype(np.float64)
    c_order, c_item, c_qty = _merge_lines(c_order, c_item, c_qty, m.n_i)
    min_spend = offers_df["min_spend"].to_numpy()[p_o]
    ok_line = elig[c_item, p_o[c_order]] > 0
    eg = np.bincount(c_order, weights=np.where(ok_line, c_qty * m.price[c_item], 0.0),
                     minlength=n_p)
    c_qty = c_qty * np.where(eg < min_spend, np.ceil(min_spend / np.maximum(eg, 1e-9)),
                             1.0)[c_order]  # buy enough to reach the threshold
    usual = rng.random(n_p) < _P_USUAL_CHANNEL
    T.o_cust = np.concatenate([T.o_cust, p_c.astype(np.int32)])
    T.o_t = np.concatenate([T.o_t, p_t])
    T.o_kind = np.concatenate([T.o_kind, np.full(n_p, 2, np.int8)])
    T.o_channel = np.concatenate([T.o_channel, np.where(
        usual, m.dom_channel[p_c], rng.integers(0, 3, n_p, dtype=np.int8)).astype(np.int8)])
    T.l_order = np.concatenate([T.l_order, (c_order + n_o0).astype(np.int32)])
    T.l_item = np.concatenate([T.l_item, c_item.astype(np.int32)])
    T.l_qty = np.concatenate([T.l_qty, c_qty.astype(np.float32)])
    T.l_coupon = np.concatenate([T.l_coupon, np.full(len(c_order), -1, np.int16)])
    T.l_disc = np.concatenate([T.l_disc, np.zeros(len(c_order), np.float32)])
    ok = _apply_coupons(m, elig, offers_df, T, np.arange(n_o0, n_o0 + n_p), p_o)
    if not ok.all():  # pragma: no cover - coupon orders are built to qualify
        raise AssertionError("a persuaded coupon order does not qualify for its offer")

    # revenue: net spend of every order in the window (organic ones plus the coupon order)
    net = np.bincount(T.l_order, weights=T.l_qty.astype(np.float64) * m.price[T.l_item]
                      - T.l_disc.astype(np.float64), minlength=len(T.o_cust))
    cs = np.concatenate([[0.0], np.cumsum(net[:n_o0][by_ct])])
    sel, e, arm = cat(ex, 0, np.int64), cat(ex, 1, np.float64), cat(ex, 2, np.int64)
    camp, i0, i1 = cat(ex, 3, np.int64), cat(ex, 4, np.int64), cat(ex, 5, np.int64)
    persuaded = cat(ex, 6, bool)
    revenue = cs[i1] - cs[i0]
    revenue[p_row] += net[n_o0:]
    converted = (i1 > i0) | persuaded
    order = np.lexsort((sel, e))
    sel, e, arm, camp, revenue, converted = (x[order] for x in
                                             (sel, e, arm, camp, revenue, converted))
    start64 = start_ts.to_datetime64().astype("datetime64[ns]")
    exposures = pd.DataFrame({
        "customer_id": _str_col(m.cust_id_arr.take(pa.array(sel))),
        "exposed_at": _seconds_to_ts(start64, _clock_seconds(e)),
        "offer_id": _take_str([*offers_df["offer_id"].tolist(), None],
                              np.where(arm >= 0, arm, n_off)),
        "campaign_id": _take_str([f"CMP{k + 1:02d}" for k in range(len(campaign_days))], camp),
        "randomized": np.ones(len(sel), dtype=bool),
        "converted": converted,
        "revenue": np.round(revenue, 2) + 0.0,  # no -0.0
    })
    return exposures, (sel, e, arm)


# --------------------------------------------------------------------------- defects
def _inject_defects(m: _Model, c: dict[str, np.ndarray], n_orders: int
                    ) -> tuple[dict[str, np.ndarray], dict[str, int | float]]:
    """Add duplicates, returns, guest orders and zero-price lines (own random stream)."""
    rng = m.rng(99)
    rates, days = m.p["defect_rates"], m.days
    n = len(c["cust"])
    add: list[dict[str, np.ndarray]] = []

    def like(idx: np.ndarray) -> dict[str, np.ndarray]:
        return {k: v[idx] for k, v in c.items()}

    n_dup = min(n, int(round(rates["duplicate"] * n)))
    if n_dup:
        add.append(like(rng.choice(n, n_dup, replace=False)))
    ret_keys = np.zeros(0, np.int64)
    n_ret, ret_qty = 0, 0.0
    n_try = min(n, int(round(rates["return"] * n)))
    if n_try:
        r = like(rng.choice(n, n_try, replace=False))
        sec = r["sec"] + rng.integers(DAY_S, 30 * DAY_S, n_try)
        keep = sec < days * DAY_S
        r = {k: v[keep] for k, v in r.items()}
        r["sec"] = sec[keep]
        r["qty"] = -r["qty"]
        r["okind"] = np.ones(len(r["sec"]), np.int8)
        r["coupon"] = np.full(len(r["sec"]), -1, np.int16)
        r["disc"] = np.zeros(len(r["sec"]), np.float32)
        n_ret, ret_qty = len(r["sec"]), float(-r["qty"].astype(np.float64).sum())
        ret_keys = _sets.unique(r["cust"].astype(np.int64) * m.n_i + r["item"])
        add.append(r)
    n_go = int(round(rates["guest"] * n_orders))
    n_guest = 0
    if n_go:
        g_order = np.repeat(np.arange(n_go), 1 + rng.poisson(m.p["lines_per_order"] - 1.0, n_go))
        g_item = rng.choice(m.n_i, len(g_order), p=m.item_popularity)
        g_qty = 1.0 + rng.poisson(_QTY_EXTRA, len(g_order)).astype(np.float64)
        g_order, g_item, g_qty = _merge_lines(g_order, g_item, g_qty, m.n_i)
        o_sec = np.sort(_clock_seconds(rng.random(n_go) * days))
        o_ch = rng.choice(3, n_go, p=[0.3, 0.6, 0.1]).astype(np.int8)
        o_st = np.where(o_ch == 1, rng.integers(0, m.p["n_stores"], n_go), -1).astype(np.int16)
        n_guest = len(g_order)
        add.append({
            "cust": np.full(n_guest, -1, np.int32), "item": g_item.astype(np.int32),
            "sec": o_sec[g_order], "qty": g_qty.astype(np.float32),
            "free": np.zeros(n_guest, bool), "order": g_order.astype(np.int32),
            "okind": np.full(n_guest, 2, np.int8), "channel": o_ch[g_order],
            "store": o_st[g_order], "coupon": np.full(n_guest, -1, np.int16),
            "disc": np.zeros(n_guest, np.float32),
        })
    n_zero = 0
    n_want = int(round(rates["zero_price"] * n_orders))
    if n_want and n:
        heads = np.flatnonzero(np.r_[True, c["order"][1:] != c["order"][:-1]])
        z = like(heads[rng.choice(len(heads), min(n_want, len(heads)), replace=False)])
        item = rng.choice(m.n_i, len(z["cust"]), p=m.item_popularity).astype(np.int64)
        for _ in range(m.n_i):  # keep gifts off returned (customer, item) pairs: exact counts
            clash = _sets.isin(z["cust"].astype(np.int64) * m.n_i + item, ret_keys)
            if not clash.any():
                break
            item[clash] = (item[clash] + 1) % m.n_i
        keep = ~_sets.isin(z["cust"].astype(np.int64) * m.n_i + item, ret_keys)
        z = {k: v[keep] for k, v in z.items()}
        z["item"] = item[keep].astype(np.int32)
        z["qty"] = np.ones(len(z["item"]), np.float32)
        z["free"] = np.ones(len(z["item"]), bool)
        z["coupon"] = np.full(len(z["item"]), -1, np.int16)
        z["disc"] = np.zeros(len(z["item"]), np.float32)
        n_zero = len(z["item"])
        add.append(z)
    counts = {"duplicate_lines": n_dup, "return_lines": n_ret, "returned_quantity": ret_qty,
              "guest_lines": n_guest, "zero_price_lines": n_zero}
    if not add:
        return c, counts
    extra = {k: np.concatenate([a[k] for a in add]) for k in c}
    srt = np.argsort(extra["sec"], kind="stable")
    extra = {k: v[srt] for k, v in extra.items()}
    # merge the (time-sorted) extra rows after clean rows of the same second
    n_x = len(extra["sec"])
    pos_x = np.searchsorted(c["sec"], extra["sec"], side="right") + np.arange(n_x)
    pos_c = np.arange(n) + np.searchsorted(extra["sec"], c["sec"], side="left")
    out = {}
    for k in list(c):
        v = np.empty(n + n_x, dtype=c[k].dtype)
        v[pos_c] = c.pop(k)
        v[pos_x] = extra.pop(k)
        out[k] = v
    return out, counts


# --------------------------------------------------------------------------- frames
def _transactions_frame(m: _Model, c: dict[str, np.ndarray], start_ts: pd.Timestamp,
                        offer_ids: list[str], n_orders: int) -> pd.DataFrame:
    """Build the canonical transactions frame, consuming ``c`` column by column."""
    n_stores = m.p["n_stores"]
    cols: dict[str, Any] = {}
    cust = c.pop("cust")
    cust_vocab = pa.concat_arrays([m.cust_id_arr, pa.array([None], pa.large_string())])
    cols["customer_id"] = _str_col(cust_vocab.take(pa.array(np.where(cust < 0, m.n_c, cust))))
    del cust
    item = c.pop("item")
    cols["item_id"] = _str_col(m.item_id_arr.take(pa.array(item)))
    cols["timestamp"] = _seconds_to_ts(start_ts.to_datetime64().astype("datetime64[ns]"),
                                       c.pop("sec"))
    cols["quantity"] = c.pop("qty").astype(np.float64)
    cols["price"] = np.where(c.pop("free"), 0.0, m.price[item])
    del item
    # order ids: "O…" clean orders (numbered by time from 1), "RO…" returns, "G…" guests
    order, kind = c.pop("order"), c.pop("okind")
    w = _width(n_orders, 8)
    ret = kind == 1
    ret_orders, ret_code = np.unique(order[ret], return_inverse=True)
    guest = kind == 2
    n_guest_orders = int(order[guest].max()) + 1 if guest.any() else 0
    o_vocab = _id_strings("O", n_orders, w, first=1)
    r_vocab = pc.binary_join_element_wise(pa.scalar("R", pa.large_string()),
                                          o_vocab.take(pa.array(ret_orders)),
                                          pa.scalar("", pa.large_string()))
    g_vocab = _id_strings("G", n_guest_orders, _width(n_guest_orders, 7), first=1)
    code = order.astype(np.int64)
    code[ret] = n_orders + ret_code
    code[guest] += n_orders + len(ret_orders)
    del order, kind, ret, guest
    cols["order_id"] = _str_col(pa.concat_arrays([o_vocab, r_vocab, g_vocab]).take(pa.array(code)))
    del code
    cols["channel"] = _take_str(_CHANNELS, c.pop("channel"))
    store = c.pop("store").astype(np.int32)
    cols["store_id"] = _take_str([f"S{s + 1:03d}" for s in range(n_stores)] + [None],
                                 np.where(store < 0, n_stores, store))
    del store
    coupon = c.pop("coupon").astype(np.int32)
    cols["coupon_id"] = _take_str([*offer_ids, None], np.where(coupon < 0, len(offer_ids), coupon))
    del coupon
    cols["discount"] = np.round(c.pop("disc").astype(np.float64), 2)
    return pd.DataFrame(cols, copy=False)


def _items_frame(m: _Model) -> pd.DataFrame:
    cat = m.cat_names[m.item_cat]
    desc = [f"{b} {str(g).replace('_', ' ')} item {i}"
            for i, (b, g) in enumerate(zip(m.brand.tolist(), cat.tolist()))]
    return pd.DataFrame({
        "item_id": _str_col(m.item_id_arr),
        "category": pd.Series(cat.tolist(), dtype="str"),
        "brand": pd.Series(m.brand.tolist(), dtype="str"),
        "price": m.price.astype(np.float64),
        "in_stock": m.in_stock.astype(bool),
        "margin": m.margin.astype(np.float64),
        "repeatable": m.repeatable.astype(bool),
        "description": pd.Series(desc, dtype="str"),
    })


def _customers_frame(m: _Model, start_ts: pd.Timestamp) -> pd.DataFrame:
    start64 = start_ts.to_datetime64().astype("datetime64[ns]")
    day = np.timedelta64(1, "D").astype("timedelta64[ns]")
    return pd.DataFrame({
        "customer_id": _str_col(m.cust_id_arr),
        "signup_date": start64 + m.signup.astype(np.int64) * day,
        "birth_date": start64 + m.birth_offset.astype(np.int64) * day,
        "region": _take_str(_REGIONS, m.region),
        "consent_email": m.consent[:, 0].copy(),
        "consent_sms": m.consent[:, 1].copy(),
        "consent_personalization": m.consent[:, 2].copy(),
        # the global suppression list (asked never to be contacted), from its own random stream
        "suppressed": m.rng(11).random(m.n_c) < _SUPPRESSED_SHARE,
    })


# --------------------------------------------------------------------------- public
def _validate(p: dict[str, Any]) -> None:
    def need(cond: bool, msg: str) -> None:
        if not cond:
            raise PersonalizeError(f"make_retail: {msg}")

    def is_int(v: Any) -> bool:
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

    for name in ("n_customers", "n_items", "n_categories", "n_factors", "n_stores"):
        need(is_int(p[name]) and p[name] >= 1, f"{name} must be a positive integer, got {p[name]!r}")
    need(p["n_items"] >= p["n_categories"],
         f"n_items ({p['n_items']}) must be at least n_categories ({p['n_categories']})")
    need(is_int(p["days"]) and 1 <= p["days"] <= 40_000,
         f"days must be an integer in [1, 40000], got {p['days']!r}")
    need(is_int(p["seed"]) and p["seed"] >= 0, f"seed must be a non-negative integer, got {p['seed']!r}")
    need(is_int(p["n_campaigns"]) and p["n_campaigns"] >= 0,
         f"n_campaigns must be a non-negative integer, got {p['n_campaigns']!r}")
    for name in ("orders_per_year", "mean_lifetime_days", "personalization", "category_spread",
                 "coupon_response", "response_window_days", "lines_per_order"):
        v = p[name]
        need(isinstance(v, (int, float, np.number)) and math.isfinite(float(v)) and float(v) >= 0,
             f"{name} must be a finite non-negative number, got {v!r}")
    need(p["mean_lifetime_days"] > 0, "mean_lifetime_days must be > 0")
    need(p["lines_per_order"] >= 1, f"lines_per_order must be >= 1, got {p['lines_per_order']!r}")
    for name in ("new_customer_share", "campaign_share", "control_share"):
        need(0.0 <= float(p[name]) <= 1.0, f"{name} must be in [0, 1], got {p[name]!r}")
    need(bool(p["offers"]) or not p["exposures"], "exposures=True needs offers=True")
    unknown = set(p["defect_rates"]) - set(DEFAULT_DEFECT_RATES)
    need(not unknown, f"unknown defect_rates keys {sorted(unknown)}; known: "
                      f"{sorted(DEFAULT_DEFECT_RATES)}")
    for key, v in p["defect_rates"].items():
        need(0.0 <= float(v) <= 1.0, f"defect_rates[{key!r}] must be in [0, 1], got {v!r}")
    try:
        start = pd.Timestamp(p["start"])
    except (ValueError, TypeError) as exc:
        raise PersonalizeError(f"make_retail: start {p['start']!r} is not a date") from exc
    need(start is not pd.NaT, "start is missing")
    # dropout times (capped at 100 years) must stay inside datetime64[ns]
    naive = start.tz_convert("UTC").tz_localize(None) if start.tz is not None else start
    need(pd.Timestamp("1700-01-01") <= naive <= pd.Timestamp("2150-01-01")
         - pd.Timedelta(days=int(p["days"])),
         f"start {p['start']!r} must lie between 1700 and 2150 minus days")


def _campaign_days(p: dict[str, Any]) -> np.ndarray:
    """Integer days of the campaigns: non-overlapping windows inside the data."""
    n, days, w = p["n_campaigns"], p["days"], int(math.ceil(p["response_window_days"]))
    if n == 0 or not p["exposures"]:
        return np.zeros(0, dtype=np.int64)
    hi = days - w - 1
    lo = min(max(1, int(0.25 * days)), hi)
    pos = np.array([hi]) if n == 1 else np.round(lo + (hi - lo) * np.arange(n) / (n - 1))
    pos = pos.astype(np.int64)
    if hi < 1 or (n > 1 and np.diff(pos).min() < w + 1):
        raise PersonalizeError(
            f"make_retail: days={days} is too short for n_campaigns={n} non-overlapping "
            f"campaigns with response_window_days={p['response_window_days']}; "
            "use more days, fewer campaigns or exposures=False")
    return pos


def make_retail_frames(
    *,
    n_customers: int = 2000,
    n_items: int = 300,
    n_categories: int = 12,
    start: str | pd.Timestamp = "2023-01-01",
    days: int = 365,
    seed: int = 0,
    n_factors: int = 8,
    defects: bool = False,
    offers: bool = True,
    exposures: bool = True,
    orders_per_year: float = 5.0,
    lines_per_order: float = 2.5,
    mean_lifetime_days: float = 730.0,
    new_customer_share: float = 0.3,
    personalization: float = 1.5,
    category_spread: float = 0.7,
    n_stores: int = 20,
    n_campaigns: int = 4,
    campaign_share: float = 0.3,
    control_share: float = 0.2,
    response_window_days: float = 14.0,
    coupon_response: float = 1.5,
    defect_rates: Mapping[str, float] | None = None,
    feedback: bool = False,
    points: bool = False,
) -> tuple[dict[str, pd.DataFrame], RetailTruth]:
    """Generate canonical retail tables and the truth behind them.

    Returns ``(frames, truth)``: ``frames`` has ``"transactions"``, ``"items"``,
    ``"customers"`` and, when enabled, ``"offers"`` and ``"exposures"``, in the
    canonical columns and dtypes of :mod:`personalize.data.schema`. Transactions
    are sorted by time; ids are strings (``"C000123"``, ``"I00042"``,
    ``"O00000001"``). The same arguments always give the same data.

    Size knob: ``n_customers``. Lines per customer are about ``orders_per_year *
    days / 365 * lines_per_order`` times the share of the window a customer is
    active, plus replenishment orders: about 20 with the defaults, so
    ``n_customers=1_000_000`` gives about 20 million lines (measured on a 2-core
    machine: about 30 s of CPU time and 3.6 GB peak RSS). The choice model costs
    ``n_customers x n_items``; keep ``n_items`` in the hundreds to low thousands
    at that scale.

    Other parameters:
    ``orders_per_year`` mean organic order rate (gamma-distributed, shape 1.2);
    ``lines_per_order`` mean distinct lines per order (1 + Poisson);
    ``mean_lifetime_days`` sets the dropout hazard ~ Gamma(2, mean 1/mean_lifetime_days);
    ``new_customer_share`` share of customers who sign up inside the window (the rest
    are members alive at ``start`` who signed up up to three years before);
    ``personalization`` weight of the latent factor affinity (0 = popularity and
    category taste only); ``category_spread`` sd of the category preference logits;
    ``n_stores`` stores spread over five regions;
    ``n_campaigns`` randomized campaigns spread over the last three quarters of the
    window (``exposures``), each exposing ``campaign_share`` of the customers who
    signed up before it, ``control_share`` of them as control (``offer_id`` missing)
    and the rest split evenly over the offers; ``response_window_days`` the conversion
    window; ``coupon_response`` scales every customer's persuasion probability;
    ``defect_rates`` overrides :data:`DEFAULT_DEFECT_RATES` when ``defects=True``;
    ``feedback`` adds the ``"feedback"`` table and ``points`` the ``"points"`` ledger
    (see the module docstring; every other table is unchanged by them).

    Offers: ``percent_off`` value is in percent (10.0 = 10 %); ``amount_off`` and
    ``spend_get_off`` values are currency (``min_spend`` the threshold);
    ``points_multiplier`` value is the multiplier; ``free_shipping`` value is the fee
    waived. ``unit_cost`` is the retailer's non-discount cost per redemption (points
    liability, shipping, handling). A redeemed coupon shows in transactions as
    ``coupon_id`` = offer id on the discounted lines with the line's ``discount``
    (currency); ``price`` stays the list price. ``eligibility`` is ``"{}"``; every offer is open-ended
    except ``FREESHIP``, which ended with the data.
    """
    p = dict(n_customers=n_customers, n_items=n_items, n_categories=n_categories,
             start=start, days=days, seed=seed, n_factors=n_factors, defects=bool(defects),
             offers=bool(offers), exposures=bool(exposures), orders_per_year=orders_per_year,
             lines_per_order=lines_per_order, mean_lifetime_days=mean_lifetime_days,
             new_customer_share=new_customer_share, personalization=personalization,
             category_spread=category_spread, n_stores=n_stores, n_campaigns=n_campaigns,
             campaign_share=campaign_share, control_share=control_share,
             response_window_days=response_window_days, coupon_response=coupon_response,
             defect_rates=dict(DEFAULT_DEFECT_RATES if defect_rates is None
                               else {**DEFAULT_DEFECT_RATES, **dict(defect_rates)}),
             feedback=bool(feedback), points=bool(points))
    _validate(p)
    # small matmuls in a loop: extra BLAS threads only spin (and fight other processes)
    with threadpool_limits(1, "blas"):
        return _make_frames(p)


def _make_frames(p: dict[str, Any]) -> tuple[dict[str, pd.DataFrame], RetailTruth]:
    n_customers, n_stores, days = p["n_customers"], p["n_stores"], p["days"]
    offers, defects = p["offers"], p["defects"]
    lines_per_order, response_window_days = p["lines_per_order"], p["response_window_days"]
    campaign_days = _campaign_days(p)
    ts = pd.Timestamp(p["start"])
    start_ts = (ts.tz_convert("UTC").tz_localize(None) if ts.tz is not None else ts).normalize()
    start64 = start_ts.to_datetime64().astype("datetime64[ns]")
    m = _Model(p)

    spec, elig = _offer_spec(m) if offers else (None, None)
    T, plan, exp_price, elig_mass = _generate_orders(m, elig)

    offers_df, offer_ids = None, []
    response = np.zeros((n_customers, 0), dtype=np.float32)
    if offers:
        aov = float(lines_per_order) * (1.0 + _QTY_EXTRA) * exp_price  # typical basket value
        usual_online = m.dom_channel != 1
        online = np.where(usual_online, _P_USUAL_CHANNEL, 0.0) + (1 - _P_USUAL_CHANNEL) * 2 / 3
        offers_df, response = _offers_and_response(m, spec, elig, aov, online, elig_mass,
                                                   start_ts)
        offer_ids = offers_df["offer_id"].tolist()
    del elig_mass
    exposures_df, exposure_raw = None, None
    if len(campaign_days):
        exposures_df, exposure_raw = _campaigns(m, campaign_days, offers_df, elig, response, T,
                                                start_ts)

    # stores, order numbers by time, lines in order
    rng = m.rng(5)
    n_o = len(T.o_cust)
    home = rng.random(n_o) < 0.85
    store = np.where(home, m.home_store[T.o_cust], rng.integers(0, n_stores, n_o, dtype=np.int16))
    store = np.where(T.o_channel == 1, store, -1).astype(np.int16)
    o_sec = _clock_seconds(T.o_t)
    rank = np.argsort(o_sec, kind="stable")
    ls, le = T.line_bounds()
    li = _ranges(ls[rank], le[rank])
    o_num = np.empty(n_o, dtype=np.int32)
    o_num[rank] = np.arange(n_o, dtype=np.int32)
    del rank, ls, le
    lo = T.l_order[li]
    n_lines = len(li)
    cols = {
        "cust": T.o_cust[lo], "item": T.l_item[li], "sec": o_sec[lo], "qty": T.l_qty[li],
        "free": np.zeros(n_lines, bool), "order": o_num[lo],
        "okind": np.zeros(n_lines, np.int8), "channel": T.o_channel[lo], "store": store[lo],
        "coupon": T.l_coupon[li], "disc": T.l_disc[li],
    }
    loyalty = _loyalty_inputs(m, cols, n_o, offers_df) if (p["feedback"] or p["points"]) else None
    del lo, li, store, o_sec, o_num, T  # free the generation tables
    defect_counts: dict[str, int | float] = {"duplicate_lines": 0, "return_lines": 0,
                                             "returned_quantity": 0.0, "guest_lines": 0,
                                             "zero_price_lines": 0}
    if defects:
        cols, defect_counts = _inject_defects(m, cols, n_o)
    frames: dict[str, pd.DataFrame] = {
        "transactions": _transactions_frame(m, cols, start_ts, offer_ids, n_o),
        "items": _items_frame(m),
        "customers": _customers_frame(m, start_ts),
    }
    if offers_df is not None:
        frames["offers"] = offers_df
    if exposures_df is not None:
        frames["exposures"] = exposures_df
    loyalty_truth: dict[str, Any] = {}
    if loyalty is not None:
        from personalize.datasets import _loyalty as L

        orders, lines = loyalty
        fb, fb_cust = None, None
        if p["feedback"]:
            fb, t_fb = L.make_feedback(m, orders, lines, start_ts, m.cust_id_arr, m.item_id_arr)
            frames["feedback"] = fb
            fb_cust = t_fb["_row_customer"]
            trig = t_fb["dropout_trigger_raw"]
            has = np.isfinite(trig)
            trig_ts = np.full(len(trig), np.datetime64("NaT", "ns"), dtype="datetime64[ns]")
            trig_ts[has] = _seconds_to_ts(start64, _clock_seconds(trig[has]))
            loyalty_truth.update(satisfaction=t_fb["satisfaction"], item_quality=t_fb["item_quality"],
                                 dropout_trigger=trig_ts)
        if p["points"]:
            pts, t_pts = L.make_points(m, orders, fb, fb_cust, start_ts, m.cust_id_arr)
            frames["points"] = pts
            loyalty_truth.update(points_member=t_pts["points_member"],
                                 opening_points_expiry=t_pts["opening_points_expiry"],
                                 points_expiry_boost=float(t_pts["expiry_boost"]))
        del loyalty, orders, lines

    clock_ts = lambda raw: _seconds_to_ts(start64, _clock_seconds(raw))  # noqa: E731
    truth = RetailTruth(
        start=start_ts,
        end=start_ts + pd.Timedelta(days=days),
        customer_ids=np.array(m.cust_id_arr.to_pylist(), dtype=object),
        item_ids=m.item_ids,
        categories=m.cat_names,
        item_category=m.item_cat,
        item_price=m.price,
        customer_factors=m.U,
        item_factors=m.V,
        personalization=float(p["personalization"]),
        item_popularity=m.item_popularity,
        category_preference=m.catpref,
        item_cycle_days=m.cycle,
        purchase_rate=m.lam,
        churn_hazard=m.mu,
        acquired_at=_seconds_to_ts(start64, (m.t0 * DAY_S).astype(np.int64)),
        dropout_time=clock_ts(m.death),
        alive_at_end=m.death > float(days),
        discount_sensitivity=m.sens,
        offer_ids=np.array(offer_ids, dtype=object),
        offer_response=response,
        uplift=np.zeros_like(response),
        response_window_days=float(response_window_days),
        exposure_truth=None,
        defects=defect_counts,
        n_lines=n_lines,
        n_orders=n_o,
        params={**{k: v for k, v in p.items() if k != "start"}, "start": str(start_ts)},
        _t0=m.t0,
        _death=m.death,
        _plan_cust=plan[0],
        _plan_sec=plan[1],
        _plan_origin=plan[2],
        _item_bias=m.bias32,
        **loyalty_truth,
    )
    if offers:
        truth.uplift = truth.true_uplift().astype(np.float32)
    if exposure_raw is not None:
        ec, ea, eo = exposure_raw
        p_none = truth._no_purchase_prob(ec, ea, float(response_window_days))
        alive = (m.t0[ec] <= ea) & (m.death[ec] > ea)
        truth.exposure_truth = pd.DataFrame({
            "customer_id": exposures_df["customer_id"].copy(),
            "campaign_id": exposures_df["campaign_id"].copy(),
            "offer_id": exposures_df["offer_id"].copy(),
            "base_rate": np.where(alive, 1.0 - p_none, 0.0),
            "uplift": np.where(eo >= 0, np.where(alive, p_none, 0.0)
                               * response[ec, np.maximum(eo, 0)], np.nan),
        })
    return frames, truth


def _loyalty_inputs(m: _Model, cols: dict[str, np.ndarray], n_o: int, offers_df: pd.DataFrame | None):
    """Clean orders and lines (before defects) for the feedback and points generators."""
    from personalize.datasets._loyalty import Lines, Orders

    order = cols["order"].astype(np.int64)
    amount = cols["qty"].astype(np.float64) * m.price[cols["item"]] - cols["disc"].astype(np.float64)
    o_cust = np.zeros(n_o, np.int64)
    o_cust[order] = cols["cust"]
    o_sec = np.zeros(n_o, np.int64)
    o_sec[order] = cols["sec"]
    o_chan = np.zeros(n_o, np.int8)
    o_chan[order] = cols["channel"]
    mult = np.ones(n_o)
    if offers_df is not None:
        value = np.where(offers_df["kind"].to_numpy(dtype=object) == "points_multiplier",
                         offers_df["value"].to_numpy(dtype=np.float64), 1.0)
        coupon = cols["coupon"].astype(np.int64)
        used = coupon >= 0
        np.maximum.at(mult, order[used], value[coupon[used]])
    ids = _id_strings("O", n_o, _width(n_o, 8), first=1)
    orders = Orders(cust=o_cust, sec=o_sec, amount=np.bincount(order, weights=amount, minlength=n_o),
                    channel=o_chan, multiplier=mult, ids=ids)
    return orders, Lines(cust=cols["cust"].astype(np.int64), item=cols["item"].astype(np.int64), order=order)


def make_retail(
    *,
    n_customers: int = 2000,
    n_items: int = 300,
    n_categories: int = 12,
    start: str | pd.Timestamp = "2023-01-01",
    days: int = 365,
    seed: int = 0,
    n_factors: int = 8,
    defects: bool = False,
    offers: bool = True,
    exposures: bool = True,
    orders_per_year: float = 5.0,
    lines_per_order: float = 2.5,
    mean_lifetime_days: float = 730.0,
    new_customer_share: float = 0.3,
    personalization: float = 1.5,
    category_spread: float = 0.7,
    n_stores: int = 20,
    n_campaigns: int = 4,
    campaign_share: float = 0.3,
    control_share: float = 0.2,
    response_window_days: float = 14.0,
    coupon_response: float = 1.5,
    defect_rates: Mapping[str, float] | None = None,
    feedback: bool = False,
    points: bool = False,
    options: CleaningOptions | None = None,
) -> tuple[Dataset, RetailTruth]:
    """Generate a synthetic retail history as a cleaned :class:`~personalize.data.Dataset`.

    The parameters are those of :func:`make_retail_frames` (see there) plus the
    Dataset's cleaning ``options`` (default: :class:`~personalize.data.CleaningOptions` with ``now`` at
    the data's end, so a ``start`` in the future is accepted). Returns
    ``(dataset, truth)``. With ``defects=True`` the cleaning report drops exactly the
    injected rows counted in ``truth.defects`` (returns net against the purchases).
    Size knob: ``make_retail(n_customers=1_000_000)`` gives about 20 million lines.
    """
    params = {k: v for k, v in locals().items() if k != "options"}  # exactly make_retail_frames' parameters
    frames, truth = make_retail_frames(**params)
    if options is None:
        options = CleaningOptions(now=truth.end)
    ds = Dataset.from_frames(
        frames["transactions"],
        items=frames["items"],
        customers=frames["customers"],
        offers=frames.get("offers"),
        exposures=frames.get("exposures"),
        feedback=frames.get("feedback"),
        points=frames.get("points"),
        options=options,
    )
    return ds, truth
