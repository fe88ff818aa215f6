"""Honest offline evaluation of recommenders: splits, metrics and the ``evaluate`` loop.

:mod:`personalize.evaluation.scenarios` holds seeded synthetic worlds (short popularity-dominated history,
grocery, staples, lapse-free customers) on which models are known to be tested hard.
"""

from personalize.evaluation.evaluate import evaluate, recommendations_matrix, score_track
from personalize.evaluation.metrics import (average_precision_at_k, catalog_coverage, hit_matrix, hit_rate_at_k,
                                            ndcg_at_k, novelty, precision_at_k, ranking_metrics, recall_at_k)
from personalize.evaluation.splits import TRACKS, Split, leave_last_basket_out, time_split

__all__ = ["Split", "TRACKS", "time_split", "leave_last_basket_out", "evaluate", "score_track",
           "recommendations_matrix", "hit_matrix", "precision_at_k", "recall_at_k", "hit_rate_at_k", "ndcg_at_k",
           "average_precision_at_k", "catalog_coverage", "novelty", "ranking_metrics"]
