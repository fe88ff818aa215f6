"""Rates over time: active customers, retention and churn by month, repeat purchases, cohorts.

Definitions (calendar months of the transactions' timestamps):

* **active customers** of a month: customers with at least one kept purchase
  line in it; **new**: whose first purchase in the data falls in the month;
  **returning**: active but not new (``returning_share = returning / active``);
* **retention rate** of month m: the share of month m-1's active customers
  who are active again in month m; **churn rate** = 1 - retention rate.
  Undefined (missing) for the first month of the data;
* **repeat-purchase rate**: the share of customers with at least two orders
  (distinct ``order_id``; without order ids, distinct purchase times);
* **cohort retention matrix**: rows = month of each customer's first purchase,
  columns = months since (0, 1, ...), cells = share of the cohort active in
  that month. Cells the data cannot see yet (after its end) are missing.

Caveats a reader should know: the data's window censors both ends. A
customer who bought before the data starts counts as new in her first month
inside it, so the first months overstate new customers; and the last month is
usually partial, which understates its activity and overstates its churn. With
``complete_months=True`` (default) months not fully covered by the data's end
are dropped; ``end`` is the moment the data is known until (exclusive,
default: midnight after the last purchase).

Conversion rates of campaign arms over time come from the exposures
(:func:`campaign_conversion_over_time`), with Wilson intervals.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from personalize import _sets
from personalize._json import json_scalar
from personalize.analytics._frames import as_timestamp
from personalize._plots import new_figure, save_figure
from personalize.data.campaign import CampaignData
from personalize.data.dataset import Dataset
from personalize.errors import DataError

__all__ = ["monthly_activity", "cohort_counts", "cohort_retention", "repeat_purchase_rate",
           "repeat_purchase_by_cohort", "campaign_conversion_over_time", "plot_cohort_retention",
           "RetentionReport", "retention_report"]


@dataclass(frozen=True)
class _Months:
    codes: np.ndarray  # month index of every kept line (0 = first month)
    cust: np.ndarray  # customer code of every kept line
    months: pd.PeriodIndex  # every month from the first to the last kept one
    n_customers: int


def _prepare(ds: Dataset, *, end=None, complete_months: bool = True) -> _Months:
    if not isinstance(ds, Dataset):
        raise DataError(f"expected a Dataset, got {type(ds).__name__}")
    tx = ds.transactions
    if not len(tx):
        raise DataError("no transactions: nothing to count", table="transactions")
    ts = tx["timestamp"]
    stop = as_timestamp(end, "end") if end is not None else ts.iloc[-1].normalize() + pd.Timedelta(days=1)
    per = ts.dt.to_period("M")
    first_m, last_m = per.iloc[0], per.iloc[-1]
    keep = (ts < stop).to_numpy().copy()
    if complete_months:
        end_period = (stop - pd.Timedelta(1, "ns")).to_period("M")
        if (end_period + 1).start_time > stop:  # the month holding `stop` is not covered to its end
            end_period = end_period - 1
        last_m = min(last_m, end_period)
        keep &= (per <= last_m).to_numpy()
    if not keep.any() or last_m < first_m:
        raise DataError(f"no complete month of data (first purchase {ts.iloc[0]}, known until {stop}); "
                        "pass complete_months=False to count partial months", table="transactions")
    months = pd.period_range(first_m, last_m, freq="M")
    codes = _month_codes(ts, first_m)[keep]
    cust = np.asarray(ds.customer_idx)[keep].astype(np.int64)
    return _Months(codes=codes, cust=cust, months=months, n_customers=len(ds.customer_vocab))


def _month_codes(ts: pd.Series, first: pd.Period) -> np.ndarray:
    y = ts.dt.year.to_numpy(dtype=np.int64)
    m = ts.dt.month.to_numpy(dtype=np.int64)
    return (y - first.year) * 12 + (m - first.month)


def _pairs(mo: _Months) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unique (customer, month) activity pairs and each customer's first month."""
    M = len(mo.months)
    key = _sets.unique(mo.cust * M + mo.codes)
    c, m = key // M, key % M
    first = np.full(mo.n_customers, -1, dtype=np.int64)
    # keys are sorted by customer then month: the first key of each customer is her first month
    starts = np.r_[True, c[1:] != c[:-1]]
    first[c[starts]] = m[starts]
    return c, m, first


