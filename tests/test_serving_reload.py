"""Hot swap: reload under concurrent requests with zero failures; a broken bundle leaves the old one serving."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from serving_helpers import KEYS, publish_tiny, tiny_dataset  # noqa: E402

from personalize.store import current_version  # noqa: E402
from serving.app import create_app  # noqa: E402
from serving.settings import Settings  # noqa: E402

H = {"Authorization": "Bearer all-key-00005"}


@pytest.fixture(scope="module")
def ds():
    return tiny_dataset()


async def _with_app(settings, body):
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await body(client)


def test_reload_under_concurrent_requests(tmp_path, ds):
    store = tmp_path / "models"
    v1 = publish_tiny(store, ds)["version"]
    v2 = publish_tiny(store, ds)["version"]  # CURRENT -> v2, but the app starts on v1
    from personalize.store import rollback

    rollback(store, v1)
    settings = Settings(models=store, events_db=tmp_path / "e.sqlite", api_keys=KEYS, poll_interval=0)

    async def body(client):
        statuses, versions = [], set()

        done = asyncio.Event()

        async def hammer(n):
            i = 0
            while not done.is_set() or i < n:
                i += 1
                await asyncio.sleep(0)  # in-process transport never suspends by itself: let the swap run
                cid = f"C{i % 35:03d}"   # known and unknown customers
                r = await client.get(f"/v1/customers/{cid}/recommendations", params={"k": 5}, headers=H)
                statuses.append(r.status_code)
                if r.status_code == 200:
                    versions.add(r.json()["model_version"])
                r = await client.get(f"/v1/items/I{i % 40:03d}/similar", params={"k": 3}, headers=H)
                statuses.append(r.status_code)

        async def swap():
            await asyncio.sleep(0.05)
            rollback(store, v2)
            r = await client.post("/v1/admin/reload", headers=H)
            assert r.status_code == 200, r.text
            body = r.json()
            assert {k: body[k] for k in ("previous", "current", "changed")} == {"previous": v1, "current": v2,
                                                                                 "changed": True}
            assert body["lagging"] == [] and [w["version"] for w in body["workers"]] == [v2]
            await asyncio.sleep(0.2)
            done.set()

        await asyncio.gather(*(hammer(60) for _ in range(8)), swap())
        assert set(statuses) == {200}, statuses
        assert versions == {v1, v2}
        assert (await client.get("/v1/models", headers=H)).json()["version"] == v2
        metrics = (await client.get("/metrics")).text
        assert f'personalize_model_info{{version="{v2}"}} 1.0' in metrics
        assert f'version="{v1}"' not in metrics
        assert 'personalize_reloads_total{result="ok"} 1.0' in metrics

    asyncio.run(_with_app(settings, body))


def test_failing_bundle_leaves_old_one_serving(tmp_path, ds):
    store = tmp_path / "models"
    v1 = publish_tiny(store, ds)["version"]
    settings = Settings(models=store, events_db=tmp_path / "e.sqlite", api_keys=KEYS, poll_interval=0)

    async def body(client):
        v2 = publish_tiny(store, ds)["version"]
        victim = next((store / v2 / "recommender").rglob("*.npz"), None) or next((store / v2 / "recommender").iterdir())
        victim.write_bytes(b"garbage")
        assert current_version(store) == v2
        r = await client.post("/v1/admin/reload", headers=H)
        assert r.status_code == 503
        assert r.json()["error"] == "bundle_unavailable" and victim.name in r.json()["detail"]
        assert (await client.get("/v1/models", headers=H)).json()["version"] == v1
        r = await client.get("/v1/customers/C001/recommendations", headers=H)
        assert r.status_code == 200 and r.json()["model_version"] == v1
        assert (await client.get("/readyz")).json()["model_version"] == v1
        # a specific good version can still be loaded
        r = await client.post("/v1/admin/reload", params={"version": v1}, headers=H)
        assert r.status_code == 200 and r.json()["changed"] is False
        r = await client.post("/v1/admin/reload", params={"version": "../etc"}, headers=H)
        assert r.status_code == 422
        r = await client.post("/v1/admin/reload", params={"version": "20990101T000000Z-00000000"}, headers=H)
        assert r.status_code == 404 and r.json()["error"] == "not_found"
        metrics = (await client.get("/metrics")).text
        assert 'personalize_reloads_total{result="failed"} 1.0' in metrics

    asyncio.run(_with_app(settings, body))
