"""``personalize train`` (fit every model, publish a bundle), ``personalize serve`` (run the HTTP service)
and ``personalize models`` (list / roll back / prune published bundles)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

import typer

from personalize.commands.common import (CustomerCol, Decimal, FormatOpt, ItemCol, JsonOpt, OrderCol, PathArg,
                                         PriceCol, QuantityCol, Query, Sep, TimeCol, TimeFormat, emit,
                                         load_dataset, progress_enabled)
from personalize.errors import PersonalizeError

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                "NUMEXPR_NUM_THREADS")



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
          customer_col: CustomerCol = None, item_col: ItemCol = None, time_col: TimeCol = None,
          time_format: TimeFormat = None, quantity_col: QuantityCol = None, price_col: PriceCol = None,
          order_col: OrderCol = None, sep: Sep = None, decimal: Decimal = ".", query: Query = None,
          json: JsonOpt = False) -> None:
    """Train every model on a purchase history and publish a versioned bundle (then CURRENT points to it)."""
    from personalize.registry import train_bundle

    if factors < 1 or candidates < 1:
        raise PersonalizeError("--factors and --candidates must be positive")
    show = progress_enabled(json)
    t0 = time.perf_counter()

    def say(msg: str) -> None:
        if not json:
            typer.echo(f"[{time.perf_counter() - t0:6.1f}s] {msg}", err=True)

    say(f"loading {path} ({format})")
    ds = load_dataset(format, path, customer_col=customer_col, item_col=item_col, time_col=time_col,
                      time_format=time_format, quantity_col=quantity_col, price_col=price_col, order_col=order_col,
                      sep=sep, decimal=decimal, query=query)
    say(f"{len(ds):,} transactions, {ds.n_customers:,} customers, {ds.n_items:,} items")
    if churn_horizon_days <= 0:
        raise PersonalizeError(f"--churn-horizon-days must be positive, got {churn_horizon_days}")
    model = None
    if "," in recommender:
        raise PersonalizeError(f"--recommender takes one model name, got {recommender!r}")
    if recommender.strip().lower() != "als":
        from personalize.commands.evaluate import build_models

        model = next(iter(build_models(recommender).values()))
    manifest = train_bundle(ds, store=out, factors=factors, candidates=candidates, keep=keep, seed=seed,
                            recommender=model,
                            churn=churn, churn_horizon_days=churn_horizon_days,
                            progress=say if (show or not json) else None,
                            extra_params={"source": {"format": format, "path": str(path)}})
    churn_info = (manifest.get("extra") or {}).get("churn") or {}
    churn_line = ("churn model included" if churn_info.get("status") == "published"
                  else f"churn {churn_info.get('status', 'skipped')}: {churn_info.get('reason')}")
    emit(manifest, json, f"published model version {manifest['version']} to {out}/ "
                         f"({time.perf_counter() - t0:.1f} s; {churn_line})")


def _limit_threads_env() -> None:
    for var in _THREAD_VARS:
        os.environ[var] = "1"


def run_server(*, models: str | Path = "models", host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
               events_db: str | None = None, log_level: str = "info") -> None:
    """Run uvicorn over ``serving.app:create_app`` with one BLAS/OpenMP thread per worker process."""
    from personalize.registry import resolve_version_dir, verify_bundle

    if workers < 1:
        raise PersonalizeError(f"--workers must be at least 1, got {workers}")
    verify_bundle(resolve_version_dir(models))  # a clear error now rather than an unready service
    _limit_threads_env()  # inherited by worker processes before they import numpy
    os.environ["PERSONALIZE_MODELS"] = str(Path(models).resolve())
    if events_db:
        os.environ["PERSONALIZE_EVENTS_DB"] = str(Path(events_db).resolve())
    if not os.environ.get("PERSONALIZE_API_KEYS"):
        typer.echo("personalize: warning: PERSONALIZE_API_KEYS is not set; every /v1 request will get 401",
                   err=True)
    import uvicorn

    # access_log off: request paths carry customer ids; per-route metrics are on /metrics instead
    uvicorn.run("serving.app:create_app", factory=True, host=host, port=port, workers=workers,
                log_level=log_level, access_log=False, timeout_graceful_shutdown=10)


def serve(models: Annotated[str, typer.Option("--models", help="Model store directory.")] = "models",
          host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="Port.")] = 8000,
          workers: Annotated[int, typer.Option(help="Worker processes (one BLAS thread each).")] = 1,
          events_db: Annotated[str | None, typer.Option(help="SQLite event store (default <models>/events.sqlite)."
                                                        )] = None,
          log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info") -> None:
    """Serve the CURRENT bundle over HTTP (API keys from PERSONALIZE_API_KEYS)."""
    run_server(models=models, host=host, port=port, workers=workers, events_db=events_db, log_level=log_level)


def models_list(models: Annotated[str, typer.Option("--models", help="Model store directory.")] = "models",
                json: JsonOpt = False) -> None:
    """List published bundles (oldest first); the current one is marked."""
    from personalize.registry import list_versions

    rows = list_versions(models)
    human = "\n".join(f"{'*' if r['current'] else ' '} {r['version']}  {r['created_at'] or '-'}"
                      f"{'' if r['ok'] else '  UNREADABLE'}" for r in rows) or f"no bundles in {models}"
    emit({"store": models, "versions": rows}, json, human)


def models_rollback(version: Annotated[str | None, typer.Argument(help="Version (default: the previous one).")] = None,
                    models: Annotated[str, typer.Option("--models", help="Model store directory.")] = "models",
                    json: JsonOpt = False) -> None:
    """Point CURRENT at an earlier bundle (running services pick it up on POST /v1/admin/reload)."""
    from personalize.registry import rollback

    v = rollback(models, version)
    emit({"store": models, "current": v}, json, f"CURRENT -> {v}")


def models_prune(keep: Annotated[int, typer.Option(help="Versions to keep.")] = 5,
                 models: Annotated[str, typer.Option("--models", help="Model store directory.")] = "models",
                 json: JsonOpt = False) -> None:
    """Delete all but the newest N bundles (never the current one)."""
    from personalize.registry import prune

    removed = prune(models, keep=keep)
    emit({"store": models, "removed": removed}, json, f"removed {len(removed)} version(s)")


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("serve")(serve)
    group = typer.Typer(help="List, roll back and prune published model bundles.", no_args_is_help=True)
    group.command("list")(models_list)
    group.command("rollback")(models_rollback)
    group.command("prune")(models_prune)
    app.add_typer(group, name="models")
