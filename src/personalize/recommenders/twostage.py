"""Two-stage recommender: pooled candidates from several generators, re-ranked by LightGBM (lambdarank).

Stage 1 asks each generator (by default ALS, ItemKNN, BuyAgain, Popular,
Popular over the last 14 days and, on catalogs of at most 2,000 items, EASE)
for its top ``n_candidates`` items per customer and pools them: the popular and
trending items are always in the pool. Stage 2 builds
a feature row per (customer, candidate) and scores it with a LightGBM
lambdarank model:

* generator features: each generator's score (NaN when the item came from that
  generator's fallback chain or not from it at all) and rank, and how many
  generators proposed the item;
* item features: distinct buyers (log), sales in the last 7 and 30 days and
  the 30 before (trend), unit price, share of buyers who bought it again, its
  typical repurchase cycle in days, days since its first sale, and popularity
  on scales that mean the same in every window: the share of the customers so
  far who bought it and its rank in the catalog, all time and over the last 30
  days;
* customer features: recency, number of purchase days, total spend, distinct
  items, tenure, mean unit price paid, mean days between purchase days, purchase
  days in the last 90 days;
* pair features: how often (distinct days, and weighted by 30- and 90-day
  half-lives; total quantity) the customer bought this item, days
  since the last time, the customer's own cycle for it, days-since divided by
  the own and the item's typical cycle, the item's price relative to the
  customer's mean, the share of the customer's purchase days with the item,
  how long before the customer's latest purchase it was last bought and, when
  the catalog has categories, the customer's share of purchases in the item's
  category.

Training is point-in-time correct *inside* the training data. With ``end`` the
last training timestamp and ``W = train_window_days``, window ``w`` (``0 ..
train_windows - 1``) has the label period ``[end - (w+1)W, end - wW)``: the
generators are fit on the data before it, features are computed as of its
start, labels are the purchases in it. The windows adapt to the history
(:func:`window_plan`): up to 4 windows of ``span / 9`` days (7 to 40), down to
2 windows of 7 days after 14 days of history; below 28 days of history the fit
raises a DataError saying so.

The most recent window validates: the rankers learn from the older windows
stacked (a ``negative_share`` sample of the candidates nobody bought, every
purchased one), with early stopping on the validation window, and are then
scored there against every generator's own top 10 (NDCG@10 over every
customer with a purchase that counts). A mode whose ranker does not beat the
best generator there by more than one standard error of their paired
per-customer difference is served by that generator (``choice_``; e.g.
Popular for discovery where popularity dominates); ``train_info_["validation"]`` records
every score and the choice. Then the generators are refit on all training
data for serving, with features as of ``end``. Nothing after the data passed
to :meth:`fit` is seen.

Two rankers are trained: ``all`` (candidates may include past purchases,
labels are every purchase in the window: repeat buying dominates retail) for
``exclude="none"`` and ``discovery`` (past purchases excluded from candidates,
so labels are items new to the customer) for ``exclude="purchased"``;
``"non_repeatable"`` uses ``all`` when the catalog flags repeatable items and
``discovery`` otherwise.

Everything else comes from :class:`~personalize.recommenders.base.Recommender`:
filters and candidate lists, the cold-start / top-up fallback chain (rows it
produces carry its source names; rows ranked here say ``twostage``), live
purchases (passed on to every generator; the pair and customer features of a
customer with live events are recomputed for that call from the fitted
tables plus the events) and pickle-free save/load (arrays.npz holds the
feature tables, ``files/`` the LightGBM text rankers, ``parts/`` each
generator's own saved model).
``similar_items``, ``recommend_from_items`` and ``explain`` use the item-kNN
generator when there is one (else the first generator).
"""

from __future__ import annotations

import copy
import time

import numpy as np
import pandas as pd

from personalize import _sets
from personalize._memory import release_memory
from personalize._trees import predict_rows
from personalize._json import to_jsonable
from personalize.errors import BundleError, DataError, ParameterError
from personalize.recommenders import kinds
from personalize.recommenders.base import Customers, Recommender, fit_together
from personalize.recommenders.fallback import DEFAULT_FALLBACK
from personalize.recommenders.popular import Popular
from personalize.recommenders.query import Query
from personalize.recommenders.topk import NEG, in_bulk_scoring, ranks, scoring_threads

_MODES = ("all", "discovery")
_DAY = np.timedelta64(86400, "s")
_EPOCH = np.datetime64("1970-01-01", "s")
_ITEM_FEATURES = ["item_buyers_log", "item_sales_7d", "item_sales_30d", "item_sales_prev_30d", "item_trend",
                  "item_price", "item_repeat_share", "item_cycle_days", "item_age_days", "item_buyer_share",
                  "item_popularity_rank", "item_recent_share", "item_recent_rank"]
_CUSTOMER_FEATURES = ["cust_recency_days", "cust_days", "cust_spend_log", "cust_items", "cust_tenure_days",
                      "cust_mean_price", "cust_gap_days", "cust_days_90d"]
_PAIR_FEATURES = ["pair_days", "pair_since_last", "pair_own_cycle", "pair_since_over_own_cycle",
                  "pair_since_over_item_cycle", "pair_price_ratio", "pair_category_share", "pair_basket_share",
                  "pair_before_last_visit", "pair_decay_30d", "pair_decay_90d", "pair_quantity_log"]
_I = {n: p for p, n in enumerate(_ITEM_FEATURES)}
_C = {n: p for p, n in enumerate(_CUSTOMER_FEATURES)}


def _days(ts) -> np.ndarray:
    return ((np.asarray(ts, dtype="datetime64[ns]").astype("datetime64[s]") - _EPOCH) / _DAY).astype(np.float64)



def _rank_share(counts: np.ndarray) -> np.ndarray:
    """Each item's rank by ``counts`` as a share of the catalog: 0 for the largest, ties share the best rank."""
    n = len(counts)
    if n == 0:
        return np.zeros(0)
    # number of items with a strictly larger count
    srt = np.sort(counts)
    above = n - np.searchsorted(srt, counts, side="right")
    return above / max(n - 1, 1)


def _build_generator(name: str, spec):
    """A fresh, unfitted generator from a Recommender instance or a ``{"kind": ..., **params}`` spec."""
    if isinstance(spec, Recommender):
        return copy.deepcopy(spec)
    if isinstance(spec, dict) and isinstance(spec.get("kind"), str):
        cls = kinds.get(spec["kind"])
        if cls is None or cls is TwoStage:
            raise ParameterError(f"generator {name!r}: unknown kind {spec['kind']!r}; known: "
                                 f"{sorted(k for k in kinds.registry() if k != TwoStage.kind)}")
        params = {k: v for k, v in spec.items() if k != "kind"}
        if isinstance(params.get("fallback"), list):
            params["fallback"] = tuple(params["fallback"])
        try:
            return cls(**params)
        except TypeError as exc:
            raise ParameterError(f"generator {name!r}: {exc}") from None
    raise ParameterError(f"generator {name!r} must be a recommender or a dict with a 'kind', got {spec!r}")


