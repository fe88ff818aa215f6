"""PNG plots of segments, tiers and the CLV holdout check (matplotlib, Agg canvas).

Figures are drawn on a ``FigureCanvasAgg`` directly (no pyplot state, no
display needed) and written atomically (temporary file, then ``os.replace``).
Each function returns the path written.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from personalize._plots import new_figure, save_figure
from personalize.analytics.segments import SEGMENT_NAMES
from personalize.errors import DataError

if TYPE_CHECKING:
    from personalize.data import DateLike

__all__ = ["plot_group_sizes", "plot_segments", "plot_tiers", "plot_clv_holdout", "plot_clv_validation"]


def plot_group_sizes(view: pd.DataFrame, column: str, path: str | os.PathLike, *,
                     value: str = "monetary", order: list[str] | None = None,
                     title: str | None = None) -> Path:
    """Bar charts of the number of customers and the total ``value`` per group of ``column``."""
    for col in (column, value):
        if col not in view.columns:
            raise DataError("column is missing", table="customer view", column=col)
    g = view.groupby(column, observed=True, sort=False)[value].agg(["size", "sum"])
    if order is not None:
        g = g.reindex([o for o in order if o in g.index] + [i for i in g.index if i not in order])
    else:
        g = g.sort_values("size", ascending=False)
    labels = [str(i) for i in g.index]
    fig = new_figure(max(6.0, 0.9 * len(labels) + 2), 6.5)
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    x = np.arange(len(labels))
    ax1.bar(x, g["size"].to_numpy(), color="#4c72b0")
    ax1.set_ylabel("customers")
    for xi, v in zip(x, g["size"].to_numpy()):
        ax1.annotate(f"{int(v):,}", (xi, v), ha="center", va="bottom", fontsize=8)
    ax2.bar(x, g["sum"].to_numpy(), color="#55a868")
    ax2.set_ylabel(f"total {value}")
    ax2.set_xticks(x, labels, rotation=30, ha="right")
    fig.suptitle(title or f"customers and {value} by {column}")
    return save_figure(fig, path)


def plot_segments(view: pd.DataFrame, path: str | os.PathLike, *, value: str = "monetary") -> Path:
    """Segment sizes and value (needs the ``segment`` column of ``customer_view``)."""
    return plot_group_sizes(view, "segment", path, value=value, order=list(SEGMENT_NAMES),
                            title="RFM segments: size and value")


def plot_tiers(view: pd.DataFrame, path: str | os.PathLike, *, value: str = "t12m_spend") -> Path:
    """Membership tier sizes and trailing spend, lowest tier first."""
    if "tier_level" in view.columns:
        order = (view[["tier", "tier_level"]].dropna().drop_duplicates()
                 .sort_values("tier_level")["tier"].astype(str).tolist())
    else:
        order = None
    return plot_group_sizes(view, "tier", path, value=value, order=order,
                            title="membership tiers: size and trailing spend")


def plot_clv_holdout(cumulative: pd.DataFrame, path: str | os.PathLike, *,
                     calibration_end: DateLike | None = None, time_unit: str = "W") -> Path:
    """Actual vs BG/NBD-predicted cumulative repeat purchases (figure 2 of the BG/NBD paper).

    ``cumulative`` comes from :func:`personalize.analytics.clv.cumulative_repeat_purchases`.
    """
    for col in ("time", "actual", "predicted"):
        if col not in cumulative.columns:
            raise DataError("column is missing", table="cumulative", column=col)
    fig = new_figure(8, 4.5)
    ax = fig.subplots()
    ax.plot(cumulative["time"], cumulative["actual"], color="black", label="actual")
    ax.plot(cumulative["time"], cumulative["predicted"], color="#c44e52", linestyle="--",
            label="BG/NBD")
    if calibration_end is not None and "date" in cumulative.columns:
        end = pd.Timestamp(calibration_end)
        before = cumulative.loc[cumulative["date"] <= end, "time"]
        if len(before):
            ax.axvline(float(before.iloc[-1]), color="grey", linestyle=":",
                       label="end of calibration")
    ax.set_xlabel(f"time ({time_unit})")
    ax.set_ylabel("cumulative repeat purchases")
    ax.legend(loc="upper left")
    ax.set_title("Tracking cumulative repeat purchases")
    return save_figure(fig, path)


def plot_clv_validation(cumulative: pd.DataFrame, holdout: dict | None, path: str | os.PathLike, *,
                        calibration_end: DateLike | None = None, time_unit: str = "W",
                        model: str = "BG/NBD") -> Path:
    """The two holdout checks of a purchase model side by side: cumulative repeat purchases over time
    (actual vs predicted, figure 2 of the BG/NBD paper) and the mean holdout purchases by calibration
    frequency (table 2 of the paper, from :func:`personalize.analytics.clv.holdout_comparison`).

    Without a ``holdout`` (no holdout period) only the first panel is drawn.
    """
    for col in ("time", "actual", "predicted"):
        if col not in cumulative.columns:
            raise DataError("column is missing", table="cumulative", column=col)
    fig = new_figure(13 if holdout else 8, 4.5)
    axes = fig.subplots(1, 2 if holdout else 1)
    ax = axes[0] if holdout else axes
    ax.plot(cumulative["time"], cumulative["actual"], color="black", label="actual")
    ax.plot(cumulative["time"], cumulative["predicted"], color="#c44e52", linestyle="--", label=model)
    if calibration_end is not None and "date" in cumulative.columns:
        before = cumulative.loc[cumulative["date"] <= pd.Timestamp(calibration_end), "time"]
        if len(before):
            ax.axvline(float(before.iloc[-1]), color="grey", linestyle=":", label="end of calibration")
    ax.set_xlabel(f"time ({time_unit})")
    ax.set_ylabel("cumulative repeat purchases")
    ax.legend(loc="upper left")
    ax.set_title("Tracking cumulative repeat purchases")
    if holdout:
        rows = holdout["by_frequency"]
        x = np.arange(len(rows))
        ax2 = axes[1]
        ax2.bar(x - 0.2, [r["actual_mean"] for r in rows], width=0.4, color="#4c72b0", label="actual")
        ax2.bar(x + 0.2, [r["predicted_mean"] for r in rows], width=0.4, color="#c44e52", label=model)
        ax2.set_xticks(x, [r["frequency"] for r in rows])
        ax2.set_xlabel("repeat purchases in the calibration period")
        ax2.set_ylabel("mean purchases in the holdout")
        ax2.set_title(f"Holdout: predicted {holdout['predicted_total']:.0f} vs actual "
                      f"{holdout['actual_total']:.0f} in all")
        ax2.legend(loc="upper left")
    return save_figure(fig, path)
