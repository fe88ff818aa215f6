"""Next-best-offer and coupon levels on Spark, into the same bundle components as the single-machine path.

What runs where (:func:`train_offers`):

* **per-customer features** as of a cutoff, on Spark: the churn features and the profile columns
  (:func:`personalize.spark.features.churn_features` / :func:`~personalize.spark.features.profiles`), and
  each customer's own purchase lines, exposures and coupon orders gathered into arrays (one row per
  customer). A partition turns those rows into :class:`~personalize.offers.features.Economics` and the
  customer frame with the library's functions (:func:`~personalize.offers.features.economics_of_lines`,
  :func:`~personalize.offers.features.campaign_history`,
  :func:`~personalize.offers.features.assemble_customer_frame`): a row depends on that customer only,
  and the one population number (the margin fill) is computed on Spark from per-item line counts.
* **training**, on the driver: the acceptance and the uplift models learn from one row per exposure
  with the features of the exposure's day (computed as above for the customers exposed that day and
  collected), by :func:`personalize.pipeline.offers.fit_and_score_offers` -- the single-machine glue.
* **scoring**, in ``mapInPandas`` with both models broadcast: every customer of the bundle's customer
  table gets P(accept) and value of every offer and the static contact-policy reasons
  (:func:`~personalize.offers.scores.offer_rows`), her exposure counts
  (:func:`~personalize.offers.scores.exposure_history`) and, per coupon level, uplift, baseline,
  expected cost and profit (:func:`~personalize.coupons.plan.coupon_options`).
* **assembly**, on the driver: :func:`~personalize.offers.scores.assemble_offer_scores` and
  :meth:`~personalize.coupons.plan.CouponTable.from_options` (cold answers: means / medians over the
  customers with a history), so the service loads ``offers`` and ``coupons`` unchanged.
"""

from __future__ import annotations

import os
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from personalize.churn.features import DEFAULT_WINDOWS
from personalize.offers.catalog import CHANNELS, OfferCatalog
from personalize.offers.features import (PROFILE_FEATURES, DayCache, Economics, assemble_customer_frame,
                                         campaign_history, economics_of_lines, margin_fill)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from personalize.recommenders import CandidateTable
    from personalize.spark.data import SparkDataset

__all__ = ["train_offers", "rescore_offers", "score_customers", "SparkDayFeatures", "feature_rows", "features_of_rows"]

_LINES = ("_l_ns", "_l_item", "_l_amount", "_l_key")
_EXPS = ("_e_ns", "_e_offer")
_COUPONS = ("_c_ns", "_c_key")


def _F():
    from pyspark.sql import functions as F
    return F


def _ns(col: str):
    F = _F()
    return F.unix_micros(F.col(col)) * F.lit(1000)


def _sorted_arrays(df: DataFrame, fields: dict[str, Any], order: tuple[str, ...], names: tuple[str, ...]) -> DataFrame:
    """One row per customer: the ``fields`` of her rows as parallel arrays, sorted by ``order`` fields."""
    F = _F()
    st = F.struct(*[e.alias(k) for k, e in {**{o: fields[o] for o in order},
                                            **{k: v for k, v in fields.items() if k not in order}}.items()])
    g = df.groupBy("customer_id").agg(F.array_sort(F.collect_list(st)).alias("_s"))
    out = [F.col("customer_id")]
    def field(key):
        return lambda x: x[key]

    for name, key in zip(names, [k for k in fields]):
        out.append(F.transform("_s", field(key)).alias(name))
    return g.select(*out)


def exposures_frame(sds: SparkDataset) -> DataFrame:
    """The (validated, driver-side) exposures as a Spark DataFrame: customer_id, _ns, offer_id, _pos."""
    exp = sds.exposures
    pdf = pd.DataFrame({"customer_id": exp["customer_id"].astype(str).to_numpy(dtype=object),
                        "_ns": exp["exposed_at"].to_numpy(dtype="datetime64[ns]").astype(np.int64),
                        "offer_id": exp["offer_id"].astype("object").where(exp["offer_id"].notna(), None)
                        .to_numpy(dtype=object) if "offer_id" in exp.columns else None,
                        "_pos": np.arange(len(exp), dtype=np.int64)})
    return sds.spark.createDataFrame(pdf, "customer_id string, _ns long, offer_id string, _pos long")


