"""The Spark training pipeline: from a :class:`~personalize.spark.data.SparkDataset` to a published bundle.

:func:`train_bundle` does what :func:`personalize.pipeline.train_bundle` does,
with the heavy steps on Spark:

=====================  =========================================================
step                   where it runs
=====================  =========================================================
cleaning, vocabularies Spark (``SparkDataset``)
ALS factors            Spark MLlib ALS; factors collected and exported as ``ALS``
customer view          Spark SQL (profiles, RFM, lifecycle, tiers, CLV scoring)
CLV fit                driver: BG/NBD + Gamma-Gamma on the per-customer summary
churn training set     Spark SQL snapshots, collected (one row per customer and cutoff)
churn model            driver: LightGBM on the collected training set
offer/coupon features  Spark SQL per exposure day (customers exposed that day), collected
acceptance, uplift     driver: LightGBM / uplift learners on one row per exposure
candidates, churn risk executors: ``mapInPandas`` with the broadcast models
offers, coupon levels  executors: ``mapInPandas`` (P(accept), value, policy, uplift -> economics)
bundle                 driver: the same components, published to the model store
=====================  =========================================================

The scored customers and candidates are also written as Parquet to ``out``
(one folder each) for other systems. :func:`score_bundle` re-scores every
customer with the models of a published bundle on new data and publishes
the result as a new version.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from personalize.errors import PersonalizeError
from personalize.pipeline.churn import (DEFAULT_CHURN_CUTOFFS, DEFAULT_CHURN_HORIZON_DAYS, DEFAULT_CHURN_SPACING_DAYS,
                                        default_churn_model)
from personalize.spark.scoring import (CustomerScorer, candidate_table, customer_table_frame, score_candidates,
                                       score_churn)

if TYPE_CHECKING:

    from personalize.spark.data import SparkDataset

__all__ = ["train_bundle", "score_bundle"]


def _data_info(sds: SparkDataset, cust_ids: Sequence[str], item_ids: Sequence[str]) -> dict:
    first, last = sds.bounds()
    return {"source": "spark", "first_timestamp": first.isoformat(), "last_timestamp": last.isoformat(),
            "n_customers": int(len(cust_ids)), "n_items": int(len(item_ids)), "transactions": int(len(sds)),
            "cleaning": sds.report.to_dict()}


def _customers_and_scores(sds: SparkDataset, *, churn_model, horizon_days: float, scorers: Sequence[CustomerScorer],
                          out: Path | None, say) -> tuple[pd.DataFrame, dict, dict]:
    """The scored customer table (pandas), the view's attrs and the scorers' components."""
    from personalize.spark import features as SF
    from personalize.spark.data import materialize

    as_of = sds.data_end()
    say(f"customer view as of {as_of.date()} (profiles, RFM, lifecycle, tiers, CLV)")
    t = time.perf_counter()
    known = materialize(sds.known_at(as_of))  # the lines of the view and of the churn scoring features
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        view, attrs = SF.customer_view(sds, as_of, known=known)
    view = view.persist()
    say(f"customer view of {view.count():,} customers in {time.perf_counter() - t:.1f}s")
    components: dict[str, Any] = {}
    scored = view
    if churn_model is not None:
        say("scoring churn risk in partitions")
        feats = SF.scoring_frame(sds, as_of, horizon_days=horizon_days, known=known)
        risk = score_churn(sds.spark, churn_model, feats, horizon_days=horizon_days)
        scored = scored.join(risk, "customer_id", "left")
    for s in scorers:
        say(f"fitting and scoring {s.name}")
        components.update(s.fit(sds, view) or {})
        scored = scored.join(s.score(sds, view), "customer_id", "left")
    t = time.perf_counter()
    if out is not None:
        scored.write.mode("overwrite").parquet(str(out / "customers"))
        local = pd.read_parquet(out / "customers")
    else:
        local = scored.toPandas()
    say(f"customer table with its scores in {time.perf_counter() - t:.1f}s")
    cust = sds.customers.drop("_pos").toPandas() if sds.customers is not None else None
    view.unpersist()
    known.unpersist()
    return customer_table_frame(local, cust), attrs, components


def train_bundle(sds: SparkDataset, *, store: str | Path = "models", out: str | Path | None = None,
                 factors: int = 64, iterations: int = 15, regularization: float = 5.0, alpha: float = 2.0,
                 candidates: int = 200, churn: bool = True, churn_horizon_days: float = DEFAULT_CHURN_HORIZON_DAYS,
                 churn_cutoffs: int = DEFAULT_CHURN_CUTOFFS, churn_spacing_days: float = DEFAULT_CHURN_SPACING_DAYS,
                 seed: int = 0, keep: int | None = None, scorers: Sequence[CustomerScorer] = (),
                 offers: bool = True, ladder: str | None = None,
                 progress: Callable[[str], None] | None = None, extra_params: dict | None = None) -> dict:
    """Fit on Spark, score every customer in partitions, publish the bundle ``personalize serve`` loads;
    returns the manifest (``metrics.timings`` has each step's seconds, ``als_fit_s`` MLlib's own).

    With offers and exposures in ``sds`` (and ``offers=True``) the bundle also gets the acceptance and
    uplift models, every customer's next-best-offer scores and coupon options
    (:mod:`personalize.spark.offers`; ``ladder`` as in :func:`personalize.pipeline.train_bundle`)."""
    from personalize.churn import ChurnModel
    from personalize.spark import features as SF
    from personalize.spark.als import SparkALS
    from personalize.store import publish

    say = progress or (lambda msg: None)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    outp = Path(out) if out is not None else None
    tmp = None
    if outp is None:
        tmp = tempfile.TemporaryDirectory(prefix="personalize-spark-")
        outp = Path(tmp.name)
    try:
        t = time.perf_counter()
        say(f"fitting Spark MLlib ALS (rank {factors}, {iterations} iterations)")
        als = SparkALS(factors=factors, iterations=iterations, regularization=regularization, alpha=alpha,
                       random_state=seed).fit(sds)
        recommender, popular = als.to_recommender(), als.popular()
        timings["als_fit_s"] = als.fit_seconds_
        timings["recommender_s"] = time.perf_counter() - t

        t = time.perf_counter()
        say(f"scoring top-{candidates} candidates for {len(recommender.customer_ids_):,} customers in partitions")
        ids = sds.spark.createDataFrame(pd.DataFrame({"customer_id": pd.Series(recommender.customer_ids_,
                                                                               dtype=object)}))
        ids = ids.repartition(max(2, sds.spark.sparkContext.defaultParallelism))
        score_candidates(sds.spark, recommender, ids, n=candidates).write.mode("overwrite") \
            .parquet(str(outp / "candidates"))
        table = candidate_table(outp / "candidates", recommender, n=candidates, cold=popular)
        timings["candidates_s"] = time.perf_counter() - t

        churn_model: ChurnModel | None = None
        churn_info: dict[str, Any] = {"status": "skipped", "reason": "churn disabled (churn=False / --no-churn)"}
        if churn:
            t = time.perf_counter()
            say(f"churn training snapshots on Spark ({churn_cutoffs} cutoffs, {churn_horizon_days:g}-day horizon)")
            try:
                end = sds.data_end()
                cuts = SF.production_cutoffs(sds, horizon_days=churn_horizon_days, n_cutoffs=churn_cutoffs,
                                             spacing_days=churn_spacing_days, end=end)
                train = SF.training_set(sds, cuts, horizon_days=churn_horizon_days, end=end)
                say(f"training the churn model on {len(train):,} rows (driver)")
                churn_model = default_churn_model(len(train), seed=seed)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    churn_model.fit(train)
                churn_info = {"status": "published", "horizon_days": float(churn_horizon_days),
                              "n_cutoffs": int(churn_cutoffs), "spacing_days": float(churn_spacing_days),
                              "as_of": end.isoformat(), "training_cutoffs": [c.isoformat() for c in cuts],
                              "training_rows": int(len(train)), "positive_rate": float(train.y.mean()),
                              "bands": [list(b) for b in churn_model.bands_],
                              "calibration": churn_model.calibrator_.kind,
                              "best_iteration": int(churn_model.best_iteration_),
                              "validation": churn_model.validation_}
            except PersonalizeError as exc:
                churn_model = None
                churn_info = {"status": "skipped", "reason": str(exc)}
            timings["churn_train_s"] = time.perf_counter() - t

        t = time.perf_counter()
        customers, attrs, extra_components = _customers_and_scores(
            sds, churn_model=churn_model, horizon_days=churn_horizon_days, scorers=scorers, out=outp, say=say)
        timings["customers_s"] = time.perf_counter() - t
        if churn_model is not None:
            churn_info["customers_scored"] = int(customers["churn_risk"].notna().sum())

        offer_info: dict[str, Any] = {}
        offer_metrics: dict[str, Any] = {}
        offer_components: dict[str, Any] = {}
        if offers and sds.offers is not None:
            from personalize.spark.offers import train_offers

            t = time.perf_counter()
            offer_components, offer_info, offer_metrics = train_offers(
                sds, customers, table, candidate_parquet=str(outp / "candidates"), ladder=ladder, seed=seed,
                progress=say)
            timings["offers_s"] = time.perf_counter() - t

        components: dict[str, Any] = {"recommender": recommender, "popular": popular, "candidates": table,
                                      "customers": customers}
        if churn_model is not None:
            components["churn"] = churn_model
        components.update(extra_components)
        components.update(offer_components)
        params = {"recommender": {"class": "ALS", "trained_by": "spark.ml ALS", "factors": factors,
                                  "iterations": iterations, "regularization": regularization, "alpha": alpha,
                                  "mllib_reg_param": als.reg_param_},
                  "candidates": candidates, "seed": seed, **(extra_params or {})}
        if churn_model is not None:
            params["churn"] = {"class": "ChurnModel", "horizon_days": churn_horizon_days, "n_cutoffs": churn_cutoffs,
                               "spacing_days": churn_spacing_days}
        timings["total_s"] = time.perf_counter() - t0
        metrics = {"timings": timings,
                   "recommender": {"status": "skipped", "reason": "the Spark pipeline does not hold out a validation "
                                                                "window; benchmarks/bench_spark.py compares recall"},
                   "customers": {k: v for k, v in attrs.items() if k != "as_of"}, **offer_metrics}
        say("publishing")
        return publish(components, None, store=store, params=params, metrics=metrics, keep=keep,
                       extra={"churn": churn_info, **offer_info, "scorers": [s.name for s in scorers]},
                       data=_data_info(sds, recommender.customer_ids_, recommender.item_ids_))
    finally:
        if tmp is not None:
            tmp.cleanup()


def score_bundle(sds: SparkDataset, *, models: str | Path = "models", store: str | Path | None = None,
                 out: str | Path | None = None, candidates: int | None = None, keep: int | None = None,
                 progress: Callable[[str], None] | None = None) -> dict:
    """Re-score every customer of ``sds`` with the recommender and churn model of the CURRENT bundle in
    ``models`` (candidates, churn risk, the customer view with CLV as of the data's end and, when the bundle
    has them and ``sds`` has offers and exposures, next-best-offers and coupon levels with its acceptance
    and uplift models) and publish the result to ``store`` (default: the same store). Returns the new
    manifest."""
    from personalize.store import load_bundle, publish

    say = progress or (lambda msg: None)
    t0 = time.perf_counter()
    bundle = load_bundle(models)
    recommender = bundle.get("recommender")
    if recommender is None:
        raise PersonalizeError(f"bundle {bundle.version} has no recommender to score with")
    popular = bundle.get("popular")
    churn_model = bundle.get("churn")
    n = int(candidates or (bundle.get("candidates").n if bundle.get("candidates") is not None else 200))
    horizon = float(getattr(churn_model, "horizon_days_", None) or DEFAULT_CHURN_HORIZON_DAYS)
    outp = Path(out) if out is not None else None
    tmp = None
    if outp is None:
        tmp = tempfile.TemporaryDirectory(prefix="personalize-spark-")
        outp = Path(tmp.name)
    try:
        cust_ids, item_ids = sds.vocabularies()
        say(f"scoring top-{n} candidates for {len(cust_ids):,} customers with bundle {bundle.version}")
        ids = sds.spark.createDataFrame(pd.DataFrame({"customer_id": pd.Series(cust_ids, dtype=object)}))
        ids = ids.repartition(max(2, sds.spark.sparkContext.defaultParallelism))
        score_candidates(sds.spark, recommender, ids, n=n).write.mode("overwrite").parquet(str(outp / "candidates"))
        scored = pd.read_parquet(outp / "candidates")
        table = candidate_table(scored, recommender, n=n, cold=popular)
        customers, attrs, _ = _customers_and_scores(sds, churn_model=churn_model, horizon_days=horizon, scorers=(),
                                                    out=outp, say=say)
        components: dict[str, Any] = {"recommender": recommender, "candidates": table, "customers": customers}
        if popular is not None:
            components["popular"] = popular
        if churn_model is not None:
            components["churn"] = churn_model
        extra = dict(bundle.manifest.get("extra") or {})
        if churn_model is not None:
            extra["churn"] = {**(extra.get("churn") or {}), "status": "published", "as_of": sds.data_end().isoformat(),
                              "customers_scored": int(customers["churn_risk"].notna().sum())}
        acceptance = bundle.get("acceptance")
        if acceptance is not None and sds.offers is not None and sds.exposures is not None:
            from personalize.spark.offers import rescore_offers

            say("re-scoring next-best-offers" + (" and coupon levels" if bundle.get("uplift") is not None else "")
                + " in partitions")
            offer_components, offer_info = rescore_offers(sds, bundle, customers, table,
                                                          candidate_parquet=str(outp / "candidates"))
            components.update(offer_components)
            extra.update(offer_info)
        elif acceptance is not None:
            extra["offers"] = {"status": "skipped", "reason": "the data has no offer catalog and exposures "
                                                             "(--offers, --exposures) to re-score offers with"}
            extra["coupons"] = {"status": "skipped", "reason": "needs the offer scores"}
        extra["scored_from"] = bundle.version
        say("publishing")
        return publish(components, None, store=store if store is not None else models,
                       params=bundle.manifest.get("params") or {},
                       metrics={"timings": {"total_s": time.perf_counter() - t0},
                                "customers": {k: v for k, v in attrs.items() if k != "as_of"}},
                       keep=keep, extra=extra, data=_data_info(sds, cust_ids, item_ids))
    finally:
        if tmp is not None:
            tmp.cleanup()
