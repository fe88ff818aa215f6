"""Serving you can trust, in one process: erasure, personalization opt-out, malformed input never a 500 nor a log
line with personal data, replay by ingest sequence, the events contract, store-following and damaged bundles,
audience value checks, the OpenAPI document."""

from __future__ import annotations

import json
import logging
import sqlite3
import sys
import warnings
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
warnings.filterwarnings("ignore", message=".*httpx.*", category=DeprecationWarning)

from serving_helpers import KEYS, make_models, publish_tiny, tiny_dataset  # noqa: E402

from fastapi.testclient import TestClient  # noqa: E402

from personalize.customers import customer_table  # noqa: E402
from personalize.data import Dataset  # noqa: E402
from personalize.pipeline import train_bundle  # noqa: E402
from personalize.recommenders import ALS, CandidateTable  # noqa: E402
from personalize.store import current_version, load_bundle, publish  # noqa: E402
from personalize.store.events import EventStore  # noqa: E402
from serving.app import create_app  # noqa: E402
from serving.settings import Settings  # noqa: E402

ALL = {"Authorization": "Bearer all-key-00005"}
SHOP = {"Authorization": "Bearer shop-key-0001"}
ADMIN = {"Authorization": "Bearer adm-key-00004"}


@pytest.fixture()
def env(tmp_path):
    ds = tiny_dataset()
    publish_tiny(tmp_path / "models", ds)
    return Settings(models=tmp_path / "models", events_db=tmp_path / "models" / "events.sqlite", api_keys=KEYS,
                    poll_interval=0), ds


