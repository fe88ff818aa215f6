"""Churn and customer analytics in the bundle and the service: train_bundle publishes the churn model and merges
its scores into the customer table (or records why it skipped it); churn-risk, profile and audience routes; the
`personalize audience` CLI against a bundle built by `personalize train`."""

from __future__ import annotations

import csv
import io
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
warnings.filterwarnings("ignore", message=".*httpx.*", category=DeprecationWarning)

from serving_helpers import KEYS, churn_dataset, tiny_dataset, train_tiny  # noqa: E402

from fastapi.testclient import TestClient  # noqa: E402

from personalize.store import load_bundle  # noqa: E402
from serving.app import create_app  # noqa: E402
from serving.settings import Settings  # noqa: E402

ALL = {"Authorization": "Bearer all-key-00005"}


@pytest.fixture(scope="module")
def cds():
    return churn_dataset()


@pytest.fixture(scope="module")
def churn_store(tmp_path_factory, cds):
    store = tmp_path_factory.mktemp("churn") / "models"
    return store, train_tiny(store, cds)


@pytest.fixture(scope="module")
def plain_store(tmp_path_factory):
    store = tmp_path_factory.mktemp("plain") / "models"
    return store, train_tiny(store, tiny_dataset())   # 3 months of data: no closed 90-day label window


@pytest.fixture(scope="module")
def table(churn_store):
    return load_bundle(churn_store[0])["customers"].set_index("customer_id")


def _client(store, tmp_path):
    s = Settings(models=store, events_db=tmp_path / "events.sqlite", api_keys=KEYS, poll_interval=0)
    return TestClient(create_app(s))


@pytest.fixture()
def client(churn_store, tmp_path):
    with _client(churn_store[0], tmp_path) as c:
        yield c


@pytest.fixture()
def plain_client(plain_store, tmp_path):
    with _client(plain_store[0], tmp_path) as c:
        yield c


# ---------------------------------------------------------------------------------------------- the bundle
def test_train_bundle_publishes_churn_model_and_scores(churn_store, cds, table):
    from personalize.churn import ChurnModel, churn_table

    store, manifest = churn_store
    comp = manifest["components"]["churn"]
    assert comp["kind"] == "churn" and any(f.endswith("churn/model.txt") for f in comp["files"])
    info = manifest["extra"]["churn"]
    assert info["status"] == "published" and info["as_of"] == "2024-03-31T00:00:00"
    # production mode: every training label window closed before the end of the data
    assert all(pd.Timestamp(c) + pd.Timedelta(days=90) <= pd.Timestamp(info["as_of"])
               for c in info["training_cutoffs"])
    assert manifest["metrics"]["churn"]["auc"] > 0.7 and manifest["params"]["churn"]["horizon_days"] == 90
    model = load_bundle(store)["churn"]
    assert isinstance(model, ChurnModel)
    # the reloaded LightGBM text model reproduces the scores merged into the customer table
    again = churn_table(cds, model, as_of=info["as_of"]).set_index("customer_id")
    np.testing.assert_allclose(table.loc[again.index, "churn_risk"], again["churn_risk"], rtol=1e-9)
    assert (table.loc[again.index, "churn_band"] == again["churn_band"]).all()
    scored = table["churn_risk"].notna()
    assert scored.sum() == len(again) and table.loc[scored, "churn_risk"].between(0, 1).all()
    assert not table.loc[~scored].index.isin(cds.transactions["customer_id"]).any()  # only non-buyers unscored
    assert {"segment", "lifecycle", "tier", "clv", "R"} <= set(table.columns)


def test_short_data_skips_churn_with_reason_and_still_publishes(plain_store, tmp_path):
    _, manifest = plain_store
    assert "churn" not in manifest["components"] and "recommender" in manifest["components"]
    info = manifest["extra"]["churn"]
    assert info["status"] == "skipped" and "shorter than the horizon" in info["reason"]
    off = train_tiny(tmp_path / "m", tiny_dataset(), churn=False)
    assert off["extra"]["churn"]["status"] == "skipped" and "disabled" in off["extra"]["churn"]["reason"]


# ---------------------------------------------------------------------------------------------- routes
def test_churn_risk_known_customer(client, churn_store, table):
    r = client.get("/v1/customers/C008/churn-risk", headers=ALL)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["customer_id"] == "C008" and body["model_version"] == churn_store[1]["version"]
    assert body["probability"] == pytest.approx(table.loc["C008", "churn_risk"])
    assert body["band"] == table.loc["C008", "churn_band"]
    assert body["horizon_days"] == 90 and body["as_of"].startswith("2024-03-31")
    assert 1 <= len(body["reasons"]) <= 3 and all(isinstance(x, str) and x for x in body["reasons"])
    assert " | " not in " ".join(body["reasons"])


