"""Offers and coupons in the bundle: acceptance model, next-best-offer scores, uplift model, coupon table.

Needs an offer catalog and campaign exposures in the Dataset. The acceptance
model learns from every exposure to an offer (features as of the exposure
day); the uplift model from the randomized exposures to the coupon ladder's
offers and the control group. Both score every customer of the customer
table as of the end of the data. When the data cannot support a part (no
exposures, no control group, too few rows) it is skipped and the manifest
says why; the rest of the bundle publishes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from personalize.churn.training_sets import data_end
from personalize.coupons.plan import CouponTable, Ladder, _customer_features, coupon_options, coupon_training_set
from personalize.errors import PersonalizeError
from personalize.offers import AcceptanceModel, ContactPolicy, DayFeatures, OfferCatalog, acceptance_training_set, \
    economics, score_offers
from personalize.uplift import AutoUplift

if TYPE_CHECKING:
    from personalize.data import Dataset
    from personalize.recommenders import CandidateTable

__all__ = ["train_offers", "DEFAULT_ANYWAY_REDEEM_RATE"]

#: share of the customers who would have bought anyway that use a coupon they got (1.0 = all: the cautious value)
DEFAULT_ANYWAY_REDEEM_RATE = 1.0


def train_offers(ds: Dataset, customers: pd.DataFrame, candidates: CandidateTable | None, *,
                 ladder: str | None = None, policy: ContactPolicy | None = None,
                 anyway_redeem_rate: float = DEFAULT_ANYWAY_REDEEM_RATE, seed: int = 0, n_jobs: int | None = 1,
                 progress: Callable[[str], None] | None = None) -> tuple[dict[str, Any], dict, dict]:
    """(components, info for the manifest, metrics): see the module docstring."""
    say = progress or (lambda msg: None)
    info: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    comps: dict[str, Any] = {}
    if ds.offers is None or ds.exposures is None or not len(ds.exposures):
        reason = "no offer catalog" if ds.offers is None else "no campaign exposures"
        return comps, {"offers": {"status": "skipped", "reason": f"{reason} in the data (--offers, --exposures)"},
                       "coupons": {"status": "skipped", "reason": f"{reason} in the data"}}, metrics
    catalog = OfferCatalog.from_frame(ds.offers)
    end = data_end(ds)
    if getattr(ds, "points", None) is not None and (catalog.kinds == "points_multiplier").any():
        from personalize.analytics.points import points_pricing

        pricing = points_pricing(ds, as_of=end)
        catalog = catalog.with_points_pricing(pricing)
        info["points_pricing"] = pricing.to_dict()
    t = time.perf_counter()
    try:
        say(f"training the offer acceptance model on {int(ds.exposures['offer_id'].notna().sum()):,} exposures")
        day_features = DayFeatures(ds, catalog)  # each exposure day's features once, for both training sets
        aset = acceptance_training_set(ds, catalog, features=day_features)
        model = AcceptanceModel(random_state=seed, n_jobs=n_jobs).fit_exposures(aset, catalog)
        say("scoring next-best-offers for every customer")
        scores = score_offers(ds, catalog, model, customers, as_of=end, candidates=candidates, policy=policy)
        comps.update(acceptance=model, offers=scores)
        info["offers"] = {"status": "published", "offers": len(catalog), "training_rows": len(aset),
                          "fallback_offers": model.fallback_offers_, "as_of": end.isoformat(),
                          "seconds": round(time.perf_counter() - t, 2)}
        metrics["acceptance"] = {k: v for k, v in (model.validation_ or {}).items()
                                 if k in ("auc", "pr_auc", "log_loss", "brier", "rows", "split")}
    except PersonalizeError as exc:
        info["offers"] = {"status": "skipped", "reason": str(exc)}
        return comps, {**info, "coupons": {"status": "skipped", "reason": "needs the offer scores"}}, metrics
    t = time.perf_counter()
    try:
        lad = Ladder.parse(ladder, catalog) if ladder else Ladder.default(catalog, ds.exposures)
        X, treatment, y, _cut = coupon_training_set(ds, catalog, lad, features=day_features)
        del day_features
        say(f"training the coupon uplift model on {len(y):,} randomized exposures ({len(lad.levels)} levels)")
        uplift = AutoUplift(learner_params={"control_name": "control", "n_jobs": n_jobs, "random_state": seed},
                            random_state=seed).fit(X, treatment, y)
        ids = scores.customer_ids
        econ = economics(ds, catalog, end, customer_ids=ids)
        opts = coupon_options(uplift, _customer_features(ds, end, econ), econ, catalog, lad,
                              anyway_redeem_rate=anyway_redeem_rate)
        known = np.isfinite(econ.aov)
        table = CouponTable(ladder=lad, customer_ids=ids, cost=opts["cost"].astype(np.float32),
                            profit=opts["profit"].astype(np.float32), uplift=opts["uplift"].astype(np.float32),
                            baseline=opts["baseline"].astype(np.float32),
                            cold_cost=np.median(opts["cost"][known], axis=0).astype(np.float32),
                            cold_profit=np.median(opts["profit"][known], axis=0).astype(np.float32),
                            as_of=end.isoformat(), anyway_redeem_rate=float(anyway_redeem_rate),
                            model_name=str(uplift.best_name_))
        comps.update(uplift=uplift, coupons=table)
        best = opts["profit"].max(axis=1)
        info["coupons"] = {"status": "published", "ladder": list(lad.levels), "training_rows": int(len(y)),
                           "model": str(uplift.best_name_), "customers_with_a_paying_level": int((best > 0).sum()),
                           "seconds": round(time.perf_counter() - t, 2)}
        metrics["uplift"] = {"chosen": str(uplift.best_name_), "validation": uplift.scores_}
    except PersonalizeError as exc:
        info["coupons"] = {"status": "skipped", "reason": str(exc)}
    return comps, info, metrics
