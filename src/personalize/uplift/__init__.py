"""Uplift modelling: who changes their behaviour *because* of a treatment (an e-mail, a coupon level).

    from personalize.uplift import TLearner, AutoUplift, qini_coefficient, uplift_at_k
    model = AutoUplift(learner_params={"control_name": "No E-Mail"}).fit(X, arm, visit)
    model.best_name_, model.scores_          # chosen learner, every candidate's validation scores
    u = model.predict(X_new)                 # (n, n_treatments): uplift of each arm vs control
    model.save("models/uplift")              # LightGBM text models + meta.json, no pickle

    from personalize.uplift import campaign_training_set, evaluate_uplift
    ts = campaign_training_set(load_hillstrom(path), treatments=["Womens E-Mail"])   # or a Dataset
    ev = evaluate_uplift(ts.X, ts.treatment, ts.y, control_name=ts.control_name)  # 5 seeds, 30 % test
    ev.to_dict()["chosen"]                   # held-out uplift@30 %, Qini, AUUC of the learner chosen by CV

Learners (:mod:`personalize.uplift.learners`): S-, T- and X-learner on LightGBM, the
transformed-outcome (class transformation) learner, several treatment arms against one control,
and their mean (``UpliftEnsemble``). Selection by Qini on a validation fold or k-fold
cross-validation (:mod:`personalize.uplift.select`). Metrics with their normalisation spelled
out (:mod:`personalize.uplift.metrics`). Training sets from campaign exposures, features strictly
before each exposure (:mod:`personalize.uplift.campaign`). Held-out evaluation over seeds
(:mod:`personalize.uplift.evaluation`); Qini and uplift curves (:mod:`personalize.uplift.plots`).
"""

from personalize.uplift.campaign import TARGETS, CampaignTrainingSet, campaign_training_set
from personalize.uplift.evaluation import UpliftEvaluation, evaluate_uplift, holdout_metrics
from personalize.uplift.learners import (FORMAT_VERSION, SLearner, TLearner, TransformedOutcomeLearner,
                                         UpliftEnsemble, UpliftLearner, XLearner, load_uplift_model)
from personalize.uplift.metrics import (auuc, perfect_qini_curve, perfect_uplift_curve, policy_gain_ipw,
                                        policy_value_ipw, qini_coefficient, qini_curve, uplift_at_k,
                                        uplift_at_k_by_segment, uplift_curve)
from personalize.uplift.select import (METRICS, TRANSFORMED_OUTCOME_GRID, AutoUplift, UpliftSelection, best_candidate,
                                       candidate_grid, cross_validate_uplift, default_candidates, score_uplift_model,
                                       select_uplift_model, uplift_folds, uplift_split)

__all__ = [
    "SLearner", "TLearner", "XLearner", "TransformedOutcomeLearner", "UpliftLearner", "UpliftEnsemble",
    "load_uplift_model", "FORMAT_VERSION",
    "AutoUplift", "select_uplift_model", "score_uplift_model", "cross_validate_uplift", "best_candidate",
    "UpliftSelection", "default_candidates", "candidate_grid", "TRANSFORMED_OUTCOME_GRID", "uplift_split",
    "uplift_folds", "METRICS",
    "qini_curve", "uplift_curve", "perfect_qini_curve", "perfect_uplift_curve", "qini_coefficient", "auuc",
    "uplift_at_k", "uplift_at_k_by_segment", "policy_value_ipw", "policy_gain_ipw",
    "CampaignTrainingSet", "campaign_training_set", "TARGETS",
    "UpliftEvaluation", "evaluate_uplift", "holdout_metrics",
]
