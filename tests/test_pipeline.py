"""The training pipeline: the manifest records how good the served recommender is on held-out purchases."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from personalize.datasets import make_retail
from personalize.pipeline import train_bundle, validate_recommender, validation_window
from personalize.recommenders import ALS
from personalize.store import load_bundle


@pytest.fixture(scope="module")
def ds():
    return make_retail(n_customers=800, n_items=120, seed=5, offers=False, exposures=False, personalization=2.5)[0]


def test_manifest_records_validation_against_popular(tmp_path, ds):
    manifest = train_bundle(ds, store=tmp_path / "models", recommender=ALS(factors=8, iterations=5),
                            candidates=20, churn=False)
    v = manifest["metrics"]["recommender"]
    assert v["status"] == "ok" and v["served"] == "als" and v["k"] == 10
    start, end = pd.Timestamp(v["window"]["start"]), pd.Timestamp(v["window"]["end"])
    assert end > ds.last_timestamp and (end - start) == pd.Timedelta(days=28)
    for model in ("als", "popular"):
        for track in ("all", "discovery"):
            m = v["models"][model][track]
            assert 0 <= m["ndcg"] <= 1 and 0 <= m["recall"] <= 1
    assert v["customers"]["all"] > 100
    # on planted preferences the served model beats popularity on held-out purchases
    assert v["vs_popular"]["all"] > 1.2 and v["vs_popular"]["discovery"] > 1.2
    # the validation fit used a fresh copy: the served recommender saw all the data
    rec = load_bundle(tmp_path / "models")["recommender"]
    assert rec.now_ == ds.last_timestamp
    json.dumps(manifest, allow_nan=False)


def test_validation_is_honest_about_short_histories(ds):
    short = ds.until(ds.first_timestamp + pd.Timedelta(days=15))
    assert validation_window(short) is None
    assert validate_recommender(ALS(factors=4, iterations=2), short)["status"] == "skipped"
    # a medium history gets a shorter window, at least 7 days
    medium = ds.until(ds.first_timestamp + pd.Timedelta(days=100))
    start, end = validation_window(medium)
    assert pd.Timedelta(days=7) <= end - start < pd.Timedelta(days=28)


def test_validation_can_be_turned_off(tmp_path, ds):
    manifest = train_bundle(ds, store=tmp_path / "m", recommender=ALS(factors=4, iterations=2), candidates=10,
                            churn=False, validate=False)
    assert manifest["metrics"]["recommender"]["status"] == "skipped"


def _popularity_world(n_customers=600, n_items=200, seed=0):
    """Everyone buys from the same few hits (grocery-like): nothing personal to learn."""
    import numpy as np

    from personalize.data import Dataset

    rng = np.random.default_rng(seed)
    pop = 1.0 / np.arange(1, n_items + 1) ** 1.6
    pop /= pop.sum()
    n = n_customers * 12
    tx = pd.DataFrame({"customer_id": [f"C{c:04d}" for c in rng.integers(0, n_customers, n)],
                       "item_id": [f"I{i:04d}" for i in rng.choice(n_items, n, p=pop)],
                       "timestamp": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 200 * 86400, n), "s"),
                       "quantity": 1.0, "price": 5.0})
    return Dataset.from_frames(tx)


def test_auto_serves_the_best_candidate_and_records_every_score(tmp_path, ds):
    from personalize.pipeline.select import select_recommender

    chosen, report = select_recommender(ds, candidates=("als", "itemknn", "buyagain"), factors=8)
    assert report["status"] == "ok" and set(report["models"]) == {"popular", "als", "itemknn", "buyagain"}
    best = max(report["models"], key=lambda m: report["models"][m]["all"]["ndcg"])
    top = report["models"][best]["all"]["ndcg"]
    assert report["models"][report["served"]]["all"]["ndcg"] >= top * 0.99   # ties broken by discovery
    assert chosen.kind == report["served"] and not hasattr(chosen, "item_ids_")   # unfitted
    # in a popularity-dominated world nothing is served that loses to Popular on the served task
    pop_world = _popularity_world()
    _chosen, rep = select_recommender(pop_world, candidates=("als", "itemknn"), factors=8)
    served = rep["models"][rep["served"]]["all"]["ndcg"]
    assert served >= rep["models"]["popular"]["all"]["ndcg"]


def test_train_auto_publishes_the_chosen_model(tmp_path, ds):
    small = ds.until(ds.first_timestamp + pd.Timedelta(days=120))      # too short for TwoStage's windows
    manifest = train_bundle(small, store=tmp_path / "models", recommender="auto", candidates=10, churn=False)
    v = manifest["metrics"]["recommender"]
    assert v["selection"] == "auto" and v["served"] in v["models"]
    assert "twostage" in v["skipped"] or "twostage" in v["models"]
    rec = load_bundle(tmp_path / "models")["recommender"]
    assert rec.kind == v["served"]
    with pytest.raises(Exception, match="auto"):
        train_bundle(small, store=tmp_path / "m2", recommender="best")


def test_large_exposure_sets_train_the_acceptance_model_like_a_large_churn_set():
    """Below LARGE_TRAINING_ROWS exposures the model's own defaults; from there on the large-data settings
    (all cores, a faster rate), the same rule as the churn model's."""
    from personalize.offers import AcceptanceModel
    from personalize.pipeline.churn import LARGE_TRAINING_ROWS, default_churn_model
    from personalize.pipeline.offers import default_acceptance_model

    small, large = default_acceptance_model(LARGE_TRAINING_ROWS - 1), default_acceptance_model(LARGE_TRAINING_ROWS)
    assert small.get_params() == AcceptanceModel(random_state=0, n_jobs=1).get_params()
    churn = default_churn_model(LARGE_TRAINING_ROWS)
    assert large.get_params()["n_jobs"] == churn.get_params()["n_jobs"] == 0 != small.get_params()["n_jobs"]
    for model in (large, churn):  # a faster rate than the small-data default, fewer early-stopping rounds
        assert model.learning_rate > small.learning_rate
        assert model.early_stopping_rounds < small.early_stopping_rounds
    # from ACCEPTANCE_FAST_ROWS up, the churn model's own large-data rate: hundreds of trees fewer to fit and
    # to score ten offers per customer with
    from personalize.pipeline.offers import ACCEPTANCE_FAST_ROWS

    fast = default_acceptance_model(ACCEPTANCE_FAST_ROWS)
    assert default_acceptance_model(ACCEPTANCE_FAST_ROWS - 1).get_params() == large.get_params()
    assert (fast.learning_rate, fast.early_stopping_rounds) == (churn.learning_rate, churn.early_stopping_rounds)
    assert fast.learning_rate > large.learning_rate and fast.get_params()["n_jobs"] == 0


