"""Personalized coupons: for every customer the level of a ladder (or none) that pays best, within a budget.

The ladder is a list of offers of the catalog (``PCT05,PCT10,SPEND_A,SPEND_B``);
"none" is always an option. An uplift model trained on randomized campaigns
(treatments = the ladder's offers, control = exposures without an offer)
gives, for each customer, the increase in the probability of buying each
level causes and the baseline probability without a coupon. Then, per level
(:mod:`personalize.coupons.allocate`)::

    profit = uplift x basket margin - P(redeem) x redemption cost
    P(redeem) = max(uplift, 0) + anyway_redeem_rate x baseline
    expected cost = P(redeem) x redemption cost

(the basket: the customer's typical order, at least the level's minimum
spend; the redemption cost: :meth:`OfferCatalog.redemption_cost`).
Redemptions by customers who would have bought anyway are a cost, never a
gain. Without a budget each customer gets her most profitable level when
its profit is positive; with one, the multiple-choice knapsack allocation.
A level is never given where the contact policy says no (consent for the
channel, caps, suppression, erasure): it is simply not an option there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from personalize._arrayfiles import load_arrays, save_arrays
from personalize.coupons.allocate import (NONE, Allocation, allocate, expected_cost, expected_incremental_profit,
                                          redemption_probability)
from personalize.errors import DataError
from personalize.offers.catalog import OfferCatalog
from personalize.offers.features import DayFeatures, Economics, customer_frame

if TYPE_CHECKING:
    from personalize.data import Dataset

__all__ = ["Ladder", "CouponTable", "coupon_exposures", "coupon_training_set", "coupon_options", "coupon_economics",
           "plan_frame", "uplift_features"]


@dataclass(frozen=True)
class Ladder:
    """The coupon levels, as offer ids of the catalog, from cheapest to most generous (order is kept)."""

    levels: tuple[str, ...]

    @classmethod
    def parse(cls, text: str | list[str] | tuple[str, ...], catalog: OfferCatalog) -> "Ladder":
        levels = tuple(x.strip() for x in (text.split(",") if isinstance(text, str) else text) if str(x).strip())
        if not levels:
            raise DataError("the coupon ladder is empty: give offer ids, e.g. PCT05,PCT10,SPEND_A", column="ladder")
        unknown = [x for x in levels if x not in catalog.index]
        if unknown:
            raise DataError(f"ladder level(s) {unknown} are not in the offer catalog "
                            f"({', '.join(map(str, catalog.offer_ids))})", column="ladder")
        if len(set(levels)) != len(levels):
            raise DataError(f"ladder levels repeat: {list(levels)}", column="ladder")
        return cls(levels)

    @classmethod
    def default(cls, catalog: OfferCatalog, exposures: pd.DataFrame | None) -> "Ladder":
        """Every untargeted discount offer with randomized exposures (what an uplift can be learned for)."""
        kinds = ("percent_off", "amount_off", "spend_get_off")
        seen = set() if exposures is None else set(exposures["offer_id"].dropna().astype(str))
        levels = tuple(str(o) for o, k, t in zip(catalog.offer_ids, catalog.kinds, catalog.targeted)
                       if k in kinds and not t and str(o) in seen)
        if not levels:
            raise DataError("no discount offers with exposures to build a coupon ladder from", table="exposures")
        return cls(levels)

    def offer_index(self, catalog: OfferCatalog) -> np.ndarray:
        return np.array([catalog.index[x] for x in self.levels], dtype=np.int64)


def coupon_exposures(ds: Dataset, ladder: Ladder, *, randomized_only: bool = True,
                     end: pd.Timestamp | None = None) -> pd.DataFrame:
    """The exposures :func:`coupon_training_set` learns from, in its row order (by exposure day, then as stored):
    exposures to the ladder's offers and to no offer (control), randomized only unless ``randomized_only=False``,
    before ``end`` if given."""
    exp = ds.exposures
    if exp is None or not len(exp):
        raise DataError("no exposures to learn coupon uplift from", table="exposures")
    if randomized_only and "randomized" in exp.columns:
        exp = exp[exp["randomized"].fillna(False).astype(bool)]
    if end is not None:
        exp = exp[exp["exposed_at"] < pd.Timestamp(end)]
    arm = exp["offer_id"].astype("object")
    keep = arm.isna() | arm.isin(ladder.levels)
    exp = exp[keep.to_numpy()]
    if exp["offer_id"].isna().sum() == 0:
        raise DataError("no control exposures (exposures without an offer): uplift needs a control group",
                        table="exposures", column="offer_id")
    day = exp["exposed_at"].dt.normalize()
    return exp.iloc[np.argsort(day.to_numpy(dtype="datetime64[ns]"), kind="stable")].reset_index(drop=True)


def coupon_training_set(ds: Dataset, catalog: OfferCatalog, ladder: Ladder, *, randomized_only: bool = True,
                        end: pd.Timestamp | None = None, features: DayFeatures | None = None
                        ) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """``(X, treatment, y, cutoff)`` from exposures to the ladder's offers and to no offer (control).

    Customer features as of each exposure's day (nothing after it); ``treatment`` is the offer id or
    ``"control"``; ``y`` is ``converted``. Only randomized exposures unless ``randomized_only=False``.
    ``features`` shares each day's customer features with other training sets (:class:`DayFeatures`).
    Rows follow :func:`coupon_exposures`.
    """
    features = features if features is not None else DayFeatures(ds, catalog)
    exp = coupon_exposures(ds, ladder, randomized_only=randomized_only, end=end)
    parts = []
    for day, g in exp.groupby(exp["exposed_at"].dt.normalize(), sort=True):
        ids = g["customer_id"].astype(str).to_numpy(dtype=object)
        econ, frame = features.get(day, ids)
        X = _with_basket(frame, econ).iloc[econ.rows(ids)].reset_index(drop=True)
        parts.append((X, g))
    X = pd.concat([p[0] for p in parts], ignore_index=True)
    g = pd.concat([p[1] for p in parts], ignore_index=True)
    treatment = g["offer_id"].astype("object").fillna("control").astype(str).to_numpy(dtype=object)
    return (X, treatment, g["converted"].fillna(False).astype(bool).to_numpy(np.int8),
            g["exposed_at"].dt.normalize().to_numpy(dtype="datetime64[ns]"))


def _customer_features(ds: Dataset, cutoff: pd.Timestamp, econ: Economics) -> pd.DataFrame:
    return _with_basket(customer_frame(ds, cutoff, econ), econ)


def uplift_features(frame: pd.DataFrame, econ: Economics) -> pd.DataFrame:
    """The uplift model's features of some customers: their :func:`~personalize.offers.features.customer_frame`
    rows plus basket and margin (rows aligned with ``econ``)."""
    return _with_basket(frame, econ)


def _with_basket(frame: pd.DataFrame, econ: Economics) -> pd.DataFrame:
    f = frame.copy()
    f["aov"] = econ.aov
    f["margin_rate"] = econ.margin_rate
    return f.reset_index(drop=True)


def coupon_options(model, X: pd.DataFrame, econ: Economics, catalog: OfferCatalog, ladder: Ladder, *,
                   anyway_redeem_rate: float = 1.0) -> dict[str, np.ndarray]:
    """Per customer (rows of ``X`` / ``econ``) and level: uplift, baseline, expected cost and profit."""
    columns = ladder_columns(model, ladder)
    uplift_all, baseline = model.predict_uplift_and_baseline(X)
    return coupon_economics(uplift_all[:, columns], baseline, econ, catalog, ladder,
                            anyway_redeem_rate=anyway_redeem_rate)


def ladder_columns(model, ladder: Ladder) -> list[int]:
    """The uplift model's treatment column of each ladder level; a DataError when it has no estimate for one."""
    names = [str(t) for t in model.treatment_names_]
    missing = [x for x in ladder.levels if x not in names]
    if missing:
        raise DataError(f"the uplift model has no estimate for ladder level(s) {missing} (trained on {names})",
                        column="ladder")
    return [names.index(x) for x in ladder.levels]


