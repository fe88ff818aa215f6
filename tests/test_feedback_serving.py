"""Feedback and points served: the profile's satisfaction and points (live), durable events replayed after a
restart and followed by other workers, never-again after a bad rating, satisfaction by group, the service-recovery
and points audiences, and training on the stored events."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

warnings.filterwarnings("ignore", message=".*httpx.*", category=DeprecationWarning)

from fastapi.testclient import TestClient  # noqa: E402

from personalize.commands.demo import demo_examples  # noqa: E402
from personalize.datasets import make_retail  # noqa: E402
from personalize.pipeline import train_bundle  # noqa: E402
from personalize.recommenders import ALS  # noqa: E402
from personalize.store import load_bundle  # noqa: E402
from personalize.store.events import EventStore  # noqa: E402
from serving.app import create_app  # noqa: E402
from serving.settings import Settings  # noqa: E402
from serving.state import ServiceState  # noqa: E402
from serving.metrics import Metrics  # noqa: E402
from serving_helpers import KEYS  # noqa: E402

H = {"X-API-Key": "all-key-00005"}
SHOP = {"X-API-Key": "shop-key-0001"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("fbserve")
    ds, _ = make_retail(n_customers=700, n_items=70, n_categories=7, seed=3, feedback=True, points=True,
                        exposures=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        manifest = train_bundle(ds, store=d / "models", recommender=ALS(factors=8, iterations=3, random_state=0),
                                candidates=30, validate=False)
    return d, ds, manifest


def _settings(d, events="events.sqlite"):
    return Settings(models=d / "models", events_db=d / events, api_keys=KEYS, poll_interval=0)


def _post(c, *events, headers=H):
    return c.post("/v1/events", headers=headers, json={"events": list(events)})


def test_bundle_keeps_feedback_and_points(trained):
    d, ds, manifest = trained
    assert {"feedback", "points_lots"} <= set(manifest["components"])
    b = load_bundle(d / "models")
    assert "text" not in b["feedback"].columns and len(b["feedback"]) == len(ds.feedback)
    assert (b["points_lots"]["left"] > 0).all() and manifest["extra"]["points"]["mode"] == "ledger"
    assert {"open_complaints", "detractor", "points_balance", "points_next_expiry_days"} <= set(
        b["customers"].columns)


def test_profile_is_live(trained):
    d, ds, _ = trained
    cid = str(ds.transactions["customer_id"].iloc[-1])
    with TestClient(create_app(_settings(d, "live.sqlite"))) as c:
        before = c.get(f"/v1/customers/{cid}/profile", headers=H).json()
        assert before["satisfaction"] is not None and before["points"] is not None
        r = _post(c, {"type": "feedback", "customer_id": cid, "kind": "complaint", "category": "delivery"},
                  {"type": "feedback", "customer_id": cid, "kind": "survey", "score": 3, "scale": "nps"},
                  {"type": "points", "customer_id": cid, "delta": 120, "reason": "earn"})
        assert r.status_code == 200 and r.json()["feedback_applied"] == 3
        after = c.get(f"/v1/customers/{cid}/profile", headers=H).json()
        s = after["satisfaction"]
        assert s["open_complaints"] == before["satisfaction"]["open_complaints"] + 1
        assert s["last_score"] == 3 and s["last_score_scale"] == "nps" and s["detractor"]
        assert s["days_since_complaint"] < 0.01 and after["updated_since_publish"]
        assert after["points"]["balance"] == pytest.approx(before["points"]["balance"] + 120)
        # resolving it: the complaint is closed at once
        _post(c, {"type": "feedback", "customer_id": cid, "kind": "complaint", "category": "billing",
                  "resolved": True})
        again = c.get(f"/v1/customers/{cid}/profile", headers=H).json()["satisfaction"]
        assert again["complaints"] == s["complaints"] + 1 and again["open_complaints"] == s["open_complaints"]


def test_bad_feedback_and_overdrawn_points_are_422_and_nothing_is_stored(trained):
    d, ds, _ = trained
    cid = str(ds.transactions["customer_id"].iloc[-1])
    with TestClient(create_app(_settings(d, "bad.sqlite"))) as c:
        ok = {"type": "feedback", "customer_id": cid, "kind": "survey", "score": 8, "scale": "nps"}
        r = _post(c, ok, {"type": "feedback", "customer_id": cid, "kind": "survey", "score": 4})
        assert r.status_code == 422 and r.json()["field"] == "body.events[1].scale"
        r = _post(c, ok, {"type": "feedback", "customer_id": cid, "kind": "survey", "score": 7, "scale": "csat"})
        assert r.status_code == 422 and r.json()["field"] == "body.events[1].score" and "scale" in r.json()["detail"]
        r = _post(c, {"type": "feedback", "customer_id": cid, "kind": "complaint",
                      "timestamp": "2024-01-05T00:00:00", "resolved_at": "2024-01-01T00:00:00"})
        assert r.status_code == 422 and r.json()["field"] == "body.events[0].resolved_at"
        r = _post(c, {"type": "purchase", "customer_id": cid, "item_id": "I00001", "score": 3})
        assert r.status_code == 422 and r.json()["field"] == "body.events[0].score"
        bal = c.get(f"/v1/customers/{cid}/profile", headers=H).json()["points"]["balance"]
        r = _post(c, {"type": "points", "customer_id": cid, "delta": 50, "reason": "earn"},
                  {"type": "points", "customer_id": cid, "delta": -(bal + 60), "reason": "redeem"})
        assert r.status_code == 422 and r.json()["field"] == "body.events[1].delta"
        r = _post(c, {"type": "points", "customer_id": cid, "delta": 10, "reason": "redeem"})
        assert r.status_code == 422 and "negative delta" in r.json()["detail"]
    assert EventStore(d / "bad.sqlite").count() == 0


def test_a_bad_rating_removes_the_item_at_once_and_after_a_restart(trained):
    d, ds, _ = trained
    cid = str(ds.transactions["customer_id"].iloc[-1])
    s = _settings(d, "rating.sqlite")
    with TestClient(create_app(s)) as c:
        first = c.get(f"/v1/customers/{cid}/recommendations?k=5&exclude=none", headers=SHOP).json()["items"]
        top = first[0]["item_id"]
        r = _post(c, {"type": "feedback", "customer_id": cid, "kind": "rating", "score": 2, "item_id": top})
        assert r.json()["results"][0]["status"] == "applied"
        now = c.get(f"/v1/customers/{cid}/recommendations?k=5&exclude=none", headers=SHOP).json()["items"]
        assert top not in [i["item_id"] for i in now] and len(now) == 5
        assert [i["rank"] for i in now] == [1, 2, 3, 4, 5]
        assert [i["item_id"] for i in now[:4]] == [i["item_id"] for i in first[1:5]]
    with TestClient(create_app(s)) as c:     # a restart replays the stored rating
        again = c.get(f"/v1/customers/{cid}/recommendations?k=5&exclude=none", headers=SHOP).json()["items"]
        assert top not in [i["item_id"] for i in again]


def test_other_workers_follow_feedback_and_points(trained):
    d, ds, _ = trained
    cid = str(ds.transactions["customer_id"].iloc[-2])
    s = _settings(d, "workers.sqlite")
    a, b = ServiceState(s, Metrics()), ServiceState(s, Metrics())
    a.open()
    b.open()
    try:
        base = b.runtime.profile(cid)["satisfaction"]["open_complaints"]
        from personalize.store.events import Event

        a.append_events([Event(type="feedback", customer_id=cid, item_id=None, kind="complaint",
                               timestamp=pd.Timestamp.now(tz="UTC").to_pydatetime())])
        assert b.runtime.profile(cid)["satisfaction"]["open_complaints"] == base
        b.catch_up()
        assert b.runtime.profile(cid)["satisfaction"]["open_complaints"] == base + 1
    finally:
        a.close()
        b.close()


def test_satisfaction_route(trained):
    d, ds, _ = trained
    with TestClient(create_app(_settings(d, "sat.sqlite"))) as c:
        r = c.get("/v1/satisfaction?by=month", headers=H)
        assert r.status_code == 200
        months = r.json()["groups"]
        assert [g["group"] for g in months] == sorted(g["group"] for g in months)
        overall = c.get("/v1/satisfaction", headers=H).json()["groups"][0]
        assert overall["responses"] == int(ds.feedback["score"].notna().sum())
        seg = c.get("/v1/satisfaction?by=segment&min_responses=50", headers=H).json()
        assert sum(g["responses"] for g in seg["groups"]) == overall["responses"]
        assert all(("only" in w) for w in seg["warnings"])
        cid = str(ds.transactions["customer_id"].iloc[-1])
        _post(c, {"type": "feedback", "customer_id": cid, "kind": "survey", "score": 10, "scale": "nps"})
        live = c.get("/v1/satisfaction", headers=H).json()["groups"][0]
        assert live["nps_n"] == overall["nps_n"] + 1 and live["promoters"] == overall["promoters"] + 1
        mine = int(ds.feedback.loc[ds.feedback["customer_id"] == cid, "score"].notna().sum()) + 1
        assert c.delete(f"/v1/customers/{cid}", headers=H).status_code == 200   # erased: left out from now on
        gone = c.get("/v1/satisfaction", headers=H).json()["groups"][0]
        assert gone["responses"] == live["responses"] - mine
        assert c.get("/v1/satisfaction?by=weekday", headers=H).status_code == 422
        assert c.get("/v1/satisfaction", headers=SHOP).status_code == 403


def _ids(resp) -> list[str]:
    lines = resp.text.strip().splitlines()
    return [ln.split(",")[0] for ln in lines[1:]]


def test_service_recovery_and_points_audiences(trained):
    d, ds, _ = trained
    table = load_bundle(d / "models")["customers"]
    with TestClient(create_app(_settings(d, "aud.sqlite"))) as c:
        q = "/v1/audiences?consent=email&unhappy=true&fields=clv,open_complaints,detractor&limit=5000"
        r = c.get(q, headers=H)
        assert r.status_code == 200
        got = set(_ids(r))
        want = table[(table["detractor"].fillna(False).astype(bool) | (table["open_complaints"].fillna(0) >= 1))
                     & table["consent_email"].fillna(False).astype(bool) & ~table["suppressed"].fillna(False)]
        assert got == set(want["customer_id"]) and got
        det = set(_ids(c.get("/v1/audiences?consent=email&detractor=true&limit=5000", headers=H)))
        opened = set(_ids(c.get("/v1/audiences?consent=email&open_complaints=true&limit=5000", headers=H)))
        assert det | opened == got
        sms = set(_ids(c.get("/v1/audiences?consent=sms&unhappy=true&limit=5000", headers=H)))
        assert sms <= set(table.loc[table["consent_sms"].fillna(False).astype(bool), "customer_id"])
        high = set(_ids(c.get("/v1/audiences?consent=email&unhappy=true&min_clv=100&limit=5000", headers=H)))
        assert high < got
        pts = c.get("/v1/audiences?consent=email&points_expiring_within_days=30&min_points=100"
                    "&fields=points_balance,points_expiring_30d,points_next_expiry_days&limit=5000", headers=H)
        frame = pd.read_csv(__import__("io").StringIO(pts.text))
        assert len(frame) and (frame["points_balance"] >= 100).all() and (frame["points_next_expiry_days"] <= 30).all()
        # a complaint posted now puts a happy customer on the list at once
        calm = table[(table["open_complaints"].fillna(0) == 0) & ~table["detractor"].fillna(False).astype(bool)
                     & table["consent_email"].fillna(False).astype(bool)
                     & ~table["suppressed"].fillna(False)]["customer_id"].iloc[0]
        _post(c, {"type": "feedback", "customer_id": calm, "kind": "complaint"})
        assert calm in set(_ids(c.get("/v1/audiences?consent=email&open_complaints=true&limit=5000", headers=H)))
        # points posted now count at once too (several customers, one pass)
        poor = table[(table["points_balance"].fillna(0) < 50) & table["consent_email"].fillna(False).astype(bool)
                     & ~table["suppressed"].fillna(False)]["customer_id"].iloc[:3].tolist()
        _post(c, *[{"type": "points", "customer_id": cid, "delta": 5000, "reason": "adjust"} for cid in poor])
        rich = set(_ids(c.get("/v1/audiences?consent=email&min_points=5000&limit=5000", headers=H)))
        assert set(poor) <= rich
        assert c.get("/v1/audiences?consent=email&min_points=abc", headers=H).status_code == 422


def test_training_includes_stored_feedback_and_points(trained, tmp_path):
    d, ds, _ = trained
    store = EventStore(tmp_path / "events.sqlite")
    from personalize.store.events import Event

    t = pd.Timestamp(ds.last_timestamp).to_pydatetime()
    cid = str(ds.transactions["customer_id"].iloc[0])
    store.append([Event(type="feedback", customer_id=cid, item_id=None, kind="complaint", timestamp=t),
                  Event(type="points", customer_id=cid, item_id=None, delta=75.0, reason="adjust", timestamp=t)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = train_bundle(ds, store=tmp_path / "models", recommender=ALS(factors=8, iterations=2), candidates=10,
                         validate=False, churn=False, events=store)
    assert m["data"]["event_feedback_added"] == 1 and m["data"]["event_points_added"] == 1
    fb = load_bundle(tmp_path / "models")["feedback"]
    assert len(fb) == len(ds.feedback) + 1


def test_demo_prints_nps_and_service_recovery_requests(trained):
    d, ds, _ = trained
    examples = demo_examples(ds, str(d / "models"), "http://127.0.0.1:8000")
    assert any("/satisfaction?by=month" in e for e in examples)
    assert any("unhappy=true" in e and "min_clv=" in e for e in examples)
    assert any("points_expiring_within_days" in e for e in examples)
