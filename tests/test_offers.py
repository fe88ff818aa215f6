"""Next-best-offer and coupons: catalog errors, eligibility reasons, point-in-time acceptance features, the
bundle's offer scores and coupon table, and their routes (caps and cooldowns from live exposure events, consent
and suppression in every list, the cold answer, stored exposures in the next training)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
warnings.filterwarnings("ignore", message=".*httpx.*", category=DeprecationWarning)

from serving_helpers import KEYS, publish_tiny, train_tiny  # noqa: E402

from fastapi.testclient import TestClient  # noqa: E402

from personalize.datasets import make_retail  # noqa: E402
from personalize.errors import DataError  # noqa: E402
from personalize.offers import (REASONS, ContactPolicy, CustomerState, OfferCatalog,  # noqa: E402
                                acceptance_training_set, eligibility)
from personalize.pipeline import train_bundle  # noqa: E402
from personalize.recommenders import ALS  # noqa: E402
from personalize.store import load_bundle  # noqa: E402
from personalize.store.events import Event, EventStore  # noqa: E402
from serving.app import create_app  # noqa: E402
from serving.settings import Settings  # noqa: E402

ALL = {"Authorization": "Bearer all-key-00005"}
SHOP = {"Authorization": "Bearer shop-key-0001"}


def _retail():
    ds, truth = make_retail(n_customers=1500, seed=3)
    cust = ds.customers.copy()
    cust["suppressed"] = np.arange(len(cust)) % 7 == 3          # the global suppression list
    return ds.with_tables(customers=cust), truth


@pytest.fixture(scope="module")
def retail():
    return _retail()


@pytest.fixture(scope="module")
def store(tmp_path_factory, retail):
    path = tmp_path_factory.mktemp("offers") / "models"
    train_tiny(path, retail[0])
    return path


@pytest.fixture()
def client(store, tmp_path):
    s = Settings(models=store, events_db=tmp_path / "events.sqlite", api_keys=KEYS, poll_interval=0)
    with TestClient(create_app(s)) as c:
        yield c


def load_bundle_offers(client):
    return client.app.state.service.runtime.desk.offers


def _csv(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


# ---------------------------------------------------------------------------- catalog and eligibility
def test_a_bad_eligibility_rule_names_the_offer_and_the_field(retail):
    offers = retail[0].offers.copy()
    offers.loc[offers["offer_id"] == "PCT10", "eligibility"] = '{"segmnts": ["Champions"]}'
    with pytest.raises(DataError, match="PCT10.*segmnts") as err:
        OfferCatalog.from_frame(offers)
    assert err.value.column == "eligibility"
    offers.loc[offers["offer_id"] == "PCT10", "eligibility"] = '{"channels": ["fax"]}'
    with pytest.raises(DataError, match="PCT10.*fax"):
        OfferCatalog.from_frame(offers)


def test_every_ineligible_pair_carries_its_reason(retail):
    offers = retail[0].offers.copy()
    offers["eligibility"] = None
    offers.loc[offers["offer_id"] == "PCT05", "eligibility"] = '{"segments": ["Champions"]}'
    offers.loc[offers["offer_id"] == "PCT10", "valid_to"] = pd.Timestamp("2023-06-01")
    cat = OfferCatalog.from_frame(offers)
    j5, j10, j20 = (cat.index[o] for o in ("PCT05", "PCT10", "PCT20"))
    n, m = 5, len(cat)
    exposures = np.zeros((n, m), np.int32)
    exposures[3, j20] = 1                                             # cap 1 reached for PCT20
    state = CustomerState(
        customer_ids=np.array([f"C{i}" for i in range(n)], dtype=object),
        segment=np.array(["Champions", "Loyal", "Champions", "Champions", "Champions"], dtype=object),
        consent={"consent_email": np.array([True, True, False, True, True], dtype=object)},
        suppressed=np.array([False, False, False, False, True]),
        affinity=np.ones((n, m), bool), exposures=exposures,
        days_since_contact=np.array([np.inf, np.inf, np.inf, np.inf, 2.0]))
    ok, reason = eligibility(cat, state, when=pd.Timestamp("2023-07-01"), channel="email",
                             policy=ContactPolicy(cooldown_days=7))
    name = np.array(REASONS, dtype=object)[reason]
    assert ok[0, j5] and ok[0, j20] and name[0, j10] == "expired"
    assert name[1, j5] == "segment" and ok[1, j20]                    # a rule binds only its own offer
    assert (name[2] == "no_consent").all()                           # no consent, no offer, ever
    assert name[3, j20] == "cap_reached" and ok[3, j5]
    assert (name[4] == "suppressed").all()                           # suppression beats everything
    sms = eligibility(cat, state, when=pd.Timestamp("2023-07-01"), channel="sms")[1]
    assert (np.array(REASONS, dtype=object)[sms[:4]] == "no_consent").all()  # no SMS consent data: nobody


def test_acceptance_features_never_see_after_the_exposure(retail):
    """Big purchases right after the last exposures (same day) and after the data's end leave every exposure's
    features unchanged; moved three days earlier, they change the features of exactly those exposures."""
    ds = retail[0]
    cat = OfferCatalog.from_frame(ds.offers)
    end = ds.exposures["exposed_at"].quantile(0.5)
    base = acceptance_training_set(ds, cat, end=end)
    shown = ds.exposures[(ds.exposures["exposed_at"] < end) & ds.exposures["offer_id"].notna()]
    last_day = shown["exposed_at"].max().normalize()
    exp = shown[shown["exposed_at"] >= last_day]
    exp = exp[exp["exposed_at"] + pd.Timedelta(minutes=30) < last_day + pd.Timedelta(days=1)]
    assert len(exp) >= 5

    def lines(when, tag):
        return pd.DataFrame({"customer_id": exp["customer_id"].to_numpy(), "item_id": ds.transactions["item_id"].iloc[0],
                             "timestamp": when, "quantity": 50.0, "price": 999.0,
                             "order_id": [f"{tag}{i}" for i in range(len(exp))]})

    same_day = lines(exp["exposed_at"].to_numpy() + np.timedelta64(30, "m"), "SAME")
    after_end = lines(np.full(len(exp), (end + pd.Timedelta(days=1)).to_datetime64()), "LATER")
    leaky = ds.with_purchases(pd.concat([same_day, after_end], ignore_index=True))
    assert len(leaky) == len(ds) + 2 * len(exp)
    after = acceptance_training_set(leaky, cat, end=end)
    pd.testing.assert_frame_equal(base.X, after.X)
    np.testing.assert_array_equal(base.y, after.y)
    earlier = lines(exp["exposed_at"].to_numpy() - np.timedelta64(3, "D"), "EARLY")
    moved = acceptance_training_set(ds.with_purchases(earlier), cat, end=end)
    changed = (base.X.fillna(-1).to_numpy() != moved.X.fillna(-1).to_numpy()).any(axis=1)
    on_last_day = base.cutoff >= np.datetime64(last_day)
    assert changed[on_last_day & np.isin(base.customer_id, exp["customer_id"].to_numpy())].all()


# ---------------------------------------------------------------------------- the bundle
def test_the_bundle_has_offer_scores_and_a_coupon_table(store):
    b = load_bundle(store)
    assert {"acceptance", "offers", "uplift", "coupons"} <= set(b.components)
    m = b.manifest
    assert m["extra"]["offers"]["status"] == "published" and m["extra"]["coupons"]["status"] == "published"
    assert 0.5 < m["metrics"]["acceptance"]["auc"] <= 1
    scores = b["offers"]
    assert scores.p.shape == (len(scores.customer_ids), len(scores.catalog))
    assert np.isfinite(scores.p).all() and (scores.p >= 0).all() and (scores.p <= 1).all()


def test_coupon_plans_against_the_truth_tell_the_uplift_model_from_the_decision(store, retail):
    """Scored with the generator's truth, the budgeted coupon plan is compared with the oracle plan, and the same
    economics and knapsack fed the true uplift (and baseline) show how much of any gap the uplift model causes:
    fed the truth, the decision itself reaches nearly the oracle's profit at every budget."""
    from personalize.offers import economics
    from personalize.offers.evaluate import coupon_plans_vs_truth

    ds, truth = retail
    table = load_bundle(store)["coupons"]
    catalog = OfferCatalog.from_frame(ds.offers)
    econ = economics(ds, catalog, pd.Timestamp(table.as_of), customer_ids=table.customer_ids)
    full = float(table.cost[table.profit > 0].sum())
    res = coupon_plans_vs_truth(table, catalog, econ, truth, budgets=[0.05 * full, 0.4 * full])
    assert set(res["uplift_correlation"]) == set(table.ladder.levels)
    for p in res["plans"]:
        assert p["oracle_true_profit"] > 0 and p["model_expected_cost"] <= p["budget"] + 1e-6
        # only the cautious anyway-redeem rate (1.0: everyone who would have bought uses the coupon) is not the truth
        assert p["true_uplift_baseline_share_of_oracle"] >= 0.9, p
        assert p["true_uplift_share_of_oracle"] > p["biggest_coupon_true_profit"] / p["oracle_true_profit"], p
        assert p["share_of_oracle"] <= 1.0 + 1e-9 or p["model_true_cost"] > p["budget"], p


