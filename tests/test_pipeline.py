"""The training pipeline: the manifest records how good the served recommender is on held-out purchases."""

from __future__ import annotations

import json

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
