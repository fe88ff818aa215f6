"""The coupon plan's profit vs budget curve (PNG)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from personalize._plots import new_figure, save_figure

__all__ = ["plot_profit_curve"]


def plot_profit_curve(curve: Sequence[dict], path: str | os.PathLike, *, budget: float | None = None) -> Path:
    """Expected incremental profit of the optimal plan at each budget (``curve`` rows of
    :meth:`~personalize.runtime.offers.OfferDesk.plan`); the chosen budget marked."""
    fig = new_figure(6.5, 4.0)
    ax = fig.add_subplot(1, 1, 1)
    xs = [r["budget"] for r in curve]
    ax.plot(xs, [r["expected_incremental_profit"] for r in curve], marker="o", ms=3, label="optimal plan")
    if budget is not None:
        ax.axvline(budget, color="grey", ls="--", lw=1, label=f"budget {budget:,.0f}")
    ax.set_xlabel("budget (total expected coupon cost)")
    ax.set_ylabel("expected incremental profit")
    ax.set_title("Coupon plan: profit vs budget")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return save_figure(fig, path)
