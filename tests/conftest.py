"""Shared pytest fixtures (keep this file small)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEST_DATA = Path(__file__).resolve().parent / "data"
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only real datasets in ../shared/data (skips the test when absent)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real datasets not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def test_data() -> Path:
    """tests/data (bad/ and ok/ input corpora)."""
    return TEST_DATA


@pytest.fixture(scope="session")
def retail_store(tmp_path_factory) -> Path:
    """A small but complete published bundle (synthetic shop: segments, churn, CLV, offers, coupons, campaigns),
    trained once per test session for the dashboard tests (about 10 s)."""
    from personalize.datasets import make_retail
    from personalize.pipeline import train_bundle
    from personalize.recommenders import ALS

    store = tmp_path_factory.mktemp("retail") / "models"
    ds, _truth = make_retail(n_customers=1500, seed=3)
    train_bundle(ds, store=store, recommender=ALS(factors=8, iterations=5, random_state=0), candidates=15)
    return store