def test_the_coupon_feature_ceiling_learns_the_true_uplift_of_the_training_rows(retail):
    """The ceiling regresses each training exposure's true uplift on that exposure's features: the exposures come
    back in the training set's row order (else the labels would be another customer's, and the regression would
    learn nothing), and what it learns ranks the customers' true uplift and baseline at the data's end."""
    from personalize.churn.training_sets import data_end
    from personalize.coupons.plan import CouponTable, Ladder, coupon_exposures, coupon_training_set
    from personalize.offers import economics
    from personalize.offers.evaluate import coupon_feature_ceiling

    ds, truth = retail
    cat = OfferCatalog.from_frame(ds.offers)
    lad = Ladder.default(cat, ds.exposures)
    exp = coupon_exposures(ds, lad)
    X, treatment, y, cutoff = coupon_training_set(ds, cat, lad)
    assert len(exp) == len(X) and (exp["offer_id"].astype(object).fillna("control").to_numpy() == treatment).all()
    np.testing.assert_array_equal(exp["converted"].astype(bool).to_numpy(np.int8), y)
    np.testing.assert_array_equal(exp["exposed_at"].dt.normalize().to_numpy(dtype="datetime64[ns]"), cutoff)
    end = data_end(ds)
    ids = ds.customers["customer_id"].astype(str).to_numpy(dtype=object)
    zero = np.zeros((len(ids), len(lad.levels)), np.float32)
    table = CouponTable(ladder=lad, customer_ids=ids, cost=zero, profit=zero, uplift=zero,
                        baseline=zero[:, 0], cold_cost=zero[0], cold_profit=zero[0], as_of=end.isoformat(),
                        anyway_redeem_rate=1.0, model_name="none")
    res = coupon_feature_ceiling(ds, cat, table, economics(ds, cat, end, customer_ids=ids), truth,
                                 budgets=[500.0, 2000.0])
    assert res["training_rows"] == len(X)
    assert min(res["uplift_correlation"].values()) > 0.15, res["uplift_correlation"]
    assert res["baseline_correlation"] > 0.5
    for p in res["plans"]:
        assert p["oracle_true_profit"] > 0 and 0.2 < p["share_of_oracle"] <= 1.05, p


