"""The customer table of a bundle: one row per customer with profile, segment, lifecycle, tier, CLV,
attributes, consent flags and per-customer scores (churn risk, and what later models add).

It is what the service's profile, churn-risk and audience routes read, and
what ``personalize audience`` filters (:mod:`personalize.customers.audience`).
"""

from __future__ import annotations

import logging
import warnings
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from personalize.analytics import customer_view
from personalize.customers.consent import SUPPRESSED, consent_flags

if TYPE_CHECKING:
    from personalize.data import Dataset

__all__ = ["customer_table", "finish_customer_table", "merge_scores"]

log = logging.getLogger(__name__)


def merge_scores(table: pd.DataFrame | None, scores: pd.DataFrame) -> pd.DataFrame:
    """The customer table with per-customer ``scores`` columns (e.g. ``churn_risk``, ``churn_band``,
    ``churn_reasons``) replacing any it had; NaN / None for customers without a score."""
    scores = scores.assign(customer_id=scores["customer_id"].astype(str))
    if table is None:
        return scores.sort_values("customer_id", kind="stable").reset_index(drop=True)
    dropped = table.drop(columns=[c for c in scores.columns if c != "customer_id" and c in table.columns])
    out = dropped.merge(scores, on="customer_id", how="left")
    return out.sort_values("customer_id", kind="stable").reset_index(drop=True)


def _basic_totals(dataset: Dataset, customers: pd.DataFrame | None) -> pd.DataFrame:
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


def customer_table(dataset: Dataset, *, as_of=None) -> pd.DataFrame:
    """One row per customer: the analytics view as of ``as_of`` plus the customers table's attributes.

    ``as_of`` defaults to midnight after the last transaction day. When the
    analytics cannot be computed (logged), the table falls back to purchase
    totals. Consent flags (parsed by the Dataset) become booleans with
    missing = no consent. Sorted by customer_id.
    """
    if as_of is None:
        last = dataset.last_timestamp
        as_of = (pd.Timestamp(last).normalize() + pd.Timedelta(days=1)) if last is not None else None
    customers = getattr(dataset, "customers", None)
    view = None
    if as_of is not None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                view = customer_view(dataset, as_of)
        except Exception as exc:  # analytics failing must not block publishing recommendations
            log.warning("customer analytics skipped: %s: %s", type(exc).__name__, exc)
            view = None
    if view is None:
        table = _basic_totals(dataset, customers)
    else:
        table = view.reset_index() if "customer_id" not in view.columns else view.reset_index(drop=True)
    return finish_customer_table(table, customers if view is not None else None)


def finish_customer_table(table: pd.DataFrame, customers: pd.DataFrame | None) -> pd.DataFrame:
    """The last steps of :func:`customer_table` on a per-customer frame (also the Spark path's): the
    customers table's attributes win (``customers``, outer join), consent and suppression flags become
    booleans with missing = no consent / not suppressed, object columns become booleans or strings,
    sorted by customer id."""
    table = table.copy()
    table["customer_id"] = table["customer_id"].astype(str)
    if customers is not None:
        c = customers.copy()
        c["customer_id"] = c["customer_id"].astype(str)
        # the customers table is authoritative for attributes (region, consent, ...) of every customer
        overlap = [col for col in c.columns if col in table.columns and col != "customer_id"]
        table = table.drop(columns=overlap).merge(c, on="customer_id", how="outer")
    for col in table.columns:
        if col.startswith("consent_") or col == SUPPRESSED:
            table[col] = consent_flags(table[col])
        elif table[col].dtype == object:
            non_null = table[col].dropna()
            if len(non_null) and non_null.map(lambda v: isinstance(v, (bool, np.bool_))).all():
                table[col] = table[col].astype("boolean")
            else:
                table[col] = table[col].map(lambda v: None if v is None or v is pd.NA else str(v)).astype("str")
    table.attrs = {}
    return table.sort_values("customer_id", kind="stable").reset_index(drop=True)
