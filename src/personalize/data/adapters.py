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

Hillstrom (MineThatData e-mail test, randomized): one row per customer, no
ids and no dates. :func:`load_hillstrom` gives :class:`CampaignData`: arm from
``segment`` ("No E-Mail" is the control, empty offer id; "Mens E-Mail" and
"Womens E-Mail" are offer ids), converted = the ``target`` column (``visit``
or ``conversion``), revenue = ``spend``, randomized = True, customer ids the
row numbers (``"00000"`` ...), ``exposed_at`` = :data:`HILLSTROM_DATE` (a
placeholder: the file has no dates; the challenge was published in March
2008), planned split 1/3 each, and the pre-period columns as features.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from personalize.data import io as dio
from personalize.data.campaign import CampaignData
from personalize.data.cleaning import DEFAULT_NON_PRODUCT, DEFAULT_NON_PRODUCT_PATTERN, CleaningOptions
from personalize.data.dataset import Dataset
from personalize.data.validate import cast_float, cast_int
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
                 customers: str | Path | None = None, offers: str | Path | None = None,
                 exposures: str | Path | None = None, item_mapping: Mapping[str, str] | None = None,
                 customer_mapping: Mapping[str, str] | None = None,
                 table_mappings: Mapping[str, Mapping[str, str]] | None = None,
                 feedback: str | Path | None = None, points: str | Path | None = None) -> Dataset:
    """Any retailer's CSV / Parquet / DuckDB export, driven by a column mapping (canonical field -> column).

    ``items``, ``customers``, ``offers``, ``exposures``, ``feedback`` and
    ``points`` are more files of the data contract; ``table_mappings`` maps
    their columns (``{"customers": {"consent_email": "optin_mail"}, "feedback": {"score": "rating"}}``).
    """
    tx = dio.read_any(path, sep=sep, decimal=decimal, encoding=encoding, query=query)
    frames = {name: dio.read_any(f, sep=sep, decimal=decimal, encoding=encoding, table=name) if f else None
              for name, f in (("items", items), ("customers", customers), ("offers", offers),
                              ("exposures", exposures), ("feedback", feedback), ("points", points))}
    maps = {"transactions": dict(mapping or {})}
    maps.update({k: dict(v) for k, v in (table_mappings or {}).items()})
    if item_mapping:
        maps["items"] = dict(item_mapping)
    if customer_mapping:
        maps["customers"] = dict(customer_mapping)
    return Dataset.from_frames(tx, **frames, mapping=maps, options=options, time_format=time_format,
                               decimal=decimal)


def attach_tables(ds: Dataset, *, items: str | Path | None = None, customers: str | Path | None = None,
                  offers: str | Path | None = None, exposures: str | Path | None = None,
                  table_mappings: Mapping[str, Mapping[str, str]] | None = None, sep: str | None = None,
                  decimal: str = ".", feedback: str | Path | None = None,
                  points: str | Path | None = None) -> Dataset:
    """A loaded dataset (any format) with more tables from files, merged over the ones its adapter built."""
    frames = {name: dio.read_any(f, sep=sep, decimal=decimal, table=name) if f else None
              for name, f in (("items", items), ("customers", customers), ("offers", offers),
                              ("exposures", exposures), ("feedback", feedback), ("points", points))}
    if not any(v is not None for v in frames.values()):
        return ds
    return ds.with_tables(**frames, mapping={k: dict(v) for k, v in (table_mappings or {}).items()} or None,
                          decimal=decimal)


HILLSTROM_DATE = pd.Timestamp("2008-03-01")
HILLSTROM_CONTROL = "No E-Mail"
HILLSTROM_ARMS = ("No E-Mail", "Mens E-Mail", "Womens E-Mail")
HILLSTROM_FEATURES = ("recency", "history", "mens", "womens", "zip_code", "newbie", "channel", "history_segment")
_HILLSTROM_TARGETS = {"visit": "visits", "conversion": "conversions"}


