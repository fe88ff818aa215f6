"""ChurnModel / PropensityModel: quality vs the true hazard, calibration, reasons, persistence, errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from personalize.churn import (ChurnModel, PropensityModel, PurchaseTarget, calibration_table, load_model,
                               snapshot, training_set)
from personalize.errors import BundleError, DataError, NotFittedError, PersonalizeError

H = 60
FAST = {"learning_rate": 0.1, "min_child_samples": 50, "n_jobs": 1}


@pytest.fixture(scope="module")
def world():
    """Synthetic shop with known churn hazard; train on three closed cutoffs, test on a later one."""
    from personalize.datasets import make_retail

    ds, truth = make_retail(n_customers=4000, n_items=50, days=450, orders_per_year=24, seed=5,
                            offers=False, exposures=False)
    start = ds.first_timestamp.normalize()
    cuts = [start + pd.Timedelta(days=d) for d in (240, 270, 300)]
    train = training_set(ds, cuts, horizon_days=H)
    test = snapshot(ds, start + pd.Timedelta(days=390), horizon_days=H)
    model = ChurnModel(**FAST).fit(train)
    return ds, truth, train, test, model


def test_auc_is_at_least_95_percent_of_the_oracle(world):
    ds, truth, train, test, model = world
    p = model.predict_risk(test)
    oracle = truth.true_churn_probability(test.cutoffs[0], H, test.customer_id)
    auc, auc_oracle = roc_auc_score(test.y, p), roc_auc_score(test.y, oracle)
    auc_recency = roc_auc_score(test.y, test.X["recency_days"])
    assert auc >= 0.95 * auc_oracle, (auc, auc_oracle)
    assert auc > auc_recency, (auc, auc_recency)


def test_probabilities_are_calibrated_on_a_later_cutoff(world):
    _, _, _, test, model = world
    p = model.predict_probability(test)
    assert abs(p.mean() - test.y.mean()) < 0.04
    assert calibration_table(test.y, p).attrs["ece"] < 0.05
    assert model.calibrator_.kind in ("isotonic", "platt")
    assert model.validation_["split"].startswith("latest cutoff")
    assert set(model.validation_["calibration_log_loss"]) == {"isotonic", "platt"}


def test_bands_and_scores(world):
    _, _, _, test, model = world
    scored = model.score(test, reasons=2)
    assert list(scored.columns) == ["customer_id", "probability", "band", "reasons"]
    p = scored["probability"].to_numpy()
    expect = np.where(p >= 0.7, "high", np.where(p >= 0.3, "medium", "low"))
    assert (scored["band"].to_numpy() == expect).all()
    custom = ChurnModel(bands=[("ok", 0.0), ("watch", 0.5), ("act", 0.9)])
    custom.bands_ = custom._parse_bands(custom.bands)
    custom.booster_ = model.booster_
    assert list(custom.band([0.1, 0.5, 0.95])) == ["ok", "watch", "act"]
    with pytest.raises(PersonalizeError, match="band"):
        ChurnModel(bands=[("a", 0.2), ("b", 0.1)]).fit(world[2])


def test_reasons_are_readable_and_stable(world):
    _, _, _, test, model = world
    p = model.predict_risk(test)
    lapsed = (test.X["purchases"] >= 3) & (test.X["recency_days"] > 3 * test.X["gap_mean_days"])
    rows = np.flatnonzero(lapsed.to_numpy() & (p > 0.7))[:20]
    assert len(rows) > 0
    r1 = model.explain(test.X.iloc[rows], n=3)
    r2 = model.explain(test.X.iloc[rows], n=3)
    assert r1 == r2
    texts = [r["reason"] for rs in r1 for r in rs]
    assert any(t.startswith("no purchase for ") and "usually buys every" in t for t in texts), texts
    for rs in r1:
        assert 1 <= len(rs) <= 3 and all(r["contribution"] > 0 for r in rs)
        assert all("_" not in r["reason"] for r in rs), rs   # marketer words, not column names
        assert [r["contribution"] for r in rs] == sorted((r["contribution"] for r in rs), reverse=True)
    # the recency reason quotes the customer's own numbers
    i = rows[0]
    rec = f"{test.X['recency_days'].iloc[i]:,.0f}"
    assert any(rec in r["reason"] for r in model.explain(test.X.iloc[[i]], n=5)[0] if r["group"] == "recency") or \
        all(r["group"] != "recency" for r in model.explain(test.X.iloc[[i]], n=5)[0])


def test_reasons_support_the_predicted_direction(world):
    """A low-risk customer is told what keeps her risk low, never a worrying reason; a high-risk one the opposite."""
    _, _, _, test, model = world
    p = model.predict_risk(test)
    avg = float(np.mean(p))
    for rows, raises in ((np.flatnonzero(p < 0.5 * avg)[:40], False), (np.flatnonzero(p > 0.7)[:40], True)):
        assert len(rows) > 5
        for rs in model.explain(test.X.iloc[rows], n=3):
            assert rs, "every customer gets a reason"
            assert all(r["raises"] is raises for r in rs), rs
            assert all(r["reason"].startswith("lowers it: ") is (not raises) for r in rs), rs
            assert not any("overdue" in r["reason"] for r in rs if not raises)
    up = model.explain(test.X.iloc[np.flatnonzero(p < 0.5 * avg)[:10]], n=3, direction="up")
    assert all(r["raises"] for rs in up for r in rs)


def test_reasons_count_is_the_one_asked_for(world):
    _, _, _, test, model = world
    rows = test.X.iloc[:30]
    assert model.explain(rows, n=0) == [[] for _ in range(30)]  # no reasons asked: none given
    assert all(len(rs) <= 1 for rs in model.explain(rows, n=1))
    three = model.explain(rows, n=3)
    assert [rs[:1] for rs in three] == model.explain(rows, n=1)  # the first reasons of n=3 are n=1's
    with pytest.raises(ValueError, match="n must be >= 0"):
        model.explain(rows, n=-1)


def test_importance_and_contributions_add_up(world):
    _, _, _, test, model = world
    imp = model.feature_importance()
    assert imp["gain"].sum() == pytest.approx(1.0) and imp["feature"].iloc[0] in model.feature_names_
    c = model.contributions(test.X.iloc[:50])
    np.testing.assert_allclose(c.sum(axis=1), model.decision_function(test.X.iloc[:50]), rtol=1e-6, atol=1e-6)


def test_save_load_roundtrip_without_pickle(world, tmp_path):
    _, _, _, test, model = world
    d = model.save(tmp_path / "churn")
    assert sorted(p.name for p in d.iterdir()) == ["calibration.npz", "meta.json", "model.txt"]
    meta = json.loads((d / "meta.json").read_text())
    assert meta["kind"] == "churn" and meta["feature_names"] == model.feature_names_
    with np.load(d / "calibration.npz", allow_pickle=False):
        pass
    back = load_model(d)
    assert isinstance(back, ChurnModel) and back.get_params() == {**model.get_params(),
                                                                 "bands": back.get_params()["bands"]}
    X = test.X.iloc[:200]
    np.testing.assert_allclose(back.predict_probability(X), model.predict_probability(X), rtol=1e-12)
    assert back.explain(X.iloc[:5]) == model.explain(X.iloc[:5])
    # numpy rows (the serving hot path) give the same answer as frames
    np.testing.assert_allclose(back.predict_probability(X.to_numpy()), model.predict_probability(X))
    assert isinstance(PropensityModel.load(d), ChurnModel)   # a churn model is a propensity model
    (d / "meta.json").write_text("{broken")
    with pytest.raises(BundleError, match="corrupted"):
        load_model(d)
    with pytest.raises(BundleError):
        load_model(tmp_path / "nothing")


def test_estimator_manners():
    with pytest.raises(TypeError):
        ChurnModel(0.1)  # keyword-only
    m = ChurnModel(learning_rate=0.05, bands={"low": 0, "high": 0.5})
    assert m.get_params()["learning_rate"] == 0.05 and m.get_params()["bands"] == {"low": 0, "high": 0.5}
    assert not any(k.endswith("_") for k in vars(m))
    with pytest.raises(NotFittedError):
        m.predict_probability(np.zeros((1, 3)))
    with pytest.raises(NotFittedError):
        m.explain(np.zeros((1, 3)))
    with pytest.raises(PersonalizeError, match="unknown parameter"):
        m.set_params(depth=3)


def test_bad_inputs(world):
    _, _, train, test, model = world
    with pytest.raises(DataError, match="recency_days"):
        model.predict_probability(test.X.drop(columns=["recency_days"]))
    with pytest.raises(DataError, match="expected"):
        model.predict_probability(np.zeros((2, 3)))
    X = train.X.iloc[:500]
    with pytest.raises(DataError, match="both classes"):
        ChurnModel(**FAST).fit(X, np.zeros(500))
    with pytest.raises(DataError, match="0 or 1"):
        ChurnModel(**FAST).fit(X, np.full(500, 2))
    with pytest.raises(DataError, match="labels"):
        ChurnModel(**FAST).fit(X, np.zeros(10))
    with pytest.raises(PersonalizeError, match="calibration"):
        ChurnModel(calibration="magic").fit(train)


def test_propensity_model_predicts_category_purchase(world):
    ds, _, _, _, _ = world
    cat = ds.items["category"].value_counts().index[0]
    target = PurchaseTarget(category=cat)
    start = ds.first_timestamp.normalize()
    train = training_set(ds, [start + pd.Timedelta(days=d) for d in (240, 270, 300)], horizon_days=H,
                         target=target, bgnbd=False)
    test = snapshot(ds, start + pd.Timedelta(days=390), horizon_days=H, target=target, bgnbd=False)
    m = PropensityModel(**FAST).fit(train)
    p = m.predict_probability(test)
    assert roc_auc_score(test.y, p) > 0.75
    assert abs(p.mean() - test.y.mean()) < 0.05
    reasons = m.explain(test.X.iloc[:20], n=3)
    assert any(f"category {cat}" in r["reason"] for rs in reasons for r in rs)
    assert m.kind == "propensity" and m.target_.startswith("purchase(category=")


def test_churn_table_for_bundles_and_audiences(world):
    from personalize.churn import churn_table

    ds, _, _, _, model = world
    table = churn_table(ds, model, reasons=2)
    assert list(table.columns) == ["customer_id", "churn_risk", "churn_band", "churn_reasons"]
    assert table["customer_id"].is_monotonic_increasing and table["churn_risk"].between(0, 1).all()
    assert len(table) == ds.n_customers
    assert set(table["churn_band"]) <= {"low", "medium", "high"}
