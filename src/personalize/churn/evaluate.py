"""Evaluation of churn / propensity models: metrics, calibration, lift, baselines, cross-validation.

:func:`evaluate_churn` is the evaluation-mode protocol behind
``personalize churn evaluate``: one snapshot at the cutoff (features strictly
before it, label = no purchase in the following horizon), customers split
into ``folds`` customer-level folds; each fold is scored by a
:class:`~personalize.churn.model.ChurnModel` trained on the other folds
(whose own early-stopping / calibration fold is a random part of the
training customers). Metrics pool the out-of-fold predictions. Baselines are
scored on the same customers:

* ``recency``: days since the last purchase;
* ``bgnbd_expected``: minus the BG/NBD expected purchases over the horizon;
* ``bgnbd_alive``: 1 - BG/NBD P(alive) (note: BG/NBD gives one-time buyers
  P(alive) = 1, so this score ranks them as least likely to churn).

BG/NBD is fitted (unsupervised, no labels) on every customer at the cutoff.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from personalize import _sets
from personalize.churn.features import to_timestamp
from personalize.churn.metrics import binary_metrics, calibration_table, lift_table
from personalize.churn.model import ChurnModel
from personalize.churn.training_sets import cutoff_from_as_of, snapshot
from personalize.errors import DataError

if TYPE_CHECKING:
    from personalize.data import DateLike, History

__all__ = ["binary_metrics", "calibration_table", "lift_table", "ChurnEvaluation", "evaluate_churn",
           "baseline_scores"]


def baseline_scores(X: pd.DataFrame) -> dict[str, tuple[np.ndarray, bool]]:
    """Baseline churn scores from snapshot features: name -> (score, is_probability)."""
    out = {}
    if "recency_days" in X:
        out["recency"] = (X["recency_days"].to_numpy(np.float64), False)
    if "bgnbd_expected" in X and X["bgnbd_expected"].notna().all():
        out["bgnbd_expected"] = (-X["bgnbd_expected"].to_numpy(np.float64), False)
    if "bgnbd_p_alive" in X and X["bgnbd_p_alive"].notna().all():
        out["bgnbd_alive"] = (1.0 - X["bgnbd_p_alive"].to_numpy(np.float64), True)
    return out


@dataclass
class ChurnEvaluation:
    """Result of :func:`evaluate_churn`; ``to_dict()`` is what the CLI prints."""

    cutoff: pd.Timestamp
    horizon_days: float
    folds: int
    customer_id: np.ndarray
    y: np.ndarray
    oof: np.ndarray
    fold: np.ndarray
    model: dict
    baselines: dict
    per_fold_auc: list
    calibration: pd.DataFrame
    lift: pd.DataFrame
    importance: pd.DataFrame
    baseline_scores: dict = field(default_factory=dict)
    seconds: float = 0.0
    example_reasons: list = field(default_factory=list)

    def to_dict(self, *, details: bool = True) -> dict:
        d = {
            "model": self.model,
            "baselines": self.baselines,
            "customers": int(len(self.y)),
            "churn_rate": float(self.y.mean()),
            "cutoff": self.cutoff.isoformat(),
            "horizon_days": self.horizon_days,
            "folds": self.folds,
        }
        if details:
            d.update({
                "per_fold_auc": self.per_fold_auc,
                "calibration": {"ece": self.calibration.attrs.get("ece"),
                                "bins": self.calibration.to_dict(orient="records")},
                "lift": self.lift.to_dict(orient="records"),
                "importance": self.importance.head(15).to_dict(orient="records"),
                "example_reasons": self.example_reasons,
                "seconds": round(self.seconds, 2),
            })
        return d


def evaluate_churn(data: History, *, as_of: DateLike | None = None, cutoff: DateLike | None = None, horizon_days: float = 90.0,
                   folds: int = 5, random_state: int = 0, model_params: dict | None = None,
                   profiles: bool = False, progress=None) -> ChurnEvaluation:
    """Customer-level ``folds``-fold cross-validation of a ChurnModel at one cutoff.

    Give ``as_of`` (an inclusive date: features use data up to and including
    that day) or ``cutoff`` (exclusive). The label window
    ``[cutoff, cutoff + horizon_days)`` must lie inside the data.
    """
    t0 = time.perf_counter()
    if (as_of is None) == (cutoff is None):
        raise DataError("give exactly one of as_of (inclusive date) or cutoff")
    if int(folds) < 2:
        raise DataError(f"folds must be >= 2, got {folds}")
    cut = cutoff_from_as_of(as_of) if as_of is not None else to_timestamp(cutoff, "cutoff")
    ts = snapshot(data, cut, horizon_days=horizon_days, profiles=profiles)
    y = ts.y.astype(np.float64)
    n = len(y)
    if n < 10 * folds:
        raise DataError(f"only {n} eligible customers before {cut.date()}: too few for {folds} folds")
    if _sets.unique(y).size < 2:
        raise DataError(f"every eligible customer has the same label ({int(y[0])}) at cutoff {cut.date()}")
    rng = np.random.default_rng(random_state)
    fold = rng.permutation(np.arange(n) % int(folds))
    oof = np.zeros(n)
    per_fold, imps, reasons = [], [], []
    params = dict(model_params or {})
    params.setdefault("random_state", random_state)
    for k in range(int(folds)):
        te, tr = np.flatnonzero(fold == k), np.flatnonzero(fold != k)
        m = ChurnModel(**params).fit(ts.subset(tr))
        oof[te] = m.predict_probability(ts.X.iloc[te])
        per_fold.append(binary_metrics(y[te], oof[te])["auc"])
        imps.append(m.feature_importance().set_index("feature")["gain"])
        if k == 0:
            top = te[np.argsort(-oof[te])[:3]]
            for i, rs in zip(top, m.explain(ts.X.iloc[top], n=3)):
                reasons.append({"customer_id": str(ts.customer_id[i]), "probability": float(oof[i]),
                                "reasons": [r["reason"] for r in rs]})
        if progress is not None:
            progress(k + 1, int(folds))
    model_metrics = binary_metrics(y, oof)
    bases = baseline_scores(ts.X)
    base_metrics = {name: binary_metrics(y, s, probability=prob) for name, (s, prob) in bases.items()}
    imp = pd.concat(imps, axis=1).mean(axis=1).sort_values(ascending=False)
    importance = pd.DataFrame({"feature": imp.index, "gain": imp.to_numpy()})
    return ChurnEvaluation(
        cutoff=cut, horizon_days=float(horizon_days), folds=int(folds), customer_id=ts.customer_id, y=y,
        oof=oof, fold=fold, model=model_metrics, baselines=base_metrics, per_fold_auc=per_fold,
        calibration=calibration_table(y, oof), lift=lift_table(y, oof), importance=importance,
        baseline_scores={k: v[0] for k, v in bases.items()}, seconds=time.perf_counter() - t0,
        example_reasons=reasons)
