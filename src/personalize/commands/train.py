"""``personalize train``: fit every model on a purchase history and publish a versioned bundle."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from personalize.commands.common import (CustomerCol, Decimal, FormatOpt, ItemCol, JsonOpt, OrderCol, PathArg,
                                         PriceCol, QuantityCol, Query, Sep, TimeCol, TimeFormat, emit,
                                         dataset_from, progress_enabled)
from personalize.errors import PersonalizeError


def train(path: PathArg, format: FormatOpt = "generic", out: Annotated[str, typer.Option(
              "--out", help="Model store to publish to.")] = "models",
          recommender: Annotated[str, typer.Option(
              help="The recommender that fills the precomputed candidate lists: als (default; fast at any scale), "
                   "twostage (best offline quality, slower to train), itemknn, bpr, buyagain, popular.")] = "als",
          factors: Annotated[int, typer.Option(help="ALS latent factors.")] = 64,
          candidates: Annotated[int, typer.Option(help="Precomputed candidates per customer.")] = 200,
          keep: Annotated[int | None, typer.Option(help="Keep only the newest N versions.")] = None,
          seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
          churn: Annotated[bool, typer.Option("--churn/--no-churn", help="Train and publish the churn model "
                                                                          "(skipped, with the reason in the "
                                                                          "manifest, when the data is too "
                                                                          "short).")] = True,
          churn_horizon_days: Annotated[float, typer.Option("--churn-horizon-days", help="Churn = no purchase in "
                                                                                          "this many days.")] = 90.0,
          validate: Annotated[bool, typer.Option("--validate/--no-validate", help="Score the recommender and "
                                                 "Popular on the last validation window and record it in the "
                                                 "manifest (one extra fit).")] = True,
          customer_col: CustomerCol = None, item_col: ItemCol = None, time_col: TimeCol = None,
          time_format: TimeFormat = None, quantity_col: QuantityCol = None, price_col: PriceCol = None,
          order_col: OrderCol = None, sep: Sep = None, decimal: Decimal = ".", query: Query = None,
          json: JsonOpt = False) -> None:
    """Train every model on a purchase history and publish a versioned bundle (then CURRENT points to it)."""
    from personalize.pipeline import train_bundle
    from personalize.recommenders import make as make_recommender

    if factors < 1 or candidates < 1:
        raise PersonalizeError("--factors and --candidates must be positive")
    show = progress_enabled(json)
    t0 = time.perf_counter()

    def say(msg: str) -> None:
        if not json:
            typer.echo(f"[{time.perf_counter() - t0:6.1f}s] {msg}", err=True)

    say(f"loading {path} ({format})")
    ds = dataset_from(locals())
    say(f"{len(ds):,} transactions, {ds.n_customers:,} customers, {ds.n_items:,} items")
    if churn_horizon_days <= 0:
        raise PersonalizeError(f"--churn-horizon-days must be positive, got {churn_horizon_days}")
    if "," in recommender:
        raise PersonalizeError(f"--recommender takes one model name, got {recommender!r}")
    model = None if recommender.strip().lower() == "als" else make_recommender(recommender)
    manifest = train_bundle(ds, store=out, factors=factors, candidates=candidates, keep=keep, seed=seed,
                            recommender=model, validate=validate,
                            churn=churn, churn_horizon_days=churn_horizon_days,
                            progress=say if (show or not json) else None,
                            extra_params={"source": {"format": format, "path": str(path)}})
    churn_info = (manifest.get("extra") or {}).get("churn") or {}
    churn_line = ("churn model included" if churn_info.get("status") == "published"
                  else f"churn {churn_info.get('status', 'skipped')}: {churn_info.get('reason')}")
    emit(manifest, json, f"published model version {manifest['version']} to {out}/ "
                         f"({time.perf_counter() - t0:.1f} s; {churn_line})")


def register(app: typer.Typer) -> None:
    app.command("train")(train)