def test_churn_risk_unknown_or_unscored_customer_is_404(client, table, cds):
    r = client.get("/v1/customers/ghost-1/churn-risk", headers=ALL)
    assert r.status_code == 404 and r.json()["error"] == "not_found" and "ghost-1" in r.json()["detail"]
    never_bought = sorted(set(table.index) - set(cds.transactions["customer_id"]))
    assert never_bought
    r = client.get(f"/v1/customers/{never_bought[0]}/churn-risk", headers=ALL)
    assert r.status_code == 404 and "no churn score" in r.json()["detail"]


def test_churn_risk_needs_profile_scope(client):
    assert client.get("/v1/customers/C008/churn-risk").status_code == 401
    assert client.get("/v1/customers/C008/churn-risk", headers={"X-API-Key": "shop-key-0001"}).status_code == 403
    assert client.get("/v1/customers/C008/churn-risk", headers={"X-API-Key": "crm-key-00002"}).status_code == 200


def test_bundle_without_churn_is_409_not_500(plain_client):
    r = plain_client.get("/v1/customers/C001/churn-risk", headers=ALL)
    assert r.status_code == 409 and r.headers["content-type"].startswith("application/json")
    assert r.json()["error"] == "not_in_bundle" and "no churn model" in r.json()["detail"]
    assert "shorter than the horizon" in r.json()["detail"]
    r = plain_client.get("/v1/audiences", params={"consent": "email", "min_churn_risk": 0.5}, headers=ALL)
    assert r.status_code == 409 and "churn" in r.json()["detail"]
    p = plain_client.get("/v1/customers/C001/profile", headers=ALL).json()
    assert p["churn"] is None and p["segment"] and p["rfm"]["R"] in range(1, 6)
    # the other filters still work on a bundle without churn
    assert plain_client.get("/v1/audiences", params={"consent": "email", "lifecycle": "active"},
                            headers=ALL).status_code == 200


def test_profile_fields(client, table):
    body = client.get("/v1/customers/C008/profile", headers=ALL).json()
    row = table.loc["C008"]
    assert body["segment"] == row["segment"] and body["lifecycle"] == row["lifecycle"]
    assert body["tier"] == row["tier"]
    assert body["rfm"]["R"] == int(row["R"]) and body["rfm"]["score"] == row["rfm"]
    assert body["rfm"]["monetary"] == pytest.approx(row["monetary"])
    assert body["clv"]["clv"] == pytest.approx(row["clv"]) and 0 <= body["clv"]["p_alive"] <= 1
    risk = client.get("/v1/customers/C008/churn-risk", headers=ALL).json()
    assert body["churn"] == {"probability": risk["probability"], "band": risk["band"], "reasons": risk["reasons"]}
    assert body["as_of"].startswith("2024-03-31")


def _ids(client, **params):
    r = client.get("/v1/audiences", params={"consent": "email", "limit": 1000, **params}, headers=ALL)
    assert r.status_code == 200, r.text
    return [row["customer_id"] for row in csv.DictReader(io.StringIO(r.text))], r


def test_audience_filters_match_the_table_and_enforce_consent(client, table):
    consent = table["consent_email"].astype(bool)
    cases = [
        ({"min_churn_risk": 0.7}, table["churn_risk"] >= 0.7),
        ({"max_churn_risk": 0.3}, table["churn_risk"] <= 0.3),
        ({"min_churn_risk": 0.2, "max_churn_risk": 0.9}, table["churn_risk"].between(0.2, 0.9)),
        ({"tier": ["Gold", "Platinum"]}, table["tier"].isin(["Gold", "Platinum"])),
        ({"lifecycle": "churned"}, table["lifecycle"] == "churned"),
        ({"min_clv": 100}, table["clv"] >= 100),
        ({"min_churn_risk": 0.5, "tier": "Silver", "lifecycle": ["churned", "lapsed"]},
         (table["churn_risk"] >= 0.5) & (table["tier"] == "Silver") & table["lifecycle"].isin(["churned", "lapsed"])),
    ]
    for params, expected in cases:
        want = sorted(table.index[expected.fillna(False).to_numpy(bool) & consent.to_numpy()])
        got, _ = _ids(client, **params)
        assert got == want, params
        assert not any(int(c[1:]) % 4 == 0 for c in got)  # every 4th customer withdrew e-mail consent
    assert _ids(client, min_churn_risk=0.7)[0] and _ids(client, tier="Gold")[0]  # non-trivial filters
    # default fields carry the churn score; jsonl works too
    got, r = _ids(client, min_churn_risk=0.7)
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert {"churn_risk", "churn_band", "tier", "lifecycle", "clv"} <= set(rows[0])
    assert all(float(x["churn_risk"]) >= 0.7 for x in rows)
    r = client.get("/v1/audiences", params={"consent": "sms", "min_churn_risk": 0.7, "format": "jsonl"},
                   headers=ALL)
    assert all(json.loads(x)["churn_risk"] >= 0.7 for x in r.text.splitlines())