def feature_rows(sds: SparkDataset, cutoff, customers: DataFrame, exposures: DataFrame | None,
                 *, horizon_days: float = 90.0) -> tuple[DataFrame, float, list[str], list[str]]:
    """(rows, margin fill, churn columns, profile columns): one row per customer of ``customers`` (a
    ``customer_id`` column, other columns kept) with what :func:`features_of_rows` needs as of ``cutoff``."""
    from personalize.spark import features as SF
    from personalize.spark.data import POS, RESTORED, materialize

    F = _F()
    cut = pd.Timestamp(cutoff)
    lines = materialize(sds.known_at(cut))
    key = F.col("order_id").cast("string") if "order_id" in sds.columns else _ns("timestamp").cast("string")
    mine = lines.join(customers.select("customer_id"), "customer_id", "left_semi")
    arrays = _sorted_arrays(mine, {"ns": _ns("timestamp"), "restored": F.col(RESTORED), "pos": F.col(POS),
                                   "item": F.col("item_id"), "amount": F.col("amount"), "key": key},
                            ("ns", "restored", "pos"), ("_l_ns", "_r", "_p", "_l_item", "_l_amount", "_l_key"))
    arrays = arrays.drop("_r", "_p")
    rows = customers.join(arrays, "customer_id", "left")
    churn, _params = SF.churn_features(sds, cut, horizon_days=horizon_days, windows=DEFAULT_WINDOWS, known=lines)
    churn_cols = [c for c in churn.columns if c != "customer_id"]
    rows = rows.join(churn.join(customers.select("customer_id"), "customer_id", "left_semi"), "customer_id", "left")
    prof = SF.profiles(sds, cut, frames=SF.ProfileFrames(sds, cut, known=lines))
    prof_cols = [c for c in PROFILE_FEATURES if c in prof.columns]
    rows = rows.join(prof.select("customer_id", *[F.col(c).cast("double").alias(f"_prof_{c}") for c in prof_cols])
                     .join(customers.select("customer_id"), "customer_id", "left_semi"), "customer_id", "left")
    if exposures is not None:
        e = exposures.filter(F.col("_ns") < F.lit(cut.value)).join(customers.select("customer_id"), "customer_id",
                                                                    "left_semi")
        rows = rows.join(_sorted_arrays(e, {"ns": F.col("_ns"), "pos": F.col("_pos"), "offer": F.col("offer_id")},
                                        ("ns", "pos"), ("_e_ns", "_ep", "_e_offer")).drop("_ep"),
                         "customer_id", "left")
    if "coupon_id" in sds.columns:
        okey = F.col("order_id").cast("string") if "order_id" in sds.columns else F.lit(None).cast("string")
        c = sds.transactions.filter(F.col("coupon_id").isNotNull() & (F.col("timestamp") < F.lit(cut))) \
            .join(customers.select("customer_id"), "customer_id", "left_semi")
        rows = rows.join(_sorted_arrays(c, {"ns": _ns("timestamp"), "pos": F.col(POS), "key": okey}, ("ns", "pos"),
                                        ("_c_ns", "_cp", "_c_key")).drop("_cp"), "customer_id", "left")
    fill = _margin_fill(sds, lines)
    return rows, fill, churn_cols, prof_cols


def _margin_fill(sds: SparkDataset, lines: DataFrame) -> float:
    from personalize.offers.features import DEFAULT_MARGIN

    items = sds.items
    if items is None or "margin" not in items.columns:
        return DEFAULT_MARGIN
    margins = items.select("item_id", "margin").toPandas()
    if not margins["margin"].notna().any():
        return DEFAULT_MARGIN
    counts = lines.groupBy("item_id").count().toPandas()
    return margin_fill(pd.Series(margins["margin"].to_numpy(np.float64), index=margins["item_id"].astype(str)),
                       pd.Series(counts["count"].to_numpy(np.int64), index=counts["item_id"].astype(str)))


