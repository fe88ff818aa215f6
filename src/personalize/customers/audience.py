"""Audiences: the one definition of the customer-list filters, the columns a list may carry, and paging.

Used by the CLI (``personalize audience``: :func:`select_audience`), the HTTP
service (``GET /v1/audiences``: :func:`audience_page`) and anything else that
selects customers from a customer table (:func:`personalize.customers.customer_table`).

* Values within one filter are OR-ed, filters are AND-ed.
* A filter on a column the table lacks raises :class:`MissingComponentError`
  (never a silent empty list); a value the column can never hold (an unknown
  tier or segment) raises :class:`DataError` listing the valid values;
  out-of-range thresholds raise :class:`DataError`; NaN never passes a threshold.
* ``consent`` keeps only customers who consented (:mod:`personalize.customers.consent`).
* Feedback and points filters (need the feedback / points columns of the
  table, :mod:`personalize.analytics.satisfaction`, :mod:`personalize.analytics.points`):
  ``detractor`` (the last answer was a detractor answer), ``open_complaints``
  (at least one complaint not resolved), ``unhappy`` (either of them: the
  service-recovery filter), ``min_points`` (points balance at least this) and
  ``points_expiring_within_days`` (some points expire within that many days of
  the table's ``as_of``). :func:`service_recovery` is the service-recovery
  list: unhappy customers among the high-value ones, most valuable first.
* A list never carries personal attributes (:data:`PERSONAL_COLUMNS`) or the
  consent flags: only ``customer_id`` and score / label columns.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from personalize.analytics.segments import LIFECYCLE_STAGES, SEGMENT_NAMES
from personalize.customers.consent import consent_mask
from personalize.errors import BundleError, DataError, MissingComponentError, PersonalizeError

__all__ = ["PERSONAL_COLUMNS", "LABEL_COLUMNS", "DEFAULT_AUDIENCE_FIELDS", "SERVICE_RECOVERY_FIELDS", "audience_mask",
           "audience_columns", "audience_page", "page_of", "select_audience", "service_recovery", "valid_values"]

#: personal attributes: shown in a profile (scope "profile"), never written to an audience list
PERSONAL_COLUMNS = frozenset({"age_years", "days_to_birthday", "birth_date", "signup_date", "region", "email",
                              "phone", "name", "address", "postcode", "zip"})
#: text labels a list may carry besides numeric scores
LABEL_COLUMNS = frozenset({"segment", "tier", "lifecycle", "rfm", "persona", "next_tier", "churn_band",
                           "churn_reasons", "top_category", "detractor", "last_score_scale"})
#: what a service-recovery list carries by default (those the table has)
SERVICE_RECOVERY_FIELDS = ("clv", "monetary", "tier", "open_complaints", "days_since_complaint", "last_score",
                           "last_score_scale", "detractor", "churn_risk")
DEFAULT_AUDIENCE_FIELDS = ("segment", "tier", "lifecycle", "recency_days", "orders", "monetary", "clv", "p_alive",
                           "churn_risk", "churn_band")
_KNOWN = {"segment": SEGMENT_NAMES, "lifecycle": LIFECYCLE_STAGES}


def _need(table: pd.DataFrame, col: str, why: str) -> None:
    if col not in table.columns:
        hint = " (publish a bundle with the churn model: `personalize train`)" if col == "churn_risk" else ""
        raise MissingComponentError(f"the customer table has no '{col}' column, needed for {why}{hint}")


def _bound(value: float | None, name: str, lo: float | None = None, hi: float | None = None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(value)):
        raise DataError(f"{name} must be a finite number, got {value!r}", column=name)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise DataError(f"{name} must be between {lo:g} and {hi:g}, got {value}", column=name)


def valid_values(table: pd.DataFrame, col: str) -> list[str]:
    """Values a label filter on ``col`` may ask for: the known names and every value the table holds.

    For tiers, the names of higher tiers (``next_tier``) count too: a tier
    nobody has reached yet is valid and simply empty.
    """
    vals = set(_KNOWN.get(col, ()))
    for c in ((col, "next_tier") if col == "tier" else (col,)):
        if c in table.columns:
            vals |= {str(v) for v in table[c].dropna().unique()}
    return sorted(vals)


def _labels(vals: str | Iterable[str] | None) -> list[str] | None:
    if vals is None:
        return None
    return [vals] if isinstance(vals, str) else [str(v) for v in vals]


def audience_mask(table: pd.DataFrame, *, consent: str | None = None, segments: Iterable[str] | None = None,
                  lifecycle: Iterable[str] | None = None, tiers: Iterable[str] | None = None,
                  min_clv: float | None = None, min_churn_risk: float | None = None,
                  max_churn_risk: float | None = None, score: str | None = None, min_score: float | None = None,
                  max_score: float | None = None, detractor: bool | None = None,
                  open_complaints: bool | None = None, unhappy: bool | None = None, min_points: float | None = None,
                  points_expiring_within_days: float | None = None) -> np.ndarray:
    """Boolean mask over ``table``'s rows passing every given filter (see the module docstring)."""
    _bound(min_churn_risk, "min_churn_risk", 0.0, 1.0)
    _bound(max_churn_risk, "max_churn_risk", 0.0, 1.0)
    _bound(min_clv, "min_clv")
    _bound(min_score, "min_score")
    _bound(max_score, "max_score")
    if min_churn_risk is not None and max_churn_risk is not None and min_churn_risk > max_churn_risk:
        raise DataError(f"min_churn_risk ({min_churn_risk}) is above max_churn_risk ({max_churn_risk})",
                        column="min_churn_risk")
    m = np.ones(len(table), dtype=bool)
    if min_churn_risk is not None or max_churn_risk is not None:
        _need(table, "churn_risk", "a churn-risk filter")
        risk = table["churn_risk"].to_numpy(np.float64, na_value=np.nan)
        if min_churn_risk is not None:
            m &= risk >= min_churn_risk   # NaN never passes
        if max_churn_risk is not None:
            m &= risk <= max_churn_risk
    for col, vals in (("tier", _labels(tiers)), ("segment", _labels(segments)), ("lifecycle", _labels(lifecycle))):
        if vals:
            _need(table, col, f"a {col} filter")
            valid = valid_values(table, col)
            unknown = [v for v in vals if v not in valid]
            if unknown:
                raise DataError(f"unknown {col} value(s) {unknown}; valid: {valid}", column=col)
            m &= table[col].astype("object").isin(vals).to_numpy()
    if min_clv is not None:
        _need(table, "clv", "a minimum-CLV filter")
        m &= table["clv"].to_numpy(np.float64, na_value=np.nan) >= min_clv
    if score is not None or min_score is not None or max_score is not None:
        if score is None:
            raise DataError("min_score/max_score need score=<column>", column="score")
        numeric = [c for c in audience_columns(table) if pd.api.types.is_numeric_dtype(table[c])]
        if score not in numeric:
            raise DataError(f"unknown numeric score {score!r}; available: {numeric}", column="score")
        vals = table[score].to_numpy(dtype=np.float64, na_value=np.nan)
        if min_score is not None:
            m &= vals >= min_score
        if max_score is not None:
            m &= vals <= max_score
    m &= _feedback_points_mask(table, detractor=detractor, open_complaints=open_complaints, unhappy=unhappy,
                               min_points=min_points, points_expiring_within_days=points_expiring_within_days)
    if consent is not None:
        m &= consent_mask(table, consent)
    return m


