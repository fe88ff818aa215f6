"""Point-in-time customer profiles."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from personalize.analytics import profiles
from personalize.data import CleaningOptions, Dataset
from personalize.errors import DataError

AS_OF = pd.Timestamp("2024-03-10")


def _tx():
    return pd.DataFrame({
        "customer_id": ["a", "a", "a", "b", "b", "c", "a", "b"],
        "item_id": ["i1", "i2", "i1", "i3", "i3", "i2", "i1", "i2"],
        "timestamp": pd.to_datetime(["2024-01-01 10:00", "2024-01-01 10:00", "2024-02-01 00:00",
                                     "2024-01-15 00:00", "2024-03-01 00:00", "2024-03-05 00:00",
                                     "2024-01-20 00:00", "2024-03-10 00:00"]),  # last row: at as_of
        "quantity": [1.0, 2.0, 1.0, 1.0, 3.0, 1.0, -1.0, 5.0],
        "price": [10.0, 5.0, 10.0, 20.0, 20.0, 7.0, 10.0, 1.0],
        "order_id": ["o1", "o1", "o2", "o3", "o4", "o5", None, "o6"],
        "channel": ["web", "web", "store", "web", "web", "store", "web", "web"],
        "coupon_id": [None, None, "X", None, None, None, None, None],
    })


ITEMS = pd.DataFrame({"item_id": ["i1", "i2", "i3"], "category": ["food", "toys", "food"]})
CUSTOMERS = pd.DataFrame({"customer_id": ["a", "b", "c"],
                          "birth_date": pd.to_datetime(["1980-02-29", "1990-03-10", None])})


def test_profile_values_by_hand():
    p = profiles(_tx(), AS_OF, items=ITEMS, customers=CUSTOMERS)
    assert list(p.index) == ["a", "b", "c"]
    a, b, c = p.loc["a"], p.loc["b"], p.loc["c"]
    # a: order o1 (2 lines, 20), order o2 (10), a return of 1 x 10 -> net spend 20
    assert a["orders"] == 2 and a["lines"] == 3 and a["monetary"] == pytest.approx(20.0)
    assert a["aov"] == pytest.approx(10.0) and a["items_per_order"] == pytest.approx(2.0)
    assert a["return_rate"] == pytest.approx(1 / 4)
    assert a["recency_days"] == pytest.approx(38.0)
    assert a["tenure_days"] == pytest.approx(68 + 14 / 24)
    assert a["ipt_mean_days"] == pytest.approx(31.0) and np.isnan(a["ipt_std_days"])
    assert a["discount_share"] == pytest.approx(0.5)
    assert a["share_channel__web"] == pytest.approx(0.5) and a["share_channel__store"] == pytest.approx(0.5)
    assert a["share_cat__food"] == pytest.approx(20 / 30) and a["top_category"] == "food"
    # birthday on 29 February: 2025 is not a leap year -> 28 February 2025
    assert a["days_to_birthday"] == 355 and a["age_years"] == 44
    # b: the purchase at exactly as_of is excluded
    assert b["orders"] == 2 and b["monetary"] == pytest.approx(80.0) and b["recency_days"] == pytest.approx(9.0)
    assert b["days_to_birthday"] == 0 and b["age_years"] == 34
    assert b["trend"] == pytest.approx(1.0) and b["spend_recent"] == pytest.approx(80.0)
    assert c["orders"] == 1 and np.isnan(c["ipt_mean_days"]) and c["top_category"] == "toys"
    assert np.isnan(c["days_to_birthday"])
    assert p.attrs["as_of"] == AS_OF.isoformat()


def test_trend_compares_recent_with_previous_window():
    tx = pd.DataFrame({"customer_id": ["a", "a", "a"],
                       "timestamp": pd.to_datetime(["2023-12-01", "2024-01-20", "2024-03-05"]),
                       "quantity": [1.0, 1.0, 1.0], "price": [30.0, 10.0, 10.0]})
    p = profiles(tx, "2024-03-10", trend_days=30)
    assert p.loc["a", "spend_recent"] == pytest.approx(10.0)
    assert p.loc["a", "spend_previous"] == pytest.approx(10.0)
    assert p.loc["a", "trend"] == pytest.approx(0.0)
    assert np.isnan(p.loc["a", "discount_share"]) and np.isnan(p.loc["a", "return_rate"])
    # orders without order_id: one order per customer and timestamp
    assert p.loc["a", "orders"] == 3
    assert p.loc["a", "ipt_std_days"] == pytest.approx(np.std([50.0, 45.0]))


def _random_history(n=400, seed=0):
    rng = np.random.default_rng(seed)
    ts = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 365 * 24, n), unit="h")
    return pd.DataFrame({
        "customer_id": rng.choice([f"c{i:03d}" for i in range(60)], n),
        "item_id": rng.choice(["i1", "i2", "i3", "i4"], n),
        "timestamp": ts,
        "quantity": rng.integers(1, 4, n).astype(float),
        "price": rng.uniform(1, 50, n).round(2),
        "order_id": [f"o{i}" for i in rng.integers(0, n // 2, n)],
        "channel": rng.choice(["web", "store"], n),
    })


def test_appending_future_transactions_changes_nothing():
    hist = _random_history()
    as_of = pd.Timestamp("2023-09-01")
    before = profiles(hist, as_of, items=ITEMS.assign(item_id=["i1", "i2", "i3"]))
    future = _random_history(300, seed=9)
    future["timestamp"] = as_of + (future["timestamp"] - future["timestamp"].min())  # on or after as_of
    future["order_id"] = "f" + future["order_id"]  # new orders
    # including new customers and orders of existing customers
    after = profiles(pd.concat([hist, future], ignore_index=True), as_of,
                     items=ITEMS.assign(item_id=["i1", "i2", "i3"]))
    pd.testing.assert_frame_equal(before, after)


def test_dataset_and_frame_give_the_same_profiles():
    hist = _random_history()
    items = pd.DataFrame({"item_id": ["i1", "i2", "i3", "i4"], "category": ["x", "y", "x", "z"]})
    ds = Dataset.from_frames(hist, items=items, options=CleaningOptions(now=pd.Timestamp("2025-01-01")))
    as_of = "2023-10-01"
    from_ds = profiles(ds, as_of)
    from_frame = profiles(ds.transactions, as_of, items=items)
    # a Dataset knows its returns (none here: rate 0); a bare frame without return lines cannot tell (NaN)
    assert (from_ds["return_rate"] == 0).all() and from_frame["return_rate"].isna().all()
    pd.testing.assert_frame_equal(from_ds.drop(columns="return_rate"), from_frame.drop(columns="return_rate"))
    assert set(from_ds.columns) >= {"share_cat__x", "top_category", "share_channel__web"}
    # a Dataset slice cut later still gives the same profile at the earlier cutoff
    pd.testing.assert_frame_equal(profiles(ds.until("2023-12-01"), as_of), from_ds)
    # without the share columns (what the offer features read): the same other columns
    lean = profiles(ds, as_of, shares=False)
    shares = [c for c in from_ds.columns if c.startswith(("share_cat__", "share_channel__")) or c == "top_category"]
    assert shares and not set(shares) & set(lean.columns)
    pd.testing.assert_frame_equal(lean, from_ds.drop(columns=shares))


def test_run_shortcut_gives_the_same_profiles_as_plain_hashing():
    # Arrow-backed ids take the run-length path; object ids are hashed line by line
    hist = _random_history(seed=3).sort_values("timestamp", kind="stable", ignore_index=True)
    # orders made of contiguous lines, one customer each (the common case), plus a split order
    hist["order_id"] = "o" + (hist.index // 3).astype(str) + hist["customer_id"]
    hist.loc[hist.index[-1], "order_id"] = hist["order_id"].iloc[0]
    hist.loc[hist.index[-1], "customer_id"] = hist["customer_id"].iloc[0]
    fast = profiles(hist, "2024-01-01")
    plain = profiles(hist.astype({"customer_id": object, "order_id": object}), "2024-01-01")
    pd.testing.assert_frame_equal(fast, plain)
    assert fast["orders"].sum() == hist["order_id"].nunique()


def test_errors():
    with pytest.raises(DataError, match="no transactions before"):
        profiles(_tx(), "2000-01-01")
    with pytest.raises(DataError, match="timestamp"):
        profiles(_tx().drop(columns="timestamp"), AS_OF)
    with pytest.raises(DataError, match="date"):
        profiles(_tx(), "not a date")
    with pytest.raises(DataError, match="trend_days"):
        profiles(_tx(), AS_OF, trend_days=0)


def test_profiles_ignore_returns_made_after_as_of():
    """A purchase returned after as_of still counts in the profile as of that date (no leakage)."""
    import pandas as pd

    from personalize.analytics.profiles import profiles as build_profiles
    from personalize.data import Dataset

    rows = [("c1", "a", "2024-01-10", 5.0, 2.0), ("c1", "b", "2024-01-20", 1.0, 3.0),
            ("c2", "a", "2024-01-15", 1.0, 2.0)]
    late = [("c1", "a", "2024-03-01", -5.0, 2.0)]
    cols = ["customer_id", "item_id", "timestamp", "quantity", "price"]
    before = Dataset.from_frames(pd.DataFrame(rows, columns=cols))
    after = Dataset.from_frames(pd.DataFrame(rows + late, columns=cols))
    p0 = build_profiles(before, "2024-02-01")
    p1 = build_profiles(after, "2024-02-01")
    pd.testing.assert_frame_equal(p0, p1)
    assert p1.loc["c1", "monetary"] == 13.0
    # once the return has happened it is netted and shows in the return rate
    p2 = build_profiles(after, "2024-04-01")
    assert p2.loc["c1", "monetary"] == 3.0
    assert abs(p2.loc["c1", "return_rate"] - 5.0 / 6.0) < 1e-9


def test_category_shares_of_a_slice_that_restores_returned_purchases():
    """A slice that brings back purchases returned after its end has rows the full data lacks; the category
    shares must follow the slice's own rows (they once read the full data's item codes, shifted by one)."""
    from personalize.datasets import make_retail

    ds, _ = make_retail(n_customers=300, n_items=60, defects=True, seed=5, offers=False, exposures=False)
    as_of = "2023-10-01"
    sliced = ds.until(as_of)
    assert sliced.restored_mask is not None and sliced.restored_mask.any()
    a = profiles(ds, as_of)
    b = profiles(sliced.transactions, as_of, items=ds.items, customers=ds.customers)
    cols = [c for c in a.columns if c.startswith("share_cat__")] + ["top_category"]
    assert cols[:-1]
    pd.testing.assert_frame_equal(a[cols], b[cols], check_exact=False, rtol=1e-12)
