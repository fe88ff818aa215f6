"""Churn risk and purchase propensity: point-in-time training sets, calibrated LightGBM models,
per-customer reasons, evaluation against baselines.

    from personalize.churn import snapshot, training_set, production_cutoffs, scoring_set, ChurnModel
    train = training_set(ds, production_cutoffs(ds, horizon_days=90), horizon_days=90)
    model = ChurnModel().fit(train)
    today = scoring_set(ds, horizon_days=90)
    model.score(today, reasons=3)   # customer_id, probability, band, reasons
"""

from personalize.churn.evaluate import (ChurnEvaluation, binary_metrics, calibration_table, evaluate_churn,
                                        lift_table)
from personalize.churn.features import DEFAULT_WINDOWS, churn_features
from personalize.churn.model import ChurnModel, PropensityModel, load_model
from personalize.churn.scoring import churn_table, train_churn_model
from personalize.churn.training_sets import (PurchaseTarget, TrainingSet, cutoff_from_as_of, data_end,
                                             production_cutoffs, scoring_set, snapshot, training_set)

__all__ = [
    "ChurnModel", "PropensityModel", "load_model", "PurchaseTarget", "TrainingSet", "snapshot", "training_set",
    "production_cutoffs", "scoring_set", "cutoff_from_as_of", "data_end", "churn_features", "DEFAULT_WINDOWS",
    "evaluate_churn", "churn_table", "train_churn_model", "ChurnEvaluation", "binary_metrics", "calibration_table",
    "lift_table",
]