def _flag(value, name: str) -> bool | None:
    if value is None or isinstance(value, (bool, np.bool_)):
        return value
    raise DataError(f"{name} must be true or false, got {value!r}", column=name)


def _feedback_points_mask(table: pd.DataFrame, *, detractor, open_complaints, unhappy, min_points,
                          points_expiring_within_days) -> np.ndarray:
    m = np.ones(len(table), dtype=bool)
    detractor, open_complaints, unhappy = (_flag(detractor, "detractor"), _flag(open_complaints, "open_complaints"),
                                           _flag(unhappy, "unhappy"))
    _bound(min_points, "min_points")
    _bound(points_expiring_within_days, "points_expiring_within_days")
    if points_expiring_within_days is not None and points_expiring_within_days < 0:
        raise DataError(f"points_expiring_within_days must be >= 0, got {points_expiring_within_days}",
                        column="points_expiring_within_days")

    def flag_col() -> np.ndarray:
        _need(table, "detractor", "a detractor filter (train with a feedback table: --feedback)")
        return table["detractor"].astype("boolean").fillna(False).to_numpy(dtype=bool)

    def open_col() -> np.ndarray:
        _need(table, "open_complaints", "a complaints filter (train with a feedback table: --feedback)")
        return table["open_complaints"].to_numpy(np.float64, na_value=0.0) >= 1

    if detractor is not None:
        m &= flag_col() == detractor
    if open_complaints is not None:
        m &= open_col() == open_complaints
    if unhappy is not None:
        m &= (flag_col() | open_col()) == unhappy
    if min_points is not None:
        _need(table, "points_balance", "a points filter (train with a points ledger: --points)")
        m &= table["points_balance"].to_numpy(np.float64, na_value=np.nan) >= min_points
    if points_expiring_within_days is not None:
        _need(table, "points_next_expiry_days", "an expiring-points filter (train with a points ledger: --points)")
        d = table["points_next_expiry_days"].to_numpy(np.float64, na_value=np.nan)
        m &= (d >= 0) & (d <= points_expiring_within_days)
    return m


