"""Cleaning: every input row is kept or dropped for one named reason; returns netting; policies."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from personalize.data import CleaningOptions, Dataset, DataError
from personalize.data.cleaning import clean_transactions

REASONS = {"exact_duplicate", "guest", "non_product", "negative_price", "zero_quantity", "return",
           "returned_purchase", "zero_price", "unknown_item"}


def tx(rows: list[tuple]) -> pd.DataFrame:
    """rows of (customer_id, item_id, 'YYYY-MM-DD', quantity, price)."""
    df = pd.DataFrame(rows, columns=["customer_id", "item_id", "timestamp", "quantity", "price"])
    df["timestamp"] = pd.to_datetime(df["timestamp"], format="ISO8601")
    return df


def rows_of(ds: Dataset) -> list[tuple]:
    t = ds.transactions
    return list(zip(t["customer_id"], t["item_id"], t["timestamp"].dt.strftime("%Y-%m-%d"), t["quantity"], t["price"]))


def check_accounting(ds: Dataset, n_input: int) -> None:
    r = ds.report
    assert r.input_rows == n_input
    assert r.kept_rows == len(ds.transactions)
    assert r.kept_rows + sum(r.dropped.values()) == r.input_rows
    assert set(r.dropped) <= REASONS
    assert all(v > 0 for v in r.dropped.values())


# ---------------------------------------------------------------- returns netting
def test_partial_return_keeps_line_with_reduced_quantity():
    ds = Dataset.from_frames(tx([("c1", "a", "2011-01-01", 5, 2.0), ("c1", "a", "2011-01-05", -2, 2.0)]))
    assert rows_of(ds) == [("c1", "a", "2011-01-01", 3.0, 2.0)]
    assert ds.transactions["amount"].tolist() == [6.0]
    assert ds.report.dropped == {"return": 1}
    assert ds.report.details == {"netted_quantity": 2.0, "partially_returned_rows": 1}
    check_accounting(ds, 2)


def test_full_return_drops_the_purchase():
    ds = Dataset.from_frames(tx([("c1", "a", "2011-01-01", 2, 2.0), ("c1", "b", "2011-01-02", 1, 1.0),
                                 ("c1", "a", "2011-01-05", -2, 2.0)]))
    assert rows_of(ds) == [("c1", "b", "2011-01-02", 1.0, 1.0)]
    assert ds.report.dropped == {"return": 1, "returned_purchase": 1}
    check_accounting(ds, 3)


def test_return_before_purchase_is_unmatched():
    ds = Dataset.from_frames(tx([("c1", "a", "2011-01-01", -2, 2.0), ("c1", "a", "2011-01-05", 3, 2.0)]))
    assert rows_of(ds) == [("c1", "a", "2011-01-05", 3.0, 2.0)]  # purchase untouched
    assert ds.report.dropped == {"return": 1}
    assert ds.report.details["netted_quantity"] == 0.0


def test_return_nets_latest_purchases_first_and_only_same_customer_item():
    ds = Dataset.from_frames(tx([
        ("c1", "a", "2011-01-01", 3, 2.0),
        ("c1", "a", "2011-01-02", 2, 2.0),
        ("c2", "a", "2011-01-02", 4, 2.0),   # other customer: untouched
        ("c1", "b", "2011-01-02", 4, 1.0),   # other item: untouched
        ("c1", "a", "2011-01-03", -4, 2.0),
        ("c1", "a", "2011-01-04", 6, 2.0),   # after the return: untouched
    ]))
    assert rows_of(ds) == [("c1", "a", "2011-01-01", 1.0, 2.0), ("c2", "a", "2011-01-02", 4.0, 2.0),
                           ("c1", "b", "2011-01-02", 4.0, 1.0), ("c1", "a", "2011-01-04", 6.0, 2.0)]
    assert ds.report.dropped == {"return": 1, "returned_purchase": 1}
    assert ds.report.details == {"netted_quantity": 4.0, "partially_returned_rows": 1}


def test_return_larger_than_purchases_nets_what_exists():
    ds = Dataset.from_frames(tx([("c1", "a", "2011-01-01", 1, 2.0), ("c1", "a", "2011-01-02", -5, 2.0),
                                 ("c2", "b", "2011-01-03", 1, 1.0)]))
    assert rows_of(ds) == [("c2", "b", "2011-01-03", 1.0, 1.0)]
    assert ds.report.dropped == {"return": 1, "returned_purchase": 1}
    assert ds.report.details["netted_quantity"] == 1.0


def test_returns_drop_policy_keeps_purchases_whole():
    ds = Dataset.from_frames(tx([("c1", "a", "2011-01-01", 5, 2.0), ("c1", "a", "2011-01-05", -5, 2.0)]),
                             options=CleaningOptions(returns="drop"))
    assert rows_of(ds) == [("c1", "a", "2011-01-01", 5.0, 2.0)]
    assert ds.report.dropped == {"return": 1}


# ---------------------------------------------------------------- other reasons and policies
def test_duplicates_guests_zero_quantity_and_first_reason_wins():
    frame = tx([("c1", "a", "2011-01-01", 1, 2.0), ("c1", "a", "2011-01-01", 1, 2.0),  # exact duplicate
                (None, "a", "2011-01-02", 1, 2.0), (None, "a", "2011-01-02", 1, 2.0),  # guest + duplicate guest
                ("  ", "b", "2011-01-02", 1, 2.0),                                     # blank id = guest
                ("c2", "b", "2011-01-03", 0, 2.0)])                                    # zero quantity
    ds = Dataset.from_frames(frame)
    assert ds.report.dropped == {"exact_duplicate": 2, "guest": 2, "zero_quantity": 1}
    assert rows_of(ds) == [("c1", "a", "2011-01-01", 1.0, 2.0)]
    kept_all = Dataset.from_frames(frame, options=CleaningOptions(drop_duplicates=False))
    assert kept_all.report.dropped == {"guest": 3, "zero_quantity": 1}
    assert len(kept_all) == 2


def test_zero_price_drop_and_keep():
    frame = tx([("c1", "a", "2011-01-01", 1, 2.0), ("c1", "gift", "2011-01-02", 1, 0.0)])
    ds = Dataset.from_frames(frame)
    assert ds.report.dropped == {"zero_price": 1} and len(ds) == 1
    keep = Dataset.from_frames(frame, options=CleaningOptions(zero_price="keep"))
    assert keep.report.dropped == {} and rows_of(keep)[1] == ("c1", "gift", "2011-01-02", 1.0, 0.0)
    assert keep.transactions["amount"].tolist() == [2.0, 0.0]


def test_negative_price_error_or_drop():
    frame = tx([("c1", "a", "2011-01-01", 1, 2.0), ("c1", "adj", "2011-01-02", 1, -11062.06)])
    with pytest.raises(DataError, match="negative prices") as info:
        Dataset.from_frames(frame)
    assert info.value.column == "price" and info.value.rows == [1]
    ds = Dataset.from_frames(frame, options=CleaningOptions(negative_price="drop"))
    assert ds.report.dropped == {"negative_price": 1}


def test_non_product_items_list_and_pattern():
    frame = tx([("c1", "a", "2011-01-01", 1, 2.0), ("c1", "POST", "2011-01-01", 1, 18.0),
                ("c1", "gift_0001_20", "2011-01-01", 1, 20.0), ("c1", "DCGSSBOY", "2011-01-01", 1, 3.0),
                ("c1", "POSTCARD", "2011-01-01", 1, 0.5)])
    ds = Dataset.from_frames(frame, options=CleaningOptions(non_product_items=("POST",),
                                                            non_product_pattern=r"^(gift_\d+_\d+|DCGS\w*)$"))
    assert ds.report.dropped == {"non_product": 3}
    assert sorted(ds.transactions["item_id"]) == ["POSTCARD", "a"]
    assert len(Dataset.from_frames(frame)) == 5  # the generic default treats every code as a product


@pytest.mark.parametrize("policy,expected_kept,expected_dropped", [
    ("drop", ["a"], {"unknown_item": 1}),
    ("keep", ["a", "zzz"], {}),
])
def test_unknown_items_policies(policy, expected_kept, expected_dropped):
    frame = tx([("c1", "a", "2011-01-01", 1, 2.0), ("c1", "zzz", "2011-01-02", 1, 2.0)])
    items = pd.DataFrame({"item_id": ["a", "b"]})
    ds = Dataset.from_frames(frame, items=items, options=CleaningOptions(unknown_items=policy))
    assert list(ds.transactions["item_id"]) == expected_kept
    assert ds.report.dropped == expected_dropped
    assert "b" in ds.item_vocab  # catalog items are in the vocabulary even without sales


def test_unknown_items_error_is_default():
    frame = tx([("c1", "a", "2011-01-01", 1, 2.0), ("c1", "zzz", "2011-01-02", 1, 2.0)])
    with pytest.raises(DataError, match=r"missing from the item table \(\['zzz'\]\)") as info:
        Dataset.from_frames(frame, items=pd.DataFrame({"item_id": ["a"]}))
    assert info.value.table == "transactions" and info.value.column == "item_id" and info.value.rows == [1]


def test_unknown_items_ignored_when_dropped_for_another_reason():
    # a guest line for an unknown item is a guest line, not an unknown-item error
    frame = tx([("c1", "a", "2011-01-01", 1, 2.0), (None, "zzz", "2011-01-02", 1, 2.0)])
    ds = Dataset.from_frames(frame, items=pd.DataFrame({"item_id": ["a"]}))
    assert ds.report.dropped == {"guest": 1}


def test_future_tolerance_with_fixed_now():
    frame = tx([("c1", "a", "2011-01-01", 1, 2.0), ("c1", "b", "2011-01-03", 1, 2.0)])
    now = pd.Timestamp("2011-01-01 12:00")
    with pytest.raises(DataError, match="timestamps in the future") as info:
        Dataset.from_frames(frame, options=CleaningOptions(now=now, future_tolerance_days=1))
    assert info.value.rows == [1]
    ds = Dataset.from_frames(frame, options=CleaningOptions(now=now, future_tolerance_days=2))
    assert len(ds) == 2


@pytest.mark.parametrize("kwargs", [{"returns": "keep"}, {"zero_price": "drop_all"}, {"negative_price": "keep"},
                                    {"unknown_items": "ignore"}, {"non_product_pattern": "([unclosed"}])
def test_invalid_options(kwargs):
    with pytest.raises(DataError, match="cleaning option"):
        CleaningOptions(**kwargs)


def test_report_to_dict_is_json_ready():
    import json

    ds = Dataset.from_frames(tx([("c1", "a", "2011-01-01", 5, 2.0), ("c1", "a", "2011-01-05", -2, 2.0),
                                 (None, "a", "2011-01-05", 1, 2.0)]))
    d = json.loads(json.dumps(ds.report.to_dict()))
    assert d == {"input_rows": 3, "kept_rows": 1, "dropped": {"return": 1, "guest": 1},
                 "details": {"netted_quantity": 2.0, "partially_returned_rows": 1}}


# ---------------------------------------------------------------- property-style: every row accounted for
def random_frame(rng: np.random.Generator, n: int) -> pd.DataFrame:
    cust = rng.choice(["c1", "c2", "c3", "c4", None], size=n, p=[0.25, 0.25, 0.2, 0.2, 0.1])
    item = rng.choice(["a", "b", "c", "POST", "gift_1_10"], size=n, p=[0.3, 0.3, 0.25, 0.1, 0.05])
    day = rng.integers(0, 6, size=n)
    qty = rng.integers(1, 5, size=n).astype(float)
    qty[rng.random(n) < 0.25] *= -1          # returns
    qty[rng.random(n) < 0.05] = 0            # zero quantity
    price = rng.choice([0.0, 1.5, 2.0, 5.0], size=n, p=[0.15, 0.35, 0.3, 0.2])
    df = pd.DataFrame({"customer_id": cust, "item_id": item,
                       "timestamp": pd.Timestamp("2011-01-01") + pd.to_timedelta(day, unit="D"),
                       "quantity": qty, "price": price})
    dup = df.sample(n=int(rng.integers(0, 4)), random_state=int(rng.integers(1 << 31)), replace=True)
    return pd.concat([df, dup], ignore_index=True).sample(frac=1.0, random_state=int(rng.integers(1 << 31)))


def expected_net_quantities(df: pd.DataFrame) -> dict:
    """Independent model of netting: per (customer, item), kept units = bought - min(returned, bought up to the
    last return), over the rows that survive the earlier rules."""
    d = df.drop_duplicates()
    d = d[d["customer_id"].notna() & (d["item_id"] != "POST") & (d["quantity"] != 0)]
    out = {}
    for (c, i), g in d.groupby(["customer_id", "item_id"]):
        buys, rets = g[g["quantity"] > 0], g[g["quantity"] < 0]
        bought = buys["quantity"].sum()
        if len(rets):
            eligible = buys.loc[buys["timestamp"] <= rets["timestamp"].max(), "quantity"].sum()
            bought -= min(-rets["quantity"].sum(), eligible)
        if bought > 0:
            out[(c, i)] = bought
    return out


def test_report_accounts_for_every_row_over_random_frames():
    rng = np.random.default_rng(20240601)
    checked = 0
    for _ in range(80):
        df = random_frame(rng, int(rng.integers(1, 25)))
        opts = CleaningOptions(returns=str(rng.choice(["net", "drop"])), zero_price=str(rng.choice(["drop", "keep"])),
                               negative_price="drop", non_product_items=("POST",),
                               non_product_pattern=r"^gift_\d+_\d+$" if rng.random() < 0.5 else None,
                               drop_duplicates=bool(rng.random() < 0.8))
        try:
            ds = Dataset.from_frames(df, options=opts)
        except DataError as exc:  # only legitimate reasons to reject a random frame
            assert any(s in str(exc) for s in ("every customer id is empty", "no transactions left")), str(exc)
            continue
        check_accounting(ds, len(df))
        t = ds.transactions
        assert t["customer_id"].notna().all() and (t["item_id"] != "POST").all()
        assert (t["quantity"] > 0).all()
        assert t["timestamp"].is_monotonic_increasing
        if opts.zero_price == "drop":
            assert (t["price"] > 0).all()
        if opts.non_product_pattern:
            assert not t["item_id"].str.startswith("gift_").any()
        if opts.returns == "drop":
            assert "returned_purchase" not in ds.report.dropped
            assert ds.report.details == {}
        checked += 1
    assert checked > 60


def test_netting_matches_an_independent_model_over_random_frames():
    rng = np.random.default_rng(7)
    opts = CleaningOptions(zero_price="keep", non_product_items=("POST",))
    netted_somewhere = 0
    for trial in range(40):
        df = random_frame(rng, int(rng.integers(4, 30)))
        try:
            ds = Dataset.from_frames(df, options=opts)
        except DataError as exc:
            assert any(s in str(exc) for s in ("every customer id is empty", "no transactions left")), str(exc)
            continue
        check_accounting(ds, len(df))
        got = ds.transactions.groupby(["customer_id", "item_id"])["quantity"].sum().to_dict()
        assert got == pytest.approx(expected_net_quantities(df)), f"trial {trial}"
        netted_somewhere += ds.report.details.get("netted_quantity", 0) > 0
    assert netted_somewhere > 12


def test_clean_transactions_directly_returns_sorted_frame():
    frame = tx([("c1", "a", "2011-01-03", 1, 2.0), ("c2", "b", "2011-01-01", 1, 2.0),
                ("c3", "b", "2011-01-02", 1, 2.0)])
    out, report = clean_transactions(frame, CleaningOptions())
    assert list(out["customer_id"]) == ["c2", "c3", "c1"]
    assert isinstance(out.index, pd.RangeIndex)
    assert report.kept_rows == 3