def _items(client, cid, headers=ALL, **params):
    r = client.get(f"/v1/customers/{cid}/recommendations", params={"k": 5, **params}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


# ---------------------------------------------------------------------- 2. forget a customer
def test_forgotten_customer_is_gone_from_every_answer_the_store_and_the_next_bundle(env, tmp_path):
    settings, ds = env
    victim = "C007"
    with TestClient(create_app(settings)) as a, TestClient(create_app(settings)) as b:
        before = _items(a, victim)
        assert before["fallback"] is False
        top = before["items"][0]["item_id"]
        a.post("/v1/events", json={"events": [{"type": "purchase", "customer_id": victim, "item_id": top,
                                               "order_id": "o-77"}]}, headers=ALL)
        assert a.get(f"/v1/customers/{victim}/profile", headers=ALL).status_code == 200
        # a shop key may not erase; a privacy (or admin) key may
        assert a.delete(f"/v1/customers/{victim}", headers=SHOP).status_code == 403
        r = a.delete(f"/v1/customers/{victim}", headers=ALL)
        assert r.status_code == 200 and r.json()["events_deleted"] == 1
        b.app.state.service.tick()          # the other worker picks the erasure up on its next poll
        for client in (a, b):
            rec = _items(client, victim)
            assert rec["fallback"] is True  # treated as unknown: the cold answer
            assert client.get(f"/v1/customers/{victim}/profile", headers=ALL).status_code == 404
            page = client.get("/v1/audiences", params={"consent": "sms", "limit": 1000}, headers=ALL).text
            assert victim not in page and "C006" in page
            # later events for the id are not stored again
            r = client.post("/v1/events", json={"events": [{"type": "purchase", "customer_id": victim,
                                                            "item_id": top}]}, headers=ALL)
            assert r.json()["results"][0] == {"index": 0, "id": None, "status": "ignored",
                                              "reason": "erased_customer"}
        assert a.delete(f"/v1/customers/{victim}", headers=ALL).json()["events_deleted"] == 0  # idempotent
    # no row, no byte of the event store holds the id; the erasure list holds only a salted hash
    db = settings.events_path
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT COUNT(*) FROM events WHERE customer_id = ?", (victim,)).fetchone()[0] == 0
        hashes = [h for (h,) in con.execute("SELECT hash FROM erasures")]
    assert len(hashes) == 1 and victim not in hashes[0] and len(hashes[0]) == 64
    for f in db.parent.glob(db.name + "*"):
        assert victim.encode() not in f.read_bytes(), f
    # the next bundle is trained without them: no file of it mentions the id
    with EventStore(db) as store:
        manifest = train_bundle(ds, store=settings.models, recommender=ALS(factors=4, iterations=2),
                                candidates=10, churn=False, events=store)
    assert manifest["data"]["erasures_applied"] == 1
    vdir = settings.models / manifest["version"]
    for f in vdir.rglob("*"):
        if f.is_file():
            assert victim.encode() not in f.read_bytes(), f
    bundle = load_bundle(settings.models)
    assert victim not in set(bundle["customers"]["customer_id"]) and victim not in bundle["candidates"].customer_pos


def test_forget_from_the_command_line(env, capsys):
    from personalize.cli import main

    settings, _ds = env
    with pytest.raises(SystemExit) as info:
        main(["forget", "C001", "C002", "--models", str(settings.models), "--json"])
    assert info.value.code in (0, None)
    assert json.loads(capsys.readouterr().out)["customers"] == 2
    with TestClient(create_app(settings)) as c:  # a service started afterwards knows at once
        assert _items(c, "C001")["fallback"] is True
        assert c.get("/v1/customers/C002/profile", headers=ALL).status_code == 404


# ---------------------------------------------------------------------- 3. personalization opt-out
def test_opted_out_customers_get_non_personal_answers(tmp_path):
    ds = tiny_dataset()
    cust = ds.customers.copy()
    cust.loc[cust["customer_id"].isin(["C004", "C005"]), "consent_personalization"] = False
    ds = Dataset.from_frames(ds.transactions.drop(columns="amount"), items=ds.items, customers=cust)
    publish_tiny(tmp_path / "models", ds)
    s = Settings(models=tmp_path / "models", events_db=tmp_path / "e.sqlite", api_keys=KEYS, poll_interval=0)
    with TestClient(create_app(s)) as c:
        mine = _items(c, "C004")
        cold = _items(c, "never-seen")
        assert [i["item_id"] for i in mine["items"]] == [i["item_id"] for i in cold["items"]]
        assert all(i["source"].endswith(":opt_out") for i in mine["items"]) and mine["fallback"] is True
        assert all(not i["source"].endswith(":opt_out") for i in _items(c, "C006")["items"])
        # filters still apply to the non-personal list
        odd = _items(c, "C005", category="odd")
        assert odd["items"] and all(i["source"].endswith(":opt_out") for i in odd["items"])


# ---------------------------------------------------------------------- 4. malformed input
BAD_BODIES = [
    b'{"events": [{"type": "purchase", "customer_id": "C001", "item_id": "I001", "quantity": NaN}]}',
    b'{"events": [{"type": "purchase", "customer_id": "C001", "item_id": "I001", "price": Infinity}]}',
    b'{"events": [{"type": "purchase", "customer_id": "jane.doe@example.com\\ud800", "item_id": "I001"}]}',
    b'{"events": [{"type": "purchase", "customer_id": "jane.doe@example.com", "item_id": "I001", '
    b'"timestamp": "2099-01-01T00:00:00"}]}',
    b'{"item_ids": ["I001\\udc00"], "k": 3}',
    b'{"item_ids": ["I001"], "k": NaN}',
    b'{"item_ids": ["I001"], "k": -Infinity}',
    b'{"events": [{"type": "purchase", "customer_id": "jane.doe@example.com"',
    b'\xff\xfe not json',
    b'{"events": "jane.doe@example.com"}',
]


def test_malformed_input_is_4xx_in_one_shape_and_logs_no_personal_data(env, caplog):
    settings, _ds = env
    caplog.set_level(logging.DEBUG)
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        app = c.app
        for route in app.routes:
            methods = getattr(route, "methods", set()) - {"HEAD", "OPTIONS"}
            path = getattr(route, "path", "")
            for method in methods:
                url = (path.replace("{customer_id}", "jane.doe%40example.com%ED%A0%80")
                       .replace("{item_id}", "%ED%B0%80"))
                for body in (BAD_BODIES if method == "POST" else [None]):
                    r = c.request(method, url + "?k=NaN&limit=Infinity&consent=email%ED%B2%80&customer_id="
                                                "jane.doe%40example.com", content=body,
                                  headers={**ALL, "content-type": "application/json"})
                    assert r.status_code < 500, (method, path, body, r.status_code, r.text)
                    if r.status_code >= 400:
                        doc = r.json()
                        assert set(doc) == {"error", "detail", "field"}, doc
                        assert "jane.doe@example.com" not in r.text
        assert c.get("/v1/nowhere", headers=ALL).json()["error"] == "not_found"
        assert c.put("/v1/events", headers=ALL).json()["error"] == "method_not_allowed"
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records
                       if not r.name.startswith("httpx"))
    for secret in ("jane.doe", "example.com", "all-key-00005", "C001", "I001"):
        assert secret not in logged, secret


def test_an_unexpected_error_is_a_500_without_a_traceback_in_the_log(env, caplog, monkeypatch):
    settings, _ds = env
    caplog.set_level(logging.DEBUG)
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        rt = c.app.state.service.runtime
        monkeypatch.setattr(rt, "profile", lambda cid: (_ for _ in ()).throw(RuntimeError(f"boom {cid}")))
        r = c.get("/v1/customers/secret-customer-9/profile", headers=ALL)
        assert r.status_code == 500 and r.json() == {"error": "internal_error", "detail": "internal server error",
                                                     "field": None}
    text = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records if not r.name.startswith("httpx"))
    assert "RuntimeError" in text and "secret-customer-9" not in text and "Traceback" not in text