def _flat(pdf: pd.DataFrame, col: str, dtype) -> tuple[np.ndarray, np.ndarray]:
    """(lengths, concatenated values) of an array column (missing = empty)."""
    if col not in pdf.columns:
        return np.zeros(len(pdf), np.int64), np.zeros(0, dtype)
    vals = [np.asarray(v, dtype=dtype) if v is not None else np.zeros(0, dtype) for v in pdf[col].tolist()]
    lens = np.array([len(v) for v in vals], np.int64)
    return lens, (np.concatenate(vals) if len(vals) else np.zeros(0, dtype))


def features_of_rows(pdf: pd.DataFrame, catalog: OfferCatalog, cutoff, *, items: pd.DataFrame | None, fill: float,
                     churn_cols: list[str], prof_cols: list[str], columns: list[str]
                     ) -> tuple[Economics, pd.DataFrame, pd.DataFrame]:
    """(econ, customer frame, exposures) of the customers of ``pdf`` (rows of :func:`feature_rows`), with the
    library's functions -- the values :func:`~personalize.offers.features.economics` and
    :func:`~personalize.offers.features.customer_frame` give on the whole Dataset. ``columns``: the
    transaction columns of the data (``order_id``, ``coupon_id`` decide how orders are counted)."""
    cut = pd.Timestamp(cutoff)
    ids = pdf["customer_id"].astype(str).to_numpy(dtype=object)
    lens, _ = _flat(pdf, "_l_ns", np.int64)
    key = "order_id" if "order_id" in columns else "timestamp"
    tx = pd.DataFrame({"customer_id": np.repeat(ids, lens),
                       "item_id": _flat(pdf, "_l_item", object)[1],
                       "amount": _flat(pdf, "_l_amount", np.float64)[1],
                       key: _flat(pdf, "_l_key", object)[1]})
    econ = economics_of_lines(tx, items, catalog, ids, margin=fill)
    churn = pd.DataFrame({c: pdf[c].to_numpy(np.float64) for c in churn_cols}, index=pd.Index(ids, dtype=object))
    churn = churn[pdf["_has_churn"].to_numpy(bool)] if "_has_churn" in pdf.columns else churn.dropna(how="all")
    prof = pd.DataFrame({c: pdf[f"_prof_{c}"].to_numpy(np.float64) for c in prof_cols},
                        index=pd.Index(ids, dtype=object))
    elens, ens = _flat(pdf, "_e_ns", np.int64)
    exposures = pd.DataFrame({"customer_id": np.repeat(ids, elens), "exposed_at": pd.to_datetime(ens, unit="ns"),
                              "offer_id": _flat(pdf, "_e_offer", object)[1]})
    clens, cns = _flat(pdf, "_c_ns", np.int64)
    coupons = pd.DataFrame({"customer_id": np.repeat(ids, clens), "timestamp": pd.to_datetime(cns, unit="ns")})
    if "coupon_id" in columns:
        coupons["coupon_id"] = "coupon"
        if "order_id" in columns:
            coupons["order_id"] = _flat(pdf, "_c_key", object)[1]
    history = campaign_history(SimpleNamespace(exposures=exposures, transactions=coupons), cut, ids)
    return econ, assemble_customer_frame(churn, prof, history, ids), exposures


