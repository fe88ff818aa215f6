"""Model choice by Qini on a validation fold: every candidate scored, the best refitted, the choice saved."""

from __future__ import annotations

import json

import numpy as np
import pytest

from personalize.errors import DataError, NotFittedError, PersonalizeError
from personalize.uplift import (TRANSFORMED_OUTCOME_GRID, AutoUplift, SLearner, TLearner, TransformedOutcomeLearner,
                                UpliftEnsemble, XLearner, candidate_grid, cross_validate_uplift, load_uplift_model,
                                score_uplift_model, select_uplift_model, uplift_folds, uplift_split)

from test_uplift_learners import FAST, planted


@pytest.fixture(scope="module")
def data():
    return planted(8000, 11), planted(20000, 12)


def test_split_is_stratified_by_arm_and_outcome():
    rng = np.random.default_rng(0)
    t = rng.choice(np.array(["a", "b", "c"], dtype=object), 5000, p=[0.6, 0.3, 0.1])
    y = (rng.random(5000) < np.where(t == "a", 0.1, 0.4)).astype(float)
    tr, te = uplift_split(t, y, test_fraction=0.3, random_state=1)
    assert len(np.intersect1d(tr, te)) == 0 and len(tr) + len(te) == 5000
    for arm in ("a", "b", "c"):
        for v in (0.0, 1.0):
            cell = np.flatnonzero((t == arm) & (y == v))
            assert abs(np.isin(cell, te).sum() - 0.3 * len(cell)) <= 0.5
    again = uplift_split(t, y, test_fraction=0.3, random_state=1)
    np.testing.assert_array_equal(again[1], te)
    assert not np.array_equal(uplift_split(t, y, test_fraction=0.3, random_state=2)[1], te)
    with pytest.raises(PersonalizeError, match="test_fraction"):
        uplift_split(t, y, test_fraction=1.0)


def test_select_scores_every_candidate_and_refits_the_best(data):
    (X, t, y, _), (Xt, _, _, tau) = data
    sel = select_uplift_model(X, t, y, control_name="control", random_state=3, **FAST)
    assert set(sel.scores) == {"s_learner", "t_learner", "x_learner", "ensemble"}
    assert sel.scores["ensemble"]["members"] == ["s_learner", "t_learner", "x_learner"]
    for sc in sel.scores.values():
        assert set(sc["mean"]) == {"qini", "auuc", "uplift_at_30"}
        assert set(sc["per_arm"]) == {"coupon_a", "coupon_b"}
        assert sc["fit_seconds"] > 0
    q = {k: v["mean"]["qini"] for k, v in sel.scores.items()}
    assert sel.best_name == max(q, key=q.get)
    members = sel.model.members_.values() if sel.best_name == "ensemble" else [sel.model]
    assert sel.refitted and all(sum(m.n_rows_.values()) == len(X) for m in members)  # refitted on every row
    assert sel.fit_rows + sel.validation_rows == len(X)
    assert abs(sel.validation_rows - 0.3 * len(X)) < 10
    assert np.corrcoef(sel.model.predict(Xt)[:, 1], tau[:, 1])[0, 1] > 0.6
    assert sel.model.selection_["best"] == sel.best_name


def test_the_metric_picks_the_learner_that_ranks_best():
    # candidates that differ only in capacity: a stump model cannot express the effect of x1 and
    # region together, so the validation Qini must prefer the richer one
    X, t, y, _ = planted(8000, 13)
    cands = {"stumps": TLearner(control_name="control", num_leaves=2, n_estimators=3, early_stopping_rounds=None,
                                learning_rate=0.01, n_jobs=1),
             "trees": TLearner(control_name="control", **FAST)}
    sel = select_uplift_model(X, t, y, candidates=cands, refit=False, ensemble=False)
    assert sel.best_name == "trees", sel.scores
    assert set(sel.scores) == {"stumps", "trees"}
    assert not sel.refitted and sum(sel.model.n_rows_.values()) == sel.fit_rows


