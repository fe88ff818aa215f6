"""Helpers shared by CLI commands: loading a dataset from options, JSON output, progress."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer

from personalize._atomic import atomic_write
from personalize._json import to_jsonable
from personalize.errors import DataError

FormatOpt = Annotated[str, typer.Option("--format", "-f", help="online_retail | cdnow | cdnow_sample | generic")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
PathArg = Annotated[str, typer.Argument(help="Input file (CSV, Parquet, Parquet glob, DuckDB database).")]
CustomerCol = Annotated[str | None, typer.Option("--customer-col", help="generic: customer id column")]
ItemCol = Annotated[str | None, typer.Option("--item-col", help="generic: item id column")]
TimeCol = Annotated[str | None, typer.Option("--time-col", help="generic: timestamp column")]
TimeFormat = Annotated[str | None, typer.Option("--time-format", help="generic: strftime format, e.g. %Y%m%d")]
QuantityCol = Annotated[str | None, typer.Option("--quantity-col", help="generic: quantity column")]
PriceCol = Annotated[str | None, typer.Option("--price-col", help="generic: unit price column")]
OrderCol = Annotated[str | None, typer.Option("--order-col", help="generic: order / invoice id column")]
Sep = Annotated[str | None, typer.Option("--sep", help="generic CSV: delimiter (default: detect)")]
Decimal = Annotated[str, typer.Option("--decimal", help="generic CSV: decimal mark, e.g. ','")]
Query = Annotated[str | None, typer.Option("--query", help="generic DuckDB database: SQL selecting the transactions")]
ItemsFile = Annotated[str | None, typer.Option("--items", help="Item table file (item_id, category, price, "
                                                                 "in_stock, ...); any format")]
CustomersFile = Annotated[str | None, typer.Option("--customers", help="Customer table file (customer_id, "
                                                                         "consent flags, region, ...); any format")]
OffersFile = Annotated[str | None, typer.Option("--offers", help="Offer catalog file (offer_id, kind, value, ...)")]
ExposuresFile = Annotated[str | None, typer.Option("--exposures", help="Campaign exposures file (customer_id, "
                                                                         "exposed_at, offer_id, ...)")]
# the generic exposures loader's column options (abtest, uplift evaluate)
ExposureOfferCol = Annotated[str | None, typer.Option("--offer-col", help="generic: offer id column "
                                                                        "(empty = control)")]
ExposureTimeCol = Annotated[str | None, typer.Option("--time-col", help="generic: exposure time column")]
ConvertedCol = Annotated[str | None, typer.Option("--converted-col", help="generic: converted (true/false) column")]
RevenueCol = Annotated[str | None, typer.Option("--revenue-col", help="generic: revenue column")]
CampaignCol = Annotated[str | None, typer.Option("--campaign-col", help="generic: campaign id column")]
RandomizedCol = Annotated[str | None, typer.Option("--randomized-col", help="generic: randomized (true/false) "
                                                                            "column")]
RandomizedFlag = Annotated[bool | None, typer.Option("--randomized/--not-randomized",
                                                     help="generic: declare the assignment when the file has no "
                                                          "randomized column.")]
ExposureOffersFile = Annotated[str | None, typer.Option("--offers", help="generic: offers table file")]
FeedbackFile = Annotated[str | None, typer.Option("--feedback", help="Feedback file: surveys, ratings, reviews, "
                                                                      "complaints (customer_id, timestamp, kind, "
                                                                      "score, scale, ...)")]
PointsFile = Annotated[str | None, typer.Option("--points", help="Loyalty points ledger file (customer_id, "
                                                                  "timestamp, delta, reason, ...)")]
MapOpt = Annotated[list[str] | None, typer.Option("--map", help="Column of an --items/--customers/--offers/"
                                                               "--exposures/--feedback/--points file: "
                                                               "TABLE.FIELD=COLUMN, e.g. "
                                                               "customers.consent_email=optin_mail (repeatable)")]

FORMATS = ("online_retail", "cdnow", "cdnow_sample", "generic")


def parse_date(value: str | None, opt: str) -> pd.Timestamp | None:
    """A date option's value (None when not given); a DataError naming the option otherwise."""
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError):
        raise DataError(f"{opt} {value!r} is not a date") from None
    if ts is pd.NaT:
        raise DataError(f"{opt} is empty")
    return ts


