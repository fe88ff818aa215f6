"""The synthetic retail generator: determinism, the data contract, and planted truth that models can find."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from personalize.data.dataset import LABEL_COLUMNS
from personalize.data.schema import OFFER_KINDS, TABLES
from personalize.datasets import DEFAULT_DEFECT_RATES, RetailTruth, make_retail, make_retail_frames
from personalize.errors import PersonalizeError, UnknownIdError

SMALL = dict(n_customers=600, n_items=80, n_categories=8, days=240, seed=3)
_DTYPES = {"id": "str", "str": "str", "time": "datetime64[ns]", "float": "float64", "bool": "bool",
           "int": "int64"}


@pytest.fixture(scope="module")
def small():
    return make_retail_frames(**SMALL)


@pytest.fixture(scope="module")
def year():
    """A year of 3000 customers without campaigns: organic behaviour only."""
    return make_retail_frames(n_customers=3000, n_items=150, seed=11, exposures=False)


@pytest.fixture(scope="module")
def campaign():
    """Every customer exposed in each of 4 randomized campaigns."""
    return make_retail_frames(n_customers=4000, n_items=100, n_categories=8, seed=5, campaign_share=1.0)


def _codes(series: pd.Series, ids: np.ndarray) -> np.ndarray:
    pos = np.searchsorted(ids, series.to_numpy(dtype=object))
    assert (ids[np.minimum(pos, len(ids) - 1)] == series.to_numpy(dtype=object)).all()
    return pos


# ----------------------------------------------------------------------------- determinism and contract
def test_same_seed_same_data_other_seed_other_data(small):
    frames, truth = small
    again, truth2 = make_retail_frames(**SMALL)
    assert frames.keys() == again.keys()
    for name in frames:
        pd.testing.assert_frame_equal(frames[name], again[name])
    np.testing.assert_array_equal(truth.customer_factors, truth2.customer_factors)
    np.testing.assert_array_equal(truth.uplift, truth2.uplift)
    other, _ = make_retail_frames(**{**SMALL, "seed": 4})
    assert not frames["transactions"].equals(other["transactions"])


def test_tables_follow_the_data_contract(small):
    frames, truth = small
    assert set(frames) == {"transactions", "items", "customers", "offers", "exposures"}
    for name, df in frames.items():
        schema = TABLES[name]
        assert list(df.columns) == list(schema.columns), name
        for col, kind in schema.columns.items():
            assert str(df[col].dtype) == _DTYPES[kind], (name, col, df[col].dtype)
        assert isinstance(df.index, pd.RangeIndex)
    tx = frames["transactions"]
    assert tx["timestamp"].is_monotonic_increasing
    assert tx["timestamp"].min() >= truth.start and tx["timestamp"].max() < truth.end
    assert tx["customer_id"].str.fullmatch(r"C\d{6}").all() and tx["item_id"].str.fullmatch(r"I\d{5}").all()
    assert tx["order_id"].str.fullmatch(r"O\d{8}").all()
    assert (tx["quantity"] >= 1).all() and (tx["price"] > 0).all()
    assert tx[["order_id", "item_id"]].duplicated().sum() == 0          # one line per item and order
    per_order = tx.groupby("order_id").agg(c=("customer_id", "nunique"), t=("timestamp", "nunique"),
                                           ch=("channel", "nunique"))
    assert (per_order == 1).all().all()
    assert set(tx["channel"]) == {"web", "store", "app"}
    assert tx["store_id"].notna().eq(tx["channel"] == "store").all()
    hours = tx["timestamp"].dt.hour
    assert hours.between(8, 20).all()
    # every id is in its table; tables are keyed
    assert set(tx["customer_id"]) <= set(frames["customers"]["customer_id"])
    assert set(tx["item_id"]) <= set(frames["items"]["item_id"])
    assert frames["customers"]["customer_id"].is_unique and frames["items"]["item_id"].is_unique
    assert list(truth.customer_ids) == frames["customers"]["customer_id"].tolist()
    assert list(truth.item_ids) == frames["items"]["item_id"].tolist()
    assert truth.n_lines == len(tx) and truth.n_orders == tx["order_id"].nunique()


def test_customers_items_and_offers_tables(small):
    frames, truth = small
    cust, items, offers = frames["customers"], frames["items"], frames["offers"]
    age = (truth.start - cust["birth_date"]).dt.days / 365.25
    assert age.between(18, 87).all()
    assert set(cust["region"]) <= {"north", "south", "east", "west", "central"}
    for col in ("consent_email", "consent_sms", "consent_personalization"):
        assert 0.1 < cust[col].mean() < 0.99
    # no purchase before signing up; new customers buy on their signup day
    tx = frames["transactions"]
    first = tx.groupby("customer_id")["timestamp"].min()
    signup = cust.set_index("customer_id")["signup_date"].reindex(first.index)
    assert (first >= signup).all()
    new = signup >= truth.start
    assert (first[new].dt.normalize() == signup[new]).mean() > 0.95
    # items: categories, consumables with a cycle, prices and margins
    assert items["category"].nunique() == SMALL["n_categories"]
    assert items["repeatable"].any() and not items["repeatable"].all()
    assert np.isfinite(truth.item_cycle_days[items["repeatable"].to_numpy()]).all()
    assert np.isnan(truth.item_cycle_days[~items["repeatable"].to_numpy()]).all()
    assert (items["price"] > 0).all() and items["margin"].between(0, 1).all()
    assert items["brand"].notna().all() and items["description"].notna().all()
    # tx prices are the catalog list prices
    catalog = items.set_index("item_id")["price"]
    np.testing.assert_array_equal(tx["price"].to_numpy(), catalog.reindex(tx["item_id"]).to_numpy())
    # offers: all five kinds, sane values
    assert set(offers["kind"]) == set(OFFER_KINDS)
    assert offers["offer_id"].is_unique and (offers["value"] > 0).all()
    spend = offers[offers["kind"] == "spend_get_off"]
    assert (spend["min_spend"] > spend["value"]).all()
    assert offers["target_category"].notna().sum() == 1 and offers["target_items"].notna().sum() == 1
    assert offers["target_category"].dropna().isin(items["category"]).all()
    assert set(offers["target_items"].dropna().iloc[0].split("|")) <= set(items["item_id"])


def test_coupon_lines_are_consistent_with_offers(campaign):
    frames, _ = campaign
    tx, offers = frames["transactions"], frames["offers"].set_index("offer_id")
    used = tx[tx["coupon_id"].notna()]
    assert len(used) > 100 and set(used["coupon_id"]) <= set(offers.index)
    assert (tx.loc[tx["coupon_id"].isna(), "discount"] == 0).all()
    gross = used["quantity"] * used["price"]
    assert (used["discount"] >= 0).all() and (used["discount"] <= gross + 1e-9).all()
    pct = used[used["coupon_id"].map(offers["kind"]) == "percent_off"]
    expected = (pct["quantity"] * pct["price"] * pct["coupon_id"].map(offers["value"]) / 100).round(2)
    np.testing.assert_allclose(pct["discount"], expected, atol=0.011)
    # spend thresholds are met by every redeemed order
    sg = used[used["coupon_id"].map(offers["kind"]) == "spend_get_off"]
    spent = (sg["quantity"] * sg["price"]).groupby(sg["order_id"]).sum()
    need = sg.groupby("order_id")["coupon_id"].first().map(offers["min_spend"])
    assert len(spent) and (spent >= need - 1e-9).all()
    # targeted offers discount only their targets
    cat15 = used[used["coupon_id"] == "CAT15"]
    items = frames["items"].set_index("item_id")
    assert (cat15["item_id"].map(items["category"]) == offers.loc["CAT15", "target_category"]).all()


def test_lines_per_customer_size_knob(year):
    _, truth = year
    assert 16 <= truth.summary()["lines_per_customer"] <= 25
    assert truth.params["n_customers"] == 3000


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(PersonalizeError, match="n_items"):
        make_retail_frames(n_items=5, n_categories=12)
    with pytest.raises(PersonalizeError, match="too short"):
        make_retail_frames(n_customers=50, days=40)
    with pytest.raises(PersonalizeError, match="offers"):
        make_retail_frames(n_customers=50, offers=False, exposures=True)
    with pytest.raises(PersonalizeError, match="defect_rates"):
        make_retail_frames(n_customers=50, defects=True, defect_rates={"typo": 0.1})
    with pytest.raises(PersonalizeError, match="n_customers"):
        make_retail_frames(n_customers=0)
    with pytest.raises(PersonalizeError, match="start"):
        make_retail_frames(n_customers=50, start="not a date")
    frames, truth = make_retail_frames(n_customers=50, n_items=20, days=40, offers=False, exposures=False)
    assert set(frames) == {"transactions", "items", "customers"} and truth.offer_response.shape == (50, 0)


# ----------------------------------------------------------------------------- Dataset and defects
def test_make_retail_builds_a_clean_dataset(small):
    ds, truth = make_retail(**SMALL)
    assert ds.report.dropped == {} and ds.report.kept_rows == truth.n_lines
    assert len(ds.customer_vocab) == SMALL["n_customers"] and len(ds.item_vocab) == SMALL["n_items"]
    assert ds.offers is not None and ds.exposures is not None and len(ds.exposures) == len(small[0]["exposures"])
    tx = ds.transactions.drop(columns="amount")
    # channels, stores and coupon codes are held as categoricals (a few codes, not a string a line): same values
    assert all(isinstance(tx[c].dtype, pd.CategoricalDtype) for c in LABEL_COLUMNS)
    pd.testing.assert_frame_equal(tx.astype({c: "str" for c in LABEL_COLUMNS}), small[0]["transactions"])
    # the exposure truth stays aligned with the Dataset's (time-sorted) exposures
    assert (ds.exposures["customer_id"].to_numpy() == truth.exposure_truth["customer_id"].to_numpy()).all()
    assert (ds.exposures["campaign_id"].to_numpy() == truth.exposure_truth["campaign_id"].to_numpy()).all()


def test_defects_are_counted_and_cleaning_accounts_for_them(small):
    frames, truth = make_retail_frames(**SMALL, defects=True)
    d = truth.defects
    n_clean = len(small[0]["transactions"])
    assert d["duplicate_lines"] == round(DEFAULT_DEFECT_RATES["duplicate"] * n_clean)
    assert min(d["duplicate_lines"], d["return_lines"], d["guest_lines"], d["zero_price_lines"]) > 0
    tx = frames["transactions"]
    assert tx["timestamp"].is_monotonic_increasing
    assert (tx["quantity"] < 0).sum() == d["return_lines"]
    assert tx["order_id"][tx["quantity"] < 0].str.startswith("RO").all()
    assert tx["customer_id"].isna().sum() == d["guest_lines"]
    assert (tx["price"] == 0).sum() == d["zero_price_lines"]
    assert tx.duplicated().sum() == d["duplicate_lines"]
    # the clean rows are exactly the defects=False data, in the same order
    defect = tx.duplicated() | (tx["quantity"] < 0) | tx["customer_id"].isna() | (tx["price"] == 0)
    pd.testing.assert_frame_equal(tx[~defect].reset_index(drop=True), small[0]["transactions"])

    ds, _ = make_retail(**SMALL, defects=True)
    r = ds.report
    assert r.input_rows == len(tx)
    assert r.dropped["exact_duplicate"] == d["duplicate_lines"]
    assert r.dropped["guest"] == d["guest_lines"]
    assert r.dropped["return"] == d["return_lines"]
    assert r.dropped["zero_price"] == d["zero_price_lines"]
    assert r.details["netted_quantity"] == pytest.approx(d["returned_quantity"])
    assert set(r.dropped) <= {"exact_duplicate", "guest", "return", "returned_purchase", "zero_price"}
    assert ds.transactions["quantity"].sum() == pytest.approx(
        small[0]["transactions"]["quantity"].sum() - d["returned_quantity"])


# ----------------------------------------------------------------------------- planted structure
def test_purchases_concentrate_on_true_top_items(year):
    frames, truth = year
    tx = frames["transactions"]
    c = _codes(tx["customer_id"], truth.customer_ids)
    i = _codes(tx["item_id"], truth.item_ids)
    top = truth.true_top_items(k=10)
    assert top.shape == (3000, 10)
    top_idx = np.searchsorted(truth.item_ids, top)
    in_own_top = (top_idx[c] == i[:, None]).any(axis=1).mean()
    popular = np.argsort(-truth.item_popularity)[:10]
    in_popular = np.isin(i, popular).mean()
    assert in_own_top > 0.3 and in_own_top > 1.7 * in_popular
    # scores and probabilities agree with the ranking
    probs = truth.true_item_probabilities(truth.customer_ids[:5])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert (np.argmax(probs, axis=1) == top_idx[:5, 0]).all()
    with pytest.raises(UnknownIdError):
        truth.true_top_items(["C999999"])


def test_collaborative_signal_beyond_popularity(year):
    """A rank-8 factorization of the history beats popularity on the last 60 days."""
    frames, truth = year
    tx = frames["transactions"]
    cut = truth.end - pd.Timedelta(days=60)
    c = _codes(tx["customer_id"], truth.customer_ids)
    i = _codes(tx["item_id"], truth.item_ids)
    before = (tx["timestamp"] < cut).to_numpy()
    x = np.zeros((len(truth.customer_ids), len(truth.item_ids)))
    np.add.at(x, (c[before], i[before]), 1.0)
    test = np.zeros_like(x, dtype=bool)
    test[c[~before], i[~before]] = True
    test &= x == 0                                   # new items only
    users = np.flatnonzero(test.any(axis=1) & (x.sum(axis=1) >= 3))
    with threadpool_limits(1, "blas"):
        u, s, vt = np.linalg.svd(np.log1p(x), full_matrices=False)
    cf = (u[:, :8] * s[:8]) @ vt[:8]
    pop = np.tile(x.sum(axis=0), (len(x), 1)).astype(float)

    def recall(scores):
        scores = np.where(x > 0, -np.inf, scores)[users]
        top = np.argsort(-scores, axis=1)[:, :10]
        hits = np.take_along_axis(test[users], top, axis=1).sum(axis=1)
        return float((hits / np.minimum(test[users].sum(axis=1), 10)).mean())

    oracle = recall(truth.true_scores().astype(float))
    assert recall(cf) > 1.2 * recall(pop)
    assert oracle > recall(cf)


def test_consumables_are_rebought_near_their_cycle(year):
    frames, truth = year
    tx = frames["transactions"]
    d = tx[["customer_id", "item_id"]].copy()
    d["day"] = (tx["timestamp"] - truth.start).dt.total_seconds() / 86400
    d = d.sort_values(["customer_id", "item_id", "day"], kind="stable")
    same = (d["customer_id"].eq(d["customer_id"].shift())) & (d["item_id"].eq(d["item_id"].shift()))
    gaps = (d["day"] - d["day"].shift())[same]
    items = d["item_id"][same]
    med = gaps.groupby(items).median()
    n = gaps.groupby(items).size()
    cycle = pd.Series(truth.item_cycle_days, index=truth.item_ids)
    rep = cycle.notna()
    ok = med.index[(n.reindex(med.index) >= 15) & rep.reindex(med.index)]
    assert len(ok) >= 15
    ratio = med[ok] / cycle[ok]
    assert 0.85 < ratio.median() < 1.15
    assert np.corrcoef(np.log(med[ok]), np.log(cycle[ok]))[0, 1] > 0.9
    # consumables are re-bought far more often than other items
    rebuy = same.groupby(d["item_id"]).mean()
    assert rebuy[rep[rep].index.intersection(rebuy.index)].mean() > 3 * rebuy[rep[~rep].index.intersection(rebuy.index)].mean()


def test_no_purchases_after_dropout_and_truth_is_calibrated(year):
    frames, truth = year
    tx = frames["transactions"]
    c = _codes(tx["customer_id"], truth.customer_ids)
    assert (tx["timestamp"].to_numpy() < truth.dropout_time[c]).all()
    assert (tx["timestamp"].to_numpy() >= truth.acquired_at[c]).all()
    assert truth.alive_at_end.mean() == pytest.approx(truth.alive_at(truth.end).mean())
    assert 0.4 < truth.alive_at_end.mean() < 0.9
    # churn truth: P(no order in the last 60 days) matches what happened
    as_of = truth.end - pd.Timedelta(days=60)
    p = truth.true_churn_probability(as_of, 60)
    acquired = ~np.isnan(p)
    bought = np.zeros(len(p), dtype=bool)
    bought[c[(tx["timestamp"] >= as_of).to_numpy()]] = True
    assert np.all(p[~truth.alive_at(as_of) & acquired] == 1.0) and not bought[p == 1.0].any()
    assert abs(p[acquired].mean() - (~bought[acquired]).mean()) < 0.03
    bins = np.digitize(p[acquired], [0.2, 0.4, 0.6, 0.8])
    realized = pd.Series((~bought[acquired]).astype(float)).groupby(bins).mean()
    predicted = pd.Series(p[acquired]).groupby(bins).mean()
    assert (realized - predicted).abs().max() < 0.08
    # expected orders (organic + re-buys already planned) track the count, a little below it
    orders = tx[tx["timestamp"] >= as_of].groupby("customer_id")["order_id"].nunique()
    orders = orders.reindex(truth.customer_ids, fill_value=0).to_numpy()
    expected = truth.true_expected_orders(as_of, 60)
    assert 0.75 * orders.sum() < expected.sum() < orders.sum()
    assert np.corrcoef(expected, orders)[0, 1] > 0.6
    assert np.isnan(truth.true_churn_probability(truth.start, 30)).any()   # later sign-ups


def test_randomized_campaigns_carry_the_true_uplift(campaign):
    frames, truth = campaign
    ex = frames["exposures"]
    et = truth.exposure_truth
    assert len(et) == len(ex) and (et["customer_id"] == ex["customer_id"]).all()
    assert ex["randomized"].all() and ex["campaign_id"].nunique() == 4
    assert ex[["customer_id", "campaign_id"]].duplicated().sum() == 0
    control = ex["offer_id"].isna()
    assert 0.15 < control.mean() < 0.25
    assert set(ex["offer_id"].dropna()) == set(truth.offer_ids)
    # treated convert more; control converts at the true base rate; treated at base + uplift
    conv = ex["converted"].to_numpy(dtype=float)
    assert conv[~control].mean() > conv[control].mean() + 0.03
    assert abs(conv[control].mean() - et["base_rate"][control].mean()) < 0.02
    assert abs(conv[~control].mean() - (et["base_rate"] + et["uplift"])[~control].mean()) < 0.015
    assert et["uplift"][control].isna().all() and (et["uplift"][~control] >= 0).all()
    assert (ex["revenue"] >= 0).all() and not (ex["revenue"] > 0)[~ex["converted"]].any()
    assert (ex["revenue"] > 0)[ex["converted"]].mean() > 0.99
    # uplift differs by discount level, in truth and in the data
    by_offer = et[~control].groupby("offer_id")["uplift"].mean()
    assert by_offer["PCT05"] < by_offer["PCT10"] < by_offer["PCT20"]
    assert by_offer["SPEND_A"] < by_offer["SPEND_B"]
    rate = ex.assign(c=conv).groupby(ex["offer_id"].fillna("control"))["c"].mean()
    assert rate["PCT20"] - rate["control"] > rate["PCT05"] - rate["control"] + 0.02
    # and by customer: the discount-sensitive respond more
    sens = truth.discount_sensitivity
    hi, lo = sens > np.quantile(sens, 0.75), sens < np.quantile(sens, 0.25)
    col = list(truth.offer_ids).index("PCT10")
    assert truth.offer_response[hi, col].mean() > 3 * truth.offer_response[lo, col].mean()
    # the uplift matrix at the end is zero for customers who dropped out
    assert truth.uplift.shape == (4000, len(truth.offer_ids))
    assert (truth.uplift[~truth.alive_at_end] == 0).all() and (truth.uplift[truth.alive_at_end] > 0).any()
    np.testing.assert_allclose(truth.true_uplift(customer_ids=truth.customer_ids[:50], offer_ids=["PCT10"])[:, 0],
                               truth.uplift[:50, col], rtol=1e-5)


def test_truth_is_a_retail_truth(small):
    _, truth = small
    assert isinstance(truth, RetailTruth)
    s = truth.summary()
    assert s["n_customers"] == SMALL["n_customers"] and s["n_items"] == SMALL["n_items"]
    assert set(s["mean_uplift_at_end"]) == set(truth.offer_ids)
    assert truth.customer_factors.shape == (SMALL["n_customers"], 8)
    assert truth.item_factors.shape == (SMALL["n_items"], 8)
    assert truth.item_popularity.sum() == pytest.approx(1.0)
    assert truth.churn_hazard.shape == truth.purchase_rate.shape == (SMALL["n_customers"],)
    assert truth.dropout_time.dtype == np.dtype("datetime64[ns]")