def monthly_activity(ds: Dataset, *, end=None, complete_months: bool = True) -> pd.DataFrame:
    """Active, new, returning and retained customers per month, with retention and churn rates.

    Index: ``month`` (pandas Period). ``retention_rate`` / ``churn_rate`` are
    missing for the first month (no previous month in the data) and for a
    month after one without active customers.
    """
    mo = _prepare(ds, end=end, complete_months=complete_months)
    c, m, first = _pairs(mo)
    M = len(mo.months)
    active = np.bincount(m, minlength=M)
    new = np.bincount(first[first >= 0], minlength=M)
    key = c * M + m
    retained_mask = (m > 0) & _sets.isin(key - 1, key)
    retained = np.bincount(m[retained_mask], minlength=M)
    prev = np.r_[0, active[:-1]]
    with np.errstate(invalid="ignore", divide="ignore"):
        retention = np.where(prev > 0, retained / np.maximum(prev, 1), np.nan)
    out = pd.DataFrame({
        "active_customers": active, "new_customers": new, "returning_customers": active - new,
        "retained_customers": retained, "retention_rate": retention, "churn_rate": 1.0 - retention,
        "returning_share": np.where(active > 0, (active - new) / np.maximum(active, 1), np.nan),
    }, index=pd.PeriodIndex(mo.months, name="month"))
    return out


def cohort_counts(ds: Dataset, *, end=None, complete_months: bool = True,
                  max_months: int | None = None) -> pd.DataFrame:
    """Active customers by first-purchase month (rows) and months since (columns 0, 1, ...).

    Cells after the data's last month are missing (not yet observable).
    """
    mo = _prepare(ds, end=end, complete_months=complete_months)
    c, m, first = _pairs(mo)
    M = len(mo.months)
    coh = first[c]
    age = m - coh
    width = M if max_months is None else min(M, int(max_months) + 1)
    if max_months is not None and int(max_months) < 0:
        raise DataError(f"max_months must be >= 0, got {max_months}")
    sel = age < width
    counts = np.zeros((M, width), dtype=np.float64)
    np.add.at(counts, (coh[sel], age[sel]), 1.0)
    observable = (np.arange(M)[:, None] + np.arange(width)[None, :]) < M
    counts[~observable] = np.nan
    out = pd.DataFrame(counts, index=pd.PeriodIndex(mo.months, name="cohort"),
                       columns=pd.RangeIndex(width, name="months_since"))
    return out[out[0] > 0]


def cohort_retention(ds: Dataset, *, end=None, complete_months: bool = True,
                     max_months: int | None = None) -> pd.DataFrame:
    """The cohort retention matrix: :func:`cohort_counts` divided by each cohort's size (column 0)."""
    counts = cohort_counts(ds, end=end, complete_months=complete_months, max_months=max_months)
    return counts.div(counts[0], axis=0)


def _orders(ds: Dataset) -> pd.DataFrame:
    tx = ds.transactions
    key = "order_id" if "order_id" in tx.columns and tx["order_id"].notna().all() else "timestamp"
    return pd.DataFrame({"c": np.asarray(ds.customer_idx, dtype=np.int64), "o": tx[key].to_numpy(),
                         "t": tx["timestamp"].to_numpy()}).drop_duplicates(["c", "o"])


def repeat_purchase_rate(ds: Dataset) -> dict:
    """Customers, those with two or more orders, and their share (the repeat-purchase rate)."""
    if not isinstance(ds, Dataset):
        raise DataError(f"expected a Dataset, got {type(ds).__name__}")
    if not len(ds.transactions):
        raise DataError("no transactions: nothing to count", table="transactions")
    n_orders = _orders(ds).groupby("c").size()
    customers = int(len(n_orders))
    repeat = int((n_orders >= 2).sum())
    key = "order_id" if "order_id" in ds.transactions.columns and ds.transactions["order_id"].notna().all() \
        else "purchase time"
    return {"customers": customers, "repeat_customers": repeat, "repeat_purchase_rate": repeat / customers,
            "orders_counted_by": key}


