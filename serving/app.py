"""The FastAPI application factory.

    from serving.app import create_app
    from serving.settings import Settings
    app = create_app(Settings(models="models", api_keys={"shop-key-123": ["recommend"]}))

The bundle is loaded in the lifespan and kept on ``app.state.service``; routes
are one router per area under ``/v1`` plus health, readiness and metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fastapi import FastAPI

from personalize import __version__
from serving import errors
from serving.metrics import Metrics, ServiceMiddleware
from serving.routers import admin, audiences, customers, events, health, items, models, recommendations
from serving.settings import Settings
from serving.state import ServiceState

log = logging.getLogger("personalize.serving")


def _limit_threads() -> None:
    """One BLAS/OpenMP thread per server process: scale with worker processes instead (see STACK.md)."""
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except Exception:  # pragma: no cover - threadpoolctl missing or no pools loaded
        pass


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        _limit_threads()
        state: ServiceState = app.state.service
        await asyncio.to_thread(state.open)
        task = None
        if settings.event_sync_interval > 0:
            task = asyncio.create_task(state.sync_loop())
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            state.close()

    app = FastAPI(title="personalize", version=__version__, lifespan=lifespan,
                  description="Recommendations, profiles, events and audiences over a published model bundle.")
    app.state.settings = settings
    app.state.service = ServiceState(settings, metrics)
    app.state.metrics = metrics
    errors.install(app)
    labels: dict[int, str] = {}  # route object -> full path template, the metrics label
    for module in (recommendations, items, customers, events, audiences, models, admin):
        app.include_router(module.router, prefix="/v1")
        labels.update({id(r): "/v1" + r.path for r in module.router.routes})
    app.include_router(health.router)
    labels.update({id(r): r.path for r in health.router.routes})
    app.add_middleware(ServiceMiddleware, metrics=metrics, max_body_bytes=settings.max_body_bytes, labels=labels)
    return app
