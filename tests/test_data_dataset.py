"""Dataset behaviour: vocabularies, half-open time slices, interaction matrices, fingerprint, exposures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from personalize.data import Dataset, DataError, Vocabulary


@pytest.fixture(scope="module")
def ds() -> Dataset:
    tx = pd.DataFrame({
        "customer_id": ["c2", "c1", "c1", "c3", "c1", "c2"],
        "item_id": ["b", "a", "b", "a", "a", "c"],
        "timestamp": pd.to_datetime(["2011-01-03 00:00", "2011-01-01 00:00", "2011-01-02 00:00",
                                     "2011-01-05 12:00", "2011-01-04 00:00", "2011-01-05 00:00"]),
        "quantity": [1.0, 2.0, 1.0, 4.0, 3.0, 1.0],
        "price": [10.0, 2.0, 10.0, 2.0, 2.5, 7.0],
    })
    items = pd.DataFrame({"item_id": ["a", "b", "c", "d"], "category": ["x", "x", "y", "y"]})
    customers = pd.DataFrame({"customer_id": ["c1", "c2", "c3", "c9"], "region": ["N", "S", "N", "E"]})
    exposures = pd.DataFrame({"customer_id": ["c1", "c2", "c3", "c1"],
                              "exposed_at": pd.to_datetime(["2011-01-02", "2011-01-03", "2011-01-01", "2011-01-05"]),
                              "offer_id": ["o1", None, "o1", "o1"]})
    return Dataset.from_frames(tx, items=items, customers=customers, exposures=exposures)


def test_sorted_canonical_frame(ds):
    t = ds.transactions
    assert t["timestamp"].is_monotonic_increasing
    assert isinstance(t.index, pd.RangeIndex) and t.index[0] == 0
    assert list(t["customer_id"]) == ["c1", "c1", "c2", "c1", "c2", "c3"]
    assert t["amount"].tolist() == [4.0, 10.0, 10.0, 7.5, 7.0, 8.0]
    assert ds.first_timestamp == pd.Timestamp("2011-01-01") and ds.last_timestamp == pd.Timestamp("2011-01-05 12:00")


def test_vocabularies_cover_tables_and_align_with_rows(ds):
    assert list(ds.customer_vocab.ids) == ["c1", "c2", "c3", "c9"]   # c9 never bought: from the customers table
    assert list(ds.item_vocab.ids) == ["a", "b", "c", "d"]           # d never sold: from the items table
    assert ds.customer_idx.dtype == np.int32 and ds.item_idx.dtype == np.int32
    assert list(ds.customer_vocab.id_of(ds.customer_idx)) == list(ds.transactions["customer_id"])
    assert list(ds.item_vocab.id_of(ds.item_idx)) == list(ds.transactions["item_id"])
    assert ds.n_customers == 3 and ds.n_items == 3
    assert ds.customer_vocab.index(["c3", "nobody"]).tolist() == [2, -1]
    assert ds.item_vocab.index("b") == 1
    assert "d" in ds.item_vocab and "z" not in ds.item_vocab


def test_vocabulary_rejects_duplicates_and_builds_sorted_union():
    with pytest.raises(ValueError, match="unique"):
        Vocabulary(["a", "b", "a"])
    v = Vocabulary.from_values(np.array(["b", "a"], dtype=object), np.array(["c", "a"], dtype=object))
    assert list(v.ids) == ["a", "b", "c"] and len(v) == 3


def test_slices_share_vocabularies_without_copying(ds):
    cut = ds.until("2011-01-04")
    assert cut.customer_vocab is ds.customer_vocab and cut.item_vocab is ds.item_vocab
    assert np.shares_memory(cut.customer_idx, ds.customer_idx)
    assert cut.interaction_matrix().shape == ds.interaction_matrix().shape == (4, 4)
    mid = ds.between("2011-01-02", "2011-01-05")
    assert mid.item_vocab is ds.item_vocab and np.shares_memory(mid.item_idx, ds.item_idx)
    assert list(mid.customer_vocab.id_of(mid.customer_idx)) == list(mid.transactions["customer_id"])
    assert isinstance(mid.transactions.index, pd.RangeIndex) and mid.transactions.index[0] == 0


def test_until_is_half_open(ds):
    # a line exactly at the cutoff belongs to the future
    assert len(ds.until("2011-01-04")) == 3
    assert len(ds.until(pd.Timestamp("2011-01-04 00:00:00.000000001"))) == 4
    assert len(ds.until("2011-01-01")) == 0
    assert len(ds.until("2012-01-01")) == 6
    assert ds.until("2011-01-04").last_timestamp == pd.Timestamp("2011-01-03")
    # a timezone-aware cutoff is compared in UTC
    assert len(ds.until(pd.Timestamp("2011-01-04 01:00", tz="Europe/Berlin"))) == 3  # = 00:00 UTC
    assert len(ds.until(pd.Timestamp("2011-01-04 02:00", tz="Europe/Berlin"))) == 4


def test_between_is_half_open(ds):
    b = ds.between("2011-01-02", "2011-01-05")
    assert list(b.transactions["timestamp"]) == list(pd.to_datetime(["2011-01-02", "2011-01-03", "2011-01-04"]))
    assert len(ds.between("2011-01-05", "2011-01-05")) == 0
    assert len(ds.between("2011-01-05", "2011-01-06")) == 2
    # consecutive windows partition the data
    edges = pd.date_range("2010-12-31", "2011-01-07", freq="D")
    assert sum(len(ds.between(a, b)) for a, b in zip(edges[:-1], edges[1:])) == len(ds)
    with pytest.raises(DataError, match="before start"):
        ds.between("2011-01-05", "2011-01-02")
    with pytest.raises(DataError, match="cutoff: cannot parse"):
        ds.until("not a date")


def test_empty_slice_is_usable(ds):
    e = ds.until("2010-01-01")
    assert len(e) == 0 and e.n_customers == 0 and e.first_timestamp is None
    m = e.interaction_matrix(half_life_days=7)
    assert m.shape == (4, 4) and m.nnz == 0


def test_interaction_matrix_weights(ds):
    # rows c1,c2,c3,c9; columns a,b,c,d
    count = ds.interaction_matrix("count").toarray()
    assert count.dtype == np.float32
    np.testing.assert_array_equal(count, [[2, 1, 0, 0], [0, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]])
    quantity = ds.interaction_matrix("quantity").toarray()
    np.testing.assert_array_equal(quantity, [[5, 1, 0, 0], [0, 1, 1, 0], [4, 0, 0, 0], [0, 0, 0, 0]])
    spend = ds.interaction_matrix("spend").toarray()
    np.testing.assert_allclose(spend, [[2 * 2.0 + 3 * 2.5, 10, 0, 0], [0, 10, 7, 0], [8, 0, 0, 0], [0, 0, 0, 0]])
    sliced = ds.until("2011-01-04").interaction_matrix("count").toarray()
    np.testing.assert_array_equal(sliced, [[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])


def test_interaction_matrix_half_life(ds):
    now = pd.Timestamp("2011-01-05")
    m = ds.interaction_matrix("count", half_life_days=2, now=now).toarray()
    # c1-a: bought 01-01 (age 4 d) and 01-04 (age 1 d); c3-a at 01-05 12:00 is after `now`: weight clipped to 1
    assert m[0, 0] == pytest.approx(0.5 ** 2 + 0.5 ** 0.5, rel=1e-6)
    assert m[0, 1] == pytest.approx(0.5 ** 1.5, rel=1e-6)  # c1-b at 01-02, age 3 d
    assert m[1, 1] == pytest.approx(0.5, rel=1e-6)         # c2-b at 01-03, age 2 d = one half-life
    assert m[1, 2] == pytest.approx(1.0)                   # c2-c at now
    assert m[2, 0] == pytest.approx(1.0)
    spend = ds.interaction_matrix("spend", half_life_days=2, now=now).toarray()
    assert spend[0, 0] == pytest.approx(4.0 * 0.25 + 7.5 * 0.5 ** 0.5, rel=1e-6)
    # default `now` is the slice's last timestamp
    default = ds.until("2011-01-04").interaction_matrix(half_life_days=1).toarray()
    assert default[1, 1] == pytest.approx(1.0) and default[0, 0] == pytest.approx(0.25)


@pytest.mark.parametrize("kwargs,match", [({"weight": "revenue"}, "weight must be"),
                                          ({"half_life_days": 0}, "half_life_days must be positive")])
def test_interaction_matrix_bad_arguments(ds, kwargs, match):
    with pytest.raises(DataError, match=match):
        ds.interaction_matrix(**kwargs)


def test_exposures_sliced_by_time(ds):
    assert list(ds.exposures["exposed_at"]) == list(pd.to_datetime(["2011-01-01", "2011-01-02", "2011-01-03",
                                                                    "2011-01-05"]))
    assert len(ds.until("2011-01-03").exposures) == 2          # strictly before the cutoff
    b = ds.between("2011-01-02", "2011-01-05")
    assert list(b.exposures["customer_id"]) == ["c1", "c2"]
    assert b.exposures["offer_id"].isna().tolist() == [False, True]  # control group kept as missing offer
    assert len(ds.exposures) == 4                              # the parent is untouched


def _frame(price_b: float = 10.0) -> pd.DataFrame:
    return pd.DataFrame({"customer_id": ["c1", "c2", "c1"], "item_id": ["a", "b", "b"],
                         "timestamp": pd.to_datetime(["2011-01-01", "2011-01-02", "2011-01-03"]),
                         "quantity": [1.0, 2.0, 1.0], "price": [2.0, price_b, 10.0]})


def test_fingerprint_stable_and_sensitive():
    a = Dataset.from_frames(_frame()).fingerprint()
    assert a == Dataset.from_frames(_frame()).fingerprint()
    assert len(a) == 64 and int(a, 16) >= 0
    assert Dataset.from_frames(_frame().iloc[::-1].reset_index(drop=True)).fingerprint() == a  # input order
    renamed = _frame().rename(columns={"customer_id": "cust"})
    assert Dataset.from_frames(renamed, mapping={"customer_id": "cust"}).fingerprint() == a   # user's column names
    assert Dataset.from_frames(_frame(price_b=10.01)).fingerprint() != a
    changed_id = _frame()
    changed_id.loc[0, "customer_id"] = "c3"
    assert Dataset.from_frames(changed_id).fingerprint() != a
    shifted = _frame()
    shifted.loc[2, "timestamp"] = pd.Timestamp("2011-01-03 00:00:01")
    assert Dataset.from_frames(shifted).fingerprint() != a
    with_items = Dataset.from_frames(_frame(), items=pd.DataFrame({"item_id": ["a", "b"]})).fingerprint()
    assert with_items != a
    ds = Dataset.from_frames(_frame())
    assert ds.until("2011-01-03").fingerprint() != a


def test_summary(ds):
    s = ds.summary()
    assert s["input_rows"] == 6 and s["kept_rows"] == 6 and s["dropped"] == {}
    assert s["customers"] == 3 and s["items"] == 3
    assert s["first_timestamp"] == "2011-01-01T00:00:00" and s["last_timestamp"] == "2011-01-05T12:00:00"
    assert s["revenue"] == pytest.approx(46.5)
    assert s["tables"] == {"items": 4, "customers": 4, "offers": None, "exposures": 4}


def test_offers_table_is_validated_and_kept():
    offers = pd.DataFrame({"offer_id": ["o1", "o2"], "kind": ["percent_off", "free_shipping"], "value": ["10", "0"],
                           "min_spend": [None, "50"], "eligibility": ['{"segments": ["vip"]}', None],
                           "valid_from": ["2011-01-01", "2011-01-01"], "valid_to": ["2011-02-01", None],
                           "per_customer_cap": ["1", ""]})
    ds = Dataset.from_frames(_frame(), offers=offers)
    o = ds.offers
    assert o["value"].tolist() == [10.0, 0.0]
    assert o["per_customer_cap"].dtype == "Int64" and o["per_customer_cap"].isna().tolist() == [False, True]
    assert o["valid_to"].isna().tolist() == [False, True]


def test_mapping_errors():
    with pytest.raises(DataError, match="unknown fields"):
        Dataset.from_frames(_frame(), mapping={"customer": "customer_id"})
    with pytest.raises(DataError, match="mixes tables and columns"):
        Dataset.from_frames(_frame(), mapping={"items": {"item_id": "sku"}, "customer_id": "cust"})
    with pytest.raises(DataError, match="expected a pandas DataFrame"):
        Dataset.from_frames([1, 2, 3])


def _returns_frame(extra=()):
    rows = [
        ("c1", "a", "2024-01-10", 5.0, 2.0),
        ("c1", "b", "2024-01-12", 4.0, 3.0),
        ("c2", "a", "2024-01-15", 1.0, 2.0),
        ("c1", "a", "2024-03-01", -5.0, 2.0),   # returns all of c1's "a" -- after the February cutoff
        ("c1", "b", "2024-03-02", -1.0, 3.0),   # returns one of four "b"
        *extra,
    ]
    return pd.DataFrame(rows, columns=["customer_id", "item_id", "timestamp", "quantity", "price"])


def test_slices_do_not_see_returns_made_after_their_end():
    ds = Dataset.from_frames(_returns_frame())
    full = ds.transactions.set_index(["customer_id", "item_id"])["quantity"]
    assert ("c1", "a") not in full.index and full[("c1", "b")] == 3.0
    feb = ds.until("2024-02-01").transactions.set_index(["customer_id", "item_id"])["quantity"]
    assert feb[("c1", "a")] == 5.0 and feb[("c1", "b")] == 4.0 and feb[("c2", "a")] == 1.0
    win = ds.between("2024-01-01", "2024-02-01").transactions.set_index(["customer_id", "item_id"])
    assert win.loc[("c1", "a"), "quantity"] == 5.0 and win.loc[("c1", "a"), "amount"] == 10.0
    # a slice of a slice is the same point in time
    nested = ds.until("2024-04-01").until("2024-02-01")
    pd.testing.assert_frame_equal(nested.transactions, ds.until("2024-02-01").transactions)
    # after the returns, the slice agrees with the full data
    pd.testing.assert_frame_equal(ds.until("2024-04-01").transactions, ds.transactions)
    # the restored line is indexed against the shared vocabularies
    sl = ds.until("2024-02-01")
    m = sl.interaction_matrix("quantity")
    assert m[ds.customer_vocab.index("c1"), ds.item_vocab.index("a")] == 5.0
    assert len(sl.returns) == 0 and len(ds.returns) == 2


def test_appending_future_returns_never_changes_a_past_slice():
    base = Dataset.from_frames(_returns_frame())
    more = Dataset.from_frames(_returns_frame(extra=[("c2", "a", "2024-05-01", -1.0, 2.0),
                                                     ("c1", "b", "2024-05-02", -2.0, 3.0)]))
    for cutoff in ("2024-02-01", "2024-03-02", "2024-04-01"):
        pd.testing.assert_frame_equal(base.until(cutoff).transactions, more.until(cutoff).transactions)


def test_of_customers_keeps_the_vocabularies_and_only_their_rows():
    from personalize.datasets import make_retail

    ds, _ = make_retail(n_customers=200, n_items=40, seed=1, offers=False, exposures=False)
    keep = np.zeros(len(ds.customer_vocab), dtype=bool)
    keep[::3] = True
    sub = ds.of_customers(keep)
    assert sub.customer_vocab is ds.customer_vocab and sub.item_vocab is ds.item_vocab
    assert keep[sub.customer_idx].all() and len(sub) == int(keep[ds.customer_idx].sum())
    assert set(sub.transactions["customer_id"]) == set(np.asarray(ds.customer_vocab.ids)[keep]) & set(
        ds.transactions["customer_id"])
    # a time slice of the sample is the sample's slice
    cut = ds.transactions["timestamp"].iloc[len(ds) // 2]
    assert len(sub.until(cut)) == int(keep[ds.until(cut).customer_idx].sum())
    assert ds.of_customers(np.ones(len(ds.customer_vocab), dtype=bool)) is ds
    with pytest.raises(DataError, match="one flag per customer"):
        ds.of_customers(keep[:-1])


def test_vocabulary_compacts_codes_to_the_ids_that_occur_in_its_order():
    v = Vocabulary.from_values(np.array(["c", "a", "d", "b"], dtype=object))
    assert v.is_sorted and list(v.ids) == ["a", "b", "c", "d"]
    codes, ids = v.compact(np.array([3, 1, 3, 3, 1], dtype=np.int64))  # d, b, d, d, b
    assert list(ids) == ["b", "d"] and codes.tolist() == [1, 0, 1, 1, 0]
    assert not Vocabulary(np.array(["b", "a"], dtype=object)).is_sorted


def test_order_codes_are_the_order_ids_factorized_in_every_slice():
    from personalize.datasets import make_retail

    ds, _ = make_retail(n_customers=300, n_items=40, seed=2, offers=False, exposures=False)
    tx = ds.transactions
    oid = tx["order_id"].to_numpy(dtype=object).copy()
    oid[::17] = None  # lines without an order id have no code
    frame = tx.assign(order_id=oid).drop(columns="amount")
    d = Dataset.from_frames(frame)
    times = d.transactions["timestamp"]
    a, b = times.iloc[len(d) // 3], times.iloc[2 * len(d) // 3]
    for sl in (d, d.until(b), d.between(a, b), d.between(a, b).until(times.iloc[len(d) // 2]), d.until(a)):
        want = pd.factorize(sl.transactions["order_id"])[0]
        np.testing.assert_array_equal(sl.order_codes(), want)
    assert (d.order_codes() == -1).sum() == int(pd.isna(oid).sum())
    # a slice that restores a purchase returned after its end numbers its own lines
    r = Dataset.from_frames(_returns_frame().assign(order_id=["o1", "o2", "o3", "r1", "r2"]))
    feb = r.until("2024-02-01")
    assert feb.restored_mask is not None
    np.testing.assert_array_equal(feb.order_codes(), pd.factorize(feb.transactions["order_id"])[0])
    assert Dataset.from_frames(_returns_frame()).order_codes() is None  # no order ids: no codes
