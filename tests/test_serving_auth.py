"""API keys and scopes: 401 without a valid key, 403 without the route's scope, both header styles."""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
warnings.filterwarnings("ignore", message=".*httpx.*", category=DeprecationWarning)

from serving_helpers import KEYS, publish_tiny, tiny_dataset  # noqa: E402

from fastapi.testclient import TestClient  # noqa: E402

from serving.app import create_app  # noqa: E402
from serving.auth import scopes_for  # noqa: E402
from serving.settings import Settings  # noqa: E402

_BODIES = {
    "session": {"item_ids": ["I001"]},
    "event": {"events": [{"type": "view", "customer_id": "C001", "item_id": "I001"}]},
}
ROUTES = {  # (method, path, body name) -> scope needed
    ("GET", "/v1/customers/C001/recommendations", None): "recommend",
    ("POST", "/v1/recommendations", "session"): "recommend",
    ("GET", "/v1/items/I001/similar", None): "recommend",
    ("GET", "/v1/models", None): "recommend",
    ("GET", "/v1/customers/C001/profile", None): "profile",
    ("POST", "/v1/events", "event"): "events",
    ("GET", "/v1/audiences?consent=email", None): "audience",
    ("POST", "/v1/admin/reload", None): "admin",
}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    d = tmp_path_factory.mktemp("auth")
    publish_tiny(d / "models", tiny_dataset())
    s = Settings(models=d / "models", events_db=d / "ev.sqlite", api_keys=KEYS, poll_interval=0)
    with TestClient(create_app(s)) as c:
        yield c


def _call(client, method, path, body, headers):
    return client.request(method, path, json=_BODIES.get(body), headers=headers)


@pytest.mark.parametrize("route", list(ROUTES), ids=[f"{m} {p}" for m, p, _ in ROUTES])
@pytest.mark.parametrize("key", list(KEYS))
def test_scope_matrix(client, route, key):
    method, path, body = route
    expected_ok = ROUTES[route] in KEYS[key]
    r = _call(client, method, path, body, {"Authorization": f"Bearer {key}"})
    assert (r.status_code == 200) == expected_ok, (r.status_code, r.text)
    if not expected_ok:
        assert r.status_code == 403 and ROUTES[route] in r.json()["detail"]


@pytest.mark.parametrize("route", list(ROUTES), ids=[f"{m} {p}" for m, p, _ in ROUTES])
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-key-000"}, {"X-API-Key": "shop-key-000"},
                                     {"Authorization": "Basic all-key-00005"}, {"Authorization": "Bearer "}])
def test_missing_or_invalid_key_is_401(client, route, headers):
    method, path, body = route
    r = _call(client, method, path, body, headers)
    assert r.status_code == 401 and r.headers.get("www-authenticate") == "Bearer"


def test_x_api_key_header(client):
    r = client.get("/v1/customers/C001/recommendations", headers={"X-API-Key": "shop-key-0001"})
    assert r.status_code == 200
    # a shop-front key cannot export customer lists
    r = client.get("/v1/audiences", params={"consent": "email"}, headers={"X-API-Key": "shop-key-0001"})
    assert r.status_code == 403


def test_open_endpoints(client):
    for path in ("/healthz", "/readyz", "/metrics"):
        assert client.get(path).status_code == 200


def test_scopes_for_constant_time_lookup():
    assert scopes_for("shop-key-0001", KEYS) == frozenset({"recommend"})
    assert scopes_for("shop-key-000", KEYS) is None
    assert scopes_for("ünïcode-key", KEYS) is None


def test_keys_from_environment_and_not_in_repr(monkeypatch, tmp_path):
    monkeypatch.setenv("PERSONALIZE_API_KEYS", '{"env-key-123456": ["recommend", "admin"]}')
    monkeypatch.setenv("PERSONALIZE_MODELS", str(tmp_path))
    s = Settings()
    assert s.api_keys == {"env-key-123456": ["recommend", "admin"]} and s.models == tmp_path
    assert "env-key-123456" not in repr(s)
    monkeypatch.setenv("PERSONALIZE_API_KEYS", '{"k": ["shopping"]}')
    with pytest.raises(ValueError):
        Settings()


def test_no_keys_or_customer_data_in_logs(client, caplog):
    caplog.set_level(logging.DEBUG)
    client.get("/v1/customers/C001/profile", headers={"Authorization": "Bearer all-key-00005"})
    client.get("/v1/customers/C001/recommendations", headers={"Authorization": "Bearer bad-key-99999"})
    client.post("/v1/events", json={"events": [{"type": "purchase", "customer_id": "C001", "item_id": "I001"}]},
                headers={"Authorization": "Bearer all-key-00005"})
    logged = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("httpx"))  # client side
    for secret in ("all-key-00005", "bad-key-99999", "north", "south", "C001"):
        assert secret not in logged
