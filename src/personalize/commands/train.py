"""``personalize train``: fit every model on a purchase history and publish a versioned bundle."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from personalize.commands.common import (CustomerCol, CustomersFile, Decimal, ExposuresFile, FormatOpt, ItemCol,
                                         FeedbackFile, ItemsFile, JsonOpt, MapOpt, PointsFile, OffersFile, OrderCol, PathArg,
                                         PriceCol, QuantityCol, Query, Sep, TimeCol, TimeFormat, emit,
                                         dataset_from, progress_enabled)
from personalize.errors import PersonalizeError


def train(path: PathArg, format: FormatOpt = "generic", out: Annotated[str, typer.Option(
              "--out", help="Model store to publish to.")] = "models",
          recommender: Annotated[str, typer.Option(
              help="The recommender that fills the precomputed candidate lists: auto (default: compare als, "
                   "itemknn, buyagain, twostage and ease on the last validation window and serve the best; "
                   "every score goes into the manifest), or one of als, twostage, itemknn, bpr, buyagain, ease, "
                   "popular.")] = "auto",
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
          events_db: Annotated[str | None, typer.Option("--events-db", help="The service's event store (default "
                                                        "<out>/events.sqlite when it exists): its erasure list "
                                                        "is always honoured, its purchases are added unless "
                                                        "--no-events.")] = None,
          events: Annotated[bool, typer.Option("--events/--no-events", help="Add the event store's purchases to "
                                               "the training data (order lines the file already has count "
                                               "once).")] = True,
          customer_col: CustomerCol = None, item_col: ItemCol = None, time_col: TimeCol = None,
          time_format: TimeFormat = None, quantity_col: QuantityCol = None, price_col: PriceCol = None,
          order_col: OrderCol = None, sep: Sep = None, decimal: Decimal = ".", query: Query = None,
          items: ItemsFile = None, customers: CustomersFile = None, offers: OffersFile = None,
          exposures: ExposuresFile = None, maps: MapOpt = None, feedback: FeedbackFile = None,
          points: PointsFile = None, json: JsonOpt = False) -> None:
    """Train every model on a purchase history and publish a versioned bundle (then CURRENT points to it)."""
    from personalize.pipeline import train_bundle
    from personalize.recommenders import make as make_recommender
    from personalize.store.events import EventStore, default_events_path

    if factors < 1 or candidates < 1:
        raise PersonalizeError("--factors and --candidates must be positive")
    show = progress_enabled(json)
    t0 = time.perf_counter()

    def say(msg: str) -> None:  # time since the start and the process's peak memory so far (where it grows)
        if not json:
            typer.echo(f"[{time.perf_counter() - t0:6.1f}s {_peak_rss_gb():5.1f} GB] {msg}", err=True)

    say(f"loading {path} ({format})")
    ds = dataset_from(locals())
    say(f"{len(ds):,} transactions, {ds.n_customers:,} customers, {ds.n_items:,} items")
    if churn_horizon_days <= 0:
        raise PersonalizeError(f"--churn-horizon-days must be positive, got {churn_horizon_days}")
    if "," in recommender:
        raise PersonalizeError(f"--recommender takes one model name, got {recommender!r}")
    name = recommender.strip().lower()
    model = "auto" if name == "auto" else None if name == "als" else make_recommender(name)
    store_db = Path(events_db) if events_db else default_events_path(out)
    if events_db and not store_db.is_file():
        raise PersonalizeError(f"--events-db {events_db}: no such event store")
    event_store = EventStore(store_db) if store_db.is_file() else None
    manifest = train_bundle(ds, store=out, factors=factors, candidates=candidates, keep=keep, seed=seed,
                            recommender=model, validate=validate, events=event_store, include_events=events,
                            churn=churn, churn_horizon_days=churn_horizon_days,
                            progress=say if (show or not json) else None,
                            extra_params={"source": {"format": format, "path": str(path)}})
    churn_info = (manifest.get("extra") or {}).get("churn") or {}
    churn_line = ("churn model included" if churn_info.get("status") == "published"
                  else f"churn {churn_info.get('status', 'skipped')}: {churn_info.get('reason')}")
    emit(manifest, json, f"published model version {manifest['version']} to {out}/ "
                         f"({time.perf_counter() - t0:.1f} s; {churn_line})")


def _peak_rss_gb() -> float:
    """Peak resident memory of this process so far, in GiB (0 where the platform does not say)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return 0.0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2 ** 30 if sys.platform == "darwin" else 2 ** 20)   # bytes on macOS, KiB on Linux


def register(app: typer.Typer) -> None:
    app.command("train")(train)
