"""PNG plots of satisfaction, complaints, drivers and points activity (Agg canvas, atomic writes)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from personalize._plots import new_figure, save_figure
from personalize.errors import DataError

__all__ = ["plot_scores_over_time", "plot_scores_by", "plot_complaints", "plot_drivers", "plot_points_activity"]


def _need(df: pd.DataFrame, cols: tuple[str, ...], what: str) -> None:
    for c in cols:
        if c not in df.columns:
            raise DataError("column is missing", table=what, column=c)


def _errbar(ax, x, v, lo, hi, **kw) -> None:
    v = np.asarray(v, dtype=np.float64)
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    ok = np.isfinite(v)
    yerr = np.clip(np.vstack([np.where(ok, v - lo, 0.0), np.where(ok, hi - v, 0.0)]), 0.0, None)
    ax.errorbar(np.asarray(x)[ok], v[ok], yerr=np.nan_to_num(yerr[:, ok]), capsize=3, marker="o", **kw)


def plot_scores_over_time(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """NPS (with its interval) and CSAT (% satisfied, with its interval) per month (``satisfaction_table(by="month")``)."""
    _need(table, ("group", "nps", "nps_low", "nps_high", "csat", "csat_low", "csat_high"), "satisfaction")
    fig = new_figure(max(7.0, 0.5 * len(table) + 3), 6.0)
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    x = np.arange(len(table))
    _errbar(ax1, x, table["nps"], table["nps_low"], table["nps_high"], color="#4c72b0")
    ax1.axhline(0, color="grey", lw=0.8)
    ax1.set_ylabel("NPS")
    _errbar(ax2, x, table["csat"], table["csat_low"], table["csat_high"], color="#55a868")
    ax2.set_ylabel("CSAT (% satisfied)")
    ax2.set_xticks(x, table["group"].astype(str).tolist(), rotation=45, ha="right")
    for xi, small in zip(x, table.get("small", pd.Series(False, index=table.index)).tolist()):
        if small:
            ax1.annotate("few", (xi, ax1.get_ylim()[0]), ha="center", va="bottom", fontsize=7, color="grey")
    fig.suptitle("Satisfaction by month (95 % intervals)")
    return save_figure(fig, path)


def plot_scores_by(table: pd.DataFrame, path: str | os.PathLike, *, title: str | None = None) -> Path:
    """NPS per group with its interval (bars) and the number of answers (``satisfaction_table(by=...)``)."""
    _need(table, ("group", "nps", "nps_low", "nps_high", "responses"), "satisfaction")
    t = table.reset_index(drop=True)
    fig = new_figure(max(7.0, 0.7 * len(t) + 3), 4.5)
    ax = fig.subplots()
    x = np.arange(len(t))
    v = t["nps"].to_numpy(dtype=np.float64, na_value=np.nan)
    colors = ["#c44e52" if s else "#4c72b0" for s in t.get("small", pd.Series(False, index=t.index)).tolist()]
    ax.bar(x, np.nan_to_num(v), color=colors)
    _errbar(ax, x, v, t["nps_low"].to_numpy(dtype=np.float64, na_value=np.nan),
            t["nps_high"].to_numpy(dtype=np.float64, na_value=np.nan), color="black", linestyle="none")
    for xi, n in zip(x, t["responses"].tolist()):
        ax.annotate(f"n={int(n)}", (xi, ax.get_ylim()[0]), ha="center", va="bottom", fontsize=7)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xticks(x, t["group"].astype(str).tolist(), rotation=30, ha="right")
    ax.set_ylabel("NPS")
    ax.set_title(title or f"NPS by {table.attrs.get('by', 'group')} (red: fewer answers than the minimum)")
    return save_figure(fig, path)


def plot_complaints(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Complaints per 1,000 orders and the median days to resolution per month (``complaint_table(by="month")``)."""
    _need(table, ("group", "per_1000_orders", "median_days_to_resolve"), "complaints")
    fig = new_figure(max(7.0, 0.5 * len(table) + 3), 5.5)
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    x = np.arange(len(table))
    ax1.bar(x, table["per_1000_orders"].astype(float).fillna(0.0).to_numpy(), color="#dd8452")
    ax1.set_ylabel("complaints per 1,000 orders")
    ax2.plot(x, table["median_days_to_resolve"].astype(float).to_numpy(), marker="o", color="#8172b3")
    ax2.set_ylabel("median days to resolve")
    ax2.set_xticks(x, table["group"].astype(str).tolist(), rotation=45, ha="right")
    fig.suptitle("Complaints and resolution time by month")
    return save_figure(fig, path)


def plot_drivers(drivers: pd.DataFrame, path: str | os.PathLike, *, top: int = 15) -> Path:
    """The groups with the highest share of detractor answers, relative to the overall share (lift)."""
    _need(drivers, ("dimension", "value", "lift", "responses"), "drivers")
    d = drivers.dropna(subset=["lift"]).sort_values("lift", ascending=False).head(top).iloc[::-1]
    fig = new_figure(8.0, max(3.0, 0.35 * len(d) + 1.5))
    ax = fig.subplots()
    y = np.arange(len(d))
    ax.barh(y, d["lift"].to_numpy(dtype=np.float64), color="#c44e52")
    ax.axvline(1.0, color="grey", lw=0.8)
    ax.set_yticks(y, [f"{a}: {b} (n={int(n)})" for a, b, n in zip(d["dimension"], d["value"], d["responses"])])
    ax.set_xlabel("share of detractor answers / overall share")
    ax.set_title("What goes with low scores")
    return save_figure(fig, path)


def plot_points_activity(activity: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Points earned, redeemed and expired per period, and the outstanding balance (``points_activity``)."""
    _need(activity, ("period", "earned", "redeemed", "expired", "balance_end"), "points activity")
    fig = new_figure(max(7.0, 0.5 * len(activity) + 3), 5.5)
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    x = np.arange(len(activity))
    w = 0.28
    ax1.bar(x - w, activity["earned"].to_numpy(), w, label="earned", color="#55a868")
    ax1.bar(x, activity["redeemed"].to_numpy(), w, label="redeemed", color="#4c72b0")
    ax1.bar(x + w, activity["expired"].to_numpy(), w, label="expired", color="#c44e52")
    ax1.legend(loc="upper left")
    ax1.set_ylabel("points")
    ax2.plot(x, activity["balance_end"].to_numpy(), marker="o", color="black")
    ax2.set_ylabel("outstanding at period end")
    ax2.set_xticks(x, activity["period"].astype(str).tolist(), rotation=45, ha="right")
    fig.suptitle("Loyalty points per period")
    return save_figure(fig, path)