def coupon_economics(uplift: np.ndarray, baseline: np.ndarray, econ: Economics, catalog: OfferCatalog,
                     ladder: Ladder, *, anyway_redeem_rate=1.0) -> dict[str, np.ndarray]:
    """The formulas of the module docstring for given ``(customers, levels)`` uplifts and ``(customers,)``
    baseline purchase probabilities (``anyway_redeem_rate``: a number or one per customer)."""
    uplift = np.clip(np.asarray(uplift, np.float64), -1.0, 1.0)
    baseline = np.clip(np.asarray(baseline, np.float64), 0.0, 1.0)
    offers = ladder.offer_index(catalog)
    aov = np.nan_to_num(econ.aov, nan=0.0)
    basket = np.maximum(aov[:, None], catalog.min_spend[offers][None, :])
    share = np.nan_to_num(econ.share[:, offers], nan=1.0)
    cost_one = catalog.redemption_cost(basket, offers[None, :], share)
    margin = basket * np.nan_to_num(econ.margin_rate, nan=0.3)[:, None]
    rate = np.asarray(anyway_redeem_rate, np.float64)
    rate = rate[:, None] if rate.ndim == 1 else rate
    redeem = redemption_probability(baseline[:, None], uplift, anyway_redeem_rate=rate)
    return {"uplift": uplift, "baseline": baseline, "cost": expected_cost(redeem, cost_one),
            "profit": expected_incremental_profit(uplift, margin, redeem, cost_one), "redeem": redeem}


