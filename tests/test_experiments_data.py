"""CampaignData: validation, the Hillstrom and generic exposure loaders, point-in-time features."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from personalize.data import Dataset
from personalize.data.adapters import HILLSTROM_FEATURES, load_exposures, load_hillstrom
from personalize.data.campaign import FEATURE_COLUMNS, CampaignData
from personalize.errors import DataError


@pytest.fixture(scope="module")
def hillstrom(shared_data):
    return load_hillstrom(shared_data / "hillstrom" / "hillstrom.csv.gz")


@pytest.mark.realdata
def test_hillstrom_loads_as_a_randomized_three_arm_test(hillstrom):
    d = hillstrom
    assert len(d) == 64_000
    assert d.treatment_names == ["Mens E-Mail", "Womens E-Mail"]
    assert d.control_name == "No E-Mail" and d.outcome_name == "visits"
    assert d.randomized is True and d.campaign_ids == ["hillstrom"]
    assert d.arms.value_counts().to_dict() == {"Womens E-Mail": 21_387, "Mens E-Mail": 21_307, "No E-Mail": 21_306}
    assert int(d.control_mask.sum()) == 21_306 and d.exposures["offer_id"][d.control_mask].isna().all()
    assert d.planned_split == pytest.approx({"No E-Mail": 1 / 3, "Mens E-Mail": 1 / 3, "Womens E-Mail": 1 / 3})
    assert list(d.features.columns) == list(HILLSTROM_FEATURES)
    assert d.features.index.is_unique and d.features.index.name == "customer_id"
    assert d.features["history"].dtype == np.float64 and d.features["recency"].dtype == np.int64
    assert (d.features_for_exposures(["history"]).index == d.exposures.index).all()
    assert d.exposures["exposed_at"].nunique() == 1


@pytest.mark.realdata
def test_hillstrom_target_conversion_and_bad_target(shared_data):
    path = shared_data / "hillstrom" / "hillstrom.csv.gz"
    d = load_hillstrom(path, target="conversion")
    assert int(d.exposures["converted"].sum()) == 578 and d.outcome_name == "conversions"
    with pytest.raises(DataError, match="target must be one of"):
        load_hillstrom(path, target="spend")


def test_hillstrom_loader_names_missing_columns(tmp_path):
    p = tmp_path / "h.csv"
    pd.DataFrame({"segment": ["No E-Mail"], "visit": [0]}).to_csv(p, index=False)
    with pytest.raises(DataError, match=r"not a Hillstrom file: missing columns \['conversion', 'spend'"):
        load_hillstrom(p)


def test_hillstrom_loader_rejects_unknown_segment(tmp_path):
    row = {"recency": 1, "history_segment": "1) $0 - $100", "history": 10.0, "mens": 1, "womens": 0,
           "zip_code": "Urban", "newbie": 0, "channel": "Web", "visit": 0, "conversion": 0, "spend": 0.0}
    p = tmp_path / "h.csv"
    pd.DataFrame([{**row, "segment": "No E-Mail"}, {**row, "segment": "Kids E-Mail"}]).to_csv(p, index=False)
    with pytest.raises(DataError, match="unknown segment") as info:
        load_hillstrom(p)
    assert info.value.column == "segment" and info.value.rows == [1]


def _exposures_csv(tmp_path):
    df = pd.DataFrame({"cust": ["007", "008", "009", "010"], "when": ["2024-03-01"] * 4,
                       "offer": ["", "A", "A", ""], "bought": ["yes", "no", "yes", "no"],
                       "amount": ["12.5", "", "3", "0"]})
    p = tmp_path / "exp.csv"
    df.to_csv(p, index=False)
    f = tmp_path / "feat.csv"
    pd.DataFrame({"customer_id": ["007", "008", "009", "010"], "spend_before": ["1.5", "2", "0", "4"],
                  "region": ["n", "s", "n", "e"]}).to_csv(f, index=False)
    return p, f


def test_load_exposures_maps_columns_keeps_ids_and_casts_features(tmp_path):
    p, f = _exposures_csv(tmp_path)
    d = load_exposures(p, mapping={"customer_id": "cust", "exposed_at": "when", "offer_id": "offer",
                                   "converted": "bought", "revenue": "amount"}, features=f, randomized=True)
    assert d.exposures["customer_id"].tolist() == ["007", "008", "009", "010"]
    assert d.control_mask.tolist() == [True, False, False, True]
    assert d.exposures["converted"].tolist() == [True, False, True, False]
    assert d.randomized is True and d.treatment_names == ["A"]
    assert d.features["spend_before"].dtype == np.float64 and d.features["region"].tolist() == ["n", "s", "n", "e"]
    assert d.features_for_exposures(["spend_before"])["spend_before"].tolist() == [1.5, 2.0, 0.0, 4.0]
    with pytest.raises(DataError, match=r"no feature column\(s\) \['nope'\]"):
        d.features_for_exposures(["nope"])


def test_load_exposures_without_randomized_column_is_unknown(tmp_path):
    p, _ = _exposures_csv(tmp_path)
    d = load_exposures(p, mapping={"customer_id": "cust", "exposed_at": "when", "offer_id": "offer"})
    assert d.randomized is None


def test_load_exposures_bad_converted_names_the_column(test_data):
    with pytest.raises(DataError) as info:
        load_exposures(test_data / "bad" / "exposures_bad_converted.csv")
    assert info.value.table == "exposures" and info.value.column == "converted"


def test_campaign_data_validation_messages():
    base = pd.DataFrame({"customer_id": ["a", "b"], "exposed_at": ["2024-01-01", "2024-01-02"],
                         "offer_id": [None, "X"]})
    with pytest.raises(DataError, match="no exposures"):
        CampaignData(base.iloc[0:0])
    offers = pd.DataFrame({"offer_id": ["Y"], "kind": ["percent_off"], "value": [10.0]})
    with pytest.raises(DataError, match=r"offer ids not in the offers table \(\['X'\]\)"):
        CampaignData(base, offers=offers)
    with pytest.raises(DataError, match="duplicate customer ids"):
        CampaignData(base, features=pd.DataFrame({"customer_id": ["a", "a"], "x": [1, 2]}))
    with pytest.raises(DataError, match="campaign_id is missing in 1 of 2 rows"):
        CampaignData(base.assign(campaign_id=["c1", None]))
    with pytest.raises(DataError, match="control_name 'X' is also an offer id"):
        CampaignData(base, control_name="X")
    with pytest.raises(DataError, match="planned_split\\['X'\\] must be a positive number"):
        CampaignData(base, planned_split={"control": 1, "X": 0})
    with pytest.raises(DataError, match="required columns"):
        CampaignData(base.drop(columns="exposed_at"))


def test_campaign_selection_needs_an_id_when_several():
    df = pd.DataFrame({"customer_id": ["a", "b", "c"], "exposed_at": ["2024-01-01"] * 3,
                       "campaign_id": ["c1", "c2", "c2"], "offer_id": [None, None, "X"]})
    d = CampaignData(df)
    with pytest.raises(DataError, match="hold 2 campaigns"):
        d.campaign(None)
    with pytest.raises(DataError, match="no exposures of campaign 'c3'"):
        d.campaign("c3")
    assert len(d.campaign("c2")) == 2 and d.campaign("c2").treatment_names == ["X"]


def _history() -> Dataset:
    """Two campaigns; customer u1 buys before, exactly at and after the first campaign's first exposure."""
    tx = pd.DataFrame({
        "customer_id": ["u1", "u1", "u1", "u2", "u1", "u3"],
        "item_id": ["i"] * 6,
        "timestamp": ["2024-01-01 10:00", "2024-03-01 09:00", "2024-03-10 12:00", "2023-11-01 08:00",
                      "2024-05-01 10:00", "2024-04-20 10:00"],
        "quantity": [1, 2, 1, 1, 1, 1],
        "price": [10.0, 5.0, 7.0, 100.0, 1.0, 3.0],
        "order_id": ["o1", "o2", "o3", "o4", "o5", "o6"],
    })
    exp = pd.DataFrame({
        "customer_id": ["u1", "u2", "u3", "u1", "u3"],
        "exposed_at": ["2024-03-10 12:00", "2024-03-11 08:00", "2024-03-12 08:00", "2024-06-01", "2024-06-01"],
        "campaign_id": ["spring", "spring", "spring", "summer", "summer"],
        "offer_id": [None, "A", "A", None, "A"],
        "randomized": [True] * 5, "converted": [False, True, False, True, False],
    })
    return Dataset.from_frames(tx, exposures=exp)


