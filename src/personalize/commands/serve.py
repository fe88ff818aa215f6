"""``personalize serve``: run the HTTP service over a model store."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from personalize.errors import PersonalizeError
from personalize.store import resolve_version_dir, verify_bundle

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                "NUMEXPR_NUM_THREADS")



def _limit_threads_env() -> None:
    for var in _THREAD_VARS:
        os.environ[var] = "1"


def run_server(*, models: str | Path = "models", host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
               events_db: str | None = None, log_level: str = "info") -> None:
    """Run uvicorn over ``serving.app:create_app`` with one BLAS/OpenMP thread per worker process."""
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


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
