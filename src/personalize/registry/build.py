"""Train every model the library has on a dataset and publish them as one bundle.

Components of a bundle built by :func:`train_bundle`:

``recommender``  the default recommender (ALS on confidence-weighted purchases)
``popular``      the Popular baseline, the fallback for shoppers never seen
``candidates``   every customer's precomputed top-``n`` list (:class:`CandidateTable`)
``customers``    the customer table (profiles, RFM segment, lifecycle, tier, CLV,
                 consent flags) from :func:`personalize.analytics.customer_view`
                 when available, else the customers table and purchase totals
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from personalize.registry.candidates import CandidateTable
from personalize.registry.store import publish

__all__ = ["train_bundle", "customer_table", "consent_flags", "default_recommender"]

log = logging.getLogger(__name__)

DEFAULT_FACTORS = 64
DEFAULT_CANDIDATES = 200


def default_recommender(*, factors: int = DEFAULT_FACTORS, seed: int = 0):
    """The recommender ``personalize train`` publishes by default."""
    from personalize.recommenders import ALS

    return ALS(factors=factors, random_state=seed)


def _basic_totals(dataset: Any, customers: pd.DataFrame | None) -> pd.DataFrame:
    tx = dataset.transactions
    g = tx.groupby("customer_id", sort=True)
    out = pd.DataFrame({"first_purchase": g["timestamp"].min(), "last_purchase": g["timestamp"].max(),
                        "lines": g.size().astype("int64"), "monetary": g["amount"].sum()})
    if "order_id" in tx:
        out["orders"] = g["order_id"].nunique().astype("int64")
    out = out.reset_index()
    out["customer_id"] = out["customer_id"].astype(str)
    if customers is not None:
        c = customers.copy()
        c["customer_id"] = c["customer_id"].astype(str)
        out = c.merge(out, on="customer_id", how="outer")
    return out


def consent_flags(values: pd.Series) -> pd.Series:
    """Strict consent: True only for a true boolean (or 1 / "true" / "yes"); missing or anything else is False."""
    def one(v) -> bool:
        if v is None or v is pd.NA:
            return False
        if isinstance(v, (bool, np.bool_)):
            return bool(v)
        if isinstance(v, (int, np.integer)):
            return int(v) == 1
        if isinstance(v, float):
            return v == 1.0
        return str(v).strip().lower() in ("true", "1", "yes", "y", "t")

    return values.map(one).astype(bool)


def customer_table(dataset: Any, *, as_of: Any = None) -> pd.DataFrame:
    """One row per customer of the dataset: analytics view (if available) plus the customers table."""
    if as_of is None:
        last = dataset.last_timestamp
        as_of = (pd.Timestamp(last).normalize() + pd.Timedelta(days=1)) if last is not None else None
    customers = getattr(dataset, "customers", None)
    view = None
    if as_of is not None:
        try:
            from personalize.analytics import customer_view

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                view = customer_view(dataset, as_of)
        except ImportError:
            view = None
        except Exception as exc:  # analytics failing must not block publishing recommendations
            log.warning("customer analytics skipped: %s: %s", type(exc).__name__, exc)
            view = None
    if view is None:
        table = _basic_totals(dataset, customers)
    else:
        table = view.reset_index() if "customer_id" not in view.columns else view.reset_index(drop=True)
        table["customer_id"] = table["customer_id"].astype(str)
        if customers is not None:
            c = customers.copy()
            c["customer_id"] = c["customer_id"].astype(str)
            # the customers table is authoritative for attributes (region, consent, ...) of every customer
            overlap = [col for col in c.columns if col in table.columns and col != "customer_id"]
            table = table.drop(columns=overlap).merge(c, on="customer_id", how="outer")
    for col in table.columns:
        if col.startswith("consent_"):
            table[col] = consent_flags(table[col])
        elif table[col].dtype == object:
            non_null = table[col].dropna()
            if len(non_null) and non_null.map(lambda v: isinstance(v, (bool, np.bool_))).all():
                table[col] = table[col].astype("boolean")
            else:
                table[col] = table[col].map(lambda v: None if v is None or v is pd.NA else str(v)).astype("str")
    table.attrs = {}
    return table.sort_values("customer_id", kind="stable").reset_index(drop=True)


def train_bundle(dataset: Any, *, store: str | Path = "models", factors: int = DEFAULT_FACTORS,
                 candidates: int = DEFAULT_CANDIDATES, keep: int | None = None, seed: int = 0,
                 recommender: Any = None, popular: Any = None, customers: bool = True,
                 progress: Callable[[str], None] | None = None, extra_params: dict | None = None) -> dict:
    """Fit the default recommender and the Popular fallback, precompute candidates, publish; return the manifest."""
    from threadpoolctl import threadpool_limits

    say = progress or (lambda msg: None)
    timings: dict[str, float] = {}
    if recommender is None:
        recommender = default_recommender(factors=factors, seed=seed)
    if popular is None:
        from personalize.recommenders import Popular

        popular = Popular()
    with threadpool_limits(1, "blas"):
        t = time.perf_counter()
        say(f"fitting {type(recommender).__name__}")
        recommender.fit(dataset)
        timings["fit_recommender_s"] = time.perf_counter() - t
        t = time.perf_counter()
        say("fitting Popular")
        popular.fit(dataset)
        timings["fit_popular_s"] = time.perf_counter() - t
        t = time.perf_counter()
        say(f"precomputing top-{candidates} candidates for {len(dataset.customer_vocab)} customers")
        table = CandidateTable.build(recommender, dataset, n=candidates, cold=popular)
        timings["candidates_s"] = time.perf_counter() - t
    components: dict[str, Any] = {"recommender": recommender, "popular": popular, "candidates": table}
    if customers:
        t = time.perf_counter()
        say("building the customer table")
        components["customers"] = customer_table(dataset)
        timings["customers_s"] = time.perf_counter() - t
    params = {"recommender": {"class": type(recommender).__name__, **_params_of(recommender)},
              "popular": {"class": type(popular).__name__, **_params_of(popular)},
              "candidates": candidates, "seed": seed, **(extra_params or {})}
    say("publishing")
    return publish(components, dataset, store=store, params=params, metrics={"timings": timings}, keep=keep)


def _params_of(model: Any) -> dict:
    get = getattr(model, "get_params", None)
    if callable(get):
        try:
            return {k: v for k, v in get().items() if isinstance(v, (int, float, str, bool, type(None)))}
        except Exception:  # pragma: no cover - a model without sklearn-style params
            return {}
    return {k: v for k, v in vars(model).items()
            if not k.startswith("_") and not k.endswith("_") and isinstance(v, (int, float, str, bool, type(None)))}
