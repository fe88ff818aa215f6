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
from personalize.coupons.plan import (CouponTable, Ladder, coupon_options, coupon_training_set, ladder_columns,
                                      uplift_features)
from personalize.errors import PersonalizeError
from personalize.offers import AcceptanceModel, ContactPolicy, DayFeatures, OfferCatalog, acceptance_training_set, \
    economics, score_offers
from personalize.offers.features import customer_frame
from personalize.offers.scores import CandidateAffinity, OfferScores
from personalize.pipeline.churn import LARGE_TRAINING_ROWS
from personalize.uplift import AutoUplift

if TYPE_CHECKING:
    from personalize.data import Dataset
    from personalize.recommenders import CandidateTable

__all__ = ["train_offers", "fit_and_score_offers", "default_acceptance_model", "default_uplift_model",
           "DEFAULT_ANYWAY_REDEEM_RATE", "ACCEPTANCE_FAST_ROWS"]

#: share of the customers who would have bought anyway that use a coupon they got (1.0 = all: the cautious value)
DEFAULT_ANYWAY_REDEEM_RATE = 1.0

#: ``score(acceptance model, (ladder, uplift model) or None) -> (OfferScores, coupon options or None, known)``:
#: every customer's offer scores, coupon options (:func:`coupon_options`) and which customers have a history
OfferScoring = Callable[[AcceptanceModel, "tuple[Ladder, AutoUplift] | None"],
                        "tuple[OfferScores, dict[str, np.ndarray] | None, np.ndarray]"]


def train_offers(ds: Dataset, customers: pd.DataFrame, candidates: CandidateTable | CandidateAffinity | None, *,
                 ladder: str | None = None, policy: ContactPolicy | None = None,
                 anyway_redeem_rate: float = DEFAULT_ANYWAY_REDEEM_RATE, seed: int = 0, n_jobs: int | None = 1,
                 progress: Callable[[str], None] | None = None) -> tuple[dict[str, Any], dict, dict]:
    """(components, info for the manifest, metrics): see the module docstring."""
    if ds.offers is None or ds.exposures is None or not len(ds.exposures):
        return skipped_offers(ds.offers is None)
    catalog = OfferCatalog.from_frame(ds.offers)
    end = data_end(ds)
    info: dict[str, Any] = {}
    if getattr(ds, "points", None) is not None and (catalog.kinds == "points_multiplier").any():
        from personalize.analytics.points import points_pricing

        pricing = points_pricing(ds, as_of=end)
        catalog = catalog.with_points_pricing(pricing)
        info["points_pricing"] = pricing.to_dict()

    def score(model, coupon):
        # every customer's features as of the end once, for the offer scores and the coupon options
        ids = customers["customer_id"].astype(str).to_numpy(dtype=object)
        econ = economics(ds, catalog, end, customer_ids=ids)
        cust = customer_frame(ds, end, econ)
        scores = score_offers(ds, catalog, model, customers, as_of=end, candidates=candidates, policy=policy,
                              features=(econ, cust))
        if coupon is None:
            return scores, None, None
        lad, uplift = coupon
        opts = coupon_options(uplift, uplift_features(cust, econ), econ, catalog, lad,
                              anyway_redeem_rate=anyway_redeem_rate)
        return scores, opts, np.isfinite(econ.aov)

    # each exposure day's features once, for both training sets
    comps, more, metrics = fit_and_score_offers(ds, catalog, end, DayFeatures(ds, catalog), score, ladder=ladder,
                                                anyway_redeem_rate=anyway_redeem_rate, seed=seed, n_jobs=n_jobs,
                                                progress=progress)
    return comps, {**info, **more}, metrics


#: from this many exposures up the acceptance model learns at the churn model's large-data rate (0.15, 50 rounds)
ACCEPTANCE_FAST_ROWS = 500_000


def default_acceptance_model(n_rows: int, *, seed: int = 0, n_jobs: int | None = 1) -> AcceptanceModel:
    """The acceptance model ``personalize train`` publishes: the model's defaults; from
    :data:`~personalize.pipeline.churn.LARGE_TRAINING_ROWS` exposures up every core, with a learning rate of
    0.06 and 100 early-stopping rounds (on that many rows the slow default rate runs thousands of rounds for no
    measurable gain); from :data:`ACCEPTANCE_FAST_ROWS` up the churn model's 0.15 with 50 rounds.

    Measured on 254,000 exposures: 0.06 stops at 244 trees (fit 10 s, AUC 0.8589, log loss 0.4022), 0.15 at 112
    (5 s, AUC 0.8583, log loss 0.4027): a few seconds, not worth the loss. On 847,000 exposures (a 1M-customer
    history): 0.06 stops at 517 trees (fit 57 s, AUC 0.8603, log loss 0.4026), 0.15 at 194 (fit 24 s, AUC 0.8600,
    log loss 0.4030), and scoring every customer's ten offers (10M pairs) takes 36 s instead of 86: 83 s for
    0.0003 of AUC."""
    if n_rows >= ACCEPTANCE_FAST_ROWS:
        return AcceptanceModel(learning_rate=0.15, early_stopping_rounds=50, n_jobs=0, random_state=seed)
    if n_rows >= LARGE_TRAINING_ROWS:
        return AcceptanceModel(learning_rate=0.06, early_stopping_rounds=100, n_jobs=0, random_state=seed)
    return AcceptanceModel(random_state=seed, n_jobs=n_jobs)