class SparkDayFeatures(DayCache):
    """:class:`personalize.offers.features.DayFeatures` on Spark: a day's entry holds the features of every
    customer exposed that day (and those asked for) as of the day, from :func:`feature_rows`, collected."""

    def __init__(self, sds: SparkDataset, catalog: OfferCatalog, exposures: DataFrame | None = None,
                 progress=None) -> None:
        super().__init__(sds.exposures)
        self._sds, self._catalog = sds, catalog
        self._exposures = exposures if exposures is not None else exposures_frame(sds)
        self._say = progress or (lambda msg: None)
        self._items = sds.items.drop("_pos").toPandas() if sds.items is not None else None

    def _compute(self, day: pd.Timestamp, union: np.ndarray) -> tuple[Economics, pd.DataFrame]:
        self._say(f"  features of {len(union):,} customers as of {day.date()} (Spark)")
        spark = self._sds.spark
        cust = spark.createDataFrame(pd.DataFrame({"customer_id": pd.Series(union, dtype=object)}),
                                     "customer_id string")
        rows, fill, churn_cols, prof_cols = feature_rows(self._sds, day, cust, self._exposures)
        pdf = _with_churn_flag(rows, churn_cols).toPandas()
        pdf = pdf.set_index("customer_id", drop=False).reindex(pd.Index(union, dtype=object)).reset_index(drop=True)
        econ, frame, _ = features_of_rows(pdf, self._catalog, day, items=self._items, fill=fill,
                                          churn_cols=churn_cols, prof_cols=prof_cols, columns=self._sds.columns)
        return econ, frame


def _with_churn_flag(rows: DataFrame, churn_cols: list[str]) -> DataFrame:
    """Mark the rows with churn features (customers with a line before the cutoff; a joined row can have
    every feature NaN otherwise indistinguishable from a missing one)."""
    F = _F()
    return rows.withColumn("_has_churn", F.col(churn_cols[0]).isNotNull() if churn_cols else F.lit(False))


def _state_columns(customers: pd.DataFrame) -> list[str]:
    want = ("segment", "tier", "lifecycle", "top_category", "orders", "consent_email", "consent_sms",
            "consent_personalization", "suppressed")
    return [c for c in want if c in customers.columns]