# ---------------------------------------------------------------------------- routes
def _personal_customer(client, retail, channel="web") -> tuple[str, dict]:
    """A customer who consented, is not suppressed, and has at least two offers on ``channel``."""
    cust = retail[0].customers
    ok = cust["consent_personalization"] & cust["consent_email"] & ~cust["suppressed"]
    for cid in cust.loc[ok, "customer_id"].head(60):
        r = client.get(f"/v1/customers/{cid}/next-best-offer?n=5&channel={channel}", headers=SHOP)
        assert r.status_code == 200, r.text
        if len(r.json()["offers"]) >= 2:
            return cid, r.json()
    raise AssertionError("no customer with two offers")


def test_next_best_offer_ranks_paying_allowed_offers(client, retail):
    cid, body = _personal_customer(client, retail)
    assert body["source"] == "personalized" and body["channel"] == "web"
    evs = [o["expected_value"] for o in body["offers"]]
    assert evs == sorted(evs, reverse=True) and min(evs) > 0
    for o in body["offers"]:
        assert o["expected_value"] == pytest.approx(o["p_accept"] * o["value"], rel=1e-5)
        assert o["reasons"] and o["description"]
    assert sum(body["not_shown"].values()) + len(body["offers"]) <= 10
    r = client.get(f"/v1/customers/{cid}/next-best-offer?n=1", headers=SHOP)
    assert [o["offer_id"] for o in r.json()["offers"]] == [body["offers"][0]["offer_id"]]


def test_no_consent_or_suppressed_means_no_offer_ever(client, retail):
    cust = retail[0].customers
    no_email = cust.loc[~cust["consent_email"] & ~cust["suppressed"], "customer_id"].head(5)
    suppressed = cust.loc[cust["suppressed"], "customer_id"].head(10)   # opted out of personalization or not
    for cid in no_email:
        body = client.get(f"/v1/customers/{cid}/next-best-offer?channel=email", headers=SHOP).json()
        assert body["offers"] == [] and set(body["not_shown"]) == {"no_consent"}
    for cid in suppressed:
        for channel in ("email", "web"):
            body = client.get(f"/v1/customers/{cid}/next-best-offer?channel={channel}", headers=SHOP).json()
            assert body["offers"] == [] and set(body["not_shown"]) == {"suppressed"}
            coupon = client.get(f"/v1/customers/{cid}/coupon?channel={channel}", headers=SHOP).json()
            assert coupon["level"] is None and not any(lv["allowed"] for lv in coupon["levels"])