def default_uplift_model(n_rows: int, *, seed: int = 0, n_jobs: int | None = 1) -> AutoUplift:
    """The coupon uplift model ``personalize train`` publishes: S-, T- and X-learner (and their mean) compared
    by validation Qini at the learners' defaults; from :data:`~personalize.pipeline.churn.LARGE_TRAINING_ROWS`
    randomized exposures up, the big-data settings of ``benchmarks/bench_offers.py``'s scale section: the
    candidates compared on a 200,000-row stratified sample, no ensemble, learning rate 0.1 with 63 bins and
    20 early-stopping rounds on a 10 % fold that is not refitted, every core. At that size the learners'
    validation Qini differ by less than the ensemble's extra cost buys."""
    params: dict[str, Any] = {"control_name": "control", "n_jobs": n_jobs, "random_state": seed}
    if n_rows >= LARGE_TRAINING_ROWS:
        params.update(learning_rate=0.1, max_bin=63, validation_fraction=0.1, early_stopping_rounds=20,
                      refit=False, n_jobs=0)
        return AutoUplift(learner_params=params, selection_rows=200_000, ensemble=False, random_state=seed)
    return AutoUplift(learner_params=params, random_state=seed)


def skipped_offers(no_catalog: bool) -> tuple[dict, dict, dict]:
    reason = "no offer catalog" if no_catalog else "no campaign exposures"
    return {}, {"offers": {"status": "skipped", "reason": f"{reason} in the data (--offers, --exposures)"},
                "coupons": {"status": "skipped", "reason": f"{reason} in the data"}}, {}


def fit_and_score_offers(ds, catalog: OfferCatalog, end: pd.Timestamp, features: DayFeatures, score: OfferScoring,
                         *, ladder: str | None = None, anyway_redeem_rate: float = DEFAULT_ANYWAY_REDEEM_RATE,
                         seed: int = 0, n_jobs: int | None = 1, progress: Callable[[str], None] | None = None
                         ) -> tuple[dict[str, Any], dict, dict]:
    """Fit the acceptance model and the coupon uplift model on the exposures of ``ds`` (only ``ds.exposures``
    is read; ``features`` gives each exposure day's customer features, :class:`DayFeatures` or the Spark
    path's), then ``score`` every customer with them; returns (components, info, metrics) for the bundle.

    The single-machine path (:func:`train_offers`) and the Spark path
    (:mod:`personalize.spark.offers`) differ only in ``features`` and ``score``."""
    say = progress or (lambda msg: None)
    info: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    comps: dict[str, Any] = {}
    t = time.perf_counter()
    try:
        say(f"training the offer acceptance model on {int(ds.exposures['offer_id'].notna().sum()):,} exposures")
        aset = acceptance_training_set(ds, catalog, features=features)
        model = default_acceptance_model(len(aset), seed=seed, n_jobs=n_jobs).fit_exposures(aset, catalog)
    except PersonalizeError as exc:
        info["offers"] = {"status": "skipped", "reason": str(exc)}
        return comps, {**info, "coupons": {"status": "skipped", "reason": "needs the offer scores"}}, metrics
    offers_fit_s = time.perf_counter() - t
    t = time.perf_counter()
    coupon = None
    X = treatment = y = None
    try:
        lad = Ladder.parse(ladder, catalog) if ladder else Ladder.default(catalog, ds.exposures)
        X, treatment, y, _cut = coupon_training_set(ds, catalog, lad, features=features)
        say(f"training the coupon uplift model on {len(y):,} randomized exposures ({len(lad.levels)} levels)")
        uplift = default_uplift_model(len(y), seed=seed, n_jobs=n_jobs).fit(X, treatment, y)
        ladder_columns(uplift, lad)
        coupon = (lad, uplift)
        coupon_rows = int(len(y))
    except PersonalizeError as exc:
        info["coupons"] = {"status": "skipped", "reason": str(exc)}
    coupons_fit_s = time.perf_counter() - t
    training_rows = len(aset)
    del features, aset, X, treatment, y  # the training sets and their day features, before scoring everyone
    t = time.perf_counter()
    say("scoring next-best-offers" + (" and coupon levels" if coupon is not None else "") + " for every customer")
    scores, opts, known = score(model, coupon)
    score_s = time.perf_counter() - t
    comps.update(acceptance=model, offers=scores)
    info["offers"] = {"status": "published", "offers": len(catalog), "training_rows": training_rows,
                      "fallback_offers": model.fallback_offers_, "as_of": end.isoformat(),
                      "seconds": round(offers_fit_s + score_s, 2)}
    metrics["acceptance"] = {k: v for k, v in (model.validation_ or {}).items()
                             if k in ("auc", "pr_auc", "log_loss", "brier", "rows", "split")}
    if coupon is not None:
        lad, uplift = coupon
        try:
            table = CouponTable.from_options(lad, scores.customer_ids, opts, known, as_of=end,
                                             anyway_redeem_rate=anyway_redeem_rate, model_name=str(uplift.best_name_))
        except PersonalizeError as exc:
            info["coupons"] = {"status": "skipped", "reason": str(exc)}
        else:
            comps.update(uplift=uplift, coupons=table)
            best = opts["profit"].max(axis=1)
            info["coupons"] = {"status": "published", "ladder": list(lad.levels), "training_rows": coupon_rows,
                               "model": str(uplift.best_name_),
                               "customers_with_a_paying_level": int((best > 0).sum()),
                               "seconds": round(coupons_fit_s + score_s, 2)}
            metrics["uplift"] = {"chosen": str(uplift.best_name_), "validation": uplift.scores_}
    return comps, info, metrics