def repeat_purchase_by_cohort(ds: Dataset, *, end=None, complete_months: bool = True) -> pd.DataFrame:
    """Per first-purchase month: customers, those who ordered again (ever, within the data), and the rate."""
    mo = _prepare(ds, end=end, complete_months=complete_months)
    _, _, first = _pairs(mo)
    o = _orders(ds)
    first_t = mo.months[0]
    o = o[_month_codes(pd.Series(o["t"]), first_t) < len(mo.months)]
    n_orders = o.groupby("c").size()
    cust = n_orders.index.to_numpy()
    coh = first[cust]
    ok = coh >= 0
    df = pd.DataFrame({"cohort": coh[ok], "repeat": (n_orders.to_numpy() >= 2)[ok]})
    g = df.groupby("cohort")["repeat"].agg(["size", "sum"])
    out = pd.DataFrame({"customers": g["size"].to_numpy(), "repeat_customers": g["sum"].astype(int).to_numpy()},
                       index=pd.PeriodIndex(mo.months[g.index.to_numpy()], name="cohort"))
    out["repeat_purchase_rate"] = out["repeat_customers"] / out["customers"]
    return out


def campaign_conversion_over_time(data: Dataset | CampaignData, *, freq: str = "M", alpha: float = 0.05,
                                  by_campaign: bool = False) -> pd.DataFrame:
    """Exposures, conversions and conversion rate (Wilson interval) of each arm per period of exposure.

    ``data``: a Dataset with exposures or a CampaignData. Rows: ``period``,
    (``campaign_id``,) ``arm``, ``n``, ``conversions``, ``rate``, ``rate_low``,
    ``rate_high``.
    """
    from statsmodels.stats.proportion import proportion_confint

    if isinstance(data, CampaignData):
        camp = data
    elif isinstance(data, Dataset):
        if data.exposures is None or not len(data.exposures):
            raise DataError("the dataset has no exposures table", table="exposures")
        camp = CampaignData(data.exposures)
    else:
        raise DataError(f"expected a Dataset or CampaignData, got {type(data).__name__}")
    exp = camp.exposures
    if "converted" not in exp.columns:
        raise DataError("the exposures have no converted column", table="exposures", column="converted")
    try:
        period = exp["exposed_at"].dt.to_period(freq)
    except (ValueError, TypeError) as exc:
        raise DataError(f"freq {freq!r} is not a pandas period frequency ({exc})") from None
    keys = ["period"] + (["campaign_id"] if by_campaign and "campaign_id" in exp.columns else []) + ["arm"]
    df = pd.DataFrame({"period": period, "arm": camp.arms.to_numpy(), "converted": exp["converted"].to_numpy()})
    if "campaign_id" in keys:
        df["campaign_id"] = exp["campaign_id"].to_numpy()
    g = df.groupby(keys, sort=True)["converted"].agg(["size", "sum"]).reset_index()
    g = g.rename(columns={"size": "n", "sum": "conversions"})
    g["conversions"] = g["conversions"].astype(int)
    g["rate"] = g["conversions"] / g["n"]
    lo, hi = proportion_confint(g["conversions"].to_numpy(), g["n"].to_numpy(), alpha=alpha, method="wilson")
    g["rate_low"], g["rate_high"] = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
    return g


def plot_cohort_retention(shares: pd.DataFrame, path: str | os.PathLike, *, sizes: pd.Series | None = None,
                          title: str | None = None) -> Path:
    """Heatmap PNG of a cohort retention matrix (rows cohorts, columns months since; missing = unobserved)."""
    if not isinstance(shares, pd.DataFrame) or shares.empty:
        raise DataError("cohort retention matrix is empty: nothing to plot")
    vals = shares.to_numpy(dtype=np.float64)
    n_r, n_c = vals.shape
    fig = new_figure(max(6.0, 0.55 * n_c + 3.0), max(3.5, 0.38 * n_r + 1.8))
    ax = fig.subplots()
    shown = vals.copy()
    if n_c > 1:  # month 0 is 100 % by definition: colour the scale by the later months
        vmax = np.nanmax(shown[:, 1:]) if np.isfinite(shown[:, 1:]).any() else 1.0
    else:
        vmax = 1.0
    im = ax.imshow(np.ma.masked_invalid(shown), aspect="auto", cmap="YlGnBu", vmin=0.0, vmax=max(vmax, 1e-9))
    labels = [str(i) for i in shares.index]
    if sizes is not None:
        labels = [f"{lab} (n={int(sizes.get(i, 0)):,})" for lab, i in zip(labels, shares.index)]
    ax.set_yticks(np.arange(n_r), labels, fontsize=8)
    ax.set_xticks(np.arange(n_c), [str(c) for c in shares.columns], fontsize=8)
    ax.set_xlabel("months since first purchase")
    ax.set_ylabel("first-purchase month")
    if n_r * n_c <= 400:
        for i in range(n_r):
            for j in range(n_c):
                v = vals[i, j]
                if np.isfinite(v):
                    ax.text(j, i, f"{v:.0%}", ha="center", va="center", fontsize=7,
                            color="white" if v > 0.6 * max(vmax, 1e-9) else "black")
    fig.colorbar(im, ax=ax, label="share of cohort active")
    ax.set_title(title or "cohort retention: share of each first-purchase cohort active")
    return save_figure(fig, path)


