"""campaign_training_set: features strictly before each exposure (a leakage test), arms, outcomes, clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from personalize.data import CampaignData, Dataset
from personalize.data.adapters import load_hillstrom
from personalize.datasets import make_retail
from personalize.errors import DataError
from personalize.uplift import CampaignTrainingSet, campaign_training_set


@pytest.fixture(scope="module")
def retail():
    ds, _ = make_retail(n_customers=1500, n_items=80, seed=3)
    return ds


def rebuild(ds: Dataset, tx: pd.DataFrame) -> Dataset:
    return Dataset.from_frames(tx, items=ds.items, customers=ds.customers, offers=ds.offers, exposures=ds.exposures)


def test_dataset_rows_arms_and_outcomes(retail):
    ts = campaign_training_set(retail, campaign_id="CMP02")
    exp = retail.exposures[retail.exposures["campaign_id"] == "CMP02"].reset_index(drop=True)
    assert isinstance(ts, CampaignTrainingSet) and len(ts) == len(exp)
    np.testing.assert_array_equal(ts.customer_id, exp["customer_id"].to_numpy(dtype=object))
    np.testing.assert_array_equal(ts.treatment == "control", exp["offer_id"].isna().to_numpy())
    np.testing.assert_array_equal(ts.treatment[exp["offer_id"].notna().to_numpy()],
                                  exp["offer_id"].dropna().to_numpy(dtype=object))
    np.testing.assert_array_equal(ts.y, exp["converted"].to_numpy(dtype=float))
    np.testing.assert_allclose(ts.outcomes["revenue"], exp["revenue"])
    assert ts.target == "converted" and ts.control_name == "control" and ts.randomized is True
    assert set(ts.treatment_names) == set(exp["offer_id"].dropna())
    assert (ts.feature_cutoff == exp["exposed_at"].min().to_datetime64()).all()  # one campaign, one day
    assert {"recency_days", "purchases", "spend_total", "profile_discount_share"} <= set(ts.X.columns)
    assert ts.X.dtypes.map(lambda d: d == np.float64).all()
    # a customer's features are her snapshot as of the exposure: recency = cutoff - last purchase day
    row = int(np.flatnonzero(ts.X["purchases"].notna().to_numpy())[0])
    cust, cut = ts.customer_id[row], pd.Timestamp(ts.feature_cutoff[row])
    tx = retail.transactions
    mine = tx[(tx["customer_id"] == cust) & (tx["timestamp"] < cut)]
    assert ts.X.loc[row, "purchases"] == mine["timestamp"].dt.normalize().nunique()
    assert ts.X.loc[row, "spend_total"] == pytest.approx(mine["amount"].sum())
    # customers without a purchase before the exposure: NaN, counted
    never = ~exp["customer_id"].isin(tx.loc[tx["timestamp"] < cut, "customer_id"]).to_numpy()
    assert never.any() and ts.X.loc[never].isna().all(axis=1).all()
    assert ts.meta["rows_without_features"] == int(never.sum())
    revenue = campaign_training_set(retail, campaign_id="CMP02", target="revenue", features=["recency_days"])
    np.testing.assert_allclose(revenue.y, exp["revenue"])
    assert list(revenue.X.columns) == ["recency_days"]


def test_nothing_after_the_exposure_leaks_in(retail):
    """Rewrite every transaction from each campaign's first exposure on: the features of that campaign's
    exposures (and of earlier ones) must not move. A change *before* the exposure must move them."""
    exp = retail.exposures
    base = rebuild(retail, retail.transactions)
    before = campaign_training_set(base)
    pd.testing.assert_frame_equal(before.X, campaign_training_set(retail).X)
    rng = np.random.default_rng(0)
    for cid in ("CMP02", "CMP03"):
        first = exp.loc[exp["campaign_id"] == cid, "exposed_at"].min()
        tx = retail.transactions.copy()
        after = (tx["timestamp"] >= first).to_numpy()
        # drop half of the later lines, triple the price of the rest
        drop = after & (rng.random(len(tx)) < 0.5)
        tx = tx.loc[~drop].copy()
        late = (tx["timestamp"] >= first).to_numpy()
        tx.loc[late, "price"] = tx.loc[late, "price"] * 3
        exposed = exp.loc[exp["campaign_id"] == cid, ["customer_id", "exposed_at"]]
        earlier = tx[(tx["timestamp"] < first).to_numpy()].drop_duplicates("customer_id").head(40)
        extra = [
            # purchases at exactly the first exposure and right after each customer's own exposure
            pd.DataFrame({"customer_id": exposed["customer_id"], "item_id": tx["item_id"].iloc[0],
                          "timestamp": first, "quantity": 2.0, "price": 99.0}),
            pd.DataFrame({"customer_id": exposed["customer_id"], "item_id": tx["item_id"].iloc[1],
                          "timestamp": exposed["exposed_at"] + pd.Timedelta(minutes=1), "quantity": 1.0,
                          "price": 10.0}),
            # returns, after the exposure, of items bought before it
            pd.DataFrame({"customer_id": earlier["customer_id"], "item_id": earlier["item_id"],
                          "timestamp": first + pd.Timedelta(days=2), "quantity": -earlier["quantity"],
                          "price": earlier["price"]}),
        ]
        changed = rebuild(retail, pd.concat([tx, *extra], ignore_index=True).sort_values("timestamp"))
        assert len(changed.returns) > 0  # the returns were netted against the earlier purchases
        after_change = campaign_training_set(changed)
        keep = (exp["exposed_at"] < first + pd.Timedelta(days=1)).to_numpy()  # this campaign and earlier ones
        assert keep.sum() > 300 and (~keep).any()
        # the same values in every column; a column only one side has (a channel first used after the
        # exposure: the new lines have none, "other") says nothing on these rows: 0 for all of them
        common = [c for c in before.X.columns if c in after_change.X.columns]
        assert len(common) == before.X.shape[1]
        pd.testing.assert_frame_equal(before.X.loc[keep, common], after_change.X.loc[keep, common])
        extra = after_change.X.loc[keep, [c for c in after_change.X.columns if c not in common]]
        assert ((extra == 0) | extra.isna()).all().all()
        np.testing.assert_array_equal(before.treatment, after_change.treatment)
        # the later campaigns do see the change: the comparison can fail
        assert not before.X.loc[~keep].equals(after_change.X.loc[~keep])

    # negative control: one purchase an hour *before* CMP02's first exposure moves that customer's row
    first = exp.loc[exp["campaign_id"] == "CMP02", "exposed_at"].min()
    cust = exp.loc[exp["campaign_id"] == "CMP02", "customer_id"].iloc[0]
    add = pd.DataFrame({"customer_id": [cust], "item_id": [retail.transactions["item_id"].iloc[0]],
                        "timestamp": [first - pd.Timedelta(hours=1)], "quantity": [1.0], "price": [55.0]})
    moved = campaign_training_set(rebuild(retail, pd.concat([retail.transactions, add], ignore_index=True)
                                          .sort_values("timestamp")), campaign_id="CMP02")
    ref = campaign_training_set(base, campaign_id="CMP02")
    row = np.flatnonzero(ref.customer_id == cust)
    assert ref.X.iloc[row]["spend_total"].fillna(0).iloc[0] + 55.0 == pytest.approx(
        moved.X.iloc[row]["spend_total"].iloc[0])
    others = np.flatnonzero(ref.customer_id != cust)
    pd.testing.assert_series_equal(ref.X["spend_total"].iloc[others], moved.X["spend_total"].iloc[others])


def test_exposures_over_several_days_use_each_days_first_exposure(retail):
    exp = retail.exposures[retail.exposures["campaign_id"] == "CMP01"].copy()
    second_day = np.arange(len(exp)) % 2 == 1
    exp.loc[second_day, "exposed_at"] = exp.loc[second_day, "exposed_at"] + pd.Timedelta(days=10)
    ds = retail.with_tables(exposures=exp)  # replaces the exposures table
    ts = campaign_training_set(ds)
    assert len(np.unique(ts.feature_cutoff)) == 2
    assert (ts.feature_cutoff <= ts.exposed_at).all()
    for cut in np.unique(ts.feature_cutoff):
        rows = ts.feature_cutoff == cut
        assert cut == ts.exposed_at[rows].min()


def hillstrom_like(n: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    arm = rng.choice(["No E-Mail", "Mens E-Mail", "Womens E-Mail"], n)
    history = rng.gamma(2.0, 120.0, n).round(2)
    seg = np.select([history < 100, history < 200, history < 350], ["1) $0 - $100", "2) $100 - $200",
                                                                     "3) $200 - $350"], "4) $350 - $500")
    visit = (rng.random(n) < np.where(arm == "No E-Mail", 0.1, 0.16)).astype(int)
    conversion = visit * (rng.random(n) < 0.1)
    return pd.DataFrame({"recency": rng.integers(1, 13, n), "history_segment": seg, "history": history,
                         "mens": rng.integers(0, 2, n), "womens": rng.integers(0, 2, n),
                         "zip_code": rng.choice(["Urban", "Surburban", "Rural"], n),
                         "newbie": rng.integers(0, 2, n), "channel": rng.choice(["Phone", "Web", "Multichannel"], n),
                         "segment": arm, "visit": visit, "conversion": conversion,
                         "spend": np.where(conversion == 1, rng.gamma(2.0, 60.0, n).round(2), 0.0)})


def test_campaign_data_features_table(tmp_path):
    raw = hillstrom_like()
    path = tmp_path / "h.csv"
    raw.to_csv(path, index=False)
    data = load_hillstrom(path)
    ts = campaign_training_set(data, treatments=["Womens E-Mail"], target="revenue")
    keep = raw["segment"].isin(["Womens E-Mail", "No E-Mail"]).to_numpy()
    assert len(ts) == keep.sum() and set(ts.treatment) == {"Womens E-Mail", "No E-Mail"}
    assert ts.control_name == "No E-Mail" and ts.treatment_names == ["Womens E-Mail"]
    np.testing.assert_allclose(ts.y, raw.loc[keep, "spend"])
    np.testing.assert_allclose(ts.outcomes["converted"], raw.loc[keep, "visit"])
    np.testing.assert_allclose(ts.X["history"], raw.loc[keep, "history"])
    assert (ts.X["channel"].to_numpy() == raw.loc[keep, "channel"].to_numpy()).all()
    assert np.isnat(ts.feature_cutoff).all() and ts.meta["feature_source"] == "features table"
    both = campaign_training_set(data)
    assert len(both) == len(raw) and both.treatment_names == ["Mens E-Mail", "Womens E-Mail"]
    s = both.summary()
    assert s["arms"]["No E-Mail"]["rows"] == int((raw["segment"] == "No E-Mail").sum())
    sub = both.subset(both.treatment != "Mens E-Mail")
    assert len(sub) == keep.sum() and sub.X.index.equals(pd.RangeIndex(len(sub)))
    # a customer missing from the features table gets NaN features, and is counted
    feats = data.features.drop(index=data.features.index[:5])
    partial = CampaignData(data.exposures, features=feats, control_name="No E-Mail")
    ts2 = campaign_training_set(partial)
    assert ts2.meta["rows_without_features"] == 5 and ts2.X.iloc[:5].isna().all().all()


def test_errors_name_the_field(tmp_path, retail):
    raw = hillstrom_like()
    path = tmp_path / "h.csv"
    raw.to_csv(path, index=False)
    data = load_hillstrom(path)

    def err(**kw):
        src = kw.pop("data", data)
        with pytest.raises(DataError) as e:
            campaign_training_set(src, **kw)
        return e.value

    e = err(treatments=["Kids E-Mail"])
    assert e.column == "offer_id" and "Kids E-Mail" in str(e) and "Womens E-Mail" in str(e)
    assert err(treatments=["No E-Mail"]).column == "offer_id"
    assert err(target="visits").table == "exposures"
    e = err(features=["history", "age"])
    assert e.column == "age" and e.table == "features"
    assert err(campaign_id="spring").column == "campaign_id"
    no_feats = CampaignData(data.exposures, control_name="No E-Mail")
    assert err(data=no_feats).table == "features"
    no_control = CampaignData(data.exposures[data.exposures["offer_id"].notna()], features=data.features,
                              control_name="No E-Mail")
    e = err(data=no_control)
    assert e.column == "offer_id" and "control" in str(e)
    no_conv = CampaignData(data.exposures.drop(columns="converted"), features=data.features,
                           control_name="No E-Mail")
    assert err(data=no_conv).column == "converted"
    assert err(data=retail, campaign_id="CMP99").column == "campaign_id"
    with pytest.raises(DataError, match="expected CampaignData"):
        campaign_training_set(pd.DataFrame({"a": [1]}))


def test_real_hillstrom_training_set(shared_data):
    data = load_hillstrom(shared_data / "hillstrom" / "hillstrom.csv.gz")
    ts = campaign_training_set(data, treatments=["Womens E-Mail"])
    s = ts.summary()
    assert s["rows"] == 21387 + 21306 and s["randomized"] is True
    assert s["arms"]["Womens E-Mail"]["mean_converted"] == pytest.approx(0.1514, abs=5e-5)  # the README's rates
    assert s["arms"]["No E-Mail"]["mean_converted"] == pytest.approx(0.1062, abs=5e-5)
    assert ts.feature_names == ["recency", "history", "mens", "womens", "zip_code", "newbie", "channel",
                                "history_segment"]
    spend = campaign_training_set(data, treatments=["Mens E-Mail"], target="revenue")
    assert spend.y[spend.treatment == "Mens E-Mail"].mean() == pytest.approx(1.4226, abs=5e-5)
    assert spend.y[spend.treatment == "No E-Mail"].mean() == pytest.approx(0.6528, abs=5e-5)
