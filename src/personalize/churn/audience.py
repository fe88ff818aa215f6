"""Filter a bundle's customer table into a campaign list (churn risk, tier, segment, consent...)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from personalize.errors import BundleError, PersonalizeError

__all__ = ["select_audience", "CONSENT_CHANNELS"]

CONSENT_CHANNELS = ("email", "sms", "personalization")


def _flags(values: pd.Series) -> np.ndarray:
    """True only for explicit yes values (True, 1, "true", "yes", "y", "1"); missing = no consent."""
    def one(v) -> bool:
        if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
            return False
        if isinstance(v, (bool, np.bool_)):
            return bool(v)
        if isinstance(v, (int, float, np.integer, np.floating)):
            return v == 1
        return str(v).strip().lower() in ("true", "yes", "y", "1")
    return np.array([one(v) for v in values], dtype=bool)


def _need(table: pd.DataFrame, col: str, why: str) -> None:
    if col not in table.columns:
        raise PersonalizeError(f"the bundle's customer table has no '{col}' column, needed for {why}; "
                               f"available: {sorted(table.columns)[:20]}")


def select_audience(table: pd.DataFrame | None, *, min_churn_risk: float | None = None,
                    tiers: Iterable[str] | None = None, segments: Iterable[str] | None = None,
                    lifecycle: Iterable[str] | None = None, min_clv: float | None = None,
                    consent: str | None = None) -> pd.DataFrame:
    """Rows of ``table`` (one per customer) passing every filter, sorted by customer id.

    ``churn_risk`` comes from :func:`personalize.churn.churn_table` merged into
    the bundle's customer table. A filter on a column the table lacks is an
    error (never a silent empty list); ``consent`` keeps only explicit yes.
    """
    if table is None:
        raise BundleError("this bundle has no 'customers' table")
    if min_churn_risk is not None and not 0.0 <= min_churn_risk <= 1.0:
        raise PersonalizeError(f"--min-churn-risk must be between 0 and 1, got {min_churn_risk}")
    m = np.ones(len(table), dtype=bool)
    if min_churn_risk is not None:
        _need(table, "churn_risk", "--min-churn-risk (publish a bundle with the churn model)")
        m &= table["churn_risk"].to_numpy(np.float64) >= min_churn_risk   # NaN never passes
    for col, vals, opt in (("tier", tiers, "--tier"), ("segment", segments, "--segment"),
                           ("lifecycle", lifecycle, "--lifecycle")):
        if vals:
            _need(table, col, opt)
            m &= table[col].astype("object").isin(list(vals)).to_numpy()
    if min_clv is not None:
        _need(table, "clv", "--min-clv")
        m &= table["clv"].to_numpy(np.float64) >= min_clv
    if consent is not None:
        if consent not in CONSENT_CHANNELS:
            raise PersonalizeError(f"consent must be one of {', '.join(CONSENT_CHANNELS)}, got {consent!r}")
        col = f"consent_{consent}"
        m &= _flags(table[col]) if col in table.columns else np.zeros(len(table), dtype=bool)
    out = table.loc[m]
    if "customer_id" in out.columns:
        out = out.sort_values("customer_id", kind="stable")
    return out.reset_index(drop=True)
