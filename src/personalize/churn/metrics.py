"""Metrics of a binary score (churn, propensity, acceptance): AUC, PR-AUC, log loss, Brier, calibration, lift."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from personalize import _sets
from personalize.errors import DataError

__all__ = ["binary_metrics", "calibration_table", "lift_table"]


def _check(y, s) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=np.float64).ravel()
    s = np.asarray(s, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise DataError(f"{len(y)} labels but {len(s)} scores")
    if len(y) == 0:
        raise DataError("nothing to evaluate: no rows")
    return y, s


def binary_metrics(y, score, *, probability: bool = True) -> dict:
    """AUC, PR-AUC (average precision), and for probabilities log loss and Brier score.

    AUC is None when only one class is present.
    """
    y, s = _check(y, score)
    both = _sets.unique(y).size == 2
    out = {
        "auc": float(roc_auc_score(y, s)) if both else None,
        "pr_auc": float(average_precision_score(y, s)) if both else None,
        "log_loss": None, "brier": None,
    }
    if probability:
        p = np.clip(s, 1e-12, 1 - 1e-12)
        out["log_loss"] = float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))
        out["brier"] = float(np.mean((s - y) ** 2))
    return out


def calibration_table(y, p, *, n_bins: int = 10, strategy: str = "quantile") -> pd.DataFrame:
    """Mean predicted vs observed rate per bin (``quantile`` or ``uniform`` bins).

    ``attrs["ece"]`` holds the expected calibration error (count-weighted
    mean |observed - predicted|).
    """
    y, p = _check(y, p)
    if strategy == "quantile":
        edges = _sets.unique(np.quantile(p, np.linspace(0, 1, n_bins + 1)))
    elif strategy == "uniform":
        edges = np.linspace(0, 1, n_bins + 1)
    else:
        raise DataError(f"strategy must be quantile or uniform, got {strategy!r}")
    b = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, max(len(edges) - 2, 0))
    cnt = np.bincount(b, minlength=len(edges) - 1)
    keep = cnt > 0
    pred = np.bincount(b, weights=p, minlength=len(cnt))[keep] / cnt[keep]
    obs = np.bincount(b, weights=y, minlength=len(cnt))[keep] / cnt[keep]
    df = pd.DataFrame({"bin": np.flatnonzero(keep), "lower": edges[:-1][keep], "upper": edges[1:][keep],
                       "customers": cnt[keep], "predicted": pred, "observed": obs})
    df.attrs["ece"] = float(np.sum(cnt[keep] * np.abs(obs - pred)) / cnt.sum())
    return df


def lift_table(y, score, *, n_bins: int = 10) -> pd.DataFrame:
    """Lift and cumulative gains by score decile (decile 1 = highest scores)."""
    y, s = _check(y, score)
    order = np.argsort(-s, kind="stable")
    ys = y[order]
    n = len(ys)
    bins = np.minimum((np.arange(n) * n_bins) // n, n_bins - 1)
    cnt = np.bincount(bins, minlength=n_bins)
    pos = np.bincount(bins, weights=ys, minlength=n_bins)
    base = y.mean() if n else 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = pos / cnt
        df = pd.DataFrame({
            "decile": np.arange(1, n_bins + 1), "customers": cnt, "positives": pos.astype(np.int64),
            "rate": rate, "lift": rate / base if base > 0 else np.nan,
            "cumulative_share_customers": np.cumsum(cnt) / n,
            "cumulative_gain": np.cumsum(pos) / max(ys.sum(), 1.0),
        })
    return df[df["customers"] > 0].reset_index(drop=True)
