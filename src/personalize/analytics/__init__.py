"""Customer analytics: point-in-time profiles, RFM segments, lifecycle stages,
membership tiers, personas and customer lifetime value (simple, and BG/NBD or
MBG/NBD + Gamma-Gamma, with degenerate fits flagged).

Typical use::

    from personalize.analytics import customer_view, customer_record
    view = customer_view(ds, "2024-01-01")        # one row per customer
    customer_record(view, "C042")                 # dict for one customer

Customer lists (segment / tier / CLV / consent filters) are in :mod:`personalize.customers`.
"""

from personalize.analytics.clv import (PURCHASE_MODELS, TIME_UNITS, BGNBDModel, GammaGammaModel, MBGNBDModel,
                                       calibration_summary, compare_purchase_models, cumulative_repeat_purchases,
                                       discounted_clv, fit_diagnostics, holdout_comparison, holdout_table,
                                       simple_clv, summary_from_arrays)
from personalize.analytics.customers import customer_record, customer_view, fit_clv
from personalize.analytics.profiles import prepare_arrays, profiles
from personalize.analytics.segments import (DEFAULT_SEGMENT_RULES, DEFAULT_TIERS,
                                            LIFECYCLE_STAGES, SEGMENT_NAMES, LifecycleConfig,
                                            Personas, SegmentRule, Tier, TierConfig,
                                            assign_segments, lifecycle_stages, membership_tiers,
                                            rfm_scores)

__all__ = [
    "PURCHASE_MODELS", "TIME_UNITS", "BGNBDModel", "MBGNBDModel", "GammaGammaModel", "calibration_summary",
    "compare_purchase_models", "cumulative_repeat_purchases", "discounted_clv", "fit_diagnostics",
    "holdout_comparison", "holdout_table", "simple_clv",
    "summary_from_arrays", "customer_record", "customer_view",
    "fit_clv", "prepare_arrays", "profiles", "DEFAULT_SEGMENT_RULES", "DEFAULT_TIERS",
    "LIFECYCLE_STAGES", "SEGMENT_NAMES", "LifecycleConfig", "Personas", "SegmentRule", "Tier",
    "TierConfig", "assign_segments", "lifecycle_stages", "membership_tiers", "rfm_scores",
]