# ---------------------------------------------------------------------- 5. replay by ingest sequence
def test_back_dated_purchases_survive_a_restart_and_reach_every_worker(env):
    settings, ds = env
    old = (ds.last_timestamp - pd.Timedelta(days=30)).isoformat()   # before the bundle's data end
    with TestClient(create_app(settings)) as a:
        top = _items(a, "C011")["items"][0]["item_id"]
        r = a.post("/v1/events", json={"events": [{"type": "purchase", "customer_id": "C011", "item_id": top,
                                                   "timestamp": old},
                                                  {"type": "purchase", "customer_id": "NEWBIE", "item_id": "I004",
                                                   "timestamp": old}]}, headers=ALL)
        assert [x["status"] for x in r.json()["results"]] == ["applied", "applied"]
        assert top not in [i["item_id"] for i in _items(a, "C011")["items"]]
    for _ in range(2):  # a restart, and another worker, replay it
        with TestClient(create_app(settings)) as b:
            assert top not in [i["item_id"] for i in _items(b, "C011")["items"]]
            assert b.get("/v1/customers/NEWBIE/profile", headers=ALL).status_code == 200
            assert _items(b, "NEWBIE")["fallback"] is False


def test_a_bundle_trained_on_the_events_does_not_replay_them_twice(env):
    settings, ds = env
    with TestClient(create_app(settings)) as a:
        a.post("/v1/events", json={"events": [{"type": "purchase", "customer_id": "C012", "item_id": "I013"}]},
               headers=ALL)
    with EventStore(settings.events_path) as store:
        m = train_bundle(ds, store=settings.models, recommender=ALS(factors=4, iterations=2), candidates=10,
                         churn=False, events=store)
    assert m["data"]["events_through_id"] == 1 and m["data"]["event_purchases_added"] == 1
    with TestClient(create_app(settings)) as b:
        assert b.app.state.service.runtime.version == m["version"]
        assert len(b.app.state.service.runtime.live) == 0       # already in the bundle: nothing replayed


def test_training_warns_when_the_stored_events_are_years_past_the_history(env, caplog):
    """The demo's store reused for another history (its live events years after that history's end) is named, with
    what to do; events days after the export are the normal case and get no warning."""
    settings, ds = env
    soon = (ds.last_timestamp + pd.Timedelta(days=3)).isoformat()
    later = (ds.last_timestamp + pd.Timedelta(days=800)).isoformat()
    with TestClient(create_app(settings)) as a:
        a.post("/v1/events", json={"events": [{"type": "purchase", "customer_id": "C013", "item_id": "I013",
                                               "timestamp": soon}]}, headers=ALL)
    said: list[str] = []
    with EventStore(settings.events_path) as store:
        m = train_bundle(ds, store=settings.models, recommender=ALS(factors=4, iterations=2), candidates=10,
                         churn=False, events=store, progress=said.append)
    assert "events_warning" not in m["data"] and not any("WARNING" in s for s in said)
    with TestClient(create_app(settings)) as a:
        a.post("/v1/events", json={"events": [{"type": "purchase", "customer_id": "C014", "item_id": "I013",
                                               "timestamp": later}]}, headers=ALL)
    with EventStore(settings.events_path) as store, caplog.at_level(logging.WARNING):
        m = train_bundle(ds, store=settings.models, recommender=ALS(factors=4, iterations=2), candidates=10,
                         churn=False, events=store, progress=said.append)
    warning = m["data"]["events_warning"]
    assert "800 days after" in warning and "--no-events" in warning and "another --out" in warning
    assert any(warning in s for s in said) and warning in caplog.text


# ---------------------------------------------------------------------- 7. the events contract
def test_events_follow_the_data_contract_and_retries_are_idempotent(env):
    settings, _ds = env
    with TestClient(create_app(settings)) as c:
        store = c.app.state.service.events
        r = c.post("/v1/events", json={"events": [
            {"type": "purchase", "customer_id": "C001", "item_id": "I001"},
            {"type": "purchase", "customer_id": "C001", "item_id": "I002", "timestamp": "2099-01-01T00:00:00"}]},
            headers=ALL)
        assert r.status_code == 422 and r.json()["field"] == "body.events[1].timestamp"
        assert store.count() == 0  # nothing of a rejected request is stored
        line = {"type": "purchase", "customer_id": "C001", "item_id": "I001", "order_id": "A-1"}
        first = c.post("/v1/events", json={"events": [line, {**line, "item_id": "NOT-IN-CATALOG"},
                                                      {"type": "view", "customer_id": "C001", "item_id": "I003",
                                                       "event_id": "ev-9"}]}, headers=ALL).json()
        assert [(x["status"], x["reason"]) for x in first["results"]] == [
            ("applied", None), ("stored", "unknown_item"), ("stored", "view_event")]
        again = c.post("/v1/events", json={"events": [line, {"type": "view", "customer_id": "C001",
                                                            "item_id": "I003", "event_id": "ev-9"}]},
                       headers=ALL).json()
        assert [x["status"] for x in again["results"]] == ["duplicate", "duplicate"]
        assert [x["id"] for x in again["results"]] == [first["results"][0]["id"], first["results"][2]["id"]]
        assert again["accepted"] == 0 and store.count() == 3