def _records(df: pd.DataFrame, index: str) -> list[dict]:
    out = []
    for idx, row in df.iterrows():
        rec = {index: str(idx)}
        rec.update({str(k): json_scalar(v) for k, v in row.items()})
        out.append(rec)
    return out


@dataclass
class RetentionReport:
    """Everything ``personalize retention`` prints: monthly rates, cohorts, repeat purchases, campaign arms."""

    monthly: pd.DataFrame
    cohorts: pd.DataFrame  # shares
    cohort_sizes: pd.Series
    repeat: dict
    repeat_by_cohort: pd.DataFrame
    campaigns: pd.DataFrame | None
    complete_months: bool

    def to_dict(self) -> dict:
        return {
            "months": [str(m) for m in self.monthly.index], "complete_months_only": self.complete_months,
            "monthly": _records(self.monthly, "month"),
            "cohorts": {"cohorts": [str(c) for c in self.cohorts.index],
                        "months_since": [int(c) for c in self.cohorts.columns],
                        "sizes": [int(s) for s in self.cohort_sizes.to_numpy()],
                        "retention": [[json_scalar(v) for v in row] for row in self.cohorts.to_numpy()]},
            "repeat_purchase": dict(self.repeat), "repeat_purchase_by_cohort": _records(self.repeat_by_cohort,
                                                                                           "cohort"),
            "campaign_conversion": None if self.campaigns is None else [
                {k: (str(v) if k == "period" else json_scalar(v)) for k, v in r.items()}
                for r in self.campaigns.to_dict(orient="records")],
        }

    def __str__(self) -> str:
        m = self.monthly
        pct = lambda v: "    -" if pd.isna(v) else f"{v:6.1%}"  # noqa: E731
        lines = [f"{len(m)} months, {self.repeat['customers']:,} customers, repeat-purchase rate "
                 f"{self.repeat['repeat_purchase_rate']:.1%}"
                 + (" (complete months only)" if self.complete_months else ""),
                 f"{'month':<9}{'active':>8}{'new':>7}{'retained':>9}{'retention':>10}{'churn':>8}"]
        for idx, r in m.iterrows():
            lines.append(f"{str(idx):<9}{int(r['active_customers']):>8,}{int(r['new_customers']):>7,}"
                         f"{int(r['retained_customers']):>9,}{pct(r['retention_rate']):>10}{pct(r['churn_rate']):>8}")
        if len(self.cohorts.columns) > 1:
            lines.append("cohort retention, month 1 / 3 / 6 after the first purchase:")
            for idx, row in self.cohorts.iterrows():
                cells = [pct(row.get(k)) if k in row.index else "    -" for k in (1, 3, 6)]
                lines.append(f"  {str(idx):<9}n={int(self.cohort_sizes[idx]):>6,} " + " ".join(cells))
        if self.campaigns is not None and len(self.campaigns):
            lines.append("campaign conversion by month and arm:")
            for r in self.campaigns.itertuples():
                lines.append(f"  {r.period} {r.arm:<14}{r.n:>7,} {r.rate:6.1%} [{r.rate_low:.1%}, {r.rate_high:.1%}]")
        return "\n".join(lines)


def retention_report(ds: Dataset, *, end=None, complete_months: bool = True,
                     max_months: int | None = None) -> RetentionReport:
    """Monthly activity, cohort retention, repeat purchases and (with exposures) campaign conversion by month."""
    counts = cohort_counts(ds, end=end, complete_months=complete_months, max_months=max_months)
    campaigns = None
    if ds.exposures is not None and len(ds.exposures) and "converted" in ds.exposures.columns:
        campaigns = campaign_conversion_over_time(ds)
    return RetentionReport(
        monthly=monthly_activity(ds, end=end, complete_months=complete_months),
        cohorts=counts.div(counts[0], axis=0), cohort_sizes=counts[0].astype(int),
        repeat=repeat_purchase_rate(ds),
        repeat_by_cohort=repeat_purchase_by_cohort(ds, end=end, complete_months=complete_months),
        campaigns=campaigns, complete_months=complete_months)
