"""Spark MLlib ALS (implicit preferences) exported as :class:`personalize.recommenders.ALS`.

MLlib needs integer ids: customers and items are numbered by their place in
the sorted vocabularies the pandas :class:`~personalize.data.Dataset` builds
from the same input, and the factors are put back in that order, so the
exported model has the real ids and the service (fallback chain, filters,
the live overlay's fold-in) uses it unchanged.

Two differences between MLlib's and implicit's ALS are handled:

* **Confidence.** MLlib weighs a rating r as ``1 + alpha * r``; implicit
  takes the matrix value as the confidence itself, and personalize's ALS
  gives it ``1 + alpha * log1p(count)`` (or ``1 + alpha * count``). So MLlib
  gets ``r = log1p(count)`` (or ``count``) with the same ``alpha``: the same
  confidence for every customer and item.
* **Regularisation.** MLlib multiplies ``regParam`` by each customer's (and
  item's) number of ratings, implicit uses one ``regularization`` for all.
  ``reg_scaling="mean"`` (default) passes ``regularization / mean ratings per
  customer``, so an average customer is regularised as implicit would;
  ``"none"`` passes ``regularization`` as it is. The exported model keeps
  ``regularization`` in implicit's terms (what its fold-in of live
  purchases uses). The two are still not the same objective: tune on a time
  split (``benchmarks/bench_spark.py`` reports recall against implicit).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp

from personalize._params import Params
from personalize.errors import NotFittedError, ParameterError
from personalize.recommenders.fallback import DEFAULT_FALLBACK

if TYPE_CHECKING:

    from personalize.recommenders import ALS, Popular
    from personalize.spark.data import SparkDataset

__all__ = ["SparkALS"]


class SparkALS(Params):
    """Fit MLlib ALS on a :class:`~personalize.spark.data.SparkDataset`; export with :meth:`to_recommender`.

    Hyperparameters as :class:`personalize.recommenders.ALS` (``factors``,
    ``iterations``, ``regularization``, ``alpha``, ``confidence``, the
    fallback chain) plus ``reg_scaling`` (see the module docstring),
    ``block_size`` (MLlib's blocks for ``recommendForAll``-style products),
    ``checkpoint_interval`` (used when the session has a checkpoint
    directory: long runs otherwise overflow the JVM stack) and
    ``random_state``.

    Fitted: ``customer_ids_``, ``item_ids_``, ``user_factors_``,
    ``item_factors_`` (float32, rows in vocabulary order, zeros for ids
    without ratings), ``history_`` (customer x item line counts, CSR),
    ``trending_``, ``now_``, ``reg_param_`` (what MLlib got),
    ``fit_seconds_`` (MLlib's own fit time).
    """

    def __init__(self, *, factors: int = 64, iterations: int = 15, regularization: float = 5.0, alpha: float = 2.0,
                 confidence: str = "log1p", reg_scaling: str = "mean", block_size: int = 4096,
                 checkpoint_interval: int = 10, random_state: int = 0, fallback: Sequence[str] = DEFAULT_FALLBACK,
                 trending_days: float = 30.0, session_neighbors: int = 20) -> None:
        self.factors = factors
        self.iterations = iterations
        self.regularization = regularization
        self.alpha = alpha
        self.confidence = confidence
        self.reg_scaling = reg_scaling
        self.block_size = block_size
        self.checkpoint_interval = checkpoint_interval
        self.random_state = random_state
        self.fallback = fallback
        self.trending_days = trending_days
        self.session_neighbors = session_neighbors

    def _validate(self) -> None:
        for name in ("factors", "iterations", "block_size", "checkpoint_interval"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ParameterError(f"{name} must be a positive integer, got {v!r}")
        if not (isinstance(self.regularization, (int, float)) and self.regularization >= 0):
            raise ParameterError(f"regularization must be a number >= 0, got {self.regularization!r}")
        if not (isinstance(self.alpha, (int, float)) and self.alpha > 0):
            raise ParameterError(f"alpha must be a positive number, got {self.alpha!r}")
        if self.confidence not in ("log1p", "linear"):
            raise ParameterError(f"confidence must be 'log1p' or 'linear', got {self.confidence!r}")
        if self.reg_scaling not in ("mean", "none"):
            raise ParameterError(f"reg_scaling must be 'mean' or 'none', got {self.reg_scaling!r}")

    # ------------------------------------------------------------------ fit
    def fit(self, sds: SparkDataset) -> "SparkALS":
        """Map ids to integers, fit MLlib ALS, bring the factors back in vocabulary order; returns self."""
        from pyspark.ml.recommendation import ALS as MLlibALS
        from pyspark.sql import functions as F

        self._validate()
        spark = sds.spark
        cust_ids, item_ids = sds.vocabularies()
        cmap = spark.createDataFrame(pd.DataFrame({"customer_id": pd.Series(cust_ids, dtype=object),
                                                   "_u": np.arange(len(cust_ids), dtype=np.int32)}))
        imap = spark.createDataFrame(pd.DataFrame({"item_id": pd.Series(item_ids, dtype=object),
                                                   "_i": np.arange(len(item_ids), dtype=np.int32)}))
        counts = sds.transactions.groupBy("customer_id", "item_id").agg(F.count(F.lit(1)).alias("_n")) \
            .join(cmap, "customer_id").join(F.broadcast(imap), "item_id").select("_u", "_i", "_n")
        rating = F.log1p(F.col("_n").cast("double")) if self.confidence == "log1p" else F.col("_n").cast("double")
        ratings = counts.withColumn("_r", rating.cast("float")).persist()
        pairs = ratings.select("_u", "_i", "_n").toPandas()
        n_users = int(pairs["_u"].nunique()) if len(pairs) else 0
        mean_per_user = len(pairs) / max(n_users, 1)
        reg = float(self.regularization) / mean_per_user if self.reg_scaling == "mean" else float(self.regularization)
        als = MLlibALS(rank=int(self.factors), maxIter=int(self.iterations), regParam=reg, alpha=float(self.alpha),
                       implicitPrefs=True, nonnegative=False, userCol="_u", itemCol="_i", ratingCol="_r",
                       coldStartStrategy="drop", seed=int(self.random_state), blockSize=int(self.block_size),
                       checkpointInterval=int(self.checkpoint_interval))
        t = time.perf_counter()
        model = als.fit(ratings)
        uf = model.userFactors.toPandas()
        itf = model.itemFactors.toPandas()
        self.fit_seconds_ = time.perf_counter() - t
        ratings.unpersist()
        self.customer_ids_ = np.asarray(cust_ids, dtype=object)
        self.item_ids_ = np.asarray(item_ids, dtype=object)
        self.user_factors_ = _factor_matrix(uf, len(cust_ids), int(self.factors))
        self.item_factors_ = _factor_matrix(itf, len(item_ids), int(self.factors))
        self.history_ = sp.csr_matrix((pairs["_n"].to_numpy(np.float32),
                                       (pairs["_u"].to_numpy(np.int64), pairs["_i"].to_numpy(np.int64))),
                                      shape=(len(cust_ids), len(item_ids)))
        self.history_.sum_duplicates()
        self.now_ = sds.last_timestamp
        since = self.now_ - pd.Timedelta(days=float(self.trending_days))
        trend = sds.transactions.filter(F.col("timestamp") >= F.lit(since.to_pydatetime())) \
            .select("customer_id", "item_id").distinct().groupBy("item_id").count() \
            .join(F.broadcast(imap), "item_id").select("_i", "count").toPandas()
        self.trending_ = np.zeros(len(item_ids), dtype=np.float64)
        self.trending_[trend["_i"].to_numpy(np.int64)] = trend["count"].to_numpy(np.float64)
        self.reg_param_ = reg
        self.items_ = sds.items.drop("_pos").toPandas() if sds.items is not None else None
        self.model_ = model
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "user_factors_"):
            raise NotFittedError("SparkALS is not fitted: call fit(spark_dataset) first")

    # ------------------------------------------------------------------ export
    def _base_state(self, model) -> None:
        from personalize.recommenders.catalog import ItemCatalog
        from personalize.recommenders.fallback import ItemStats, cooccurrence_neighbors
        from personalize.recommenders.history import Histories

        model._validate_params()
        model.customer_ids_ = self.customer_ids_
        model.item_ids_ = self.item_ids_
        model.histories_ = Histories(self.history_)
        model.catalog_ = ItemCatalog.from_items(self.item_ids_, self.items_)
        model.now_ = pd.Timestamp(self.now_)
        X = model.histories_.matrix
        popularity = np.bincount(X.indices, minlength=X.shape[1]).astype(np.float64)
        model.item_stats_ = ItemStats(popularity, self.trending_,
                                      cooccurrence_neighbors(X, int(self.session_neighbors)), model.catalog_)

    def to_recommender(self) -> ALS:
        """The fitted factors as a :class:`personalize.recommenders.ALS` (saved, loaded and served like one)."""
        from personalize.recommenders import ALS

        self._check_fitted()
        m = ALS(factors=int(self.factors), iterations=int(self.iterations), regularization=float(self.regularization),
                alpha=float(self.alpha), confidence=self.confidence, random_state=int(self.random_state),
                fallback=tuple(self.fallback), trending_days=float(self.trending_days),
                session_neighbors=int(self.session_neighbors))
        self._base_state(m)
        m.user_factors_ = self.user_factors_
        m.item_factors_ = self.item_factors_
        m._post_state()
        return m

    def popular(self) -> Popular:
        """The Popular baseline on the same data (the bundle's fallback for shoppers never seen)."""
        from personalize.recommenders import Popular

        self._check_fitted()
        p = Popular(fallback=tuple(self.fallback), trending_days=float(self.trending_days),
                    session_neighbors=int(self.session_neighbors))
        self._base_state(p)
        p.item_scores_ = p.item_stats_.popularity.astype(np.float32)
        p._post_state()
        return p


def _factor_matrix(df: pd.DataFrame, n: int, rank: int) -> np.ndarray:
    """MLlib's (id, features) rows as an (n, rank) float32 matrix; ids without factors get zeros."""
    out = np.zeros((n, rank), dtype=np.float32)
    if len(df):
        ids = df["id"].to_numpy(np.int64)
        out[ids] = np.stack([np.asarray(f, dtype=np.float32) for f in df["features"].to_numpy()])
    return out