class CouponTable:
    """Bundle component ``coupons``: every customer's options and her best level without a budget."""

    bundle_kind = "coupons"

    def __init__(self, *, ladder: Ladder, customer_ids: np.ndarray, cost: np.ndarray, profit: np.ndarray,
                 uplift: np.ndarray, baseline: np.ndarray, cold_cost: np.ndarray, cold_profit: np.ndarray,
                 as_of: str, anyway_redeem_rate: float, model_name: str) -> None:
        self.ladder = ladder
        self.customer_ids = customer_ids
        self.cost, self.profit, self.uplift, self.baseline = cost, profit, uplift, baseline
        self.cold_cost, self.cold_profit = cold_cost, cold_profit
        self.as_of, self.anyway_redeem_rate, self.model_name = as_of, anyway_redeem_rate, model_name
        self.pos = {str(c): i for i, c in enumerate(customer_ids.tolist())}

    @classmethod
    def from_options(cls, ladder: Ladder, customer_ids: np.ndarray, opts: dict[str, np.ndarray], known: np.ndarray, *,
                     as_of, anyway_redeem_rate: float, model_name: str) -> "CouponTable":
        """The table of every customer's :func:`coupon_options`; the cold options (an unknown customer's)
        are the medians over the customers with a history (``known``)."""
        known = np.asarray(known, bool)
        return cls(ladder=ladder, customer_ids=customer_ids, cost=opts["cost"].astype(np.float32),
                   profit=opts["profit"].astype(np.float32), uplift=opts["uplift"].astype(np.float32),
                   baseline=opts["baseline"].astype(np.float32),
                   cold_cost=np.median(opts["cost"][known], axis=0).astype(np.float32),
                   cold_profit=np.median(opts["profit"][known], axis=0).astype(np.float32),
                   as_of=pd.Timestamp(as_of).isoformat(), anyway_redeem_rate=float(anyway_redeem_rate),
                   model_name=str(model_name))

    def best(self, row: int, usable: np.ndarray) -> tuple[int, str]:
        """(level index or NONE, why) for one customer row (-1: the cold options) and usable levels."""
        cost = self.cost[row] if row >= 0 else self.cold_cost
        profit = self.profit[row] if row >= 0 else self.cold_profit
        p = np.where(usable, profit, -np.inf)
        if not usable.any():
            return NONE, "no level may be offered to this customer (contact policy)"
        j = int(np.argmax(p))
        if p[j] <= 0:
            return NONE, "no level pays: every level's expected incremental profit is <= 0"
        tie = np.flatnonzero(p == p[j])
        j = int(tie[np.argmin(cost[tie])])
        return j, f"highest expected incremental profit of {int(usable.sum())} allowed level(s)"

    def plan(self, usable: np.ndarray, *, budget: float | None) -> Allocation:
        """The allocation over every customer (``usable``: ``(customers, levels)`` allowed by the policy)."""
        costs = np.where(usable, self.cost, np.nan)
        return allocate(costs, self.profit, budget=budget)

    _ARRAYS = ("customer_ids", "cost", "profit", "uplift", "baseline", "cold_cost", "cold_profit")

    def save(self, directory) -> None:
        arrays = {k: getattr(self, k) for k in self._ARRAYS}
        arrays["customer_ids"] = np.asarray(self.customer_ids, dtype=str)
        save_arrays(directory, arrays, {"kind": "coupons", "ladder": list(self.ladder.levels), "as_of": self.as_of,
                                        "anyway_redeem_rate": self.anyway_redeem_rate, "model": self.model_name})

    @classmethod
    def load(cls, directory) -> "CouponTable":
        meta, a = load_arrays(directory, cls._ARRAYS, "coupon table in {dir} is unreadable")
        return cls(ladder=Ladder(tuple(meta["ladder"])), **a, as_of=meta["as_of"],
                   anyway_redeem_rate=float(meta["anyway_redeem_rate"]), model_name=meta.get("model", ""))


def plan_frame(table: CouponTable, alloc: Allocation, catalog: OfferCatalog) -> pd.DataFrame:
    """The plan's customers who get a coupon: customer_id, level (offer id), description, expected cost and
    incremental profit, uplift and the reason (:meth:`Allocation.reasons`)."""
    frame = alloc.to_frame(table.customer_ids.astype(str), table.ladder.levels)
    rows = np.flatnonzero(alloc.choice >= 0)
    out = frame.iloc[rows].rename(columns={"customer": "customer_id", "option": "level"}).reset_index(drop=True)
    offers = table.ladder.offer_index(catalog)
    out.insert(2, "description", [catalog.describe(int(offers[j])) for j in alloc.choice[rows]])
    out["uplift"] = table.uplift[rows, alloc.choice[rows]].astype(np.float64)
    return out
