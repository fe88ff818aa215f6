"""Route tests over a tiny published bundle: answers, unknown ids, limits, events, audiences, metrics."""

from __future__ import annotations

import csv
import io
import json
import sys
import warnings
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
warnings.filterwarnings("ignore", message=".*httpx.*", category=DeprecationWarning)

from serving_helpers import KEYS, publish_tiny, tiny_dataset  # noqa: E402

from fastapi.testclient import TestClient  # noqa: E402

from serving.app import create_app  # noqa: E402
from serving.deps import get_settings  # noqa: E402
from serving.settings import Settings  # noqa: E402

ALL = {"Authorization": "Bearer all-key-00005"}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = tmp_path_factory.mktemp("bundle") / "models"
    publish_tiny(s, tiny_dataset())
    return s


@pytest.fixture()
def settings(store, tmp_path):
    return Settings(models=store, events_db=tmp_path / "events.sqlite", api_keys=KEYS, poll_interval=0)


@pytest.fixture()
def client(settings):
    with TestClient(create_app(settings)) as c:
        yield c


def test_recommendations_known_customer(client):
    r = client.get("/v1/customers/C001/recommendations", params={"k": 5}, headers=ALL)
    assert r.status_code == 200
    body = r.json()
    assert body["customer_id"] == "C001" and body["fallback"] is False and body["model_version"]
    assert [i["rank"] for i in body["items"]] == [1, 2, 3, 4, 5]
    scores = [i["score"] for i in body["items"]]
    assert scores == sorted(scores, reverse=True)


def test_unknown_customer_gets_fallback_not_error(client):
    r = client.get("/v1/customers/never-seen-42/recommendations", params={"k": 4}, headers=ALL)
    assert r.status_code == 200
    body = r.json()
    assert body["fallback"] is True and len(body["items"]) == 4
    assert all(i["source"] in ("popular", "trending", "category_popular", "session") for i in body["items"])


def test_filters_on_the_route(client):
    r = client.get("/v1/customers/C001/recommendations", params={"k": 3, "category": "even", "in_stock": "true"},
                   headers=ALL)
    assert r.status_code == 200
    ids = [i["item_id"] for i in r.json()["items"]]
    assert ids and all(int(i[1:]) < 20 and int(i[1:]) % 5 != 0 for i in ids)  # even category, in stock
    r = client.get("/v1/customers/C001/recommendations", params={"k": 30, "category": "even,odd"}, headers=ALL)
    assert len(r.json()["items"]) == 30
    r = client.get("/v1/customers/C001/recommendations", params={"k": 3, "category": "no-such-category"},
                   headers=ALL)
    assert r.status_code == 422  # a category the catalog does not have is the caller's mistake, named
    assert r.json()["field"] == "category" and "no-such-category" in r.json()["detail"]


@pytest.mark.parametrize("params", [{"k": 0}, {"k": 101}, {"k": "x"}, {"exclude": "everything"}])
def test_invalid_query_is_422(client, params):
    r = client.get("/v1/customers/C001/recommendations", params=params, headers=ALL)
    assert r.status_code == 422


def test_settings_limits_via_dependency_override(settings, store):
    app = create_app(settings)
    app.dependency_overrides[get_settings] = lambda: settings.model_copy(update={"max_k": 3, "max_list": 2})
    with TestClient(app) as c:
        assert c.get("/v1/customers/C001/recommendations", params={"k": 4}, headers=ALL).status_code == 422
        assert c.get("/v1/customers/C001/recommendations", params={"k": 3}, headers=ALL).status_code == 200
        r = c.post("/v1/recommendations", json={"item_ids": ["I001", "I002", "I003"]}, headers=ALL)
        assert r.status_code == 422


def test_session_recommendations(client):
    r = client.post("/v1/recommendations", json={"item_ids": ["I001", "I002"], "k": 3}, headers=ALL)
    assert r.status_code == 200
    body = r.json()
    assert len(body["items"]) == 3 and not {"I001", "I002"} & {i["item_id"] for i in body["items"]}
    # only unknown items: still an answer, from the fallback
    r = client.post("/v1/recommendations", json={"item_ids": ["nope"], "k": 3}, headers=ALL)
    assert r.status_code == 200 and r.json()["fallback"] is True and len(r.json()["items"]) == 3
    for bad in ({"item_ids": []}, {"item_ids": ["I1"] * 1001}, {"item_ids": ["I1"], "k": 500}, {"items": ["I1"]},
                {"item_ids": [""]}):
        assert client.post("/v1/recommendations", json=bad, headers=ALL).status_code == 422


def test_similar_items_and_unknown_item_404(client):
    r = client.get("/v1/items/I001/similar", params={"k": 3}, headers=ALL)
    assert r.status_code == 200 and len(r.json()["items"]) == 3
    r = client.get("/v1/items/NO-SUCH-ITEM/similar", headers=ALL)
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["error"] == "not_found" and "NO-SUCH-ITEM" in r.json()["detail"]


def test_profile(client):
    r = client.get("/v1/customers/C002/profile", headers=ALL)
    assert r.status_code == 200
    body = r.json()
    assert body["known_to_recommender"] and body["attributes"]["region"] in ("north", "south")
    assert "consent_email" in body["attributes"]
    assert client.get("/v1/customers/C030/profile", headers=ALL).status_code == 200  # never bought
    r = client.get("/v1/customers/ghost/profile", headers=ALL)
    assert r.status_code == 404 and r.json()["error"] == "not_found"