def test_score_uplift_model_weights_arms_by_rows(data):
    (X, t, y, _), (Xt, tt, yt, _) = data
    m = SLearner(control_name="control", **FAST).fit(X, t, y)
    sc = score_uplift_model(m, Xt, tt, yt)
    w = np.array([sc["per_arm"][a]["rows"] for a in ("coupon_a", "coupon_b")], dtype=float)
    expect = np.dot(w / w.sum(), [sc["per_arm"][a]["qini"] for a in ("coupon_a", "coupon_b")])
    assert sc["mean"]["qini"] == pytest.approx(expect)
    with pytest.raises(PersonalizeError, match="missing"):
        keep = tt != "coupon_b"
        score_uplift_model(m, Xt[keep], tt[keep], yt[keep])
    with pytest.raises(PersonalizeError, match="unknown metric"):
        score_uplift_model(m, Xt, tt, yt, metrics=("gini",))


def test_auto_uplift_fit_predict_save_load(data, tmp_path):
    (X, t, y, _), (Xt, _, _, _) = data
    auto = AutoUplift(learner_params={"control_name": "control", **FAST}, random_state=1)
    with pytest.raises(NotFittedError):
        auto.predict(Xt)
    with pytest.raises(NotFittedError):
        auto.treatment_names_
    auto.fit(X, t, y)
    assert auto.best_name_ in auto.scores_ and len(auto.scores_) == 4
    assert auto.treatment_names_ == ["coupon_a", "coupon_b"]
    u = auto.predict(Xt)
    assert u.shape == (len(Xt), 2)
    auto.save(tmp_path / "auto")
    meta = json.loads((tmp_path / "auto" / "meta.json").read_text())
    assert meta["selection"]["best"] == auto.best_name_
    assert set(meta["selection"]["scores"]) == {"s_learner", "t_learner", "x_learner", "ensemble"}
    back = AutoUplift.load(tmp_path / "auto")
    assert back.best_name_ == auto.best_name_ and back.scores_ == json.loads(json.dumps(auto.scores_))
    np.testing.assert_array_equal(back.predict(Xt), u)
    assert isinstance(load_uplift_model(tmp_path / "auto"), (SLearner, TLearner, XLearner, UpliftEnsemble))


def test_ensemble_is_the_mean_of_its_members_and_round_trips(data, tmp_path):
    (X, t, y, _), (Xt, _, _, tau) = data
    ens = UpliftEnsemble(learner_params={"control_name": "control", **FAST})
    with pytest.raises(NotFittedError):
        ens.predict(Xt)
    ens.fit(X, t, y)
    assert list(ens.members_) == ["s_learner", "t_learner", "x_learner"]
    parts = [m.predict(Xt) for m in ens.members_.values()]
    np.testing.assert_allclose(ens.predict(Xt), np.mean(parts, axis=0))
    assert ens.predict_frame(Xt).columns.tolist() == ["coupon_a", "coupon_b"]
    u, base = ens.predict_uplift_and_baseline(Xt)
    np.testing.assert_allclose(u, ens.predict(Xt))
    np.testing.assert_allclose(base, ens.predict_outcomes(Xt)[:, 0])
    for j in range(2):
        assert np.corrcoef(u[:, j], tau[:, j])[0, 1] > 0.6
    ens.save(tmp_path / "e")
    assert not [p for p in (tmp_path / "e").rglob("*") if p.is_file() and p.suffix not in (".json", ".txt")]
    back = load_uplift_model(tmp_path / "e")
    assert isinstance(back, UpliftEnsemble) and list(back.members_) == list(ens.members_)
    np.testing.assert_array_equal(back.predict(Xt), ens.predict(Xt))
    assert UpliftEnsemble.load(tmp_path / "e").treatment_names_ == ["coupon_a", "coupon_b"]
    with pytest.raises(PersonalizeError, match="not both"):
        UpliftEnsemble(members={"t": TLearner()}, learner_params={"n_jobs": 1}).fit(X, t, y)
    with pytest.raises(PersonalizeError, match="arms"):
        other = TLearner(control_name="control", **FAST).fit(X[t != "coupon_b"], t[t != "coupon_b"], y[t != "coupon_b"])
        UpliftEnsemble.from_fitted({"a": ens.members_["t_learner"], "b": other})