def test_large_coupon_sets_compare_uplift_learners_on_a_sample():
    from personalize.pipeline.churn import LARGE_TRAINING_ROWS
    from personalize.pipeline.offers import default_uplift_model

    small, large = default_uplift_model(LARGE_TRAINING_ROWS - 1), default_uplift_model(LARGE_TRAINING_ROWS)
    assert small.selection_rows is None and small.ensemble
    assert large.selection_rows == 200_000 and not large.ensemble
    assert large.learner_params["control_name"] == small.learner_params["control_name"] == "control"
    assert large.learner_params["n_jobs"] == 0 and not large.learner_params["refit"]


def test_churn_trains_on_a_sample_of_a_large_training_set(ds):
    from personalize.pipeline.churn import train_churn

    full_model, full_scores, full = train_churn(ds, seed=0, max_training_rows=None)
    model, scores, info = train_churn(ds, seed=0, max_training_rows=300)
    assert info["status"] == "published" and full["status"] == "published"
    assert info["training_rows"] == 300 and info["training_rows_available"] == full["training_rows"] > 300
    # every customer is still scored, by the model trained on the sample
    assert len(scores) == len(full_scores)
    assert not np.allclose(scores["churn_risk"].to_numpy(), full_scores["churn_risk"].to_numpy())