def test_unknown_and_opted_out_customers_get_the_cold_answer(client, retail):
    r = client.get("/v1/customers/NEVER-SEEN/next-best-offer", headers=SHOP)
    assert r.status_code == 200 and r.json()["source"] == "cold" and r.json()["offers"]
    cust = retail[0].customers
    refused = ~cust["consent_personalization"] & ~cust["suppressed"]
    out = cust.loc[refused & cust["consent_email"], "customer_id"].iloc[0]
    for path in ("next-best-offer", "coupon"):
        body = client.get(f"/v1/customers/{out}/{path}", headers=SHOP).json()
        assert body["source"] == "cold:opt_out"
    # on-site, refusing personalization means no targeted offer at all
    web = client.get(f"/v1/customers/{out}/next-best-offer", headers=SHOP).json()
    assert web["offers"] == [] and set(web["not_shown"]) == {"no_consent"}
    # by e-mail (consented): the average customer's figures, nothing personal, under her own caps
    cold = client.get("/v1/customers/NEVER-SEEN/next-best-offer?n=20", headers=SHOP).json()
    cold_p = {o["offer_id"]: o["p_accept"] for o in cold["offers"]}
    opted = client.get(f"/v1/customers/{out}/next-best-offer?n=20&channel=email", headers=SHOP).json()
    assert opted["offers"] and all(o["p_accept"] == cold_p[o["offer_id"]] for o in opted["offers"])
    capped = set(load_bundle_offers(client).catalog.offer_ids[
        load_bundle_offers(client).exposures[load_bundle_offers(client).row(out)] >= 1])
    assert not capped & {o["offer_id"] for o in opted["offers"]}


def test_coupon_names_the_most_profitable_allowed_level(client, retail):
    cid, _ = _personal_customer(client, retail)
    body = client.get(f"/v1/customers/{cid}/coupon", headers=SHOP).json()
    allowed = [lv for lv in body["levels"] if lv["allowed"]]
    best = max(allowed, key=lambda lv: lv["expected_incremental_profit"]) if allowed else None
    if best is None or best["expected_incremental_profit"] <= 0:
        assert body["level"] is None and body["coupon"] is None
    else:
        assert body["level"] == best["level"] and body["coupon"] == best


def test_bad_parameters_are_422_naming_them(client):
    for q, field in (("channel=fax", "channel"), ("n=0", "n"), ("n=21", "n"), ("n=2&n=3", "n")):
        r = client.get(f"/v1/customers/C000001/next-best-offer?{q}", headers=SHOP)
        assert r.status_code == 422 and r.json()["field"] == f"query.{field}", (q, r.text)
    r = client.get("/v1/customers/C000001/coupon?channel=post", headers=SHOP)
    assert r.status_code == 422 and r.json()["field"] == "query.channel"


def test_an_exposure_counts_against_cap_and_cooldown_at_once_and_after_a_restart(store, retail, tmp_path):
    s = Settings(models=store, events_db=tmp_path / "events.sqlite", api_keys=KEYS, poll_interval=0)
    evt = {"Authorization": "Bearer evt-key-00003"}
    with TestClient(create_app(s)) as c:
        cid, body = _personal_customer(c, retail)
        top = body["offers"][0]["offer_id"]
        r = c.post("/v1/events", headers=evt,
                   json={"events": [{"type": "exposure", "customer_id": cid, "offer_id": top}]})
        assert r.status_code == 200 and r.json()["results"][0]["status"] == "applied", r.text
        assert r.json()["offer_events_applied"] == 1
        after = c.get(f"/v1/customers/{cid}/next-best-offer?n=5", headers=SHOP).json()
        assert after["offers"] == [] and after["not_shown"].get("cooldown", 0) >= 1   # 7-day contact cooldown
    with TestClient(create_app(s)) as c:                                                # a restart replays it
        again = c.get(f"/v1/customers/{cid}/next-best-offer?n=5", headers=SHOP).json()
        assert again["offers"] == [] and again["not_shown"].get("cooldown", 0) >= 1
        # an old exposure (outside the cooldown) still counts against the offer's cap of 1
        other, body2 = _personal_customer(c, retail)
        first = body2["offers"][0]["offer_id"]
        old = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=30)).isoformat()
        c.post("/v1/events", headers=evt, json={"events": [{"type": "exposure", "customer_id": other,
                                                             "offer_id": first, "timestamp": old}]})
        now = c.get(f"/v1/customers/{other}/next-best-offer?n=5", headers=SHOP).json()
        assert first not in [o["offer_id"] for o in now["offers"]] and now["not_shown"]["cap_reached"] >= 1


