"""What a route's list says: comparable scores with the raw one beside, an unknown category refused, a narrow
filter filled from the fallback chain and a note when the catalog itself runs short."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
warnings.filterwarnings("ignore", message=".*httpx.*", category=DeprecationWarning)

from serving_helpers import KEYS, publish_tiny, tiny_dataset  # noqa: E402

from fastapi.testclient import TestClient  # noqa: E402

from serving.app import create_app  # noqa: E402
from serving.settings import Settings  # noqa: E402

SHOP = {"Authorization": "Bearer shop-key-0001"}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    d = tmp_path_factory.mktemp("scores")
    publish_tiny(d / "models", tiny_dataset(), candidates=8)
    s = Settings(models=d / "models", events_db=d / "events.sqlite", api_keys=KEYS, poll_interval=0)
    with TestClient(create_app(s)) as c:
        yield c


def test_scores_are_comparable_relevances_with_the_raw_score_beside(client):
    known = client.get("/v1/customers/C000/recommendations?k=5&exclude=none", headers=SHOP).json()["items"]
    cold = client.get("/v1/customers/NOBODY/recommendations?k=5", headers=SHOP).json()["items"]
    for items in (known, cold):
        assert len(items) == 5
        assert all(0.0 <= it["score"] <= 1.0 for it in items)
        assert [it["score"] for it in items] == sorted((it["score"] for it in items), reverse=True)
        assert items[0]["score"] >= 0.5          # the top of either list is high in its own source's range
    assert known[0]["source"] != cold[0]["source"]
    # the raw scales differ wildly (dot products vs counts); the relevances do not
    assert max(abs(it["raw_score"]) for it in cold) > 2 * max(abs(it["raw_score"]) for it in known)
    sim = client.get("/v1/items/I001/similar?k=3", headers=SHOP).json()["items"]
    assert all(0.0 <= it["score"] <= 1.0 and "raw_score" in it for it in sim)


def test_an_unknown_category_is_a_422_listing_real_ones(client):
    r = client.get("/v1/customers/C000/recommendations?category=evn", headers=SHOP)
    assert r.status_code == 422 and "evn" in r.json()["detail"] and "even" in r.json()["detail"]
    r = client.post("/v1/recommendations", headers=SHOP, json={"item_ids": ["I001"], "category": ["nope"]})
    assert r.status_code == 422 and "nope" in r.json()["detail"]


def test_a_narrow_filter_is_filled_from_the_fallback_chain(client):
    # C001 buys "odd" items; its 8 precomputed candidates hold few or no "even" ones
    r = client.get("/v1/customers/C001/recommendations?k=10&category=even", headers=SHOP).json()
    assert len(r["items"]) == 10 and r["note"] is None
    assert {it["item_id"] for it in r["items"]} <= {f"I{i:03d}" for i in range(20)}      # all "even"
    assert len({it["item_id"] for it in r["items"]}) == 10
    assert [it["rank"] for it in r["items"]] == list(range(1, 11))


def test_a_filter_the_catalog_cannot_fill_says_so(client):
    r = client.get("/v1/customers/C001/recommendations?k=30&category=even&in_stock=true", headers=SHOP).json()
    assert len(r["items"]) == 16 and "only 16 item(s)" in r["note"]    # 20 "even" items, every 5th out of stock
    r = client.get("/v1/customers/NOBODY/recommendations?k=30&category=even", headers=SHOP).json()
    assert len(r["items"]) == 20 and "only 20" in r["note"]
