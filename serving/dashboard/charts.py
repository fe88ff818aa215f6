"""The dashboard's charts: matplotlib figures drawn server-side (``personalize._plots``, Agg, no pyplot state)
and embedded in the page as SVG data URIs, so the page needs no script, no CDN and no second request."""

from __future__ import annotations

import base64
import threading
from collections.abc import Sequence

import numpy as np
import pandas as pd

from personalize._plots import figure_bytes, new_figure

_LOCK = threading.Lock()   # matplotlib's font and text caches are process-wide: draw one figure at a time
_BLUE, _RED, _GREY = "#3b6ea5", "#c44e52", "#8c8c8c"
_STAGE_COLOURS = {"new": "#6aa84f", "active": "#3b6ea5", "at-risk": "#e69138", "lapsed": "#c44e52",
                  "churned": "#8c8c8c"}


def _uri(fig) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(figure_bytes(fig, "svg")).decode()


def _style(ax, title: str) -> None:
    ax.set_title(title, fontsize=10, loc="left")
    ax.spines[["top", "right"]].set_visible(False)
    ax.tick_params(labelsize=8)
    ax.grid(axis="x", alpha=0.3)


def segments_chart(segments: pd.DataFrame) -> str:
    with _LOCK:
        fig = new_figure(7.5, 3.2)
        names = list(segments.index)[::-1]
        ax = fig.add_subplot(1, 2, 1)
        ax.barh(names, segments["customers"].to_numpy()[::-1], color=_BLUE)
        _style(ax, "customers per segment")
        if "revenue_share" in segments:
            ax2 = fig.add_subplot(1, 2, 2, sharey=ax)
            ax2.barh(names, 100 * segments["revenue_share"].fillna(0).to_numpy()[::-1], color=_RED)
            _style(ax2, "share of revenue (%)")
            ax2.tick_params(labelleft=False)
        fig.tight_layout()
        return _uri(fig)


def lifecycle_tier_chart(cross: pd.DataFrame) -> str:
    with _LOCK:
        fig = new_figure(5.0, 3.0)
        ax = fig.add_subplot(1, 1, 1)
        bottom = np.zeros(len(cross.columns))
        for stage, row in cross.iterrows():
            vals = row.to_numpy(dtype=float)
            ax.bar([str(c) for c in cross.columns], vals, bottom=bottom, label=str(stage),
                   color=_STAGE_COLOURS.get(str(stage), _GREY))
            bottom += vals
        _style(ax, "lifecycle stage by tier (customers)")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7, frameon=False, ncols=1, loc="upper right")
        fig.tight_layout()
        return _uri(fig)


def churn_chart(hist: pd.DataFrame) -> str:
    with _LOCK:
        fig = new_figure(5.0, 3.0)
        ax = fig.add_subplot(1, 1, 1)
        width = (hist["high"] - hist["low"]).to_numpy()
        colours = [_RED if lo >= 0.7 else (_BLUE if lo < 0.3 else "#e69138") for lo in hist["low"]]
        ax.bar(hist["low"].to_numpy(), hist["customers"].to_numpy(), width=width * 0.95, align="edge",
               color=colours)
        ax.set_xlim(0, 1)
        ax.set_xlabel("probability of no purchase in the horizon", fontsize=8)
        _style(ax, "churn risk (customers)")
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        return _uri(fig)


def clv_tier_chart(clv: pd.DataFrame) -> str:
    with _LOCK:
        fig = new_figure(5.0, 3.0)
        ax = fig.add_subplot(1, 1, 1)
        ax.bar([str(t) for t in clv.index], clv["mean_clv"].fillna(0).to_numpy(), color=_BLUE)
        _style(ax, "mean predicted CLV per customer, by tier")
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        return _uri(fig)


def readout_chart(arms: Sequence[dict], outcome: str) -> str:
    """Each arm's rate with its 95 % interval (the control arm grey)."""
    with _LOCK:
        fig = new_figure(6.0, 0.45 * len(arms) + 1.0)
        ax = fig.add_subplot(1, 1, 1)
        for i, a in enumerate(arms):
            r = a["rate"]
            lo, hi = r.get("low"), r.get("high")
            err = None if lo is None or hi is None else [[r["value"] - lo], [hi - r["value"]]]
            ax.errorbar([r["value"]], [i], xerr=err, fmt="o", capsize=3, color=_GREY if a.get("control") else _BLUE)
        ax.set_yticks(range(len(arms)), [str(a["arm"]) for a in arms])
        ax.invert_yaxis()
        _style(ax, f"{outcome} rate per arm, 95% interval")
        fig.tight_layout()
        return _uri(fig)


def coupon_curve_chart(curve: Sequence[dict], budget: float | None) -> str:
    with _LOCK:
        fig = new_figure(6.0, 3.0)
        ax = fig.add_subplot(1, 1, 1)
        ax.plot([c["budget"] for c in curve], [c["expected_incremental_profit"] for c in curve], marker="o", ms=3,
                color=_BLUE)
        if budget is not None:
            ax.axvline(budget, color=_GREY, ls="--", lw=1)
        ax.set_xlabel("budget (total expected coupon cost)", fontsize=8)
        _style(ax, "expected incremental profit of the best plan at each budget")
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        return _uri(fig)
