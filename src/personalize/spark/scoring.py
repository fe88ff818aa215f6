"""Batch scoring of every customer in partitions, and the bundle it becomes.

A fitted model travels to the executors as the bytes of its saved files (a
broadcast variable: the pickle-free bundle format, never a pickled object);
each Python worker writes them to a private temporary folder once, loads the
model with the library's own loader and scores its partitions with
``mapInPandas``:

* :func:`score_candidates` -- every customer's top-``n`` items from the
  recommender (what :class:`~personalize.recommenders.CandidateTable` holds);
* :func:`score_churn` -- churn risk, band and reasons from a
  :class:`~personalize.churn.ChurnModel` over the Spark snapshot features.

CLV is scored in partitions by :func:`personalize.spark.features.customer_view`.
:func:`candidate_table` assembles the Parquet output into the bundle's
component. Further per-customer scores (coupon level, next-best-offer) plug
in as :class:`CustomerScorer` objects: their columns join the customer table
and their components join the bundle.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from personalize.errors import PersonalizeError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from personalize.recommenders import CandidateTable, Recommender

__all__ = ["broadcast_model", "score_candidates", "score_churn", "candidate_table", "CustomerScorer",
           "customer_table_frame"]

_LOADED: dict[str, Any] = {}  # per Python worker: digest -> loaded model


def _files_of(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def broadcast_model(spark: SparkSession, model) -> tuple[Any, str]:
    """(broadcast of the model's saved files, digest): what a partition needs to load the model."""
    with tempfile.TemporaryDirectory(prefix="personalize-bc-") as tmp:
        model.save(Path(tmp) / "m")
        files = _files_of(Path(tmp) / "m")
    h = hashlib.sha256()
    for k in sorted(files):
        h.update(k.encode())
        h.update(files[k])
    return spark.sparkContext.broadcast(files), h.hexdigest()[:16]


def _load_broadcast(bc, digest: str, loader):
    """The model behind a broadcast, loaded once per Python worker."""
    m = _LOADED.get(digest)
    if m is None:
        d = Path(tempfile.mkdtemp(prefix=f"personalize-{digest}-"))
        for rel, data in bc.value.items():
            p = d / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        m = _LOADED[digest] = loader(d)
    return m


def score_candidates(spark: SparkSession, recommender: Recommender, customers: DataFrame, *, n: int = 200,
                     batch: int = 2000) -> DataFrame:
    """Top-``n`` items (no exclusions) of every customer in ``customers`` (a ``customer_id`` column), scored in
    partitions by a broadcast copy of ``recommender``: customer_id, item_id, score, rank, source."""
    from personalize.recommenders import load_recommender

    if n < 1:
        raise PersonalizeError(f"candidate list length n must be at least 1, got {n}")
    bc, digest = broadcast_model(spark, recommender)

    def run(batches):
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        model = _load_broadcast(bc, digest, load_recommender)
        for b in batches:
            ids = b["customer_id"].astype(str).tolist()
            for s in range(0, len(ids), batch):
                df = model.recommend(ids[s:s + batch], k=n, exclude="none")
                yield pd.DataFrame({"customer_id": df["customer_id"].astype(str).to_numpy(dtype=object),
                                    "item_id": df["item_id"].astype(str).to_numpy(dtype=object),
                                    "score": df["score"].to_numpy(np.float32),
                                    "rank": df["rank"].to_numpy(np.int32),
                                    "source": df["source"].astype(str).to_numpy(dtype=object)})

    schema = "customer_id string, item_id string, score float, rank int, source string"
    return customers.select("customer_id").mapInPandas(run, schema)


def score_churn(spark: SparkSession, model, features: DataFrame, *, reasons: int = 3,
                horizon_days: float = 90.0) -> DataFrame:
    """Churn risk of every row of ``features`` (a Spark snapshot without labels), scored in partitions by a
    broadcast copy of ``model``: customer_id, churn_risk, churn_band and, with ``reasons``, churn_reasons
    (:func:`personalize.churn.churn_table`'s columns)."""
    from personalize.churn.model import load_model
    from personalize.churn.scoring import REASON_SEP
    from personalize.churn.training_sets import TrainingSet

    bc, digest = broadcast_model(spark, model)
    names = list(model.feature_names_)
    missing = [c for c in names if c not in features.columns]
    if missing:
        raise PersonalizeError(f"the churn model needs features the snapshot lacks: {missing[:5]}")

    def run(batches):
        m = _load_broadcast(bc, digest, load_model)
        for b in batches:
            X = b[names].astype(np.float64).reset_index(drop=True)
            ts = TrainingSet(X, None, b["customer_id"].to_numpy(dtype=object),
                             np.full(len(b), np.datetime64("NaT"), dtype="datetime64[ns]"), horizon_days)
            s = m.score(ts, reasons=reasons)
            out = pd.DataFrame({"customer_id": b["customer_id"].astype(str).to_numpy(dtype=object),
                                "churn_risk": s["probability"].to_numpy(np.float64),
                                "churn_band": s["band"].astype(str).to_numpy(dtype=object)})
            if reasons:
                out["churn_reasons"] = [REASON_SEP.join(r) for r in s["reasons"]]
            yield out

    schema = "customer_id string, churn_risk double, churn_band string" + (", churn_reasons string" if reasons else "")
    return features.select("customer_id", *names).mapInPandas(run, schema)


def candidate_table(scored: pd.DataFrame | str | Path, recommender: Recommender, *, n: int,
                    cold: Recommender | None = None) -> CandidateTable:
    """The :class:`~personalize.recommenders.CandidateTable` of scored candidates (a frame or the Parquet
    that :func:`score_candidates` wrote), over ``recommender``'s vocabularies and catalog."""
    from personalize.recommenders import CandidateTable
    from personalize.recommenders.candidates import item_code_dtype

    df = pd.read_parquet(scored) if isinstance(scored, (str, Path)) else scored
    customer_ids = np.asarray(recommender.customer_ids_, dtype=str)
    item_ids = np.asarray(recommender.item_ids_, dtype=str)
    n = int(min(n, len(item_ids))) if len(item_ids) else int(n)
    n_c = len(customer_ids)
    items = np.full((n_c, n), -1, dtype=item_code_dtype(len(item_ids)))
    scores = np.zeros((n_c, n), dtype=np.float32)
    sources = np.zeros((n_c, n), dtype=np.int8)
    source_names: list[str] = []

    def codes(values) -> np.ndarray:
        vals = pd.Series(np.asarray(values, dtype=object)).astype(str)
        for s in pd.unique(vals):
            if s not in source_names:
                if len(source_names) >= 127:
                    raise PersonalizeError("more than 127 distinct recommendation sources")
                source_names.append(str(s))
        return pd.Index(source_names).get_indexer(vals).astype(np.int8)

    if len(df):
        row = pd.Index(customer_ids).get_indexer(df["customer_id"].astype(str))
        col = df["rank"].to_numpy(np.int64) - 1
        iidx = pd.Index(item_ids).get_indexer(df["item_id"].astype(str))
        ok = (row >= 0) & (col >= 0) & (col < n) & (iidx >= 0)
        items[row[ok], col[ok]] = iidx[ok]
        scores[row[ok], col[ok]] = df["score"].to_numpy(np.float32)[ok]
        sources[row[ok], col[ok]] = codes(df["source"].to_numpy(dtype=object)[ok])
    cold_model = cold if cold is not None else recommender
    cdf = cold_model.recommend("\x00__personalize_unknown_customer__", k=n, exclude="none")
    ci = pd.Index(item_ids).get_indexer(cdf["item_id"].astype(str))
    keep = ci >= 0
    bought = recommender.histories_.matrix
    return CandidateTable(customer_ids=customer_ids, item_ids=item_ids, items=items, scores=scores, sources=sources,
                          source_names=source_names or ["unknown"], bought_indptr=bought.indptr.astype(np.int64),
                          bought_indices=bought.indices.astype(np.int32), cold_items=ci[keep].astype(np.int32),
                          cold_scores=cdf["score"].to_numpy(np.float32)[keep],
                          cold_sources=codes(cdf["source"].to_numpy(dtype=object)[keep]) if keep.any()
                          else np.zeros(0, np.int8),
                          catalog=recommender.catalog_, n=n)


def customer_table_frame(view: pd.DataFrame, customers: pd.DataFrame | None) -> pd.DataFrame:
    """The bundle's customer table from a collected customer view (the steps of
    :func:`personalize.customers.customer_table`: customers-table attributes win, consent flags become
    booleans with missing = no consent, sorted by customer id)."""
    from personalize.customers.table import finish_customer_table
    from personalize.spark.features import view_dtypes

    return finish_customer_table(view_dtypes(view.copy()), customers)


@runtime_checkable
class CustomerScorer(Protocol):
    """A per-customer score computed on Spark and published with the bundle (the extension point for coupon
    levels and next-best-offer).

    ``name`` names it in the manifest; ``fit(sds, view)`` trains on the
    Spark dataset and the customer view (a Spark DataFrame, one row per
    customer) and returns a dict of bundle components (may be empty);
    ``score(sds, view)`` returns a Spark DataFrame with ``customer_id`` and
    the columns to add to the customer table (scored in partitions, e.g.
    with :func:`broadcast_model` and ``mapInPandas``).
    """

    name: str

    def fit(self, sds, view: DataFrame) -> dict[str, Any]: ...

    def score(self, sds, view: DataFrame) -> DataFrame: ...
