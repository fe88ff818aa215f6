"""evaluate_uplift: held-out figures per learner and for the chosen one, selection blind to the test rows, IPW
values against hand computations, the report and the curves."""

from __future__ import annotations

import json

import numpy as np
import pytest

from personalize.commands.common import dumps
from personalize.errors import DataError, PersonalizeError
from personalize.uplift import (TLearner, TransformedOutcomeLearner, evaluate_uplift, holdout_metrics,
                                policy_value_ipw, qini_coefficient, uplift_at_k, uplift_split)
from personalize.uplift.plots import plot_evaluation, plot_qini_curve, plot_uplift_curve

from test_uplift_learners import FAST, planted


def candidates():
    return {"t_learner": TLearner(control_name="control", **FAST),
            "transformed_outcome": TransformedOutcomeLearner(control_name="control", **FAST)}


@pytest.fixture(scope="module")
def two_arms():
    X, t, y, tau = planted(6000, 21)
    return X, t, y, tau, evaluate_uplift(X, t, y, control_name="control", seeds=2, cv=2, candidates=candidates())


def test_every_learner_and_the_chosen_one_on_test_rows(two_arms):
    X, t, y, _, ev = two_arms
    assert ev.treatment_names == ["coupon_a", "coupon_b"] and ev.outcome == "binary" and ev.seeds == [0, 1]
    assert set(ev.scores) == {"t_learner", "transformed_outcome", "ensemble", "chosen"}
    for name, s in ev.scores.items():
        assert set(s) == {"uplift_at_30", "uplift_at_30_overall", "qini", "qini_raw", "auuc"}
        assert all(len(v) == 2 for v in s.values())
    for seed, (best, val) in enumerate(zip(ev.chosen, ev.selection)):
        assert best == max(val, key=val.get)  # chosen by the validation Qini of the training rows
        assert ev.scores["chosen"]["qini"][seed] == ev.scores[best]["qini"][seed]
    # the per-learner figure is the held-out metric of a model fitted on the seed's training rows
    tr, te = uplift_split(t, y, test_fraction=0.3, random_state=1)
    m = TLearner(control_name="control", **{**FAST, "random_state": 1}).fit(X.iloc[tr], t[tr], y[tr])
    u = m.predict(X.iloc[te])
    rows = (t[te] == "control") | (t[te] == "coupon_b")
    treated = (t[te][rows] == "coupon_b").astype(float)
    assert ev.scores_per_arm["t_learner"]["coupon_b"]["qini"][1] == pytest.approx(
        qini_coefficient(y[te][rows], u[rows, 1], treated))
    assert ev.scores_per_arm["t_learner"]["coupon_b"]["uplift_at_30"][1] == pytest.approx(
        uplift_at_k(y[te][rows], u[rows, 1], treated, k=0.3, strategy="by_group"))
    # the planted effect is strong: every learner ranks far better than random
    assert ev.mean("chosen", "qini") > 0.05 and ev.mean("t_learner") > 0.05
    assert ev.mean() == pytest.approx(np.mean(ev.scores["chosen"]["uplift_at_30"]))
    with pytest.raises(PersonalizeError, match="no learner"):
        ev.mean("svm")


def test_ipw_values_match_hand_computation(two_arms):
    X, t, y, _, ev = two_arms
    _, te = uplift_split(t, y, test_fraction=0.3, random_state=0)
    yt, tt = y[te], t[te]
    for arm in ("coupon_a", "coupon_b"):  # HT with arm shares: "everyone gets arm" = that arm's mean outcome
        assert ev.policies[f"treat everyone ({arm})"]["value"][0] == pytest.approx(yt[tt == arm].mean())
    assert ev.policies["treat nobody"]["value"][0] == pytest.approx(yt[tt == "control"].mean())
    assert ev.policies["treat nobody"]["share_treated"][0] == 0.0
    learned = ev.policies["learned: best arm if its predicted uplift > 0"]
    # a policy that gives each customer the arm that helps her most beats sending nobody anything
    gain = ev.gains["learned vs treat nobody"]
    assert all(g > 3 * s for g, s in zip(gain["gain"], gain["std_error"]))
    assert gain["gain"][0] == pytest.approx(learned["value"][0] - ev.policies["treat nobody"]["value"][0])
    top = ev.policies["learned: top 30 %, best arm"]
    assert top["share_treated"][0] == pytest.approx(0.3, abs=1 / len(te))
    u = ev.curves["predictions"]["chosen"]
    pol = np.where(u.max(axis=1) > 0, np.array(["coupon_a", "coupon_b"], dtype=object)[u.argmax(axis=1)], "control")
    assert learned["value"][0] == pytest.approx(policy_value_ipw(yt, tt, pol)["value"])


