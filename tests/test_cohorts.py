"""Rates over time: monthly activity, retention / churn, repeat purchases, cohort matrix, campaign arms by month."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from personalize.analytics.cohorts import (campaign_conversion_over_time, cohort_counts, cohort_retention,
                                           monthly_activity, plot_cohort_retention, repeat_purchase_by_cohort,
                                           repeat_purchase_rate, retention_report)
from personalize.data import Dataset
from personalize.errors import DataError


def _ds(exposures: pd.DataFrame | None = None) -> Dataset:
    """a: Jan, Feb (2 orders), Apr; b: Jan, Mar; c: Feb; d: Mar 30, Apr 2 (2024)."""
    rows = [("a", "2024-01-05"), ("a", "2024-02-10"), ("a", "2024-02-20"), ("a", "2024-04-01"),
            ("b", "2024-01-15"), ("b", "2024-03-03"), ("c", "2024-02-01"), ("d", "2024-03-30"),
            ("d", "2024-04-02")]
    tx = pd.DataFrame({"customer_id": [r[0] for r in rows], "timestamp": [r[1] for r in rows], "item_id": "i",
                       "quantity": 1, "price": 2.0, "order_id": [f"o{k}" for k in range(len(rows))]})
    return Dataset.from_frames(tx, exposures=exposures)


def test_monthly_activity_by_hand():
    m = monthly_activity(_ds(), end="2024-05-01")
    assert [str(p) for p in m.index] == ["2024-01", "2024-02", "2024-03", "2024-04"]
    assert m["active_customers"].tolist() == [2, 2, 2, 2]
    assert m["new_customers"].tolist() == [2, 1, 1, 0]
    assert m["retained_customers"].tolist() == [0, 1, 0, 1]
    assert np.isnan(m["retention_rate"].iloc[0])
    assert m["retention_rate"].iloc[1:].tolist() == [0.5, 0.0, 0.5]
    assert m["churn_rate"].iloc[1:].tolist() == [0.5, 1.0, 0.5]
    assert m["returning_share"].tolist() == [0.0, 0.5, 0.5, 1.0]


def test_partial_last_month_is_dropped_unless_asked():
    # without `end` the data is known until midnight after the last purchase (2024-04-03): April is partial
    assert [str(p) for p in monthly_activity(_ds()).index] == ["2024-01", "2024-02", "2024-03"]
    assert len(monthly_activity(_ds(), complete_months=False)) == 4
    with pytest.raises(DataError, match="no complete month"):
        monthly_activity(_ds(), end="2024-01-20")


def test_cohort_matrix_by_hand():
    counts = cohort_counts(_ds(), end="2024-05-01")
    assert [str(c) for c in counts.index] == ["2024-01", "2024-02", "2024-03"]
    assert counts.loc[pd.Period("2024-01", "M")].tolist() == [2, 1, 1, 1]
    shares = cohort_retention(_ds(), end="2024-05-01")
    assert shares.iloc[0].tolist() == [1.0, 0.5, 0.5, 0.5]
    feb = shares.iloc[1].tolist()
    assert feb[:3] == [1.0, 0.0, 0.0] and np.isnan(feb[3])  # April + 1 month is after the data
    mar = shares.iloc[2].tolist()
    assert mar[:2] == [1.0, 1.0] and np.isnan(mar[2]) and np.isnan(mar[3])
    assert list(cohort_retention(_ds(), end="2024-05-01", max_months=1).columns) == [0, 1]


def test_repeat_purchase_rates_by_hand():
    r = repeat_purchase_rate(_ds())
    assert r == {"customers": 4, "repeat_customers": 3, "repeat_purchase_rate": 0.75, "orders_counted_by": "order_id"}
    by = repeat_purchase_by_cohort(_ds(), end="2024-05-01")
    assert by["customers"].tolist() == [2, 1, 1] and by["repeat_purchase_rate"].tolist() == [1.0, 0.0, 1.0]


def test_campaign_conversion_over_time_and_report(tmp_path):
    exp = pd.DataFrame({"customer_id": ["a", "b", "c", "d", "a", "b"],
                        "exposed_at": ["2024-02-01", "2024-02-01", "2024-02-02", "2024-03-01", "2024-03-01",
                                       "2024-03-02"],
                        "offer_id": [None, "X", "X", None, "X", "X"], "converted": [1, 1, 0, 0, 1, 1]})
    ds = _ds(exp)
    conv = campaign_conversion_over_time(ds)
    feb_x = conv[(conv["period"] == pd.Period("2024-02", "M")) & (conv["arm"] == "X")].iloc[0]
    assert feb_x["n"] == 2 and feb_x["conversions"] == 1 and feb_x["rate"] == 0.5
    assert feb_x["rate_low"] < 0.5 < feb_x["rate_high"]
    assert len(conv) == 4
    rep = retention_report(ds, end="2024-05-01")
    doc = json.loads(json.dumps(rep.to_dict(), allow_nan=False))
    assert doc["months"] == ["2024-01", "2024-02", "2024-03", "2024-04"]
    assert doc["cohorts"]["sizes"] == [2, 1, 1] and doc["cohorts"]["retention"][1][3] is None
    assert doc["monthly"][0]["retention_rate"] is None and doc["monthly"][1]["retention_rate"] == 0.5
    assert doc["campaign_conversion"][0]["period"] == "2024-02"
    assert "retention" in str(rep)
    png = plot_cohort_retention(rep.cohorts, tmp_path / "c.png", sizes=rep.cohort_sizes)
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_inputs_are_checked():
    with pytest.raises(DataError, match="expected a Dataset"):
        monthly_activity(pd.DataFrame({"customer_id": ["a"]}))
    with pytest.raises(DataError, match="no exposures table"):
        campaign_conversion_over_time(_ds())
    with pytest.raises(DataError, match="empty"):
        plot_cohort_retention(pd.DataFrame(), "x.png")


def test_synthetic_retention_is_sane():
    from personalize.datasets import make_retail

    ds, truth = make_retail(n_customers=800, n_items=60, n_categories=6, seed=5)
    m = monthly_activity(ds, end=truth.end)
    assert len(m) == 12 and (m["retention_rate"].iloc[1:].between(0, 1)).all()
    assert (m["active_customers"] == m["new_customers"] + m["returning_customers"]).all()
    # every cohort's month-0 count is its size and later months never exceed it
    counts = cohort_counts(ds, end=truth.end)
    assert (counts.fillna(0).to_numpy() <= counts[0].to_numpy()[:, None]).all()
    assert int(counts[0].sum()) == ds.n_customers
