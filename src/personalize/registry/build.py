"""Train every model the library has on a dataset and publish them as one bundle.

Components of a bundle built by :func:`train_bundle`:

``recommender``  the default recommender (ALS on confidence-weighted purchases)
``popular``      the Popular baseline, the fallback for shoppers never seen
``candidates``   every customer's precomputed top-``n`` list (:class:`CandidateTable`)
``customers``    the customer table (profiles, RFM segment, lifecycle, tier, CLV,
                 consent flags) from :func:`personalize.analytics.customer_view`
                 when available, else the customers table and purchase totals;
                 plus ``churn_risk``, ``churn_band`` and ``churn_reasons`` when
                 the churn model was trained
``churn``        the calibrated LightGBM :class:`~personalize.churn.ChurnModel`
                 (LightGBM text + calibration + meta.json, kind ``"churn"``)

Churn runs in *production mode*: the model is trained on the latest cutoffs
whose label window (``churn_horizon_days``) has closed and every customer is
scored as of the end of the data (midnight after the last transaction day,
the same ``as_of`` as the customer table). When the data is too short for a
closed label window, or a training fold lacks one of the classes, churn is
skipped and ``manifest["extra"]["churn"]`` says why (``status`` ``"skipped"``
or ``"failed"`` plus ``reason``); the recommendations are published anyway.
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

__all__ = ["train_bundle", "train_churn", "customer_table", "consent_flags", "default_recommender",
           "default_churn_model"]

log = logging.getLogger(__name__)

DEFAULT_FACTORS = 64
DEFAULT_CANDIDATES = 200
DEFAULT_CHURN_HORIZON_DAYS = 90.0
DEFAULT_CHURN_CUTOFFS = 3
DEFAULT_CHURN_SPACING_DAYS = 30.0
CHURN_REASONS = 3


def default_recommender(*, factors: int = DEFAULT_FACTORS, seed: int = 0):
    """The recommender ``personalize train`` publishes by default."""
    from personalize.recommenders import ALS

    return ALS(factors=factors, random_state=seed)


def default_churn_model(n_rows: int, *, seed: int = 0):
    """The churn model ``personalize train`` publishes by default.

    ``min_child_samples`` is the model's default (200) from 4,000 training rows
    up and ``n_rows / 20`` (at least 5) below, so small shops still get a model
    that splits. One LightGBM thread: with per-round work this small, OpenMP
    threads on a shared machine cost more than they save (measured 4x slower
    with 2 threads on 6,500 rows); pass your own ``ChurnModel`` for large data.
    """
    from personalize.churn import ChurnModel

    return ChurnModel(min_child_samples=int(min(200, max(5, n_rows // 20))), n_jobs=1, random_state=seed)


def train_churn(dataset: Any, *, model: Any = None, horizon_days: float = DEFAULT_CHURN_HORIZON_DAYS,
                n_cutoffs: int = DEFAULT_CHURN_CUTOFFS, spacing_days: float = DEFAULT_CHURN_SPACING_DAYS,
                as_of: Any = None, reasons: int = CHURN_REASONS, seed: int = 0) -> tuple[Any, pd.DataFrame | None, dict]:
    """Production-mode churn: (fitted model or None, scores or None, info for the manifest).

    Trains on the latest ``n_cutoffs`` cutoffs whose label window has closed
    and scores every customer as of ``as_of`` (default: the end of the data).
    Data problems (too short for a closed window, a fold with one class) are
    returned as ``{"status": "skipped", "reason": ...}``; any other failure as
    ``{"status": "failed", ...}`` -- never raised, so recommendations still publish.
    """
    from personalize.errors import PersonalizeError

    base = {"horizon_days": float(horizon_days), "n_cutoffs": int(n_cutoffs), "spacing_days": float(spacing_days)}
    try:
        from personalize.churn import churn_table, production_cutoffs, training_set
        from personalize.churn.training_sets import data_end
    except ImportError as exc:  # pragma: no cover - lightgbm not installed
        return None, None, {"status": "skipped", "reason": f"churn model unavailable: {exc}", **base}
    try:
        end = data_end(dataset) if as_of is None else pd.Timestamp(as_of)
        cuts = production_cutoffs(dataset, horizon_days=horizon_days, n_cutoffs=n_cutoffs,
                                  spacing_days=spacing_days, end=end)
        train = training_set(dataset, cuts, horizon_days=horizon_days, end=end)
        if model is None:
            model = default_churn_model(len(train), seed=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(train)
            scores = churn_table(dataset, model, as_of=end, horizon_days=horizon_days, reasons=reasons)
    except PersonalizeError as exc:
        return None, None, {"status": "skipped", "reason": str(exc), **base}
    except Exception as exc:  # noqa: BLE001 - a churn failure must not block publishing recommendations
        log.warning("churn model failed: %s: %s", type(exc).__name__, exc)
        return None, None, {"status": "failed", "reason": f"{type(exc).__name__}: {exc}", **base}
    info = {"status": "published", **base, "as_of": end.isoformat(),
            "training_cutoffs": [c.isoformat() for c in cuts], "training_rows": int(len(train)),
            "positive_rate": float(train.y.mean()), "customers_scored": int(len(scores)),
            "bands": [list(b) for b in model.bands_], "calibration": model.calibrator_.kind,
            "best_iteration": int(model.best_iteration_), "validation": model.validation_}
    return model, scores, info


def merge_churn(table: pd.DataFrame | None, scores: pd.DataFrame) -> pd.DataFrame:
    """The customer table with ``churn_risk``, ``churn_band``, ``churn_reasons`` (NaN / None when unscored)."""
    scores = scores.assign(customer_id=scores["customer_id"].astype(str))
    if table is None:
        return scores.sort_values("customer_id", kind="stable").reset_index(drop=True)
    dropped = table.drop(columns=[c for c in scores.columns if c != "customer_id" and c in table.columns])
    out = dropped.merge(scores, on="customer_id", how="left")
    return out.sort_values("customer_id", kind="stable").reset_index(drop=True)


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
                 recommender: Any = None, popular: Any = None, customers: bool = True, churn: Any = None,
                 churn_horizon_days: float = DEFAULT_CHURN_HORIZON_DAYS, churn_cutoffs: int = DEFAULT_CHURN_CUTOFFS,
                 churn_spacing_days: float = DEFAULT_CHURN_SPACING_DAYS,
                 progress: Callable[[str], None] | None = None, extra_params: dict | None = None) -> dict:
    """Fit the recommender, the Popular fallback and the churn model, precompute candidates, publish.

    ``churn``: True (the :func:`default_churn_model`), an unfitted
    ``ChurnModel`` to train, or False to leave churn out (recorded in the
    manifest as skipped); None (default) means "with the customer table",
    i.e. ``customers``, since the scores live in that table. Returns the manifest.
    """
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
    metrics: dict[str, Any] = {"timings": timings}
    if churn is None:
        churn = bool(customers)
    if churn is False:
        churn_info = {"status": "skipped", "reason": "churn disabled for this bundle (churn=False / --no-churn)"
                      if customers else "churn not requested: bundle built without a customer table (customers=False)"}
    else:
        t = time.perf_counter()
        say(f"training the churn model (production mode, {churn_horizon_days:g}-day horizon)")
        model, scores, churn_info = train_churn(dataset, model=None if churn is True else churn,
                                                horizon_days=churn_horizon_days, n_cutoffs=churn_cutoffs,
                                                spacing_days=churn_spacing_days, seed=seed)
        timings["churn_s"] = time.perf_counter() - t
        if model is not None:
            components["churn"] = model
            components["customers"] = merge_churn(components.get("customers"), scores)
            metrics["churn"] = {k: v for k, v in (model.validation_ or {}).items()
                                if k in ("auc", "pr_auc", "log_loss", "brier", "rows", "positive_rate")}
        else:
            say(f"churn skipped: {churn_info['reason']}")
    params = {"recommender": {"class": type(recommender).__name__, **_params_of(recommender)},
              "popular": {"class": type(popular).__name__, **_params_of(popular)},
              "candidates": candidates, "seed": seed, **(extra_params or {})}
    if "churn" in components:
        params["churn"] = {"class": type(components["churn"]).__name__, "horizon_days": churn_horizon_days,
                           "n_cutoffs": churn_cutoffs, "spacing_days": churn_spacing_days,
                           **_params_of(components["churn"])}
    say("publishing")
    return publish(components, dataset, store=store, params=params, metrics=metrics, keep=keep,
                   extra={"churn": churn_info})


def _params_of(model: Any) -> dict:
    get = getattr(model, "get_params", None)
    if callable(get):
        try:
            return {k: v for k, v in get().items() if isinstance(v, (int, float, str, bool, type(None)))}
        except Exception:  # pragma: no cover - a model without sklearn-style params
            return {}
    return {k: v for k, v in vars(model).items()
            if not k.startswith("_") and not k.endswith("_") and isinstance(v, (int, float, str, bool, type(None)))}