def test_the_selection_never_sees_the_test_rows():
    """Scramble the features and outcomes of the test rows: the validation scores and the choice do not
    move (a continuous outcome, so the split -- stratified by arm only -- stays the same), the test
    figures do."""
    X, t, y, _ = planted(5000, 22, continuous=True)
    kw = {"control_name": "control", "seeds": [3], "cv": 2, "candidates": candidates()}
    ev = evaluate_uplift(X, t, y, **kw)
    _, te = uplift_split(t, y, test_fraction=0.3, random_state=3)
    rng = np.random.default_rng(0)
    X2, y2 = X.copy(), y.copy()
    X2.iloc[te, :4] = rng.uniform(0, 1, (len(te), 4))
    y2[te] = rng.permutation(y2[te]) * 3
    ev2 = evaluate_uplift(X2, t, y2, **kw)
    _, te2 = uplift_split(t, y2, test_fraction=0.3, random_state=3)
    np.testing.assert_array_equal(te, te2)
    assert ev2.selection == ev.selection and ev2.chosen == ev.chosen
    assert ev2.scores["chosen"]["qini"] != ev.scores["chosen"]["qini"]
    assert ev.outcome == "continuous" and ev.mean("chosen", "qini") > 0.1


def test_report_is_one_json_document_and_reads_like_a_table(two_arms):
    *_, ev = two_arms
    doc = json.loads(dumps(ev.to_dict()))
    assert doc["headline_metric"] == "uplift_at_30" and doc["cv_folds"] == 2 and doc["selection_metric"] == "qini"
    assert doc["chosen"]["per_seed"] == ev.chosen and len(doc["chosen"]["uplift_at_30"]["per_seed"]) == 2
    assert set(doc["learners"]["t_learner"]["per_arm"]) == {"coupon_a", "coupon_b"}
    assert doc["learners"]["t_learner"]["fit_seconds_mean"] > 0
    assert set(doc["observed_effect"]) == {"coupon_a", "coupon_b"}
    assert "learned vs treat nobody" in doc["ipw_gain"]
    text = str(ev)
    assert "chosen" in text and "IPW value treat nobody" in text


def test_holdout_metrics_and_argument_errors(two_arms):
    X, t, y, _, _ = two_arms
    m = holdout_metrics(np.array([1, 0, 1, 0.0]), np.array([0.9, 0.1, 0.2, 0.8]), np.array([1, 1, 0, 0.0]), k=0.5)
    assert m["uplift_at_50"] == pytest.approx(1.0 - 0.0)  # top half of the treated: y=1; of the control: y=0
    for kw, match in (({"metric": "gini"}, "metric"), ({"k": 1.5}, "k must"), ({"seeds": 0}, "at least one"),
                      ({"seeds": True}, "seeds")):
        with pytest.raises(PersonalizeError, match=match):
            evaluate_uplift(X, t, y, control_name="control", candidates=candidates(), **kw)
    with pytest.raises(DataError) as e:
        evaluate_uplift(X, t, y, control_name="nobody", candidates=candidates())
    assert e.value.column == "treatment"


def test_curves_are_written_as_png(two_arms, tmp_path):
    X, t, y, tau, ev = two_arms
    paths = plot_evaluation(ev, tmp_path / "plots")
    assert set(paths) == {"qini", "uplift"}
    for p in paths.values():
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000
    one = (t == "control") | (t == "coupon_a")
    p = plot_qini_curve(y[one], t[one], {"truth": tau[one, 0]}, tmp_path / "q.png", control_name="control")
    assert p.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(DataError, match="shape"):
        plot_uplift_curve(y, t, {"bad": tau[:10]}, tmp_path / "u.png", control_name="control")
    with pytest.raises(DataError, match="no treated"):
        plot_uplift_curve(y[t == "control"], t[t == "control"], {"x": y[t == "control"]}, tmp_path / "u.png",
                          control_name="control")
    with pytest.raises(DataError, match="no predictions of"):
        plot_evaluation(ev, tmp_path / "p2", learners=["svm"])
