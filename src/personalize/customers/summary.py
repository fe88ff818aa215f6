"""What a customer table says in aggregate: segment sizes and value, lifecycle and tier mix, churn-risk
distribution, CLV by tier. Counts and sums only: nothing here lists a customer.

    from personalize.customers import customer_summary
    s = customer_summary(table)
    s.segments          # customers, share, revenue, revenue_share, mean_clv per RFM segment
    s.lifecycle_by_tier # customers per lifecycle stage (rows) and tier (columns)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from personalize.analytics.segments import LIFECYCLE_STAGES, SEGMENT_NAMES
from personalize.errors import MissingComponentError

__all__ = ["CustomerSummary", "customer_summary", "CHURN_BINS"]

#: edges of the churn-risk histogram (probabilities)
CHURN_BINS = tuple(np.round(np.linspace(0.0, 1.0, 11), 2))


@dataclass(frozen=True)
class CustomerSummary:
    customers: int
    revenue: float | None
    segments: pd.DataFrame | None            # index segment
    lifecycle: pd.Series | None              # customers per stage
    tiers: pd.Series | None                  # customers per tier, lowest tier first
    lifecycle_by_tier: pd.DataFrame | None   # stages x tiers
    churn_histogram: pd.DataFrame | None     # low, high, customers
    churn_bands: pd.Series | None            # customers per band
    churn_scored: int
    clv_by_tier: pd.DataFrame | None         # index tier: customers, mean_clv, total_clv (, mean_clv_simple)


def _ordered(values: pd.Series, known: tuple[str, ...]) -> list[str]:
    present = [str(v) for v in values.dropna().unique()]
    return [k for k in known if k in present] + sorted(v for v in present if v not in known)


def _tier_order(table: pd.DataFrame) -> list[str]:
    if "tier_level" in table.columns:
        levels = table[["tier", "tier_level"]].dropna().drop_duplicates("tier").sort_values("tier_level")
        order = [str(t) for t in levels["tier"]]
        return order + sorted(str(t) for t in table["tier"].dropna().unique() if str(t) not in order)
    return sorted(str(t) for t in table["tier"].dropna().unique())


def _num(table: pd.DataFrame, col: str) -> np.ndarray:
    return table[col].to_numpy(np.float64, na_value=np.nan)


def customer_summary(table: pd.DataFrame | None) -> CustomerSummary:
    """Aggregates of a customer table (the bundle's ``customers``); sections whose columns are absent are None."""
    if table is None:
        raise MissingComponentError("no customer table: nothing to summarise (publish a bundle with customers)")
    n = int(len(table))
    has = set(table.columns)
    revenue = float(np.nansum(_num(table, "monetary"))) if "monetary" in has else None

    segments = None
    if "segment" in has:
        g = table.groupby(table["segment"].astype("object"), dropna=True)
        segments = pd.DataFrame({"customers": g.size()})
        if "monetary" in has:
            segments["revenue"] = g["monetary"].sum()
        if "clv" in has:
            segments["mean_clv"] = g["clv"].mean()
        segments = segments.reindex(_ordered(table["segment"], SEGMENT_NAMES))
        segments["share"] = segments["customers"] / max(n, 1)
        if "revenue" in segments:
            total = segments["revenue"].sum()
            segments["revenue_share"] = segments["revenue"] / total if total else np.nan
        segments.index.name = "segment"

    lifecycle = tiers = cross = None
    if "lifecycle" in has:
        lifecycle = table["lifecycle"].astype("object").value_counts().reindex(
            _ordered(table["lifecycle"], LIFECYCLE_STAGES)).rename("customers")
    if "tier" in has:
        order = _tier_order(table)
        tiers = table["tier"].astype("object").value_counts().reindex(order).rename("customers")
        if "lifecycle" in has:
            cross = pd.crosstab(table["lifecycle"].astype("object"), table["tier"].astype("object")).reindex(
                index=lifecycle.index, columns=order, fill_value=0)

    hist = bands = None
    scored = 0
    if "churn_risk" in has:
        risk = _num(table, "churn_risk")
        risk = risk[np.isfinite(risk)]
        scored = int(risk.size)
        counts, edges = np.histogram(np.clip(risk, 0.0, 1.0), bins=np.asarray(CHURN_BINS))
        hist = pd.DataFrame({"low": edges[:-1], "high": edges[1:], "customers": counts.astype(int)})
        if "churn_band" in has:
            b = table["churn_band"].astype("object")
            b = b[b.notna() & (b.astype(str) != "")]
            bands = b.value_counts().reindex(_ordered(b, ("low", "medium", "high"))).rename("customers")

    clv = None
    if "tier" in has and "clv" in has:
        g = table.groupby(table["tier"].astype("object"))
        clv = pd.DataFrame({"customers": g.size(), "mean_clv": g["clv"].mean(), "total_clv": g["clv"].sum()})
        if "clv_simple" in has and table["clv_simple"].notna().any():
            clv["mean_clv_simple"] = g["clv_simple"].mean()
        clv = clv.reindex(tiers.index)
        clv.index.name = "tier"
    return CustomerSummary(customers=n, revenue=revenue, segments=segments, lifecycle=lifecycle, tiers=tiers,
                           lifecycle_by_tier=cross, churn_histogram=hist, churn_bands=bands, churn_scored=scored,
                           clv_by_tier=clv)