def load_hillstrom(path: str | Path, *, target: str = "visit") -> CampaignData:
    """Kevin Hillstrom's MineThatData e-mail test (64,000 customers, three randomized arms).

    ``target`` is ``"visit"`` (default) or ``"conversion"``; revenue is
    ``spend``. Features (indexed by customer id): recency, history, mens,
    womens, zip_code, newbie, channel, history_segment -- all measured before
    the e-mails were sent.
    """
    if target not in _HILLSTROM_TARGETS:
        raise DataError(f"target must be one of {sorted(_HILLSTROM_TARGETS)}, got {target!r}")
    raw = dio.read_csv(path, table="exposures")
    need = ["segment", "visit", "conversion", "spend", *HILLSTROM_FEATURES]
    missing = [c for c in need if c not in raw.columns]
    if missing:
        raise DataError(f"not a Hillstrom file: missing columns {missing}; found {list(raw.columns)[:14]}",
                        table="exposures")
    seg = raw["segment"].astype("str").str.strip()
    bad = ~seg.isin(HILLSTROM_ARMS).to_numpy()
    if bad.any():
        raise DataError(f"unknown segment {seg[bad].unique()[:3].tolist()}; expected one of {list(HILLSTROM_ARMS)}",
                        table="exposures", column="segment", rows=np.flatnonzero(bad)[:5].tolist())
    n = len(raw)
    width = max(5, len(str(n - 1)))
    ids = pd.Series([f"{i:0{width}d}" for i in range(n)], dtype="str")
    exposures = pd.DataFrame({
        "customer_id": ids,
        "exposed_at": np.full(n, HILLSTROM_DATE.to_datetime64()).astype("datetime64[ns]"),
        "offer_id": seg.where(seg != HILLSTROM_CONTROL, None),
        "campaign_id": "hillstrom",
        "randomized": True,
        "converted": raw[target],
        "revenue": raw["spend"],
    })
    feats = pd.DataFrame(index=pd.Index(ids, name="customer_id"))
    for col in HILLSTROM_FEATURES:
        if col == "history":
            feats[col] = cast_float(raw[col], "features", col).to_numpy()
        elif col in ("zip_code", "channel", "history_segment"):
            feats[col] = raw[col].astype("str").str.strip().to_numpy()
        else:
            v = cast_int(raw[col], "features", col)
            if v.isna().any():
                raise DataError("missing values", table="features", column=col,
                                rows=np.flatnonzero(v.isna().to_numpy())[:5].tolist())
            feats[col] = v.to_numpy(dtype=np.int64)
    return CampaignData(exposures, features=feats, planned_split={a: 1.0 for a in HILLSTROM_ARMS},
                        control_name=HILLSTROM_CONTROL, outcome_name=_HILLSTROM_TARGETS[target])


def load_exposures(path: str | Path, *, offers: str | Path | None = None, mapping: Mapping[str, str] | None = None,
                   features: str | Path | None = None, offer_mapping: Mapping[str, str] | None = None,
                   time_format: str | None = None, randomized: bool | None = None,
                   planned_split: Mapping[str, float] | None = None, sep: str | None = None,
                   decimal: str = ".", outcome_name: str = "conversions") -> CampaignData:
    """Any exposures export (CSV / Parquet), driven by a column mapping (canonical field -> column).

    Fields: customer_id and exposed_at (required), offer_id (empty = control),
    campaign_id, randomized, converted, revenue. ``randomized`` declares the
    assignment when the file has no randomized column. ``features``: a file
    with a ``customer_id`` column and pre-period covariates (columns that
    parse as numbers become floats). ``offers``: the offers table.
    """
    raw = dio.read_any(path, sep=sep, decimal=decimal, table="exposures")
    if randomized is not None:
        col = (mapping or {}).get("randomized", "randomized")
        if col in raw.columns:
            raise DataError(f"the file has a {col!r} column; declare randomization either there or by the "
                            "randomized argument, not both", table="exposures", column="randomized")
        raw = raw.assign(randomized=bool(randomized))
    off = dio.read_any(offers, sep=sep, decimal=decimal, table="offers") if offers is not None else None
    feats = None
    if features is not None:
        f = dio.read_any(features, sep=sep, decimal=decimal, table="features")
        if "customer_id" not in f.columns:
            raise DataError(f"a features file needs a customer_id column; found {list(f.columns)[:12]}",
                            table="features", column="customer_id")
        for col in f.columns:
            if col != "customer_id" and not pd.api.types.is_numeric_dtype(f[col].dtype):
                num = pd.to_numeric(f[col].str.replace(decimal, ".", regex=False) if decimal != "." else f[col],
                                    errors="coerce")
                if (num.notna() | f[col].isna()).all():
                    f[col] = num.astype(np.float64)
        feats = f
    return CampaignData(raw, offers=off, features=feats, mapping=mapping, offer_mapping=offer_mapping,
                        planned_split=planned_split, time_format=time_format, outcome_name=outcome_name)


FORMATS = {
    "online_retail": load_online_retail,
    "cdnow": load_cdnow,
    "cdnow_sample": load_cdnow_sample,
    "generic": load_generic,
}