# ---------------------------------------------------------------------- 9. damaged bundles, readiness, manifest
def test_a_damaged_current_bundle_leaves_the_last_good_one_serving(env):
    settings, ds = env
    good = current_version(settings.models)
    bad = publish_tiny(settings.models, ds)["version"]
    (settings.models / bad / "candidates" / "arrays.npz").write_bytes(b"damaged")
    with TestClient(create_app(settings)) as c:  # a (re)started worker: CURRENT is damaged
        st = c.app.state.service
        assert st.runtime.version == good
        ready = c.get("/readyz").json()
        assert ready["model_version"] == good and ready["follows_current"] is False
        assert str(settings.models) not in c.get("/readyz").text
        newer = publish_tiny(settings.models, ds)["version"]
        st.tick()  # the poll sees the repaired CURRENT
        assert st.runtime.version == newer and c.get("/readyz").json()["follows_current"] is True


def test_manifest_shows_the_training_file_only_to_admin_keys(env):
    settings, ds = env
    rec, pop = make_models(ds)
    publish({"recommender": rec, "popular": pop, "candidates": CandidateTable.build(rec, ds, n=10, cold=pop),
             "customers": customer_table(ds)}, ds, store=settings.models,
            params={"source": {"format": "generic", "path": "/srv/exports/customers-2024.csv"}})
    with TestClient(create_app(settings)) as c:
        shop = c.get("/v1/models", headers=SHOP).json()
        assert shop["manifest"]["params"]["source"]["path"] is None and "/srv/exports" not in json.dumps(shop)
        admin = c.get("/v1/models", headers=ADMIN).json()
        assert admin["manifest"]["params"]["source"]["path"] == "/srv/exports/customers-2024.csv"


# ---------------------------------------------------------------------- 10. audience values
def test_audience_values_are_checked(env):
    settings, ds = env
    with TestClient(create_app(settings)) as c:
        r = c.get("/v1/audiences", params={"consent": "email", "tier": "gold"}, headers=ALL)
        assert r.status_code == 422 and r.json()["field"] == "tier" and "valid" in r.json()["detail"]
        r = c.get("/v1/audiences", params={"consent": "email", "segment": "Bogus"}, headers=ALL)
        assert r.status_code == 422 and "Champions" in r.json()["detail"]
        r = c.get("/v1/audiences?consent=email&consent=sms", headers=ALL)
        assert r.status_code == 422 and r.json()["field"] == "query.consent"
        r = c.get("/v1/audiences?consent=email&segment=Loyal&segment=Champions", headers=ALL)
        assert r.status_code == 200  # list parameters may repeat
    # a bundle without consent data: a clear 409, not an empty export
    no_consent = Dataset.from_frames(ds.transactions.drop(columns="amount"), items=ds.items,
                                     customers=ds.customers.drop(columns=["consent_email", "consent_sms",
                                                                          "consent_personalization"]))
    publish_tiny(settings.models, no_consent)
    with TestClient(create_app(settings)) as c:
        r = c.get("/v1/audiences", params={"consent": "email"}, headers=ALL)
        assert r.status_code == 409 and "consent_email" in r.json()["detail"]


# ---------------------------------------------------------------------- 12. the OpenAPI document
def test_openapi_declares_keys_errors_and_the_configured_limits(env):
    settings, _ds = env
    settings = settings.model_copy(update={"audience_page_max": 5000})
    spec = create_app(settings).openapi()
    assert set(spec["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            codes = set(op["responses"])
            if path.startswith("/v1/"):
                assert op["security"] and {"401", "403", "422"} <= codes, (method, path, codes)
            for code in codes - {"200"}:
                schema = json.dumps(op["responses"][code].get("content", {}))
                assert "ErrorOut" in schema, (method, path, code)
    limit = next(p for p in spec["paths"]["/v1/audiences"]["get"]["parameters"] if p["name"] == "limit")
    assert limit["schema"]["maximum"] == 5000
    assert "413" in spec["paths"]["/v1/events"]["post"]["responses"]
