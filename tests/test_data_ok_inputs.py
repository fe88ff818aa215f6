"""Odd-but-valid inputs load correctly: encodings, line endings, quoting, ids, delimiters, Parquet, DuckDB."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from personalize.data import Dataset, DataError
from personalize.data.adapters import load_generic

OK = Path(__file__).resolve().parent / "data" / "ok"


def _tx(ds: Dataset) -> list[tuple]:
    t = ds.transactions
    return list(zip(t["customer_id"], t["item_id"], t["timestamp"].dt.strftime("%Y-%m-%d %H:%M"), t["quantity"],
                    t["price"]))


def _assert_canonical(ds: Dataset) -> None:
    t = ds.transactions
    assert t["timestamp"].dtype == np.dtype("datetime64[ns]")
    assert t["quantity"].dtype == np.float64 and t["price"].dtype == np.float64
    assert pd.api.types.is_string_dtype(t["customer_id"].dtype)
    assert pd.api.types.is_string_dtype(t["item_id"].dtype)
    assert ds.report.kept_rows + sum(ds.report.dropped.values()) == ds.report.input_rows


def test_utf8_bom():
    ds = Dataset.from_csv(OK / "bom.csv")
    _assert_canonical(ds)
    assert list(ds.transactions["customer_id"]) == ["c1", "c2"]  # the BOM is not part of the first column name


def test_crlf_line_endings():
    ds = load_generic(OK / "crlf.csv")
    _assert_canonical(ds)
    assert _tx(ds)[-1] == ("c3", "i3", "2011-01-03 00:00", 2.0, 4.0)
    assert not any(s.endswith("\r") for s in ds.transactions["item_id"])


def test_quoted_fields_with_commas():
    ds = Dataset.from_csv(OK / "quoted_commas.csv")
    _assert_canonical(ds)
    assert list(ds.transactions["item_id"]) == ["MUG, RED", "MUG, BLUE"]
    assert list(ds.transactions["price"]) == [2.5, 1.5]
    assert set(ds.item_vocab.ids) == {"MUG, RED", "MUG, BLUE"}


def test_leading_zero_ids_stay_strings():
    ds = load_generic(OK / "leading_zeros.csv")
    _assert_canonical(ds)
    assert list(ds.transactions["customer_id"]) == ["00042", "042", "00042"]
    assert list(ds.transactions["item_id"]) == ["0007", "7", "0007"]
    assert list(ds.customer_vocab.ids) == ["00042", "042"]  # never parsed as the number 42
    assert "00042" in ds.customer_vocab and "42" not in ds.customer_vocab
    assert ds.n_items == 2


def test_semicolon_with_decimal_comma():
    ds = Dataset.from_csv(OK / "semicolon_decimal_comma.csv", decimal=",")
    _assert_canonical(ds)
    assert list(ds.transactions["price"]) == [2.5, 1234.75, 0.99]
    assert list(ds.transactions["quantity"]) == [1.0, 1.5, 3.0]
    assert ds.transactions["amount"].tolist() == pytest.approx([2.5, 1.5 * 1234.75, 2.97])


def test_semicolon_with_explicit_separator():
    ds = load_generic(OK / "semicolon_decimal_comma.csv", sep=";", decimal=",")
    assert ds.transactions["price"].tolist() == [2.5, 1234.75, 0.99]


def test_decimal_comma_undeclared_is_an_error_not_a_guess():
    with pytest.raises(DataError, match="column 'quantity': expected numbers, found '1,5'"):
        Dataset.from_csv(OK / "semicolon_decimal_comma.csv")


@pytest.mark.parametrize("name", ["tab.tsv", "pipe.csv"])
def test_other_delimiters_detected(name):
    ds = load_generic(OK / name)
    _assert_canonical(ds)
    assert _tx(ds)[0] == ("c1", "i1", "2011-01-01 00:00", 1.0, 2.5)
    assert len(ds) == 2


def test_timezone_offsets_converted_to_utc():
    # offsets change with daylight saving time; every row is converted to naive UTC
    ds = load_generic(OK / "timezones.csv")
    assert list(ds.transactions["timestamp"]) == [pd.Timestamp("2011-03-26 22:30"), pd.Timestamp("2011-03-27 21:30")]


def test_user_column_names_with_mapping():
    mapping = {"customer_id": "Kunde", "item_id": "Artikel", "timestamp": "Datum", "quantity": "Menge",
               "price": "Preis", "store_id": "Filiale"}
    ds = load_generic(OK / "user_columns.csv", mapping=mapping, time_format="%d.%m.%Y", decimal=",")
    _assert_canonical(ds)
    assert _tx(ds) == [("K-001", "A-1", "2010-12-31 00:00", 2.0, 4.0), ("K-002", "A-2", "2011-01-01 00:00", 1.0, 10.5),
                       ("K-001", "A-2", "2011-01-02 00:00", 1.0, 10.5)]
    assert list(ds.transactions["store_id"]) == ["Berlin", "Hamburg", "Berlin"]
    assert "Kunde" not in ds.transactions.columns


def test_nested_mapping_for_items(tmp_path):
    items = tmp_path / "articles.csv"
    items.write_text("Artikel,Gruppe,Lager\nA-1,cups,ja\nA-2,plates,yes\n", encoding="utf-8")
    with pytest.raises(DataError, match="column 'in_stock'"):  # 'ja' is not a boolean we know
        Dataset.from_csv(OK / "user_columns.csv", items=items, decimal=",", time_format="%d.%m.%Y",
                         mapping={"transactions": {"customer_id": "Kunde", "item_id": "Artikel", "timestamp": "Datum",
                                                   "quantity": "Menge", "price": "Preis"},
                                  "items": {"item_id": "Artikel", "category": "Gruppe", "in_stock": "Lager"}})
    items.write_text("Artikel,Gruppe,Lager\nA-1,cups,yes\nA-2,plates,no\nA-3,bowls,yes\n", encoding="utf-8")
    ds = Dataset.from_csv(OK / "user_columns.csv", items=items, decimal=",", time_format="%d.%m.%Y",
                          mapping={"transactions": {"customer_id": "Kunde", "item_id": "Artikel", "timestamp": "Datum",
                                                    "quantity": "Menge", "price": "Preis"},
                                   "items": {"item_id": "Artikel", "category": "Gruppe", "in_stock": "Lager"}})
    assert list(ds.items["category"]) == ["cups", "plates", "bowls"]
    assert list(ds.items["in_stock"]) == [True, False, True]
    assert list(ds.item_vocab.ids) == ["A-1", "A-2", "A-3"]  # the catalog's unsold item is in the vocabulary


def _frame() -> pd.DataFrame:
    return pd.DataFrame({
        "cust": ["00042", "7", "00042", "x"],
        "sku": ["0001", "0002", "0002", "0003"],
        "ts": pd.to_datetime(["2011-01-01 10:00", "2011-01-02 00:00", "2011-01-03 00:00", "2011-01-04 00:00"]),
        "qty": [1, 2, 1, 5],
        "unit": [2.5, 3.0, 3.0, 1.0],
    })


_MAP = {"customer_id": "cust", "item_id": "sku", "timestamp": "ts", "quantity": "qty", "price": "unit"}


def test_parquet_file(tmp_path):
    path = tmp_path / "sales.parquet"
    _frame().to_parquet(path, index=False)
    ds = Dataset.from_parquet(path, mapping=_MAP)
    _assert_canonical(ds)
    assert _tx(ds)[0] == ("00042", "0001", "2011-01-01 10:00", 1.0, 2.5)
    assert load_generic(path, mapping=_MAP).fingerprint() == ds.fingerprint()


def test_parquet_float_customer_ids(tmp_path):
    # UCI-style float ids with NaN for guests: 17850.0 -> "17850", NaN -> guest row
    df = pd.DataFrame({"customer_id": [17850.0, np.nan, 12346.0], "item_id": ["a", "b", "c"],
                       "timestamp": pd.to_datetime(["2011-01-01", "2011-01-02", "2011-01-03"]),
                       "quantity": [1.0, 1.0, 1.0], "price": [1.0, 1.0, 1.0]})
    path = tmp_path / "float_ids.parquet"
    df.to_parquet(path, index=False)
    ds = Dataset.from_parquet(path)
    assert list(ds.transactions["customer_id"]) == ["17850", "12346"]
    assert ds.report.dropped == {"guest": 1}


def test_parquet_glob(tmp_path):
    df = _frame()
    (tmp_path / "sales").mkdir()
    df.iloc[:2].to_parquet(tmp_path / "sales" / "part-0.parquet", index=False)
    df.iloc[2:].to_parquet(tmp_path / "sales" / "part-1.parquet", index=False)
    ds = Dataset.from_parquet(str(tmp_path / "sales" / "*.parquet"), mapping=_MAP)
    _assert_canonical(ds)
    assert len(ds) == 4 and ds.n_customers == 3
    assert ds.fingerprint() == Dataset.from_frames(df, mapping=_MAP).fingerprint()


def test_parquet_glob_matching_nothing(tmp_path):
    with pytest.raises(DataError, match="no files match"):
        Dataset.from_parquet(str(tmp_path / "none" / "*.parquet"))


def test_duckdb_database(tmp_path):
    import duckdb

    db = tmp_path / "shop.duckdb"
    con = duckdb.connect(str(db))
    con.register("src", _frame())
    con.execute("CREATE TABLE sales AS SELECT * FROM src")
    con.execute("CREATE TABLE products AS SELECT * FROM (VALUES ('0001', 'mugs'), ('0002', 'cards'), "
                "('0003', 'toys'), ('0004', 'bags')) t(sku, cat)")
    con.close()
    ds = Dataset.from_sql("SELECT * FROM sales", database=db,
                          items="SELECT sku AS item_id, cat AS category FROM products", mapping={"transactions": _MAP})
    _assert_canonical(ds)
    assert len(ds) == 4
    assert list(ds.item_vocab.ids) == ["0001", "0002", "0003", "0004"]
    assert ds.n_items == 3
    # the same file through the generic loader and a query
    ds2 = load_generic(db, query="SELECT * FROM sales", mapping=_MAP)
    assert list(ds2.transactions["customer_id"]) == ["00042", "7", "00042", "x"]
    with pytest.raises(DataError, match="SQL query failed"):
        Dataset.from_sql("SELECT * FROM no_such_table", database=db)
    with pytest.raises(DataError, match="needs a query"):
        load_generic(db)


def test_duckdb_query_over_parquet_glob(tmp_path):
    _frame().to_parquet(tmp_path / "a.parquet", index=False)
    glob_sql = str(tmp_path / "*.parquet").replace("'", "''")
    ds = Dataset.from_sql(f"SELECT cust AS customer_id, sku AS item_id, ts AS timestamp, qty AS quantity, "
                          f"unit AS price FROM read_parquet('{glob_sql}') WHERE qty < 5")
    assert len(ds) == 3


def test_frames_with_integer_ids_and_string_dates():
    df = pd.DataFrame({"customer_id": [1, 2, 2], "item_id": [10, 20, 10],
                       "timestamp": ["2011-01-01", "2011-01-02", "2011-01-03"], "quantity": [1, 1, 1],
                       "price": [1.0, 2.0, 1.0]})
    ds = Dataset.from_frames(df)
    assert list(ds.transactions["customer_id"]) == ["1", "2", "2"]
    assert list(ds.item_vocab.ids) == ["10", "20"]


def test_parquet_timezone_aware_and_microsecond_timestamps(tmp_path):
    df = _frame()
    df["ts"] = df["ts"].dt.tz_localize("Europe/Berlin").dt.as_unit("us")
    df.to_parquet(tmp_path / "tz.parquet", index=False)
    ds = Dataset.from_parquet(tmp_path / "tz.parquet", mapping=_MAP)
    assert ds.transactions["timestamp"].dtype == np.dtype("datetime64[ns]")
    assert ds.first_timestamp == pd.Timestamp("2011-01-01 09:00")  # 10:00 in Berlin is 09:00 UTC


def test_day_first_dates_with_declared_format():
    # without a format this file is refused as ambiguous (tests/data/bad/ambiguous_day_month.csv)
    ds = load_generic(OK / "day_first.csv", time_format="%d/%m/%Y %H:%M")
    assert list(ds.transactions["timestamp"]) == [pd.Timestamp("2011-02-01 10:00"), pd.Timestamp("2011-02-13 11:00")]


def test_unambiguous_non_iso_dates_are_inferred():
    df = pd.DataFrame({"customer_id": ["c1", "c2"], "item_id": ["a", "b"],
                       "timestamp": ["Dec 1 2010 8:26", "12/25/2010"], "quantity": [1, 1], "price": [1.0, 1.0]})
    ds = Dataset.from_frames(df)
    assert list(ds.transactions["timestamp"]) == [pd.Timestamp("2010-12-01 08:26"), pd.Timestamp("2010-12-25")]