def service_recovery(table: pd.DataFrame | None, *, consent: str, min_clv: float | None = None,
                     tiers: Iterable[str] | None = None, value_share: float | None = 0.2,
                     fields: Sequence[str] | None = None, **filters) -> pd.DataFrame:
    """The service-recovery list: unhappy customers (detractor or an open complaint) among the high-value
    ones, who consented to ``consent``; open complaints first, then by CLV (or spend), highest first.

    High value: ``min_clv`` and / or ``tiers`` when given, else the top ``value_share`` of the table by CLV
    (spend without CLV); ``value_share=None`` keeps every value. ``filters`` are more audience filters.
    Carries ``customer_id`` and ``fields`` (default :data:`SERVICE_RECOVERY_FIELDS` the table has): no
    personal attributes, no consent flags.
    """
    if table is None:
        raise BundleError("this bundle has no 'customers' table")
    if value_share is not None and not (0 < value_share <= 1):
        raise DataError(f"value_share must be in (0, 1], got {value_share}", column="value_share")
    m = audience_mask(table, consent=consent, unhappy=True, min_clv=min_clv, tiers=tiers, **filters)
    value_col = "clv" if "clv" in table.columns and table["clv"].notna().any() else "monetary"
    _need(table, value_col, "ranking customers by value")
    value = table[value_col].to_numpy(np.float64, na_value=np.nan)
    if min_clv is None and not tiers and value_share is not None:
        cut = np.nanquantile(value, 1.0 - value_share) if np.isfinite(value).any() else np.inf
        m &= value >= cut
    available = audience_columns(table)
    fields = list(fields) if fields else [c for c in SERVICE_RECOVERY_FIELDS if c in available]
    bad = [f for f in fields if f not in available]
    if bad:
        raise DataError(f"unknown audience field(s) {bad}; available: {available}", column="fields")
    out = table.loc[m, ["customer_id", *fields]].copy()
    opened = table.loc[m, "open_complaints"].to_numpy(np.float64, na_value=0.0) if "open_complaints" in table \
        else np.zeros(int(m.sum()))
    out["_open"], out["_value"] = opened, np.nan_to_num(value[m], nan=-np.inf)
    out = out.sort_values(["_open", "_value", "customer_id"], ascending=[False, False, True], kind="stable")
    return out.drop(columns=["_open", "_value"]).reset_index(drop=True)


def audience_columns(table: pd.DataFrame | None) -> list[str]:
    """Columns a list may carry besides ``customer_id``: numeric scores and labels, never personal
    attributes or consent flags."""
    if table is None:
        return []
    out = []
    for c in table.columns:
        if c == "customer_id" or c.startswith("consent_") or c in PERSONAL_COLUMNS:
            continue
        numeric = pd.api.types.is_numeric_dtype(table[c]) and not pd.api.types.is_bool_dtype(table[c])
        if numeric or c in LABEL_COLUMNS:
            out.append(c)
    return out


def default_fields(table: pd.DataFrame | None) -> list[str]:
    available = set(audience_columns(table))
    return [c for c in DEFAULT_AUDIENCE_FIELDS if c in available]


def select_audience(table: pd.DataFrame | None, *, personal: bool = True, **filters) -> pd.DataFrame:
    """Rows of ``table`` (one per customer) passing every filter of :func:`audience_mask`, by customer id.

    With ``personal=False`` only ``customer_id`` and :func:`audience_columns`
    are kept (what an export file may hold).
    """
    if table is None:
        raise BundleError("this bundle has no 'customers' table")
    out = table.loc[audience_mask(table, **filters)]
    if not personal:
        out = out[["customer_id", *audience_columns(out)]]
    if "customer_id" in out.columns:
        out = out.sort_values("customer_id", kind="stable")
    return out.reset_index(drop=True)


def audience_page(table: pd.DataFrame, *, consent: str, fields: Sequence[str] | None = None,
                  cursor: str | None = None, limit: int = 10_000, **filters) -> tuple[pd.DataFrame, str | None]:
    """One page of an audience of ``table`` (sorted by customer_id): (frame[customer_id, fields...], next cursor).

    ``consent`` is required: an export always goes to a channel. ``cursor`` is
    the last customer_id of the previous page.
    """
    available = audience_columns(table)
    fields = list(fields) if fields else default_fields(table)
    bad = [f for f in fields if f not in available]
    if bad:
        raise DataError(f"unknown audience field(s) {bad}; available: {available}", column="fields")
    mask = audience_mask(table, consent=consent, **filters)
    return page_of(table[["customer_id", *fields]], mask, cursor=cursor, limit=limit)


def page_of(frame: pd.DataFrame, mask: np.ndarray | None = None, *, cursor: str | None = None,
            limit: int = 10_000) -> tuple[pd.DataFrame, str | None]:
    """The rows of ``frame`` (sorted by ``customer_id``) where ``mask`` holds, after ``cursor``, at most
    ``limit``: (page, the next cursor or None). Exports page stably: a customer appears on exactly one page."""
    if limit < 1:
        raise PersonalizeError(f"limit must be at least 1, got {limit}")
    mask = np.ones(len(frame), bool) if mask is None else np.asarray(mask, bool).copy()
    if cursor is not None:
        start = int(np.searchsorted(frame["customer_id"].to_numpy(dtype=str), cursor, side="right"))
        mask[:start] = False
    pos = np.flatnonzero(mask)
    out = frame.iloc[pos[:limit]].reset_index(drop=True)
    next_cursor = str(out["customer_id"].iloc[-1]) if pos.size > limit and len(out) else None
    return out, next_cursor
