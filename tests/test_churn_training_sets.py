"""Point-in-time training sets: features before the cutoff, labels from the horizon, no leakage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from personalize.churn import (PurchaseTarget, churn_features, cutoff_from_as_of, data_end, production_cutoffs,
                               scoring_set, snapshot, training_set)
from personalize.data import Dataset
from personalize.errors import DataError


def _tx(rows):
    df = pd.DataFrame(rows, columns=["customer_id", "item_id", "timestamp", "quantity", "price"])
    df["timestamp"] = pd.to_datetime(df["timestamp"], format="mixed")
    return df


@pytest.fixture(scope="module")
def retail():
    from personalize.datasets import make_retail

    return make_retail(n_customers=600, n_items=60, days=400, seed=1, offers=False, exposures=False)


@pytest.fixture()
def small():
    # a: buys every 10 days, then lapses; b: one purchase; c: two purchases, one inside the label window;
    # d: first buys after the cutoff (not eligible)
    rows = [("a", "x", f"2024-01-{d:02d}", 1, 10.0) for d in (1, 11, 21)]
    rows += [("a", "y", "2024-01-21 15:00", 2, 5.0)]          # same day: one purchase day
    rows += [("b", "x", "2024-01-15", 1, 30.0)]
    rows += [("c", "y", "2024-01-05", 1, 8.0), ("c", "x", "2024-02-10", 1, 8.0)]
    rows += [("d", "x", "2024-02-05", 1, 8.0)]
    rows += [("e", "x", "2024-03-20", 1, 1.0)]                  # keeps the data going past the window
    return Dataset.from_frames(_tx(rows))


def test_features_are_computed_from_history_before_the_cutoff(small):
    f = churn_features(small, "2024-02-01", horizon_days=30)
    assert list(f.index) == ["a", "b", "c"]                    # d and e bought later: not eligible
    a = f.loc["a"]
    assert a["recency_days"] == 11 and a["tenure_days"] == 31
    assert a["purchases"] == 3 and a["gap_mean_days"] == 10 and a["gap_last_days"] == 10
    assert a["spend_total"] == pytest.approx(40.0) and a["spend_last"] == pytest.approx(20.0)
    assert a["overdue_ratio"] == pytest.approx(1.1)
    assert a["purchases_28d"] == 2 and a["purchases_56d"] == 3
    b = f.loc["b"]
    assert b["purchases"] == 1 and np.isnan(b["gap_mean_days"]) and b["recency_share"] == 1.0
    assert f.attrs["bgnbd_params"] is not None and f["bgnbd_p_alive"].between(0, 1).all()


def test_labels_come_from_the_horizon_window(small):
    s = snapshot(small, "2024-02-01", horizon_days=30)
    labels = dict(zip(s.customer_id, s.y))
    assert labels == {"a": 1, "b": 1, "c": 0}                 # only c bought in [02-01, 03-02)
    assert (s.cutoff == np.datetime64("2024-02-01")).all()
    assert s.target == "churn" and s.horizon_days == 30


def test_as_of_is_inclusive_and_open_label_windows_are_refused(small):
    assert cutoff_from_as_of("1997-09-30") == pd.Timestamp("1997-10-01")
    assert data_end(small) == pd.Timestamp("2024-03-21")
    with pytest.raises(DataError, match="label window"):
        snapshot(small, "2024-03-01", horizon_days=30)
    s = scoring_set(small, "2024-03-01", horizon_days=30)     # production scoring: no labels needed
    assert s.y is None and "d" in set(s.customer_id)
    with pytest.raises(DataError, match="no transactions before"):
        snapshot(small, "2023-06-01", horizon_days=30)


def test_no_leakage_when_data_is_appended_after_the_label_window(small):
    cut, h = pd.Timestamp("2024-02-01"), 30
    before = snapshot(small, cut, horizon_days=h)
    extra = [("a", "x", "2024-03-05", 1, 99.0), ("b", "y", "2024-04-01", 5, 50.0),
             ("z", "x", "2024-03-10", 1, 1.0)]                 # all at or after cutoff + horizon
    base = small.transactions[["customer_id", "item_id", "timestamp", "quantity", "price"]]
    tx = pd.concat([base, _tx(extra)], ignore_index=True)
    bigger = Dataset.from_frames(tx)
    after = snapshot(bigger, cut, horizon_days=h)
    pd.testing.assert_frame_equal(before.X, after.X)
    np.testing.assert_array_equal(before.y, after.y)
    np.testing.assert_array_equal(before.customer_id, after.customer_id)
    # data inside the label window changes labels, never features
    inside = pd.concat([tx, _tx([("a", "x", "2024-02-10", 1, 5.0)])], ignore_index=True)
    changed = snapshot(Dataset.from_frames(inside), cut, horizon_days=h)
    pd.testing.assert_frame_equal(before.X, changed.X)
    assert dict(zip(changed.customer_id, changed.y))["a"] == 0


def test_no_leakage_on_synthetic_data(retail):
    ds, _ = retail
    cut = ds.first_timestamp.normalize() + pd.Timedelta(days=200)
    full = snapshot(ds, cut, horizon_days=60)
    keep = ds.transactions["timestamp"] < cut + pd.Timedelta(days=60)
    cols = [c for c in ("customer_id", "item_id", "timestamp", "quantity", "price", "order_id", "channel")
            if c in ds.transactions]
    trimmed = Dataset.from_frames(ds.transactions.loc[keep, cols], items=ds.items)
    part = snapshot(trimmed, cut, horizon_days=60, end=ds.last_timestamp)
    pd.testing.assert_frame_equal(full.X, part.X)
    np.testing.assert_array_equal(full.y, part.y)


def test_training_set_stacks_cutoffs_and_production_cutoffs_are_closed(small):
    cuts = production_cutoffs(small, horizon_days=30, n_cutoffs=3, spacing_days=10)
    assert cuts == [pd.Timestamp("2024-01-31"), pd.Timestamp("2024-02-10"), pd.Timestamp("2024-02-20")]
    ts = training_set(small, cuts, horizon_days=30)
    assert len(ts) == sum(len(snapshot(small, c, horizon_days=30)) for c in cuts)
    assert ts.cutoffs == cuts
    with pytest.raises(DataError, match="shorter than the horizon"):
        production_cutoffs(small, horizon_days=400)


def test_frame_input_equals_dataset_input(small):
    frame = small.transactions.sample(frac=1.0, random_state=1)   # unsorted frame
    a = churn_features(small, "2024-02-01")
    b = churn_features(frame, "2024-02-01")
    pd.testing.assert_frame_equal(a, b)


def test_purchase_target_labels_and_features(retail):
    ds, _ = retail
    cat = ds.items["category"].value_counts().index[0]
    target = PurchaseTarget(category=cat)
    cut = ds.first_timestamp.normalize() + pd.Timedelta(days=200)
    s = snapshot(ds, cut, horizon_days=60, target=target)
    assert {"target_purchases", "target_recency_days", "target_spend_share"} <= set(s.X.columns)
    tx = ds.transactions
    cat_items = set(ds.items.loc[ds.items["category"] == cat, "item_id"])
    win = tx[(tx.timestamp >= cut) & (tx.timestamp < cut + pd.Timedelta(days=60)) & tx.item_id.isin(cat_items)]
    expect = pd.Index(s.customer_id).isin(win.customer_id.unique()).astype(np.int8)
    np.testing.assert_array_equal(s.y, expect)
    with pytest.raises(DataError, match="unknown category"):
        snapshot(ds, cut, horizon_days=60, target=PurchaseTarget(category="no such thing"))
    with pytest.raises(DataError):
        PurchaseTarget()


def test_bad_arguments(small):
    with pytest.raises(DataError, match="horizon_days"):
        snapshot(small, "2024-02-01", horizon_days=0)
    with pytest.raises(DataError, match="cutoff"):
        snapshot(small, "not a date", horizon_days=10)
    with pytest.raises(DataError, match="target"):
        snapshot(small, "2024-02-01", horizon_days=10, target="upsell")


def test_profile_columns_join_point_in_time(retail):
    ds, _ = retail
    cut = ds.first_timestamp.normalize() + pd.Timedelta(days=200)
    s = snapshot(ds, cut, horizon_days=60, profiles=True)
    extra = [c for c in s.X.columns if c.startswith("profile_")]
    assert extra and all(pd.api.types.is_float_dtype(s.X[c]) for c in extra)
    plain = snapshot(ds, cut, horizon_days=60)
    pd.testing.assert_frame_equal(s.X[plain.X.columns], plain.X)
    assert {"repeat_items", "repeat_item_due_days"} <= set(plain.X.columns)


def test_returns_after_the_label_window_change_neither_features_nor_labels():
    """Cleaning nets returns against purchases; a snapshot must not see returns made after its windows."""
    rows = [("a", "x", "2024-01-05", 2, 5.0), ("a", "y", "2024-01-20", 1, 5.0),
            ("b", "x", "2024-01-10", 1, 5.0), ("b", "x", "2024-02-10", 1, 5.0),   # b buys in the label window
            ("c", "y", "2024-01-12", 3, 5.0), ("c", "y", "2024-02-15", 1, 5.0),
            ("d", "x", "2024-04-20", 1, 5.0)]
    later = [("a", "x", "2024-04-01", -2, 5.0),   # a returns a purchase made before the cutoff
             ("b", "x", "2024-04-02", -1, 5.0)]   # b returns the label-window purchase in full
    base = Dataset.from_frames(_tx(rows))
    more = Dataset.from_frames(_tx(rows + later))
    s0 = snapshot(base, "2024-02-01", horizon_days=30, end="2024-05-01")
    s1 = snapshot(more, "2024-02-01", horizon_days=30, end="2024-05-01")
    pd.testing.assert_frame_equal(s0.X, s1.X)
    assert dict(zip(s1.customer_id, s1.y)) == dict(zip(s0.customer_id, s0.y))
    assert dict(zip(s1.customer_id, s1.y))["b"] == 0   # b did buy in the window