def table_mappings(maps: list[str] | None) -> dict[str, dict[str, str]]:
    """``["customers.consent_email=optin"]`` -> ``{"customers": {"consent_email": "optin"}}``."""
    from personalize.data.schema import TABLES

    out: dict[str, dict[str, str]] = {}
    for m in maps or []:
        left, eq, column = m.partition("=")
        table, dot, field = left.strip().partition(".")
        if not (eq and dot and column.strip() and field.strip()):
            raise DataError(f"--map {m!r}: expected TABLE.FIELD=COLUMN, e.g. customers.consent_email=optin_mail")
        if table not in TABLES or table == "transactions":
            raise DataError(f"--map {m!r}: table must be one of items, customers, offers, exposures, feedback, "
                            f"points (transactions columns have their own --*-col options)")
        if field not in TABLES[table].columns:
            raise DataError(f"--map {m!r}: {table} has no field {field!r}; fields: {sorted(TABLES[table].columns)}")
        out.setdefault(table, {})[field.strip()] = column.strip()
    return out


def load_dataset(format: str, path: str, *, customer_col: str | None = None, item_col: str | None = None,
                 time_col: str | None = None, time_format: str | None = None, quantity_col: str | None = None,
                 price_col: str | None = None, order_col: str | None = None, sep: str | None = None,
                 decimal: str = ".", query: str | None = None, items: str | None = None,
                 customers: str | None = None, offers: str | None = None, exposures: str | None = None,
                 maps: list[str] | None = None, feedback: str | None = None, points: str | None = None):
    """Load a dataset the way every CLI command does (``--format``, column options, more table files)."""
    from personalize.data import adapters

    if format not in FORMATS:
        raise DataError(f"unknown --format {format!r}; expected one of {', '.join(FORMATS)}")
    for opt, f in (("", path), ("--items ", items), ("--customers ", customers), ("--offers ", offers),
                   ("--exposures ", exposures), ("--feedback ", feedback), ("--points ", points)):
        if f is not None and not any(ch in f for ch in "*?[") and not Path(f).exists():
            raise DataError(f"file not found: {opt}{f}")
    tables = {"items": items, "customers": customers, "offers": offers, "exposures": exposures,
              "feedback": feedback, "points": points}
    mappings = table_mappings(maps)
    if format == "generic":
        mapping = {k: v for k, v in {"customer_id": customer_col, "item_id": item_col, "timestamp": time_col,
                                     "quantity": quantity_col, "price": price_col, "order_id": order_col}.items()
                   if v}
        if sep == "\\t":
            sep = "\t"
        return adapters.load_generic(path, mapping=mapping, time_format=time_format, sep=sep, decimal=decimal,
                                     query=query, table_mappings=mappings, **tables)
    return adapters.attach_tables(adapters.FORMATS[format](path), table_mappings=mappings, sep=sep, decimal=decimal,
                                  **tables)


_DATA_OPTIONS = ("customer_col", "item_col", "time_col", "time_format", "quantity_col", "price_col", "order_col",
                 "sep", "decimal", "query", "items", "customers", "offers", "exposures", "maps", "feedback",
                 "points")


def dataset_from(options: Mapping[str, Any]):
    """The dataset a command's ``--format``, path and column options name (pass the command's ``locals()``)."""
    return load_dataset(options["format"], options["path"],
                        **{k: options[k] for k in _DATA_OPTIONS if options.get(k) is not None})


def dumps(obj: Any) -> str:
    return json.dumps(to_jsonable(obj), indent=2, allow_nan=False)


def emit(obj: Any, as_json: bool, human: str | None = None) -> None:
    """Print ``obj`` as one JSON document (``--json``) or a human summary."""
    if as_json:
        sys.stdout.write(dumps(obj) + "\n")
    else:
        typer.echo(human if human is not None else dumps(obj))


TABLE_FORMATS = (".csv", ".parquet", ".jsonl")


def write_table(df: pd.DataFrame, out: str, *, index: bool = False, date_format: str | None = None) -> str:
    """Write ``df`` as CSV, Parquet or JSON lines (by the name's extension) atomically: a reader never sees
    half a list. The folder must exist (a typo must not create a folder somewhere unexpected)."""
    p = Path(out)
    ext = p.suffix.lower()
    if ext not in TABLE_FORMATS:
        raise DataError(f"--out {out}: unknown file type {p.suffix or '(none)'!r}; use "
                        f"{', '.join(TABLE_FORMATS)}")
    if not p.parent.is_dir():
        raise DataError(f"--out {out}: folder {p.parent} does not exist")
    if ext == ".parquet":
        atomic_write(p, lambda fh: df.to_parquet(fh, index=index))
    elif ext == ".jsonl":
        frame = df.reset_index() if index else df
        rows = (dumps_line(r) for r in frame.to_dict(orient="records"))
        atomic_write(p, lambda fh: fh.writelines(line + "\n" for line in rows), binary=False)
    else:
        atomic_write(p, lambda fh: df.to_csv(fh, index=index, lineterminator="\n", date_format=date_format),
                     binary=False)
    return str(p)


def dumps_line(obj: Any) -> str:
    return json.dumps(to_jsonable(obj), allow_nan=False, separators=(",", ":"))


def progress_enabled(as_json: bool) -> bool:
    return not as_json and sys.stderr.isatty()