def test_audience_filters_page_stably(client):
    full, _ = _ids(client, max_churn_risk=0.5)
    pages, cursor = [], None
    while True:
        params = {"consent": "email", "max_churn_risk": 0.5, "limit": 7}
        if cursor:
            params["cursor"] = cursor
        r = client.get("/v1/audiences", params=params, headers=ALL)
        pages += [row["customer_id"] for row in csv.DictReader(io.StringIO(r.text))]
        cursor = r.headers.get("X-Next-Cursor")
        if not cursor:
            break
    assert pages == full and len(full) > 7


@pytest.mark.parametrize("params", [{"min_churn_risk": 1.5}, {"max_churn_risk": -0.1}, {"min_churn_risk": "x"},
                                    {"min_churn_risk": 0.8, "max_churn_risk": 0.2}, {"lifecycle": "sleeping"},
                                    {"min_clv": "nan"}, {"min_clv": "inf"}])
def test_audience_bad_filter_values_are_422(client, params):
    r = client.get("/v1/audiences", params={"consent": "email", **params}, headers=ALL)
    assert r.status_code == 422, r.text


def test_lifecycle_values_match_analytics():
    import typing

    from personalize.analytics import LIFECYCLE_STAGES
    from serving.routers.audiences import Lifecycle

    assert tuple(typing.get_args(Lifecycle)) == tuple(LIFECYCLE_STAGES)


# ---------------------------------------------------------------------------------------------- CLI
def test_cli_audience_against_a_train_built_bundle(tmp_path, cds):
    from typer.testing import CliRunner

    from personalize.cli import app

    tx = tmp_path / "tx.csv"
    cds.transactions[["customer_id", "item_id", "timestamp", "quantity", "price", "order_id"]].to_csv(tx, index=False)
    store = tmp_path / "models"
    runner = CliRunner()
    out = runner.invoke(app, ["train", "--format", "generic", str(tx), "--out", str(store), "--factors", "8",
                              "--candidates", "20", "--json"])
    assert out.exit_code == 0, out.output
    manifest = json.loads(out.stdout)
    assert manifest["extra"]["churn"]["status"] == "published" and "churn" in manifest["components"]
    table = load_bundle(store)["customers"]
    lst = tmp_path / "lists" / "at_risk.csv"
    res = runner.invoke(app, ["audience", "--models", str(store), "--min-churn-risk", "0.7", "--out", str(lst)])
    assert res.exit_code != 0 and "does not exist" in str(res.exception)  # a typo never creates folders
    lst.parent.mkdir()
    res = runner.invoke(app, ["audience", "--models", str(store), "--min-churn-risk", "0.7", "--json",
                              "--out", str(lst)])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    got = pd.read_csv(lst)
    want = table.loc[table["churn_risk"] >= 0.7, "customer_id"].sort_values().tolist()
    assert got["customer_id"].tolist() == want and doc["customers"] == len(want) > 0
    assert (got["churn_risk"] >= 0.7).all() and "churn_reasons" in got
    assert not [c for c in got.columns if c.startswith("consent_") or c in ("region", "birth_date")]
    assert sorted(p.name for p in lst.parent.iterdir()) == ["at_risk.csv"]  # atomic: no temp file left
    from personalize.cli import main

    # a transactions-only bundle knows no consent: asking for an e-mail list is a clear error, not an empty list
    with pytest.raises(SystemExit) as info:
        main(["audience", "--models", str(store), "--min-churn-risk", "0.7", "--consent", "email", "--json"])
    assert info.value.code == 2

    with pytest.raises(SystemExit) as info:   # a user mistake: one line on stderr, exit code 2
        main(["audience", "--models", str(store), "--min-churn-risk", "2"])
    assert info.value.code == 2


def test_cli_audience_consent_and_tier(churn_store, table, tmp_path):
    from typer.testing import CliRunner

    from personalize.cli import app

    lst = tmp_path / "list.csv"
    res = CliRunner().invoke(app, ["audience", "--models", str(churn_store[0]), "--min-churn-risk", "0.5",
                                   "--tier", "Silver", "--tier", "Gold", "--consent", "email", "--out", str(lst),
                                   "--json"])
    assert res.exit_code == 0, res.output
    t = table
    want = sorted(t.index[(t["churn_risk"] >= 0.5) & t["tier"].isin(["Silver", "Gold"])
                          & t["consent_email"].astype(bool)])
    got = pd.read_csv(lst)["customer_id"].tolist()
    assert got == want and got and not any(int(c[1:]) % 4 == 0 for c in got)
