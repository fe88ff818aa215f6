"""Model bundles: publish, verify, list, roll back, prune; candidate tables; the runtime over a bundle."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from serving_helpers import make_models, publish_tiny, tiny_dataset  # noqa: E402

from personalize.errors import BundleError, PersonalizeError, UnknownIdError  # noqa: E402
from personalize.recommenders import CandidateTable  # noqa: E402
from personalize.runtime import Runtime  # noqa: E402
from personalize.store import (BundleWriter, current_version, list_versions, load_bundle, prune, publish,  # noqa: E402
                               rollback)


@pytest.fixture(scope="module")
def ds():
    return tiny_dataset()


@pytest.fixture()
def store(tmp_path, ds):
    s = tmp_path / "models"
    publish_tiny(s, ds)
    return s


def test_publish_layout_and_manifest(store, ds):
    version = current_version(store)
    assert (store / "CURRENT").read_text().strip() == version
    m = json.loads((store / version / "manifest.json").read_text())
    assert m["version"] == version and m["format_version"] == 1
    assert m["data"]["fingerprint"] == ds.fingerprint()
    assert m["data"]["first_timestamp"].startswith("2024-01")
    assert set(m["components"]) == {"recommender", "popular", "candidates", "customers"}
    assert m["components"]["customers"]["kind"] == "table"
    for comp in m["components"].values():
        for rel, digest in comp["files"].items():
            assert (store / version / rel).is_file() and len(digest) == 64
    assert not list(store.glob(".publish-*"))
    # no pickle anywhere in the bundle
    for f in (store / version).rglob("*"):
        if f.is_file():
            assert b"\x80\x04\x95" not in f.read_bytes()[:16]


def test_load_bundle_roundtrip(store, ds):
    b = load_bundle(store)
    assert b.version == current_version(store)
    assert isinstance(b["candidates"], CandidateTable)
    assert isinstance(b["customers"], pd.DataFrame) and len(b["customers"]) == 32
    # loading the version directory directly gives the same bundle
    assert load_bundle(store / b.version).version == b.version


@pytest.mark.parametrize("damage", ["delete", "corrupt"])
def test_missing_or_corrupted_file_is_refused_naming_it(store, damage):
    version = current_version(store)
    target = store / version / "candidates" / "arrays.npz"
    if damage == "delete":
        target.unlink()
    else:
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0xFF
        target.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="arrays.npz"):
        load_bundle(store)


def test_unknown_format_version_refused(store):
    version = current_version(store)
    mpath = store / version / "manifest.json"
    m = json.loads(mpath.read_text())
    m["format_version"] = 99
    mpath.write_text(json.dumps(m))
    with pytest.raises(BundleError, match="format_version 99"):
        load_bundle(store)


def test_corrupted_manifest_and_empty_store(store, tmp_path):
    (store / current_version(store) / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="manifest.json"):
        load_bundle(store)
    with pytest.raises(BundleError, match="no bundle published"):
        load_bundle(tmp_path)
    with pytest.raises(BundleError, match="not found"):
        load_bundle(tmp_path / "nope")


def test_list_rollback_prune(tmp_path, ds):
    store = tmp_path / "m"
    rec, pop = make_models(ds)
    versions = [publish({"recommender": rec, "customers": pd.DataFrame({"customer_id": ["a"]})}, ds, store=store,
                        metrics={"i": i})["version"] for i in range(4)]
    assert len(set(versions)) == 4
    listed = list_versions(store)
    assert [v["version"] for v in listed] == versions
    assert [v["current"] for v in listed] == [False, False, False, True]
    assert rollback(store) == versions[2]
    assert current_version(store) == versions[2]
    assert rollback(store, versions[0]) == versions[0]
    with pytest.raises(BundleError):
        rollback(store, "20990101T000000Z-deadbeef")
    removed = prune(store, keep=2)
    # the current (oldest) version survives pruning
    assert current_version(store) == versions[0]
    assert set(removed) == {versions[1]}
    assert [v["version"] for v in list_versions(store)] == [versions[0], versions[2], versions[3]]
    publish({"customers": pd.DataFrame({"customer_id": ["b"]})}, ds, store=store, keep=1)
    assert len(list_versions(store)) == 1


def test_publish_rejects_bad_components(tmp_path, ds):
    with pytest.raises(PersonalizeError):
        publish({}, ds, store=tmp_path)
    with pytest.raises(PersonalizeError, match="invalid component name"):
        publish({"../x": pd.DataFrame({"a": [1]})}, ds, store=tmp_path)
    with pytest.raises(PersonalizeError, match="neither a DataFrame"):
        publish({"x": object()}, ds, store=tmp_path)
    assert current_version(tmp_path) is None
    assert not list(tmp_path.glob(".publish-*"))


def test_failed_publish_keeps_current(tmp_path, ds):
    store = tmp_path / "m"
    v1 = publish({"t": pd.DataFrame({"a": [1]})}, ds, store=store)["version"]

    class Broken:
        def save(self, d):
            raise OSError("disk full")

    with pytest.raises(OSError):
        publish({"t": pd.DataFrame({"a": [1]}), "r": Broken()}, ds, store=store)
    assert current_version(store) == v1
    assert [v["version"] for v in list_versions(store)] == [v1]


def test_bundle_writer_piece_by_piece(tmp_path, ds):
    """Components written one at a time are invisible until commit; a failure removes them and keeps CURRENT."""
    store = tmp_path / "m"
    v1 = publish({"t": pd.DataFrame({"a": [1]})}, ds, store=store)["version"]
    with BundleWriter(store) as bundle:
        bundle.add("t", pd.DataFrame({"a": [2, 3]}))
        staging = list(store.glob(".publish-*"))
        assert len(staging) == 1 and (staging[0] / "t" / "table.parquet").is_file()
        assert current_version(store) == v1 and [v["version"] for v in list_versions(store)] == [v1]
        prune(store, keep=1)  # a live writer's staging directory survives the leftover sweep
        assert staging[0].is_dir()
        with pytest.raises(PersonalizeError, match="already added"):
            bundle.add("t", pd.DataFrame({"a": [4]}))
        bundle.add("u", pd.DataFrame({"b": ["x"]}))
        m = bundle.commit(ds, metrics={"note": 1})
    assert current_version(store) == m["version"] != v1 and not list(store.glob(".publish-*"))
    assert list(m["components"]) == ["t", "u"] and m["metrics"] == {"note": 1}
    assert load_bundle(store)["t"]["a"].tolist() == [2, 3]
    with pytest.raises(PersonalizeError, match="already committed"):
        bundle.add("v", pd.DataFrame({"a": [1]}))

    with pytest.raises(RuntimeError, match="stage failed"):
        with BundleWriter(store) as bundle:
            bundle.add("t", pd.DataFrame({"a": [5]}))
            raise RuntimeError("stage failed")
    assert current_version(store) == m["version"] and not list(store.glob(".publish-*"))
    with BundleWriter(store) as bundle:  # nothing added: commit refuses, and nothing is left behind
        with pytest.raises(PersonalizeError, match="at least one component"):
            bundle.commit(ds)
    assert not list(store.glob(".publish-*")) and len(list_versions(store)) == 2


def test_prune_sweeps_only_dead_writers_leftovers(tmp_path, ds):
    import os
    import time

    store = tmp_path / "m"
    publish({"t": pd.DataFrame({"a": [1]})}, ds, store=store)
    old = time.time() - 7200
    dead = store / ".publish-999999999-abc"  # no such process
    other = store / f".publish-{os.getppid()}-def"  # a live process (the test runner's parent)
    legacy = store / ".publish-xyz"  # the name older versions used
    for d in (dead, other, legacy):
        d.mkdir()
        os.utime(d, (old, old))
    young = store / ".publish-999999998-new"
    young.mkdir()
    prune(store, keep=1)
    assert not dead.exists() and not legacy.exists() and other.is_dir() and young.is_dir()


def test_candidate_table_matches_recommender(ds):
    rec, pop = make_models(ds)
    t = CandidateTable.build(rec, ds, n=10, cold=pop)
    cid = str(ds.customer_vocab.ids[3])
    direct = rec.recommend(cid, k=10, exclude=None)
    row = t.items[t.customer_pos[cid]]
    assert [t.item_ids_list[i] for i in row[row >= 0]] == direct["item_id"].tolist()
    assert t.cold_items.size == 10


def test_runtime_filters_and_exclusions(store, ds):
    rt = Runtime(load_bundle(store))
    rec = rt.bundle["recommender"]
    cid = "C001"
    r = rt.recommend(cid, 5)
    assert not r.fallback and len(r.items) == 5 and [i["rank"] for i in r.items] == [1, 2, 3, 4, 5]
    # exclude="purchased" must match the recommender itself
    direct = rec.recommend(cid, k=5, exclude="purchased")
    assert [i["item_id"] for i in r.items] == direct["item_id"].tolist()
    bought = set(ds.transactions.loc[ds.transactions["customer_id"] == cid, "item_id"])
    assert not bought & {i["item_id"] for i in r.items}
    r_all = rt.recommend(cid, 5, exclude="none")
    assert r_all.items != r.items or not bought
    # category filter: every item from the category, even when the candidate list has none
    items = ds.items.set_index("item_id")
    for cat in ("even", "odd"):
        rc = rt.recommend(cid, 4, categories=[cat])
        assert rc.items and all(items.loc[i["item_id"], "category"] == cat for i in rc.items)
    rs = rt.recommend(cid, 6, in_stock=True)
    assert all(bool(items.loc[i["item_id"], "in_stock"]) for i in rs.items)
    # unknown customer: fallback list, source named
    u = rt.recommend("never-seen", 5)
    assert u.fallback and u.items and all(i["source"] for i in u.items)
    with pytest.raises(PersonalizeError):
        rt.recommend(cid, 5, exclude="bogus")


def test_runtime_purchase_changes_next_recommendations(store):
    rt = Runtime(load_bundle(store))
    before = rt.recommend("C001", 5)
    top = before.items[0]["item_id"]
    assert rt.record_purchase("C001", [top])
    after = rt.recommend("C001", 5)
    assert top not in [i["item_id"] for i in after.items]
    assert rt.profile("C001")["updated_since_publish"]
    # a brand-new customer's first purchase makes them known
    assert rt.record_purchase("NEW1", ["I003"])
    n = rt.recommend("NEW1", 5)
    assert not n.fallback and "I003" not in [i["item_id"] for i in n.items]
    assert not rt.record_purchase("C001", ["no-such-item"])


def test_runtime_similar_profile_audience(store):
    rt = Runtime(load_bundle(store))
    sim = rt.similar_items("I001", 3)
    assert len(sim) == 3 and all(s["item_id"] != "I001" for s in sim)
    with pytest.raises(UnknownIdError):
        rt.similar_items("nope", 3)
    p = rt.profile("C030")  # in the customers table, never bought
    assert p["attributes"]["region"] == "south"
    with pytest.raises(UnknownIdError):
        rt.profile("nobody")
    page, cur = rt.audience(consent="email", limit=7)
    full, none_left = rt.audience(consent="email", limit=1000)
    assert none_left is None and len(page) == 7 and cur == page["customer_id"].iloc[-1]
    table = rt.customers.set_index("customer_id")
    assert table.loc[full["customer_id"], "consent_email"].all()
    assert full["customer_id"].is_monotonic_increasing
    # paging reproduces the full export exactly
    pages, cursor = [], None
    while True:
        p, cursor = rt.audience(consent="email", limit=5, cursor=cursor)
        pages.append(p)
        if cursor is None:
            break
    assert pd.concat(pages)["customer_id"].tolist() == full["customer_id"].tolist()
    seg = rt.audience(consent="sms", segments=["Loyal"], limit=1000)[0]
    assert set(table.loc[seg["customer_id"], "segment"]) <= {"Loyal"}
    hi = rt.audience(consent="email", score="monetary", min_score=100, fields=["monetary"], limit=1000)[0]
    assert list(hi.columns) == ["customer_id", "monetary"] and (hi["monetary"] >= 100).all()
    with pytest.raises(PersonalizeError):
        rt.audience(consent="fax")
    with pytest.raises(PersonalizeError):
        rt.audience(consent="email", fields=["birth_date"])
    with pytest.raises(PersonalizeError):
        rt.audience(consent="email", fields=["region"])  # personal attributes never leave through exports
    default = rt.audience(consent="email", limit=3)[0]
    assert "segment" in default and "monetary" in default and "region" not in default
    assert not any(c.startswith("consent_") for c in default.columns)


def test_cli_train_models_commands(tmp_path, ds):
    from typer.testing import CliRunner

    from personalize.cli import app

    csv = tmp_path / "tx.csv"
    ds.transactions[["customer_id", "item_id", "timestamp", "quantity", "price", "order_id"]].to_csv(csv, index=False)
    store = tmp_path / "models"
    runner = CliRunner()
    out = runner.invoke(app, ["train", "--format", "generic", str(csv), "--out", str(store), "--factors", "8",
                              "--recommender", "als", "--candidates", "20", "--json"])
    assert out.exit_code == 0, out.output
    manifest = json.loads(out.stdout)
    assert manifest["version"] == current_version(store)
    assert manifest["params"]["recommender"]["factors"] == 8 and manifest["params"]["candidates"] == 20
    assert {"recommender", "popular", "candidates", "customers"} <= set(manifest["components"])
    # three months of data: no closed 90-day churn label window -> churn skipped, with the reason recorded
    assert manifest["extra"]["churn"]["status"] == "skipped" and "churn" not in manifest["components"]
    assert "horizon" in manifest["extra"]["churn"]["reason"]
    assert load_bundle(store).version == manifest["version"]
    out2 = runner.invoke(app, ["train", "--format", "generic", str(csv), "--out", str(store), "--factors", "8",
                               "--candidates", "20", "--json"])
    v2 = json.loads(out2.stdout)["version"]
    listed = json.loads(runner.invoke(app, ["models", "list", "--models", str(store), "--json"]).stdout)
    assert [v["version"] for v in listed["versions"]] == [manifest["version"], v2]
    rb = json.loads(runner.invoke(app, ["models", "rollback", "--models", str(store), "--json"]).stdout)
    assert rb["current"] == manifest["version"] == current_version(store)
    pr = json.loads(runner.invoke(app, ["models", "prune", "--keep", "1", "--models", str(store), "--json"]).stdout)
    assert pr["removed"] == []  # the newest (v2) is kept, and so is the current one (v1)
    runner.invoke(app, ["models", "rollback", v2, "--models", str(store)])
    pr = json.loads(runner.invoke(app, ["models", "prune", "--keep", "1", "--models", str(store), "--json"]).stdout)
    assert pr["removed"] == [manifest["version"]]
    bad = runner.invoke(app, ["models", "rollback", "nope", "--models", str(store)])
    assert bad.exit_code != 0