def test_offer_events_are_checked(client):
    evt = {"Authorization": "Bearer evt-key-00003"}
    r = client.post("/v1/events", headers=evt, json={"events": [{"type": "exposure", "customer_id": "C000001"}]})
    assert r.status_code == 422 and r.json()["field"] == "body.events.0.offer_id"
    r = client.post("/v1/events", headers=evt, json={"events": [{"type": "purchase", "customer_id": "C000001"}]})
    assert r.status_code == 422 and r.json()["field"] == "body.events.0.item_id"
    r = client.post("/v1/events", headers=evt, json={"events": [
        {"type": "redemption", "customer_id": "C000001", "offer_id": "NO-SUCH-OFFER"}]})
    assert r.status_code == 200 and r.json()["results"][0] == {"index": 0, "id": r.json()["ids"][0],
                                                               "status": "stored", "reason": "unknown_offer"}


def test_offer_audience_is_consented_eligible_and_paying(client, retail):
    cust = retail[0].customers.set_index("customer_id")
    r = client.get("/v1/audiences?consent=email&offer_id=PCT20&limit=100000", headers=ALL)
    assert r.status_code == 200, r.text
    rows = _csv(r.text)
    assert rows and set(rows[0]) == {"customer_id", "p_accept", "expected_value"}
    ids = [row["customer_id"] for row in rows]
    assert cust.loc[ids, "consent_email"].all() and not cust.loc[ids, "suppressed"].any()
    assert all(float(row["expected_value"]) > 0 for row in rows) and ids == sorted(ids)
    # the same filters as any audience narrow it
    r2 = client.get("/v1/audiences?consent=email&offer_id=PCT20&lifecycle=active&fields=lifecycle&limit=100000",
                    headers=ALL)
    rows2 = _csv(r2.text)
    assert {row["lifecycle"] for row in rows2} <= {"active"} and len(rows2) <= len(rows)
    assert {row["customer_id"] for row in rows2} <= set(ids)


def test_coupon_audience_stays_within_budget_and_consent(client, retail):
    cust = retail[0].customers.set_index("customer_id")
    totals = {}
    for budget in (50, 400):
        per_level = {}
        for level in ("PCT05", "PCT10", "PCT20", "AMT", "SPEND_A", "SPEND_B"):
            r = client.get(f"/v1/audiences?consent=email&coupon_level={level}&budget={budget}&limit=100000",
                           headers=ALL)
            assert r.status_code == 200, r.text
            per_level[level] = _csv(r.text)
        rows = [row for lv in per_level.values() for row in lv]
        ids = [row["customer_id"] for row in rows]
        assert len(ids) == len(set(ids))                                  # one level per customer
        assert cust.loc[ids, "consent_email"].all() and not cust.loc[ids, "suppressed"].any()
        totals[budget] = (sum(float(row["expected_cost"]) for row in rows),
                          sum(float(row["expected_incremental_profit"]) for row in rows), len(ids))
        assert totals[budget][0] <= budget + 1e-6
        assert all(float(row["expected_incremental_profit"]) > 0 for row in rows)
    assert totals[400][1] >= totals[50][1] and totals[400][2] >= totals[50][2] > 0


def test_audience_offer_parameters_are_checked(client):
    r = client.get("/v1/audiences?consent=email&offer_id=NOPE", headers=ALL)
    assert r.status_code == 422 and r.json()["field"] == "offer_id" and "PCT05" in r.json()["detail"]
    r = client.get("/v1/audiences?consent=email&coupon_level=NOPE", headers=ALL)
    assert r.status_code == 422 and r.json()["field"] == "coupon_level"
    r = client.get("/v1/audiences?consent=email&budget=100", headers=ALL)
    assert r.status_code == 400 and "coupon_level" in r.json()["detail"]
    r = client.get("/v1/audiences?consent=email&coupon_level=PCT05&budget=-1", headers=ALL)
    assert r.status_code == 422 and r.json()["field"] == "query.budget"
    r = client.get("/v1/audiences?consent=email&offer_id=FREESHIP", headers=ALL)   # expired at the data's end
    assert r.status_code == 422 and "expired" in r.json()["detail"]
    assert client.get("/v1/audiences?consent=email&offer_id=PCT05", headers=SHOP).status_code == 403


def test_a_bundle_without_offers_answers_409(tmp_path):
    store = tmp_path / "models"
    publish_tiny(store)
    s = Settings(models=store, events_db=tmp_path / "events.sqlite", api_keys=KEYS, poll_interval=0)
    with TestClient(create_app(s)) as c:
        for path in ("next-best-offer", "coupon"):
            r = c.get(f"/v1/customers/C001/{path}", headers=SHOP)
            assert r.status_code == 409 and "offer catalog" in r.json()["detail"], r.text
        r = c.post("/v1/events", headers={"Authorization": "Bearer evt-key-00003"},
                   json={"events": [{"type": "exposure", "customer_id": "C001", "offer_id": "X"}]})
        assert r.json()["results"][0]["reason"] == "no_offers_in_bundle"


