"""The training pipeline: from a validated Dataset to a published bundle.

    from personalize.pipeline import train_bundle
    manifest = train_bundle(ds, store="models")   # validate, fit, precompute, publish; CURRENT points to it
"""

from personalize.pipeline.churn import default_churn_model, train_churn
from personalize.pipeline.train import default_recommender, train_bundle, validate_recommender, validation_window

__all__ = ["train_bundle", "train_churn", "default_recommender", "default_churn_model", "validate_recommender",
           "validation_window"]
