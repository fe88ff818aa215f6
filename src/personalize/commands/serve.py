"""``personalize serve``: run the HTTP service over a model store.

Everything that can be wrong before a request arrives is checked here, in
the parent process, before any worker starts: the ``PERSONALIZE_*``
settings (one line naming the setting, never an API key's value), the event
store (it must open) and the model store (at least one loadable bundle). A
worker that crashed on bad configuration would be respawned forever.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from personalize.errors import BundleError, PersonalizeError
from personalize.store import list_versions, resolve_version_dir, verify_bundle

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                "NUMEXPR_NUM_THREADS")


def _limit_threads_env() -> None:
    for var in _THREAD_VARS:
        os.environ[var] = "1"


def _check_bundles(models: Path) -> str | None:
    """A warning when CURRENT cannot be loaded but an earlier version can; BundleError when nothing can."""
    try:
        verify_bundle(resolve_version_dir(models))
        return None
    except BundleError as exc:
        good = [v for v in list_versions(models) if v["ok"]] if models.is_dir() else []
        for row in reversed(good):
            try:
                verify_bundle(resolve_version_dir(models, row["version"]))
            except BundleError:
                continue
            return f"the CURRENT bundle cannot be loaded ({exc}); serving {row['version']} until it can"
        raise


def run_server(*, models: str | Path = "models", host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
               events_db: str | None = None, log_level: str = "info") -> None:
    """Check the configuration, then run uvicorn over ``serving.app:create_app`` with one BLAS/OpenMP thread
    per worker process (and Prometheus multiprocess mode with several workers)."""
    from personalize.store.events import EventStore
    from serving.settings import load_settings  # the service package: only needed to serve

    if workers < 1:
        raise PersonalizeError(f"--workers must be at least 1, got {workers}")
    models = Path(models).resolve()
    overrides = {"models": models}
    if events_db:
        overrides["events_db"] = Path(events_db).resolve()
    settings = load_settings(**overrides)
    warning = _check_bundles(models)
    if warning:
        typer.echo(f"personalize: warning: {warning}", err=True)
    try:
        EventStore(settings.events_path).close()
    except OSError as exc:
        raise PersonalizeError(f"event store {settings.events_path} is not usable: {exc.strerror or exc}") from None
    if not settings.api_keys:
        typer.echo("personalize: warning: PERSONALIZE_API_KEYS is not set; every /v1 request will get 401",
                   err=True)
    _limit_threads_env()  # inherited by worker processes before they import numpy
    os.environ["PERSONALIZE_MODELS"] = str(models)
    os.environ["PERSONALIZE_EVENTS_DB"] = str(settings.events_path)
    metrics_dir = None
    if workers > 1:  # every worker writes its metrics here; /metrics sums them, whichever worker answers
        metrics_dir = tempfile.mkdtemp(prefix="personalize-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    import uvicorn

    try:
        # access_log off: request paths carry customer ids; per-route metrics are on /metrics instead
        uvicorn.run("serving.app:create_app", factory=True, host=host, port=port, workers=workers,
                    log_level=log_level, access_log=False, timeout_graceful_shutdown=10)
    finally:
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def serve(models: Annotated[str, typer.Option("--models", help="Model store directory.")] = "models",
          host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="Port.")] = 8000,
          workers: Annotated[int, typer.Option(help="Worker processes (one BLAS thread each).")] = 1,
          events_db: Annotated[str | None, typer.Option(help="SQLite event store (default <models>/events.sqlite)."
                                                        )] = None,
          log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info") -> None:
    """Serve the CURRENT bundle over HTTP (API keys from PERSONALIZE_API_KEYS; every setting is checked first)."""
    run_server(models=models, host=host, port=port, workers=workers, events_db=events_db, log_level=log_level)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