def score_customers(sds: SparkDataset, catalog: OfferCatalog, customers: pd.DataFrame, acceptance, coupon, *,
                    as_of, candidates: CandidateTable | None, candidate_parquet: str | None, policy,
                    anyway_redeem_rate: float, exposures: DataFrame | None = None):
    """Every customer of ``customers`` (the bundle's customer table) scored in partitions: returns
    ``(OfferScores, coupon options or None, known)`` as :func:`personalize.pipeline.offers.fit_and_score_offers`
    wants them."""
    from personalize.coupons.plan import coupon_options, uplift_features
    from personalize.offers import AcceptanceModel
    from personalize.offers.eligibility import CustomerState
    from personalize.offers.scores import affinity_targets, assemble_offer_scores, exposure_history, offer_rows
    from personalize.spark.scoring import _load_broadcast, broadcast_model
    from personalize.uplift import AutoUplift

    F = _F()
    spark = sds.spark
    state_cols = _state_columns(customers)
    table = customers[["customer_id", *state_cols]].copy()
    table["customer_id"] = table["customer_id"].astype(str)
    for c in state_cols:
        if table[c].dtype.kind not in "biuf":
            table[c] = table[c].astype(object).where(table[c].notna(), None)
        if str(table[c].dtype) == "boolean":
            table[c] = table[c].fillna(False).astype(bool)
    cust = spark.createDataFrame(table)
    cust = cust.repartition(max(2, spark.sparkContext.defaultParallelism), "customer_id")
    exposures = exposures if exposures is not None else exposures_frame(sds)
    rows, fill, churn_cols, prof_cols = feature_rows(sds, as_of, cust, exposures)
    rows = _with_churn_flag(rows, churn_cols)
    if candidates is not None and candidate_parquet is not None:
        targets = [(int(j), str(i)) for j, want in affinity_targets(catalog, candidates).items()
                   for i in candidates.item_ids[np.flatnonzero(want[:-1])]]
        if targets:
            t = spark.createDataFrame(pd.DataFrame(targets, columns=["_j", "item_id"]), "_j int, item_id string")
            hits = spark.read.parquet(candidate_parquet).select("customer_id", "item_id") \
                .join(F.broadcast(t), "item_id").groupBy("customer_id").agg(F.collect_set("_j").alias("_aff"))
            rows = rows.join(hits, "customer_id", "left")
    items = sds.items.drop("_pos").toPandas() if sds.items is not None else None
    bc_a, dig_a = broadcast_model(spark, acceptance)
    bc_u, dig_u = broadcast_model(spark, coupon[1]) if coupon is not None else (None, None)
    ladder = coupon[0] if coupon is not None else None
    columns = list(sds.columns)
    m, nch = len(catalog), len(CHANNELS)
    cut = pd.Timestamp(as_of)

    def run(batches):
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        model = _load_broadcast(bc_a, dig_a, AcceptanceModel.load)
        up = _load_broadcast(bc_u, dig_u, AutoUplift.load) if bc_u is not None else None
        for b in batches:
            if not len(b):
                continue
            b = b.reset_index(drop=True)
            econ, frame, exp = features_of_rows(b, catalog, cut, items=items, fill=fill, churn_cols=churn_cols,
                                                prof_cols=prof_cols, columns=columns)
            ids = econ.customer_ids
            aff = econ.bought.copy()
            if "_aff" in b.columns:
                for r, js in enumerate(b["_aff"].tolist()):
                    if js is not None and len(js):
                        aff[r, np.asarray(js, np.int64)] = True
            state = CustomerState.from_table(b, affinity=aff)
            p, value, fb, static = offer_rows(catalog, model, frame, econ, state, policy)
            counts, last = exposure_history(exp, catalog, ids, cut)
            out = pd.DataFrame({"customer_id": ids.astype(str), "p": list(p), "value": list(value),
                                "static": list(static.reshape(len(ids), m * nch).astype(np.int32)),
                                "exposures": list(counts), "last_ns": last,
                                "fb": [fb] * len(ids), "known": np.isfinite(econ.aov)})
            if up is not None:
                opts = coupon_options(up, uplift_features(frame, econ), econ, catalog, ladder,
                                      anyway_redeem_rate=anyway_redeem_rate)
                for k in ("cost", "profit", "uplift", "baseline"):
                    out[k] = list(opts[k]) if opts[k].ndim == 2 else opts[k]
            yield out

    schema = ("customer_id string, p array<float>, value array<float>, static array<int>, exposures array<int>, "
              "last_ns long, fb array<boolean>, known boolean")
    if coupon is not None:
        schema += ", cost array<double>, profit array<double>, uplift array<double>, baseline double"
    scored = rows.mapInPandas(run, schema).toPandas()
    ids = table["customer_id"].to_numpy(dtype=object)
    scored = scored.set_index("customer_id").reindex(pd.Index(ids, dtype=object))
    if scored["known"].isna().any():
        raise AssertionError("customers missing from the Spark offer scores")  # pragma: no cover

    def stack(col, dtype):
        return np.stack([np.asarray(v, dtype) for v in scored[col].tolist()]) if len(scored) else \
            np.zeros((0, m), dtype)

    known = scored["known"].to_numpy(bool)
    fb = np.zeros(m, bool)
    for f in scored["fb"].tolist():
        fb |= np.asarray(f, bool)
    static = stack("static", np.int8).reshape(len(ids), m, nch) if len(ids) else np.zeros((0, m, nch), np.int8)
    scores = assemble_offer_scores(catalog, ids, p=stack("p", np.float32), value=stack("value", np.float32),
                                   static=static, exposures=stack("exposures", np.int32),
                                   last_contact_ns=scored["last_ns"].to_numpy(np.int64), fallback=fb, known=known,
                                   as_of=cut, policy=policy)
    opts = None
    if coupon is not None:
        opts = {k: stack(k, np.float64) for k in ("cost", "profit", "uplift")}
        opts["baseline"] = scored["baseline"].to_numpy(np.float64)
    return scores, opts, known