def test_selection_can_choose_the_ensemble_and_refits_every_member(data):
    (X, t, y, _), _ = data
    # two weak, differently seeded candidates: their mean ranks better on validation than either
    cands = {f"t{i}": TLearner(control_name="control", random_state=i, subsample=0.5, colsample_bytree=0.5,
                               **{**FAST, "num_leaves": 31, "min_child_samples": 10}) for i in range(3)}
    sel = select_uplift_model(X, t, y, candidates=cands, random_state=0)
    q = {k: v["mean"]["qini"] for k, v in sel.scores.items()}
    assert sel.best_name == "ensemble" == max(q, key=q.get), q
    assert isinstance(sel.model, UpliftEnsemble) and list(sel.model.members_) == ["t0", "t1", "t2"]
    assert all(sum(m.n_rows_.values()) == len(X) for m in sel.model.members_.values())
    assert sel.model.selection_["best"] == "ensemble"


def test_select_errors(data):
    (X, t, y, _), _ = data
    with pytest.raises(PersonalizeError, match="metric"):
        select_uplift_model(X, t, y, control_name="control", metric="gini")
    with pytest.raises(PersonalizeError, match="not both"):
        select_uplift_model(X, t, y, candidates={"t": TLearner()}, control_name="control")
    with pytest.raises(PersonalizeError, match="not an uplift learner"):
        select_uplift_model(X, t, y, candidates={"t": object()})
    with pytest.raises(PersonalizeError, match="named 'ensemble'"):
        select_uplift_model(X, t, y, candidates={"ensemble": TLearner(), "t": TLearner()})
    with pytest.raises(DataError) as e:
        select_uplift_model(X, t, y[:-1], control_name="control")
    assert e.value.column == "y"


def test_selection_on_a_subsample_refits_the_choice_on_every_row(data):
    (X, t, y, _), _ = data
    sel = select_uplift_model(X, t, y, control_name="control", selection_rows=3000, ensemble=False, **FAST)
    assert abs(sel.fit_rows + sel.validation_rows - 3000) <= 6 and sel.rows == len(X)  # 6 strata, rounded
    assert sum(sel.model.n_rows_.values()) == len(X)
    for sc in sel.scores.values():
        assert sum(a["rows"] for a in sc["per_arm"].values()) < 3000  # arms share the control rows
    with pytest.raises(PersonalizeError, match="selection_rows"):
        select_uplift_model(X, t, y, control_name="control", selection_rows=5)
    auto = AutoUplift(learner_params={"control_name": "control", **FAST}, selection_rows=3000, ensemble=False)
    assert abs(auto.fit(X, t, y).selection_["fit_rows"] + auto.selection_["validation_rows"] - 3000) <= 6


def test_folds_are_stratified_and_reproducible():
    rng = np.random.default_rng(4)
    t = rng.choice(np.array(["a", "b", "c"], dtype=object), 4001, p=[0.6, 0.3, 0.1])
    y = (rng.random(4001) < np.where(t == "a", 0.1, 0.4)).astype(float)
    fold = uplift_folds(t, y, n_folds=5, random_state=3)
    assert set(fold) == set(range(5))
    for arm in ("a", "b", "c"):
        for v in (0.0, 1.0):
            counts = np.bincount(fold[(t == arm) & (y == v)], minlength=5)
            assert counts.max() - counts.min() <= 1, (arm, v, counts)
    np.testing.assert_array_equal(fold, uplift_folds(t, y, n_folds=5, random_state=3))
    assert not np.array_equal(fold, uplift_folds(t, y, n_folds=5, random_state=4))
    sizes = np.bincount(fold)
    assert sizes.max() - sizes.min() <= 3  # small strata start where the previous one stopped
    for bad in (1, 2.5, True):
        with pytest.raises(PersonalizeError, match="n_folds"):
            uplift_folds(t, y, n_folds=bad)


