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
ItemsFile = Annotated[str | None, typer.Option("--items", help="generic: item table file (item_id, category, ...)")]
CustomersFile = Annotated[str | None, typer.Option("--customers", help="generic: customer table file "
                                                                         "(customer_id, consent flags, ...)")]

FORMATS = ("online_retail", "cdnow", "cdnow_sample", "generic")


def load_dataset(format: str, path: str, *, customer_col: str | None = None, item_col: str | None = None,
                 time_col: str | None = None, time_format: str | None = None, quantity_col: str | None = None,
                 price_col: str | None = None, order_col: str | None = None, sep: str | None = None,
                 decimal: str = ".", query: str | None = None, items: str | None = None,
                 customers: str | None = None):
    """Load a dataset the way every CLI command does (``--format`` plus column-mapping options)."""
    from personalize.data import adapters

    if format not in FORMATS:
        raise DataError(f"unknown --format {format!r}; expected one of {', '.join(FORMATS)}")
    if not any(ch in path for ch in "*?[") and not Path(path).exists():
        raise DataError(f"file not found: {path}")
    if format == "generic":
        mapping = {k: v for k, v in {"customer_id": customer_col, "item_id": item_col, "timestamp": time_col,
                                     "quantity": quantity_col, "price": price_col, "order_id": order_col}.items()
                   if v}
        if sep == "\\t":
            sep = "\t"
        return adapters.load_generic(path, mapping=mapping, time_format=time_format, sep=sep, decimal=decimal,
                                     query=query, items=items, customers=customers)
    if items or customers:
        raise DataError(f"--items and --customers go with --format generic; {format} brings its own tables")
    return adapters.FORMATS[format](path)


_DATA_OPTIONS = ("customer_col", "item_col", "time_col", "time_format", "quantity_col", "price_col", "order_col",
                 "sep", "decimal", "query", "items", "customers")


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


def write_table(df: pd.DataFrame, out: str, *, index: bool = False, date_format: str | None = None) -> str:
    """Write ``df`` as CSV (or Parquet for a .parquet name) atomically: a reader never sees half a list."""
    p = Path(out)
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.suffix.lower() == ".parquet":
        atomic_write(p, lambda fh: df.to_parquet(fh, index=index))
    else:
        atomic_write(p, lambda fh: df.to_csv(fh, index=index, lineterminator="\n", date_format=date_format),
                     binary=False)
    return str(p)


def progress_enabled(as_json: bool) -> bool:
    return not as_json and sys.stderr.isatty()