def train_offers(sds: SparkDataset, customers: pd.DataFrame, candidates: CandidateTable | None, *,
                 candidate_parquet: str | None = None, ladder: str | None = None, policy=None,
                 anyway_redeem_rate: float | None = None, seed: int = 0, n_jobs: int | None = 1,
                 progress=None) -> tuple[dict[str, Any], dict, dict]:
    """:func:`personalize.pipeline.offers.train_offers` for a :class:`SparkDataset` (see the module
    docstring): (components ``acceptance``, ``offers``, ``uplift``, ``coupons``; info; metrics)."""
    from personalize.offers import ContactPolicy
    from personalize.pipeline.offers import DEFAULT_ANYWAY_REDEEM_RATE, fit_and_score_offers, skipped_offers

    if sds.offers is None or sds.exposures is None or not len(sds.exposures):
        return skipped_offers(sds.offers is None)
    rate = DEFAULT_ANYWAY_REDEEM_RATE if anyway_redeem_rate is None else anyway_redeem_rate
    policy = policy or ContactPolicy()
    catalog = OfferCatalog.from_frame(sds.offers)
    end = sds.data_end()
    exposures = exposures_frame(sds).persist()
    try:
        features = SparkDayFeatures(sds, catalog, exposures, progress=progress)

        def score(model, coupon):
            return score_customers(sds, catalog, customers, model, coupon, as_of=end, candidates=candidates,
                                   candidate_parquet=candidate_parquet, policy=policy, anyway_redeem_rate=rate,
                                   exposures=exposures)

        comps, info, metrics = fit_and_score_offers(SimpleNamespace(exposures=sds.exposures), catalog, end, features,
                                                    score, ladder=ladder, anyway_redeem_rate=rate, seed=seed,
                                                    n_jobs=n_jobs, progress=progress)
    finally:
        exposures.unpersist()
    if sds.offers is not None and (catalog.kinds == "points_multiplier").any():
        info["points_pricing"] = {"status": "skipped", "reason": "the Spark path reads no points ledger: points "
                                                                  "offers are priced from their unit_cost"}
    return comps, info, metrics


def rescore_offers(sds: SparkDataset, bundle, customers: pd.DataFrame, candidates: CandidateTable | None, *,
                   candidate_parquet: str | None = None) -> tuple[dict[str, Any], dict]:
    """Every customer of ``customers`` scored with the acceptance and uplift models of a published ``bundle``
    (its catalog, contact policy, ladder and redemption rate) on the data of ``sds``, as of its end:
    (components ``offers`` / ``coupons``, info for the manifest)."""
    from personalize.coupons.plan import CouponTable

    old = bundle["offers"]
    catalog = OfferCatalog.from_frame(sds.offers)
    if [str(o) for o in catalog.offer_ids] != [str(o) for o in old.catalog.offer_ids]:
        catalog = old.catalog  # the models were trained on the bundle's catalog: score that one
    coupons = bundle.get("coupons")
    uplift = bundle.get("uplift")
    coupon = (coupons.ladder, uplift) if coupons is not None and uplift is not None else None
    rate = coupons.anyway_redeem_rate if coupons is not None else 1.0
    end = sds.data_end()
    scores, opts, known = score_customers(sds, catalog, customers, bundle["acceptance"], coupon, as_of=end,
                                          candidates=candidates, candidate_parquet=candidate_parquet,
                                          policy=old.policy, anyway_redeem_rate=rate)
    comps: dict[str, Any] = {"acceptance": bundle["acceptance"], "offers": scores}
    info: dict[str, Any] = {"offers": {"status": "published", "offers": len(catalog), "as_of": end.isoformat(),
                                       "rescored_with": bundle.version}}
    if coupon is not None:
        comps["uplift"] = uplift
        comps["coupons"] = CouponTable.from_options(coupon[0], scores.customer_ids, opts, known, as_of=end,
                                                    anyway_redeem_rate=rate, model_name=coupons.model_name)
        info["coupons"] = {"status": "published", "ladder": list(coupon[0].levels), "model": coupons.model_name,
                           "customers_with_a_paying_level": int((opts["profit"].max(axis=1) > 0).sum()),
                           "as_of": end.isoformat(), "rescored_with": bundle.version}
    return comps, info
