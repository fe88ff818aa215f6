"""The real datasets in ../shared/data (skipped when absent)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from personalize.cli import main
from personalize.data.adapters import (ONLINE_RETAIL_NON_PRODUCT, load_cdnow, load_cdnow_sample,
                                       load_online_retail)
from personalize.data.cleaning import CleaningOptions

pytestmark = pytest.mark.realdata

KNOWN_REASONS = {"exact_duplicate", "guest", "non_product", "negative_price", "zero_quantity", "return",
                 "returned_purchase", "zero_price", "unknown_item"}


def validate_json(argv: list[str], capsys) -> dict:
    with pytest.raises(SystemExit) as info:
        main(["validate", *argv, "--json"])
    out, err = capsys.readouterr()
    assert info.value.code in (0, None), err
    return json.loads(out)


@pytest.fixture(scope="module")
def online_retail(shared_data):
    return load_online_retail(shared_data / "online_retail" / "online_retail.parquet")


def test_online_retail_cli_accounts_for_every_line(shared_data, capsys):
    doc = validate_json(["--format", "online_retail", str(shared_data / "online_retail" / "online_retail.parquet")],
                        capsys)
    assert doc["input_rows"] == 541909
    assert doc["kept_rows"] + sum(doc["dropped"].values()) == 541909
    assert set(doc["dropped"]) <= KNOWN_REASONS
    for reason in ("exact_duplicate", "guest", "non_product", "return", "zero_price"):
        assert doc["dropped"].get(reason, 0) > 0, reason
    # 135,080 lines have no CustomerID: each is dropped, as a guest or (if repeated) as an exact duplicate first
    assert 130_000 < doc["dropped"]["guest"] <= 135_080
    assert doc["first_timestamp"].startswith("2010-12-01") and doc["last_timestamp"].startswith("2011-12-09")
    assert 4000 < doc["customers"] <= 4372
    assert 3000 < doc["items"] <= 4070


def test_online_retail_kept_lines(online_retail):
    ds = online_retail
    t = ds.transactions
    assert ds.report.input_rows == 541909 and ds.report.kept_rows == len(t)
    assert t["customer_id"].notna().all() and (t["quantity"] > 0).all() and (t["price"] > 0).all()
    assert not t["item_id"].isin(list(ONLINE_RETAIL_NON_PRODUCT)).any()
    assert "17850" in ds.customer_vocab and "17850.0" not in ds.customer_vocab
    assert t["customer_id"].str.fullmatch(r"\d{5}").all()
    assert ds.customers.set_index("customer_id").loc["17850", "region"] == "United Kingdom"
    # netting reduced quantities (the dataset contains partial returns)
    assert ds.report.details["netted_quantity"] > 0 and ds.report.details["partially_returned_rows"] > 0
    m = ds.interaction_matrix("quantity")
    assert m.shape == (len(ds.customer_vocab), len(ds.item_vocab))
    assert m.sum() == pytest.approx(t["quantity"].sum(), rel=1e-5)


@pytest.mark.slow
def test_online_retail_return_policy_drop_keeps_more_quantity(shared_data, online_retail):
    opts = CleaningOptions(returns="drop", non_product_items=ONLINE_RETAIL_NON_PRODUCT,
                           non_product_pattern=r"^(gift_\d+_\d+|DCGS\w*)$", unknown_items="keep")
    dropped = load_online_retail(shared_data / "online_retail" / "online_retail.parquet", options=opts)
    assert dropped.report.input_rows == 541909
    assert "returned_purchase" not in dropped.report.dropped
    assert dropped.transactions["quantity"].sum() > online_retail.transactions["quantity"].sum()


def test_cdnow_master_cli(shared_data, capsys):
    doc = validate_json(["--format", "cdnow", str(shared_data / "cdnow" / "CDNOW_master.txt")], capsys)
    assert doc["input_rows"] == 69659 and doc["kept_rows"] == 69659
    assert doc["customers"] == 23570 and doc["items"] == 1
    assert doc["first_timestamp"] == "1997-01-01T00:00:00" and doc["last_timestamp"] == "1998-06-30T00:00:00"


def test_cdnow_master_and_sample(shared_data):
    master = load_cdnow(shared_data / "cdnow" / "CDNOW_master.txt")
    assert master.n_customers == 23570 and len(master) == 69659
    assert master.report.kept_rows + sum(master.report.dropped.values()) == 69659
    # every customer's first purchase is in Q1 1997 (the cohort)
    first = master.transactions.groupby("customer_id")["timestamp"].min()
    assert first.max() < np.datetime64("1997-04-01")
    sample = load_cdnow_sample(shared_data / "cdnow" / "CDNOW_sample.txt")
    assert sample.n_customers == 2357 and len(sample) == 6919
    assert set(sample.customer_vocab.ids) <= set(master.customer_vocab.ids)  # ids are master ids
    # spend is preserved: quantity * unit price == dollar value
    assert master.transactions["amount"].sum() == pytest.approx(2500315.63, rel=1e-9)