def test_from_dataset_features_are_strictly_before_each_campaign():
    d = CampaignData.from_dataset(_history())
    assert isinstance(d.features.index, pd.MultiIndex) and list(d.features.columns) == list(FEATURE_COLUMNS)
    spring = d.campaign("spring")
    f = spring.features
    assert list(f.index.names) == ["customer_id"]
    # the first exposure of the campaign is 2024-03-10 12:00: the purchase at that moment is not before it
    assert f.loc["u1", "pre_spend"] == pytest.approx(10.0 + 2 * 5.0)
    assert f.loc["u1", "pre_orders"] == 2
    assert f.loc["u1", "pre_spend_90d"] == pytest.approx(10.0 + 10.0)  # 2024-01-01 is within 90 days
    assert f.loc["u1", "days_since_last_purchase"] == pytest.approx(9 + 3 / 24)
    assert f.loc["u2", "pre_spend"] == 100.0 and f.loc["u2", "pre_spend_90d"] == 0.0
    assert f.loc["u3", "pre_spend"] == 0.0 and np.isnan(f.loc["u3", "days_since_last_purchase"])
    summer = d.campaign("summer").features
    assert summer.loc["u1", "pre_spend"] == pytest.approx(10 + 10 + 7 + 1)  # every purchase before June
    assert summer.loc["u1", "pre_orders"] == 4
    assert summer.loc["u3", "pre_spend"] == pytest.approx(3.0)
    aligned = d.features_for_exposures(["pre_spend"])["pre_spend"].tolist()
    assert aligned == pytest.approx([20.0, 100.0, 0.0, 28.0, 3.0])


def test_from_dataset_one_campaign_and_no_exposures():
    d = CampaignData.from_dataset(_history(), campaign_id="summer")
    assert d.features.index.name == "customer_id" and len(d) == 2
    with pytest.raises(DataError, match="no exposures of campaign 'winter'"):
        CampaignData.from_dataset(_history(), campaign_id="winter")
    tx = pd.DataFrame({"customer_id": ["a"], "item_id": ["i"], "timestamp": ["2024-01-01"], "quantity": [1],
                       "price": [1.0]})
    with pytest.raises(DataError, match="no exposures table"):
        CampaignData.from_dataset(Dataset.from_frames(tx))