def test_cross_validation_scores_every_row_once_and_is_the_fold_mean(data):
    (X, t, y, _), _ = data
    cands = {"s": SLearner(control_name="control", **FAST), "t": TLearner(control_name="control", **FAST)}
    cvs = cross_validate_uplift(X, t, y, candidates=cands, n_folds=3, random_state=2)
    assert set(cvs) == {"s", "t", "ensemble"} and cvs["ensemble"]["members"] == ["s", "t"]
    fold = uplift_folds(t, y, n_folds=3, random_state=2)
    by_hand = []
    for f in range(3):
        m = TLearner(control_name="control", **FAST).fit(X[fold != f], t[fold != f], y[fold != f])
        by_hand.append(score_uplift_model(m, X[fold == f], t[fold == f], y[fold == f])["mean"]["qini"])
    assert cvs["t"]["folds"][1]["qini"] == pytest.approx(by_hand[1])
    assert cvs["t"]["mean"]["qini"] == pytest.approx(np.mean(by_hand))
    assert sum(cvs["t"]["per_arm"][a]["rows"] for a in ("coupon_a", "coupon_b")) == len(X) + (t == "control").sum()


def test_select_with_cv_refits_the_best_on_every_row(data):
    (X, t, y, _), (Xt, _, _, tau) = data
    # leaves of a million rows: no split, one score for everybody, a random ranking (Qini 0)
    cands = {"constant": TLearner(control_name="control", **{**FAST, "min_child_samples": 10**6}),
             "trees": TLearner(control_name="control", **FAST)}
    sel = select_uplift_model(X, t, y, candidates=cands, cv=3, ensemble=False)
    assert sel.scores["constant"]["mean"]["qini"] == pytest.approx(0.0, abs=1e-12)
    assert sel.best_name == "trees" and sel.cv == 3 and sel.to_dict()["cv"] == 3
    assert sel.fit_rows == sel.validation_rows == len(X)
    assert sum(sel.model.n_rows_.values()) == len(X)
    assert len(sel.scores["trees"]["folds"]) == 3
    with pytest.raises(PersonalizeError, match="refit=True"):
        select_uplift_model(X, t, y, candidates=cands, cv=3, refit=False)
    auto = AutoUplift(candidates=cands, cv=2, ensemble=False).fit(X, t, y)
    assert auto.selection_["cv"] == 2 and auto.get_params()["cv"] == 2


def test_candidate_grid_passes_shared_settings_and_keeps_its_own():
    grid = candidate_grid(control_name="No E-Mail", n_jobs=1, random_state=7, num_leaves=63, propensity="constant")
    assert list(grid)[:3] == ["s_learner", "t_learner", "x_learner"]
    to = {k: v for k, v in grid.items() if k.startswith("transformed_outcome")}
    assert len(to) == len(TRANSFORMED_OUTCOME_GRID)
    for (leaves, mcs), (name, m) in zip(TRANSFORMED_OUTCOME_GRID, to.items()):
        assert isinstance(m, TransformedOutcomeLearner) and name == f"transformed_outcome_l{leaves}_m{mcs}"
        p = m.get_params()
        assert (p["num_leaves"], p["min_child_samples"], p["learning_rate"]) == (leaves, mcs, 0.02)
        assert p["control_name"] == "No E-Mail" and p["n_jobs"] == 1 and p["random_state"] == 7
        assert p["propensity"] == "constant"
    assert grid["t_learner"].get_params()["num_leaves"] == 63
    assert grid["x_learner"].get_params()["propensity"] == "constant"
    assert candidate_grid(propensity="estimate")["transformed_outcome_l4_m400"].get_params()["propensity"] == \
        "constant"
