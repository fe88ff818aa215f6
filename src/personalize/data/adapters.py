"""Loaders for the real datasets in ``../shared/data`` and for any retailer's export.

Online Retail (UCI) rules:
  * ``InvoiceNo`` -> order_id, ``StockCode`` -> item_id, ``Quantity`` -> quantity,
    ``InvoiceDate`` -> timestamp, ``UnitPrice`` -> price, ``CustomerID`` (float) -> customer_id
    (``17850.0`` -> ``"17850"``), ``Country`` -> the customer's region (most frequent).
  * Cleaning with the default rules of :mod:`personalize.data.cleaning`:
    exact duplicate lines, guest lines (no CustomerID), non-product stock codes
    (postage, fees, manual lines, bank charges, vouchers: see ``ONLINE_RETAIL_NON_PRODUCT``),
    returns/cancellations (negative quantity; netted against the same
    customer's earlier purchases of the item), and zero-price lines are dropped
    and counted. What is kept: purchase lines with a customer id, a product and a price.
  * Items: one row per product stock code, with its most frequent description and median price.

CDNOW (Fader & Hardie): no item ids, one row per customer and day with the number
of CDs and the dollars spent. Each row becomes one order of the pseudo item ``"cd"``
(quantity = CDs, unit price = dollars / CDs); zero-dollar rows are kept
(they are purchases, and the BG/NBD counts them).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from personalize.data import io as dio
from personalize.data.cleaning import DEFAULT_NON_PRODUCT, DEFAULT_NON_PRODUCT_PATTERN, CleaningOptions
from personalize.data.dataset import Dataset
from personalize.errors import DataError

ONLINE_RETAIL_NON_PRODUCT = DEFAULT_NON_PRODUCT
ONLINE_RETAIL_NON_PRODUCT_PATTERN = DEFAULT_NON_PRODUCT_PATTERN
CDNOW_ITEM = "cd"


def _require(df: pd.DataFrame, cols: list[str], name: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DataError(f"not an {name} file: missing columns {missing}; found {list(df.columns)[:12]}",
                        table="transactions")


def load_online_retail(path: str | Path, *, options: CleaningOptions | None = None) -> Dataset:
    """UCI Online Retail (Parquet as in ``../shared/data``, or the CSV/Excel export saved as CSV)."""
    raw = dio.read_any(path)
    _require(raw, ["InvoiceNo", "StockCode", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID"], "Online Retail")
    opts = options or CleaningOptions(non_product_items=ONLINE_RETAIL_NON_PRODUCT,
                                      non_product_pattern=ONLINE_RETAIL_NON_PRODUCT_PATTERN,
                                      unknown_items="keep")
    tx = pd.DataFrame({
        "order_id": raw["InvoiceNo"].astype("str"),
        "item_id": raw["StockCode"].astype("str"),
        "quantity": raw["Quantity"],
        "timestamp": raw["InvoiceDate"],
        "price": raw["UnitPrice"],
        "customer_id": raw["CustomerID"],
    })
    if "Country" in raw:
        tx["channel"] = None
    items = _online_retail_items(raw, opts)
    customers = _online_retail_customers(raw)
    return Dataset.from_frames(tx, items=items, customers=customers, options=opts,
                               time_format=None if pd.api.types.is_datetime64_any_dtype(raw["InvoiceDate"])
                               else "%Y-%m-%d %H:%M:%S")


def _online_retail_items(raw: pd.DataFrame, opts: CleaningOptions) -> pd.DataFrame:
    code = raw["StockCode"].astype("str").str.strip()
    mask = ~code.isin(list(opts.non_product_items))
    if opts.non_product_pattern:
        mask &= ~code.str.match(opts.non_product_pattern).fillna(False)
    price = pd.to_numeric(raw["UnitPrice"], errors="coerce")
    mask &= code.notna() & (code != "")
    df = pd.DataFrame({"item_id": code[mask], "price": price[mask],
                       "description": raw["Description"][mask] if "Description" in raw else None})
    pos = df[df["price"] > 0]
    med = pos.groupby("item_id")["price"].median()
    desc = (df.dropna(subset=["description"]).groupby(["item_id", "description"]).size()
            .reset_index(name="n").sort_values(["item_id", "n"], ascending=[True, False])
            .drop_duplicates("item_id").set_index("item_id")["description"])
    ids = pd.Index(df["item_id"].unique())
    out = pd.DataFrame({"item_id": ids})
    out["price"] = med.reindex(ids).to_numpy()
    out["description"] = desc.reindex(ids).to_numpy()
    out["in_stock"] = True
    return out


def _online_retail_customers(raw: pd.DataFrame) -> pd.DataFrame | None:
    if "Country" not in raw:
        return None
    cid = pd.to_numeric(raw["CustomerID"], errors="coerce")
    ok = cid.notna() & np.isfinite(cid) & (np.mod(cid.fillna(0), 1) == 0)
    df = pd.DataFrame({"customer_id": cid[ok].astype(np.int64).astype(str), "region": raw["Country"][ok]})
    region = (df.groupby(["customer_id", "region"]).size().reset_index(name="n")
              .sort_values(["customer_id", "n", "region"], ascending=[True, False, True])
              .drop_duplicates("customer_id"))
    return region[["customer_id", "region"]].reset_index(drop=True)


def _cdnow_frame(df: pd.DataFrame, id_col: str) -> pd.DataFrame:
    cds = pd.to_numeric(df["cds"], errors="coerce")
    dollars = pd.to_numeric(df["dollars"], errors="coerce")
    bad = cds.isna() | dollars.isna()
    if bad.any():
        rows = np.flatnonzero(bad.to_numpy())[:5].tolist()
        raise DataError("CDNOW rows with non-numeric number of CDs or dollar value", table="transactions",
                        rows=rows)
    qty = cds.where(cds > 0, 1.0)
    return pd.DataFrame({
        "customer_id": df[id_col],
        "item_id": CDNOW_ITEM,
        "timestamp": df["date"],
        "quantity": qty,
        "price": dollars / qty,
        "order_id": df[id_col].astype("str") + "-" + df["date"].astype("str"),
    })


def load_cdnow(path: str | Path, *, options: CleaningOptions | None = None) -> Dataset:
    """CDNOW master file: header then ``customer_id date number_of_cds dollar_value`` (whitespace separated).

    The 1/10 sample file (no header, 5 columns) is recognised and loaded with :func:`load_cdnow_sample`.
    """
    raw = dio.read_csv(path, sep="whitespace")
    if len(raw.columns) == 5 and "customer_id" not in raw.columns:
        return load_cdnow_sample(path, options=options)
    _require(raw, ["customer_id", "date", "number_of_cds", "dollar_value"], "CDNOW master")
    raw = raw.rename(columns={"number_of_cds": "cds", "dollar_value": "dollars"})
    opts = options or CleaningOptions(zero_price="keep", drop_duplicates=False)
    return Dataset.from_frames(_cdnow_frame(raw, "customer_id"), options=opts, time_format="%Y%m%d")


def load_cdnow_sample(path: str | Path, *, options: CleaningOptions | None = None) -> Dataset:
    """CDNOW 1/10 sample: no header; ``master_id sample_id date cds dollars``. Customer id = master id."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"file not found: {path}")
    try:
        raw = pd.read_csv(path, sep=r"\s+", header=None, dtype=str, engine="python")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read CDNOW sample {path.name}: {str(exc).splitlines()[0]}") from None
    if raw.shape[1] != 5:
        raise DataError(f"CDNOW sample expects 5 whitespace-separated columns, found {raw.shape[1]}")
    raw.columns = ["customer_id", "sample_id", "date", "cds", "dollars"]
    opts = options or CleaningOptions(zero_price="keep", drop_duplicates=False)
    return Dataset.from_frames(_cdnow_frame(raw, "customer_id"), options=opts, time_format="%Y%m%d")


