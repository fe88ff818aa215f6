"""Events are durable (acknowledged events survive a restart) and reach every worker process."""

from __future__ import annotations

import sqlite3
import sys
import warnings
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
warnings.filterwarnings("ignore", message=".*httpx.*", category=DeprecationWarning)

from serving_helpers import KEYS, publish_tiny, tiny_dataset  # noqa: E402

from fastapi.testclient import TestClient  # noqa: E402

from personalize.errors import DataError  # noqa: E402
from personalize.store.events import Event, EventStore  # noqa: E402
from serving.app import create_app  # noqa: E402
from serving.settings import Settings  # noqa: E402

H = {"Authorization": "Bearer all-key-00005"}


@pytest.fixture()
def env(tmp_path):
    publish_tiny(tmp_path / "models", tiny_dataset())
    return Settings(models=tmp_path / "models", events_db=tmp_path / "events.sqlite", api_keys=KEYS,
                    poll_interval=0)


def _top(client, cid, k=5):
    return [i["item_id"] for i in client.get(f"/v1/customers/{cid}/recommendations", params={"k": k},
                                             headers=H).json()["items"]]


def test_acknowledged_events_survive_restart(env):
    with TestClient(create_app(env)) as c:
        top = _top(c, "C005")[0]
        r = c.post("/v1/events", json={"events": [
            {"type": "purchase", "customer_id": "C005", "item_id": top, "order_id": "o-1"},
            {"type": "add_to_cart", "customer_id": "C005", "item_id": "I002"}]}, headers=H)
        assert r.status_code == 200
        ids = r.json()["ids"]
        assert top not in _top(c, "C005")
    # on disk, readable by anyone, after the process let go of the file
    with sqlite3.connect(env.events_db) as con:
        rows = con.execute("SELECT id, type, customer_id, item_id FROM events ORDER BY id").fetchall()
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert [r[0] for r in rows] == ids and rows[0][1:] == ("purchase", "C005", top)
    # a new process over the same bundle replays the purchase: recommendations stay updated
    with TestClient(create_app(env)) as c:
        assert top not in _top(c, "C005")
        assert c.get("/v1/customers/C005/profile", headers=H).json()["updated_since_publish"] is True
        c.post("/v1/events", json={"events": [{"type": "view", "customer_id": "C006", "item_id": "I001"}]},
               headers=H)
    assert EventStore(env.events_db).count() == 3


def test_purchases_reach_other_worker_processes(env):
    with TestClient(create_app(env)) as a, TestClient(create_app(env)) as b:
        top = _top(b, "C007")[0]
        assert top == _top(a, "C007")[0]
        a.post("/v1/events", json={"events": [{"type": "purchase", "customer_id": "C007", "item_id": top}]},
               headers=H)
        assert top not in _top(a, "C007")
        assert top in _top(b, "C007")          # b has not polled yet
        assert b.app.state.service.sync_other_workers() == 1
        assert top not in _top(b, "C007")
        assert a.app.state.service.sync_other_workers() == 0   # a's own event is not applied twice


def test_event_store_validation_and_queries(tmp_path):
    import datetime as dt

    store = EventStore(tmp_path / "e.sqlite")
    t = dt.datetime(2024, 5, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    ids = store.append([Event("purchase", "C1", "I1", t, 2.0, 3.5, "o1"), Event("view", "C1", "I2", t)])
    assert [a.id for a in ids] == [1, 2] and not any(a.duplicate for a in ids) and store.last_id() == 2
    rows = store.events(type="purchase")
    assert rows[0]["timestamp"] == "2024-05-01T10:00:00.000000"  # stored as naive UTC
    assert store.events(happened_after="2024-05-01T10:00:00.000000") == []
    cust, item, ns = EventStore.purchase_arrays(store.events())
    assert cust.tolist() == ["C1"] and item.tolist() == ["I1"]
    assert ns.tolist() == [int(pd.Timestamp("2024-05-01T10:00").value)]
    for bad in (dict(type="refund"), dict(customer_id=""), dict(quantity=0.0), dict(price=float("nan"))):
        kw = dict(type="purchase", customer_id="C", item_id="I", timestamp=t) | bad
        with pytest.raises(DataError):
            Event(**kw)
    assert store.append([]) == []
    store.close()
