"""``personalize validate``."""

from __future__ import annotations

import time

import typer

from personalize.commands.common import (CustomerCol, CustomersFile, Decimal, ExposuresFile, FormatOpt, ItemCol,
                                         FeedbackFile, ItemsFile, JsonOpt, MapOpt, PointsFile, OffersFile, OrderCol, PathArg, PriceCol, QuantityCol, Query, Sep, TimeCol,
                                         TimeFormat, emit, dataset_from)


def summary_text(s: dict) -> str:
    """A Dataset summary (``ds.summary()``) as the lines ``validate`` and ``demo`` print."""
    lines = [f"input rows      {s['input_rows']:>12,}", f"kept rows       {s['kept_rows']:>12,}"]
    for reason, n in s["dropped"].items():
        lines.append(f"  dropped {reason:<22} {n:>10,}")
    lines += [f"customers       {s['customers']:>12,}", f"items           {s['items']:>12,}",
              f"first timestamp {s['first_timestamp']:>20}", f"last timestamp  {s['last_timestamp']:>20}"]
    return "\n".join(lines)


def validate(path: PathArg, format: FormatOpt = "generic", customer_col: CustomerCol = None, item_col: ItemCol = None,
             time_col: TimeCol = None, time_format: TimeFormat = None, quantity_col: QuantityCol = None,
             price_col: PriceCol = None, order_col: OrderCol = None, sep: Sep = None, decimal: Decimal = ".",
             query: Query = None, items: ItemsFile = None, customers: CustomersFile = None,
             offers: OffersFile = None, exposures: ExposuresFile = None, maps: MapOpt = None,
             feedback: FeedbackFile = None, points: PointsFile = None, json: JsonOpt = False) -> None:
    """Load, validate and clean a purchase history; report what was kept and what was dropped, and why."""
    t0 = time.perf_counter()
    ds = dataset_from(locals())
    summary = {"format": format, "path": path, **ds.summary(), "seconds": round(time.perf_counter() - t0, 3)}
    emit(summary, json, summary_text(summary))


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)