def test_stored_exposures_join_the_next_training(retail, tmp_path):
    ds = retail[0]
    events = EventStore(tmp_path / "events.sqlite")
    cid = str(ds.customers["customer_id"].iloc[10])
    end = ds.transactions["timestamp"].max()
    events.append([Event(type="exposure", customer_id=cid, item_id=None, offer_id="PCT05",
                         timestamp=end - pd.Timedelta(days=2)),
                   Event(type="redemption", customer_id=cid, item_id=None, offer_id="PCT05",
                         timestamp=end - pd.Timedelta(days=1))])
    shown = events.exposures_frame()
    assert len(shown) == 1 and bool(shown["converted"].iloc[0]) and not bool(shown["randomized"].iloc[0])
    m = train_bundle(ds, store=tmp_path / "models", events=events, churn=False, candidates=10,
                     recommender=ALS(factors=8, iterations=3, random_state=0))
    assert m["data"]["event_exposures_added"] == 1
    scores = load_bundle(tmp_path / "models")["offers"]
    before = int(((ds.exposures["customer_id"] == cid) & (ds.exposures["offer_id"] == "PCT05")).sum())
    assert scores.exposures[scores.row(cid), scores.catalog.index["PCT05"]] == before + 1
    events.close()


def test_another_worker_sees_an_exposure_after_its_next_sync(store, retail, tmp_path):
    s = Settings(models=store, events_db=tmp_path / "events.sqlite", api_keys=KEYS, poll_interval=0)
    with TestClient(create_app(s)) as a, TestClient(create_app(s)) as b:
        cid, body = _personal_customer(b, retail)
        a.post("/v1/events", headers={"Authorization": "Bearer evt-key-00003"},
               json={"events": [{"type": "exposure", "customer_id": cid, "offer_id": body["offers"][0]["offer_id"]}]})
        assert b.get(f"/v1/customers/{cid}/next-best-offer", headers=SHOP).json()["offers"]   # not yet
        b.app.state.service.tick()                                       # what its background loop does
        held = b.get(f"/v1/customers/{cid}/next-best-offer", headers=SHOP).json()
        assert held["offers"] == [] and "cooldown" in held["not_shown"]


# ---------------------------------------------------------------------------- campaign readouts
def test_campaign_readout_route_matches_the_library_and_forgets_the_erased(store, retail, tmp_path):
    from personalize.data import CampaignData
    from personalize.experiments import readout

    ds = retail[0]
    s = Settings(models=store, events_db=tmp_path / "events.sqlite", api_keys=KEYS, poll_interval=0)
    with TestClient(create_app(s)) as c:
        listed = c.get("/v1/campaigns", headers=ALL).json()["campaigns"]
        ids = [x["campaign_id"] for x in listed]
        assert ids == sorted(ds.exposures["campaign_id"].dropna().unique().tolist())
        cid = ids[-1]
        r = c.get(f"/v1/campaigns/{cid}/readout?cuped=pre_spend", headers=ALL)
        assert r.status_code == 200, r.text
        body = r.json()
        lib = readout(CampaignData.from_dataset(ds), campaign_id=cid, cuped=["pre_spend"], n_bootstrap=0).to_dict()
        assert body["customers"] == lib["customers"] and body["causal"] is True
        assert [(a["arm"], a["n"], a["conversions"]) for a in body["arms"]] == \
            [(a["arm"], a["n"], a["conversions"]) for a in lib["arms"]]
        assert [lf["p_value"] for lf in body["lifts"]] == pytest.approx([lf["p_value"] for lf in lib["lifts"]])
        someone = ds.exposures.loc[ds.exposures["campaign_id"] == cid, "customer_id"].iloc[0]
        assert c.delete(f"/v1/customers/{someone}", headers={"Authorization": "Bearer adm-key-00004"}
                        ).status_code == 200
        after = c.get(f"/v1/campaigns/{cid}/readout", headers=ALL).json()
        assert after["customers"] == body["customers"] - 1
        assert c.get("/v1/campaigns/NOPE/readout", headers=ALL).status_code == 404
        assert c.get(f"/v1/campaigns/{cid}/readout?alpha=0.7", headers=ALL).status_code == 422
        assert c.get(f"/v1/campaigns/{cid}/readout", headers=SHOP).status_code == 403
        r = c.get(f"/v1/campaigns/{cid}/readout?cuped=no_such_column", headers=ALL)
        assert r.status_code == 422 and "no_such_column" in r.json()["detail"]


