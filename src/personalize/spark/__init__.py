"""Scale-out on Apache Spark: the same data contract, distributed features and labels, Spark MLlib ALS,
and batch scoring of every customer into the same serving bundle.

Needs the ``spark`` extra (``pip install 'personalize[spark]'``) and Java 17+;
the rest of personalize never imports pyspark. Typical use::

    from personalize.spark import spark_session, SparkDataset, train_bundle
    spark = spark_session("local[2]", driver_memory="8g")      # or a cluster master
    sds = SparkDataset.from_parquet(spark, "s3://shop/sales/*.parquet", items="s3://shop/items.parquet")
    sds.report                                                 # the same CleaningReport as Dataset's
    manifest = train_bundle(sds, store="models", out="s3://shop/scored/")   # `personalize serve` loads it

Modules: :mod:`~personalize.spark.session` (starting Spark, job progress),
:mod:`~personalize.spark.data` (contract and cleaning),
:mod:`~personalize.spark.features` (profiles, RFM, lifecycle, tiers, CLV, churn snapshots),
:mod:`~personalize.spark.als` (MLlib ALS exported as :class:`personalize.recommenders.ALS`),
:mod:`~personalize.spark.scoring` (``mapInPandas`` batch scoring, bundle assembly),
:mod:`~personalize.spark.offers` (next-best-offer and coupon levels: features on Spark, models on the
driver, scoring in partitions),
:mod:`~personalize.spark.pipeline` (everything, as :func:`personalize.pipeline.train_bundle` does it).
"""

from __future__ import annotations

import importlib
from typing import Any

from personalize.spark.session import JobProgress, SparkUnavailableError, check_spark, spark_session

__all__ = ["spark_session", "check_spark", "SparkUnavailableError", "JobProgress", "SparkDataset",
           "profiles", "customer_view", "churn_features", "snapshot", "training_set", "SparkALS",
           "score_candidates", "score_churn", "train_bundle", "score_bundle"]

_LAZY = {
    "SparkDataset": "personalize.spark.data",
    "profiles": "personalize.spark.features",
    "customer_view": "personalize.spark.features",
    "churn_features": "personalize.spark.features",
    "snapshot": "personalize.spark.features",
    "training_set": "personalize.spark.features",
    "SparkALS": "personalize.spark.als",
    "score_candidates": "personalize.spark.scoring",
    "score_churn": "personalize.spark.scoring",
    "train_bundle": "personalize.spark.pipeline",
    "score_bundle": "personalize.spark.pipeline",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'personalize.spark' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
