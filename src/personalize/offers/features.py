"""Features of (customer, offer) pairs as of a point in time, for acceptance and offer scoring.

Everything about the customer is computed from the purchases strictly before
``cutoff`` (the day an exposure happened, or the end of the data when
scoring): the churn feature set (recency, frequency, spend, rhythm, BG/NBD)
plus the customer's share of spend in each offer's target category or
items. Offer features say what the offer gives relative to this customer's
basket. Nothing after ``cutoff`` is read (``tests/test_offers.py`` proves it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from personalize import _sets
from personalize._memory import release_memory
from personalize.analytics import profiles
from personalize.churn import churn_features
from personalize.errors import DataError
from personalize.offers.catalog import OfferCatalog

if TYPE_CHECKING:
    from personalize.data import Dataset

__all__ = ["Economics", "economics", "economics_of_lines", "margin_fill", "pair_features", "OFFER_FEATURES",
           "DayFeatures", "customer_frame", "assemble_customer_frame", "campaign_history"]

OFFER_FEATURES = ("offer_kind", "offer_value", "offer_min_spend", "offer_unit_cost", "offer_targeted",
                  "offer_cost_share", "offer_reach", "affinity_share", "affinity_bought")
#: margin rate used where the items table has no ``margin``
DEFAULT_MARGIN = 0.3


class Economics:
    """Per-customer money facts as of a cutoff: typical basket, margin rate, spend shares per offer target."""

    def __init__(self, customer_ids: np.ndarray, aov: np.ndarray, margin_rate: np.ndarray, share: np.ndarray,
                 bought: np.ndarray) -> None:
        self.customer_ids = customer_ids
        self.aov = aov                  # (n,) mean order value (NaN without history)
        self.margin_rate = margin_rate  # (n,) spend-weighted item margin
        self.share = share              # (n, offers) share of spend in each offer's target (1 untargeted)
        self.bought = bought            # (n, offers) bought in each offer's target before (True untargeted)
        self.index = pd.Index(customer_ids)

    def rows(self, customer_ids) -> np.ndarray:
        return self.index.get_indexer(np.asarray(customer_ids, dtype=object))


def economics(ds: Dataset, catalog: OfferCatalog, cutoff: pd.Timestamp,
              customer_ids: np.ndarray | None = None) -> Economics:
    """:class:`Economics` of ``customer_ids`` (default: everyone who bought before ``cutoff``)."""
    sub = ds.until(cutoff)
    tx = sub.transactions
    if not len(tx):
        raise DataError(f"no purchases before {cutoff}", table="transactions", column="timestamp")
    # the Dataset's own id codes (its vocabularies are sorted): no pass over millions of id strings
    cvocab = np.asarray(ds.customer_vocab.ids, dtype=object)
    ivocab = np.asarray(ds.item_vocab.ids, dtype=object)
    cidx, iidx = np.asarray(sub.customer_idx, np.int64), np.asarray(sub.item_idx, np.int64)
    ids = customer_ids
    if ids is None:
        ids = ds.customer_vocab.compact(cidx)[1]
        if not ds.customer_vocab.is_sorted:
            ids = np.sort(ids.astype(str)).astype(object)
    items = ds.items
    fill = DEFAULT_MARGIN
    if items is not None and "margin" in items.columns and items["margin"].notna().any():
        n_lines = np.bincount(iidx, minlength=len(ivocab))
        bought = np.flatnonzero(n_lines)
        lines = pd.Series(n_lines[bought], index=pd.Index(ivocab[bought], dtype=object))
        fill = margin_fill(pd.Series(items["margin"].to_numpy(np.float64), index=items["item_id"].astype(str)),
                           lines)
    return economics_of_lines(tx, items, catalog, ids, margin=fill, codes=(cvocab, cidx, ivocab, iidx),
                              order_codes=sub.order_codes())


def margin_fill(margins: pd.Series, lines_per_item: pd.Series) -> float:
    """The margin rate of a customer without known item margins: the mean item margin over every line
    before the cutoff (``margins``: item id -> margin; ``lines_per_item``: item id -> lines), not only of the
    customers asked for, so that a customer's row never depends on who else is scored. Computed from
    per-item line counts, so the Spark path (which counts lines per item) gets the same number."""
    m = margins[~margins.index.duplicated()].reindex(lines_per_item.index).to_numpy(np.float64)
    n = lines_per_item.to_numpy(np.float64)
    known = np.isfinite(m) & (n > 0)
    if not known.any():
        return DEFAULT_MARGIN
    order = np.argsort(lines_per_item.index.to_numpy(dtype=str)[known], kind="stable")  # a fixed summation order
    return float(np.dot(n[known][order], m[known][order]) / n[known].sum())


def economics_of_lines(tx: pd.DataFrame, items: pd.DataFrame | None, catalog: OfferCatalog, customer_ids,
                       *, margin: float, codes: tuple | None = None,
                       order_codes: np.ndarray | None = None) -> Economics:
    """:class:`Economics` of ``customer_ids`` from their purchase lines ``tx`` (before the cutoff, in the
    Dataset's order; other customers' lines are ignored, a customer without lines has NaN ``aov``).
    ``margin`` fills the margin rate of customers without known item margins (:func:`margin_fill`).
    A customer's row depends on her own lines only, so this runs per partition on the Spark path.

    ``codes``: ``(customer ids, each line's customer code, item ids, each line's item code)`` when the caller
    has them (a Dataset's vocabularies and index arrays); else they are read from ``tx``'s id columns. Every
    lookup then runs once per distinct customer or item, not once per line. ``order_codes``: each line's
    order code (:meth:`Dataset.order_codes <personalize.data.Dataset.order_codes>`), when the caller has them.
    """
    ids = np.asarray(customer_ids, dtype=object)
    index = pd.Index(ids)
    n = len(ids)
    if codes is None:
        ccode, cuniq = pd.factorize(tx["customer_id"])
        icode, iuniq = pd.factorize(tx["item_id"])
        cuniq = np.asarray(cuniq, dtype=object).astype(str).astype(object)
        iuniq = np.asarray(iuniq, dtype=object).astype(str).astype(object)
    else:
        cuniq, ccode, iuniq, icode = codes
    # code -1 (a missing id) points at an appended "unknown" entry; line-length arrays are copied only when some
    # lines are left out (each is 160 MB at 20M lines)
    ccode, icode = np.asarray(ccode), np.asarray(icode)
    row = np.r_[index.get_indexer(np.asarray(cuniq, dtype=object)), -1].astype(np.int64)[ccode]
    ok = row >= 0
    every = bool(ok.all())
    amount = tx["amount"].to_numpy(np.float64)
    if not every:
        row, amount, icode = row[ok], amount[ok], icode[ok]
    if (icode < 0).any():
        icode = np.where(icode < 0, len(iuniq), icode)
    spend = np.bincount(row, weights=amount, minlength=n)
    orders = _orders_per_row(tx["order_id"] if "order_id" in tx.columns else tx["timestamp"], row,
                             None if every else ok, n, codes=order_codes if "order_id" in tx.columns else None)
    with np.errstate(invalid="ignore", divide="ignore"):
        aov = np.where(orders > 0, spend / np.maximum(orders, 1), np.nan)
    margin_rate = np.full(n, DEFAULT_MARGIN)
    uniq_ids = pd.Index(np.r_[np.asarray(iuniq, dtype=object), np.array([None], dtype=object)], dtype=object)
    if items is not None and "margin" in items.columns and items["margin"].notna().any():
        m = pd.Series(items["margin"].to_numpy(np.float64), index=items["item_id"].astype(str))
        line_margin = m.reindex(uniq_ids).to_numpy(np.float64)[icode]
        known = np.isfinite(line_margin)
        w = np.bincount(row[known], weights=amount[known], minlength=n)
        mm = np.bincount(row[known], weights=amount[known] * line_margin[known], minlength=n)
        margin_rate = np.where(w > 0, mm / np.where(w > 0, w, 1), float(margin))
    cats = None
    if items is not None and "category" in items.columns:
        cats = pd.Series(items["category"].astype("object").to_numpy(), index=items["item_id"].astype(str)) \
            .reindex(uniq_ids).to_numpy(dtype=object)
    share = np.ones((n, len(catalog)))
    bought = np.ones((n, len(catalog)), bool)
    for j in range(len(catalog)):
        if not catalog.targeted[j]:
            continue
        hit_item = np.zeros(len(uniq_ids), bool)
        if catalog.target_items[j]:
            hit_item |= uniq_ids.isin(catalog.target_items[j])
        if catalog.target_category[j] is not None and cats is not None:
            hit_item |= cats == catalog.target_category[j]
        hit = hit_item[icode]
        s = np.bincount(row[hit], weights=amount[hit], minlength=n)
        share[:, j] = np.divide(s, spend, out=np.zeros(n), where=spend > 0)
        bought[:, j] = np.bincount(row[hit], minlength=n) > 0
    return Economics(ids, aov, margin_rate, share, bought)


def _orders_per_row(order: pd.Series, row: np.ndarray, ok: np.ndarray | None, n: int, *,
                    codes: np.ndarray | None = None) -> np.ndarray:
    """Distinct orders (``order``: each line's order id, missing = not an order) per row 0..n-1 of ``row`` (the
    kept lines' rows; ``ok`` marks the kept lines among ``order``'s, None = all). ``codes``: ``order``'s codes
    (-1 missing) when the caller has them; the ids are then not read."""
    from personalize.analytics.profiles import _same_as_previous

    if codes is not None:
        ocode = np.asarray(codes) if ok is None else np.asarray(codes)[ok]
        hrow = row
    elif (same := _same_as_previous(order)) is not None:
        # an order's lines are consecutive in time-sorted data: its id is hashed once per run of equal ids, and
        # a run's lines share one (row, order) pair
        if ok is not None:
            same = same[ok]
            same[1:] &= ok[np.flatnonzero(ok)[1:] - 1]  # a run never spans a dropped line
        same[1:] &= row[1:] == row[:-1]
        heads = np.flatnonzero(~same)
        lines = np.flatnonzero(ok)[heads] if ok is not None else heads
        ocode = pd.factorize(order.iloc[lines])[0]
        hrow = row[heads]
    else:
        ocode = pd.factorize(order)[0]
        hrow = row
        if ok is not None:
            ocode = ocode[ok]
    has = ocode >= 0  # a missing order id is not an order
    n_o = int(ocode.max()) + 1 if has.any() else 1
    if has.all():
        key = hrow * n_o
        key += ocode
    else:
        key = hrow[has] * n_o + ocode[has]
    del ocode, has
    pairs = _sets.unique(key)
    return np.bincount(pairs // n_o, minlength=n)


def pair_features(catalog: OfferCatalog, customer: pd.DataFrame, econ: Economics, rows: np.ndarray,
                  offers: np.ndarray, *, values: np.ndarray | None = None) -> pd.DataFrame:
    """Feature frame of pairs (``customer`` features row ``rows[k]``, offer ``offers[k]``).

    ``customer`` is indexed like ``econ`` (rows from :meth:`Economics.rows`; -1 = no history: NaN).
    ``values``: ``customer.to_numpy(np.float64)`` when the caller scores it in batches (converted once).
    """
    rows = np.asarray(rows, np.int64)
    offers = np.asarray(offers, np.int64)
    have = rows >= 0
    cf = np.full((len(rows), customer.shape[1]), np.nan)
    cf[have] = (customer.to_numpy(np.float64) if values is None else values)[rows[have]]
    out = pd.DataFrame(cf, columns=list(customer.columns))
    aov = np.where(have, econ.aov[np.maximum(rows, 0)], np.nan)
    basket = np.maximum(np.nan_to_num(aov, nan=0.0), catalog.min_spend[offers])
    share = np.where(have, econ.share[np.maximum(rows, 0), offers], np.nan)
    cost = catalog.redemption_cost(basket, offers, np.nan_to_num(share, nan=1.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        out["offer_kind"] = catalog.kind_codes[offers].astype(np.float64)
        out["offer_value"] = catalog.value[offers]
        out["offer_min_spend"] = catalog.min_spend[offers]
        out["offer_unit_cost"] = catalog.unit_cost[offers]
        out["offer_targeted"] = catalog.targeted[offers].astype(np.float64)
        out["offer_cost_share"] = np.where(basket > 0, cost / basket, np.nan)
        out["offer_reach"] = np.where(catalog.min_spend[offers] > 0, aov / catalog.min_spend[offers], np.nan)
        out["affinity_share"] = np.where(catalog.targeted[offers], share, np.nan)
        out["affinity_bought"] = np.where(catalog.targeted[offers] & have,
                                          econ.bought[np.maximum(rows, 0), offers].astype(np.float64), np.nan)
    return out


#: profile columns added to the churn features: how the customer reacts to discounts, and her basket habits
PROFILE_FEATURES = ("discount_share", "discount_rate", "items_per_order", "trend", "return_rate")


def customer_frame(ds: Dataset, cutoff: pd.Timestamp, econ: Economics) -> pd.DataFrame:
    """Churn features plus discount and basket habits (:data:`PROFILE_FEATURES`) of ``econ``'s customers as
    of ``cutoff`` (rows aligned with ``econ``; NaN without history)."""
    ids = econ.customer_ids
    # each part is computed for every customer (the BG/NBD fit and the return rates need them all) and cut to
    # ``ids`` before the next one: at a million customers a full part held through the next one's peak costs
    # hundreds of MB
    churn, known = _rows_of(churn_features(ds, cutoff), ids)
    prof, _ = _rows_of(profiles(ds, cutoff, shares=False), ids, PROFILE_FEATURES)
    prof[~known] = np.nan  # as a left join on the churn rows: no profile for a customer without churn features
    return assemble_customer_frame(churn, prof, campaign_history(ds, cutoff, ids), ids)


def _rows_of(frame: pd.DataFrame, customer_ids, columns=None) -> tuple[pd.DataFrame, np.ndarray]:
    """``frame`` (indexed by customer id) in rows ``customer_ids`` (NaN where it has none), only ``columns`` if
    given, and which of ``customer_ids`` it had. ``frame``'s index is made strings in place (no copy of a
    million-row part)."""
    if columns is not None:
        frame = frame[[c for c in columns if c in frame.columns]]
    frame.index = frame.index.astype(str)
    ids = pd.Index(np.asarray(customer_ids, dtype=object), dtype=object)
    return frame.reindex(ids), frame.index.get_indexer(ids) >= 0


def assemble_customer_frame(churn: pd.DataFrame, prof: pd.DataFrame, history: pd.DataFrame,
                            customer_ids) -> pd.DataFrame:
    """The frame of :func:`customer_frame` from its parts (each indexed by customer id): the churn features,
    the profile columns of :data:`PROFILE_FEATURES` (prefixed ``profile_``) and :func:`campaign_history`,
    in rows ``customer_ids``. The Spark path computes the parts there and assembles them here."""
    f = churn.copy()
    f.index = f.index.astype(str)
    prof = prof.copy()
    prof.index = prof.index.astype(str)
    extra = [c for c in PROFILE_FEATURES if c in prof.columns]
    f = f.join(prof[extra].astype(np.float64).add_prefix("profile_"), how="left")
    f = f.reindex(pd.Index(np.asarray(customer_ids, dtype=object), dtype=object))
    return f.join(history)


#: how a customer answered earlier offers, as of a cutoff (:func:`campaign_history`)
HISTORY_FEATURES = ("offers_received", "days_since_offer", "coupon_orders", "coupon_orders_per_offer")


def campaign_history(ds: Dataset, cutoff: pd.Timestamp, customer_ids: np.ndarray) -> pd.DataFrame:
    """Offers received before ``cutoff`` (exposures with an offer), days since the last one, orders placed with
    a coupon before ``cutoff`` and their ratio: the only trace of a customer's taste for discounts before she
    answers one. Both sides are known at ``cutoff`` (no campaign outcome that closes after it is used)."""
    cutoff = pd.Timestamp(cutoff)
    idx = pd.Index(np.asarray(customer_ids, dtype=object))
    n = len(idx)
    received = np.zeros(n)
    last = np.full(n, np.nan)
    exp = ds.exposures
    if exp is not None and len(exp):
        e = exp[(exp["exposed_at"] < cutoff) & exp["offer_id"].notna()]
        rows = idx.get_indexer(e["customer_id"].astype(str).to_numpy(dtype=object))
        ok = rows >= 0
        received = np.bincount(rows[ok], minlength=n).astype(np.float64)
        age = (cutoff - e["exposed_at"]).dt.total_seconds().to_numpy()[ok] / 86_400.0
        last_age = np.full(n, np.inf)
        np.minimum.at(last_age, rows[ok], age)
        last = np.where(np.isfinite(last_age), last_age, np.nan)
    coupons = np.zeros(n)
    tx = ds.transactions
    cidx, vocab = getattr(ds, "customer_idx", None), getattr(ds, "customer_vocab", None)
    if "coupon_id" in tx.columns and cidx is not None and vocab is not None and len(cidx) == len(tx):
        # a Dataset: its customer codes, not millions of id strings (each a Python object)
        m = (tx["timestamp"] < cutoff).to_numpy() & tx["coupon_id"].notna().to_numpy()
        code = np.asarray(cidx)[m].astype(np.int64)
        if "order_id" in tx.columns:  # one per (customer, order); lines without an order id: one per customer
            oc = pd.factorize(tx["order_id"][m])[0].astype(np.int64) + 1
            width = int(oc.max()) + 1 if len(oc) else 1
            code = _sets.unique(code * width + oc) // width
        pos = vocab.index(idx.to_numpy(dtype=object))
        row_of = np.full(len(vocab) + 1, -1, dtype=np.int64)  # last slot: a line without a customer code
        row_of[pos[pos >= 0]] = np.flatnonzero(pos >= 0)
        rows = row_of[np.where(code >= 0, code, len(vocab))]
        coupons = np.bincount(rows[rows >= 0], minlength=n).astype(np.float64)
    elif "coupon_id" in tx.columns:
        t = tx[(tx["timestamp"] < cutoff) & tx["coupon_id"].notna()]
        if "order_id" in t.columns:
            t = t.drop_duplicates(["customer_id", "order_id"])
        rows = idx.get_indexer(t["customer_id"].astype(str).to_numpy(dtype=object))
        coupons = np.bincount(rows[rows >= 0], minlength=n).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(received > 0, coupons / received, np.nan)
    return pd.DataFrame({"offers_received": received, "days_since_offer": last, "coupon_orders": coupons,
                         "coupon_orders_per_offer": ratio}, index=idx)


class DayCache:
    """Each exposure day's ``(Economics, customer frame)``, computed once per day for every customer exposed that
    day, then shared. Subclasses say how a day is computed (:meth:`_compute`); :class:`DayFeatures` on a
    Dataset, the Spark path's on a Spark dataset.

    ``get(day, ids)`` returns ``(econ, frame)`` covering at least ``ids``; a request for customers the day's
    entry lacks recomputes it for the union. Rows are per customer as of the day, whoever else is in the
    entry, so sharing changes no value.
    """

    def __init__(self, exposures: pd.DataFrame | None) -> None:
        self._expected: dict[pd.Timestamp, np.ndarray] = {}
        if exposures is not None and len(exposures):
            day = exposures["exposed_at"].dt.normalize()
            for d, g in exposures["customer_id"].astype(str).groupby(day, sort=False):
                self._expected[pd.Timestamp(d)] = _sets.unique(g.to_numpy(dtype=object))
        self._cache: dict[pd.Timestamp, tuple[Economics, pd.DataFrame]] = {}

    def _compute(self, day: pd.Timestamp, ids: np.ndarray) -> tuple[Economics, pd.DataFrame]:
        raise NotImplementedError  # pragma: no cover - abstract

    def get(self, day, ids) -> tuple[Economics, pd.DataFrame]:
        day = pd.Timestamp(day)
        want = _sets.unique(np.asarray(ids, dtype=object))
        hit = self._cache.get(day)
        if hit is not None and (hit[0].rows(want) >= 0).all():
            return hit
        base = [want, self._expected.get(day, want)]
        if hit is not None:
            base.append(hit[0].customer_ids)
        union = _sets.unique(np.concatenate(base).astype(str)).astype(object)
        release_memory()  # a day's features pass over the whole history: its peak stacks on less held memory
        entry = self._cache[day] = self._compute(day, union)
        return entry


class DayFeatures(DayCache):
    """:func:`economics` and :func:`customer_frame` as of each exposure day (see :class:`DayCache`): the
    acceptance and the coupon training sets both need them, and a day's features cost a pass over the
    history before it."""

    def __init__(self, ds: Dataset, catalog: OfferCatalog):
        super().__init__(ds.exposures)
        self._ds, self._catalog = ds, catalog

    def _compute(self, day: pd.Timestamp, ids: np.ndarray) -> tuple[Economics, pd.DataFrame]:
        econ = economics(self._ds, self._catalog, day, customer_ids=ids)
        return econ, customer_frame(self._ds, day, econ)