# ---------------------------------------------------------------------------- CLI
def _run(argv, capsys):
    from personalize.cli import main

    code = 0
    try:
        main(argv)
    except SystemExit as exc:
        code = 0 if exc.code is None else exc.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def sample_files(tmp_path_factory):
    from personalize.commands.demo import write_sample

    return write_sample(tmp_path_factory.mktemp("sample"), customers=1500, items=200, seed=3)


def test_offers_evaluate_cli_beats_the_rate_baselines(sample_files, capsys):
    import json

    p = {k: str(v) for k, v in sample_files.items()}
    code, out, err = _run(["offers", "evaluate", p["transactions"], "--offers", p["offers"], "--exposures",
                           p["exposures"], "--customers", p["customers"], "--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["test_exposures"] > 100 and doc["split"] > "2023"
    assert doc["model"]["auc"] > max(b["auc"] for b in doc["baselines"].values())
    assert doc["policy"]["status"] == "estimated"


def test_coupons_plan_cli_stays_within_budget_and_consent(sample_files, store, tmp_path, capsys):
    import json

    p = {k: str(v) for k, v in sample_files.items()}
    argv = ["coupons", "plan", p["transactions"], "--offers", p["offers"], "--exposures", p["exposures"],
            "--customers", p["customers"], "--budget", "40", "--ladder", "PCT05,PCT10,SPEND_A",
            "--channel", "email", "--out", str(tmp_path / "plan.csv"), "--plot", str(tmp_path / "curve.png"),
            "--json"]
    code, out, err = _run(argv, capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert 0 < doc["total_cost"] <= 40 and doc["customers"] > 0
    plan = pd.read_csv(tmp_path / "plan.csv", dtype={"customer_id": str})
    cust = pd.read_csv(p["customers"], dtype={"customer_id": str}).set_index("customer_id")
    assert len(plan) == doc["customers"] and set(plan["level"]) <= {"PCT05", "PCT10", "SPEND_A"}
    assert cust.loc[plan["customer_id"], "consent_email"].astype(bool).all()
    assert not cust.loc[plan["customer_id"], "suppressed"].astype(bool).any()
    assert (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"
    profits = [r["expected_incremental_profit"] for r in doc["curve"]]
    assert profits == sorted(profits) and profits[0] == 0
    # from a published bundle, without training
    code, out, err = _run(["coupons", "plan", "--models", str(store), "--budget", "100", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["total_cost"] <= 100


@pytest.mark.parametrize("extra, message", [(["--budget", "-1"], "--budget"), (["--plot", "x.jpg"], ".png"),
                                            (["--models", "m", "--ladder", "PCT05"], "--models")])
def test_coupons_plan_cli_refuses_bad_options(sample_files, capsys, extra, message):
    code, _out, err = _run(["coupons", "plan", str(sample_files["transactions"]), *extra], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_economics_from_dataset_codes_equal_the_plain_lines_path(retail):
    """economics() reads the Dataset's id codes; the Spark path gives economics_of_lines plain lines (ids as
    strings). Both give the same numbers, also with an order id missing (not an order) and a customer
    asked for who never bought (NaN basket); churn_features agrees between a Dataset and its frame."""
    from personalize.churn import churn_features
    from personalize.offers.features import economics, economics_of_lines

    ds = retail[0]
    cat = OfferCatalog.from_frame(ds.offers)
    day = pd.Timestamp(ds.exposures["exposed_at"].quantile(0.6)).normalize()
    tx = ds.until(day).transactions.copy()
    ids = np.append(np.asarray(tx["customer_id"].astype(str).unique()[:300], dtype=object), "never-bought")
    fast = economics(ds, cat, day, customer_ids=ids)
    slow = economics_of_lines(tx, ds.items, cat, ids, margin=fast_fill(ds, cat, day))
    for f in ("aov", "margin_rate", "share", "bought"):
        np.testing.assert_array_equal(getattr(fast, f), getattr(slow, f), err_msg=f)
    assert np.isnan(fast.aov[-1]) and np.isfinite(fast.aov[:-1]).all()
    # lines without an order id count in spend, not as orders: one order left -> the basket is all her spend
    gap = tx.copy()
    n_orders = gap.groupby(gap["customer_id"].astype(str))["order_id"].nunique()
    who = next(c for c in ids[:-1] if n_orders[c] >= 2)
    mine = np.flatnonzero((gap["customer_id"].astype(str) == who).to_numpy())
    keep_order = gap["order_id"].iloc[mine[0]]
    gap.loc[gap.index[mine], "order_id"] = np.where(gap["order_id"].iloc[mine] == keep_order, keep_order, None)
    one = economics_of_lines(gap, ds.items, cat, np.array([who], dtype=object), margin=0.3)
    assert one.aov[0] == pytest.approx(gap["amount"].iloc[mine].sum())
    everyone = economics(ds, cat, day)
    assert list(everyone.customer_ids) == sorted(tx["customer_id"].astype(str).unique())
    pd.testing.assert_frame_equal(churn_features(ds, day), churn_features(ds.transactions, day))


def fast_fill(ds, cat, day):
    from personalize.offers.features import margin_fill

    tx = ds.until(day).transactions
    return margin_fill(pd.Series(ds.items["margin"].to_numpy(np.float64), index=ds.items["item_id"].astype(str)),
                       tx["item_id"].astype(str).value_counts())


def test_candidate_affinity_equals_the_candidate_table_it_replaces(retail):
    """personalize train keeps only which offers' targets are among each customer's candidates (and frees the
    table): the affinity is the same as read from the table, whatever the customers' order and the catalog's."""
    from personalize.offers import CandidateAffinity
    from personalize.offers.scores import _affinity
    from personalize.recommenders import CandidateTable, Popular

    ds = retail[0]
    cat = OfferCatalog.from_frame(ds.offers)
    assert cat.targeted.any()
    rec = ALS(factors=8, iterations=3, random_state=0).fit(ds)
    table = CandidateTable.build(rec, ds, n=20, cold=Popular().fit(ds))
    kept = CandidateAffinity.from_table(cat, table, batch=97)  # batches that do not divide the customers
    ids = np.append(np.asarray(table.customer_ids[::-1][:400], dtype=object), "never-seen")
    none = np.zeros((len(ids), len(cat)), bool)
    from_table = _affinity(cat, none, table, ids)
    np.testing.assert_array_equal(_affinity(cat, none, kept, ids), from_table)
    assert from_table[:, cat.targeted].any() and not from_table[-1].any()
    reordered = OfferCatalog.from_frame(ds.offers.iloc[::-1].reset_index(drop=True))
    np.testing.assert_array_equal(_affinity(reordered, none, kept, ids), from_table[:, ::-1])


def test_campaign_history_from_codes_equals_the_plain_frame_path(retail):
    """A Dataset's coupon orders are counted on its customer codes, the Spark path's plain frame on id strings:
    the same counts, also with lines that have no order id (one per customer) and an unknown customer."""
    from types import SimpleNamespace

    from personalize.data import Dataset
    from personalize.offers.features import campaign_history

    ds = retail[0]
    tx = ds.transactions.copy()
    tx.loc[tx.index[::5], "order_id"] = None
    gappy = Dataset.from_frames(tx, items=ds.items, customers=ds.customers, offers=ds.offers, exposures=ds.exposures)
    for data in (ds, gappy):
        cut = pd.Timestamp(data.transactions["timestamp"].quantile(0.7))
        who = np.append(np.asarray(data.customer_vocab.ids, dtype=object)[::-1], "nobody")
        fast = campaign_history(data, cut, who)
        plain = campaign_history(SimpleNamespace(exposures=data.exposures, transactions=data.transactions), cut, who)
        pd.testing.assert_frame_equal(fast, plain, check_exact=True)
        assert fast["coupon_orders"].sum() > 0 and fast.loc["nobody", "coupon_orders"] == 0


def test_customer_frame_cut_part_by_part_equals_joining_the_whole_parts(retail):
    """customer_frame cuts each part (churn features, profiles) to the asked customers before computing the next
    (memory at a million customers): the same frame as joining the whole parts, including a customer with no
    history before the cutoff (all NaN but the campaign history) and one unknown to the data."""
    from personalize.analytics import profiles
    from personalize.churn import churn_features
    from personalize.offers.features import assemble_customer_frame, campaign_history, customer_frame, economics

    ds = retail[0]
    cat = OfferCatalog.from_frame(ds.offers)
    cut = pd.Timestamp(ds.transactions["timestamp"].quantile(0.6))
    first = ds.transactions.groupby("customer_id")["timestamp"].min()
    later = first[first >= cut].index.astype(str)[:3].tolist()  # first purchase after the cutoff
    assert later
    some = [c for c in np.asarray(ds.customer_vocab.ids, dtype=object)[:40:3] if c not in later]
    ids = np.asarray([*some, *later, "nobody"], dtype=object)
    econ = economics(ds, cat, cut, customer_ids=ids)
    got = customer_frame(ds, cut, econ)
    want = assemble_customer_frame(churn_features(ds, cut), profiles(ds, cut, shares=False),
                                   campaign_history(ds, cut, econ.customer_ids), econ.customer_ids)
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert got.loc[later + ["nobody"], "profile_discount_share"].isna().all()
    assert got["profile_discount_share"].notna().sum() >= 10