#: catalogs up to this size also get an EASE generator by default
EASE_GENERATOR_MAX_ITEMS = 2000
DEFAULT_GENERATORS = {"als": {"kind": "als", "iterations": 8}, "itemknn": {"kind": "itemknn"}, "buyagain": {"kind": "buyagain"},
                      "popular": {"kind": "popular"}, "trending": {"kind": "popular", "window_days": 14}}


class _State:
    """Point-in-time feature tables (as of ``now``) over a dataset's vocabularies."""

    ARRAYS = ("item", "cust", "pair_key", "pair_days", "pair_first", "pair_last", "pair_decay", "pair_qty",
              "cat_of_item", "cat_key", "cat_share", "now_day")
    HALF_LIVES = (30.0, 90.0)

    def __init__(self, **arrays) -> None:
        for name in self.ARRAYS:
            setattr(self, name, arrays[name])
        self.n_cat = int(self.cat_of_item.max()) + 1 if len(self.cat_of_item) else 0

    @classmethod
    def build(cls, ds, now: pd.Timestamp) -> "_State":
        # every line-length temporary is dropped after its last use: at 20M lines each is 160 MB, and holding
        # them all to the end cost 3.9 GB on top of the dataset (the refit's peak)
        n_c, n_i = len(ds.customer_vocab), len(ds.item_vocab)
        tx = ds.transactions
        now_day = float(_days([now.to_datetime64()])[0])
        day = _days(tx["timestamp"].to_numpy())
        dint = np.floor(day).astype(np.int64)
        d0 = int(dint.min()) if len(dint) else 0
        dint -= d0
        c = ds.customer_idx.astype(np.int64)
        i = ds.item_idx.astype(np.int64)
        # --- distinct purchase days per customer
        cday = c * 65536
        cday += dint
        cday = _sets.unique(cday)
        n_days = np.bincount(cday // 65536, minlength=n_c).astype(np.float64)
        recent = (now_day - (cday % 65536 + d0)) <= 90
        days90 = np.bincount(cday[recent] // 65536, minlength=n_c).astype(np.float64)
        del cday, recent
        # --- pairs: distinct purchase days per (customer, item)
        key = c * n_i + i
        kd = key * 65536
        kd += dint
        del dint
        kd = _sets.unique(kd)
        kk = kd // 65536
        kday = (kd % 65536 + d0).astype(np.float64)
        del kd
        # kk is sorted: its runs are the pairs (what np.unique(kk, return_index, return_inverse, return_counts)
        # gives, without sorting it again)
        edge = np.empty(len(kk), dtype=bool)
        edge[:1] = True
        np.not_equal(kk[1:], kk[:-1], out=edge[1:])
        start = np.flatnonzero(edge)
        pair_key = kk[start]
        del kk
        inv = np.cumsum(edge) - 1
        del edge
        counts = np.diff(np.append(start, len(inv)))
        pair_first = kday[start]
        pair_last = kday[start + counts - 1]
        pair_days = counts.astype(np.float64)
        del start, counts
        # purchase days weighted by 0.5 ** (age / half-life)
        pair_decay = np.stack([np.bincount(inv, weights=0.5 ** (np.maximum(now_day - kday, 0) / h),
                                           minlength=len(pair_key)) for h in cls.HALF_LIVES], 1)
        del inv, kday
        qpos = np.searchsorted(pair_key, key)
        del key
        pair_qty = np.bincount(qpos, weights=np.maximum(tx["quantity"].to_numpy(dtype=np.float64), 0),
                               minlength=len(pair_key)) if len(qpos) else np.zeros(0)
        del qpos
        # --- items
        pc = pair_key // max(n_i, 1)
        pi = pair_key % max(n_i, 1)
        buyers = np.bincount(pi, minlength=n_i).astype(np.float64)
        repeaters = np.bincount(pi, weights=(pair_days >= 2).astype(np.float64), minlength=n_i)
        own_cycle = np.where(pair_days >= 2, (pair_last - pair_first) / np.maximum(pair_days - 1, 1), np.nan)
        item_cycle = np.full(n_i, np.nan)
        has = np.isfinite(own_cycle)
        if has.any():
            med = pd.Series(own_cycle[has]).groupby(pi[has]).median()
            item_cycle[med.index.to_numpy()] = med.to_numpy()
        del own_cycle, has, pi
        age = now_day - day
        sales7 = np.bincount(i[age <= 7], minlength=n_i).astype(np.float64)
        sales30 = np.bincount(i[age <= 30], minlength=n_i).astype(np.float64)
        sales_prev = np.bincount(i[(age > 30) & (age <= 60)], minlength=n_i).astype(np.float64)
        rec = age <= 30
        del age
        price = tx["price"].to_numpy(dtype=np.float64)
        item_price = np.full(n_i, np.nan)
        if len(i):
            med = pd.Series(price).groupby(i).median()
            item_price[med.index.to_numpy()] = med.to_numpy()
        if ds.items is not None and "price" in ds.items.columns:
            cat_idx = ds.item_vocab.index(ds.items["item_id"].to_numpy(dtype=object))
            cat_price = ds.items["price"].to_numpy(dtype=np.float64, na_value=np.nan)
            fill = (cat_idx >= 0) & np.isnan(item_price[np.maximum(cat_idx, 0)]) & np.isfinite(cat_price)
            item_price[cat_idx[fill]] = cat_price[fill]
        first_sale = np.full(n_i, np.nan)
        if len(i):
            np.fmin.at(first_sale, i, day)
        # popularity on scales that mean the same in every window (the raw counts grow with the history): share
        # of the customers so far who bought the item, and the item's rank (0 = most bought, 1 = least), all
        # time and over the last 30 days (distinct buyers among the customers active then)
        n_items = np.bincount(pc, minlength=n_c).astype(np.float64)
        del pc
        n_buyers_all = max(int(np.count_nonzero(n_items)), 1)
        recent_pairs = _sets.unique(c[rec] * n_i + i[rec]) if rec.any() else np.zeros(0, np.int64)
        recent_buyers = np.bincount(recent_pairs % max(n_i, 1), minlength=n_i).astype(np.float64)
        n_recent = max(int(_sets.unique(c[rec]).size), 1)
        del recent_pairs, rec
        item = np.stack([np.log1p(buyers), sales7, sales30, sales_prev, (sales30 + 1) / (sales_prev + 1), item_price,
                         np.divide(repeaters, buyers, out=np.zeros(n_i), where=buyers > 0), item_cycle,
                         now_day - first_sale, buyers / n_buyers_all, _rank_share(buyers),
                         recent_buyers / n_recent, _rank_share(recent_buyers)], 1)
        # --- customers
        last = np.full(n_c, np.nan)
        first = np.full(n_c, np.nan)
        if len(c):
            np.fmax.at(last, c, day)
            np.fmin.at(first, c, day)
        del day
        spend = np.bincount(c, weights=tx["amount"].to_numpy(dtype=np.float64), minlength=n_c)
        lines = np.bincount(c, minlength=n_c).astype(np.float64)
        mean_price = np.divide(np.bincount(c, weights=price, minlength=n_c), lines, out=np.full(n_c, np.nan),
                               where=lines > 0)
        del price
        gap = np.where(n_days >= 2, (last - first) / np.maximum(n_days - 1, 1), np.nan)
        cust = np.stack([now_day - last, n_days, np.log1p(np.maximum(spend, 0)), n_items, now_day - first,
                         mean_price, gap, days90], 1)
        # --- categories
        cat_of_item = np.full(n_i, -1, dtype=np.int64)
        cat_key = np.empty(0, dtype=np.int64)
        cat_share = np.empty(0, dtype=np.float64)
        if ds.items is not None and "category" in ds.items.columns and ds.items["category"].notna().any():
            known = ds.items["category"].notna().to_numpy()
            idx = ds.item_vocab.index(ds.items["item_id"].to_numpy(dtype=object)[known])
            codes, _ = pd.factorize(ds.items["category"].to_numpy(dtype=object)[known], sort=True)
            ok = idx >= 0
            cat_of_item[idx[ok]] = codes[ok]
            n_cat = int(codes.max()) + 1 if codes.size else 0
            ic = cat_of_item[i]
            del i
            m = ic >= 0
            if m.any() and n_cat:
                ck = c[m] * n_cat
                ck += ic[m]
                del ic, m, c
                ck, cnt = np.unique(ck, return_counts=True)
                cat_key = ck
                cat_share = cnt / lines[ck // n_cat]
        return cls(item=item, cust=cust, pair_key=pair_key, pair_days=pair_days, pair_first=pair_first,
                   pair_last=pair_last, pair_decay=pair_decay, pair_qty=pair_qty, cat_of_item=cat_of_item,
                   cat_key=cat_key, cat_share=cat_share, now_day=np.array([now_day]))

    @property
    def n_items(self) -> int:
        return len(self.item)

    @property
    def n_active(self) -> int:
        """Customers with a purchase in the data the tables were built on (at least 1; counted once)."""
        n = self.__dict__.get("_n_active")
        if n is None:
            n = self.__dict__["_n_active"] = max(int(np.count_nonzero(self.cust[:, _C["cust_days"]] > 0)), 1)
        return n

    def _customer_rows(self, crow: np.ndarray) -> np.ndarray:
        """Customer feature rows (NaN for customers beyond the table, e.g. added by updates)."""
        out = np.full((len(crow), self.cust.shape[1]), np.nan)
        ok = (crow >= 0) & (crow < len(self.cust))
        out[ok] = self.cust[crow[ok]]
        return out

    def features(self, crow: np.ndarray, item: np.ndarray) -> np.ndarray:
        n_i = self.n_items
        it = self.item[item]
        cu = self._customer_rows(crow)
        key = crow.astype(np.int64) * n_i + item
        now = self.now_day[0]
        days = np.zeros(len(key))
        since = np.full(len(key), np.nan)
        own = np.full(len(key), np.nan)
        decay = np.zeros((len(key), len(self.HALF_LIVES)))
        qty = np.zeros(len(key))
        if len(self.pair_key):
            pos = np.minimum(np.searchsorted(self.pair_key, key), len(self.pair_key) - 1)
            found = self.pair_key[pos] == key
            p = pos[found]
            days[found] = self.pair_days[p]
            decay[found] = self.pair_decay[p]
            qty[found] = np.log1p(self.pair_qty[p])
            since[found] = np.maximum(now - self.pair_last[p], 0.0)
            rep = self.pair_days[p] >= 2
            own_f = np.full(len(p), np.nan)
            own_f[rep] = (self.pair_last[p][rep] - self.pair_first[p][rep]) / (self.pair_days[p][rep] - 1)
            own[found] = own_f
        share = np.full(len(key), np.nan)
        if len(self.cat_key):
            cats = self.cat_of_item[item]
            ck = crow.astype(np.int64) * self.n_cat + cats
            p = np.minimum(np.searchsorted(self.cat_key, ck), len(self.cat_key) - 1)
            share = np.where(cats >= 0, np.where(self.cat_key[p] == ck, self.cat_share[p], 0.0), np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            since_own = since / np.maximum(own, 1.0)
            since_item = since / np.maximum(it[:, _I["item_cycle_days"]], 1.0)
            price_ratio = it[:, _I["item_price"]] / cu[:, _C["cust_mean_price"]]
            basket_share = days / cu[:, _C["cust_days"]]
        before_last = since - cu[:, _C["cust_recency_days"]]
        pair = np.column_stack([days, since, own, since_own, since_item, price_ratio, share, basket_share, before_last,
                                decay, qty])
        return np.concatenate([it, cu, pair], 1)

    def for_customer(self, crow: int, items: np.ndarray, days: np.ndarray) -> "_State":
        """A one-customer state (row 0): fitted row ``crow`` (-1 = none) plus purchases ``items`` on ``days``.

        Used for customers with live events; the fitted tables are never changed.
        """
        n_i, n_cat = self.n_items, self.n_cat
        if 0 <= crow < len(self.cust):
            lo, hi = np.searchsorted(self.pair_key, [crow * n_i, (crow + 1) * n_i])
            clo, chi = np.searchsorted(self.cat_key, [crow * n_cat, (crow + 1) * n_cat]) if n_cat else (0, 0)
            cust = self.cust[crow:crow + 1].copy()
        else:
            lo = hi = clo = chi = 0
            cust = np.full((1, self.cust.shape[1]), np.nan)
        mini = _State(item=self.item, cust=cust, pair_key=self.pair_key[lo:hi] - crow * n_i if hi > lo
                      else np.zeros(0, np.int64), pair_days=self.pair_days[lo:hi].copy(),
                      pair_first=self.pair_first[lo:hi].copy(), pair_last=self.pair_last[lo:hi].copy(),
                      pair_decay=self.pair_decay[lo:hi].copy(), pair_qty=self.pair_qty[lo:hi].copy(),
                      cat_of_item=self.cat_of_item, cat_key=self.cat_key[clo:chi] - crow * n_cat if chi > clo
                      else np.zeros(0, np.int64), cat_share=self.cat_share[clo:chi], now_day=self.now_day)
        mini._add(items, days)
        return mini

    def _add(self, items: np.ndarray, days: np.ndarray) -> None:
        """Fold purchases of customer row 0 into this (one-customer) state's pair and customer tables."""
        row = self.cust[0]
        for it, d in zip(np.asarray(items, np.int64), np.floor(np.asarray(days, np.float64))):
            key = int(it)
            p = int(np.searchsorted(self.pair_key, key))
            w = 0.5 ** (max(self.now_day[0] - d, 0.0) / np.asarray(self.HALF_LIVES))
            if p < len(self.pair_key) and self.pair_key[p] == key:
                self.pair_qty[p] += 1.0
                if d > self.pair_last[p]:
                    self.pair_days[p] += 1
                    self.pair_last[p] = d
                    self.pair_decay[p] += w
            else:
                self.pair_key = np.insert(self.pair_key, p, key)
                self.pair_days = np.insert(self.pair_days, p, 1.0)
                self.pair_first = np.insert(self.pair_first, p, d)
                self.pair_last = np.insert(self.pair_last, p, d)
                self.pair_decay = np.insert(self.pair_decay, p, w, axis=0)
                self.pair_qty = np.insert(self.pair_qty, p, 1.0)
                row[_C["cust_items"]] = np.nan_to_num(row[_C["cust_items"]]) + 1
            rec = max(0.0, self.now_day[0] - d)
            if np.isnan(row[_C["cust_recency_days"]]) or rec < row[_C["cust_recency_days"]]:
                row[_C["cust_recency_days"]] = rec
                row[_C["cust_days"]] = np.nan_to_num(row[_C["cust_days"]]) + 1
                row[_C["cust_days_90d"]] = np.nan_to_num(row[_C["cust_days_90d"]]) + 1
            if np.isnan(row[_C["cust_tenure_days"]]):
                row[_C["cust_tenure_days"]] = rec

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}{n}": np.asarray(getattr(self, n)) for n in self.ARRAYS}

    @classmethod
    def from_arrays(cls, a: dict, prefix: str) -> "_State":
        return cls(**{n: np.array(a[f"{prefix}{n}"]) for n in cls.ARRAYS})


class TwoStage(Recommender):
    """Candidates from several recommenders, re-ranked by LightGBM lambdarank (see the module doc).

    Parameters (keyword-only, stored untouched)
    ----------
    generators:
        ``{name: recommender or {"kind": kind, **params}}``; None = ALS (8 iterations), ItemKNN,
        BuyAgain, Popular and 14-day trending Popular with their defaults, plus EASE on catalogs of at most
        2,000 items (``EASE_GENERATOR_MAX_ITEMS``). A plain Popular is added when the given generators
        have none (named "popular", or "popular_baseline" when that name is taken): popular items are
        always candidates and Popular is always among the validation's choices. Fresh copies are fitted; the given
        objects are never changed. (``get_params`` and saved models report instances
        in the ``{"kind": ..., **params}`` form.)
    n_candidates:
        Items asked from each generator per customer.
    train_window_days, train_windows:
        Length and number of the label windows at the end of the training data; None (the default) adapts
        them to the history (see :func:`window_plan`: up to 4 windows of up to 40 days, down to 2 windows of
        7 days after 14 days of history, i.e. 28 days in all; shorter histories raise a DataError saying so).
    max_train_customers:
        Cap on the customers per window used to train the rankers (random sample).
    max_fit_customers:
        Cap on the customers whose histories the training windows' generators and feature tables are fitted on
        (the window's ranker customers plus a seeded random sample of the others; None = everyone). Item
        factors, neighbours and popularity from 50,000 customers' histories rank about as well as from a million's,
        and the windows' cost stops growing with the customer base. The generators served are always refit
        on everyone. Popularity generators' scores are shares of the customers with a purchase (not raw counts),
        so a sample, a window and the whole data speak the same scale.
    negative_share:
        Share of the candidates that were not bought kept in the training windows' rows (a seeded random
        sample; every purchased candidate is kept; 1 keeps them all). Lambdarank's cost grows with the rows
        per customer; a sample of the negatives ranks as well at a fraction of the cost.
    n_estimators, learning_rate, num_leaves, min_child_samples, feature_fraction:
        LightGBM settings (``n_estimators`` is the most rounds; early stopping on the validation window
        picks how many are kept).
    random_state, num_threads:
        LightGBM seed, and the training threads of LightGBM and of the default generators (0 = every
        core: faster on an idle machine; on a busy one the OpenMP threads wait on each other, measured
        up to 4x slower, hence 1 by default). Scoring at serving time uses one thread per call.
    fallback, trending_days, session_neighbors:
        The shared cold-start / top-up chain (see :class:`Recommender`).

    Fitted: ``rankers_`` (mode -> LightGBM booster or None), ``choice_`` (mode -> ``"ranker"`` or the
    name of the generator that serves that mode because it beat the ranker on the validation window),
    ``generators_``, ``state_``, ``train_info_`` (the window plan, rows per window, the validation
    scores of the ranker and of every generator per mode and what was chosen, seconds).
    """

    kind = "twostage"
    default_exclude = "non_repeatable"

    def __init__(self, *, generators: dict | None = None, n_candidates: int = 50,
                 train_window_days: float | None = None, train_windows: int | None = None,
                 max_train_customers: int | None = 20000, max_fit_customers: int | None = 50_000,
                 negative_share: float = 0.3, n_estimators: int = 200,
                 learning_rate: float = 0.1, num_leaves: int = 15, min_child_samples: int = 50,
                 feature_fraction: float = 0.8,
                 random_state: int = 0, num_threads: int = 1, fallback=DEFAULT_FALLBACK,
                 trending_days: float = 30.0, session_neighbors: int = 20) -> None:
        super().__init__(fallback=fallback, trending_days=trending_days, session_neighbors=session_neighbors)
        self.generators = generators
        self.n_candidates = n_candidates
        self.train_window_days = train_window_days
        self.train_windows = train_windows
        self.max_train_customers = max_train_customers
        self.max_fit_customers = max_fit_customers
        self.negative_share = negative_share
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.feature_fraction = feature_fraction
        self.random_state = random_state
        self.num_threads = num_threads

    # ------------------------------------------------------------------ params
    def get_params(self) -> dict:
        params = super().get_params()
        gens = params["generators"]
        if gens is not None and isinstance(gens, dict):
            params["generators"] = {name: ({"kind": g.kind, **to_jsonable(g.get_params())}
                                           if isinstance(g, Recommender) else g) for name, g in gens.items()}
        return params

    def _validate_params(self) -> None:
        super()._validate_params()

        def pos_int(name, allow_none=False):
            v = getattr(self, name)
            if allow_none and v is None:
                return
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ParameterError(f"{name} must be a positive integer{' or None' if allow_none else ''}, "
                                     f"got {v!r}")

        for name in ("n_candidates", "n_estimators", "num_leaves", "min_child_samples"):
            pos_int(name)
        pos_int("max_train_customers", allow_none=True)
        pos_int("max_fit_customers", allow_none=True)
        pos_int("train_windows", allow_none=True)
        v = self.train_window_days
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0):
            raise ParameterError(f"train_window_days must be a positive number or None, got {v!r}")
        v = self.learning_rate
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
            raise ParameterError(f"learning_rate must be a positive number, got {v!r}")
        v = self.negative_share
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 1:
            raise ParameterError(f"negative_share must be in (0, 1], got {v!r}")
        if not (isinstance(self.feature_fraction, (int, float)) and 0 < self.feature_fraction <= 1):
            raise ParameterError(f"feature_fraction must be in (0, 1], got {self.feature_fraction!r}")
        if isinstance(self.num_threads, bool) or not isinstance(self.num_threads, (int, np.integer)) \
                or self.num_threads < 0:
            raise ParameterError(f"num_threads must be an integer >= 0, got {self.num_threads!r}")
        gens = self.generators
        if gens is not None and (not isinstance(gens, dict) or not gens):
            raise ParameterError(f"generators must be None or a non-empty dict of name -> recommender, got {gens!r}")
        if gens is not None and "ranker" in gens:
            raise ParameterError("'ranker' is reserved (it names the LightGBM ranker in choice_); rename that "
                                 "generator")

    def _templates(self, n_items: int) -> dict[str, Recommender]:
        if self.generators is not None:
            specs = self.generators
        else:
            specs = dict(DEFAULT_GENERATORS)
            if n_items <= EASE_GENERATOR_MAX_ITEMS:  # cheap on a small catalog (its cost grows as n^3)
                specs["ease"] = {"kind": "ease"}
            threaded = ("als", "itemknn", "ease")
            specs = {n: ({**sp, "num_threads": int(self.num_threads)} if sp["kind"] in threaded else sp)
                     for n, sp in specs.items()}
        templates = {str(name): _build_generator(str(name), spec) for name, spec in specs.items()}
        plain = [g for g in templates.values() if isinstance(g, Popular) and type(g) is Popular
                 and g.window_days is None and not g.by_category]
        if not plain:  # popular items are always candidates, and Popular is always a fallback choice
            name = "popular" if "popular" not in templates else "popular_baseline"
            templates[name] = Popular()
        return templates

    @staticmethod
    def _feature_names(gen_names: list[str]) -> list[str]:
        g = []
        for n in gen_names:
            g += [f"{n}_score", f"{n}_rank"]
        return g + ["n_generators"] + _ITEM_FEATURES + _CUSTOMER_FEATURES + _PAIR_FEATURES

    # ------------------------------------------------------------------ stage 1 + features
    def _candidate_frame(self, gens: dict, state: _State, customers: Customers, *, k: int, exclude: str,
                         cand: np.ndarray | None, pool: int | None = None, select=None):
        """Pooled candidates of ``customers``: (position in customers, item, feature matrix).

        With ``pool`` (< ``k``), only the candidates some generator ranks in its top ``pool`` get features
        (what the ranker was trained on); the others come back apart, as ``(pos, item, best generator rank)``:
        ``(pos, item, X, rest)``. ``select(pos, item)`` (training) returns the rows to keep, in order, before
        the pair features are computed: only the rows LightGBM learns from cost memory and time.
        """
        n_i = state.n_items
        # the generators' own items only: their fallback chains would add the popular and trending items that
        # the Popular generators propose anyway, one customer at a time
        query = Query(customers=np.zeros(0, dtype=object), k=k, exclude=exclude, candidates=cand, top_up=False)
        keys_list, parts = [], []
        share = 1.0 / state.n_active
        for g in gens.values():
            rows, item, score, src = g._recommend_core(query, customers)
            key = rows.astype(np.int64) * n_i + item
            if isinstance(g, Popular):  # buyer counts -> shares of the customers: the same scale in every fit
                score = score * share
            parts.append((key, np.where(src == 0, score, np.nan), ranks(rows).astype(np.float64)))
            keys_list.append(key)
        space = len(customers.cidx) * n_i
        if space <= _DENSE_KEYS:  # a batch's (customer, item) grid fits a flag array: no sorting
            seen = np.zeros(space, dtype=bool)
            for key in keys_list:
                seen[key] = True
            keys = np.flatnonzero(seen)
            where = np.cumsum(seen) - 1
            locate = lambda key: where[key]  # noqa: E731
        else:
            keys = _sets.unique(np.concatenate(keys_list)) if keys_list else np.zeros(0, np.int64)
            locate = lambda key: np.searchsorted(keys, key)  # noqa: E731
        gfeat = np.full((len(keys), 2 * len(gens) + 1), np.nan)
        for j, (key, score, rank) in enumerate(parts):
            gfeat[:, 2 * j + 1] = k + 1.0
            if len(key):
                p = locate(key)
                gfeat[p, 2 * j] = score
                gfeat[p, 2 * j + 1] = rank
        gfeat[:, -1] = (gfeat[:, 1:-1:2] <= k).sum(1)
        pos, item = keys // n_i, keys % n_i
        rest = None
        if pool is not None and pool < k:
            best = gfeat[:, 1:-1:2].min(1)
            inside = best <= pool
            rest = (pos[~inside], item[~inside], best[~inside])
            gfeat, pos, item = gfeat[inside], pos[inside], item[inside]
            # a generator that ranks the item below its top pool did not propose it, as in training
            beyond = gfeat[:, 1:-1:2] > pool
            gfeat[:, 0:-1:2][beyond] = np.nan
            gfeat[:, 1:-1:2][beyond] = pool + 1.0
            gfeat[:, -1] = (~beyond).sum(1)
        if select is not None:
            sel = select(pos, item)
            gfeat, pos, item = gfeat[sel], pos[sel], item[sel]
        # the feature matrix in float32 from the start, its pair features a chunk at a time: a training window
        # has millions of rows, and float64 temporaries of all of them would cost several times the matrix
        width = gfeat.shape[1]
        X = np.empty((len(pos), len(self.feature_names_)), dtype=np.float32)  # set in fit, before any window
        X[:, :width] = gfeat
        del gfeat
        cidx = customers.cidx[pos]
        for s in range(0, len(pos), _FEATURE_CHUNK):
            X[s:s + _FEATURE_CHUNK, width:] = state.features(cidx[s:s + _FEATURE_CHUNK], item[s:s + _FEATURE_CHUNK])
        for p, ev in customers.events.items():  # customers with live purchases: their own pair features
            sel = np.flatnonzero(pos == p)
            if len(sel):
                mini = state.for_customer(int(customers.cidx[p]), ev.items, _days(ev.ns.astype("datetime64[ns]")))
                X[sel, width:] = mini.features(np.zeros(len(sel), np.int64), item[sel])
        return (pos, item, X) if pool is None else (pos, item, X, rest)

    # ------------------------------------------------------------------ fit
    def _fit(self, dataset, X) -> None:
        import lightgbm as lgb

        templates = self._templates(len(dataset.item_vocab))
        if len(dataset) == 0:
            raise DataError("cannot fit TwoStage on an empty dataset", table="transactions")
        t0 = time.perf_counter()
        end = dataset.last_timestamp + pd.Timedelta(1, "us")
        kept = self.__dict__.pop("_kept_rankers", None)
        if kept is not None and kept["generator_names"] == list(templates):
            # refit: the rankers (and what serves each mode) stay; only the generators and tables are refit
            self.generator_names_ = kept["generator_names"]
            self.feature_names_ = kept["feature_names"]
            self.rankers_, self.choice_ = dict(kept["rankers"]), dict(kept["choice"])
            info = {**kept["info"], "rankers_from": {"end": kept["info"].get("end"),
                                                     "seconds": kept["info"].get("seconds")}}
            info["end"] = end.isoformat()
            self._refit_generators(dataset, templates, end, info, t0)
            return
        info_note = None if kept is None else (f"refit asked, but this data's generators {list(templates)} differ "
                                               f"from the rankers' {kept['generator_names']}: fitted anew")
        window_days, n_windows, how = window_plan(dataset.first_timestamp, end, self.train_window_days,
                                                  self.train_windows)
        window = pd.Timedelta(days=window_days)
        self.generator_names_ = list(templates)
        self.feature_names_ = self._feature_names(self.generator_names_)
        rng = np.random.default_rng(self.random_state)
        info: dict = {"end": end.isoformat(), "window_days": round(window_days, 3), "n_windows": n_windows,
                      "plan": how, "windows": []}
        if info_note:
            info["refit"] = info_note
        frames: list[dict] = []
        for w in range(n_windows):  # w = 0 is the most recent window: the validation window when there are two+
            w_end = end - window * w
            cutoff = w_end - window
            tw = time.perf_counter()
            winfo, frame = self._window_rows(dataset, templates, cutoff, w_end, rng,
                                             validation=(w == 0 and n_windows > 1))
            winfo["seconds"] = round(time.perf_counter() - tw, 3)
            info["windows"].append({"cutoff": cutoff.isoformat(), "end": w_end.isoformat(),
                                    "role": "validation" if (w == 0 and n_windows > 1) else "training", **winfo})
            frames.append(frame)
        validate = n_windows > 1
        train_frames = frames[1:] if validate else frames
        self.rankers_, self.choice_ = {}, {}
        info["validation"] = {}
        t_rank = time.perf_counter()
        for mode in _MODES:
            parts = [f[mode] for f in train_frames if f and f[mode]["groups"].size]
            val = frames[0][mode] if validate and frames[0] else None
            booster, best = None, None
            if parts:
                Xm = np.concatenate([p["X"] for p in parts])
                y = np.concatenate([p["y"] for p in parts])
                groups = np.concatenate([p["groups"] for p in parts])
                for p in parts:  # the windows' own copies are not needed once stacked
                    p["X"] = None
                train = lgb.Dataset(Xm, y, group=groups, feature_name=self.feature_names_, free_raw_data=True)
                callbacks, valid_sets = [], []
                if val is not None and val["groups"].size:
                    # early stopping watches the validation customers with a purchase among their candidates,
                    # with negatives sampled like the training rows (the choice below scores the full lists)
                    keep = val["has_pos"][val["pos"]]
                    if self.negative_share < 1:
                        keep &= (val["y"] > 0) | (rng.random(len(keep)) < float(self.negative_share))
                    sizes = np.bincount(val["pos"][keep], minlength=len(val["n_rel"]))
                    valid_sets = [lgb.Dataset(val["X"][keep], val["y"][keep], group=sizes[sizes > 0],
                                              reference=train)]
                    callbacks = [lgb.early_stopping(_EARLY_STOPPING_ROUNDS, first_metric_only=True, verbose=False)]
                booster = lgb.train(self._lgb_params(), train, num_boost_round=int(self.n_estimators),
                                    valid_sets=valid_sets, callbacks=callbacks)
                if valid_sets:
                    best = int(booster.best_iteration) or int(self.n_estimators)
                    # keep only the rounds early stopping chose: the saved and the in-memory model agree
                    booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
            self.rankers_[mode] = booster
            choice, scores = "ranker", None
            if val is not None and val["n_rel"].size:
                scores, per = self._validation_scores(booster, val)
                best_gen = max((g for g in self.generator_names_), key=lambda g: scores[g])
                # the ranker serves only when it beats the best generator by more than one standard error of
                # their paired per-customer difference: a lead within the noise of one window does not hold
                # (measured: a 1 % lead over Popular on discovery turned into a 1.5 % loss on later purchases)
                diff = per["ranker"] - per[best_gen] if booster is not None else None
                se = float(diff.std(ddof=1) / np.sqrt(len(diff))) if diff is not None and len(diff) > 1 else 0.0
                if booster is None or scores["ranker"] - scores[best_gen] <= se:
                    choice = best_gen
            self.choice_[mode] = choice
            info["validation"][mode] = ({"status": "skipped", "reason": "one label window: nothing to validate on"}
                                        if not validate else
                                        {"status": "skipped", "reason": "no purchases by known customers in the "
                                                                        "validation window"} if scores is None else
                                        {"status": "ok", "k": _VALIDATION_K, "customers": int(val["n_rel"].size),
                                         "ndcg": {n: round(v, 6) for n, v in scores.items()},
                                         "best_generator": best_gen, "lead_se": round(se, 6), "chosen": choice,
                                         "rounds": best})
            # this mode's rows are done with: free them before the next mode and the refit on all the data
            for f in frames:
                if f:
                    f[mode] = None
            Xm = train = valid_sets = val = parts = None  # noqa: F841
        info["ranker_seconds"] = round(time.perf_counter() - t_rank, 3)
        release_memory()  # the windows' rows are freed: give them back before the biggest fit
        self._refit_generators(dataset, templates, end, info, t0)

    def _refit_generators(self, dataset, templates: dict, end, info: dict, t0: float) -> None:
        """Serving: the generators fitted on all of ``dataset``, its feature tables as of its end."""
        t_final = time.perf_counter()
        self.generators_ = fit_together({name: copy.deepcopy(g) for name, g in templates.items()}, dataset)
        self.state_ = _State.build(dataset, end)
        info["refit_seconds"] = round(time.perf_counter() - t_final, 3)
        info["choice"] = dict(self.choice_)
        info["seconds"] = round(time.perf_counter() - t0, 3)
        self.train_info_ = info

    def refit(self, dataset) -> "TwoStage":
        """Refit the generators and feature tables on ``dataset``, keeping the fitted rankers and ``choice_``.

        The rankers learned on an earlier fit's windows (e.g. a fit on the history before a validation window,
        scored there) go on ranking with features as of ``dataset``'s end: what was measured is what is served,
        without fitting the training windows again. Their features are on scales that mean the same in any
        window (shares, ranks, days), so a ranker trained on a sample of customers or on an earlier history
        applies. ``train_info_["rankers_from"]`` says which fit they come from. When ``dataset`` would give
        other generators than the fitted ones (e.g. EASE appears at 2,000 items), a full :meth:`fit` runs
        instead and ``train_info_["refit"]`` says why. Returns self.
        """
        self._check_fitted()
        self._kept_rankers = {"generator_names": list(self.generator_names_),
                              "feature_names": list(self.feature_names_), "rankers": self.rankers_,
                              "choice": self.choice_, "info": copy.deepcopy(self.train_info_)}
        try:
            return self.fit(dataset)
        finally:
            self.__dict__.pop("_kept_rankers", None)

    def _lgb_params(self) -> dict:
        return {"objective": "lambdarank", "metric": "ndcg", "eval_at": [_VALIDATION_K],
                "learning_rate": float(self.learning_rate), "num_leaves": int(self.num_leaves),
                "min_child_samples": int(self.min_child_samples), "feature_fraction": float(self.feature_fraction),
                "lambdarank_truncation_level": 20, "seed": int(self.random_state), "deterministic": True,
                "num_threads": int(self.num_threads), "force_col_wise": True, "verbose": -1}

    def _validation_scores(self, booster, val: dict) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        """NDCG@10 on the validation window of the ranker and of each generator's own top 10 (mean over every
        customer with a purchase there that counts for the mode, also those none of them found)."""
        pos, y, X, n_rel = val["pos"], val["y"], val["X"], val["n_rel"]
        disc = 1.0 / np.log2(np.arange(2, _VALIDATION_K + 2))
        idcg = np.concatenate([[0.0], np.cumsum(disc)])[np.minimum(n_rel, _VALIDATION_K)]

        def ndcg(rank: np.ndarray) -> np.ndarray:  # rank of every candidate row in its customer's list (1-based)
            top = rank <= _VALIDATION_K
            dcg = np.bincount(pos[top], weights=y[top] * disc[rank[top].astype(np.int64) - 1], minlength=len(n_rel))
            return np.divide(dcg, idcg, out=np.zeros(len(n_rel)), where=idcg > 0)

        out = {}
        if booster is not None:
            s = predict_rows(booster, X, num_threads=int(self.num_threads))
            order = np.lexsort((-s, pos))
            r = np.empty(len(pos), np.float64)
            r[order] = ranks(pos[order])
            out["ranker"] = ndcg(r)
        else:
            out["ranker"] = np.full(len(n_rel), -np.inf)
        for j, g in enumerate(self.generator_names_):
            out[g] = ndcg(X[:, 2 * j + 1].astype(np.float64))
        return {n: float(v.mean()) for n, v in out.items()}, out

    def _window_rows(self, dataset, templates: dict, cutoff, w_end, rng, *, validation: bool
                     ) -> tuple[dict, dict | None]:
        """Rows of one window: generators and features before ``cutoff``, labels in ``[cutoff, w_end)``.

        Returns (info, {mode: {"X", "y", "groups"}}): the rows of customers with a positive and their row
        counts, what LightGBM trains on. A ``validation`` window keeps the rows of every customer with a
        purchase that counts for the mode (every purchase for ``all``, new items for ``discovery``) and adds
        ``pos`` (each row's customer), ``has_pos`` and ``n_rel`` (how many purchases count per customer).
        """
        inner = dataset.until(cutoff)
        labels = dataset.between(cutoff, w_end)
        n_i = len(dataset.item_vocab)
        if len(inner) == 0 or len(labels) == 0:
            return {"customers": 0}, None
        label_keys = _sets.unique(labels.customer_idx.astype(np.int64) * n_i + labels.item_idx)
        rows = _sets.intersect1d(_sets.unique(label_keys // n_i), _sets.unique(inner.customer_idx)).astype(np.int64)
        if self.max_train_customers is not None and len(rows) > self.max_train_customers:
            rows = np.sort(rng.choice(rows, int(self.max_train_customers), replace=False))
        info: dict = {"customers": int(len(rows))}
        if len(rows) == 0:
            return info, None
        active = _sets.unique(inner.customer_idx)
        cap = self.max_fit_customers
        if cap is not None and len(active) > max(int(cap), len(rows)):
            others = _sets.setdiff1d(active, rows, assume_unique=True)
            extra = rng.choice(others, max(int(cap) - len(rows), 0), replace=False)
            keep = np.zeros(len(dataset.customer_vocab), dtype=bool)
            keep[rows] = True
            keep[extra] = True
            inner = inner.of_customers(keep)
            info["fit_customers"] = int(len(rows) + len(extra))
        gens = fit_together({name: copy.deepcopy(g) for name, g in templates.items()}, inner)
        state = _State.build(inner, cutoff)
        past = _sets.unique(inner.customer_idx.astype(np.int64) * n_i + inner.item_idx)
        label_keys = label_keys[_sets.isin(label_keys // n_i, rows)]
        new_keys = label_keys[~_sets.isin(label_keys, past)]
        frame = {}
        for mode in _MODES:
            exclude = "none" if mode == "all" else "purchased"
            relevant = label_keys if mode == "all" else new_keys
            out: dict = {}

            def select(pos, item, relevant=relevant, mode=mode, out=out):
                """The rows kept for this mode (labels and groups into ``out``), before any pair feature."""
                y = _sets.isin(rows[pos] * n_i + item, relevant).astype(np.float32)
                n_rel = np.bincount(np.searchsorted(rows, relevant // n_i), minlength=len(rows))
                # customers with nothing that counts in this mode are not scored; lambdarank learns nothing
                # from groups without a positive, so LightGBM only sees those with one
                counted = n_rel > 0
                keep = np.flatnonzero(counted[pos])
                renum = np.cumsum(counted) - 1
                pos, y = renum[pos[keep]], y[keep]
                n_rel = n_rel[counted]
                has_pos = np.bincount(pos, weights=y, minlength=len(n_rel)) > 0
                sizes = np.bincount(pos, minlength=len(n_rel))
                info[mode] = {"rows": int(has_pos[pos].sum()), "positives": int(y.sum()),
                              "groups": int(has_pos.sum()), "customers": int(len(n_rel))}
                if validation:  # every counted customer, for the validation scores
                    out.update(y=y, pos=pos, groups=sizes[has_pos], has_pos=has_pos, n_rel=n_rel)
                    return keep
                # only the groups LightGBM trains on, with a sample of their negatives
                train = has_pos[pos]
                if self.negative_share < 1:
                    train &= (y > 0) | (rng.random(len(y)) < float(self.negative_share))
                sizes = np.bincount(pos[train], minlength=len(n_rel))
                out.update(y=y[train], groups=sizes[has_pos])
                return keep[train]

            _pos, _item, X = self._candidate_frame(gens, state, Customers(rows, {}, None),
                                                   k=int(self.n_candidates), exclude=exclude, cand=None,
                                                   select=select)
            frame[mode] = {"X": X, **out}
        return info, frame

    # ------------------------------------------------------------------ serving (hooks of Recommender)
    @property
    def any_repeatable_(self) -> bool:
        return bool(self.catalog_.repeatable.any())

    def _mode_for(self, exclude: str) -> str:
        if exclude == "none" or (exclude == "non_repeatable" and self.any_repeatable_):
            return "all"
        return "discovery"

    def _make_scorer(self, query, cols, width):
        # the call's exclusion mode picks the ranker (or the generator that beat it on the validation window);
        # the generators are asked under the same rules
        exclude, cand = query.exclude, query.candidates
        mode = self._mode_for(exclude)
        chosen = self.choice_.get(mode, "ranker")
        if chosen != "ranker":
            return self.generators_[chosen]._make_scorer(query, cols, width)
        ranker = self.rankers_.get(mode) or self.rankers_.get("all") or self.rankers_.get("discovery")
        n_gen = len(self.generators_)
        # the ranker re-ranks each generator's top n_candidates (what it was trained on); a longer list (e.g.
        # the precomputed candidates) continues with the other candidates by their best generator rank
        pool = int(self.n_candidates)
        kk = max(pool, int(query.k))

        def score(batch, out, colpos):
            out.fill(NEG)
            # customers without any purchase (e.g. in the vocabulary but new since the training data) are
            # cold: no opinion here, the fallback chain answers
            warm = np.flatnonzero(batch.has_history())
            if not len(warm):
                return
            sub = batch.subset(warm)
            pos, item, X, rest = self._candidate_frame(self.generators_, self.state_,
                                                       Customers(sub.cidx, sub.events, sub.now_ns),
                                                       k=kk, exclude=exclude, cand=cand, pool=pool)
            if len(pos):
                if ranker is not None:
                    # a batch job's rows score on the compiled trees when lleaves is there; a request never
                    # waits for a compiler
                    s = predict_rows(ranker, X, num_threads=scoring_threads(),
                                     compiled=None if in_bulk_scoring() else False)
                else:  # no window had a positive label: mean generator rank
                    s = -np.nanmean(X[:, 1:2 * n_gen:2], axis=1)
            else:
                s = np.zeros(0)
            if rest is not None and len(rest[0]):
                # below the customer's whole re-ranked pool, in best-rank order
                floor = np.full(len(warm), 0.0)
                if len(pos):
                    low = np.full(len(warm), np.inf)
                    np.minimum.at(low, pos, s)
                    floor = np.where(np.isfinite(low), low, 0.0)
                pos = np.concatenate([pos, rest[0]])
                item = np.concatenate([item, rest[1]])
                s = np.concatenate([s, floor[rest[0]] - 1.0 - rest[2] / (kk + 1.0)])
            if not len(pos):
                return
            pos = warm[pos]
            if colpos is not None:
                col = colpos[item]
                ok = col >= 0
                out[pos[ok], col[ok]] = s[ok]
            else:
                out[pos, item] = s

        return score

    def _post_state(self) -> None:
        super()._post_state()
        # rows from the delegated similar-items / session scorers carry the generator's own source name
        for g in getattr(self, "generators_", {}).values():
            if g.source not in self._source_names:
                self._source_names.append(g.source)

    def _item_model(self) -> Recommender:
        return self.generators_.get("itemknn") or next(iter(self.generators_.values()))

    def _session_scores(self, hi, hw):
        return self._item_model()._session_scores(hi, hw)

    def _similar_scores(self, iidx):
        return self._item_model()._similar_scores(iidx)

    def _explain_contrib(self, batch, iidx, hi, hw):
        return self._item_model()._explain_contrib(batch, iidx, hi, hw)

    # ------------------------------------------------------------------ arrays
    def to_meta(self) -> dict:
        return {**super().to_meta(), "generators": self.generator_names_, "feature_names": self.feature_names_,
                "rankers": {m: b is not None for m, b in self.rankers_.items()}, "choice": self.choice_,
                "popularity_scores": "share", "train_info": self.train_info_}

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {**super().to_arrays(), **self.state_.to_arrays("model_state_")}

    def to_files(self) -> dict[str, str]:
        return {f"ranker_{mode}.txt": booster.model_to_string() for mode, booster in self.rankers_.items()
                if booster is not None}

    def parts(self) -> dict[str, Recommender]:
        return dict(self.generators_)

    def _set_arrays(self, saved) -> None:
        import lightgbm as lgb  # heavy import, only when a TwoStage model is loaded

        super()._set_arrays(saved)
        meta = saved.meta
        try:
            self.generator_names_ = list(meta["generators"])
            self.feature_names_ = list(meta["feature_names"])
            if self.feature_names_ != self._feature_names(self.generator_names_) \
                    or meta.get("popularity_scores") != "share":
                raise BundleError("this TwoStage model was saved by another version of the library (its features "
                                  "differ from this version's): retrain it")
            self.train_info_ = meta.get("train_info") or {}
            self.choice_ = dict(meta["choice"])
            self.rankers_ = {m: (lgb.Booster(model_str=saved.files[f"ranker_{m}.txt"]) if present else None)
                             for m, present in meta["rankers"].items()}
            self.state_ = _State.from_arrays(saved.arrays, "model_state_")
            self.generators_ = {name: saved.parts[name] for name in self.generator_names_}
        except KeyError as exc:
            raise BundleError(f"TwoStage bundle is missing {exc}") from None
        bad = [c for c in self.choice_.values() if c != "ranker" and c not in self.generators_]
        if bad:
            raise BundleError(f"TwoStage bundle chooses unknown generator(s) {bad}")


#: batches of customers x items up to this size pool their candidates in a flag array (else by sorting)
_DENSE_KEYS = 1 << 24
#: rows of pair features computed at once (float64 temporaries of about 1 KB per row)
_FEATURE_CHUNK = 262_144

#: the adaptive window plan (see :func:`window_plan`)
MAX_WINDOW_DAYS = 40.0
MIN_WINDOW_DAYS = 7.0
MIN_HISTORY_DAYS = 14.0
MAX_WINDOWS = 4
MIN_WINDOWS = 2
_VALIDATION_K = 10
_EARLY_STOPPING_ROUNDS = 20


def window_plan(first: pd.Timestamp, end: pd.Timestamp, window_days: float | None, windows: int | None
                ) -> tuple[float, int, str]:
    """(window length in days, number of windows, how they were chosen) for a history ``[first, end)``.

    Adaptive (None): windows of ``span / 9`` days clipped to [7, 40], as many as fit after
    ``max(14, window)`` days of history, at most 4; at least 2 are needed (one to train the ranker on,
    the most recent one to validate it), so the shortest history TwoStage takes is
    ``14 + 2 x 7 = 28`` days. Given values are used as they are, and must fit after 14 days of history.
    Raises DataError saying how much history is needed otherwise.
    """
    span = (end - first) / pd.Timedelta(days=1)
    w = float(window_days) if window_days is not None else min(MAX_WINDOW_DAYS, max(MIN_WINDOW_DAYS, span / 9.0))
    lead = max(MIN_HISTORY_DAYS, w) if window_days is None else MIN_HISTORY_DAYS
    if windows is not None:
        n = int(windows)
        need = MIN_HISTORY_DAYS + n * w
        if span < need:
            raise DataError(f"TwoStage needs {need:g} days of history for train_windows={n} x train_window_days="
                            f"{w:g} ({MIN_HISTORY_DAYS:g} days before its internal cutoff "
                            f"{end - pd.Timedelta(days=n * w)}), but the training data covers {span:.1f} days "
                            f"({first} .. {end}); lower them or leave them None to adapt", table="transactions")
        return w, n, "given"
    n = int(min(MAX_WINDOWS, np.floor((span - lead) / w + 1e-9)))
    if n < MIN_WINDOWS:
        need = lead + MIN_WINDOWS * w
        if window_days is None:
            need = MIN_HISTORY_DAYS + MIN_WINDOWS * MIN_WINDOW_DAYS
        raise DataError(f"TwoStage needs at least {need:g} days of history ({lead:g} days before its first internal "
                        f"cutoff and {MIN_WINDOWS} label windows of {w:g} days: one to train the ranker on, one to "
                        f"validate it), but the training data covers {span:.1f} days ({first} .. {end})",
                        table="transactions")
    return w, n, "adapted" if window_days is None else "windows adapted"
