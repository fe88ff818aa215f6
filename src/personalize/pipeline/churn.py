"""Churn in production mode: train on the latest closed label windows, score everyone as of the data's end.

The model is trained on the latest cutoffs whose label window
(``horizon_days``) has closed and every customer is scored as of the end of
the data (midnight after the last transaction day, the same ``as_of`` as the
customer table). When the data is too short for a closed label window, or a
training fold lacks one of the classes, churn is skipped and the returned
info says why (``status`` ``"skipped"`` or ``"failed"`` plus ``reason``), so
the rest of a bundle still publishes.
"""

from __future__ import annotations

import logging
import warnings
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from personalize.churn import ChurnModel, churn_table, data_end, production_cutoffs, training_set
from personalize.errors import PersonalizeError

if TYPE_CHECKING:
    from personalize.data import Dataset

__all__ = ["train_churn", "default_churn_model", "DEFAULT_CHURN_HORIZON_DAYS", "DEFAULT_CHURN_CUTOFFS",
           "DEFAULT_CHURN_SPACING_DAYS"]

log = logging.getLogger(__name__)

DEFAULT_CHURN_HORIZON_DAYS = 90.0
DEFAULT_CHURN_CUTOFFS = 3
DEFAULT_CHURN_SPACING_DAYS = 30.0
CHURN_REASONS = 3
#: the churn model trains on at most this many (customer, cutoff) rows (a random sample of them)
MAX_TRAINING_ROWS = 600_000
#: from this many training rows up, LightGBM trains on every core
LARGE_TRAINING_ROWS = 200_000


def default_churn_model(n_rows: int, *, seed: int = 0):
    """The churn model ``personalize train`` publishes by default.

    ``min_child_samples`` is the model's default (200) from 4,000 training rows
    up and ``n_rows / 20`` (at least 5) below, so small shops still get a model
    that splits. One LightGBM thread below 200,000 rows: with per-round work this
    small, OpenMP threads on a shared machine cost more than they save (measured
    4x slower with 2 threads on 6,500 rows). From 200,000 rows up: every core (a
    million rows train about twice as fast on 2 threads as on 1) and a learning
    rate of 0.15 with 50 early-stopping rounds instead of 0.02 and 300 (the slow
    rate earns its rounds on small data; on this much data it ran 3,000 rounds
    for no measurable gain). Measured on 415,000 rows of a 200,000-customer
    synthetic history: rate 0.06 with 100 rounds stopped at 1,734 trees, AUC
    0.8621 and log loss 0.4561 on the latest cutoff, 136 s with scoring and
    reasons for every customer; rate 0.15 with 50 rounds, 603 trees, AUC 0.8619,
    log loss 0.4565, 64 s (the reasons' contributions cost in proportion to the
    trees).
    """
    if n_rows >= LARGE_TRAINING_ROWS:
        return ChurnModel(learning_rate=0.15, early_stopping_rounds=50, n_jobs=0, random_state=seed)
    return ChurnModel(min_child_samples=int(min(200, max(5, n_rows // 20))), n_jobs=1, random_state=seed)


def train_churn(dataset: Dataset, *, model: ChurnModel | None = None,
                horizon_days: float = DEFAULT_CHURN_HORIZON_DAYS, n_cutoffs: int = DEFAULT_CHURN_CUTOFFS,
                spacing_days: float = DEFAULT_CHURN_SPACING_DAYS, as_of=None, reasons: int = CHURN_REASONS,
                seed: int = 0, max_training_rows: int | None = MAX_TRAINING_ROWS
                ) -> tuple[ChurnModel | None, pd.DataFrame | None, dict]:
    """Production-mode churn: (fitted model or None, scores or None, info for the manifest).

    Trains on the latest ``n_cutoffs`` cutoffs whose label window has closed
    (a seeded sample of at most ``max_training_rows`` of their rows; None = all)
    and scores every customer as of ``as_of`` (default: the end of the data).
    Data problems (too short for a closed window, a fold with one class) are
    returned as ``{"status": "skipped", "reason": ...}``; any other failure as
    ``{"status": "failed", ...}`` -- never raised, so recommendations still publish.
    """
    base = {"horizon_days": float(horizon_days), "n_cutoffs": int(n_cutoffs), "spacing_days": float(spacing_days)}
    try:
        end = data_end(dataset) if as_of is None else pd.Timestamp(as_of)
        cuts = production_cutoffs(dataset, horizon_days=horizon_days, n_cutoffs=n_cutoffs,
                                  spacing_days=spacing_days, end=end)
        train = training_set(dataset, cuts, horizon_days=horizon_days, end=end)
        available = len(train)
        if max_training_rows is not None and available > max_training_rows:
            # a seeded random sample of the (customer, cutoff) rows: a churn model's quality levels off long
            # before millions of rows, its training time does not
            rng = np.random.default_rng(seed)
            train = train.subset(np.sort(rng.choice(available, int(max_training_rows), replace=False)))
        if model is None:
            model = default_churn_model(len(train), seed=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(train)
            scores = churn_table(dataset, model, as_of=end, horizon_days=horizon_days, reasons=reasons)
    except PersonalizeError as exc:
        return None, None, {"status": "skipped", "reason": str(exc), **base}
    except Exception as exc:  # noqa: BLE001 - a churn failure must not block publishing recommendations
        log.warning("churn model failed: %s: %s", type(exc).__name__, exc)
        return None, None, {"status": "failed", "reason": f"{type(exc).__name__}: {exc}", **base}
    info = {"status": "published", **base, "as_of": end.isoformat(),
            "training_cutoffs": [c.isoformat() for c in cuts], "training_rows": int(len(train)),
            "training_rows_available": int(available),
            "positive_rate": float(train.y.mean()), "customers_scored": int(len(scores)),
            "bands": [list(b) for b in model.bands_], "calibration": model.calibrator_.kind,
            "best_iteration": int(model.best_iteration_), "validation": model.validation_}
    return model, scores, info