def load_generic(path: str | Path, *, mapping: Mapping[str, str] | None = None, time_format: str | None = None,
                 sep: str | None = None, decimal: str = ".", encoding: str = "utf-8", query: str | None = None,
                 options: CleaningOptions | None = None, items: str | Path | None = None,
                 customers: str | Path | None = None, item_mapping: Mapping[str, str] | None = None,
                 customer_mapping: Mapping[str, str] | None = None) -> Dataset:
    """Any retailer's CSV / Parquet / DuckDB export, driven by a column mapping (canonical field -> column)."""
    tx = dio.read_any(path, sep=sep, decimal=decimal, encoding=encoding, query=query)
    it = dio.read_any(items, sep=sep, decimal=decimal, encoding=encoding, table="items") if items else None
    cu = dio.read_any(customers, sep=sep, decimal=decimal, encoding=encoding, table="customers") if customers else None
    maps = {"transactions": dict(mapping or {})}
    if item_mapping:
        maps["items"] = dict(item_mapping)
    if customer_mapping:
        maps["customers"] = dict(customer_mapping)
    return Dataset.from_frames(tx, items=it, customers=cu, mapping=maps, options=options,
                               time_format=time_format, decimal=decimal)


FORMATS = {
    "online_retail": load_online_retail,
    "cdnow": load_cdnow,
    "cdnow_sample": load_cdnow_sample,
    "generic": load_generic,
}