def test_purchase_event_changes_next_recommendations(client):
    before = client.get("/v1/customers/C003/recommendations", params={"k": 5}, headers=ALL).json()
    top = before["items"][0]["item_id"]
    r = client.post("/v1/events", json={"events": [
        {"type": "view", "customer_id": "C003", "item_id": "I005"},
        {"type": "purchase", "customer_id": "C003", "item_id": top, "quantity": 1, "price": 9.5,
         "timestamp": "2024-04-01T10:00:00Z"}]}, headers=ALL)
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 2 and r.json()["purchases_applied"] == 1
    after = client.get("/v1/customers/C003/recommendations", params={"k": 5}, headers=ALL).json()
    assert top not in [i["item_id"] for i in after["items"]]
    assert client.get("/v1/customers/C003/profile", headers=ALL).json()["updated_since_publish"] is True


@pytest.mark.parametrize("event", [
    {"type": "refund", "customer_id": "C1", "item_id": "I1"},
    {"type": "purchase", "customer_id": "", "item_id": "I1"},
    {"type": "purchase", "customer_id": "C1", "item_id": "I1", "quantity": 0},
    {"type": "purchase", "customer_id": "C1", "item_id": "I1", "price": -1},
    {"type": "purchase", "customer_id": "C1", "item_id": "I1", "timestamp": "yesterday"},
    {"type": "purchase", "customer_id": "C1", "item_id": "I1", "color": "red"},
    {"type": "purchase", "customer_id": "C1" * 200, "item_id": "I1"},
])
def test_invalid_events_are_422_and_not_stored(client, event):
    r = client.post("/v1/events", json={"events": [event]}, headers=ALL)
    assert r.status_code == 422
    assert client.app.state.service.events.count() == 0


def test_body_size_limit(client, settings):
    big = {"events": [{"type": "view", "customer_id": "C" * 150, "item_id": "I" * 150}] * 1000}
    r = client.post("/v1/events", json=big, headers=ALL)
    assert r.status_code == 413 and r.json()["error"] == "request_too_large"
    assert "limit" in r.text
    assert client.app.state.service.events.count() == 0


def _csv_rows(text):
    return list(csv.DictReader(io.StringIO(text)))


def test_audience_export_consent_paging_formats(client):
    r = client.get("/v1/audiences", params={"consent": "email", "fields": "monetary,segment", "limit": 1000},
                   headers=ALL)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    full = _csv_rows(r.text)
    ids = [row["customer_id"] for row in full]
    assert ids == sorted(ids) and "X-Next-Cursor" not in r.headers
    # consent enforced on the server: C000, C004, ... (every 4th) withdrew e-mail consent
    assert not {c for c in ids if int(c[1:]) % 4 == 0}
    assert set(full[0]) == {"customer_id", "monetary", "segment"}
    # cursor paging reproduces the full export
    pages, cursor = [], None
    while True:
        params = {"consent": "email", "fields": "monetary,segment", "limit": 4}
        if cursor:
            params["cursor"] = cursor
        r = client.get("/v1/audiences", params=params, headers=ALL)
        pages += _csv_rows(r.text)
        cursor = r.headers.get("X-Next-Cursor")
        if not cursor:
            break
    assert [p["customer_id"] for p in pages] == ids
    r = client.get("/v1/audiences", params={"consent": "sms", "format": "jsonl", "segment": "Loyal"}, headers=ALL)
    lines = [json.loads(x) for x in r.text.splitlines()]
    assert all(int(x["customer_id"][1:]) % 2 == 0 and x["segment"] == "Loyal" for x in lines)
    assert client.get("/v1/audiences", params={"consent": "fax"}, headers=ALL).status_code == 422
    assert client.get("/v1/audiences", headers=ALL).status_code == 422  # consent is required
    r = client.get("/v1/audiences", params={"consent": "email", "fields": "birth_date"}, headers=ALL)
    assert r.status_code == 422 and r.json()["error"] == "invalid_data" and "available" in r.json()["detail"]
    assert client.get("/v1/audiences", params={"consent": "email", "cursor": "%%%"}, headers=ALL).status_code == 400


def test_models_health_ready_metrics(client):
    m = client.get("/v1/models", headers=ALL).json()
    assert m["version"] == m["manifest"]["version"] and m["manifest"]["format_version"] == 1
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["model_version"] == m["version"]
    client.get("/v1/customers/C001/recommendations", headers=ALL)
    client.post("/v1/events", json={"events": [{"type": "view", "customer_id": "C1", "item_id": "I1"}]},
                headers=ALL)
    text = client.get("/metrics").text
    assert 'personalize_requests_total{method="GET",route="/v1/customers/{customer_id}/recommendations",' \
           'status="200"}' in text
    assert 'personalize_request_seconds_bucket{le="0.005",route="/v1/customers/{customer_id}/recommendations"}' \
        in text
    assert f'personalize_model_info{{version="{m["version"]}"}} 1.0' in text
    assert 'personalize_events_ingested_total{type="view"} 1.0' in text
    assert "C001" not in text  # ids never become label values


def test_not_ready_without_bundle(tmp_path):
    s = Settings(models=tmp_path / "empty", events_db=tmp_path / "e.sqlite", api_keys=KEYS, poll_interval=0)
    with TestClient(create_app(s)) as c:
        assert c.get("/healthz").status_code == 200
        r = c.get("/readyz")
        assert r.status_code == 503 and r.json()["error"] == "not_ready"
        assert str(tmp_path) not in r.text  # no file paths to unauthenticated callers
        r = c.get("/v1/customers/C1/recommendations", headers=ALL)
        assert r.status_code == 503 and r.json()["error"] == "not_ready"
