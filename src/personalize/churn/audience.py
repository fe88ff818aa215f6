"""Filter a bundle's customer table into a campaign list (churn risk, tier, segment, consent...).

:func:`audience_mask` is the one definition of the filters, shared by the CLI
(``personalize audience``, :func:`select_audience`) and the HTTP service
(``GET /v1/audiences``, :meth:`personalize.registry.Runtime.audience`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd

from personalize.errors import BundleError, DataError, PersonalizeError
from personalize.registry.store import MissingComponentError

__all__ = ["select_audience", "audience_mask", "consent_mask", "export_columns", "CONSENT_CHANNELS",
           "PERSONAL_COLUMNS"]

CONSENT_CHANNELS = ("email", "sms", "personalization")
#: personal attributes: never written to an audience list
PERSONAL_COLUMNS = frozenset({"age_years", "days_to_birthday", "birth_date", "signup_date", "region", "email",
                              "phone", "name", "address", "postcode", "zip"})


def _flags(values: pd.Series) -> np.ndarray:
    """True only for explicit yes values (True, 1, "true", "yes", "y", "1"); missing = no consent."""
    if pd.api.types.is_bool_dtype(values.dtype) and not values.hasnans:
        return values.to_numpy(dtype=bool)

    def one(v) -> bool:
        if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
            return False
        if isinstance(v, (bool, np.bool_)):
            return bool(v)
        if isinstance(v, (int, float, np.integer, np.floating)):
            return v == 1
        return str(v).strip().lower() in ("true", "yes", "y", "1")
    return np.array([one(v) for v in values], dtype=bool)


def consent_mask(table: pd.DataFrame, consent: str) -> np.ndarray:
    """Rows whose ``consent_<consent>`` is an explicit yes (no such column = nobody consented)."""
    if consent not in CONSENT_CHANNELS:
        raise PersonalizeError(f"consent must be one of {', '.join(CONSENT_CHANNELS)}, got {consent!r}")
    col = f"consent_{consent}"
    return _flags(table[col]) if col in table.columns else np.zeros(len(table), dtype=bool)


def _need(table: pd.DataFrame, col: str, why: str) -> None:
    if col not in table.columns:
        hint = " (publish a bundle with the churn model: `personalize train`)" if col == "churn_risk" else ""
        raise MissingComponentError(f"the bundle's customer table has no '{col}' column, needed for {why}{hint}")


def _bound(value: float | None, name: str, lo: float | None = None, hi: float | None = None) -> None:
    if value is None:
        return
    if not isinstance(value, (int, float, np.integer, np.floating)) or not math.isfinite(float(value)):
        raise DataError(f"{name} must be a finite number, got {value!r}", column=name)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise DataError(f"{name} must be between {lo:g} and {hi:g}, got {value}", column=name)


def audience_mask(table: pd.DataFrame, *, min_churn_risk: float | None = None, max_churn_risk: float | None = None,
                  tiers: Iterable[str] | None = None, segments: Iterable[str] | None = None,
                  lifecycle: Iterable[str] | None = None, min_clv: float | None = None,
                  consent: str | None = None) -> np.ndarray:
    """Boolean mask over ``table``'s rows passing every given filter (values within one filter are OR-ed).

    A filter on a column the table lacks raises :class:`MissingComponentError`
    (never a silent empty list); out-of-range values raise :class:`DataError`;
    NaN scores never pass a threshold; ``consent`` keeps only explicit yes.
    """
    _bound(min_churn_risk, "min_churn_risk", 0.0, 1.0)
    _bound(max_churn_risk, "max_churn_risk", 0.0, 1.0)
    _bound(min_clv, "min_clv")
    if min_churn_risk is not None and max_churn_risk is not None and min_churn_risk > max_churn_risk:
        raise DataError(f"min_churn_risk ({min_churn_risk}) is above max_churn_risk ({max_churn_risk})",
                        column="min_churn_risk")
    m = np.ones(len(table), dtype=bool)
    if min_churn_risk is not None or max_churn_risk is not None:
        _need(table, "churn_risk", "a churn-risk filter")
        risk = table["churn_risk"].to_numpy(np.float64)
        if min_churn_risk is not None:
            m &= risk >= min_churn_risk   # NaN never passes
        if max_churn_risk is not None:
            m &= risk <= max_churn_risk
    for col, vals, opt in (("tier", tiers, "a tier filter"), ("segment", segments, "a segment filter"),
                           ("lifecycle", lifecycle, "a lifecycle filter")):
        vals = [vals] if isinstance(vals, str) else vals
        if vals:
            _need(table, col, opt)
            m &= table[col].astype("object").isin(list(vals)).to_numpy()
    if min_clv is not None:
        _need(table, "clv", "a minimum-CLV filter")
        m &= table["clv"].to_numpy(np.float64) >= min_clv
    if consent is not None:
        m &= consent_mask(table, consent)
    return m


def export_columns(table: pd.DataFrame) -> list[str]:
    """Columns a list may carry: ``customer_id`` and scores/labels, never personal attributes or consent flags."""
    return [c for c in table.columns
            if c == "customer_id" or not (c.startswith("consent_") or c in PERSONAL_COLUMNS)]


def select_audience(table: pd.DataFrame | None, *, min_churn_risk: float | None = None,
                    max_churn_risk: float | None = None, tiers: Iterable[str] | None = None,
                    segments: Iterable[str] | None = None, lifecycle: Iterable[str] | None = None,
                    min_clv: float | None = None, consent: str | None = None,
                    personal: bool = True) -> pd.DataFrame:
    """Rows of ``table`` (one per customer) passing every filter, sorted by customer id.

    ``churn_risk`` comes from :func:`personalize.churn.churn_table` merged into
    the bundle's customer table (``personalize train``). With
    ``personal=False`` personal attributes (region, birth date, ...) and the
    consent flags are left out of the result (what an export file should hold).
    """
    if table is None:
        raise BundleError("this bundle has no 'customers' table")
    m = audience_mask(table, min_churn_risk=min_churn_risk, max_churn_risk=max_churn_risk, tiers=tiers,
                      segments=segments, lifecycle=lifecycle, min_clv=min_clv, consent=consent)
    out = table.loc[m]
    if not personal:
        out = out[export_columns(out)]
    if "customer_id" in out.columns:
        out = out.sort_values("customer_id", kind="stable")
    return out.reset_index(drop=True)
